"""The training loop's hook points (``forgetting.strategies.base``), each on a toy strategy: a gradient projection
(A-GEM's kind), a loss on a batch drawn from the strategy's own memory (DER++'s kind), a prediction rule (iCaRL's
kind), and SI's path integral through the after-step hook. Every hook keeps the guarantee that repetition s of a
stacked run is that seed trained alone, bit for bit."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD

from forgetting.data.scenarios import Scenario
from forgetting.evaluation import metrics
from forgetting.nn.model import build_network, weights_by_path
from forgetting.nn.path_integral import PathIntegral
from forgetting.strategies import DER, QuadraticPenalty, Strategy
from forgetting.strategies.agem import per_repetition_dot
from forgetting.strategies.si import SI
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)


def _each(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    return tf.reshape(values, (-1,) + (1,) * (len(like.shape) - 1))


class ProjectOnMemory(Strategy):
    """A-GEM's step on a fixed memory set: g <- g - min(0, g . g_ref) / (g_ref . g_ref) g_ref, per repetition,
    with g_ref the gradient of the memory's loss. Records the smallest g . g_ref after projection."""

    name = "project"

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = tf.constant(images, tf.float32)
        self.labels = tf.constant(labels, tf.int32)
        self.conflicts = tf.Variable(0, trainable=False)
        self.smallest_after = tf.Variable(np.inf, dtype=tf.float32, trainable=False)

    def adjust_gradients(self, network, variables, gradients, step):
        with tf.GradientTape() as tape:
            logits = network.per_repetition(self.images, training=True)
            labels = tf.broadcast_to(self.labels, tf.shape(logits)[:-1])
            ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = tf.reduce_sum(tf.reduce_mean(ce, axis=-1))
        reference = tape.gradient(loss, variables)
        dot = per_repetition_dot(gradients, reference)
        scale = tf.minimum(dot, 0.0) / per_repetition_dot(reference, reference)
        projected = [g - _each(scale, g) * r for g, r in zip(gradients, reference, strict=True)]
        self.conflicts.assign_add(tf.reduce_sum(tf.cast(dot < 0, tf.int32)))
        after = per_repetition_dot(projected, reference) / tf.sqrt(per_repetition_dot(reference, reference))
        self.smallest_after.assign(tf.minimum(self.smallest_after, tf.reduce_min(after)))
        return projected


class MemoryLogits(Strategy):
    """DER's loss on its memory: weight * mean over a drawn batch of (z(x) - stored z)^2, per repetition. Repetition
    s draws its batch with its own seed and the step (stateless), so the draw does not depend on what is stacked."""

    name = "memory_logits"

    def __init__(self, images: np.ndarray, logits: np.ndarray, seeds: list[int], weight: float, batch: int) -> None:
        self.images = tf.constant(images, tf.float32)  # (N, 28, 28, 1), shared
        self.logits = tf.constant(logits, tf.float32)  # (S, N, outputs): each repetition's own stored logits
        self.seeds, self.weight, self.batch = seeds, weight, batch

    def draw(self, step: tf.Tensor) -> tf.Tensor:
        count = tf.shape(self.images)[0]
        return tf.stack(
            [
                tf.random.stateless_uniform((self.batch,), [seed, tf.cast(step, tf.int32)], 0, count, tf.int32)
                for seed in self.seeds
            ]
        )

    def memory_loss(self, network, step):
        index = self.draw(step)  # (S, batch)
        current = network.per_repetition(tf.gather(self.images, index), training=True)
        stored = tf.gather(self.logits, index, batch_dims=1)
        return self.weight * tf.reduce_sum(tf.reduce_mean(tf.square(current - stored), axis=[1, 2]))


class Negated(Strategy):
    """A prediction rule of its own: the argmin of the logits."""

    name = "negated"

    @classmethod
    def predict(cls, network, images):
        return -network.per_repetition(images)


def _network(seeds):
    return build_network(DOMAIN.num_outputs, hidden_units=12, seeds=seeds)


def _train(seeds, strategy, split, epochs=2, lr=1e-2, log=None):
    network = _network(seeds)
    model = loop.ContinualModel(network, DOMAIN, loop.TrainingSet(split, seeds, salt=1), strategy)
    loop.fit(model, None, epochs=epochs, batch_size=32, learning_rate=lr, verbose=0, callbacks=log)
    return network


def _assert_repetition_is_alone(stacked, alone, s):
    for key, value in weights_by_path(alone).items():
        np.testing.assert_array_equal(weights_by_path(stacked)[key][s], value[0], err_msg=key)


def test_the_loop_compiles_only_the_hooks_a_strategy_overrides():
    hooks = ("adjust_gradients", "memory_loss", "see_batch", "after_step", "predict")
    assert [h for h in hooks if Strategy.acts_at(h)] == []
    assert Strategy().retrain_task_a() is None  # the later tasks start from task A's checkpoint as it is
    assert [h for h in hooks if DER.acts_at(h)] == ["memory_loss", "see_batch"]
    assert ProjectOnMemory.acts_at("adjust_gradients") and not ProjectOnMemory.acts_at("memory_loss")
    assert MemoryLogits.acts_at("memory_loss") and Negated.acts_at("predict") and SI.acts_at("after_step")


