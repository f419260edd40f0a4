"""Learning without Forgetting (Li & Hoiem 2016): distil the previous model's answers on the new task's inputs.

    penalty = lwf.weight * T^2 * sum_g mean_x KL( softmax(z_old,g(x) / T) || softmax(z_g(x) / T) )

with z_old the frozen model from the end of the previous task, z the current logits, T = lwf.temperature, and g
the output groups that answer for the finished tasks (``Scenario.seen_columns``: the shared head, each old head,
or the old classes); T^2 keeps the gradient's scale independent of T. It needs no old data, only the old model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.config.params import POSITIVE, STRENGTH, Section
from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.nn.model import frozen_copy, selected
from forgetting.strategies.base import Memory, Strategy, TaskAState, distillation_terms


def _groups(scenario: Scenario, tasks_done: int) -> list[tf.Tensor]:
    return [tf.constant(group, tf.int32) for group in scenario.seen_columns(tasks_done)]


class LwFParams(Section):
    temperature: POSITIVE
    weight: STRENGTH


class LwF(Strategy):
    name = "lwf"
    params_section: ClassVar[dict[str, Any]] = {"lwf": LwFParams}
    strength_param = "lwf.weight"
    hyperparameters = ("lwf.temperature", "lwf.weight")
    search_space: ClassVar[dict[str, list[Any]]] = {"lwf.weight": [0.1, 0.3, 1.0, 3.0, 10.0]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("the previous network", floats=num_parameters)

    def __init__(self, teacher: keras.Model, scenario: Scenario, temperature: float, weight: float) -> None:
        self.teacher = frozen_copy(teacher)
        self.scenario = scenario
        self.groups = _groups(scenario, 1)
        self.temperature = float(temperature)
        self.weight = float(weight)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> LwF:
        own = params["lwf"]
        return cls(task_a.model(), task_a.scenario, own["temperature"], own["weight"])

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        t = self.temperature
        old = tf.stop_gradient(self.teacher.per_repetition(x["image"])) / t
        # the full logits: in the task scenario ``logits`` holds only the current task's head
        new = (model.per_repetition(x["image"], training=True) if self.scenario.kind == "task" else logits) / t
        per_repetition = np.ndim(self.weight) == 1
        total = tf.constant(0.0)
        for each in distillation_terms(old, new, self.groups):  # (S,) each: summed over the groups
            total += each if per_repetition else tf.reduce_sum(each)
        if per_repetition:  # each repetition's term scaled by its own weight: the same float32 factor as alone
            return tf.reduce_sum(tf.constant(self.weight * t**2, tf.float32) * total)
        return self.weight * t**2 * total

    def set_strengths(self, strengths: Sequence[float]) -> None:
        self.weight = np.asarray(strengths, np.float64)

    def keep(self, repetitions: Sequence[int]) -> None:
        self.teacher = selected(self.teacher, repetitions)
        self.teacher.trainable = False
        if np.ndim(self.weight) == 1:
            self.weight = self.weight[list(repetitions)]

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        self.teacher = frozen_copy(network)
        self.groups = _groups(self.scenario, task + 1)
