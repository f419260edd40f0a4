"""GEM (``forgetting.strategies.gem``): the dual quadratic program against scipy's solver and by hand, the
projection's constraints, each finished task's memory and its gradient against the loop's own loss, training on the
memory or not, and a task that the next one contradicts. Each repetition of a stacked GEM run equals its seed alone:
``test_strategies``' per-repetition test covers every strategy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, conflicting_tasks, split_into_tasks
from scipy import optimize

import forgetting.strategies.gem as gem_module
from forgetting.data.mnist import Split, as_uint8
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.evaluation import metrics
from forgetting.nn.model import build_network
from forgetting.strategies import GEM, Naive
from forgetting.strategies.gem import EPSILON, dual, new_draws, projected
from forgetting.strategies.replay import class_balanced_sample
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)


def _scipy_dual(gram: np.ndarray, dots: np.ndarray, margin: float) -> np.ndarray:
    """The same program by L-BFGS-B with bounds, one repetition."""
    matrix = gram + EPSILON * np.eye(len(dots))
    result = optimize.minimize(
        lambda v: (0.5 * v @ matrix @ v + dots @ v, matrix @ v + dots),
        np.full(len(dots), margin + 1.0),
        jac=True,
        method="L-BFGS-B",
        bounds=[(margin, None)] * len(dots),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    return result.x


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("count", [1, 2, 4])
def test_the_dual_is_scipys_optimum(count, margin):
    rng = np.random.default_rng(count)
    memories = rng.normal(size=(3, count, 6))  # 3 repetitions, count finished tasks, 6 parameters
    g = rng.normal(size=(3, 6)) - 2 * memories.sum(axis=1)  # against most of them
    gram, dots = memories @ memories.transpose(0, 2, 1), np.einsum("skp,sp->sk", memories, g)
    mine = dual(tf.constant(gram), tf.constant(dots), margin).numpy()
    for s in range(3):
        np.testing.assert_allclose(mine[s], _scipy_dual(gram[s], dots[s], margin), atol=1e-5)
        assert np.all(mine[s] >= margin - 1e-12)


@pytest.mark.parametrize("count", [1, 3])
def test_a_margin_per_repetition_is_each_repetitions_own_dual(count):
    """The tuner's stacked margins: repetition s bounded by margins[s] gets, bit for bit, its dual under that margin
    alone (and the margins matter: 0 and 2 give different multipliers)."""
    rng = np.random.default_rng(count + 10)
    memories = rng.normal(size=(3, count, 6))
    g = rng.normal(size=(3, 6)) - 2 * memories.sum(axis=1)
    gram, dots = memories @ memories.transpose(0, 2, 1), np.einsum("skp,sp->sk", memories, g)
    margins = np.array([0.0, 2.0, 0.5])
    mine = dual(tf.constant(gram), tf.constant(dots), margins).numpy()
    for s, margin in enumerate(margins):
        alone = dual(tf.constant(gram[s : s + 1]), tf.constant(dots[s : s + 1]), float(margin)).numpy()[0]
        np.testing.assert_array_equal(mine[s], alone)
        assert np.all(mine[s] >= margin - 1e-12)
    assert not np.array_equal(mine[0], dual(tf.constant(gram), tf.constant(dots), 2.0).numpy()[0])


def _variables(rows: np.ndarray) -> list[tf.Tensor]:
    """Per repetition (a row), a parameter vector as two variables: a (S, 1) kernel and an (S,) bias."""
    return [tf.constant(rows[:, :1].astype(np.float32)), tf.constant(rows[:, 1].astype(np.float32))]


def _rows(variables: list[tf.Tensor]) -> np.ndarray:
    """``_variables``' inverse: (S, 2)."""
    return np.hstack([t.numpy().reshape(len(t.numpy()), -1) for t in variables])