def test_a_gradient_projection_removes_every_conflict_per_repetition(mnist_like, make_mnist):
    memory = make_mnist(64, seed=3)
    memory_labels = ((memory.digit // 2 + 2) % 5).astype(np.int32)  # answers that the new task contradicts
    odd = mnist_like.subset(np.flatnonzero(mnist_like.digit % 2 == 1))
    projector = ProjectOnMemory(memory.image, memory_labels)
    stacked = _train([5, 6], projector, odd)
    assert int(projector.conflicts.numpy()) > 0  # the new task's gradient did conflict with the memory's
    assert float(projector.smallest_after.numpy()) > -1e-4  # and never after the projection
    alone = _train([6], ProjectOnMemory(memory.image, memory_labels), odd)
    _assert_repetition_is_alone(stacked, alone, 1)
    # the projection changed the training: plain fine-tuning ends elsewhere
    plain = _train([6], Strategy(), odd)
    assert not np.array_equal(weights_by_path(plain)["mlp/hidden/kernel"], weights_by_path(alone)["mlp/hidden/kernel"])


def test_a_memory_batch_loss_keeps_the_stored_logits(mnist_like, make_mnist):
    memory = make_mnist(96, seed=4)
    seeds = [5, 6]
    start = _network(seeds)
    stored = start.per_repetition(memory.image).numpy()
    odd = mnist_like.subset(np.flatnonzero(mnist_like.digit % 2 == 1))

    def drift(network, s):
        return float(np.mean(np.square(network.per_repetition(memory.image).numpy()[s] - stored[s])))

    held = _train(seeds, MemoryLogits(memory.image, stored, seeds, weight=10.0, batch=16), odd)
    loose = _train(seeds, Strategy(), odd)
    for s in range(2):
        assert drift(held, s) < 0.5 * drift(loose, s), s
    # each repetition draws its own batches: repetition 1 is seed 6 with its own stored logits, alone
    alone = _train([6], MemoryLogits(memory.image, stored[1:], [6], weight=10.0, batch=16), odd)
    _assert_repetition_is_alone(held, alone, 1)
    draws = MemoryLogits(memory.image, stored, seeds, 10.0, 16).draw(tf.constant(3)).numpy()
    assert not np.array_equal(draws[0], draws[1])


def test_a_prediction_rule_is_what_the_logs_and_the_evaluation_measure(mnist_like, tmp_path):
    seeds = [5, 6]
    network = _train(seeds, Strategy(), mnist_like, epochs=1)
    default = metrics.accuracy(network, mnist_like, DOMAIN)
    negated = metrics.accuracy(network, mnist_like, DOMAIN, predict=Negated.predict)
    logits = network.per_repetition(mnist_like.image).numpy()
    np.testing.assert_array_equal(negated, np.mean(np.argmin(logits, -1) == mnist_like.label, axis=1))
    assert np.all(negated < default)
    # the per-epoch log of a sequence follows the strategy's rule
    log = loop.TaskAccuracyLog({"task_a": mnist_like}, DOMAIN, tmp_path / "log.csv", tmp_path / "each.csv", "x")
    loop.train_sequence(
        network,
        Negated(),
        DOMAIN,
        [mnist_like, mnist_like],
        [None, None],
        log,
        epochs=1,
        batch_size=32,
        learning_rate=1e-9,
    )
    last = metrics.read_log(tmp_path / "each.csv")[-2:]
    expected = metrics.accuracy(network, mnist_like, DOMAIN, predict=Negated.predict)
    assert [float(row["task_a_accuracy"]) for row in last] == pytest.approx(expected, abs=1e-6)


def test_si_path_integral_through_the_after_step_hook_is_the_observers_bit_for_bit(mnist_like):
    """SI records through its ``after_step`` hook what a ``PathIntegral`` observer records beside the same
    penalty: the same bits, weights and integral."""
    seeds = [5, 6]
    odd = mnist_like.subset(np.flatnonzero(mnist_like.digit % 2 == 1))

    def run(hooked: bool):
        network = _network(seeds)
        theta = weights_by_path(network)
        omega = {k: np.full_like(v, 0.5) for k, v in theta.items()}
        si = SI(1.0, 0.1, theta, omega, network)
        strategy, observers = (si, ()) if hooked else (QuadraticPenalty(1.0, theta, omega), [PathIntegral(network)])
        model = loop.ContinualModel(network, DOMAIN, loop.TrainingSet(odd, seeds, salt=1), strategy, observers)
        loop.fit(model, None, epochs=2, batch_size=32, learning_rate=1e-2, verbose=0)
        recorder = si.path_integral if hooked else observers[0]
        return weights_by_path(network), recorder.result()

    (w_hook, pi_hook), (w_obs, pi_obs) = run(True), run(False)
    assert any(np.any(v != 0) for v in pi_hook.values())
    for key in w_hook:
        np.testing.assert_array_equal(w_hook[key], w_obs[key])
        np.testing.assert_array_equal(pi_hook[key], pi_obs[key])
