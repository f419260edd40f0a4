"""The diagonal Fisher of every repetition of the stacked network, against a slow one-example-at-a-time reference,
a hand-derived form and one-repetition networks (each repetition's Fisher is its own)."""

import numpy as np
import pytest

from forgetting.errors import ForgettingError
from forgetting.nn import fisher
from forgetting.nn.model import build_mlp, build_network, weights_by_path

KEYS = {"mlp/hidden/kernel", "mlp/hidden/bias", "mlp/logits/kernel", "mlp/logits/bias"}
ESTIMATORS = ["exact", "sampled", "empirical"]


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _assert_matches_per_repetition(fast: dict, slow: dict, repetitions: int) -> None:
    assert fast.keys() == slow.keys() == KEYS
    for key in fast:
        assert fast[key].shape == slow[key].shape and fast[key].shape[0] == repetitions, key
        for s in range(repetitions):  # each slice on its own scale: float32 sums of 40 terms in two orders
            assert _relative_error(fast[key][s], slow[key][s]) < 4e-6, (key, s)  # (1.02e-6 seen on an AVX2 CPU)


def _assert_same(got: np.ndarray, expected: np.ndarray, message: str) -> None:
    """Equal up to float32 rounding: the batched products of S repetitions may round differently from one
    repetition's (in the last bit, on some backends)."""
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0, err_msg=message)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_vectorised_fisher_matches_one_example_at_a_time(tiny_model, mnist_like, estimator):
    x, y = mnist_like.image[:40], mnist_like.label[:40]
    fast = fisher.fisher_diagonal(tiny_model, x, y, estimator, chunk=16)  # several chunks, ragged end
    slow = fisher.reference_fisher(tiny_model, x, y, estimator)
    _assert_matches_per_repetition(fast, slow, 2)
    for key in fast:
        assert np.all(fast[key] >= 0)
        assert all(np.any(fast[key][s] > 0) for s in range(2)), key
        assert not np.allclose(fast[key][0], fast[key][1]), key  # two networks, two Fishers


def test_vectorised_fisher_of_per_repetition_images_matches_the_reference(tiny_model, make_mnist):
    own = [make_mnist(20, seed=s) for s in (1, 2)]
    x, y = np.stack([o.image for o in own]), np.stack([o.label % 5 for o in own])  # (S, N, 28, 28, 1), (S, N)
    for estimator in ("exact", "empirical"):
        fast = fisher.fisher_diagonal(tiny_model, x, y, estimator, chunk=16)
        slow = fisher.reference_fisher(tiny_model, x, y, estimator)
        _assert_matches_per_repetition(fast, slow, 2)
    # repetition s's Fisher is taken on its own images only: the same as on them shared by both repetitions
    exact = fisher.fisher_diagonal(tiny_model, x, y, "exact")
    for s in range(2):
        shared = fisher.fisher_diagonal(tiny_model, x[s], y[s], "exact")
        for key in exact:
            np.testing.assert_allclose(exact[key][s], shared[key][s], rtol=1e-5, atol=0, err_msg=f"{key} {s}")
            assert not np.allclose(exact[key][s], shared[key][1 - s], rtol=1e-3), (key, s)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_each_repetition_fisher_is_that_of_a_one_repetition_network(mnist_like, estimator):
    seeds = [7, 8]
    pair = build_network(5, hidden_units=8, dropout=0.5, seeds=seeds)
    x, y = mnist_like.image[:80], mnist_like.label[:80]
    together = fisher.fisher_diagonal(pair, x, y, estimator, chunk=32)
    for s, seed in enumerate(seeds):
        alone = build_network(5, hidden_units=8, dropout=0.5, seeds=[seed])
        own = fisher.fisher_diagonal(alone, x, y, estimator, chunk=32)
        for key in together:
            assert own[key].shape == (1, *together[key].shape[1:])
            _assert_same(together[key][s], own[key][0], f"{key} {s}")


