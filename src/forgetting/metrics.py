"""Accuracy per task and the metrics files that ``dvc metrics show`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from forgetting.data import Split
from forgetting.files import atomic_output


def accuracy(model: keras.Model, split: Split, batch_size: int = 2048) -> float:
    """Top-1 accuracy of ``model``'s logits on ``split`` (Keras' SparseCategoricalAccuracy).

    Calls the model directly on large batches: ``model.predict`` builds a tf.data pipeline per call, which costs
    more than the forward pass itself when accuracy is taken after every epoch.
    """
    metric = keras.metrics.SparseCategoricalAccuracy()
    for start in range(0, len(split), batch_size):
        stop = start + batch_size
        metric.update_state(split.label[start:stop], model(split.image[start:stop], training=False))
    return float(metric.result())


def task_metrics(task_a_accuracy: float, task_b_accuracy: float, reference_a_accuracy: float | None) -> dict:
    """The metrics of one model: accuracy on A and B test, their mean, and (for a model fine-tuned from the
    task-A model) ``task_a_forgetting`` = task-A accuracy of the task-A model minus this model's."""
    metrics = {
        "task_a_accuracy": round(task_a_accuracy, 6),
        "task_b_accuracy": round(task_b_accuracy, 6),
        "mean_accuracy": round((task_a_accuracy + task_b_accuracy) / 2, 6),
    }
    if reference_a_accuracy is not None:
        metrics["task_a_forgetting"] = round(reference_a_accuracy - task_a_accuracy, 6)
    return metrics


def write_metrics(metrics: dict, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
