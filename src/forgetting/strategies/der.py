"""Dark experience replay, DER++ (Buzzega et al. 2020, "Dark Experience for General Continual Learning: a Strong,
Simple Baseline").

A buffer of ``der.buffer_size`` = N training examples, each kept with its label and the logits z' the network gave
it when it was stored, filled by reservoir sampling over every training example seen: the n-th example seen takes
slot n while n < N, else slot j (j uniform in 0..n) where j < N, so that each of the n seen so far is in the buffer
with probability N / n. Each step adds to the loss, on two batches of ``der.memory_batch`` stored examples drawn
independently (x', z') and (x'', y''),

    der.alpha * mean over the batch and the outputs of (z(x') - z')^2  +  der.beta * CE(z(x''), y'')

where CE is the scenario's loss, as the new task's is (the stored example's own head in the task scenario; the
outputs seen so far under ``class_outputs: seen``), and z' spans every output. Then the step's batch enters the
reservoir with the logits it had before the step (``see_batch``); examples of one batch that draw the same slot are
stored in order, so the last one stays.

Task A is trained by the ``train_a`` stage, under no strategy: the buffer starts as a uniform draw of N of task A's
training examples (the state a reservoir over task A's examples ends in) with the task-A model's logits, where the
paper's buffer would hold the logits each had when it was seen during task A. Each repetition has its own buffer,
draws and reservoir decisions, all from its seed (stateless: the same whatever else is stacked). The tuner trains a
grid's (alpha, beta) values at once, one pair per repetition (``set_strengths``), and stops the hopeless ones
(``keep``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.config.params import STRENGTH, Section, integer, repetition_seeds
from forgetting.data.mnist import Split, as_uint8, train_examples
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.strategies.base import Memory, Strategy, TaskAState


class DERParams(Section):
    buffer_size: integer("an integer >= 1 (examples kept, with their logits)", ge=1)
    memory_batch: integer("an integer >= 1 (stored examples per step, in each of the two terms)", ge=1)
    alpha: STRENGTH
    beta: STRENGTH


def reservoir_slots(seen: tf.Tensor, batch: tf.Tensor, size: int, seed: int) -> tf.Tensor:
    """The slot of each of the next ``batch`` examples of a stream of which ``seen`` came before, in a reservoir of
    ``size`` (``size``: not kept), drawn from (``seed``, ``seen``); where two take one slot, the earlier is not kept.
    """
    order = tf.range(batch, dtype=tf.int64)
    n = seen + order
    uniform = tf.random.stateless_uniform(
        tf.reshape(batch, (1,)), tf.stack([tf.constant(seed, tf.int64), seen]), dtype=tf.float64
    )
    j = tf.cast(tf.floor(uniform * tf.cast(n + 1, tf.float64)), tf.int64)
    slot = tf.where(n < size, n, tf.where(j < size, j, tf.constant(size, tf.int64)))
    taken_later = tf.reduce_any((slot[:, None] == slot[None, :]) & (order[:, None] < order[None, :]), axis=1)
    return tf.where(taken_later, tf.constant(size, tf.int64), slot)


def _factor(value: float | np.ndarray) -> float | tf.Tensor:
    """A coefficient as the loss multiplies by it: one float as it is, or one per repetition as float32 (S,)."""
    return value if np.ndim(value) == 0 else tf.constant(value, tf.float32)


class DER(Strategy):
    """DER++: a reservoir of (example, label, logits) per repetition, replayed through two loss terms."""

    name = "der"
    params_section: ClassVar[dict[str, Any]] = {"der": DERParams}
    hyperparameters = ("der.buffer_size", "der.memory_batch", "der.alpha", "der.beta")
    # Not the buffer size: the memory budget, set in params.yaml.
    search_space: ClassVar[dict[str, list[Any]]] = {"der.alpha": [0.1, 0.3, 1.0], "der.beta": [0.1, 0.3, 1.0]}
    # The coefficients it can take one of per repetition (``set_strengths``), in that order.
    strength_params: ClassVar[tuple[str, ...]] = ("der.alpha", "der.beta")

    @classmethod
    def check_setting(cls, params: dict[str, Any]) -> None:
        """The buffer starts full of task A's train split: it must hold N examples."""
        size, data = params["der"]["buffer_size"], params["data"]
        held = sum(train_examples(d, data["validation_fraction"], data["train_per_digit"]) for d in params["tasks"][0])
        if size > held:
            raise ForgettingError(
                f"der.buffer_size = {size} starts full of task A's train split, which holds {held} examples "
                f"(data.train_per_digit = {data['train_per_digit']}); lower der.buffer_size to {held} or raise "
                "data.train_per_digit"
            )

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        outputs = Scenario.from_params(params).num_outputs
        size = params["der"]["buffer_size"]
        return Memory("stored examples of every task seen, with their logits", floats=size * outputs, examples=size)

    def __init__(
        self, buffers: list[Split], logits: np.ndarray, seen: int, seeds: list[int], scenario: Scenario, own: dict
    ) -> None:
        """``buffers``: each repetition's N examples; ``logits`` (S, N, outputs) theirs; ``seen``: how many examples
        the reservoirs have seen."""
        self.seeds, self.scenario, self.tasks_done = list(seeds), scenario, 1
        self.memory_batch, self.alpha, self.beta = int(own["memory_batch"]), float(own["alpha"]), float(own["beta"])
        # alpha and beta: one float, or one per repetition (``set_strengths``)
        self.size = len(buffers[0])

        def rows(values: np.ndarray) -> tf.Variable:  # slot N: where an example not kept is written, never read
            padded = np.concatenate([values, np.zeros_like(values[:, :1])], axis=1)
            return tf.Variable(padded, trainable=False)

        self.images = rows(np.stack([as_uint8(b.image) for b in buffers]))
        self.labels = rows(np.stack([b.label for b in buffers]).astype(np.int32))
        self.tasks = rows(np.stack([b.task for b in buffers]).astype(np.int32))
        self.logits = rows(np.asarray(logits, np.float32))
        self.seen = tf.Variable(seen, dtype=tf.int64, trainable=False)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> DER:
        seeds = repetition_seeds(params) * task_a.tiles  # a tuning trial's tiled repetitions: v * S + s is seed s
        train, size = task_a.train_split(), params["der"]["buffer_size"]
        buffers = [
            train.subset(np.random.default_rng([seed, 0]).choice(len(train), size, replace=False)) for seed in seeds
        ]
        images = np.stack([as_uint8(b.image) for b in buffers]).astype(np.float32) / 255.0
        logits = task_a.model().per_repetition(images).numpy()
        return cls(buffers, logits, len(train), seeds, task_a.scenario, params["der"])

    def draw(self, step: tf.Tensor, term: int) -> tf.Tensor:
        """(S, B) slots of each repetition's buffer for ``term`` (0: logits, 1: labels), without replacement, from
        (its seed, the task, the step, the term)."""
        step = tf.cast(step, tf.int32)
        keys = [
            tf.random.stateless_uniform((self.size,), [seed * 1000 + self.tasks_done, 2 * step + term])
            for seed in self.seeds
        ]
        return tf.stack([tf.math.top_k(key, k=min(self.memory_batch, self.size)).indices for key in keys])

    def _gather(self, values: tf.Variable, index: tf.Tensor) -> tf.Tensor:
        return tf.gather(values, index, batch_dims=1)

    def memory_loss(self, network: keras.Model, step: tf.Tensor) -> tf.Tensor:
        index = self.draw(step, 0)
        images = tf.cast(self._gather(self.images, index), tf.float32) / 255.0
        drift = tf.square(network.per_repetition(images, training=True) - self._gather(self.logits, index))
        index = self.draw(step, 1)
        images = tf.cast(self._gather(self.images, index), tf.float32) / 255.0
        logits = self.scenario.select(network.per_repetition(images, training=True), self._gather(self.tasks, index))
        logits = self.scenario.restrict(logits, self.tasks_done)  # the task being trained: tasks_done
        labels = self._gather(self.labels, index)
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        alpha, beta = _factor(self.alpha), _factor(self.beta)
        each = alpha * tf.reduce_mean(drift, axis=[1, 2]) + beta * tf.reduce_mean(cross_entropy, axis=-1)
        return tf.reduce_sum(each)

    def set_strengths(self, strengths) -> None:
        """Repetition r's (alpha, beta) = ``strengths[r]`` ((repetitions, 2), ``strength_params``' order): a grid's
        values on the stacked axis, each repetition scaling its own terms by the same float32 factors as alone."""
        values = np.asarray(strengths, np.float64)
        if values.shape != (len(self.seeds), len(self.strength_params)):
            raise ValueError(f"der: {values.shape} strengths for {len(self.seeds)} repetitions of (alpha, beta)")
        self.alpha, self.beta = values[:, 0], values[:, 1]

    def keep(self, repetitions) -> None:
        """Keep the repetitions ``repetitions`` (indices, in order): their seeds, buffers and coefficients."""
        index = list(repetitions)
        self.seeds = [self.seeds[i] for i in index]
        for name in ("images", "labels", "tasks", "logits"):
            setattr(self, name, tf.Variable(tf.gather(getattr(self, name), index), trainable=False))
        if np.ndim(self.alpha) == 1:
            self.alpha, self.beta = self.alpha[index], self.beta[index]

    def see_batch(self, network: keras.Model, x: dict, labels: tf.Tensor, step: tf.Tensor) -> None:
        images = x["image"]
        logits = network.per_repetition(images, training=False)
        batch = tf.shape(images)[1]
        slots = tf.stack([reservoir_slots(self.seen, batch, self.size, seed) for seed in self.seeds])
        repetition = tf.broadcast_to(tf.range(len(self.seeds), dtype=tf.int64)[:, None], tf.shape(slots))
        where = tf.stack([repetition, slots], axis=-1)
        self.images.scatter_nd_update(where, tf.cast(tf.round(images * 255.0), tf.uint8))
        self.labels.scatter_nd_update(where, tf.cast(labels, tf.int32))
        self.tasks.scatter_nd_update(where, tf.broadcast_to(tf.cast(x["task"], tf.int32), tf.shape(slots)))
        self.logits.scatter_nd_update(where, logits)
        self.seen.assign_add(tf.cast(batch, tf.int64))

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        self.tasks_done += 1
