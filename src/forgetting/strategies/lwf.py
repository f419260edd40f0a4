"""Learning without Forgetting (Li & Hoiem 2016): distil the previous model's answers on the new task's inputs.

    penalty = lwf.weight * T^2 * sum_g mean_x KL( softmax(z_old,g(x) / T) || softmax(z_g(x) / T) )

with z_old the frozen model from the end of the previous task, z the current logits, T = lwf.temperature, and g
the output groups that answer for the finished tasks (``Scenario.seen_columns``: the shared head, each old head,
or the old classes); T^2 keeps the gradient's scale independent of T. It needs no old data, only the old model.

``lwf.loss: vandeven2018`` takes van de Ven & Tolias's code of 2018 instead (GMvandeVen/continual-learning at
e17b714, whose LwF figures Hsu et al.'s Table 2 quotes: encoder.py ``train_a_batch``, utils.py ``loss_fn_kd``):
with k finished tasks, G groups and |g| the outputs of group g,

    penalty = lwf.weight * k / G * T^2 * sum_g 1/|g| * mean_x KL( p_old,g(x) || softmax(z_g(x) / T) )

their ``rnt * CE + (1 - rnt) * mean over replays of KD`` with rnt = 1/(k + 1), times k + 1 (a scale that Adam's
update nearly ignores), their KD a mean over the classes as well as the batch. In the class scenario the group is
every class seen so far, the new task's too, and p_old puts zero probability on the new task's classes (their
zero-padded targets); elsewhere the groups are ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import keras
import numpy as np
import tensorflow as tf
from pydantic import Field

from forgetting.config.params import POSITIVE, STRENGTH, Section
from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.nn.model import frozen_copy, selected
from forgetting.strategies.base import Memory, Strategy, TaskAState, distillation_terms


def _groups(scenario: Scenario, tasks_done: int) -> list[tf.Tensor]:
    return [tf.constant(group, tf.int32) for group in scenario.seen_columns(tasks_done)]


LOSSES = ("kl", "vandeven2018")


class LwFParams(Section):
    temperature: POSITIVE
    weight: STRENGTH
    loss: Annotated[Literal[LOSSES], Field(description="kl (ours) or vandeven2018 (van de Ven & Tolias's code)")]


def padded_distillation(old: tf.Tensor, new: tf.Tensor, old_columns: np.ndarray, columns: np.ndarray) -> tf.Tensor:
    """Each repetition's mean over its batch of KL(p || softmax(new over ``columns``)), (S,), with p the softmax of
    ``old`` over ``old_columns`` (among ``columns``, both sorted) and zero on the rest of ``columns``."""
    target = tf.nn.log_softmax(tf.gather(old, old_columns, axis=-1))
    current = tf.nn.log_softmax(tf.gather(new, columns, axis=-1))
    current = tf.gather(current, np.searchsorted(columns, old_columns), axis=-1)
    return tf.reduce_mean(tf.reduce_sum(tf.exp(target) * (target - current), axis=-1), axis=-1)


class LwF(Strategy):
    name = "lwf"
    params_section: ClassVar[dict[str, Any]] = {"lwf": LwFParams}
    strength_param = "lwf.weight"
    hyperparameters = ("lwf.temperature", "lwf.weight")
    search_space: ClassVar[dict[str, list[Any]]] = {"lwf.weight": [0.1, 0.3, 1.0, 3.0, 10.0]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("the previous network", floats=num_parameters)

    def __init__(
        self, teacher: keras.Model, scenario: Scenario, temperature: float, weight: float, loss: str = "kl"
    ) -> None:
        self.teacher = frozen_copy(teacher)
        self.scenario, self.loss = scenario, loss
        self.tasks_done = 1
        self.groups = _groups(scenario, 1)
        self.temperature = float(temperature)
        self.weight = float(weight)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> LwF:
        own = params["lwf"]
        return cls(task_a.model(), task_a.scenario, own["temperature"], own["weight"], own["loss"])

    def _terms(self, old: tf.Tensor, new: tf.Tensor) -> list[tf.Tensor]:
        """The distillation terms (S,) of ``lwf.loss``, each already scaled by what that loss weighs it by."""
        if self.loss == "kl":
            return distillation_terms(old, new, self.groups)
        k = self.tasks_done
        if self.scenario.kind == "class":  # every class seen so far, the new task's zero in the old model's answer
            old_columns, columns = self.scenario.seen_columns(k)[0], self.scenario.seen_digits(k)
            return [k / len(columns) * padded_distillation(old, new, old_columns, columns)]
        terms = distillation_terms(old, new, self.groups)
        return [k / len(self.groups) / int(g.shape[0]) * each for g, each in zip(self.groups, terms, strict=True)]

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        t = self.temperature
        old = tf.stop_gradient(self.teacher.per_repetition(x["image"])) / t
        # the full logits: in the task scenario ``logits`` holds only the current task's head
        new = (model.per_repetition(x["image"], training=True) if self.scenario.kind == "task" else logits) / t
        per_repetition = np.ndim(self.weight) == 1
        total = tf.constant(0.0)
        for each in self._terms(old, new):  # (S,) each: summed over the groups
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
        self.tasks_done = task + 1
        self.groups = _groups(self.scenario, task + 1)
