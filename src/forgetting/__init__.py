"""forgetting: measure catastrophic forgetting on split MNIST, and the strategies that prevent it."""

import os

# TensorFlow's C++ logging prints error-level lines on every CPU-only start (``failed call to cuInit``, ``NodeDef
# mentions attribute``) that read as failures; keep only fatal ones. It must be set before TensorFlow is imported,
# which every module that needs TensorFlow does after this package. A value set by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
