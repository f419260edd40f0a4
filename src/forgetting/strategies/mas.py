"""Memory Aware Synapses (Aljundi et al. 2018): importance from the sensitivity of the output's squared norm,

    Omega_i = sum over finished tasks k of  1/N_k * sum_n | d ||f(x_n)||^2 / d theta_i |   at theta_k
    penalty = mas.lambda / 2 * sum_i Omega_i * (theta_i - theta*_i)^2

with f(x) the task's logits (``Scenario.columns``), x_n task k's training examples and theta* the latest task's
weights. The per-example gradients use the Dense closed form of ``forgetting.nn.fisher``: with delta = 2 f(x) pushed
back to each Dense pre-activation, |dK| summed over examples is |a|^T |delta| (one backward pass per chunk).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from pydantic import Field

from forgetting.config.params import STRENGTH, Section
from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.nn.fisher import dense_forward, dense_sums, mean_over_chunks, one_repetition_at_a_time
from forgetting.nn.model import StackedMLP, weights_by_path
from forgetting.strategies.base import Memory, QuadraticPenalty, TaskAState, Weights


def _chunk_sums(network: StackedMLP, x: tf.Tensor, columns: tf.Tensor) -> list[tf.Tensor]:
    with tf.GradientTape() as tape:
        logits, records = dense_forward(network, x, tape)
        squared_norms = tf.reduce_sum(tf.square(tf.gather(logits, columns, axis=-1)))  # repetitions independent
    deltas = tape.gradient(squared_norms, [z for _, z in records])
    return dense_sums(records, [tf.abs(d) for d in deltas], tf.abs)


def mas_importance(network: StackedMLP, images: np.ndarray, columns: np.ndarray) -> Weights:
    """1/N * sum_n |d ||f(x_n)||^2 / d theta| over ``images``, for every repetition (each on its own, as if alone),
    keyed by variable path."""
    picked = tf.constant(np.asarray(columns), tf.int32)

    def trace(single: StackedMLP) -> tf.types.experimental.GenericFunction:
        return tf.function(
            lambda x: _chunk_sums(single, x, picked),
            input_signature=[tf.TensorSpec((None, *images.shape[1:]), tf.float32)],
        )

    def alone(single: StackedMLP, s: int, step) -> Weights:
        return mean_over_chunks(single, images, step, None)

    return one_repetition_at_a_time(network, trace, alone)


def reference_mas_importance(network: StackedMLP, images: np.ndarray, columns: np.ndarray) -> Weights:
    """The same, one repetition and one example at a time with GradientTape: slow, for tests."""
    variables = network.trainable_variables
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    for s in range(network.repetitions):
        for n in range(len(images)):
            with tf.GradientTape() as tape:
                out = tf.gather(network(images[n : n + 1])[0, s], columns)
                squared_norm = tf.reduce_sum(tf.square(out))
            for total, g in zip(totals, tape.gradient(squared_norm, variables), strict=True):
                total += np.abs(g.numpy().astype(np.float64))
    return {v.path: (t / len(images)).astype(np.float32) for v, t in zip(variables, totals, strict=True)}


class MASParams(Section):
    lambda_: STRENGTH = Field(alias="lambda")


class MAS(QuadraticPenalty):
    name = "mas"
    params_section: ClassVar[dict[str, Any]] = {"mas": MASParams}
    strength_param = "mas.lambda"
    hyperparameters = ("mas.lambda",)
    search_space: ClassVar[dict[str, list[Any]]] = {"mas.lambda": [0.01, 0.1, 1.0, 10.0, 100.0]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("θ* and Ω", floats=2 * num_parameters)

    def __init__(self, strength: float, theta: Weights, omega: Weights, scenario: Scenario) -> None:
        super().__init__(strength, theta, omega)
        self.scenario = scenario

    @property
    def omega(self) -> Weights:
        return self.running_importance

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> MAS:
        network = task_a.model()
        omega = mas_importance(network, task_a.train_split().image, task_a.scenario.columns(0))
        return cls(params["mas"]["lambda"], weights_by_path(network), omega, task_a.scenario)

    def end_task(self, network: StackedMLP, task: int, train: Split) -> None:
        self.consolidate(weights_by_path(network), mas_importance(network, train.image, self.scenario.columns(task)))
