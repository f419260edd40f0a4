import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, split_into_tasks, synthetic_mnist

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn import fisher
from forgetting.nn.model import INPUT_DEFAULTS, build_network, load_model, save_model, weights_by_path
from forgetting.strategies import (
    AGEM,
    DER,
    EWC,
    GEM,
    L2,
    MAS,
    SI,
    EqualStepsReplay,
    GenerativeReplay,
    ICaRL,
    LwF,
    Naive,
    OnlineEWC,
    QuadraticPenalty,
    Replay,
    RtF,
    TaskAState,
    build_strategy,
    listed,
    strategy_class,
)
from forgetting.training import loop

# its tests share module fixtures: one pytest worker runs them all
pytestmark = pytest.mark.xdist_group("test_strategies")

STRATEGY_LIST = listed()  # dvc.yaml's strategy list

DOMAIN = Scenario("domain", EVEN_ODD)


def _shifted_copy(theta: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(size=v.shape)).astype(np.float32) for k, v in theta.items()}


def _assign(network, weights: dict[str, np.ndarray]) -> None:
    for variable in network.trainable_variables:
        variable.assign(weights[variable.path])


def _teacher_weights(lwf) -> dict[str, np.ndarray]:
    """LwF's teacher's weights by path (it is frozen: none of them is trainable)."""
    return {v.path: np.array(v.numpy()) for v in lwf.teacher.weights}


def _slice(weights: dict[str, np.ndarray], s: int) -> dict[str, np.ndarray]:
    """Repetition s's weights, with a repetition axis of one."""
    return {k: v[s : s + 1] for k, v in weights.items()}


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
        "replay_equal_steps": EqualStepsReplay,
        "agem": AGEM,
        "gem": GEM,
        "der": DER,
        "icarl": ICaRL,
        "generative_replay": GenerativeReplay,
        "rtf": RtF,
    } == {name: strategy_class(name) for name in STRATEGY_LIST}
    assert all(strategy_class(name).name == name for name in STRATEGY_LIST)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ForgettingError, match="unknown strategy 'gem2': use one of naive, l2, ewc, online_ewc, si"):
        build_strategy("gem2", {}, TaskAState(DOMAIN))


def test_naive_has_no_penalty(tiny_model):
    assert float(Naive().penalty(tiny_model)) == 0.0


@pytest.mark.parametrize("with_importance", [False, True])
def test_quadratic_penalty_value_and_gradient(tiny_model, with_importance):
    theta = weights_by_path(tiny_model)
    assert theta["mlp/hidden/kernel"].shape == (2, 784, 8)  # every weight has the repetition axis first
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


def test_quadratic_penalty_is_the_sum_of_each_repetitions_own(tiny_model):
    """The stacked penalty is the sum over repetitions of the penalty of each repetition alone (built from its seed,
    with its slice of the anchor and importance), and its gradient on slice s is repetition s's own."""
    theta = weights_by_path(tiny_model)
    anchor = _shifted_copy(theta, seed=4)
    rng = np.random.default_rng(5)
    importance = {k: rng.random(v.shape).astype(np.float32) for k, v in theta.items()}
    variables = tiny_model.trainable_variables
    with tf.GradientTape() as tape:
        stacked = QuadraticPenalty(2.5, anchor, importance).penalty(tiny_model)
    grads = {v.path: g.numpy() for v, g in zip(variables, tape.gradient(stacked, variables), strict=True)}
    total = 0.0
    for s, seed in enumerate(tiny_model.seeds):
        alone = build_network(5, hidden_units=8, dropout=0.5, seeds=(seed,))
        for k, v in weights_by_path(alone).items():
            np.testing.assert_array_equal(v[0], theta[k][s])  # repetition s is initialised from its seed only
        with tf.GradientTape() as tape:
            own = QuadraticPenalty(2.5, _slice(anchor, s), _slice(importance, s)).penalty(alone)
        own_variables = alone.trainable_variables
        for variable, grad in zip(own_variables, tape.gradient(own, own_variables), strict=True):
            np.testing.assert_allclose(grads[variable.path][s], grad.numpy()[0], rtol=1e-6)
        total += float(own)
    assert float(stacked) == pytest.approx(total, rel=1e-6)


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
        mnist.save_task(
            mnist.build_task(train, test, list(digits), t, 0.1, seed=0), tmp_path / "data" / f"task_{'ab'[t]}"
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
    "seed": 7,
    "seeds": 2,
    "alpha": 40.0,
    "fisher": {"estimator": "exact", "num_examples": "all"},
    "online_ewc": {"alpha": 40.0, "gamma": 0.5},
    "l2": {"weight": 0.7},
    "mas": {"lambda": 2.0, "importance": "per_example"},
    "train": {"batch_size": 32},
}


