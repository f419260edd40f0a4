"""A-GEM (``forgetting.strategies.agem``): the projection by hand, the memory batch it draws, the reference
gradient against the loop's own loss, and what it keeps of a task that the next one contradicts. Each repetition
of a stacked A-GEM run equals its seed alone: ``test_strategies``' per-repetition test covers every strategy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, conflicting_tasks, split_into_tasks

from forgetting.data.scenarios import Scenario
from forgetting.evaluation import metrics
from forgetting.nn.model import build_network
from forgetting.strategies import AGEM, Naive
from forgetting.strategies.agem import per_repetition_dot, project
from forgetting.strategies.replay import class_balanced_sample
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)


def _two_parameters(rows: list[tuple[float, float]]) -> list[tf.Tensor]:
    """Per repetition (a row), a 2-parameter model's gradient as two variables of one weight each."""
    values = np.array(rows, np.float32)
    return [tf.constant(values[:, :1]), tf.constant(values[:, 1])]


def test_the_projection_on_a_two_parameter_problem():
    # repetition 0: g = (3, 1) conflicts with g_ref = (-1, 1): g . g_ref = -2, |g_ref|^2 = 2, so
    #   g~ = (3, 1) - (-2 / 2) (-1, 1) = (2, 2), orthogonal to g_ref;
    # repetition 1: g = (3, 4) agrees with g_ref = (-1, 1) (g . g_ref = 1 >= 0): unchanged;
    # repetition 2: g = (1, -2) against g_ref = (0, 1): g~ = (1, 0);
    # repetition 3: g_ref = 0 (a memory with nothing to protect): unchanged.
    gradients = _two_parameters([(3, 1), (3, 4), (1, -2), (5, -7)])
    reference = _two_parameters([(-1, 1), (-1, 1), (0, 1), (0, 0)])
    first, second = (t.numpy() for t in project(gradients, reference))
    np.testing.assert_array_equal(np.c_[first, second], [[2, 2], [3, 4], [1, 0], [5, -7]])
    after = per_repetition_dot(project(gradients, reference), reference).numpy()
    np.testing.assert_array_equal(after, [0, 1, 0, 0])


def test_an_agreeing_gradient_passes_unchanged_at_every_shape():
    rng = np.random.default_rng(0)
    reference = [tf.constant(rng.normal(size=(3, *shape)).astype(np.float32)) for shape in ((7, 4), (4,))]
    same_way = [2.5 * r for r in reference]  # g . g_ref > 0 in every repetition
    for g, g_new in zip(same_way, project(same_way, reference), strict=True):
        np.testing.assert_array_equal(g_new.numpy(), g.numpy())


def _agem(task_a, seeds, size=40, batch=16, scenario=DOMAIN) -> AGEM:
    return AGEM([class_balanced_sample(task_a, size, s) for s in seeds], list(seeds), scenario, batch)


def test_each_step_draws_a_memory_batch_without_replacement_from_its_own_seed(make_mnist):
    task_a, task_b = split_into_tasks(make_mnist(600, seed=3), DOMAIN)
    stacked, alone = _agem(task_a, [5, 6]), _agem(task_a, [6])
    draws = stacked.draw(tf.constant(3)).numpy()
    assert draws.shape == (2, 16)
    assert all(len(set(row)) == 16 and row.min() >= 0 and row.max() < 40 for row in draws)
    np.testing.assert_array_equal(draws[1], alone.draw(tf.constant(3)).numpy()[0])  # whatever is stacked beside it
    assert not np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[1], stacked.draw(tf.constant(4)).numpy()[1])  # a new batch each step
    stacked.end_task(None, 1, task_b)  # the next task draws other batches, from the redrawn buffer
    assert stacked.tasks_done == 2 and np.any(stacked.tasks.numpy() == 1)
    assert not np.array_equal(draws[1], stacked.draw(tf.constant(3)).numpy()[1])


@pytest.mark.parametrize(
    "scenario",
    [Scenario("task", ((0, 1), (2, 3), (4, 5))), Scenario("class", ((0, 1), (2, 3), (4, 5)), "seen")],
    ids=["task", "class-seen"],
)
def test_the_reference_gradient_is_the_loops_gradient_on_the_memory_batch(make_mnist, scenario):
    """g_ref is what the loop's own loss (``ContinualModel.compute_loss``, while task 1 trains) differentiates to on
    each repetition's memory batch: stored examples answer on their own task's head (task scenario) and over the
    outputs seen so far (class scenario, ``class_outputs: seen``)."""
    task_a = split_into_tasks(make_mnist(400, seed=3), scenario)[0]
    agem = _agem(task_a, [5, 6], size=30, batch=8, scenario=scenario)
    network = build_network(scenario.num_outputs, hidden_units=12, seeds=[5, 6])
    variables = network.trainable_variables
    reference = agem.reference_gradients(network, variables, tf.constant(2))
    index = agem.draw(tf.constant(2))
    x = {
        "image": tf.cast(tf.gather(agem.images, index, batch_dims=1), tf.float32) / 255.0,
        "task": tf.gather(agem.tasks, index, batch_dims=1),
    }
    model = loop.ContinualModel(network, scenario, loop.TrainingSet(task_a, [5, 6], 0), task=1)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, tf.gather(agem.labels, index, batch_dims=1), model(x, training=True))
    for mine, loops in zip(reference, tape.gradient(loss, variables), strict=True):
        np.testing.assert_allclose(mine.numpy(), loops.numpy(), rtol=1e-6, atol=1e-7)
    assert any(np.any(g.numpy() != 0) for g in reference)


def test_agem_keeps_more_of_a_contradicted_task_than_naive():
    """Task B reverses task A's answers on the same features (a marker tells them apart): naive fine-tuning
    forgets A entirely, A-GEM's projected steps learn B and keep A. (The projection is a first-order guarantee:
    at 3e-3 here, steps are too large for it, and A-GEM forgets as naive does.)"""
    task_a, task_b = conflicting_tasks(500)
    seeds = [0, 1]
    results = {}
    for strategy in (Naive(), _agem(task_a, seeds, size=100, batch=64)):
        loop.seed_everything(0)
        net = build_network(5, hidden_units=32, seeds=seeds)
        loop.fit(
            loop.ContinualModel(net, DOMAIN, loop.TrainingSet(task_a, seeds, salt=0)), None, 3, 32, 3e-3, verbose=0
        )
        assert np.all(metrics.accuracy(net, task_a, DOMAIN) > 0.95)
        loop.finetune(net, strategy, DOMAIN, task_b, None, 1, epochs=8, batch_size=32, learning_rate=1e-3, verbose=0)
        results[strategy.name] = (metrics.accuracy(net, task_a, DOMAIN), metrics.accuracy(net, task_b, DOMAIN))
    assert np.all(results["naive"][0] < 0.5), "the setting forgets"
    assert np.all(results["agem"][0] > results["naive"][0] + 0.5), results  # in every repetition
    assert np.all(results["agem"][1] > 0.95), results


def test_a_memory_batch_larger_than_the_memory_draws_the_whole_memory(make_mnist):
    task_a = split_into_tasks(make_mnist(600, seed=3), DOMAIN)[0]
    draws = _agem(task_a, [5, 6], size=20, batch=256).draw(tf.constant(1)).numpy()
    assert draws.shape == (2, 20) and all(sorted(row) == list(range(20)) for row in draws)
