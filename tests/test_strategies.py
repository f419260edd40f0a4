import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, split_into_tasks

from forgetting import data, fisher, training
from forgetting.errors import ForgettingError
from forgetting.model import build_mlp, save_model, weights_by_path
from forgetting.scenarios import Scenario
from forgetting.strategies import (
    EWC,
    L2,
    MAS,
    SI,
    STRATEGIES,
    LwF,
    Naive,
    OnlineEWC,
    QuadraticPenalty,
    Replay,
    TaskAState,
    build_strategy,
    strategy_class,
)
from forgetting.strategies.base import PathIntegral

DOMAIN = Scenario("domain", EVEN_ODD)


def _shifted_copy(theta: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(size=v.shape)).astype(np.float32) for k, v in theta.items()}


def test_registry_names_the_strategies():
    assert {
        "naive": Naive,
        "l2": L2,
        "ewc": EWC,
        "online_ewc": OnlineEWC,
        "si": SI,
        "mas": MAS,
        "lwf": LwF,
        "replay": Replay,
    } == {name: strategy_class(name) for name in STRATEGIES}
    assert all(strategy_class(name).name == name for name in STRATEGIES)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ForgettingError, match="unknown strategy 'agem': use one of naive, l2, ewc, online_ewc, si"):
        build_strategy("agem", {}, TaskAState(DOMAIN))


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


def test_penalty_sums_its_anchors_and_anchor_at_replaces_them(tiny_model):
    theta = weights_by_path(tiny_model)
    first, second = _shifted_copy(theta, 1), _shifted_copy(theta, 2)
    rng = np.random.default_rng(3)
    f1, f2 = ({k: rng.random(v.shape).astype(np.float32) for k, v in theta.items()} for _ in range(2))
    both = QuadraticPenalty(2.0, first, f1)
    both.add_anchor(second, f2)
    one, other = QuadraticPenalty(2.0, first, f1), QuadraticPenalty(2.0, second, f2)
    assert float(both.penalty(tiny_model)) == pytest.approx(
        float(one.penalty(tiny_model)) + float(other.penalty(tiny_model)), rel=1e-6
    )
    both.anchor_at(second, f2)
    assert float(both.penalty(tiny_model)) == pytest.approx(float(other.penalty(tiny_model)), rel=1e-6)


def test_penalty_is_zero_at_the_anchor(tiny_model):
    theta = weights_by_path(tiny_model)
    assert float(QuadraticPenalty(10.0, theta, _shifted_copy(theta, 0)).penalty(tiny_model)) == 0.0


@pytest.fixture
def task_a_state(tmp_path, tiny_model, make_mnist) -> TaskAState:
    """Task A's files as the train_a and fisher stages leave them, for a tiny model and synthetic data."""
    train, test = make_mnist(600, seed=1), make_mnist(100, seed=2)
    for t, digits in enumerate(EVEN_ODD):
        data.save_task(
            data.build_task(train, test, list(digits), t, 0.1, seed=0), tmp_path / "data" / f"task_{'ab'[t]}"
        )
    state = TaskAState(
        DOMAIN, tmp_path / "task_a.keras", tmp_path / "fisher.npz", tmp_path / "path.npz", tmp_path / "data"
    )
    save_model(tiny_model, state.model_path)
    task_a = state.train_split()
    fisher.save_fisher(
        state.fisher_path, weights_by_path(tiny_model), fisher.fisher_diagonal(tiny_model, task_a.image, task_a.label)
    )
    return state


PARAMS = {
    "seed": 3,
    "alpha": 40.0,
    "fisher": {"estimator": "exact", "num_examples": "all"},
    "online_ewc": {"alpha": 40.0, "gamma": 0.5},
    "l2": {"weight": 0.7},
    "mas": {"lambda": 2.0},
}


def test_l2_ewc_and_online_ewc_read_their_own_params(task_a_state):
    theta_a, diagonal = task_a_state.fisher()
    l2 = build_strategy("l2", PARAMS, task_a_state)
    ewc = build_strategy("ewc", PARAMS, task_a_state)
    online = build_strategy("online_ewc", PARAMS, task_a_state)
    assert (l2.strength, l2.terms[0][1]) == (0.7, None)
    assert ewc.strength == online.strength == 40.0 and online.gamma == 0.5
    for strategy in (ewc, online):
        ((anchor, importance),) = strategy.terms
        for key in theta_a:
            np.testing.assert_array_equal(importance[key].numpy(), diagonal[key])
            np.testing.assert_array_equal(anchor[key].numpy(), theta_a[key])
    for key in theta_a:
        np.testing.assert_array_equal(l2.terms[0][0][key].numpy(), theta_a[key])


def test_after_a_task_ewc_adds_a_penalty_and_online_ewc_keeps_one_with_a_running_fisher(task_a_state, tiny_model):
    theta_a, fisher_a = task_a_state.fisher()
    task_b = data.load_task("task_b", "train", DOMAIN, task_a_state.data_root)
    ewc = build_strategy("ewc", PARAMS, task_a_state)
    online = build_strategy("online_ewc", PARAMS, task_a_state)
    assert float(ewc.penalty(tiny_model)) == 0.0 == float(online.penalty(tiny_model))  # two tasks: the same penalty
    moved = _shifted_copy(theta_a, 7)
    for variable in tiny_model.trainable_variables:
        variable.assign(moved[variable.path])
    assert float(ewc.penalty(tiny_model)) == pytest.approx(float(online.penalty(tiny_model)), rel=1e-6)
    ewc.end_task(tiny_model, 1, task_b)
    online.end_task(tiny_model, 1, task_b)
    fisher_b = fisher.fisher_diagonal(tiny_model, task_b.image, task_b.label)
    assert len(ewc.terms) == 2 and len(online.terms) == 1
    ((anchor, running),) = online.terms
    for key in fisher_b:
        np.testing.assert_allclose(ewc.terms[1][1][key].numpy(), fisher_b[key], rtol=1e-6)
        np.testing.assert_array_equal(ewc.terms[1][0][key].numpy(), moved[key])
        np.testing.assert_allclose(running[key].numpy(), 0.5 * fisher_a[key] + fisher_b[key], rtol=1e-6)
        np.testing.assert_array_equal(anchor[key].numpy(), moved[key])


