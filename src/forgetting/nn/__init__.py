"""The network: the stacked repetitions of the MLP (``model``), the Fisher information (``fisher``) and the path
integral of a stretch of training (``path_integral``)."""
