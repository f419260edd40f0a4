"""Continual-learning strategies. Adding one: a module with a ``Strategy`` subclass, plus one line below.

The registry imports a strategy's module only when it is asked for, so that ``finetune@ewc`` runs (and depends
on) ``ewc.py`` and not every other strategy's module: dvc.yaml lists exactly the modules each stage imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from forgetting.errors import ForgettingError
from forgetting.strategies.base import Memory, QuadraticPenalty, Strategy, TaskAState

# name (the module in this package, the param section, the finetune@<name> stage) -> its Strategy subclass
STRATEGIES: dict[str, str] = {
    "naive": "Naive",
    "l2": "L2",
    "ewc": "EWC",
    "online_ewc": "OnlineEWC",
    "si": "SI",
    "mas": "MAS",
    "lwf": "LwF",
    "replay": "Replay",
}

__all__ = ["STRATEGIES", "Memory", "QuadraticPenalty", "Strategy", "TaskAState", "build_strategy", "strategy_class"]


def strategy_class(name: str) -> type[Strategy]:
    """The registered strategy class ``name`` (imports its module)."""
    if name not in STRATEGIES:
        raise ForgettingError(
            f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)} "
            "(the finetune foreach in dvc.yaml lists the strategies to run)"
        )
    return getattr(import_module(f"{__name__}.{name}"), STRATEGIES[name])


def build_strategy(name: str, params: dict[str, Any], task_a: TaskAState) -> Strategy:
    """The registered strategy ``name``, built from its params and task A's state."""
    return strategy_class(name).from_params(params, task_a)


def __getattr__(attribute: str) -> type[Strategy]:
    """``from forgetting.strategies import EWC`` still works, importing only that strategy's module."""
    for name, class_name in STRATEGIES.items():
        if class_name == attribute:
            return strategy_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
