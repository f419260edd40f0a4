"""Memory Aware Synapses: importance = mean over examples of |d ||f(x)||^2 / d theta|, against a slow reference."""

import keras
import numpy as np
import pytest
from conftest import EVEN_ODD

from forgetting.model import build_mlp, save_model, weights_by_path
from forgetting.scenarios import Scenario
from forgetting.strategies import MAS, TaskAState, build_strategy
from forgetting.strategies.mas import mas_importance, reference_mas_importance


@pytest.mark.parametrize("columns", [np.arange(5), np.arange(5, 10)])
def test_vectorised_importance_matches_one_example_at_a_time(make_mnist, columns):
    keras.utils.set_random_seed(4)
    model = build_mlp(10, hidden_units=8, dropout=0.5)  # dropout must be off: importance is taken in inference
    x = make_mnist(70, seed=5).image
    fast = mas_importance(model, x, columns)
    slow = reference_mas_importance(model, x, columns)
    assert fast.keys() == slow.keys() == {"hidden/kernel", "hidden/bias", "logits/kernel", "logits/bias"}
    for key in fast:
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-5, atol=1e-7 * np.abs(slow[key]).max())
        assert np.all(fast[key] >= 0)
    other = np.setdiff1d(np.arange(10), columns)
    assert not np.any(fast["logits/kernel"][:, other]) and np.all(fast["logits/bias"][columns] > 0)


def test_importance_of_a_linear_model_matches_the_hand_derived_form():
    # f(x) = x W + b: d ||f||^2 / d W_ij = 2 x_i f_j, so the importance is mean_n |x_ni| |f_nj|; for b, mean |2 f_j|
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(28, 28, 1))
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(40, 28, 28, 1)).astype(np.float32)
    flat = x.reshape(40, -1).astype(np.float64)
    f = flat @ model.get_layer("logits").kernel.numpy() + model.get_layer("logits").bias.numpy()
    got = mas_importance(model, x, np.arange(3))
    np.testing.assert_allclose(got["logits/kernel"], np.abs(flat).T @ np.abs(2 * f) / 40, rtol=1e-4)
    np.testing.assert_allclose(got["logits/bias"], np.abs(2 * f).mean(0), rtol=1e-4)


def test_mas_reads_its_param_and_accumulates_importance(tmp_path, tiny_model, make_mnist):
    from forgetting import data

    scenario = Scenario("domain", EVEN_ODD)
    train, test = make_mnist(300, seed=1), make_mnist(50, seed=2)
    data.save_task(data.build_task(train, test, [0, 2, 4, 6, 8], 0, 0.1, seed=0), tmp_path / "data" / "task_a")
    state = TaskAState(scenario, tmp_path / "task_a.keras", data_root=tmp_path / "data")
    save_model(tiny_model, state.model_path)
    mas = build_strategy("mas", {"mas": {"lambda": 2.5}}, state)
    assert isinstance(mas, MAS) and mas.strength == 2.5
    omega_a = mas_importance(tiny_model, state.train_split().image, np.arange(5))
    for key in omega_a:
        np.testing.assert_allclose(mas.omega[key], omega_a[key], rtol=1e-6)
    moved = {k: v + 0.1 for k, v in weights_by_path(tiny_model).items()}
    for variable in tiny_model.trainable_variables:
        variable.assign(moved[variable.path])
    assert float(mas.penalty(tiny_model)) > 0
    task_b = data.make_split(np.zeros((10, 28, 28), np.uint8), np.full(10, 1))
    mas.end_task(tiny_model, 1, task_b)
    omega_b = mas_importance(tiny_model, task_b.image, np.arange(5))
    for key in omega_a:
        np.testing.assert_allclose(mas.omega[key], omega_a[key] + omega_b[key], rtol=1e-6)
    assert float(mas.penalty(tiny_model)) == 0.0  # re-anchored at the end of task B
