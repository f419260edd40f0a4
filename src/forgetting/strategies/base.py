"""The strategy interface: the hooks at which a continual-learning method acts. The training loop
(``forgetting.training.loop``) is written once, knows no method by name, and calls them in this order:

- ``retrain_task_a()``: once, before the later tasks: where a strategy trains the task-A network on task A again,
  with its own loss and layers (RtF's classifier and feedback together), that training's length and learning rate;
  the loop then trains it as it trains any task (the hooks below; a new Adam, which the later tasks go on from
  where they go on from task A's) and calls ``end_task(network, 0, train)``;
- ``training_data(train)``: what to train on for a task (replay mixes in its buffer), and
  ``steps_per_epoch(train, batch_size)``: how many optimiser steps an epoch of it takes (default: a pass over it);
- each step, for a batch x with the scenario's logits z:
  loss = CE(z) + ``penalty(network, x, z)`` (EWC, L2, SI, MAS: on the weights; LwF: on the batch's outputs)
  + ``memory_loss(network, step)`` (an extra loss on a batch the strategy draws from its own memory, with stored
  targets: DER++'s logits);
- ``trained_layers()``: layers of the strategy's own that train with the network, on the same loss and by the same
  optimiser step (replay-through-feedback's latent heads and decoder, which read the network's hidden layers);
- ``adjust_gradients(network, variables, gradients, step)``: between the gradients and the optimiser step, with a
  memory batch at hand (A-GEM's projection);
- ``see_batch(network, x, labels, step)``: each training batch, before the optimiser step, with the network as it
  was when the batch's loss was computed (DER++ stores the batch in its reservoir with the logits it has now);
- ``after_step(variables, gradients, before)``: after each optimiser step (SI's path integral);
- ``predict(network, images)``: the prediction rule that the per-epoch logs and the tuner's scores use (default: the
  argmax of the scenario's logits). The evaluate stage loads the checkpoint alone, so a strategy with a rule of its
  own (iCaRL's nearest mean of exemplars) keeps the rule in its network, as a head of ``forgetting.nn.model``;
- ``end_task(network, task, train)``: after each task but the last, what it keeps of the finished task (anchors,
  importances, a teacher, a buffer, or an auxiliary model such as a generator, trained here).
- ``end_training(network, task, train)``: after the last task, the network to save (iCaRL's, with the
  nearest-mean head that its prediction rule needs).

What a strategy reads of task A is declared by ``task_a_needs`` (files of ``TaskAState``: the ``fisher`` stage's
Fisher, the path integral that ``train_a`` records), and each stage and the tuner take it from there. A hook that a
strategy does not override costs nothing: the loop leaves it out of the compiled step.

Every repetition (``forgetting.nn.model``: the network holds S of them, stacked) has its own state: weights,
anchors and importances carry the repetition axis first, so that ``penalty`` (the sum of each repetition's own)
and ``end_task`` serve all at once; a strategy that draws at random (replay's buffers) draws from each
repetition's seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.data.mnist import Split, load_task
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn import adam
from forgetting.nn.fisher import load_fisher
from forgetting.nn.model import load_model, tiled, weights_by_path
from forgetting.nn.path_integral import PathIntegral

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
    """What task A (the first task) left behind: its checkpoint, the ``fisher`` stage's Fisher, the path integral
    of its training and Adam's state at its end (``train_a``), and the prepared data. ``files`` names the products
    a strategy may need (``Strategy.task_a_needs``)."""

    scenario: Scenario
    model_path: Path = Path("models/task_a.keras")
    fisher_path: Path = Path("models/fisher.npz")
    path_integral_path: Path = Path("models/task_a_path_integral.npz")
    data_root: Path = Path("data/prepared")
    optimizer_path: Path = Path("models/task_a_optimizer.npz")  # Adam's state at its end (forgetting.nn.adam)
    tiles: int = 1  # its repetitions repeated this many times (``tiled``)

    def model(self) -> keras.Model:
        network = load_model(self.model_path, stage="train_a")
        return network if self.tiles == 1 else tiled(network, self.tiles)

    def theta(self) -> Weights:
        return weights_by_path(self.model())

    def fisher(self) -> tuple[Weights, Weights]:
        return tuple(self._tile(weights) for weights in load_fisher(self.fisher_path))

    def path_integral(self) -> tuple[Weights, Weights]:
        """(theta where task A's training began, its path integral) from ``train_a``."""
        return tuple(self._tile(weights) for weights in PathIntegral.load(self.path_integral_path))

    def optimizer_state(self) -> adam.State:
        """Adam's step count and moments where task A's training ended (``finetune.carry_optimizer``)."""
        saved = adam.load(self.optimizer_path)
        return {k: v if k == "iterations" else np.concatenate([v] * self.tiles) for k, v in saved.items()}

    def tiled(self, times: int) -> TaskAState:
        """The same state with every repetition repeated ``times`` times (repetition v * S + s a copy of s, as
        ``forgetting.nn.model.tiled`` does): a grid of ``times`` strengths trained at once."""
        return replace(self, tiles=times)

    def _tile(self, weights: Weights) -> Weights:
        return weights if self.tiles == 1 else {k: np.concatenate([v] * self.tiles) for k, v in weights.items()}

    def train_split(self) -> Split:
        return load_task("task_a", "train", self.scenario, self.data_root)

    @classmethod
    def files(cls) -> dict[str, Path]:
        """Task A's products by name (``model``, ``fisher``, ``path_integral``), as paths in the project."""
        fields = [name for name in cls.__dataclass_fields__ if name.endswith("_path")]
        return {name.removesuffix("_path"): getattr(cls, name) for name in fields}

    def rooted(self, root: Path) -> TaskAState:
        """The same products and data under another project folder ``root`` (a tuning trial's copy)."""
        fields = [f"{name}_path" for name in self.files()] + ["data_root"]
        return replace(self, **{field: root / getattr(self, field) for field in fields})


class Strategy:
    """The hook points, each doing nothing: no penalty, each task's data as it is, nothing consolidated. Plain
    training (task A, joint) runs with it; a strategy is a subclass in its own module (``naive.py`` overrides
    nothing) that overrides the hooks it acts at and ``from_params`` (which reads only the strategy's own params)."""

    name: ClassVar[str] = "plain"  # a subclass's is its module's name
    strength_param: ClassVar[str | None] = None  # the param that sets how hard it holds on (for error hints)
    hyperparameters: ClassVar[tuple[str, ...]] = ()  # the params.yaml keys (dotted) it reads
    # The values `forgetting tune` tries, key by key (every combination is a trial; keys not listed keep their
    # params.yaml value). Strengths on log grids.
    search_space: ClassVar[dict[str, list[Any]]] = {}
    # Its own params.yaml keys with their types (a ``forgetting.config.params.Section`` for a section, ``number(...)``
    # for a value): dvc.yaml's list entry names the same keys, check_params and its stage check them.
    params_section: ClassVar[dict[str, Any]] = {}
    # What it reads of task A beyond the checkpoint and the data: names of ``TaskAState.files()``.
    task_a_needs: ClassVar[tuple[str, ...]] = ()
    # Where its optimiser steps per task differ from the other strategies' (a pass over the task's data an epoch),
    # how: a phrase that the report prints, so that no figure hides the compute it took.
    steps: ClassVar[str | None] = None
    # The strategy whose tuned values it runs with (its own hyperparameters are that one's), if not its own.
    tuned_as: ClassVar[str | None] = None

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Strategy:
        return cls()

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        """What it keeps to train on the last of ``num_tasks`` tasks, for a network of ``num_parameters``."""
        return Memory("nothing")

    def set_strengths(self, strengths: Sequence[float]) -> None:
        """Give repetition r the strength ``strengths[r]`` (the value of ``strength_param``): a grid's values on the
        stacked axis, each repetition (value v, seed s) trained as that value and seed alone. A strategy whose
        strength is one scalar factor of its penalty overrides this; the others cannot."""
        raise ForgettingError(f"{self.name} has no strength to set per repetition")

    def keep(self, repetitions: Sequence[int]) -> None:
        """Keep only the repetitions ``repetitions`` (indices, in order) of every state that has one per repetition:
        the tuner stops a grid's hopeless values this way (successive halving), between epochs, and the kept ones
        train on as they would have. A strategy that sets strengths per repetition overrides this."""
        raise ForgettingError(f"{self.name} cannot drop repetitions")

    @classmethod
    def check_setting(cls, params: dict[str, Any]) -> None:
        """Raise ``ForgettingError`` (one line: the conflict and the param to change) where its params and the
        common ones make a run that would fail only after training had begun (a buffer larger than the data);
        ``check_params`` calls it before any stage runs. Nothing by default."""

    @classmethod
    def acts_at(cls, hook: str) -> bool:
        """Whether this strategy overrides the hook ``hook`` (the loop compiles only the hooks a strategy uses)."""
        defined = next(vars(c)[hook] for c in cls.__mro__ if hook in vars(c))
        return defined is not vars(Strategy)[hook]

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        """Added to the loss: the sum over repetitions of each one's own term (x and logits carry the repetition
        axis first, or x is shared)."""
        return tf.constant(0.0)

    def memory_loss(self, network: keras.Model, step: tf.Tensor) -> tf.Tensor:
        """Added to the loss on every step: a loss on a batch the strategy draws from its own memory (``step``,
        the optimiser's step count, seeds the draw), summed over repetitions."""
        return tf.constant(0.0)

    def trained_layers(self) -> list[keras.layers.Layer]:
        """Layers of its own that the optimiser trains with the network's (their variables after the network's),
        on the loss that ``penalty`` and ``memory_loss`` add to; none by default."""
        return []

    def adjust_gradients(
        self, network: keras.Model, variables: list, gradients: list[tf.Tensor], step: tf.Tensor
    ) -> list[tf.Tensor]:
        """The gradients that the optimiser applies, given this step's (each carries the repetition axis first,
        so each repetition's is its own)."""
        return gradients

    def see_batch(self, network: keras.Model, x: dict, labels: tf.Tensor, step: tf.Tensor) -> None:
        """Called with each training batch (``x``: images and task indices, and ``labels``, one per repetition and
        example) before the optimiser step, the network still as it computed the batch's loss."""

    def after_step(self, variables: list, gradients: list[tf.Tensor], before: list[tf.Tensor]) -> None:
        """Called after each optimiser step with the gradients it applied and the variables' values before it."""

    @classmethod
    def predict(cls, network: keras.Model, images: tf.Tensor) -> tf.Tensor:
        """The prediction rule: per-repetition scores (S, batch, outputs) whose argmax over the scenario's outputs
        is the answer. The evaluate stage scores with the checkpoint's own rule (``StackedMLP.scores``): a rule of a
        strategy's own must live in its network (``end_training``) and give the same answers there."""
        return network.scores(images)

    def retrain_task_a(self) -> dict[str, Any] | None:
        """Where the strategy trains the task-A network on task A again before the later tasks (its loss, its own
        layers): that training's ``epochs``, ``iterations`` (None: the epochs, each a pass over task A) and
        ``learning_rate``. None (the default): the later tasks start from task A's checkpoint as it is."""
        return None

    def training_data(self, train: Split) -> Split | Iterable[Split]:
        """What to train on for a task whose train split is ``train``: one split for every repetition, or one
        per repetition (an iterable, all of one length), its images as floats or as their uint8 pixels
        (``forgetting.data.mnist.as_uint8``, which keeps large made-up sets, such as replay's, small)."""
        return train

    def steps_per_epoch(self, train: Split, batch_size: int) -> int | None:
        """The optimiser steps of one epoch on a task whose train split is ``train``, each a full batch drawn from
        ``training_data`` (``forgetting.data.training_set.TrainingSet``'s iterations); None (the default): a pass
        over ``training_data``, its last batch partial. Where finetune.iterations is set, that count wins."""
        return None

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        """Consolidate finished task number ``task`` (1, 2, ...; task 0 is what ``from_params`` read), whose
        train split is ``train``, before training on the next."""

    def end_training(self, network: keras.Model, task: int, train: Split) -> keras.Model:
        """After the last task (number ``task``, train split ``train``): the network that the stage saves and
        measures, ``network`` itself unless the strategy puts its prediction rule in it."""
        return network


def stored_gradients(
    network: keras.Model, variables: list, scenario: Scenario, images: tf.Tensor, labels: tf.Tensor, tasks, trained: int
) -> list[tf.Tensor]:
    """The gradients of each repetition's mean loss on its stored examples (``images`` (S, n, 28, 28, 1) uint8 pixels,
    ``labels`` and ``tasks`` (S, n) or a task index for all), with the loss the loop trains task ``trained`` with: each
    example's own head in the task scenario, the outputs seen so far where ``class_outputs: seen`` masks the others.
    Summed over the repetitions, so that each repetition's slice of a gradient is its own (A-GEM's g_ref, GEM's g_k)."""
    with tf.GradientTape() as tape:
        logits = network.per_repetition(tf.cast(images, tf.float32) / 255.0, training=True)
        logits = scenario.restrict(scenario.select(logits, tasks), trained)
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_sum(tf.reduce_mean(cross_entropy, axis=-1))
    return tape.gradient(loss, variables)


def distillation_terms(old: tf.Tensor, new: tf.Tensor, groups: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """For each output group g (columns), each repetition's mean over its batch of KL(softmax(old_g) ||
    softmax(new_g)), (S,): the distillation of the logits ``old`` into ``new`` (S, batch, outputs; each already
    divided by the temperature)."""
    terms = []
    for group in groups:
        target = tf.nn.log_softmax(tf.gather(old, group, axis=-1))
        current = tf.nn.log_softmax(tf.gather(new, group, axis=-1))
        terms.append(tf.reduce_mean(tf.reduce_sum(tf.exp(target) * (target - current), axis=-1), axis=-1))
    return terms


def _tensors(weights: Weights) -> dict[str, tf.Tensor]:
    return {k: tf.constant(v, tf.float32) for k, v in weights.items()}


def _kept(tensors: dict[str, tf.Tensor], index: list[int]) -> dict[str, tf.Tensor]:
    return {k: tf.gather(v, index) for k, v in tensors.items()}


class QuadraticPenalty(Strategy):
    """penalty = strength / 2 * sum_k sum_i importance_k,i * (theta_i - anchor_k,i)^2  over anchors k (importance
    1 where not given). EWC keeps one anchor per finished task (``add_anchor``); L2 replaces its anchor after each
    task (``anchor_at``); online EWC, SI and MAS also fold the task's importance into a running one
    (``consolidate``)."""

    def __init__(self, strength: float, anchor: Weights, importance: Weights | None = None) -> None:
        self.strength: float | np.ndarray = float(strength)  # or one per repetition (``set_strengths``)
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

    def set_strengths(self, strengths: Sequence[float]) -> None:
        self.strength = np.asarray(strengths, np.float64)

    def keep(self, repetitions: Sequence[int]) -> None:
        index = list(repetitions)
        self.terms = [
            (_kept(anchor, index), None if importance is None else _kept(importance, index))
            for anchor, importance in self.terms
        ]
        if np.ndim(self.strength) == 1:
            self.strength = self.strength[index]

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        per_repetition = np.ndim(self.strength) == 1
        total = tf.constant(0.0)
        for anchor, importance in self.terms:
            for variable in model.trainable_variables:
                squared = tf.square(variable.value - anchor[variable.path])
                if importance is not None:
                    squared = importance[variable.path] * squared
                # each repetition's sum (the leading axis), or all of them when they share the strength
                total += tf.reduce_sum(squared, axis=list(range(1, len(squared.shape))) if per_repetition else None)
        if per_repetition:  # each repetition's term scaled by its own strength: the same float32 factor as alone
            return tf.reduce_sum(tf.constant(0.5 * self.strength, tf.float32) * total)
        return 0.5 * self.strength * total
