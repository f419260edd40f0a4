"""Learning without Forgetting (Li & Hoiem 2016): distil the task-A model's answers on task B's inputs.

    penalty = lwf.weight * T^2 * mean_x KL( softmax(z_A(x) / T) || softmax(z(x) / T) )

with z_A the frozen task-A model's logits, z the current logits and T = lwf.temperature; T^2 keeps the gradient's
scale independent of T. It needs no task-A data, only the task-A model.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from forgetting.strategies.base import Strategy, TaskAState


class LwF(Strategy):
    name = "lwf"

    def __init__(self, teacher: keras.Model, temperature: float, weight: float) -> None:
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.weight = float(weight)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> LwF:
        return cls(task_a.model(), params["lwf"]["temperature"], params["lwf"]["weight"])

    def penalty(self, model: keras.Model, x: tf.Tensor | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        t = self.temperature
        target = tf.nn.softmax(tf.stop_gradient(self.teacher(x, training=False)) / t)
        kl = tf.reduce_sum(target * (tf.math.log(target + 1e-12) - tf.nn.log_softmax(logits / t)), axis=-1)
        return self.weight * t**2 * tf.reduce_mean(kl)
