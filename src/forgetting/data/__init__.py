"""The data: MNIST from tensorflow-datasets cut into tasks and splits, permuted and rotated inputs (``mnist``), and
the three scenarios' heads and labels (``scenarios``)."""
