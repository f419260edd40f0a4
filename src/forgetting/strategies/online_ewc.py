"""Online EWC (Schwarz et al. 2018): one penalty around the latest weights with a running Fisher,

    penalty = online_ewc.alpha / 2 * sum_i F*_i * (theta_i - theta*_i)^2,   F* <- gamma * F* + F_k after task k

with theta* the weights at the end of the latest task and gamma = online_ewc.gamma (<= 1 forgets old Fishers).
With two tasks it is EWC with alpha = online_ewc.alpha; the two differ from the third task on.
"""

from __future__ import annotations

from typing import Any

import keras

from forgetting.data import Split
from forgetting.model import weights_by_path
from forgetting.strategies.base import TaskAState
from forgetting.strategies.ewc import EWC


class OnlineEWC(EWC):
    name = "online_ewc"

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> OnlineEWC:
        own = params["online_ewc"]
        strategy = cls(own["alpha"], *cls.task_a_fisher(task_a), task_a.scenario, params["fisher"], params["seed"])
        strategy.gamma = float(own["gamma"])
        return strategy

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        (_, running), new = self.terms[0], self.fisher_of(network, task, train)
        self.anchor_at(weights_by_path(network), {k: self.gamma * running[k].numpy() + v for k, v in new.items()})