def test_the_projection_by_hand_on_two_parameters():
    # g_1 = (0, 1) for every repetition;
    # repetition 0: g = (1, -2), g . g_1 = -2: v = 2 / (1 + eps) at margin 0, g~ = (1, -2 + v) (g~ . g_1 ~ 0);
    # repetition 1: g = (1, 3) agrees with g_1: unchanged, whatever the margin;
    # repetition 2: g = (1, -0.1): at margin 0.5 the bound holds, v = 0.5: g~ = (1, 0.4).
    g = np.array([(1.0, -2.0), (1.0, 3.0), (1.0, -0.1)])
    memory = _variables(np.array([(0.0, 1.0)] * 3))
    at_zero = _rows(projected(_variables(g), [memory], 0.0))
    expected = [(1, -2 + 2 / (1 + EPSILON)), (1, 3), (1, -0.1 + 0.1 / (1 + EPSILON))]
    np.testing.assert_allclose(at_zero, expected, rtol=1e-6, atol=1e-6)
    at_half = _rows(projected(_variables(g), [memory], 0.5))
    np.testing.assert_allclose(at_half, [(1, -2 + 2 / (1 + EPSILON)), (1, 3), (1, 0.4)], rtol=1e-6, atol=1e-6)


def test_the_projection_keeps_every_constraint_and_only_moves_a_conflicting_gradient():
    """Margin 0: G g~ >= 0 (up to eps's slack) where g broke a constraint, and g~ the closest such vector to g
    (scipy's SLSQP on the primal, up to what eps = 1e-3 on the dual's diagonal moves it: about eps |v| |g_k|); a
    repetition whose g broke none is left exactly as it was."""
    rng = np.random.default_rng(7)
    memories = 10 * rng.normal(size=(3, 2, 2))  # 2 finished tasks, 2 parameters
    g = 10 * rng.normal(size=(2, 2))
    g = np.vstack([g, np.linalg.solve(memories[2], [5.0, 5.0])])  # repetition 2: g . g_k = 5 for both
    g[0] = -memories[0, 0] - 0.5 * memories[0, 1]  # repetition 0: against both
    out = _rows(projected(_variables(g), [_variables(m) for m in memories.transpose(1, 0, 2)], 0.0))
    for s in range(3):
        if np.all(memories[s] @ g[s] >= 0):
            np.testing.assert_array_equal(out[s], g[s].astype(np.float32))
            continue
        assert np.all(memories[s] @ out[s] >= -1e-2)
        closest = optimize.minimize(
            lambda x, s=s: 0.5 * np.sum((x - g[s]) ** 2), g[s], method="SLSQP",
            constraints=[{"type": "ineq", "fun": lambda x, s=s: memories[s] @ x}], options={"ftol": 1e-14},
        ).x  # fmt: skip
        np.testing.assert_allclose(out[s], closest, atol=1e-3 * np.linalg.norm(g[s]))
    assert np.any(np.all(memories @ g[..., None] >= 0, axis=(1, 2))) and np.any(np.any(memories[0] @ g[0] < 0))


def test_more_finished_tasks_than_the_solver_takes_is_an_error():
    with pytest.raises(
        ForgettingError, match="gem: 10 memories to keep; it solves its quadratic program for at most 9"
    ):
        dual(tf.zeros((1, 10, 10), tf.float64), tf.zeros((1, 10), tf.float64), 0.5)


def _gem(task_a, seeds, size=40, batch=16, scenario=DOMAIN, margin=0.5, train_on_memory=False) -> GEM:
    buffers = [class_balanced_sample(task_a, size, s) for s in seeds]
    return GEM(buffers, list(seeds), scenario, batch, margin, train_on_memory)


