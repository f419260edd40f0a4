"""Loading and validating params.yaml.

A stage reads its params through ``load(stage)``, which returns only the keys that the stage declares in
dvc.yaml (``dvc.api.params_show``): reading an undeclared key fails loudly instead of silently escaping DVC's
change tracking. Every value is checked before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forgetting.errors import ForgettingError

FISHER_ESTIMATORS = ("exact", "sampled", "empirical")
SCENARIOS = ("domain", "task", "class")  # forgetting.scenarios, which imports TensorFlow


def load(stage: str) -> dict[str, Any]:
    """The params that ``stage`` (e.g. ``"finetune@ewc"``) declares in dvc.yaml, validated."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        params = dvc.api.params_show(stages=stage)
    except DvcException as exc:
        raise ForgettingError(f"cannot read the params of stage '{stage}': {exc}") from exc
    validate(params)
    return params


def _get(params: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _digits(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(_is_int(d) and 0 <= d <= 9 for d in value)
        and len(set(value)) == len(value)
    )


# key -> (check, what a valid value is). Keys missing from a stage's params are not checked.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (_is_int, "an integer"),
    "scenario": (lambda v: v in SCENARIOS, "one of " + ", ".join(SCENARIOS)),
    "tasks": (
        lambda v: isinstance(v, list) and 2 <= len(v) <= 10 and all(_digits(t) for t in v),
        "a list of 2 to 10 tasks, each a list of distinct digits 0-9, e.g. [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]",
    ),
    "alpha": (lambda v: _is_number(v) and v >= 0, "a number >= 0 (0 turns EWC into naive fine-tuning)"),
    "l2.weight": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "lwf.temperature": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "lwf.weight": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "online_ewc.alpha": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "online_ewc.gamma": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1] (1: the Fisher sum of EWC)"),
    "si.c": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "si.xi": (lambda v: _is_number(v) and v > 0, "a number > 0 (it keeps the importance finite)"),
    "mas.lambda": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "replay.buffer_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1 (task-A examples kept)"),
    "replay.shift": (lambda v: _is_int(v) and 0 <= v <= 4, "an integer from 0 (exact copies) to 4 pixels"),
    "data.manual_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    "data.tfds_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    "data.train_per_digit": (
        lambda v: v == "all" or (_is_int(v) and v >= 1),
        "an integer >= 1 (train examples kept per digit, for quick runs), or all",
    ),
    "data.validation_fraction": (lambda v: _is_number(v) and 0 < v < 1, "a number between 0 and 1"),
    "model.hidden_units": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "train.learning_rate": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "train.batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "train.epochs_a": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "train.epochs_joint": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "finetune.epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "finetune.learning_rate": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "fisher.estimator": (lambda v: v in FISHER_ESTIMATORS, "one of " + ", ".join(FISHER_ESTIMATORS)),
    "fisher.num_examples": (
        lambda v: v == "all" or (_is_int(v) and v >= 1),
        "an integer >= 1, or all (task A's whole train split)",
    ),
}


def validate(params: dict[str, Any]) -> None:
    """Raise ForgettingError naming the first bad param in params.yaml and what it should be."""
    for key, (check, expected) in _RULES.items():
        present, value = _get(params, key)
        if present and not check(value):
            raise ForgettingError(f"params.yaml: {key} = {value!r} is invalid; set it to {expected}")
    present, tasks = _get(params, "tasks")
    if present:
        seen: set[int] = set()
        for task in tasks:
            if seen & set(task):
                raise ForgettingError(
                    f"params.yaml: tasks share the digits {sorted(seen & set(task))}; each digit may belong to one "
                    "task only"
                )
            seen |= set(task)
