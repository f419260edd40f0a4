"""forgetting: measure catastrophic forgetting on split MNIST, and the strategies that prevent it."""

import os

# TensorFlow's C++ logging prints error-level lines on every CPU-only start (``failed call to cuInit``, ``NodeDef
# mentions attribute``) that read as failures; keep only fatal ones. It must be set before TensorFlow is imported,
# which every module that needs TensorFlow does after this package. A value set by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's CPU kernels, which TensorFlow turns on by itself only on some CPUs (it left them off on an AMD EPYC with
# AVX2): with Eigen's, a batched matrix product of S > 1 repetitions rounds a repetition's slice differently from
# the same product alone (for example (S, 32, 16) x (S, 16, 6)), so "repetition s of a stacked run is seed s alone"
# and the committed metrics would hold only on some machines. With oneDNN's, they hold on both kinds seen.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# One thread per matrix product (TensorFlow's intra-op pool; inter-op is left as it is). On an AMD EPYC with AVX2,
# oneDNN on two threads splits some batched products (for example a kernel gradient (3, 784, 32) x (3, 32, 16)) so
# that a repetition sums in another order than the same seed alone; on one thread every repetition is computed as it
# would be alone. It costs nothing measurable at this model's size (finetune@ewc: 51.6 s on one thread, 51.7 s on
# two, side by side on 2 cores), and it lets the tuner, and pytest's workers, run one process per core.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

__version__ = "0.1.0"