def test_l2_re_anchors_after_each_task(task_a_state, tiny_model):
    l2 = build_strategy("l2", PARAMS, task_a_state)
    moved = _shifted_copy(weights_by_path(tiny_model), 8)
    for variable in tiny_model.trainable_variables:
        variable.assign(moved[variable.path])
    assert float(l2.penalty(tiny_model)) > 0
    l2.end_task(tiny_model, 1, task_a_state.train_split())
    assert float(l2.penalty(tiny_model)) == 0.0


def test_ewc_refuses_a_fisher_file_of_other_weights(task_a_state):
    theta_a, diagonal = task_a_state.fisher()
    fisher.save_fisher(task_a_state.fisher_path, _shifted_copy(theta_a, 5), diagonal)
    for name in ("ewc", "online_ewc"):
        with pytest.raises(ForgettingError, match=r"computed for other weights .*: run `dvc repro fisher`"):
            build_strategy(name, PARAMS, task_a_state)


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras", tmp_path / "fisher.npz")
    rebuild = r"run `dvc repro --force --single-item train_a`"
    with pytest.raises(ForgettingError, match=r"task_a\.keras is missing: " + rebuild):
        build_strategy("l2", PARAMS, state)
    (tmp_path / "task_a.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ForgettingError, match=r"corrupt or not a Keras model .*: " + rebuild):
        build_strategy("l2", PARAMS, state)


def _finetune(strategy, model_path, split, seed=0):
    training.seed_everything(seed)
    net = keras.saving.load_model(model_path, compile=False)
    training.finetune(net, strategy, DOMAIN, split, None, epochs=2, batch_size=16, learning_rate=1e-2, verbose=0)
    return weights_by_path(net)


def test_ewc_with_alpha_zero_equals_naive(task_a_state, mnist_like):
    theta_a, diagonal = task_a_state.fisher()
    args = (DOMAIN, PARAMS["fisher"], 0)
    naive = _finetune(Naive(), task_a_state.model_path, mnist_like)
    ewc_zero = _finetune(EWC(0.0, theta_a, diagonal, *args), task_a_state.model_path, mnist_like)
    ewc_strong = _finetune(EWC(1e4, theta_a, diagonal, *args), task_a_state.model_path, mnist_like)
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


def _consolidated_task_b(strategy, theta_a: dict[str, np.ndarray]) -> bool:
    """Whether ``strategy`` holds something of task B (task 1) after the sequence, by what kind of strategy it is."""
    if isinstance(strategy, QuadraticPenalty):
        anchor = strategy.terms[-1][0]
        return any(not np.array_equal(anchor[k].numpy(), theta_a[k]) for k in theta_a)
    if isinstance(strategy, LwF):
        return any(not np.array_equal(v.numpy(), theta_a[v.path]) for v in strategy.teacher.weights)
    if isinstance(strategy, Replay):
        return bool(np.any(strategy.buffer.task == 1))
    return True  # naive keeps nothing


@pytest.mark.parametrize("kind", ["domain", "task", "class"])
def test_every_strategy_trains_through_a_sequence_in_every_scenario(make_mnist, tmp_path, kind):
    """The whole registry on three synthetic tasks: each strategy ends with finite weights, a log of every task,
    and something of task B consolidated before task C."""
    scenario = Scenario(kind, ((0, 1, 2), (3, 4, 5), (6, 7, 8)))
    train = split_into_tasks(make_mnist(450, seed=1), scenario)
    training.seed_everything(0)
    net = build_mlp(scenario.num_outputs, hidden_units=8)
    recorder = PathIntegral(net)
    training.fit(training.ContinualModel(net, scenario, path_integral=recorder), train[0], None, 1, 32, 1e-2, verbose=0)
    for t, split in enumerate(train):
        data.save_task({"train": split}, tmp_path / "data" / scenario.names[t])
    state = TaskAState(scenario, tmp_path / "a.keras", tmp_path / "f.npz", tmp_path / "p.npz", tmp_path / "data")
    save_model(net, state.model_path)
    task_a_fisher = fisher.fisher_diagonal(net, train[0].image, train[0].label, columns=scenario.columns(0))
    fisher.save_fisher(state.fisher_path, weights_by_path(net), task_a_fisher)
    recorder.save(state.path_integral_path)
    params = PARAMS | {
        "si": {"c": 1.0, "xi": 0.1},
        "lwf": {"temperature": 2.0, "weight": 1.0},
        "replay": {"buffer_size": 30, "shift": 1},
    }
    tests = dict(zip(scenario.names, train, strict=True))
    for name in STRATEGIES:
        strategy = build_strategy(name, params, state)
        model = keras.saving.load_model(state.model_path, compile=False)
        log = training.TaskAccuracyLog(tests, scenario, tmp_path / f"{name}.csv", "task_a")
        training.train_sequence(
            model, strategy, scenario, train, train, log, epochs=1, batch_size=32, learning_rate=1e-2, verbose=0
        )
        assert all(np.all(np.isfinite(v)) for v in weights_by_path(model).values()), name
        assert [r["task"] for r in log.rows] == ["task_a", "task_b", "task_c"], name
        assert _consolidated_task_b(strategy, weights_by_path(net)), name
