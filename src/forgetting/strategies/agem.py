"""Averaged gradient episodic memory, A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM").

Each step, with g the gradient of the new task's loss and g_ref the gradient of the loss on a batch of
``agem.memory_batch`` examples drawn from the episodic memory (the finished tasks' stored examples), the optimiser
applies

    g~ = g - min(0, g . g_ref) / (g_ref . g_ref) * g_ref

so that, to first order, no step raises the memory's average loss: where g agrees with g_ref (g . g_ref >= 0) it
is applied as it is, else only its part orthogonal to g_ref. Dot products run over every weight of one repetition
(each repetition projects its own gradient on its own memory's). The memory's loss is the one the new task is
trained with: the scenario's logits of each stored example (its own head in the task scenario; the outputs seen so
far where ``class_outputs: seen`` masks the others). The memory is never trained on directly.

The memory is replay's buffer (``replay.py``): ``agem.buffer_size`` examples of the finished tasks' train splits,
class-balanced, seeded per repetition, redrawn from the old buffer and the finished task after each task; the same
budget as replay's. Each step's memory batch is drawn without replacement from the repetition's seed, the task and
the step (stateless: the same draw whatever else is stacked), the whole buffer where it holds no more than
``agem.memory_batch``. The paper draws 256 per step on MNIST.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.config.params import Section, integer, repetition_seeds
from forgetting.data.mnist import Split, as_uint8
from forgetting.data.scenarios import Scenario
from forgetting.strategies.base import TaskAState, stored_gradients
from forgetting.strategies.replay import Replay


def per_repetition_dot(a: list[tf.Tensor], b: list[tf.Tensor]) -> tf.Tensor:
    """sum over every variable of a . b, for each repetition (the leading axis): (S,)."""
    return tf.add_n([tf.reduce_sum(tf.reshape(x * y, (tf.shape(x)[0], -1)), axis=1) for x, y in zip(a, b, strict=True)])


def project(gradients: list[tf.Tensor], reference: list[tf.Tensor]) -> list[tf.Tensor]:
    """g - min(0, g . g_ref) / (g_ref . g_ref) g_ref, per repetition (0 where g_ref is 0: nothing to protect)."""
    dot, norm = per_repetition_dot(gradients, reference), per_repetition_dot(reference, reference)
    scale = tf.math.divide_no_nan(tf.minimum(dot, 0.0), norm)
    return [
        g - tf.reshape(scale, (-1,) + (1,) * (len(g.shape) - 1)) * r for g, r in zip(gradients, reference, strict=True)
    ]


class AGEMParams(Section):
    buffer_size: integer("an integer >= 1 (examples of finished tasks kept)", ge=1)
    memory_batch: integer("an integer >= 1 (stored examples per step's reference gradient)", ge=1)  # at most all


class AGEM(Replay):
    """Replay's buffers, used for the reference gradient instead of being trained on."""

    name = "agem"
    section = "agem"
    params_section: ClassVar[dict[str, Any]] = {"agem": AGEMParams}
    hyperparameters = ("agem.buffer_size", "agem.memory_batch")
    # Not the buffer size (the memory budget, set in params.yaml): how many of its examples estimate g_ref, from a
    # noisy estimate to the whole buffer's average gradient.
    search_space: ClassVar[dict[str, list[Any]]] = {"agem.memory_batch": [64, 256, 1000]}

    def __init__(self, buffers: list[Split], seeds: list[int], scenario: Scenario, memory_batch: int) -> None:
        super().__init__(buffers, seeds)
        self.scenario, self.memory_batch = scenario, int(memory_batch)
        self._stack()

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> AGEM:
        seeds = repetition_seeds(params)
        return cls(cls.first_buffers(params, task_a), seeds, task_a.scenario, params["agem"]["memory_batch"])

    def _stack(self) -> None:
        """The buffers as tensors with the repetition axis first: pixels, labels, task indices."""
        self.images = tf.constant(np.stack([as_uint8(b.image) for b in self.buffers]))
        self.labels = tf.constant(np.stack([b.label for b in self.buffers]).astype(np.int32))
        self.tasks = tf.constant(np.stack([b.task for b in self.buffers]).astype(np.int32))

    def training_data(self, train: Split) -> Split:
        return train  # the memory is not trained on

    def draw(self, step: tf.Tensor) -> tf.Tensor:
        """(S, B) indices into each repetition's buffer, without replacement, from (its seed, the task, ``step``):
        B = memory_batch, or the whole buffer where it holds fewer."""
        size, step = self.images.shape[1], tf.cast(step, tf.int32)
        keys = [tf.random.stateless_uniform((size,), [seed * 1000 + self.tasks_done, step]) for seed in self.seeds]
        return tf.stack([tf.math.top_k(key, k=min(self.memory_batch, size)).indices for key in keys])

    def reference_gradients(self, network: keras.Model, variables: list, step: tf.Tensor) -> list[tf.Tensor]:
        """g_ref: the gradients of each repetition's mean loss on its memory batch of ``step`` (summed over
        repetitions, so each repetition's slice is its own), with the loss the loop trains the current task with."""
        index = self.draw(step)
        images, labels, tasks = (tf.gather(t, index, batch_dims=1) for t in (self.images, self.labels, self.tasks))
        return stored_gradients(network, variables, self.scenario, images, labels, tasks, self.tasks_done)

    def adjust_gradients(
        self, network: keras.Model, variables: list, gradients: list[tf.Tensor], step: tf.Tensor
    ) -> list[tf.Tensor]:
        return project(gradients, self.reference_gradients(network, variables, step))

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        super().end_task(network, task, train)
        self._stack()