def test_l2_ewc_and_online_ewc_read_their_own_params(task_a_state):
    theta_a, diagonal = task_a_state.fisher()
    l2 = build_strategy("l2", PARAMS, task_a_state)
    ewc = build_strategy("ewc", PARAMS, task_a_state)
    online = build_strategy("online_ewc", PARAMS, task_a_state)
    assert (l2.strength, l2.terms[0][1]) == (0.7, None)
    assert ewc.strength == online.strength == 40.0 and online.gamma == 0.5
    assert diagonal["mlp/hidden/kernel"].shape == (2, 784, 8)
    for strategy in (ewc, online):
        ((anchor, importance),) = strategy.terms
        for key in theta_a:
            np.testing.assert_array_equal(importance[key].numpy(), diagonal[key])
            np.testing.assert_array_equal(anchor[key].numpy(), theta_a[key])
    for key in theta_a:
        np.testing.assert_array_equal(l2.terms[0][0][key].numpy(), theta_a[key])


def test_after_a_task_ewc_adds_a_penalty_and_online_ewc_keeps_one_with_a_running_fisher(task_a_state, tiny_model):
    theta_a, fisher_a = task_a_state.fisher()
    task_b = mnist.load_task("task_b", "train", DOMAIN, task_a_state.data_root)
    ewc = build_strategy("ewc", PARAMS, task_a_state)
    online = build_strategy("online_ewc", PARAMS, task_a_state)
    assert float(ewc.penalty(tiny_model)) == 0.0 == float(online.penalty(tiny_model))  # two tasks: the same penalty
    moved = _shifted_copy(theta_a, 7)
    _assign(tiny_model, moved)
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


@pytest.mark.parametrize("name", ["ewc", "online_ewc"])
def test_a_later_tasks_fisher_is_drawn_from_each_repetitions_seed_plus_the_task(task_a_state, tiny_model, name):
    """With a sampled Fisher on a subsample, repetition s's Fisher of task 1 is the one that a network holding
    repetition s alone draws with seed ``seeds[s] + 1``: its own examples and labels, whatever is stacked beside."""
    settings = {"estimator": "sampled", "num_examples": 64}  # 64 x 5 outputs: see SEQUENCE
    task_b = mnist.load_task("task_b", "train", DOMAIN, task_a_state.data_root)
    strategy = build_strategy(name, PARAMS | {"fisher": settings}, task_a_state)
    moved = _shifted_copy(weights_by_path(tiny_model), 9)
    _assign(tiny_model, moved)
    strategy.end_task(tiny_model, 1, task_b)
    fisher_b = strategy.fisher_of(tiny_model, 1, task_b)
    assert not np.array_equal(fisher_b["mlp/hidden/kernel"][0], fisher_b["mlp/hidden/kernel"][1])
    for s, seed in enumerate(tiny_model.seeds):
        alone = build_network(5, hidden_units=8, dropout=0.5, seeds=(seed,))
        _assign(alone, _slice(moved, s))
        own = fisher.task_fisher(alone, task_b, DOMAIN.columns(1), settings, [seed + 1])
        other_draw = fisher.task_fisher(alone, task_b, DOMAIN.columns(1), settings, [seed])
        for key, value in own.items():
            np.testing.assert_array_equal(fisher_b[key][s], value[0])
        assert any(not np.allclose(fisher_b[k][s], v[0]) for k, v in other_draw.items())


def test_l2_re_anchors_after_each_task(task_a_state, tiny_model):
    l2 = build_strategy("l2", PARAMS, task_a_state)
    _assign(tiny_model, _shifted_copy(weights_by_path(tiny_model), 8))
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


def _finetune(strategy, model_path, split):
    net = load_model(model_path, stage="train_a")
    loop.finetune(net, strategy, DOMAIN, split, None, 1, epochs=2, batch_size=16, learning_rate=1e-2, verbose=0)
    return weights_by_path(net)


