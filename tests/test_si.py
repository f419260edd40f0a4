"""Synaptic Intelligence: the path integral recorded during training, and the importance built from it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD

from forgetting import training
from forgetting.errors import ForgettingError
from forgetting.model import build_mlp, save_model, weights_by_path
from forgetting.scenarios import Scenario
from forgetting.strategies import SI, TaskAState, build_strategy
from forgetting.strategies.base import PathIntegral
from forgetting.strategies.si import importance

DOMAIN = Scenario("domain", EVEN_ODD)


def _two_parameter_problem(recorder: bool, lr: float = 0.1, steps: int = 3):
    """loss(w) = mean_n (x_n . w)^2 over x = e1, e2: (w1^2 + w2^2) / 2, so g = w and plain SGD gives
    w_k = (1 - lr)^k w_0; each step adds -g . delta w = lr * w_k^2 to the path integral."""
    inputs = keras.Input(shape=(2,), name="image")
    outputs = keras.layers.Dense(1, use_bias=False, name="w")(inputs)
    net = keras.Model(inputs, outputs)
    net.get_layer("w").kernel.assign(np.array([[1.0], [2.0]], np.float32))
    path = PathIntegral(net) if recorder else None
    model = training.ContinualModel(net, DOMAIN, path_integral=path)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    x = {"image": np.eye(2, dtype=np.float32), "task": np.zeros(2, np.int32)}
    model.fit(x, np.zeros((2, 1), np.float32), batch_size=2, epochs=steps, shuffle=False, verbose=0)
    return net, path


def test_path_integral_on_a_hand_checkable_problem():
    net, path = _two_parameter_problem(recorder=True)
    w0 = np.array([1.0, 2.0])
    decay = 0.9 ** np.arange(3)  # w_k / w_0 for the 3 steps k = 0, 1, 2
    expected_integral = 0.1 * w0**2 * np.sum(decay**2)  # = 0.24661 * w0^2
    np.testing.assert_allclose(path.result()["w/kernel"][:, 0], expected_integral, rtol=1e-5)
    np.testing.assert_allclose(path.start["w/kernel"][:, 0], w0)
    end = weights_by_path(net)
    np.testing.assert_allclose(end["w/kernel"][:, 0], 0.9**3 * w0, rtol=1e-6)
    omega = importance(path.result(), path.start, end, xi=0.1)["w/kernel"][:, 0]
    # Omega = w / (delta^2 + xi), delta = (0.9^3 - 1) w0: non-zero, as a copy-of-the-weights bug would not give
    np.testing.assert_allclose(omega, expected_integral / (((0.9**3 - 1) * w0) ** 2 + 0.1), rtol=1e-5)
    assert np.all(omega > 0.5)


def test_recording_does_not_change_the_training():
    with_path, _ = _two_parameter_problem(recorder=True)
    without, _ = _two_parameter_problem(recorder=False)
    np.testing.assert_array_equal(with_path.get_weights()[0], without.get_weights()[0])


def test_recording_the_mlp_with_adam_in_fit_keeps_the_weights_identical(mnist_like):
    def train(record: bool):
        training.seed_everything(3)
        net = build_mlp(5, hidden_units=8)
        path = PathIntegral(net) if record else None
        training.fit(training.ContinualModel(net, DOMAIN, path_integral=path), mnist_like, None, 2, 50, 1e-2, verbose=0)
        return net, path

    recorded, path = train(True)
    plain, _ = train(False)
    for a, b in zip(recorded.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for key, value in path.result().items():
        assert np.all(np.isfinite(value)) and np.abs(value).sum() > 0, key


def test_recorded_path_integral_matches_an_eager_step_by_step_reference(mnist_like):
    split = mnist_like.subset(np.arange(200))
    keras.utils.set_random_seed(3)
    net = build_mlp(5, hidden_units=8)
    reference = keras.models.clone_model(net)
    reference.set_weights(net.get_weights())
    path = PathIntegral(net)
    model = training.ContinualModel(net, DOMAIN, path_integral=path)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_fn)
    model.fit(split.inputs(), split.label, batch_size=50, epochs=2, shuffle=False, verbose=0)

    optimizer = keras.optimizers.Adam(1e-2)
    totals = {v.path: np.zeros(v.shape) for v in reference.trainable_variables}
    for _ in range(2):
        for start in range(0, 200, 50):
            with tf.GradientTape() as tape:
                loss = loss_fn(
                    split.label[start : start + 50], reference(split.image[start : start + 50], training=True)
                )
            variables = reference.trainable_variables
            gradients = tape.gradient(loss, variables)
            before = [np.array(v.numpy()) for v in variables]
            optimizer.apply(gradients, variables)
            for v, g, b in zip(variables, gradients, before, strict=True):
                totals[v.path] += -g.numpy().astype(np.float64) * (v.numpy() - b)
    for a, b in zip(net.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for key, value in path.result().items():
        assert np.abs(totals[key]).sum() > 0, key
        np.testing.assert_allclose(value, totals[key], rtol=1e-3, atol=1e-9)


def test_si_builds_its_importance_from_train_as_file_and_accumulates_it(tmp_path, mnist_like):
    training.seed_everything(0)
    net = build_mlp(5, hidden_units=8)
    path = PathIntegral(net)
    training.fit(training.ContinualModel(net, DOMAIN, path_integral=path), mnist_like, None, 1, 32, 1e-2, verbose=0)
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras", path_integral_path=tmp_path / "path.npz")
    save_model(net, state.model_path)
    path.save(state.path_integral_path)
    si = build_strategy("si", {"si": {"c": 3.0, "xi": 0.5}}, state)
    theta_a = weights_by_path(net)
    expected = importance(path.result(), path.start, theta_a, 0.5)
    assert si.strength == 3.0
    for key in expected:
        np.testing.assert_allclose(si.omega[key], expected[key], rtol=1e-6)
        assert np.any(si.omega[key] > 0), key
    # training task B records a new path integral from theta_A; ending it adds that task's importance
    training.finetune(net, si, DOMAIN, mnist_like, None, epochs=1, batch_size=32, learning_rate=1e-2, verbose=0)
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
    save_model(build_mlp(5, hidden_units=8), state.model_path)
    missing = r"SI path integral file .*path\.npz is missing: run `dvc repro --force --single-item train_a`"
    with pytest.raises(ForgettingError, match=missing):
        build_strategy("si", {"si": {"c": 1.0, "xi": 0.1}}, state)
    PathIntegral(build_mlp(5, hidden_units=16)).save(state.path_integral_path)
    with pytest.raises(ForgettingError, match="recorded for another network"):
        build_strategy("si", {"si": {"c": 1.0, "xi": 0.1}}, state)
    assert SI.name == "si"
