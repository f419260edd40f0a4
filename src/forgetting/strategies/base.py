"""The strategy interface: fine-tuning on task B minimises  CE_B(theta) + strategy.penalty(theta).

A strategy is a small object built from the params and what task A left behind (``TaskAState``); the training
loop (``forgetting.training``) is written once and only asks it for ``penalty(model)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.fisher import load_fisher
from forgetting.model import load_model, weights_by_path


@dataclass(frozen=True)
class TaskAState:
    """What task A left behind for fine-tuning: its checkpoint and its Fisher file."""

    model_path: Path = Path("models/task_a.keras")
    fisher_path: Path = Path("models/fisher.npz")

    def model(self) -> keras.Model:
        return load_model(self.model_path, stage="train_a")

    def theta(self) -> dict[str, np.ndarray]:
        return weights_by_path(self.model())

    def fisher(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return load_fisher(self.fisher_path)


class Strategy:
    """No penalty: plain fine-tuning. Subclasses add a penalty and say which params they read."""

    name: ClassVar[str] = "naive"

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Strategy:
        return cls()

    def penalty(self, model: keras.Model) -> tf.Tensor:
        return tf.constant(0.0)


class QuadraticPenalty(Strategy):
    """penalty = strength / 2 * sum_i importance_i * (theta_i - anchor_i)^2  (importance 1 where not given)."""

    def __init__(
        self,
        strength: float,
        anchor: dict[str, np.ndarray],
        importance: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.strength = float(strength)
        self.anchor = {k: tf.constant(v, dtype=tf.float32) for k, v in anchor.items()}
        self.importance = None if importance is None else {k: tf.constant(v, tf.float32) for k, v in importance.items()}

    def penalty(self, model: keras.Model) -> tf.Tensor:
        total = tf.constant(0.0)
        for variable in model.trainable_variables:
            squared = tf.square(variable.value - self.anchor[variable.path])
            if self.importance is not None:
                squared = self.importance[variable.path] * squared
            total += tf.reduce_sum(squared)
        return 0.5 * self.strength * total
