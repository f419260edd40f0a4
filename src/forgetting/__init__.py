"""forgetting: measure catastrophic forgetting on split MNIST, and the strategies that prevent it."""

import os

# TensorFlow's C++ start-up chatter drowns the progress output of every stage; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
