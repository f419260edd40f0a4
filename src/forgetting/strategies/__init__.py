"""Continual-learning strategies. Adding one: a module with a ``Strategy`` subclass, plus one line below."""

from __future__ import annotations

from typing import Any

from forgetting.errors import ForgettingError
from forgetting.strategies.base import QuadraticPenalty, Strategy, TaskAState
from forgetting.strategies.ewc import EWC
from forgetting.strategies.l2 import L2
from forgetting.strategies.lwf import LwF
from forgetting.strategies.mas import MAS
from forgetting.strategies.naive import Naive
from forgetting.strategies.online_ewc import OnlineEWC
from forgetting.strategies.replay import Replay
from forgetting.strategies.si import SI

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Naive, L2, EWC, OnlineEWC, SI, MAS, LwF, Replay)}

__all__ = [
    "EWC",
    "L2",
    "MAS",
    "SI",
    "STRATEGIES",
    "LwF",
    "Naive",
    "OnlineEWC",
    "QuadraticPenalty",
    "Replay",
    "Strategy",
    "TaskAState",
    "build_strategy",
]


def build_strategy(name: str, params: dict[str, Any], task_a: TaskAState) -> Strategy:
    """The registered strategy ``name``, built from its params and task A's state."""
    if name not in STRATEGIES:
        raise ForgettingError(
            f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)} "
            "(the finetune foreach in dvc.yaml lists the strategies to run)"
        )
    return STRATEGIES[name].from_params(params, task_a)
