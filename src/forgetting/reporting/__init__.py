"""What users read: the report and its tables (``report``), its figures (``figures``) and `forgetting diff`
(``diff``)."""
