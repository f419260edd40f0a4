"""Continual-learning strategies, one module each: ``<name>.py`` defines the ``Strategy`` subclass whose ``name`` is
``<name>`` (its math, params, search space, memory cost and hooks; ``base.py`` has the interface).

Which strategies run, and in which order the report shows them, is the list in dvc.yaml (``vars: strategies``):
``listed()`` reads it, and ``finetune@<name>`` / ``evaluate@<name>`` iterate over it. Nothing else names them:
adding a strategy is its module, its section in params.yaml and one line in that list.

A strategy's module is imported only when it is asked for, so that ``finetune@ewc`` runs (and depends on)
``ewc.py`` and not every other strategy's module: dvc.yaml lists exactly the modules each stage imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from forgetting.config import params as params_file
from forgetting.config.pipeline import PIPELINE, available, listed
from forgetting.errors import ForgettingError
from forgetting.strategies.base import Memory, QuadraticPenalty, Strategy, TaskAState

__all__ = [
    "PIPELINE",
    "Memory",
    "QuadraticPenalty",
    "Strategy",
    "TaskAState",
    "available",
    "build_strategy",
    "check_own_params",
    "listed",
    "strategy_class",
    "validate_params",
]


def strategy_class(name: str) -> type[Strategy]:
    """The strategy ``name``: the ``Strategy`` subclass of module ``<name>.py`` whose ``name`` it is."""
    if name not in available() and name in listed():
        raise ForgettingError(
            f"dvc.yaml's strategy list (vars: strategies) names {name!r}, but src/forgetting/strategies/{name}.py "
            "does not exist: add the module, or remove the entry"
        )
    if name not in available():
        raise ForgettingError(f"unknown strategy {name!r}: use one of {', '.join(listed())}")
    module = import_module(f"{__name__}.{name}")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Strategy) and value.__module__ == module.__name__
    ]
    matching = [cls for cls in found if cls.name == name]
    if len(matching) != 1:
        raise ForgettingError(
            f"{module.__file__} must define one Strategy subclass with name = {name!r} (found "
            f"{', '.join(f'{cls.__name__} ({cls.name!r})' for cls in found) or 'none'})"
        )
    return matching[0]


def build_strategy(name: str, params: dict[str, Any], task_a: TaskAState) -> Strategy:
    """The strategy ``name``, built from its params (its own section checked against its types first) and task A's
    state."""
    check_own_params(name, params)
    return strategy_class(name).from_params(params, task_a)


def check_own_params(name: str, params: dict[str, Any]) -> None:
    """Strategy ``name``'s own keys of ``params`` against the types its module declares (``params_section``)."""
    params_file.validate_section(params, strategy_class(name).params_section)


def check_setting(name: str, params: dict[str, Any]) -> None:
    """``Strategy.check_setting`` of strategy ``name``, its one line prefixed with params.yaml's name."""
    try:
        strategy_class(name).check_setting(params)
    except ForgettingError as exc:
        raise ForgettingError(f"{params_file.PARAMS_FILE}: {exc}") from None


def validate_params(params: dict[str, Any], strategies: list[str] | None = None) -> params_file.Params:
    """The whole of params.yaml checked, every strategy's keys against its module's types (which imports every
    strategy's module: ``check_params`` and the tuner; the other stages check the common sections and then their own
    strategy's), then the setting of each of ``strategies`` (default: the listed ones, those ``dvc repro`` runs)."""
    valid = params_file.validate(
        params, {k: v for name in available() for k, v in strategy_class(name).params_section.items()}
    )
    for name in listed() if strategies is None else strategies:
        check_setting(name, params)
    return valid


def __getattr__(attribute: str) -> type[Strategy]:
    """``from forgetting.strategies import EWC``: the class of that name, from the first strategy module (in file
    name order) that defines it; the modules before it are imported too."""
    for name in available():
        module = import_module(f"{__name__}.{name}")
        if isinstance(getattr(module, attribute, None), type):
            return getattr(module, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
