"""Online EWC (Schwarz et al. 2018): one penalty around the latest weights with a running Fisher,

    penalty = online_ewc.alpha / 2 * sum_i F*_i * (theta_i - theta*_i)^2,   F* <- gamma * F* + F_k after task k

with theta* the weights at the end of the latest task and gamma = online_ewc.gamma (<= 1 forgets old Fishers).
With two tasks it is EWC with alpha = online_ewc.alpha; the two differ from the third task on.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras

from forgetting.config.params import STRENGTH, Section, number
from forgetting.data.mnist import Split
from forgetting.nn.model import weights_by_path
from forgetting.strategies.base import Memory, TaskAState
from forgetting.strategies.ewc import EWC


class OnlineEWCParams(Section):
    alpha: STRENGTH
    gamma: number("a number in [0, 1] (1: the Fisher sum of EWC)", ge=0, le=1)


class OnlineEWC(EWC):
    name = "online_ewc"
    params_section: ClassVar[dict[str, Any]] = {"online_ewc": OnlineEWCParams}
    strength_param = "online_ewc.alpha"
    hyperparameters = ("online_ewc.alpha", "online_ewc.gamma")
    search_space: ClassVar[dict[str, list[Any]]] = {"online_ewc.alpha": [10.0, 100.0, 1000.0, 1e4, 1e5, 1e6]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("θ* and the running F*", floats=2 * num_parameters)

    def __init__(self, gamma: float, *ewc_args) -> None:
        super().__init__(*ewc_args)
        self.gamma = float(gamma)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> OnlineEWC:
        own = params["online_ewc"]
        fisher_a = cls.task_a_fisher(task_a)
        return cls(own["gamma"], own["alpha"], *fisher_a, task_a.scenario, params["fisher"])

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        self.consolidate(weights_by_path(network), self.fisher_of(network, task, train), decay=self.gamma)
