"""The settings that hyperparameters are tuned for: a scenario x a named task sequence (``domain-even-odd``,
``class-split5``, ...), and the tuned values that ``forgetting tune`` commits to ``tuning/<setting>.yaml``. No
TensorFlow here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from forgetting.config.params import SCENARIOS, value_at, with_values
from forgetting.config.pipeline import entries
from forgetting.errors import ForgettingError

SEQUENCES: dict[str, list[list[int]]] = {
    "even-odd": [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]],  # the default: task A = even digits, task B = odd digits
    "split5": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],  # the standard 5-task split MNIST
    # permuted MNIST: 10 tasks of every digit, each with its own pixel order (distinct lists: YAML without anchors)
    "permuted": [list(range(10)) for _ in range(10)],
    "rotated": [list(range(10)) for _ in range(5)],  # rotated MNIST: 5 tasks of every digit, turned by 0, 45, ... 180°
}
DIGITS = {"kind": "digits", "degrees_per_task": 45.0}  # split MNIST: the tasks differ in their digits alone
INPUTS: dict[str, dict[str, Any]] = {  # params.yaml's task_inputs of each sequence
    "permuted": {"kind": "permuted", "degrees_per_task": 45.0},
    "rotated": {"kind": "rotated", "degrees_per_task": 45.0},
}
# Further values of a sequence: permuted and rotated MNIST train on 1000 examples per digit (10,000 a task, against
# MNIST's 54,000 after validation), so that a run of every strategy fits a 2-core machine (README: "Permuted and
# rotated MNIST" has the literature's size as a command); and as every task holds every digit, GEM keeps a number of
# each task's examples (per_task, the GEM paper's memory), not of each digit's (GEM.check_setting).
SEQUENCE_VALUES: dict[str, dict[str, Any]] = {
    "permuted": {"data.train_per_digit": 1000, "gem.memory": "per_task"},
    "rotated": {"data.train_per_digit": 1000, "gem.memory": "per_task"},
}
# The settings that the benchmarks run: the five of the reference protocol (van de Ven & Tolias 2019; Hsu et al.
# 2018), then permuted and rotated MNIST (domain scenario: the same digits in every task).
SETTINGS: tuple[str, ...] = (
    "domain-even-odd",
    "task-even-odd",
    "class-even-odd",
    "domain-split5",
    "class-split5",
    "domain-permuted",
    "domain-rotated",
)
TUNING = Path("tuning")
# The params a strategy's figure is trained under besides its own, as its models' stages declare them in dvc.yaml
# (prepare's data, train_a's network and training, finetune's; not the seeds: a choice is made on seeds of its own),
# with the strategy's own sections there (``params`` and ``extra``: EWC's Fisher). ``tuned_under`` records them with
# each choice, so that a run under other values (a small run's data, fewer epochs, another buffer) is told apart.
TRAINED_UNDER = (
    "class_outputs",
    "data.train_per_digit",
    "data.validation_fraction",
    "model",
    "train.optimizer",
    "train.learning_rate",
    "train.batch_size",
    "train.epochs_a",
    "train.iterations_a",
    "finetune",
)


def setting_name(scenario: str, sequence: str) -> str:
    """``<scenario>-<sequence>``, checked: one clear error for an unknown scenario or sequence."""
    if scenario not in SCENARIOS:
        raise ForgettingError(f"unknown scenario {scenario!r}: use one of {', '.join(SCENARIOS)}")
    if sequence not in SEQUENCES:
        raise ForgettingError(f"unknown task sequence {sequence!r}: use one of {', '.join(SEQUENCES)}")
    return f"{scenario}-{sequence}"


def values(setting: str) -> dict[str, Any]:
    """The params.yaml values of a setting's name (dotted keys for nested ones): ``scenario``, ``tasks``,
    ``task_inputs`` and the sequence's own values (``SEQUENCE_VALUES``: its size)."""
    scenario, _, sequence = setting.partition("-")
    setting_name(scenario, sequence)
    inputs = INPUTS.get(sequence, DIGITS)
    own = SEQUENCE_VALUES.get(sequence, {})
    return {"scenario": scenario, "tasks": SEQUENCES[sequence], "task_inputs": inputs} | own


def setting_of(params: dict[str, Any]) -> str | None:
    """The setting that params.yaml's ``scenario``, ``tasks`` and ``task_inputs`` make, or None for a task sequence
    of your own."""
    inputs = params.get("task_inputs", DIGITS)
    for sequence, tasks in SEQUENCES.items():
        expected = INPUTS.get(sequence, DIGITS)
        same_inputs = inputs["kind"] == expected["kind"] and (
            inputs["kind"] != "rotated" or inputs["degrees_per_task"] == expected["degrees_per_task"]
        )
        if params["tasks"] == tasks and same_inputs:
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


def setting_params(params: dict[str, Any], setting: str, tuning: Path | None = None) -> dict[str, Any]:
    """``params`` (params.yaml's dict) set up for ``setting``: its scenario, tasks, task inputs and size, then, with
    ``tuning`` (a folder of tuning files), the values `forgetting tune` chose for it where it has been tuned."""
    overrides = values(setting)
    if tuning is not None:
        for entry in (tuned(setting, tuning) or {}).get("chosen", {}).values():
            overrides |= entry["params"]
    return with_values(params, overrides)


def tuned_under(params: dict[str, Any], name: str, searched: set[str]) -> dict[str, Any]:
    """The values of ``params`` that strategy ``name``'s trials trained under (``TRAINED_UNDER`` and its own sections
    of dvc.yaml's strategy list), as dotted keys, less the ``searched`` ones (its tuned values) and the seeds."""
    entry = entries().get(name, {})
    keys = [*TRAINED_UNDER, *(entry.get(part) for part in ("params", "extra"))]
    under: dict[str, Any] = {}
    for key in dict.fromkeys(k for k in keys if k and k != "seed"):
        value = value_at(params, key)
        leaves = {f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value}
        under |= {k: v for k, v in leaves.items() if k not in searched}
    return under


def other_values(under: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Each recorded key (``tuned_under``) whose value in ``params`` differs: (key, value tuned under, value here)."""
    return [(key, value, here) for key, value in under.items() if (here := value_at(params, key)) != value]
