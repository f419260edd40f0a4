"""Accuracy per task, the accuracy matrix and backward transfer, and the metrics files that ``dvc metrics show``
reads."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.evaluation.intervals import ci95, paired_difference, summary
from forgetting.files import atomic_output

__all__ = ["ci95", "paired_difference", "summary"]  # re-exported: forgetting.evaluation.intervals holds them


def accuracy(
    network: keras.Model,
    split: Split,
    scenario: Scenario,
    batch_size: int = 2048,
    predict: Callable | None = None,
    task: int | None = None,
) -> np.ndarray:
    """Top-1 accuracy of each repetition of ``network`` (a ``StackedMLP``) on ``split``, from the scenario's
    selection of ``predict(network, images)``'s scores (a strategy's prediction rule, ``Strategy.predict``; by
    default the network's own, ``StackedMLP.scores``: its logits unless it holds a nearest-mean head), while task
    ``task`` trains (``Scenario.restrict``; None: after the sequence): an array of S values.

    Calls the network directly on large batches: ``model.predict`` builds a tf.data pipeline per call, which costs
    more than the forward pass itself when accuracy is taken after every epoch.
    """
    correct = np.zeros(network.repetitions, np.int64)
    for start in range(0, len(split), batch_size):
        stop = start + batch_size
        images = split.image[start:stop]
        scores = network.scores(images) if predict is None else predict(network, images)
        logits = scenario.restrict(scenario.select(scores, split.task[start:stop]), task)
        correct += np.sum(np.argmax(logits.numpy(), axis=-1) == split.label[None, start:stop], axis=1)
    return correct / max(len(split), 1)


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


def by_seed(rows: list[dict[str, str]]) -> dict[int, list[dict[str, str]]]:
    """A per-repetition log's rows (``TaskAccuracyLog``'s ``repetitions_path``), grouped by repetition seed."""
    groups: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(int(row["seed"]), []).append(row)
    return groups


def matrix_records(rows: list[dict[str, str]], names: list[str]) -> list[dict[str, str | float]]:
    """The accuracy matrix in long form, for DVC's plots and ``metrics/accuracy_matrix/<model>.json``: one record
    ``{"trained": <task trained last>, "task": <task tested>, "accuracy": ...}`` per task tested, after each
    stretch of the per-epoch log (each task of a sequence; the single ``joint`` stretch for the joint model);
    accuracy is the mean over repetitions."""
    return [
        {"trained": trained, "task": name, "accuracy": round(float(row[f"{name}_accuracy"]), 6)}
        for trained, row in last_rows(rows).items()
        for name in names
    ]


def epoch_records(rows: list[dict[str, str]], names: list[str]) -> list[dict[str, str | float]]:
    """Every task's test accuracy per epoch in long form, for DVC's plots (``metrics/accuracy_per_epoch/``): one
    record ``{"epoch", "trained", "task", "accuracy", "low", "high"}`` per epoch and task, with the mean over
    repetitions and its 95% confidence interval, from the per-epoch log (``TaskAccuracyLog``'s ``path``)."""
    records = []
    for row in rows:
        for name in names:
            mean, half = float(row[f"{name}_accuracy"]), row.get(f"{name}_accuracy_ci95")
            records.append(
                {
                    "epoch": int(row["epoch"]),
                    "trained": row["task"],
                    "task": name,
                    "accuracy": round(mean, 6),
                    "low": round(mean - float(half), 6) if half else None,  # one repetition: no interval
                    "high": round(mean + float(half), 6) if half else None,
                }
            )
    return records


def task_metrics(
    final: dict[str, float],
    reference_a: float | None,
    matrix: list[list[float]] | None,
    initial: dict[str, float] | None = None,
) -> dict:
    """The metrics of one model (one repetition): ``<task>_accuracy`` on every task's test split and their mean;
    for a model trained on from the task-A model, ``task_a_forgetting`` = the task-A model's task-A accuracy minus
    this model's; and with the accuracy matrix R of a whole sequence of T tasks, backward and forward transfer
    (Lopez-Paz & Ranzato 2017):

        bwt = 1/(T-1) * sum_{i<T-1} (R[T-1][i] - R[i][i])
        fwt = 1/(T-1) * sum_{i>0} (R[i-1][i] - b_i)

    with b_i the accuracy on task i of the same repetition at initialisation (``initial``, before any training).
    (R itself goes to its own file, ``matrix_records``, to keep ``dvc metrics show`` readable.)"""
    metrics = {f"{name}_accuracy": float(value) for name, value in final.items()}
    metrics["mean_accuracy"] = float(np.mean(list(final.values())))
    if reference_a is not None:
        metrics["task_a_forgetting"] = float(reference_a - final["task_a"])
    if matrix is not None and len(matrix) == len(final) > 1:
        last, names = len(final) - 1, list(final)
        metrics["bwt"] = float(np.mean([matrix[last][i] - matrix[i][i] for i in range(last)]))
        if initial is not None:
            metrics["fwt"] = float(np.mean([matrix[i - 1][i] - initial[names[i]] for i in range(1, last + 1)]))
    return metrics


def initial_accuracies(rows: list[dict[str, str]], names: list[str]) -> dict[int, dict[str, float]]:
    """Each repetition's accuracy on every task at initialisation, by seed: the epoch-0 rows (before training) of
    the task-A model's per-repetition log (``metrics/epochs/repetitions/task_a.csv``)."""
    return {
        seed: {name: float(log[0][f"{name}_accuracy"]) for name in names}
        for seed, log in by_seed(rows).items()
        if log and int(log[0]["epoch"]) == 0
    }


def repetition_metrics(
    seeds: list[int],
    final: dict[str, np.ndarray],
    reference_a: np.ndarray | None,
    repetition_rows: list[dict[str, str]],
    names: list[str],
    initial: dict[int, dict[str, float]] | None = None,
) -> dict[str, list[float]]:
    """``task_metrics`` of every repetition (``final``: each task's accuracies, one per repetition;
    ``reference_a``: the task-A model's task-A accuracy per repetition; ``repetition_rows``: the per-repetition
    training log, which gives each one's accuracy matrix; ``initial``: each one's accuracies at initialisation by
    seed, ``initial_accuracies``, for FWT): ``{"seed": seeds, <metric>: [one value per repetition], ...}``."""
    logs = by_seed(repetition_rows)
    if sorted(logs) != sorted(seeds):
        raise ForgettingError(
            f"the training log holds the repetitions {sorted(logs)}, the model {seeds}: run `dvc repro` (the "
            "stage that trained the model)"
        )
    each = [
        task_metrics(
            {task: values[r] for task, values in final.items()},
            None if reference_a is None else reference_a[r],
            accuracy_matrix(logs[seed], names),
            None if initial is None else initial.get(seed),
        )
        for r, seed in enumerate(seeds)
    ]
    if any(m.keys() != each[0].keys() for m in each):
        raise ForgettingError(
            "the per-repetition training log does not follow every repetition through the same tasks: run `dvc "
            "repro` (the stage that trained the model)"
        )
    return {"seed": list(seeds)} | {key: [round(m[key], 6) for m in each] for key in each[0]}


def write_metrics(metrics: dict | list, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