@pytest.mark.parametrize("estimator", ["exact", "sampled"])
def test_task_fisher_subsamples_per_repetition_from_its_own_seed(mnist_like, estimator):
    seeds = [7, 8]
    pair = build_network(5, hidden_units=8, seeds=seeds)
    settings = {"estimator": estimator, "num_examples": 50}
    columns = np.arange(5)
    together = fisher.task_fisher(pair, mnist_like, columns, settings, seeds)
    again = fisher.task_fisher(pair, mnist_like, columns, settings, seeds)
    for key in together:
        np.testing.assert_array_equal(together[key], again[key])
    images, labels = fisher.subsample(mnist_like, 50, seeds)
    assert images.shape == (2, 50, 28, 28, 1) and labels.shape == (2, 50)
    assert not np.array_equal(images[0], images[1])  # each repetition draws its own examples
    for s, seed in enumerate(seeds):
        one_images, one_labels = fisher.subsample(mnist_like, 50, [seed])
        np.testing.assert_array_equal(images[s], one_images[0])
        np.testing.assert_array_equal(labels[s], one_labels[0])
        alone = build_network(5, hidden_units=8, seeds=[seed])
        own = fisher.task_fisher(alone, mnist_like, columns, settings, [seed])
        other = seeds[1 - s]  # the same network on the other repetition's examples
        elsewhere = fisher.fisher_diagonal(alone, *fisher.subsample(mnist_like, 50, [other]), estimator, [seed])
        for key in together:
            _assert_same(together[key][s], own[key][0], f"{key} {s}")
            assert not np.allclose(together[key][s], elsewhere[key][0], rtol=1e-3), (key, s)
    everything, everything_labels = fisher.subsample(mnist_like, "all", seeds)
    assert everything is mnist_like.image and everything_labels is mnist_like.label
    assert fisher.subsample(mnist_like, 400, seeds)[0] is mnist_like.image  # as many as the split holds: all


@pytest.mark.parametrize("estimator", ["exact", "empirical"])
def test_fisher_of_one_head_matches_the_reference_and_ignores_the_other_heads(make_mnist, estimator):
    network = build_network(10, hidden_units=8, seeds=[2, 3])  # the task scenario's two 5-way heads
    split = make_mnist(30, seed=3)
    x, y = split.image, split.digit // 2
    head = np.arange(5, 10)
    fast = fisher.fisher_diagonal(network, x, y, estimator, chunk=16, columns=head)
    slow = fisher.reference_fisher(network, x, y, estimator, columns=head)
    _assert_matches_per_repetition(fast, slow, 2)
    assert np.all(fast["mlp/logits/kernel"][:, :, :5] == 0) and np.all(fast["mlp/logits/bias"][:, :5] == 0)
    assert np.all(fast["mlp/logits/bias"][:, 5:] > 0)


def test_exact_fisher_of_the_logits_layer_matches_the_hand_derived_form():
    # For logits z = h W + b (h the hidden activations): d log p_c / d W_ij = h_i (1[j = c] - p_j), so
    #   sum_c p_c h_i^2 (1[j = c] - p_j)^2 = h_i^2 (p_j (1 - p_j)^2 + (1 - p_j) p_j^2) = h_i^2 p_j (1 - p_j),
    # averaged over examples; for b the same without h_i^2. Per repetition, with its own weights.
    network = build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4])
    network.hidden.bias.assign(np.random.default_rng(1).normal(0, 0.1, (2, 8)).astype(np.float32))
    network.logits.bias.assign(np.array([[0.5, -0.2, 0.1, 0.0, 0.3], [-0.1, 0.4, 0.0, 0.2, -0.3]], np.float32))
    x = np.random.default_rng(0).random((50, 28, 28, 1)).astype(np.float32)
    flat = x.reshape(50, -1).astype(np.float64)
    weights = weights_by_path(network)
    got = fisher.fisher_diagonal(network, x, np.zeros(50, int), "exact")
    for s in range(2):
        h = np.maximum(flat @ weights["mlp/hidden/kernel"][s] + weights["mlp/hidden/bias"][s], 0.0)
        logits = h @ weights["mlp/logits/kernel"][s] + weights["mlp/logits/bias"][s]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        assert _relative_error(got["mlp/logits/kernel"][s], (h**2).T @ (p * (1 - p)) / 50) < 1e-5
        assert _relative_error(got["mlp/logits/bias"][s], (p * (1 - p)).mean(0)) < 1e-5


def test_fisher_is_computed_with_dropout_off(tiny_model, mnist_like):
    x, y = mnist_like.image[:40], mnist_like.label[:40]
    first = fisher.fisher_diagonal(tiny_model, x, y, "exact")
    second = fisher.fisher_diagonal(tiny_model, x, y, "exact")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_estimators_differ(tiny_model, mnist_like):
    x, y = mnist_like.image[:60], mnist_like.label[:60]
    exact, sampled, empirical = (fisher.fisher_diagonal(tiny_model, x, y, e) for e in ESTIMATORS)
    for s in range(2):
        assert not np.allclose(exact["mlp/logits/bias"][s], empirical["mlp/logits/bias"][s])
        assert not np.allclose(exact["mlp/logits/bias"][s], sampled["mlp/logits/bias"][s])


