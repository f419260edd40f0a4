"""Memory Aware Synapses: importance = mean over examples of |d ||f(x)||^2 / d theta|, for every repetition of the
stacked network, against a slow reference, a hand-derived form and one-repetition networks."""

import numpy as np
import pytest
from conftest import EVEN_ODD

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn.model import build_mlp, build_network, save_model, weights_by_path
from forgetting.strategies import MAS, TaskAState, build_strategy
from forgetting.strategies.mas import batch_mas_importance, mas_importance, reference_mas_importance

KEYS = {"mlp/hidden/kernel", "mlp/hidden/bias", "mlp/logits/kernel", "mlp/logits/bias"}


@pytest.mark.parametrize("columns", [np.arange(5), np.arange(5, 10)])
def test_vectorised_importance_matches_one_example_at_a_time(make_mnist, columns):
    # dropout must be off: importance is taken in inference
    network = build_network(10, hidden_units=8, dropout=0.5, seeds=[4, 5])
    x = make_mnist(50, seed=5).image
    fast = mas_importance(network, x, columns)
    slow = reference_mas_importance(network, x, columns)
    assert fast.keys() == slow.keys() == KEYS
    other = np.setdiff1d(np.arange(10), columns)
    for key in fast:
        assert fast[key].shape == slow[key].shape and fast[key].shape[0] == 2, key
        for s in range(2):  # each repetition on its own scale
            np.testing.assert_allclose(
                fast[key][s], slow[key][s], rtol=1e-5, atol=1e-7 * np.abs(slow[key][s]).max(), err_msg=f"{key} {s}"
            )
        assert np.all(fast[key] >= 0)
        assert not np.allclose(fast[key][0], fast[key][1]), key  # two networks, two importances
    assert not np.any(fast["mlp/logits/kernel"][:, :, other]) and not np.any(fast["mlp/logits/bias"][:, other])
    assert np.all(fast["mlp/logits/bias"][:, columns] > 0)


def test_each_repetition_importance_is_that_of_a_one_repetition_network(make_mnist):
    seeds = [4, 5]
    pair = build_network(10, hidden_units=8, dropout=0.5, seeds=seeds)
    x = make_mnist(60, seed=6).image
    columns = np.arange(5, 10)
    together = mas_importance(pair, x, columns)
    for s, seed in enumerate(seeds):
        own = mas_importance(build_network(10, hidden_units=8, dropout=0.5, seeds=[seed]), x, columns)
        for key in together:
            assert own[key].shape == (1, *together[key].shape[1:])
            # equal up to float32 rounding (S batched products may round differently from one's, on some backends)
            np.testing.assert_allclose(together[key][s], own[key][0], rtol=1e-6, atol=0, err_msg=f"{key} {s}")


def test_importance_of_the_logits_layer_matches_the_hand_derived_form():
    # f(x) = h W + b (h the hidden activations, >= 0): d ||f||^2 / d W_ij = 2 h_i f_j, so the importance is
    # mean_n h_ni |2 f_nj|; for b, mean |2 f_j|. Per repetition, with its own weights.
    network = build_network(3, hidden_units=8, seeds=[3, 4])
    network.hidden.bias.assign(np.random.default_rng(1).normal(0, 0.1, (2, 8)).astype(np.float32))
    network.logits.bias.assign(np.array([[0.5, -0.2, 0.1], [-0.1, 0.4, 0.0]], np.float32))
    x = np.random.default_rng(0).normal(size=(40, 28, 28, 1)).astype(np.float32)
    flat = x.reshape(40, -1).astype(np.float64)
    weights = weights_by_path(network)
    got = mas_importance(network, x, np.arange(3))
    for s in range(2):
        h = np.maximum(flat @ weights["mlp/hidden/kernel"][s] + weights["mlp/hidden/bias"][s], 0.0)
        f = h @ weights["mlp/logits/kernel"][s] + weights["mlp/logits/bias"][s]
        np.testing.assert_allclose(got["mlp/logits/kernel"][s], h.T @ np.abs(2 * f) / 40, rtol=1e-4)
        np.testing.assert_allclose(got["mlp/logits/bias"][s], np.abs(2 * f).mean(0), rtol=1e-4)


@pytest.fixture
def state(tmp_path, tiny_model, make_mnist) -> TaskAState:
    """Task A of the two-task domain scenario on synthetic data, ``tiny_model`` its checkpoint."""
    train, test = make_mnist(300, seed=1), make_mnist(50, seed=2)
    mnist.save_task(mnist.build_task(train, test, [0, 2, 4, 6, 8], 0, 0.1, seed=0), tmp_path / "data" / "task_a")
    state = TaskAState(Scenario("domain", EVEN_ODD), tmp_path / "task_a.keras", data_root=tmp_path / "data")
    save_model(tiny_model, state.model_path)
    return state


