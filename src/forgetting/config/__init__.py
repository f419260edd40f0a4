"""The params: their types (``params``), the strategy list that dvc.yaml holds (``pipeline``, read without
TensorFlow) and the settings, scenario x task sequence (``settings``). No TensorFlow."""
