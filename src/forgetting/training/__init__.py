"""Training, written once: Keras `fit` through `ContinualModel`, the strategies' hooks at their points of the
step, and the task-sequence loop (``loop``)."""
