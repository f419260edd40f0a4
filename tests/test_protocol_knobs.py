"""The knobs the literature's protocols need: several hidden layers (``model.hidden_units: [400, 400]``, Hsu et al.
2018 and van de Ven et al.'s MLP) and, in the class scenario, a softmax over the classes seen so far
(``class_outputs: seen``)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIVE_PAIRS, split_into_tasks

from forgetting.data.scenarios import MASKED, Scenario
from forgetting.evaluation import metrics
from forgetting.nn import fisher
from forgetting.nn.model import INPUT_DEFAULTS, build_network, load_model, repetition, save_model, weights_by_path
from forgetting.reporting.report import num_parameters
from forgetting.strategies.mas import mas_importance, reference_mas_importance
from forgetting.training import loop

CLASS = Scenario("class", FIVE_PAIRS)
SEEN = Scenario("class", FIVE_PAIRS, "seen")


def _params(seed: int, seeds: int, hidden_units) -> dict:
    return {
        "seed": seed,
        "seeds": seeds,
        "model": {"hidden_units": hidden_units, "dropout": 0.0, "init": "glorot", **INPUT_DEFAULTS},
        "train": {"batch_size": 32, "learning_rate": 1e-3, "optimizer": "adam"},
    }


def test_several_hidden_layers_are_stacked_saved_and_unstacked(tmp_path, mnist_like):
    network = build_network(5, [16, 8], dropout=0.2, seeds=[3, 4])
    assert [(v.path, tuple(v.shape)) for v in network.trainable_variables] == [
        ("mlp/hidden/kernel", (2, 784, 16)),
        ("mlp/hidden/bias", (2, 16)),
        ("mlp/hidden_2/kernel", (2, 16, 8)),
        ("mlp/hidden_2/bias", (2, 8)),
        ("mlp/logits/kernel", (2, 8, 5)),
        ("mlp/logits/bias", (2, 5)),
    ]
    save_model(network, tmp_path / "two.keras")
    loaded = load_model(tmp_path / "two.keras", stage="test")
    x = mnist_like.image[:20]
    np.testing.assert_array_equal(loaded.per_repetition(x), network.per_repetition(x))
    np.testing.assert_allclose(repetition(loaded, 1)(x), network.per_repetition(x)[1], rtol=1e-6, atol=1e-6)
    params = {"model": {"hidden_units": [400, 400]}, "scenario": "class", "tasks": [list(p) for p in FIVE_PAIRS]}
    assert num_parameters(params) == 784 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10  # Hsu et al.'s 478,410
    params["model"]["input_padding"] = 2  # their 32 x 32 input: 1024 x 400 weights in the first layer
    assert num_parameters(params) == 1024 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10


def test_a_repetition_of_a_deeper_mlp_trains_exactly_as_it_would_alone(mnist_like):
    stacked, _ = loop.train_new_model(_params(5, 2, [12, 8]), CLASS, mnist_like, None, epochs=1)
    alone, _ = loop.train_new_model(_params(6, 1, [12, 8]), CLASS, mnist_like, None, epochs=1)
    for key, value in weights_by_path(alone).items():
        np.testing.assert_array_equal(weights_by_path(stacked)[key][1], value[0], err_msg=key)


@pytest.mark.parametrize(
    ("estimator", "inputs"),
    [("exact", {}), ("empirical", {}), ("exact", {"input_padding": 2, "input_mean": 0.1, "input_sd": 0.2752})],
)
def test_the_fisher_and_mas_of_a_deeper_mlp_match_the_references(mnist_like, estimator, inputs):
    """The closed forms against autodiff through the network, Hsu et al.'s padded, normalised input included."""
    network = build_network(5, [12, 8], seeds=[3, 4], **inputs)
    x, y = mnist_like.image[:30], mnist_like.label[:30]
    fast, slow = (
        fisher.fisher_diagonal(network, x, y, estimator, chunk=16),
        fisher.reference_fisher(network, x, y, estimator),
    )
    omega, reference = mas_importance(network, x, np.arange(5)), reference_mas_importance(network, x, np.arange(5))
    assert len(fast) == len(omega) == 6
    for key in fast:  # float32 sums in two orders: within 1e-5 of each value or of the array's scale
        for got, expected in ((fast[key], slow[key]), (omega[key], reference[key])):
            scale = float(np.max(np.abs(expected)))
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=key)


