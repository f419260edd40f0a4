"""Elastic weight consolidation (Kirkpatrick et al. 2017):

    penalty = alpha / 2 * sum_i F_i * (theta_i - theta_A,i)^2

with F the diagonal Fisher information of task A at theta_A (``forgetting.fisher``). ``alpha`` is the top-level
param, so that ``dvc exp run -S alpha=50`` sweeps it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgetting.errors import ForgettingError
from forgetting.strategies.base import QuadraticPenalty, TaskAState


class EWC(QuadraticPenalty):
    name = "ewc"

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> EWC:
        theta, fisher = task_a.fisher()
        checkpoint = task_a.theta()
        if theta.keys() != checkpoint.keys() or any(not np.array_equal(theta[k], checkpoint[k]) for k in theta):
            raise ForgettingError(
                f"{task_a.fisher_path} was computed for other weights than {task_a.model_path}: run `dvc repro fisher`"
            )
        return cls(params["alpha"], theta, fisher)
