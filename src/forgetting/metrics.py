"""Accuracy per task and the metrics files that ``dvc metrics show`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from forgetting.data import Split
from forgetting.files import atomic_output


def accuracy(model: keras.Model, split: Split, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model``'s logits on ``split`` (Keras' SparseCategoricalAccuracy)."""
    metric = keras.metrics.SparseCategoricalAccuracy()
    metric.update_state(split.label, model.predict(split.image, batch_size=batch_size, verbose=0))
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