SCENARIOS = [Scenario("task", ((0, 1), (2, 3), (4, 5))), Scenario("class", ((0, 1), (2, 3), (4, 5)), "seen")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=["task", "class-seen"])
def test_each_finished_tasks_gradient_is_the_loops_on_its_whole_memory(make_mnist, scenario):
    """After two tasks, one memory per finished task (as many examples of each in every repetition: 30 over 4 digits,
    8 + 8 and 7 + 7); g_k, with a
    memory batch as large as the memory, is what the loop's own loss (task 2 training) differentiates to on task k's
    stored examples: its own head (task scenario), the outputs seen so far (class scenario)."""
    tasks = split_into_tasks(make_mnist(600, seed=3), scenario)
    gem = _gem(tasks[0], [5, 6], size=30, batch=1000, scenario=scenario)
    gem.end_task(None, 1, tasks[1])
    assert gem.tasks_done == 2 and [m[0].shape[:2] for m in gem.memories] == [(2, 16), (2, 14)]
    network = build_network(scenario.num_outputs, hidden_units=12, seeds=[5, 6])
    variables = network.trainable_variables
    model = loop.ContinualModel(network, scenario, loop.TrainingSet(tasks[2], [5, 6], 0), task=2)
    for k, (images, labels) in enumerate(gem.memories):
        x = {"image": tf.cast(images, tf.float32) / 255.0, "task": tf.fill(labels.shape, k)}
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x, labels, model(x, training=True))
        for mine, loops in zip(gem.task_gradient(network, variables, k, tf.constant(4)), tape.gradient(loss, variables),
                               strict=True):  # fmt: skip
            np.testing.assert_allclose(mine.numpy(), loops.numpy(), rtol=1e-5, atol=1e-7)
        digits = [b.digit[b.task == k] for b in gem.buffers]
        assert all(set(d) == set(scenario.tasks[k]) for d in digits)


def test_a_smaller_memory_batch_draws_per_task_and_step(make_mnist, monkeypatch):
    """With gem.memory_batch below a memory's size, g_k is the loss on memory_batch distinct examples of task k's
    stored ones, drawn afresh per repetition, task and step (stateless: the same step draws the same)."""
    scenario = SCENARIOS[0]
    tasks = split_into_tasks(make_mnist(600, seed=3), scenario)
    gem = _gem(tasks[0], [5, 6], size=32, batch=6, scenario=scenario)
    gem.end_task(None, 1, tasks[1])  # two finished tasks, 16 stored examples of each (8 of each of 4 digits)
    assert [tuple(images.shape[:2]) for images, _ in gem.memories] == [(2, 16), (2, 16)]
    drawn, original = [], gem_module.stored_gradients

    def recording(network, variables, scenario, images, labels, task, trained):
        drawn.append(images.numpy())
        return original(network, variables, scenario, images, labels, task, trained)

    monkeypatch.setattr(gem_module, "stored_gradients", recording)
    network = build_network(scenario.num_outputs, hidden_units=12, seeds=[5, 6])
    variables = network.trainable_variables
    first, again, other = (gem.task_gradient(network, variables, 0, tf.constant(s)) for s in (3, 3, 4))
    gem.task_gradient(network, variables, 1, tf.constant(3))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again, strict=True))  # stateless
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, other, strict=True))

    def positions(images, task, repetition):  # where each drawn example sits in that repetition's memory of task
        stored = [row.tobytes() for row in gem.memories[task][0].numpy()[repetition]]
        return sorted(stored.index(row.tobytes()) for row in images[repetition])

    draws = {(task, step): images for images, (task, step) in zip(drawn, [(0, 3), (0, 3), (0, 4), (1, 3)], strict=True)}
    for (task, _), images in draws.items():
        assert images.shape[:2] == (2, 6)
        for repetition in (0, 1):
            assert len(set(positions(images, task, repetition))) == 6  # without replacement, from its own memory
    assert np.array_equal(drawn[0], drawn[1])
    assert positions(draws[0, 3], 0, 0) != positions(draws[0, 4], 0, 0)  # per step
    assert positions(draws[0, 3], 0, 0) != positions(draws[1, 3], 1, 0)  # per task
    assert positions(draws[0, 3], 0, 0) != positions(draws[0, 3], 0, 1)  # per repetition


def test_it_trains_on_its_memory_only_where_told(make_mnist):
    task_a, task_b = split_into_tasks(make_mnist(600, seed=3), DOMAIN)
    assert _gem(task_a, [5]).training_data(task_b) is task_b
    (mixed,) = _gem(task_a, [5], train_on_memory=True).training_data(task_b)
    assert len(mixed) == len(task_b) + 40 * round(len(task_b) / 40) and set(mixed.task) == {0, 1}


def _stored(images) -> set[bytes]:
    """Each stored image of one repetition, as bytes (the synthetic digits are distinct)."""
    return {row.tobytes() for row in np.asarray(images)}


