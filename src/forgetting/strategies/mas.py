"""Memory Aware Synapses (Aljundi et al. 2018): importance from the sensitivity of the output's squared norm,

    Omega_i = sum over finished tasks k of  1/N_k * sum_n | d ||f(x_n)||^2 / d theta_i |   at theta_k
    penalty = mas.lambda / 2 * sum_i Omega_i * (theta_i - theta*_i)^2

with f(x) the task's logits (``Scenario.columns``), x_n task k's training examples and theta* the latest task's
weights. The per-example gradients use the Dense closed form of ``forgetting.nn.fisher``: with delta = 2 f(x) pushed
back to each Dense pre-activation, |dK| summed over examples is |a|^T |delta| (one backward pass per chunk).

``mas.importance: batch`` takes Hsu et al. (2018)'s code instead (GT-RIPL/Continual-Learning-Benchmark,
agents/regularization.py, MAS.calculate_importance): the task's training examples in shuffled batches b_1..b_B of
the task's batch size, and

    Omega_i += 1/B * sum_b | d/d theta_i  mean over n in b and the task's outputs c of f_c(x_n)^2 |

the absolute value taken of a batch's gradient (signs cancel within a batch) and the mean over the outputs too: for
the same network, a batch's term is at most 1/(number of outputs) of the per-example mean over its examples, usually
well below it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

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


def batch_mas_importance(
    network: StackedMLP, images: np.ndarray, columns: np.ndarray, batch_size: int, salt: int
) -> Weights:
    """Hsu et al.'s importance (module docstring), for every repetition on its own: repetition s's batches are
    ``images`` in the order of a permutation seeded by (its seed, ``salt``)."""
    if images.ndim != 4:
        raise ValueError(f"images of shape {images.shape}: expected one set (N, 28, 28, 1) for every repetition")
    picked = tf.constant(np.asarray(columns), tf.int32)

    def trace(single: StackedMLP) -> tf.types.experimental.GenericFunction:
        variables = [v for layer in single.dense_layers for v in (layer.kernel, layer.bias)]

        def step(x):
            with tf.GradientTape() as tape:
                mean_square = tf.reduce_mean(tf.square(tf.gather(single(x), picked, axis=-1)))
            return [tf.abs(g) for g in tape.gradient(mean_square, variables)]

        return tf.function(step, input_signature=[tf.TensorSpec((None, *images.shape[1:]), tf.float32)])

    def alone(single: StackedMLP, s: int, step) -> Weights:
        order = np.random.default_rng([network.seeds[s], salt]).permutation(len(images))
        variables = [v for layer in single.dense_layers for v in (layer.kernel, layer.bias)]
        totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
        starts = range(0, len(images), batch_size)
        for start in starts:
            x = tf.convert_to_tensor(images[order[start : start + batch_size]], dtype=tf.float32)
            for total, part in zip(totals, step(x), strict=True):
                total += part.numpy()
        return {v.path: (t / len(starts)).astype(np.float32) for v, t in zip(variables, totals, strict=True)}

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


def task_importance(
    network: StackedMLP, images: np.ndarray, columns: np.ndarray, how: str, batch_size: int, task: int
) -> Weights:
    """Omega of task ``task`` (module docstring): ``per_example`` (Aljundi et al.) or ``batch`` (Hsu et al.'s code,
    in batches of ``batch_size``)."""
    if how == "batch":
        return batch_mas_importance(network, images, columns, batch_size, salt=task)
    return mas_importance(network, images, columns)


IMPORTANCES = ("per_example", "batch")


class MASParams(Section):
    lambda_: STRENGTH = Field(alias="lambda")
    importance: Annotated[Literal[IMPORTANCES], Field(description="per_example (Aljundi et al.) or batch (Hsu et al.)")]


class MAS(QuadraticPenalty):
    name = "mas"
    params_section: ClassVar[dict[str, Any]] = {"mas": MASParams}
    strength_param = "mas.lambda"
    hyperparameters = ("mas.lambda",)
    search_space: ClassVar[dict[str, list[Any]]] = {"mas.lambda": [0.01, 0.1, 1.0, 10.0, 100.0]}

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("θ* and Ω", floats=2 * num_parameters)

    def __init__(
        self, strength: float, theta: Weights, omega: Weights, scenario: Scenario, importance: str, batch_size: int
    ) -> None:
        super().__init__(strength, theta, omega)
        self.scenario, self.importance, self.batch_size = scenario, importance, batch_size

    @property
    def omega(self) -> Weights:
        return self.running_importance

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> MAS:
        network, own = task_a.model(), params["mas"]
        batch_size = params["train"]["batch_size"]  # Hsu et al.'s batches: those every task trains in
        omega = task_importance(
            network, task_a.train_split().image, task_a.scenario.columns(0), own["importance"], batch_size, 0
        )
        return cls(own["lambda"], weights_by_path(network), omega, task_a.scenario, own["importance"], batch_size)

    def end_task(self, network: StackedMLP, task: int, train: Split) -> None:
        columns = self.scenario.columns(task)
        omega = task_importance(network, train.image, columns, self.importance, self.batch_size, task)
        self.consolidate(weights_by_path(network), omega)
