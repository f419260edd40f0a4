"""Evaluation: accuracy per repetition, the accuracy matrix, BWT and FWT (``metrics``), means with 95% CIs and
paired differences (``intervals``, no TensorFlow), and one setting's metrics files as the report reads them
(``results``)."""