def test_two_draws_of_each_task_as_hsus_code_kept_them(make_mnist):
    """gem.draws 2 (their GEM.learn_batch repeating Naive_Rehearsal's memory step): after t tasks, 2t memories of
    N // (2t) examples, two of each task in task order, each a constraint of its own on its task's head; an earlier
    memory a subset of what it held; a task's two draws independent; the buffer trained on their union; seeded."""
    tasks = split_into_tasks(make_mnist(900, seed=3), SCENARIOS[0])
    seeds = [5, 6]

    def gem(seeds):
        draws = [new_draws(tasks[0], 20, 2, seed, 0, 0) for seed in seeds]
        return GEM([Split.concat(*d) for d in draws], seeds, SCENARIOS[0], 1000, 0.5, True, "per_task",
                   "one_to_one", 40, draws)  # fmt: skip

    stacked = gem(seeds)
    history = [[m[0] for m in stacked.memories]]
    for t in (1, 2):
        stacked.end_task(None, t, tasks[t])
        history.append([m[0] for m in stacked.memories])
    assert [[tuple(images.shape[:2]) for images in memories] for memories in history] == [
        [(2, 20)] * 2,
        [(2, 10)] * 4,
        [(2, 6)] * 6,
    ]
    assert stacked.draws == 2 and [stacked.task_of(k) for k in range(6)] == [0, 0, 1, 1, 2, 2]
    network = build_network(SCENARIOS[0].num_outputs, hidden_units=12, seeds=seeds)
    model = loop.ContinualModel(network, SCENARIOS[0], loop.TrainingSet(tasks[2], seeds, 0), task=2)
    images, labels = stacked.memories[3]  # task 1's second draw: its gradient through task 1's head
    x = {"image": tf.cast(images, tf.float32) / 255.0, "task": tf.fill(labels.shape, 1)}
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, labels, model(x, training=True))
    mine = stacked.task_gradient(network, network.trainable_variables, 3, tf.constant(4))
    for a, b in zip(mine, tape.gradient(loss, network.trainable_variables), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    for s in range(2):
        for k, (images, labels) in enumerate(stacked.memories):
            task = tasks[stacked.task_of(k)]
            assert _stored(images[s]) <= {row.tobytes() for row in as_uint8(task.image)}
            assert set(labels.numpy()[s]) <= set(task.label)
        for before, after in zip(history[1], history[2], strict=False):  # kept ones: subsets of what they held
            assert _stored(after[s]) < _stored(before[s])
        assert _stored(history[2][4][s]) != _stored(history[2][5][s])  # a task's two draws differ
        assert len(stacked.buffers[s]) == 36 and _stored(stacked.memories[0][0][s]) <= {
            row.tobytes() for row in as_uint8(stacked.buffers[s].image)
        }
    assert _stored(history[0][0][0]) != _stored(history[0][0][1])  # each repetition draws its own
    alone = gem([6])
    for t in (1, 2):
        alone.end_task(None, t, tasks[t])
    for (mine, _), (its, _) in zip(stacked.memories, alone.memories, strict=True):
        assert np.array_equal(mine.numpy()[1], its.numpy()[0])  # seeded: repetition 6 as it is alone
    (mixed,) = alone.training_data(tasks[2])  # the union of the draws, max(1, 300 // 40) times beside the task
    assert len(mixed) == len(tasks[2]) + 36 * max(1, len(tasks[2]) // 40)
    stacked.keep([1])  # the tuner's halving keeps repetition 6 alone: its draws, buffer and memories as alone
    assert stacked.seeds == [6] and len(stacked.drawn) == 1 and len(stacked.buffers) == 1
    for (mine, _), (its, _) in zip(stacked.memories, alone.memories, strict=True):
        assert np.array_equal(mine.numpy(), its.numpy())


def test_more_draws_than_the_solver_takes_or_a_class_balanced_draw_is_an_error():
    """check_params' errors (``check_setting``, which GEM's stage runs too)."""
    data = {"validation_fraction": 0.1, "train_per_digit": "all"}
    params = {"tasks": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], "data": data}
    gem = {"buffer_size": 1100, "memory_batch": 1100, "margin": 0.5, "train_on_memory": True, "mix": "one_to_one"}
    GEM.check_setting(params | {"gem": gem | {"memory": "per_task", "draws": 2}})  # 8 constraints: Hsu et al.'s
    with pytest.raises(ForgettingError, match=r"gem\.draws = 3 with 4 finished tasks makes 12 memories; GEM solves"):
        GEM.check_setting(params | {"gem": gem | {"memory": "per_task", "draws": 3}})
    with pytest.raises(ForgettingError, match=r"gem\.draws = 2 draws .* set gem\.memory: per_task or gem\.draws: 1"):
        GEM.check_setting(params | {"gem": gem | {"memory": "class_balanced", "draws": 2}})


def test_a_class_balanced_memory_of_digits_that_recur_is_an_error(make_mnist):
    """Where a stored digit recurs in a later stored task (rotated MNIST), a class-balanced buffer keeps a number of
    each task's examples that depends on the seed, which GEM's stacked memories cannot hold: check_setting says so
    before any work, and per_task keeps as many of each task in every repetition."""
    data = {"validation_fraction": 0.1, "train_per_digit": "all"}
    gem = {"buffer_size": 60, "memory_batch": 60, "margin": 0.5, "train_on_memory": False, "mix": "per_task"}
    gem |= {"draws": 1}
    recurring = {"tasks": [[0, 1], [1, 2], [3]], "data": data}
    message = r"gem\.memory: class_balanced .* digit 1 recurs .* set gem\.memory: per_task \(the GEM paper's memory"
    with pytest.raises(ForgettingError, match=message):
        GEM.check_setting(recurring | {"gem": gem | {"memory": "class_balanced"}})
    GEM.check_setting(recurring | {"gem": gem | {"memory": "per_task"}})
    last_only = {"tasks": [[0, 1], [2, 3], [0, 1]], "data": data}  # the last task is never stored
    GEM.check_setting(last_only | {"gem": gem | {"memory": "class_balanced"}})
    every_digit = Scenario("domain", [list(range(10))] * 3)
    tasks = split_into_tasks(make_mnist(900, seed=4), every_digit)
    seeds = [1, 2, 3]
    first = [class_balanced_sample(tasks[0], 60, s) for s in seeds]  # task A alone: as many in every repetition
    balanced = GEM(first, seeds, every_digit, 1000, 0.5)
    with pytest.raises(ForgettingError, match="different numbers of memory 0's examples"):  # what the check prevents
        balanced.end_task(None, 0, tasks[1])
    per_task = GEM(first, seeds, every_digit, 1000, 0.5, memory="per_task", size=60)
    per_task.end_task(None, 0, tasks[1])
    assert [tuple(images.shape[:2]) for images, _ in per_task.memories] == [(3, 30), (3, 30)]


def test_gem_keeps_more_of_a_contradicted_task_than_naive():
    """As A-GEM's test: task B reverses task A's answers on the same features; GEM's constrained steps learn B
    and keep A in every repetition, where naive fine-tuning forgets it."""
    task_a, task_b = conflicting_tasks(500)
    seeds, results = [0, 1], {}
    for strategy in (Naive(), _gem(task_a, seeds, size=100, batch=100, margin=0.5)):
        loop.seed_everything(0)
        net = build_network(5, hidden_units=32, seeds=seeds)
        loop.fit(
            loop.ContinualModel(net, DOMAIN, loop.TrainingSet(task_a, seeds, salt=0)), None, 3, 32, 3e-3, verbose=0
        )
        loop.finetune(net, strategy, DOMAIN, task_b, None, 1, epochs=8, batch_size=32, learning_rate=1e-3, verbose=0)
        results[strategy.name] = (metrics.accuracy(net, task_a, DOMAIN), metrics.accuracy(net, task_b, DOMAIN))
    assert np.all(results["naive"][0] < 0.5), "the setting forgets"
    assert np.all(results["gem"][0] > results["naive"][0] + 0.5), results
    assert np.all(results["gem"][1] > 0.95), results
