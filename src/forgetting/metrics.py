"""Accuracy per task, the accuracy matrix and backward transfer, and the metrics files that ``dvc metrics show``
reads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np

from forgetting.data import Split
from forgetting.errors import ForgettingError
from forgetting.files import atomic_output
from forgetting.scenarios import Scenario


def accuracy(network: keras.Model, split: Split, scenario: Scenario, batch_size: int = 2048) -> float:
    """Top-1 accuracy of the scenario's logits for ``split`` (Keras' SparseCategoricalAccuracy).

    Calls the network directly on large batches: ``model.predict`` builds a tf.data pipeline per call, which costs
    more than the forward pass itself when accuracy is taken after every epoch.
    """
    metric = keras.metrics.SparseCategoricalAccuracy()
    for start in range(0, len(split), batch_size):
        stop = start + batch_size
        logits = scenario.select(network(split.image[start:stop], training=False), split.task[start:stop])
        metric.update_state(split.label[start:stop], logits)
    return float(metric.result())


def read_log(path: str | Path) -> list[dict[str, str]]:
    """The rows of a per-epoch log written by ``TaskAccuracyLog``."""
    path = Path(path)
    if not path.is_file():
        raise ForgettingError(f"training log {path} is missing: run `dvc repro` (the stage that trained the model)")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def last_rows(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """The last row of each stretch of a per-epoch log (``TaskAccuracyLog``), keyed by the task trained then."""
    return {row["task"]: row for row in rows}


def accuracy_matrix(rows: list[dict[str, str]], names: list[str]) -> list[list[float]] | None:
    """R[i][j] = test accuracy on task j after training on tasks 0..i, from a per-epoch log
    (``TaskAccuracyLog``): row i is the log's last row of task i. None unless the log follows the sequence from
    its first task on."""
    last = last_rows(rows)
    trained = [name for name in names if name in last]
    if not trained or trained != names[: len(trained)] or set(last) - set(names):
        return None
    return [[float(last[i][f"{j}_accuracy"]) for j in names] for i in trained]


def matrix_records(rows: list[dict[str, str]], names: list[str]) -> list[dict[str, str | float]]:
    """The accuracy matrix in long form, for DVC's plots and ``metrics/accuracy_matrix/<model>.json``: one record
    ``{"trained": <task trained last>, "task": <task tested>, "accuracy": ...}`` per task tested, after each
    stretch of the per-epoch log (each task of a sequence; the single ``joint`` stretch for the joint model)."""
    return [
        {"trained": trained, "task": name, "accuracy": round(float(row[f"{name}_accuracy"]), 6)}
        for trained, row in last_rows(rows).items()
        for name in names
    ]


def task_metrics(final: dict[str, float], reference_a: float | None, matrix: list[list[float]] | None) -> dict:
    """The metrics of one model: ``<task>_accuracy`` on every task's test split and their mean; for a model
    trained on from the task-A model, ``task_a_forgetting`` = the task-A model's task-A accuracy minus this
    model's; and with the accuracy matrix R of a whole sequence of T tasks, ``bwt`` = 1/(T-1) * sum_{i<T-1}
    (R[T-1][i] - R[i][i]). (R itself goes to its own file, ``matrix_records``, to keep ``dvc metrics show``
    readable.)"""
    metrics = {f"{name}_accuracy": round(value, 6) for name, value in final.items()}
    metrics["mean_accuracy"] = round(float(np.mean(list(final.values()))), 6)
    if reference_a is not None:
        metrics["task_a_forgetting"] = round(reference_a - final["task_a"], 6)
    if matrix is not None and len(matrix) == len(final) > 1:
        last = len(final) - 1
        metrics["bwt"] = round(float(np.mean([matrix[last][i] - matrix[i][i] for i in range(last)])), 6)
    return metrics


def write_metrics(metrics: dict | list, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