def test_the_training_loop_builds_the_network_on_params_inputs(mnist_like):
    """model.input_padding / input_mean / input_sd reach the network that train_a trains: its first layer takes
    the 32 x 32 padded digits, normalised, and training it alone or stacked gives the same bits."""
    hsu = {"input_padding": 2, "input_mean": 0.1, "input_sd": 0.2752}
    params, alone_params = _params(5, 2, 8), _params(6, 1, 8)
    for p in (params, alone_params):
        p["model"] |= hsu
    stacked, _ = loop.train_new_model(params, CLASS, mnist_like, None, epochs=1)
    alone, _ = loop.train_new_model(alone_params, CLASS, mnist_like, None, epochs=1)
    assert stacked.input_settings == hsu and stacked.hidden.kernel.shape == (2, 1024, 8)
    for key, value in weights_by_path(alone).items():
        np.testing.assert_array_equal(weights_by_path(stacked)[key][1], value[0], err_msg=key)
    plain, _ = loop.train_new_model(_params(6, 1, 8), CLASS, mnist_like, None, epochs=1)
    assert not np.allclose(weights_by_path(plain)["mlp/logits/kernel"], weights_by_path(alone)["mlp/logits/kernel"])


def test_seen_outputs_mask_the_digits_of_later_tasks():
    logits = tf.constant(np.arange(20, dtype=np.float32).reshape(2, 10))
    assert SEEN.masks_unseen and not CLASS.masks_unseen and not Scenario("domain", FIVE_PAIRS, "seen").masks_unseen
    masked = SEEN.restrict(logits, 1).numpy()  # tasks 0 and 1 seen: digits 0-3
    np.testing.assert_array_equal(masked[:, :4], logits.numpy()[:, :4])
    assert np.all(masked[:, 4:] == MASKED)
    assert SEEN.restrict(logits, 4) is logits and SEEN.restrict(logits, None) is logits  # the last task, joint
    assert CLASS.restrict(logits, 1) is logits
    np.testing.assert_array_equal(SEEN.columns(1), [0, 1, 2, 3])  # the Fisher's and MAS's softmax
    np.testing.assert_array_equal(CLASS.columns(1), np.arange(10))


def test_with_seen_outputs_task_a_never_moves_the_outputs_of_later_digits(make_mnist):
    """Training on task A (digits 0, 1) with the softmax over its own digits: the logits of digits 2-9 get no
    gradient, so their weights stay as initialised; over every digit they are pushed down."""
    task_a = split_into_tasks(make_mnist(300), CLASS)[0]
    params = _params(5, 2, 16)
    initial = weights_by_path(build_network(10, 16, seeds=[5, 6]))
    seen, _ = loop.train_new_model(params, SEEN, task_a, None, epochs=1)
    every, _ = loop.train_new_model(params, CLASS, task_a, None, epochs=1)
    kernel, bias = "mlp/logits/kernel", "mlp/logits/bias"
    np.testing.assert_array_equal(weights_by_path(seen)[kernel][..., 2:], initial[kernel][..., 2:])
    np.testing.assert_array_equal(weights_by_path(seen)[bias][..., 2:], 0.0)
    assert np.all(weights_by_path(every)[bias][..., 2:] < 0)
    # the per-epoch accuracy of task A's test split, while task A trains: over digits 0 and 1 only
    accuracy = metrics.accuracy(every, task_a, SEEN, task=0)
    logits = every.per_repetition(task_a.image).numpy()[..., :2]
    np.testing.assert_array_equal(accuracy, np.mean(np.argmax(logits, -1) == task_a.label, axis=1))
