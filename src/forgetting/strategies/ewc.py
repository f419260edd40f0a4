"""Elastic weight consolidation (Kirkpatrick et al. 2017): one penalty per finished task k,

    penalty = alpha / 2 * sum_k sum_i F_k,i * (theta_i - theta_k,i)^2

with theta_k the weights at the end of task k and F_k the diagonal Fisher of task k there (``forgetting.nn.fisher``;
task A's comes from the ``fisher`` stage, later tasks' are computed as they finish, with the same settings).
``alpha`` is the top-level param, so that ``dvc exp run -S alpha=50`` sweeps it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from forgetting.config.params import number
from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn.fisher import task_fisher
from forgetting.nn.model import StackedMLP, weights_by_path
from forgetting.strategies.base import Memory, QuadraticPenalty, TaskAState, Weights


class EWC(QuadraticPenalty):
    name = "ewc"
    params_section: ClassVar[dict[str, Any]] = {
        "alpha": number("a number >= 0 (0 turns EWC into naive fine-tuning)", ge=0)
    }
    strength_param = "alpha"
    hyperparameters = ("alpha",)
    search_space: ClassVar[dict[str, list[Any]]] = {"alpha": [10.0, 100.0, 1000.0, 1e4, 1e5, 1e6]}

    task_a_needs = ("fisher",)

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("θ and F of each finished task", floats=2 * num_parameters * (num_tasks - 1))

    def __init__(self, alpha: float, theta: Weights, fisher: Weights, scenario: Scenario, settings: dict) -> None:
        super().__init__(alpha, theta, fisher)
        self.scenario, self.settings = scenario, settings

    @classmethod
    def task_a_fisher(cls, task_a: TaskAState) -> tuple[Weights, Weights]:
        """(theta_A, F_A) from the ``fisher`` stage, checked against the task-A checkpoint."""
        theta, fisher = task_a.fisher()
        checkpoint = task_a.theta()
        if theta.keys() != checkpoint.keys() or any(not np.array_equal(theta[k], checkpoint[k]) for k in theta):
            raise ForgettingError(
                f"{task_a.fisher_path} was computed for other weights than {task_a.model_path}: run `dvc repro fisher`"
            )
        return theta, fisher

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> EWC:
        return cls(params["alpha"], *cls.task_a_fisher(task_a), task_a.scenario, params["fisher"])

    def fisher_of(self, network: StackedMLP, task: int, train: Split) -> Weights:
        """Task number ``task``'s Fisher for every repetition (repetition s draws from its seed + ``task``)."""
        seeds = [seed + task for seed in network.seeds]
        return task_fisher(network, train, self.scenario.columns(task), self.settings, seeds)

    def end_task(self, network: StackedMLP, task: int, train: Split) -> None:
        self.add_anchor(weights_by_path(network), self.fisher_of(network, task, train))
