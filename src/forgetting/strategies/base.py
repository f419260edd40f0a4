"""The strategy interface: training on each new task minimises  CE(theta) + strategy.penalty(theta, x, logits)
over strategy.training_data(the task's train split), where x is the batch ({"image", "task"}) and logits the
scenario's logits for it. After each task but the last, ``strategy.end_task`` consolidates what was learnt.

A strategy is a small object built from the params and what task A left behind (``TaskAState``); it adds to the
loss (``penalty``), to the data (``training_data``), or both. The training loop (``forgetting.training``) is
written once and only asks it for these.

Every repetition (``forgetting.model``: the network holds S of them, stacked) has its own state: weights,
anchors and importances carry the repetition axis first, so that ``penalty`` (the sum of each repetition's own)
and ``end_task`` serve all at once; a strategy that draws at random (replay's buffers) draws from each
repetition's seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.data import Split, load_task
from forgetting.files import load_weight_sets, save_weight_sets
from forgetting.fisher import load_fisher
from forgetting.model import load_model, weights_by_path
from forgetting.scenarios import Scenario

Weights = dict[str, np.ndarray]


@dataclass(frozen=True)
class Memory:
    """What a strategy keeps, per repetition, to train on the last task of a sequence: ``floats`` float32 values
    (weights, importances) and ``examples`` stored training examples (28 x 28 uint8 images and a label each)."""

    what: str
    floats: int = 0
    examples: int = 0

    @property
    def bytes(self) -> int:
        return 4 * self.floats + (28 * 28 + 1) * self.examples


@dataclass(frozen=True)
class TaskAState:
    """What task A (the first task) left behind: its checkpoint, Fisher file, SI path integral and data."""

    scenario: Scenario
    model_path: Path = Path("models/task_a.keras")
    fisher_path: Path = Path("models/fisher.npz")
    path_integral_path: Path = Path("models/task_a_path_integral.npz")
    data_root: Path = Path("data/prepared")

    def model(self) -> keras.Model:
        return load_model(self.model_path, stage="train_a")

    def theta(self) -> Weights:
        return weights_by_path(self.model())

    def fisher(self) -> tuple[Weights, Weights]:
        return load_fisher(self.fisher_path)

    def train_split(self) -> Split:
        return load_task("task_a", "train", self.scenario, self.data_root)


class PathIntegral:
    """Synaptic Intelligence's running path integral over a stretch of training (Zenke et al. 2017):

        w_i = sum over optimiser steps of  -g_i * (theta_i after the step - theta_i before it)

    with g the gradient that the step applied; ``start`` holds theta where the stretch began. ``ContinualModel``
    calls ``add`` inside every compiled training step.
    """

    def __init__(self, network: keras.Model) -> None:
        self.start = weights_by_path(network)
        self.totals = {
            v.path: tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False) for v in network.trainable_variables
        }

    def add(self, variables, gradients, before) -> None:
        for variable, gradient, old in zip(variables, gradients, before, strict=True):
            self.totals[variable.path].assign_add(-gradient * (variable.value - old))

    def result(self) -> Weights:
        return {k: np.array(v.numpy()) for k, v in self.totals.items()}

    def save(self, path: str | Path) -> None:
        save_weight_sets(path, start=self.start, path_integral=self.result())

    @staticmethod
    def load(path: str | Path) -> tuple[Weights, Weights]:
        """(theta where the stretch began, path integral) from ``save``'s file."""
        start, integral = load_weight_sets(path, ("start", "path_integral"), "SI path integral", "train_a")
        return start, integral

    def restart(self, network: keras.Model) -> None:
        """Begin a new stretch at the network's current weights."""
        self.start = weights_by_path(network)
        for total in self.totals.values():
            total.assign(tf.zeros_like(total))


class Strategy:
    """Plain fine-tuning: no penalty, each task's data as it is, nothing consolidated. Subclasses override what
    they change and ``from_params`` (which reads only the strategy's own params)."""

    name: ClassVar[str] = "naive"
    strength_param: ClassVar[str | None] = None  # the param that sets how hard it holds on (for error hints)
    hyperparameters: ClassVar[tuple[str, ...]] = ()  # the params.yaml keys (dotted) it reads
    # The values `forgetting tune` tries, key by key (every combination is a trial; keys not listed keep their
    # params.yaml value). Strengths on log grids.
    search_space: ClassVar[dict[str, list[Any]]] = {}
    path_integral: PathIntegral | None = None  # SI: recorded while training each task

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Strategy:
        return cls()

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        """What it keeps to train on the last of ``num_tasks`` tasks, for a network of ``num_parameters``."""
        return Memory("nothing")

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        return tf.constant(0.0)

    def training_data(self, train: Split) -> Split | Iterable[Split]:
        """What to train on for a task whose train split is ``train``: one split for every repetition, or one
        per repetition (an iterable, all of one length)."""
        return train

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        """Consolidate finished task number ``task`` (1, 2, ...; task 0 is what ``from_params`` read), whose
        train split is ``train``, before training on the next."""


def _tensors(weights: Weights) -> dict[str, tf.Tensor]:
    return {k: tf.constant(v, tf.float32) for k, v in weights.items()}


class QuadraticPenalty(Strategy):
    """penalty = strength / 2 * sum_k sum_i importance_k,i * (theta_i - anchor_k,i)^2  over anchors k (importance
    1 where not given). EWC keeps one anchor per finished task (``add_anchor``); L2 replaces its anchor after each
    task (``anchor_at``); online EWC, SI and MAS also fold the task's importance into a running one
    (``consolidate``)."""

    def __init__(self, strength: float, anchor: Weights, importance: Weights | None = None) -> None:
        self.strength = float(strength)
        self.terms: list[tuple[dict[str, tf.Tensor], dict[str, tf.Tensor] | None]] = []
        self.add_anchor(anchor, importance)

    def add_anchor(self, anchor: Weights, importance: Weights | None = None) -> None:
        self.terms.append((_tensors(anchor), None if importance is None else _tensors(importance)))

    def anchor_at(self, anchor: Weights, importance: Weights | None = None) -> None:
        self.terms = []
        self.add_anchor(anchor, importance)

    def consolidate(self, anchor: Weights, importance: Weights, decay: float = 1.0) -> None:
        """One anchor again, at ``anchor``, with importance  decay * (the current one) + ``importance``."""
        self.anchor_at(anchor, {k: decay * v + importance[k] for k, v in self.running_importance.items()})

    @property
    def running_importance(self) -> Weights:
        """The importance of the (single) anchor, as numpy arrays."""
        ((_, importance),) = self.terms
        return {k: v.numpy() for k, v in importance.items()}

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        total = tf.constant(0.0)
        for anchor, importance in self.terms:
            for variable in model.trainable_variables:
                squared = tf.square(variable.value - anchor[variable.path])
                if importance is not None:
                    squared = importance[variable.path] * squared
                total += tf.reduce_sum(squared)
        return 0.5 * self.strength * total
