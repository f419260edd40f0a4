"""L2 anchoring: penalty = l2.weight / 2 * sum_i (theta_i - theta*_i)^2, every parameter equally important, with
theta* the weights at the end of the previous task."""

from __future__ import annotations

from typing import Any, ClassVar

import keras

from forgetting.config.params import STRENGTH, Section
from forgetting.data.mnist import Split
from forgetting.nn.model import weights_by_path
from forgetting.strategies.base import Memory, QuadraticPenalty, TaskAState


class L2Params(Section):
    weight: STRENGTH


class L2(QuadraticPenalty):
    name = "l2"
    params_section: ClassVar[dict[str, Any]] = {"l2": L2Params}
    strength_param = "l2.weight"
    hyperparameters = ("l2.weight",)
    search_space: ClassVar[dict[str, list[Any]]] = {"l2.weight": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("θ*", floats=num_parameters)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> L2:
        return cls(params["l2"]["weight"], task_a.theta())

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        self.anchor_at(weights_by_path(network))
