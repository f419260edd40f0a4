"""DER++ (``forgetting.strategies.der``): the reservoir against a one-example-at-a-time reservoir and its inclusion
probabilities, the stored logits against the model's at storage time, the loss by hand, and what it keeps of a
task that the next one contradicts. Each repetition of a stacked run equals its seed alone: ``test_strategies``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from conftest import EVEN_ODD, conflicting_tasks, split_into_tasks

from forgetting.data.scenarios import Scenario
from forgetting.evaluation import metrics
from forgetting.nn.model import build_network
from forgetting.strategies import DER, Naive
from forgetting.strategies.der import reservoir_slots
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)


def _stream_through(size: int, length: int, batch: int, seed: int) -> np.ndarray:
    """Which stream positions a reservoir of ``size`` holds after ``length`` examples in batches of ``batch``."""
    held, seen = np.full(size + 1, -1), 0
    for start in range(0, length, batch):
        count = min(batch, length - start)
        slots = reservoir_slots(tf.constant(seen, tf.int64), tf.constant(count), size, seed).numpy()
        held[slots] = np.arange(start, start + count)  # numpy assigns in order: the last of a slot stays
        seen += count
    return held[:size]


def test_the_reservoir_is_the_one_example_at_a_time_algorithm():
    """Batch by batch, the same slots as Vitter's algorithm R run one example at a time with the same draws."""
    size, length, batch, seed = 10, 90, 16, 3
    expected, seen = np.full(size, -1), 0
    for start in range(0, length, batch):
        count = min(batch, length - start)
        key = tf.constant([seed, seen], tf.int64)
        uniform = tf.random.stateless_uniform((count,), key, dtype=tf.float64).numpy()
        for i in range(count):
            n = seen + i  # the n-th example (from 0) goes to slot n, or to a uniform j in 0..n where j < size
            j = n if n < size else int(np.floor(uniform[i] * (n + 1)))
            if j < size:
                expected[j] = start + i
        seen += count
    np.testing.assert_array_equal(_stream_through(size, length, batch, seed), expected)


def test_every_example_of_the_stream_is_kept_with_probability_size_over_length():
    size, length, runs = 8, 64, 300
    counts = np.zeros(length)
    for seed in range(runs):
        held = _stream_through(size, length, 16, seed)
        assert len(set(held)) == size and held.min() >= 0
        counts[held] += 1
    frequency = counts / runs  # each ~ Binomial(300, 1/8) / 300: sd 0.019
    assert abs(frequency.mean() - size / length) < 1e-12
    assert np.all(np.abs(frequency - size / length) < 0.1)
    for part in np.split(frequency, 4):  # early and late examples alike
        assert abs(part.mean() - size / length) < 0.03


def _der(task_a, seeds, size=40, **own) -> DER:
    own = {"memory_batch": 16, "alpha": 0.5, "beta": 1.0} | own
    buffers = [task_a.subset(np.random.default_rng(s).choice(len(task_a), size, replace=False)) for s in seeds]
    logits = np.random.default_rng(9).normal(size=(len(seeds), size, 5)).astype(np.float32)
    return DER(buffers, logits, len(task_a), seeds, DOMAIN, own)


def test_a_stored_batch_keeps_the_logits_the_model_gave_it_then(make_mnist):
    task_a, task_b = split_into_tasks(make_mnist(600, seed=3), DOMAIN)
    network = build_network(5, hidden_units=12, seeds=[5, 6])
    der = _der(task_a, [5, 6], size=40)
    der.seen.assign(10)  # a reservoir that is still filling: the next examples take slots 10, 11, ...
    batch = np.stack([task_b.image[:8], task_b.image[8:16]]).astype(np.float32)
    x = {"image": tf.constant(batch), "task": tf.ones((2, 8), tf.int32)}
    labels = tf.constant(np.stack([task_b.label[:8], task_b.label[8:16]]), tf.int32)
    then = network.per_repetition(batch).numpy()
    der.see_batch(network, x, labels, tf.constant(0))
    network.logits.kernel.assign(network.logits.kernel + 1.0)  # the model moves on; the stored logits do not
    np.testing.assert_array_equal(der.logits.numpy()[:, 10:18], then)
    np.testing.assert_array_equal(der.images.numpy()[:, 10:18], np.round(batch * 255).astype(np.uint8))
    np.testing.assert_array_equal(der.labels.numpy()[:, 10:18], labels.numpy())
    assert np.all(der.tasks.numpy()[:, 10:18] == 1) and int(der.seen.numpy()) == 18


def test_the_loss_on_the_memory_by_hand(make_mnist):
    task_a = split_into_tasks(make_mnist(600, seed=3), DOMAIN)[0]
    network = build_network(5, hidden_units=12, seeds=[5, 6])
    der = _der(task_a, [5, 6], size=30, memory_batch=8, alpha=0.3, beta=2.0)
    loss = float(der.memory_loss(network, tf.constant(4)).numpy())
    expected = 0.0
    for s in range(2):
        first, second = der.draw(tf.constant(4), 0).numpy()[s], der.draw(tf.constant(4), 1).numpy()[s]
        assert len(set(first)) == 8 and not np.array_equal(first, second)
        z = network.per_repetition(der.images.numpy()[s, first].astype(np.float32) / 255).numpy()[s]
        expected += 0.3 * np.mean((z - der.logits.numpy()[s, first]) ** 2)
        z = network.per_repetition(der.images.numpy()[s, second].astype(np.float32) / 255).numpy()[s]
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        expected += 2.0 * -np.mean(log_p[np.arange(8), der.labels.numpy()[s, second]])
    assert loss == np.float32(expected) or abs(loss - expected) < 1e-5 * abs(expected)


def test_der_keeps_more_of_a_contradicted_task_than_naive():
    task_a, task_b = conflicting_tasks(500)
    seeds = [0, 1]
    results = {}
    for make in (lambda net: Naive(), lambda net: _der_from(task_a, net, seeds)):
        loop.seed_everything(0)
        net = build_network(5, hidden_units=32, seeds=seeds)
        model = loop.ContinualModel(net, DOMAIN, loop.TrainingSet(task_a, seeds, salt=0))
        loop.fit(model, None, 3, 32, 3e-3, verbose=0)
        strategy = make(net)
        loop.finetune(net, strategy, DOMAIN, task_b, None, 1, epochs=8, batch_size=32, learning_rate=1e-3, verbose=0)
        results[strategy.name] = (metrics.accuracy(net, task_a, DOMAIN), metrics.accuracy(net, task_b, DOMAIN))
    assert np.all(results["naive"][0] < 0.5), "the setting forgets"
    assert np.all(results["der"][0] > results["naive"][0] + 0.5), results
    assert np.all(results["der"][1] > 0.95), results
    assert keras.backend.backend() == "tensorflow"


def _der_from(task_a, network, seeds) -> DER:
    """DER as ``from_params`` builds it: task A's examples with the trained network's logits."""
    buffers = [task_a.subset(np.random.default_rng([s, 0]).choice(len(task_a), 100, replace=False)) for s in seeds]
    images = np.stack([b.image for b in buffers]).astype(np.float32)
    own = {"memory_batch": 32, "alpha": 0.5, "beta": 1.0}
    return DER(buffers, network.per_repetition(images).numpy(), len(task_a), seeds, DOMAIN, own)
