"""One setting's results as the report reads them: every model's metrics files (the means, each repetition's values,
the per-epoch log, the accuracy matrix) and the setting's tuning file, with the views the tables and figures take
(ranked models, curves, matrices, paired differences)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgetting.config.pipeline import listed
from forgetting.config.settings import TUNING, setting_of, tuned
from forgetting.data.scenarios import task_names
from forgetting.errors import ForgettingError
from forgetting.evaluation.intervals import Difference, ci95, paired_difference

# metrics/<folder><name>.json of every model: the means, each repetition's values, the per-epoch log, the matrix
FILES = {"summary": "", "repetitions": "repetitions/", "per_epoch": "accuracy_per_epoch/", "matrix": "accuracy_matrix/"}


@dataclass(frozen=True)
class Results:
    """One setting's results: the params it ran with, every model's metrics files by model name (``summary``:
    metrics/<name>.json; ``repetitions``, ``per_epoch``, ``matrix``: the files of that name's folder, as in
    ``FILES``) and the setting's tuning file (``forgetting.config.settings.tuned``), or None."""

    params: dict[str, Any]
    summary: dict[str, dict[str, float]]
    repetitions: dict[str, dict[str, list[float]]]
    per_epoch: dict[str, list[dict[str, Any]]]
    matrix: dict[str, list[dict[str, Any]]]
    tuning: dict[str, Any] | None = None

    @classmethod
    def load(cls, params: dict[str, Any], metrics: Path = Path("metrics"), tuning: Path = TUNING) -> Results:
        """Every model's files under the folder ``metrics`` (the models of ``models()``); a missing, unreadable or
        stale one (from a run with other tasks) is a ForgettingError naming it."""
        files = {
            kind: {name: _read_json(Path(metrics) / f"{folder}{name}.json", name) for name in models()}
            for kind, folder in FILES.items()
        }
        results = cls(params, **files, tuning=tuned(setting_of(params), tuning))
        for name in models():
            for key in ("mean_accuracy", *(f"{task}_accuracy" for task in results.tasks)):
                if key not in results.summary[name] or key not in results.repetitions[name]:
                    raise ForgettingError(
                        f"{Path(metrics) / name}.json or its repetitions lack {key}: they come from a run with other "
                        f"tasks; run `dvc repro` (stage evaluate@{name} writes them)"
                    )
        return results

    @property
    def tasks(self) -> list[str]:
        """The task names, ``task_a``, ``task_b``, ..."""
        return task_names(len(self.params["tasks"]))

    @property
    def strategies(self) -> list[str]:
        """The strategies, best mean accuracy first (ties in the registry's order)."""
        return sorted(listed(), key=lambda name: -self.summary[name]["mean_accuracy"])

    @property
    def ranked(self) -> list[str]:
        """The table's order: joint (the upper bound), the strategies best first, the task-A model."""
        return ["joint", *self.strategies, "task_a"]

    def same_as(self) -> dict[str, str]:
        """Each model whose every repetition value equals an earlier model's (in ``models()`` order): that model."""
        same: dict[str, str] = {}
        names = models()
        for i, name in enumerate(names):
            match = [other for other in names[:i] if self.repetitions[other] == self.repetitions[name]]
            if match:
                same[name] = same.get(match[0], match[0])
        return same

    def curve(self, model: str, task: str) -> tuple[np.ndarray, ...]:
        """(epochs, mean accuracy, low, high) on ``task`` along ``model``'s per-epoch log."""
        records = [r for r in self.per_epoch[model] if r["task"] == task]
        return tuple(
            np.array([np.nan if r[key] is None else r[key] for r in records])  # None: no interval
            for key in ("epoch", "accuracy", "low", "high")
        )

    def grid(self, model: str) -> np.ndarray:
        """The accuracy matrix of ``model``: row i after training on task i, column j tested on task j."""
        cell = {(r["trained"], r["task"]): r["accuracy"] for r in self.matrix[model]}
        return np.array([[cell[trained, task] for task in self.tasks] for trained in self.tasks])

    def stability(self, model: str) -> tuple[float, float, float, float]:
        """(mean final accuracy on the newest task, its 95% CI half-width, mean over the repetitions of each one's
        mean final accuracy on the earlier tasks, its half-width)."""
        values = self.repetitions[model]
        newest = np.array(values[f"{self.tasks[-1]}_accuracy"])
        earlier = np.mean([values[f"{task}_accuracy"] for task in self.tasks[:-1]], axis=0)
        return float(np.mean(newest)), ci95(newest), float(np.mean(earlier)), ci95(earlier)

    def paired(self, a: str, b: str, key: str = "mean_accuracy") -> Difference | None:
        """``key`` of ``a`` minus that of ``b``, paired over their shared seeds; None when they share none."""
        index_a, index_b = ({s: i for i, s in enumerate(self.repetitions[m]["seed"])} for m in (a, b))
        shared = sorted(set(index_a) & set(index_b))
        if not shared:
            return None
        values_a, values_b = self.repetitions[a][key], self.repetitions[b][key]
        return paired_difference([values_a[index_a[s]] for s in shared], [values_b[index_b[s]] for s in shared])


def models() -> list[str]:
    """Every model that the evaluate stage measures: the task-A model, joint and the listed strategies."""
    return ["task_a", "joint", *listed()]


def _read_json(path: Path, model: str) -> Any:
    """The content of metrics file ``path`` of ``model``; missing or unreadable: a ForgettingError."""
    if not path.is_file():
        raise ForgettingError(f"{path} is missing: run `dvc repro` (stage evaluate@{model} writes it)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ForgettingError(f"{path} is not valid JSON ({exc}): run `dvc repro` (stage evaluate@{model})") from None
