"""Synaptic Intelligence: the path integral recorded during training, and the importance built from it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD

from forgetting.data.mnist import make_split
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn.model import INPUT_DEFAULTS, build_network, save_model, weights_by_path
from forgetting.nn.path_integral import PathIntegral
from forgetting.strategies import SI, TaskAState, build_strategy
from forgetting.strategies.base import QuadraticPenalty
from forgetting.strategies.si import importance
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)
ONE_OUTPUT = Scenario("domain", ((0,), (1,)))  # a single logit: the cross-entropy is 0 and so is its gradient
SEEDS = [3, 4]
KEYS = {"mlp/hidden/kernel", "mlp/hidden/bias", "mlp/logits/kernel", "mlp/logits/bias"}


def _training_set(split, seeds=SEEDS, salt=0) -> loop.TrainingSet:
    return loop.TrainingSet(split, seeds, salt=salt)


def _two_repetition_problem(recorder: bool, lr: float = 0.1, steps: int = 3):
    """A 2-repetition network with one output, so that the loss is only an L2 penalty towards 0 (strength 1):
    loss(w) = sum_i w_i^2 / 2, g = w, and plain SGD gives w_k = (1 - lr)^k w_0 for every weight of every
    repetition; each step adds -g . delta w = lr * w_k^2 to the path integral. Returns the network, the recorder
    and w_0."""
    net = build_network(1, hidden_units=2, seeds=SEEDS)
    rng = np.random.default_rng(0)
    for variable in net.trainable_variables:  # |w_0| in [0.5, 2], biases included
        shape = variable.shape
        variable.assign((rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32))
    start = weights_by_path(net)
    path = PathIntegral(net) if recorder else None
    towards_zero = QuadraticPenalty(1.0, {key: np.zeros_like(value) for key, value in start.items()})
    split = make_split(np.zeros((2, 28, 28), np.uint8), np.zeros(2, int))  # label 0: the one logit's
    model = loop.ContinualModel(net, ONE_OUTPUT, _training_set(split), towards_zero, observers=[path] if path else ())
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    model.fit(np.arange(2, dtype=np.int32), batch_size=2, epochs=steps, shuffle=False, verbose=0)
    return net, path, start


def test_path_integral_on_a_hand_checkable_problem():
    net, path, w0 = _two_repetition_problem(recorder=True)
    decay = 0.9 ** np.arange(3)  # w_k / w_0 for the 3 steps k = 0, 1, 2
    end = weights_by_path(net)
    omega = importance(path.result(), path.start, end, xi=0.1)
    assert path.result().keys() == w0.keys() == KEYS
    for key, start in w0.items():
        assert path.result()[key].shape == start.shape and start.shape[0] == 2
        expected_integral = 0.1 * start.astype(np.float64) ** 2 * np.sum(decay**2)  # = 0.24661 * w0^2
        np.testing.assert_allclose(path.result()[key], expected_integral, rtol=1e-5, err_msg=key)
        np.testing.assert_array_equal(path.start[key], start)
        np.testing.assert_allclose(end[key], 0.9**3 * start, rtol=1e-6, err_msg=key)
        # Omega = w / (delta^2 + xi), delta = (0.9^3 - 1) w0: non-zero, as a copy-of-the-weights bug would not give
        expected_omega = expected_integral / (((0.9**3 - 1) * start.astype(np.float64)) ** 2 + 0.1)
        np.testing.assert_allclose(omega[key], expected_omega, rtol=1e-5, err_msg=key)
        assert np.all(omega[key] > 0.5), key


def test_recording_does_not_change_the_training():
    with_path, _, _ = _two_repetition_problem(recorder=True)
    without, _, _ = _two_repetition_problem(recorder=False)
    for a, b in zip(with_path.get_weights(), without.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_recording_the_mlp_with_adam_in_fit_keeps_the_weights_identical(mnist_like):
    def train(record: bool):
        loop.seed_everything(3)
        net = build_network(5, hidden_units=8, dropout=0.5, seeds=SEEDS)
        path = PathIntegral(net) if record else None
        model = loop.ContinualModel(net, DOMAIN, _training_set(mnist_like), observers=[path] if path else ())
        loop.fit(model, None, 2, 50, 1e-2, verbose=0)
        return net, path

    recorded, path = train(True)
    plain, _ = train(False)
    for a, b in zip(recorded.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for key, value in path.result().items():
        assert value.shape[0] == 2, key
        for s in range(2):
            assert np.all(np.isfinite(value[s])) and np.abs(value[s]).sum() > 0, (key, s)


def test_recorded_path_integral_matches_an_eager_step_by_step_reference(mnist_like):
    split = mnist_like.subset(np.arange(200))
    net = build_network(5, hidden_units=8, seeds=SEEDS)
    reference = build_network(5, hidden_units=8, seeds=SEEDS)
    path = PathIntegral(net)
    loop.fit(
        loop.ContinualModel(net, DOMAIN, _training_set(split), observers=[path] if path else ()),
        None,
        2,
        50,
        1e-2,
        verbose=0,
    )

    # the step ContinualModel takes: each repetition's own batch (its own order), the sum over repetitions of
    # each one's mean cross-entropy, Adam
    data = _training_set(split)
    optimizer = keras.optimizers.Adam(1e-2)
    variables = reference.trainable_variables
    totals = {v.path: np.zeros(v.shape) for v in variables}
    for epoch in range(2):
        data.shuffle(epoch)
        for start in range(0, 200, 50):
            x, y = data.batch(tf.range(start, start + 50))
            assert tuple(x["image"].shape) == (2, 50, 28, 28, 1)
            with tf.GradientTape() as tape:
                logits = reference.per_repetition(x["image"], training=True)
                per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
                loss = tf.reduce_sum(tf.reduce_mean(per_example, axis=1))
            gradients = tape.gradient(loss, variables)
            before = [np.array(v.numpy()) for v in variables]
            optimizer.apply(gradients, variables)
            for v, g, b in zip(variables, gradients, before, strict=True):
                totals[v.path] += -g.numpy().astype(np.float64) * (v.numpy() - b)
    for a, b in zip(net.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for key, value in path.result().items():
        for s in range(2):
            assert np.abs(totals[key][s]).sum() > 0, (key, s)
        np.testing.assert_allclose(value, totals[key], rtol=1e-3, atol=1e-9, err_msg=key)


def test_each_repetition_path_integral_is_that_of_a_one_repetition_run(mnist_like):
    def run(seed: int, seeds: int):
        params = {
            "seed": seed,
            "seeds": seeds,
            "model": {"hidden_units": 8, "dropout": 0.5, "init": "glorot", **INPUT_DEFAULTS},
            "train": {"batch_size": 32, "learning_rate": 1e-2, "optimizer": "adam"},
        }
        return loop.train_new_model(params, DOMAIN, mnist_like, None, epochs=2, path_integral=True)

    pair, pair_path = run(5, 2)
    alone, alone_path = run(6, 1)
    assert pair.seeds == [5, 6] and alone.seeds == [6]
    weights, alone_weights = weights_by_path(pair), weights_by_path(alone)
    for key, value in pair_path.result().items():
        np.testing.assert_array_equal(value[1], alone_path.result()[key][0], err_msg=key)
        np.testing.assert_array_equal(pair_path.start[key][1], alone_path.start[key][0], err_msg=key)
        np.testing.assert_array_equal(weights[key][1], alone_weights[key][0], err_msg=key)
        assert np.abs(value[1]).sum() > 0 and not np.allclose(value[0], value[1]), key


def test_si_builds_its_importance_from_train_as_file_and_accumulates_it(tmp_path, mnist_like):
    loop.seed_everything(0)
    net = build_network(5, hidden_units=8, seeds=SEEDS)
    path = PathIntegral(net)
    loop.fit(
        loop.ContinualModel(net, DOMAIN, _training_set(mnist_like), observers=[path] if path else ()),
        None,
        1,
        32,
        1e-2,
        verbose=0,
    )
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras", path_integral_path=tmp_path / "path.npz")
    save_model(net, state.model_path)
    path.save(state.path_integral_path)
    si = build_strategy("si", {"si": {"c": 3.0, "xi": 0.5}}, state)
    theta_a = weights_by_path(net)
    expected = importance(path.result(), path.start, theta_a, 0.5)
    assert si.strength == 3.0
    for key in expected:
        assert si.omega[key].shape == theta_a[key].shape and si.omega[key].shape[0] == 2, key
        np.testing.assert_allclose(si.omega[key], expected[key], rtol=1e-6)
        assert np.any(si.omega[key][0] > 0) and np.any(si.omega[key][1] > 0), key
    # training task B records a new path integral from theta_A; ending it adds that task's importance
    loop.finetune(net, si, DOMAIN, mnist_like, None, 1, epochs=1, batch_size=32, learning_rate=1e-2, verbose=0)
    for key, start in si.path_integral.start.items():
        np.testing.assert_array_equal(start, theta_a[key])
    theta_b = weights_by_path(net)
    added = importance(si.path_integral.result(), theta_a, theta_b, 0.5)
    si.end_task(net, 1, mnist_like)
    ((anchor, omega),) = si.terms
    for key in expected:
        np.testing.assert_allclose(omega[key].numpy(), expected[key] + added[key], rtol=1e-5)
        np.testing.assert_array_equal(anchor[key].numpy(), theta_b[key])
        assert not np.any(si.path_integral.result()[key])  # restarted for the next task
    assert float(si.penalty(net)) == 0.0


def test_si_refuses_a_path_integral_of_another_network(tmp_path):
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras", path_integral_path=tmp_path / "path.npz")
    save_model(build_network(5, hidden_units=8, seeds=SEEDS), state.model_path)
    missing = r"SI path integral file .*path\.npz is missing: run `dvc repro --force --single-item train_a`"
    with pytest.raises(ForgettingError, match=missing):
        build_strategy("si", {"si": {"c": 1.0, "xi": 0.1}}, state)
    for other in (
        build_network(5, hidden_units=16, seeds=SEEDS),  # other layer sizes
        build_network(5, hidden_units=8, seeds=SEEDS[:1]),  # another number of repetitions
    ):
        PathIntegral(other).save(state.path_integral_path)
        with pytest.raises(ForgettingError, match="recorded for another network"):
            build_strategy("si", {"si": {"c": 1.0, "xi": 0.1}}, state)
    PathIntegral(build_network(5, hidden_units=8, seeds=SEEDS)).save(state.path_integral_path)
    assert isinstance(build_strategy("si", {"si": {"c": 1.0, "xi": 0.1}}, state), SI)
    assert SI.name == "si"