def test_sampled_estimator_draws_each_repetition_from_its_seed(tiny_model, mnist_like):
    x, y = mnist_like.image[:60], mnist_like.label[:60]
    a = fisher.fisher_diagonal(tiny_model, x, y, "sampled", seeds=[4, 5])
    b = fisher.fisher_diagonal(tiny_model, x, y, "sampled", seeds=[4, 5])
    c = fisher.fisher_diagonal(tiny_model, x, y, "sampled", seeds=[4, 6])
    np.testing.assert_array_equal(a["mlp/hidden/kernel"], b["mlp/hidden/kernel"])
    np.testing.assert_array_equal(a["mlp/hidden/kernel"][0], c["mlp/hidden/kernel"][0])  # repetition 0: seed 4
    assert not np.array_equal(a["mlp/hidden/kernel"][1], c["mlp/hidden/kernel"][1])
    weights = fisher.class_weights(tiny_model, x, y, "sampled", [4, 5])
    assert weights.shape == (2, 60, 5)
    np.testing.assert_array_equal(weights.sum(-1), 1.0)
    np.testing.assert_array_equal(weights[0], fisher.class_weights(tiny_model, x, y, "sampled", [4, 6])[0])
    empirical = fisher.class_weights(tiny_model, x, y, "empirical", [4, 5])
    np.testing.assert_array_equal(empirical.argmax(-1), np.broadcast_to(y, (2, 60)))


def test_unknown_estimator_is_a_clear_error(tiny_model, mnist_like):
    with pytest.raises(ForgettingError, match="unknown Fisher estimator 'mean': use one of exact, sampled, empirical"):
        fisher.fisher_diagonal(tiny_model, mnist_like.image[:4], mnist_like.label[:4], "mean")


def test_a_plain_keras_model_is_a_clear_error(mnist_like):
    with pytest.raises(ForgettingError, match=r"mlp \(Functional\) is not a StackedMLP"):
        fisher.fisher_diagonal(build_mlp(5, hidden_units=8), mnist_like.image[:4], mnist_like.label[:4], seeds=[0])


def test_save_and_load_round_trip(tmp_path, tiny_model, mnist_like):
    diagonal = fisher.fisher_diagonal(tiny_model, mnist_like.image[:20], mnist_like.label[:20])
    theta = weights_by_path(tiny_model)
    fisher.save_fisher(tmp_path / "fisher.npz", theta, diagonal)
    theta_back, fisher_back = fisher.load_fisher(tmp_path / "fisher.npz")
    assert theta_back.keys() == fisher_back.keys() == theta.keys() == KEYS
    for key in theta:
        assert fisher_back[key].shape == theta[key].shape and fisher_back[key].shape[0] == 2
        np.testing.assert_array_equal(theta_back[key], theta[key])
        np.testing.assert_array_equal(fisher_back[key], diagonal[key])
    assert [p.name for p in tmp_path.iterdir()] == ["fisher.npz"]  # no temporary left behind


def test_missing_corrupt_and_inconsistent_fisher_files_are_clear_errors(tmp_path):
    with pytest.raises(ForgettingError, match="missing: run `dvc repro --force --single-item fisher`"):
        fisher.load_fisher(tmp_path / "fisher.npz")
    (tmp_path / "fisher.npz").write_bytes(b"\x00garbage")
    with pytest.raises(ForgettingError, match=r"corrupt \(.*\): run `dvc repro --force --single-item fisher`"):
        fisher.load_fisher(tmp_path / "fisher.npz")
    np.savez(tmp_path / "half.npz", **{"theta/w": np.ones(3)})
    with pytest.raises(ForgettingError, match="does not hold matching theta/ and fisher/ arrays"):
        fisher.load_fisher(tmp_path / "half.npz")
    np.savez(tmp_path / "neg.npz", **{"theta/w": np.ones(3), "fisher/w": -np.ones(3)})
    with pytest.raises(ForgettingError, match="holds negative values"):
        fisher.load_fisher(tmp_path / "neg.npz")
    np.savez(tmp_path / "nan.npz", **{"theta/w": np.ones(3), "fisher/w": np.full(3, np.nan)})
    with pytest.raises(ForgettingError, match="holds non-finite values"):
        fisher.load_fisher(tmp_path / "nan.npz")