def test_mas_reads_its_param_and_accumulates_importance(state, tiny_model):
    mas = build_strategy(
        "mas", {"mas": {"lambda": 2.5, "importance": "per_example"}, "train": {"batch_size": 32}}, state
    )
    assert isinstance(mas, MAS) and mas.strength == 2.5
    omega_a = mas_importance(tiny_model, state.train_split().image, np.arange(5))
    assert mas.omega.keys() == KEYS
    for key in omega_a:
        assert mas.omega[key].shape == omega_a[key].shape and omega_a[key].shape[0] == 2
        np.testing.assert_allclose(mas.omega[key], omega_a[key], rtol=1e-6)
    # moving repetition s's weights costs lambda / 2 * sum omega_s * 0.1^2: each repetition is held by its own omega
    theta_a = weights_by_path(tiny_model)
    for s in range(2):
        for variable in tiny_model.trainable_variables:
            moved = theta_a[variable.path].copy()
            moved[s] += np.float32(0.1)
            variable.assign(moved)
        expected = 0.5 * 2.5 * sum(np.sum(omega_a[key][s].astype(np.float64)) * 0.01 for key in omega_a)
        np.testing.assert_allclose(float(mas.penalty(tiny_model)), expected, rtol=1e-4)
    for variable in tiny_model.trainable_variables:
        variable.assign(theta_a[variable.path] + np.float32(0.1))
    assert float(mas.penalty(tiny_model)) > 0
    task_b = mnist.make_split(np.zeros((10, 28, 28), np.uint8), np.full(10, 1))
    mas.end_task(tiny_model, 1, task_b)
    omega_b = mas_importance(tiny_model, task_b.image, np.arange(5))
    for key in omega_a:
        np.testing.assert_allclose(mas.omega[key], omega_a[key] + omega_b[key], rtol=1e-6)
    assert float(mas.penalty(tiny_model)) == 0.0  # re-anchored at the end of task B


def test_batch_importance_of_one_example_batches_is_the_per_example_one_over_the_outputs(make_mnist):
    # Hsu et al.'s |d mean_c f_c(x)^2 / d theta| for a batch of one example is |d ||f(x)||^2 / d theta| / C
    network = build_network(10, hidden_units=8, seeds=[4, 5])
    x, columns = make_mnist(30, seed=7).image, np.arange(5, 10)
    per_example = mas_importance(network, x, columns)
    batch = batch_mas_importance(network, x, columns, batch_size=1, salt=0)
    for key in per_example:
        np.testing.assert_allclose(batch[key], per_example[key] / 5, rtol=1e-5, atol=1e-9, err_msg=key)


def test_batch_importance_of_the_logits_layer_matches_the_hand_derived_form():
    # over batch b of m examples and C outputs, d mean f^2 / d W_ij = 2 / (m C) * sum_n h_ni f_nj: the absolute value
    # of that (signs cancel across the batch), averaged over the batches of a permutation seeded by (seed, salt)
    seeds, batch_size, count = [3, 4], 16, 40
    network = build_network(3, hidden_units=8, seeds=seeds)
    network.logits.bias.assign(np.array([[0.5, -0.2, 0.1], [-0.1, 0.4, 0.0]], np.float32))
    x = np.random.default_rng(0).normal(size=(count, 28, 28, 1)).astype(np.float32)
    flat = x.reshape(count, -1).astype(np.float64)
    weights = weights_by_path(network)
    got = batch_mas_importance(network, x, np.arange(3), batch_size, salt=2)
    for s, seed in enumerate(seeds):
        h = np.maximum(flat @ weights["mlp/hidden/kernel"][s] + weights["mlp/hidden/bias"][s], 0.0)
        f = h @ weights["mlp/logits/kernel"][s] + weights["mlp/logits/bias"][s]
        order = np.random.default_rng([seed, 2]).permutation(count)
        batches = [order[i : i + batch_size] for i in range(0, count, batch_size)]  # 16, 16 and 8 examples
        kernel = sum(np.abs(2 / (len(b) * 3) * h[b].T @ f[b]) for b in batches) / 3
        bias = sum(np.abs(2 / (len(b) * 3) * f[b].sum(0)) for b in batches) / 3
        np.testing.assert_allclose(got["mlp/logits/kernel"][s], kernel, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(got["mlp/logits/bias"][s], bias, rtol=1e-4)


def test_mas_batch_importance_reads_the_training_batch_size_and_salts_each_task(state, tiny_model, make_mnist):
    own = {"mas": {"lambda": 1.0, "importance": "batch"}, "train": {"batch_size": 64}}
    mas = build_strategy("mas", own, state)
    omega_a = batch_mas_importance(tiny_model, state.train_split().image, np.arange(5), 64, salt=0)
    for key in omega_a:
        np.testing.assert_array_equal(mas.omega[key], omega_a[key])
    task_b = make_mnist(20, seed=3)
    mas.end_task(tiny_model, 1, task_b)
    omega_b = batch_mas_importance(tiny_model, task_b.image, np.arange(5), 64, salt=1)
    for key in omega_a:
        np.testing.assert_allclose(mas.omega[key], omega_a[key] + omega_b[key], rtol=1e-6)


def test_importance_of_a_plain_keras_model_is_a_clear_error(make_mnist):
    with pytest.raises(ForgettingError, match=r"mlp \(Functional\) is not a StackedMLP"):
        mas_importance(build_mlp(5, hidden_units=8), make_mnist(4).image, np.arange(5))
