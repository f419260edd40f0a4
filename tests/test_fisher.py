import keras
import numpy as np
import pytest

from forgetting import fisher
from forgetting.errors import ForgettingError
from forgetting.model import build_mlp, weights_by_path


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("estimator", ["exact", "sampled", "empirical"])
def test_vectorised_fisher_matches_one_example_at_a_time(tiny_model, mnist_like, estimator):
    x, y = mnist_like.image[:60], mnist_like.label[:60]
    fast = fisher.fisher_diagonal(tiny_model, x, y, estimator, seed=11, chunk=16)  # several chunks, ragged end
    slow = fisher.reference_fisher(tiny_model, x, y, estimator, seed=11)
    assert fast.keys() == slow.keys() == {"hidden/kernel", "hidden/bias", "logits/kernel", "logits/bias"}
    for key in fast:
        assert fast[key].shape == slow[key].shape
        assert _relative_error(fast[key], slow[key]) < 1e-6, key
        assert np.all(fast[key] >= 0)
        assert np.any(fast[key] > 0)


@pytest.mark.parametrize("estimator", ["exact", "empirical"])
def test_fisher_of_one_head_matches_the_reference_and_ignores_the_other_heads(make_mnist, estimator):
    keras.utils.set_random_seed(5)
    model = build_mlp(10, hidden_units=8)  # the task scenario's two 5-way heads
    split = make_mnist(40, seed=3)
    x, y = split.image, split.digit // 2
    head = np.arange(5, 10)
    fast = fisher.fisher_diagonal(model, x, y, estimator, seed=2, chunk=16, columns=head)
    slow = fisher.reference_fisher(model, x, y, estimator, seed=2, columns=head)
    for key in fast:
        assert _relative_error(fast[key], slow[key]) < 1e-6, key
    assert np.all(fast["logits/kernel"][:, :5] == 0) and np.all(fast["logits/bias"][:5] == 0)
    assert np.all(fast["logits/bias"][5:] > 0)


def test_task_fisher_subsamples_with_the_seed(tiny_model, mnist_like):
    settings = {"estimator": "exact", "num_examples": 50}
    first = fisher.task_fisher(tiny_model, mnist_like, np.arange(5), settings, seed=3)
    again = fisher.task_fisher(tiny_model, mnist_like, np.arange(5), settings, seed=3)
    part = fisher.subsample(mnist_like, 50, seed=3)
    assert len(part) == 50
    expected = fisher.fisher_diagonal(tiny_model, part.image, part.label, "exact")
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
        np.testing.assert_array_equal(first[key], expected[key])
    assert fisher.subsample(mnist_like, "all", seed=3) is mnist_like


def test_estimators_differ(tiny_model, mnist_like):
    x, y = mnist_like.image[:60], mnist_like.label[:60]
    exact, sampled, empirical = (
        fisher.fisher_diagonal(tiny_model, x, y, e, seed=1) for e in ("exact", "sampled", "empirical")
    )
    assert not np.allclose(exact["logits/bias"], empirical["logits/bias"])
    assert not np.allclose(exact["logits/bias"], sampled["logits/bias"])


def test_exact_fisher_of_softmax_regression_matches_the_hand_derived_form():
    # For logits z = x W + b:  d log p_c / d W_ij = x_i (1[j = c] - p_j), so
    #   sum_c p_c x_i^2 (1[j = c] - p_j)^2 = x_i^2 (p_j (1 - p_j)^2 + (1 - p_j) p_j^2) = x_i^2 p_j (1 - p_j),
    # averaged over examples; for b the same without x_i^2.
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(28, 28, 1))
    outputs = keras.layers.Dense(5, name="logits")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.get_layer("logits").bias.assign(np.array([0.5, -0.2, 0.1, 0.0, 0.3], np.float32))
    x = np.random.default_rng(0).random((50, 28, 28, 1)).astype(np.float32)
    logits = (
        x.reshape(50, -1).astype(np.float64) @ model.get_layer("logits").kernel.numpy()
        + model.get_layer("logits").bias.numpy()
    )
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    flat = x.reshape(50, -1).astype(np.float64)
    expected_kernel = (flat**2).T @ (p * (1 - p)) / 50
    expected_bias = (p * (1 - p)).mean(0)
    got = fisher.fisher_diagonal(model, x, np.zeros(50, int), "exact")
    assert _relative_error(got["logits/kernel"], expected_kernel) < 1e-5
    assert _relative_error(got["logits/bias"], expected_bias) < 1e-5


def test_fisher_is_computed_with_dropout_off(tiny_model, mnist_like):
    x, y = mnist_like.image[:40], mnist_like.label[:40]
    first = fisher.fisher_diagonal(tiny_model, x, y, "exact")
    second = fisher.fisher_diagonal(tiny_model, x, y, "exact")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_sampled_estimator_is_seeded(tiny_model, mnist_like):
    x, y = mnist_like.image[:60], mnist_like.label[:60]
    a = fisher.fisher_diagonal(tiny_model, x, y, "sampled", seed=4)
    b = fisher.fisher_diagonal(tiny_model, x, y, "sampled", seed=4)
    np.testing.assert_array_equal(a["hidden/kernel"], b["hidden/kernel"])


def test_unknown_estimator_is_a_clear_error(tiny_model, mnist_like):
    with pytest.raises(ForgettingError, match="unknown Fisher estimator 'mean': use one of exact, sampled, empirical"):
        fisher.fisher_diagonal(tiny_model, mnist_like.image[:4], mnist_like.label[:4], "mean")


def test_save_and_load_round_trip(tmp_path, tiny_model, mnist_like):
    diagonal = fisher.fisher_diagonal(tiny_model, mnist_like.image[:20], mnist_like.label[:20])
    theta = weights_by_path(tiny_model)
    fisher.save_fisher(tmp_path / "fisher.npz", theta, diagonal)
    theta_back, fisher_back = fisher.load_fisher(tmp_path / "fisher.npz")
    assert theta_back.keys() == fisher_back.keys() == theta.keys()
    for key in theta:
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