def test_ewc_with_alpha_zero_equals_naive(task_a_state, mnist_like):
    theta_a, diagonal = task_a_state.fisher()
    args = (DOMAIN, PARAMS["fisher"])
    naive = _finetune(Naive(), task_a_state.model_path, mnist_like)
    ewc_zero = _finetune(EWC(0.0, theta_a, diagonal, *args), task_a_state.model_path, mnist_like)
    ewc_strong = _finetune(EWC(1e4, theta_a, diagonal, *args), task_a_state.model_path, mnist_like)
    for key in naive:
        np.testing.assert_array_equal(naive[key], ewc_zero[key])
    for s in range(2):  # each repetition is held back by the penalty
        assert any(not np.array_equal(naive[k][s], ewc_strong[k][s]) for k in naive)


def test_a_strong_penalty_keeps_weights_near_the_anchor(task_a_state, mnist_like):
    theta_a = task_a_state.theta()
    naive = _finetune(Naive(), task_a_state.model_path, mnist_like)
    held = _finetune(L2(100.0, theta_a), task_a_state.model_path, mnist_like)

    def distance(theta, s):
        return np.sqrt(sum(np.sum((theta[k][s] - theta_a[k][s]) ** 2) for k in theta))

    for s in range(2):
        assert distance(held, s) < 0.5 * distance(naive, s)


def _consolidated_task_b(strategy, theta_a: dict[str, np.ndarray]) -> bool:
    """Whether ``strategy`` holds something of task B (task 1) in every repetition after the sequence, by what kind
    of strategy it is."""
    if isinstance(strategy, QuadraticPenalty):
        anchor = strategy.terms[-1][0]
        return all(any(not np.array_equal(anchor[k].numpy()[s], theta_a[k][s]) for k in theta_a) for s in range(2))
    if isinstance(strategy, GenerativeReplay) and strategy.tasks_done != 2:  # its generator has learnt task B
        return False
    if isinstance(strategy, LwF | GenerativeReplay):
        teacher = _teacher_weights(strategy)
        return all(any(not np.array_equal(teacher[k][s], theta_a[k][s]) for k in theta_a) for s in range(2))
    if isinstance(strategy, ICaRL):  # exemplars of task B's classes, herded in every repetition
        return all(any(task == 1 for task, _ in sets) for sets in strategy.exemplars)
    if isinstance(strategy, Replay):
        return len(strategy.buffers) == 2 and all(np.any(buffer.task == 1) for buffer in strategy.buffers)
    if isinstance(strategy, DER):  # the reservoir has taken in some of task B, in every repetition
        return all(np.any(tasks[: strategy.size] == 1) for tasks in strategy.tasks.numpy())
    return True  # naive keeps nothing


# a generator small and quick enough for unit tests
TINY_GENERATOR = {"weight": 1.0, "temperature": 2.0, "epochs": 1, "iterations": None, "hidden_units": 16, "latent": 4}
TINY_GENERATOR |= {"learning_rate": 1e-3, "targets": "soft"}
TINY_FEEDBACK = {"weight": 1.0, "temperature": 2.0, "latent": 4, "epochs": 1, "iterations": None, "learning_rate": 1e-3}
TINY_FEEDBACK["task_a"] = "frozen"
SEQUENCE_PARAMS = PARAMS | {
    "seed": 3,
    "model": {"hidden_units": 12, "dropout": 0.25, "init": "glorot", **INPUT_DEFAULTS},
    "train": {"batch_size": 32, "learning_rate": 1e-2, "optimizer": "adam"},
    "si": {"c": 1.0, "xi": 0.1},
    # the protocol knobs' non-default forms, here trained through every scenario (the e2e runs train the defaults)
    "mas": {"lambda": 2.0, "importance": "batch"},
    "lwf": {"temperature": 2.0, "weight": 1.0, "loss": "vandeven2018"},
    "replay": {"buffer_size": 30, "shift": 1, "memory": "per_task", "mix": "one_to_one"},
    "agem": {"buffer_size": 30, "memory_batch": 16},
    "gem": {"buffer_size": 30, "memory_batch": 8, "margin": 0.5, "train_on_memory": True}
    | {"memory": "per_task", "mix": "one_to_one", "draws": 1},
    "der": {"buffer_size": 30, "memory_batch": 16, "alpha": 0.5, "beta": 1.0},
    "icarl": {"buffer_size": 30, "weight": 1.0},
    "generative_replay": TINY_GENERATOR,
    "rtf": TINY_FEEDBACK,
}


