"""The strategy interface: fine-tuning on task B minimises  CE(theta) + strategy.penalty(theta, x, logits)  over
strategy.training_data(task B's train split), where x is the batch and logits the model's output on it.

A strategy is a small object built from the params and what task A left behind (``TaskAState``); it adds to the
loss (``penalty``), to the data (``training_data``), or both. The training loop (``forgetting.training``) is
written once and only asks it for these two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.data import Split, load_split
from forgetting.fisher import load_fisher
from forgetting.model import load_model, weights_by_path


@dataclass(frozen=True)
class TaskAState:
    """What task A left behind for fine-tuning: its checkpoint, its Fisher file and its prepared data."""

    model_path: Path = Path("models/task_a.keras")
    fisher_path: Path = Path("models/fisher.npz")
    data_dir: Path = Path("data/prepared/task_a")

    def model(self) -> keras.Model:
        return load_model(self.model_path, stage="train_a")

    def theta(self) -> dict[str, np.ndarray]:
        return weights_by_path(self.model())

    def fisher(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return load_fisher(self.fisher_path)

    def train_split(self) -> Split:
        return load_split(self.data_dir, "train")


class Strategy:
    """Plain fine-tuning: no penalty, task B's data as it is. Subclasses override what they change and
    ``from_params`` (which reads only the strategy's own params)."""

    name: ClassVar[str] = "naive"

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Strategy:
        return cls()

    def penalty(self, model: keras.Model, x: tf.Tensor | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        return tf.constant(0.0)

    def training_data(self, train: Split) -> Split:
        return train


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

    def penalty(self, model: keras.Model, x: tf.Tensor | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        total = tf.constant(0.0)
        for variable in model.trainable_variables:
            squared = tf.square(variable.value - self.anchor[variable.path])
            if self.importance is not None:
                squared = self.importance[variable.path] * squared
            total += tf.reduce_sum(squared)
        return 0.5 * self.strength * total
