import keras
import numpy as np
import pytest
import tensorflow as tf

from forgetting import fisher, training
from forgetting.errors import ForgettingError
from forgetting.model import save_model, weights_by_path
from forgetting.strategies import EWC, L2, STRATEGIES, LwF, Naive, QuadraticPenalty, Replay, TaskAState, build_strategy


def _shifted_copy(theta: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(size=v.shape)).astype(np.float32) for k, v in theta.items()}


def test_registry_names_the_strategies():
    assert {"naive": Naive, "l2": L2, "ewc": EWC, "replay": Replay, "lwf": LwF} == STRATEGIES


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ForgettingError, match="unknown strategy 'si': use one of naive, l2, ewc, replay, lwf"):
        build_strategy("si", {}, TaskAState())


def test_naive_has_no_penalty(tiny_model):
    assert float(Naive().penalty(tiny_model)) == 0.0


@pytest.mark.parametrize("with_importance", [False, True])
def test_quadratic_penalty_value_and_gradient(tiny_model, with_importance):
    theta = weights_by_path(tiny_model)
    anchor = _shifted_copy(theta, seed=1)
    rng = np.random.default_rng(2)
    importance = {k: rng.random(v.shape).astype(np.float32) for k, v in theta.items()} if with_importance else None
    strength = 3.5
    penalty = QuadraticPenalty(strength, anchor, importance)
    variables = tiny_model.trainable_variables
    with tf.GradientTape() as tape:
        value = penalty.penalty(tiny_model)
    grads = tape.gradient(value, variables)
    weight = importance or {k: np.ones_like(v) for k, v in theta.items()}
    expected = 0.5 * strength * sum(np.sum(weight[k].astype(np.float64) * (theta[k] - anchor[k]) ** 2) for k in theta)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    for variable, grad in zip(variables, grads, strict=True):
        k = variable.path
        np.testing.assert_allclose(grad.numpy(), strength * weight[k] * (theta[k] - anchor[k]), rtol=1e-5, atol=1e-6)


def test_penalty_is_zero_at_the_anchor(tiny_model):
    theta = weights_by_path(tiny_model)
    assert float(QuadraticPenalty(10.0, theta, _shifted_copy(theta, 0)).penalty(tiny_model)) == 0.0


@pytest.fixture
def task_a_state(tmp_path, tiny_model, mnist_like) -> TaskAState:
    save_model(tiny_model, tmp_path / "task_a.keras")
    diagonal = fisher.fisher_diagonal(tiny_model, mnist_like.image[:50], mnist_like.label[:50])
    fisher.save_fisher(tmp_path / "fisher.npz", weights_by_path(tiny_model), diagonal)
    return TaskAState(tmp_path / "task_a.keras", tmp_path / "fisher.npz")


def test_l2_and_ewc_read_their_own_params(task_a_state):
    theta_a, diagonal = task_a_state.fisher()
    l2 = build_strategy("l2", {"l2": {"weight": 0.7}}, task_a_state)
    ewc = build_strategy("ewc", {"alpha": 40.0}, task_a_state)
    assert (l2.strength, l2.importance) == (0.7, None)
    assert ewc.strength == 40.0
    for key in theta_a:
        np.testing.assert_array_equal(ewc.importance[key].numpy(), diagonal[key])
        np.testing.assert_array_equal(ewc.anchor[key].numpy(), theta_a[key])
        np.testing.assert_array_equal(l2.anchor[key].numpy(), theta_a[key])


def test_ewc_refuses_a_fisher_file_of_other_weights(task_a_state, tiny_model):
    theta_a, diagonal = task_a_state.fisher()
    fisher.save_fisher(task_a_state.fisher_path, _shifted_copy(theta_a, 5), diagonal)
    with pytest.raises(ForgettingError, match=r"computed for other weights .*: run `dvc repro fisher`"):
        build_strategy("ewc", {"alpha": 1.0}, task_a_state)


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    state = TaskAState(tmp_path / "task_a.keras", tmp_path / "fisher.npz")
    with pytest.raises(ForgettingError, match=r"task_a\.keras is missing: run `dvc repro train_a`"):
        build_strategy("l2", {"l2": {"weight": 1.0}}, state)
    (tmp_path / "task_a.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ForgettingError, match=r"corrupt or not a Keras model .*: run `dvc repro --force train_a`"):
        build_strategy("l2", {"l2": {"weight": 1.0}}, state)


def _finetune(strategy, model_path, data, seed=0):
    training.seed_everything(seed)
    net = keras.saving.load_model(model_path, compile=False)
    training.finetune(net, strategy, data, None, epochs=2, batch_size=16, learning_rate=1e-2, verbose=0)
    return weights_by_path(net)


def test_ewc_with_alpha_zero_equals_naive(task_a_state, mnist_like):
    theta_a, diagonal = task_a_state.fisher()
    naive = _finetune(Naive(), task_a_state.model_path, mnist_like)
    ewc_zero = _finetune(EWC(0.0, theta_a, diagonal), task_a_state.model_path, mnist_like)
    ewc_strong = _finetune(EWC(1e4, theta_a, diagonal), task_a_state.model_path, mnist_like)
    for key in naive:
        np.testing.assert_array_equal(naive[key], ewc_zero[key])
    assert any(not np.array_equal(naive[k], ewc_strong[k]) for k in naive)


def test_a_strong_penalty_keeps_weights_near_the_anchor(task_a_state, mnist_like):
    theta_a = task_a_state.theta()
    naive = _finetune(Naive(), task_a_state.model_path, mnist_like)
    held = _finetune(L2(100.0, theta_a), task_a_state.model_path, mnist_like)

    def distance(theta):
        return np.sqrt(sum(np.sum((theta[k] - theta_a[k]) ** 2) for k in theta))

    assert distance(held) < 0.5 * distance(naive)