def _write_task_a_state(network, recorder, scenario, train, params, folder, data_root) -> TaskAState:
    """Task A's files as the train_a and fisher stages write them."""
    folder.mkdir(parents=True)
    state = TaskAState(scenario, folder / "task_a.keras", folder / "fisher.npz", folder / "path.npz", data_root)
    save_model(network, state.model_path)
    recorder.save(state.path_integral_path)
    diagonal = fisher.task_fisher(network, train, scenario.columns(0), params["fisher"], network.seeds)
    fisher.save_fisher(state.fisher_path, weights_by_path(network), diagonal)
    return state


def test_every_strategy_trains_through_a_sequence_in_every_scenario(make_mnist, tmp_path):
    """The whole registry on three synthetic tasks in the class scenario, two repetitions: each strategy ends with
    finite weights, a log of every task and repetition, and something of task B consolidated before task C in every
    repetition. The task scenario: test_each_repetition_keeps_its_own_state_through_a_sequence, which checks the same
    and more. The domain scenario, every column shared by every task (CI's time): every strategy through its stages
    in the default pipeline's end-to-end test, naive and SI through permuted MNIST's three tasks in another."""
    scenario = Scenario("class", ((0, 1, 2), (3, 4, 5), (6, 7, 8)))
    train = split_into_tasks(make_mnist(450, seed=1), scenario)
    params = SEQUENCE_PARAMS | {"model": {"hidden_units": 8, "dropout": 0.0, "init": "glorot", **INPUT_DEFAULTS}}
    net, recorder = loop.train_new_model(params, scenario, train[0], None, epochs=1, path_integral=True)
    assert net.seeds == [3, 4]
    for t, split in enumerate(train):
        mnist.save_task({"train": split}, tmp_path / "data" / scenario.names[t])
    state = _write_task_a_state(net, recorder, scenario, train[0], params, tmp_path / "a", tmp_path / "data")
    tests = dict(zip(scenario.names, train, strict=True))
    for name in STRATEGY_LIST:
        strategy = build_strategy(name, params, state)
        model = state.model()
        log = loop.TaskAccuracyLog(tests, scenario, tmp_path / f"{name}.csv", tmp_path / f"{name}_r.csv", "task_a")
        loop.train_sequence(
            model, strategy, scenario, train, [None] * 3, log, epochs=1, batch_size=32, learning_rate=1e-2, verbose=0
        )
        assert all(np.all(np.isfinite(v)) for v in weights_by_path(model).values()), name
        assert [r["task"] for r in log.rows] == ["task_a", "task_b", "task_c"], name
        assert [(r["task"], r["seed"]) for r in log.repetition_rows] == [
            (task, seed) for task in ("task_a", "task_b", "task_c") for seed in (3, 4)
        ], name
        assert _consolidated_task_b(strategy, weights_by_path(net)), name


# The per-repetition test: task A for seeds (3, 4) together and for each seed alone, then every strategy through a
# three-task sequence (so that end_task runs) in the task scenario (per-head columns, LwF's own forward pass).
# The shapes are chosen so that TensorFlow's CPU kernels compute each repetition's slice of a stacked tensor in the
# same order as the tensor of a repetition alone, so that "the same training" can be checked bit for bit: every
# batch full (128 examples per task, replay's data a multiple of 32 too). With a short last batch, a batched matrix
# product over the repetitions may round differently from a single one (by about 1e-8 for the shapes tried); the
# default pipeline's shapes are bit-identical too (README).
SEQUENCE = Scenario("task", ((0, 1), (2, 3), (4, 5)))  # 6 outputs, heads of 2
SAMPLED = {"estimator": "sampled", "num_examples": 64}  # each repetition its own examples and labels


