"""Synaptic Intelligence (Zenke et al. 2017): importance from the path integral of each task's training,

    Omega_i = sum over finished tasks k of  max(0, w_k,i) / ((theta_k,i - theta_k-1,i)^2 + xi)
    penalty = si.c / 2 * sum_i Omega_i * (theta_i - theta*_i)^2

where w_k,i = sum over task k's optimiser steps of -g_i * delta theta_i (``PathIntegral``, recorded through the
``after_step`` hook; task A's is recorded by the ``train_a`` stage), theta_k-1 and theta_k the weights where task k
started and ended, and theta* the latest task's. A negative path integral (a parameter whose steps went uphill on
balance) counts as no importance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np

from forgetting.config.params import STRENGTH, Section, number
from forgetting.data.mnist import Split
from forgetting.errors import ForgettingError
from forgetting.files import cheapest_fix
from forgetting.nn.model import weights_by_path
from forgetting.nn.path_integral import PathIntegral
from forgetting.strategies.base import Memory, QuadraticPenalty, TaskAState, Weights


def importance(integral: Weights, start: Weights, end: Weights, xi: float) -> Weights:
    """max(0, w) / ((end - start)^2 + xi) per parameter."""
    return {k: np.maximum(w, 0.0) / (np.square(end[k] - start[k]) + xi) for k, w in integral.items()}


class SIParams(Section):
    c: STRENGTH
    xi: number("a number > 0 (it keeps the importance finite)", gt=0)


class SI(QuadraticPenalty):
    name = "si"
    params_section: ClassVar[dict[str, Any]] = {"si": SIParams}
    strength_param = "si.c"
    hyperparameters = ("si.c", "si.xi")
    search_space: ClassVar[dict[str, list[Any]]] = {"si.c": [0.1, 1.0, 10.0, 100.0, 1000.0]}
    task_a_needs = ("path_integral",)

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("θ*, Ω, and the path integral and start θ while training", floats=4 * num_parameters)

    def __init__(self, c: float, xi: float, theta: Weights, omega: Weights, network: keras.Model) -> None:
        super().__init__(c, theta, omega)
        self.xi = float(xi)
        self.path_integral = PathIntegral(network)

    @property
    def omega(self) -> Weights:
        return self.running_importance

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> SI:
        network = task_a.model()
        theta = weights_by_path(network)
        start, integral = task_a.path_integral()
        if start.keys() != theta.keys() or any(start[k].shape != v.shape for k, v in theta.items()):
            raise ForgettingError(
                f"{task_a.path_integral_path} was recorded for another network than {task_a.model_path}: "
                + cheapest_fix(task_a.path_integral_path, "train_a")
            )
        own = params["si"]
        return cls(own["c"], own["xi"], theta, importance(integral, start, theta, own["xi"]), network)

    def after_step(self, variables, gradients, before) -> None:
        self.path_integral.after_step(variables, gradients, before)

    def keep(self, repetitions: Sequence[int]) -> None:
        super().keep(repetitions)
        self.path_integral.keep(repetitions)

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        theta = weights_by_path(network)
        self.consolidate(theta, importance(self.path_integral.result(), self.path_integral.start, theta, self.xi))
        self.path_integral.restart(network)
