"""L2 anchoring: penalty = l2.weight / 2 * sum_i (theta_i - theta_A,i)^2, every parameter equally important."""

from __future__ import annotations

from typing import Any

from forgetting.strategies.base import QuadraticPenalty, TaskAState


class L2(QuadraticPenalty):
    name = "l2"

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> L2:
        return cls(params["l2"]["weight"], task_a.theta())