@pytest.fixture(scope="module")
def stacked_and_alone(tmp_path_factory):
    """(the tasks' train splits, {seeds: (params, TaskAState)} for seeds (3, 4) together, 3 alone and 4 alone),
    task A trained with ``train_new_model`` (and SI's path integral) and its files written as the stages do."""
    root = tmp_path_factory.mktemp("repetitions")
    train = split_into_tasks(synthetic_mnist(640, seed=1), SEQUENCE)
    assert [len(split) for split in train] == [128] * 3
    for t, split in enumerate(train):
        mnist.save_task({"train": split}, root / "data" / SEQUENCE.names[t])
    states = {}
    for seeds in ((3, 4), (3,), (4,)):
        params = SEQUENCE_PARAMS | {
            "seed": seeds[0],
            "seeds": len(seeds),
            "model": {"hidden_units": 16, "dropout": 0.25, "init": "glorot", **INPUT_DEFAULTS},
            "fisher": SAMPLED,
            "replay": {"buffer_size": 32, "shift": 1, "memory": "class_balanced", "mix": "per_task"},
            "agem": {"buffer_size": 32, "memory_batch": 32},
            # Hsu et al.'s memory as their GEM drew it, trained on: two draws of 16 of task A, then two of 8 of each,
            # repeated 128 // 32 = 4 times
            "gem": {"buffer_size": 32, "memory_batch": 8, "margin": 0.5, "train_on_memory": True}
            | {"memory": "per_task", "mix": "one_to_one", "draws": 2},
            "der": {"buffer_size": 32, "memory_batch": 32, "alpha": 0.5, "beta": 1.0},
            "icarl": {"buffer_size": 32, "weight": 1.0},
            # two layers each way and hard targets, RtF's task A trained again with its feedback: elsewhere the defaults
            "generative_replay": TINY_GENERATOR | {"hidden_units": [16, 8], "targets": "hard"},
            "rtf": TINY_FEEDBACK | {"task_a": "joint", "iterations": 3},
        }
        net, recorder = loop.train_new_model(params, SEQUENCE, train[0], None, epochs=1, path_integral=True)
        assert net.seeds == list(seeds)
        folder = root / "_".join(map(str, seeds))
        states[seeds] = params, _write_task_a_state(net, recorder, SEQUENCE, train[0], params, folder, root / "data")
    return train, states


def _repetition_state(strategy, s: int) -> dict[str, np.ndarray]:
    """Everything ``strategy`` keeps for repetition s, by name."""
    state = {}
    if isinstance(strategy, QuadraticPenalty):
        for k, (anchor, importance) in enumerate(strategy.terms):
            state |= {f"terms[{k}].anchor.{path}": v.numpy()[s] for path, v in anchor.items()}
            state |= {f"terms[{k}].importance.{path}": v.numpy()[s] for path, v in (importance or {}).items()}
    if getattr(strategy, "path_integral", None) is not None:
        state |= {f"path_integral.start.{path}": v[s] for path, v in strategy.path_integral.start.items()}
        state |= {f"path_integral.total.{path}": v[s] for path, v in strategy.path_integral.result().items()}
    if isinstance(strategy, LwF):
        state |= {f"teacher.{path}": v[s] for path, v in _teacher_weights(strategy).items()}
        state |= {f"groups[{g}]": group.numpy() for g, group in enumerate(strategy.groups)}
    if isinstance(strategy, GenerativeReplay):
        state |= {f"teacher.{path}": v[s] for path, v in _teacher_weights(strategy).items()}
        state |= {f"generator.{v.path}": v.numpy()[s] for v in strategy.generator.weights}
        state["replayed"] = strategy.replayed(tf.constant(5)).numpy()[s]  # what it replays next
    if isinstance(strategy, RtF):
        state |= {f"previous.{v.path}": v.numpy()[s] for v in strategy.previous.weights}
    if isinstance(strategy, DER):
        state |= {f"reservoir.{k}": getattr(strategy, k).numpy()[s] for k in ("images", "labels", "tasks", "logits")}
        state["reservoir.seen"] = strategy.seen.numpy()
    if isinstance(strategy, ICaRL):
        state |= {f"teacher.{path}": v[s] for path, v in _teacher_weights(strategy).items()}
        for key, split in strategy.exemplars[s].items():
            state |= {f"exemplars{key}.{field}": getattr(split, field) for field in ("image", "label", "digit", "task")}
    elif isinstance(strategy, Replay):
        state["seed"] = np.array(strategy.seeds[s])
        for k, (images, labels) in enumerate(getattr(strategy, "memories", [])):  # GEM's, one per constraint
            state |= {f"memories[{k}].image": images.numpy()[s], f"memories[{k}].label": labels.numpy()[s]}
        state |= {
            f"buffer.{field}": getattr(strategy.buffers[s], field) for field in ("image", "label", "digit", "task")
        }
    return state


