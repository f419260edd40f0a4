"""The settings that hyperparameters are tuned for: a scenario x a named task sequence (``domain-even-odd``,
``class-split5``, ...), and the tuned values that ``forgetting tune`` commits to ``tuning/<setting>.yaml``. No
TensorFlow here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from forgetting.errors import ForgettingError
from forgetting.params import SCENARIOS

SEQUENCES: dict[str, list[list[int]]] = {
    "even-odd": [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]],  # the default: task A = even digits, task B = odd digits
    "split5": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],  # the standard 5-task split MNIST
}
# The five settings of the reference protocol (van de Ven & Tolias 2019; Hsu et al. 2018) that the benchmark runs.
SETTINGS: tuple[str, ...] = ("domain-even-odd", "task-even-odd", "class-even-odd", "domain-split5", "class-split5")
TUNING = Path("tuning")


def setting_name(scenario: str, sequence: str) -> str:
    """``<scenario>-<sequence>``, checked: one clear error for an unknown scenario or sequence."""
    if scenario not in SCENARIOS:
        raise ForgettingError(f"unknown scenario {scenario!r}: use one of {', '.join(SCENARIOS)}")
    if sequence not in SEQUENCES:
        raise ForgettingError(f"unknown task sequence {sequence!r}: use one of {', '.join(SEQUENCES)}")
    return f"{scenario}-{sequence}"


def parse(setting: str) -> tuple[str, list[list[int]]]:
    """(scenario, tasks) of a setting's name."""
    scenario, _, sequence = setting.partition("-")
    setting_name(scenario, sequence)
    return scenario, SEQUENCES[sequence]


def setting_of(params: dict[str, Any]) -> str | None:
    """The setting that params.yaml's ``scenario`` and ``tasks`` make, or None for a task sequence of your own."""
    for sequence, tasks in SEQUENCES.items():
        if params["tasks"] == tasks:
            return setting_name(params["scenario"], sequence)
    return None


def tuning_path(setting: str, suffix: str = ".yaml", root: Path = TUNING) -> Path:
    return root / f"{setting}{suffix}"


def tuned(setting: str | None, root: Path = TUNING) -> dict[str, Any] | None:
    """The chosen values of ``tuning/<setting>.yaml`` (``{"setting", "scenario", "tasks", "seeds", "data",
    "chosen": {strategy: {"params": {dotted key: value}, "score", "score_ci95", "trials"}}}``), or None where the
    setting has not been tuned."""
    if setting is None:
        return None
    path = tuning_path(setting, root=root)
    return yaml.safe_load(path.read_text()) if path.is_file() else None
