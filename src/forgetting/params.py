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
    "alpha": (lambda v: _is_number(v) and v >= 0, "a number >= 0 (0 turns EWC into naive fine-tuning)"),
    "l2.weight": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "lwf.temperature": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "lwf.weight": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "replay.buffer_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1 (task-A examples kept)"),
    "data.manual_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    "data.tfds_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    "data.task_a_digits": (_digits, "a non-empty list of distinct digits 0-9"),
    "data.task_b_digits": (_digits, "a non-empty list of distinct digits 0-9"),
    "data.validation_fraction": (lambda v: _is_number(v) and 0 < v < 1, "a number between 0 and 1"),
    "model.hidden_units": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "train.learning_rate": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "train.batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "train.epochs_a": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "train.epochs_joint": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "finetune.epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
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
    present_a, digits_a = _get(params, "data.task_a_digits")
    present_b, digits_b = _get(params, "data.task_b_digits")
    if present_a and present_b:
        overlap = sorted(set(digits_a) & set(digits_b))
        if overlap:
            raise ForgettingError(
                f"params.yaml: data.task_a_digits and data.task_b_digits share {overlap}; "
                "each digit may belong to one task only"
            )