def _settings(strategy) -> dict:
    """The strategy's state that is not per repetition."""
    names = (
        "strength",
        "gamma",
        "xi",
        "temperature",
        "weight",
        "shift",
        "tasks_done",
        "memory_batch",
        "alpha",
        "beta",
        "size",
    )
    return {name: getattr(strategy, name) for name in names if hasattr(strategy, name)} | {
        "terms": len(getattr(strategy, "terms", []))
    }


# Each strategy whose per-repetition state is its own (CI's time): L2 anchors as online EWC, SI and MAS do
# (QuadraticPenalty.anchor_at, which their consolidate calls), with no importance; replay_equal_steps keeps replay's
# buffer and mix (a subclass that takes fewer steps of the same stream).
STATE_OF_ITS_OWN = [name for name in STRATEGY_LIST if name not in ("l2", "replay_equal_steps")]


@pytest.mark.parametrize("name", STATE_OF_ITS_OWN)
def test_each_repetition_keeps_its_own_state_through_a_sequence(stacked_and_alone, tmp_path, name):
    """Repetition s of a run with seeds (3, 4) is bit-identical to the run with seeds[s] alone: its weights after
    the sequence, its test accuracies along the way, and the strategy's state of it (anchors and importances,
    SI's path integral, LwF's teacher, replay's buffer and the data it replays next)."""
    train, states = stacked_and_alone
    tests = dict(zip(SEQUENCE.names, train, strict=True))
    runs = {}
    for seeds, (params, state) in states.items():
        strategy = build_strategy(name, params, state)
        network = state.model()
        csv = tmp_path / "_".join(map(str, seeds))
        log = loop.TaskAccuracyLog(tests, SEQUENCE, csv.with_suffix(".csv"), csv.with_suffix(".r.csv"), "task_a")
        loop.train_sequence(
            network, strategy, SEQUENCE, train, [None] * 3, log, epochs=1, batch_size=32, learning_rate=1e-2, verbose=0
        )
        runs[seeds] = network, strategy, log
    stacked, stacked_strategy, stacked_log = runs[3, 4]
    stacked_weights = weights_by_path(stacked)
    assert any(not np.array_equal(v[0], v[1]) for v in stacked_weights.values())  # two different repetitions
    assert all(np.all(np.isfinite(v)) for v in stacked_weights.values())
    assert [r["task"] for r in stacked_log.rows] == list(SEQUENCE.names)
    assert _consolidated_task_b(stacked_strategy, weights_by_path(states[3, 4][1].model()))
    kept = [_repetition_state(stacked_strategy, s) for s in range(2)]
    if name != "naive":
        assert kept[0] and any(not np.array_equal(kept[0][k], v) for k, v in kept[1].items() if "groups" not in k)

    for s, seed in enumerate(stacked.seeds):
        alone, alone_strategy, alone_log = runs[(seed,)]
        where = f"{name}, repetition {s} (seed {seed})"
        alone_weights = weights_by_path(alone)
        assert stacked_weights.keys() == alone_weights.keys()
        for key, value in alone_weights.items():
            np.testing.assert_array_equal(stacked_weights[key][s], value[0], err_msg=f"{where}: {key}")
        assert [r for r in stacked_log.repetition_rows if r["seed"] == seed] == alone_log.repetition_rows, where

        assert _settings(stacked_strategy) == _settings(alone_strategy), where
        alone_state = _repetition_state(alone_strategy, 0)
        assert kept[s].keys() == alone_state.keys(), where
        for key, value in alone_state.items():
            np.testing.assert_array_equal(kept[s][key], value, err_msg=f"{where}: {key}")
        if name == "replay":  # what it replays on the next task: its own buffer, shifted from its own seed
            (own,) = alone_strategy.training_data(train[2])
            beside = list(stacked_strategy.training_data(train[2]))
            assert len(beside) == 2, where
            for field in ("image", "label", "digit", "task"):
                np.testing.assert_array_equal(getattr(beside[s], field), getattr(own, field), err_msg=where)
