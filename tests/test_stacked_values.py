"""A grid's values on the stacked axis (the tuner's way to train every value of a strength at once): repetition
(value v, seed s) of a run with one strength per repetition is that value and seed trained alone, bit for bit, for
a quadratic penalty with and without importances (L2, EWC, SI, MAS, online EWC) and for LwF's distillation; and,
with successive halving stopping one value, within 1e-7 for MAS, LwF, iCaRL, DER++ and GEM too."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import EVEN_ODD

from forgetting.config.params import read, with_values
from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn import adam, fisher
from forgetting.nn.model import build_network, save_model, weights_by_path
from forgetting.nn.path_integral import PathIntegral
from forgetting.strategies import Naive, QuadraticPenalty, TaskAState, strategy_class
from forgetting.strategies.lwf import LwF
from forgetting.training import loop
from forgetting.tuning.halving import Halving, rungs
from forgetting.tuning.trial import per_repetition, strength_keys

ROOT = Path(__file__).resolve().parents[1]

DOMAIN = Scenario("domain", EVEN_ODD)
SEEDS = [5, 6]
VALUES = [0.5, 20.0]


def _network(seeds):
    return build_network(5, hidden_units=12, dropout=0.0, seeds=seeds)


def _anchor(seeds):
    """Each seed's own anchor and importance (as a task-A state gives each repetition its own)."""
    theta = {k: v + 0.3 for k, v in weights_by_path(_network(seeds)).items()}
    rng = np.random.default_rng(1)
    importance = {k: rng.random(v.shape[1:]) * np.ones_like(v) for k, v in theta.items()}
    return theta, importance


def _quadratic(seeds, strength, with_importance):
    theta, importance = _anchor(seeds)
    penalty = QuadraticPenalty(strength, theta, importance if with_importance else None)
    penalty.add_anchor({k: v - 0.2 for k, v in theta.items()}, importance if with_importance else None)
    return penalty


def _lwf(seeds, weight):
    teacher = _network(seeds)
    return LwF(teacher, DOMAIN, temperature=2.0, weight=weight)


def _train(seeds, strategy, split):
    network = _network(seeds)
    model = loop.ContinualModel(network, DOMAIN, loop.TrainingSet(split, seeds, salt=1), strategy)
    loop.fit(model, None, epochs=2, batch_size=32, learning_rate=1e-2, verbose=0)
    return weights_by_path(network)


@pytest.mark.parametrize(
    "make",
    [
        lambda seeds, value: _quadratic(seeds, value, with_importance=False),
        lambda seeds, value: _quadratic(seeds, value, with_importance=True),
        _lwf,
    ],
    ids=["quadratic", "quadratic-with-importance", "lwf"],
)
def test_each_value_and_seed_is_that_value_trained_alone(mnist_like, make):
    stacked_seeds = SEEDS * len(VALUES)  # (value 0: seeds 5, 6), (value 1: seeds 5, 6)
    strategy = make(stacked_seeds, VALUES[0])
    strategy.set_strengths(np.repeat(VALUES, len(SEEDS)))
    stacked = _train(stacked_seeds, strategy, mnist_like)
    alone = {value: _train(SEEDS, make(SEEDS, value), mnist_like) for value in VALUES}
    for v, value in enumerate(VALUES):
        for s in range(len(SEEDS)):
            for key, weights in alone[value].items():
                np.testing.assert_array_equal(stacked[key][v * len(SEEDS) + s], weights[s], err_msg=f"{key} {value}")
    # the values made a difference: the two strengths trained the same seed differently
    kernel = "mlp/hidden/kernel"
    assert not np.array_equal(stacked[kernel][0], stacked[kernel][len(SEEDS)])


def test_a_strategy_without_a_scalar_strength_says_so():
    with pytest.raises(ForgettingError, match="naive has no strength to set per repetition"):
        Naive().set_strengths([1.0, 2.0])


@pytest.fixture
def task_a_files(tmp_path, tiny_model, make_mnist) -> TaskAState:
    """Task A's files as train_a and fisher leave them: a tiny 2-repetition model with dropout, synthetic data."""
    train, test = make_mnist(600, seed=1), make_mnist(100, seed=2)
    for t, digits in enumerate(EVEN_ODD):
        task = mnist.build_task(train, test, list(digits), t, 0.1, seed=0)
        mnist.save_task(task, tmp_path / "data" / f"task_{'ab'[t]}")
    paths = (tmp_path / "a.keras", tmp_path / "fisher.npz", tmp_path / "path.npz", tmp_path / "data")
    state = TaskAState(DOMAIN, *paths, optimizer_path=tmp_path / "adam.npz")
    save_model(tiny_model, state.model_path)
    optimizer = keras.optimizers.Adam()  # some state where task A's training ended: moments and a step count
    optimizer.build(tiny_model.trainable_variables)
    draws = np.random.default_rng(4)
    for variable in optimizer.variables[2:]:
        variable.assign(draws.random(variable.shape).astype(np.float32) * 1e-3)
    optimizer.iterations.assign(40)
    adam.save(state.optimizer_path, optimizer)
    split = state.train_split()
    diagonal = fisher.fisher_diagonal(tiny_model, split.image, split.label)
    fisher.save_fisher(state.fisher_path, weights_by_path(tiny_model), diagonal)
    integral = PathIntegral(tiny_model)  # some path integral: each weight's own
    for total in integral.totals.values():
        total.assign(np.random.default_rng(3).random(total.shape).astype(np.float32))
    integral.save(state.path_integral_path)
    return state


STRENGTHS = {  # each strategy's three values (of its one strength, or DER++'s two coefficients at once)
    "der": [
        {"der.alpha": 0.01, "der.beta": 0.01},
        {"der.alpha": 3.0, "der.beta": 3.0},
        {"der.alpha": 0.3, "der.beta": 1.0},
    ],
    "gem": [{"gem.margin": 0.0}, {"gem.margin": 3.0}, {"gem.margin": 30.0}],
    "generative_replay": [{"generative_replay.weight": w} for w in (0.01, 30.0, 1.0)],
    "rtf": [{"rtf.weight": w} for w in (0.01, 30.0, 1.0)],
}
TINY = {  # each strategy's own keys, small: the buffers, and the generators' sizes and steps
    "der.buffer_size": 40,
    "der.memory_batch": 8,
    "gem.buffer_size": 40,
    "gem.memory_batch": 8,
    "generative_replay.iterations": 6,
    "generative_replay.hidden_units": 8,
    "generative_replay.latent": 4,
    "rtf.iterations": 6,
    "rtf.latent": 4,
}


def _params(**values):
    return with_values(read(ROOT / "params.yaml"), {"seed": 7, "seeds": 2, "model.dropout": 0.5} | TINY | values)


def _job(name: str, values: list[dict]) -> dict:
    """The tuner's stacked job of strategy ``name``'s ``values`` (each its strengths' {key: value})."""
    keys = strength_keys(strategy_class(name))
    return {"strategy": name, "params": {}, "stack": {key: [value[key] for value in values] for key in keys}}


def _trained(name, params, value, state, strengths=None, halving=None, logs=(None, None)):
    """The weights ``train_strategy`` leaves for ``name`` with ``value`` over ``params``, from task A's ``state``:
    that value alone, or, given a tiled ``state`` and ``strengths`` (``per_repetition``), a grid's values at once, as
    a tuning trial trains them (with ``halving``, if any); ``logs``, the per-epoch log and its per-repetition twin."""
    args = (name, with_values(params, value), state, "validation", *logs, 0, strengths, halving)
    return weights_by_path(loop.train_strategy(*args))


@pytest.mark.parametrize(
    ("name", "carry"),
    [
        ("ewc", False),
        ("si", False),
        ("mas", False),
        ("lwf", False),
        ("icarl", False),
        ("der", False),
        ("gem", False),
        ("generative_replay", False),
        ("ewc", True),
    ],
)
def test_halving_stops_the_worst_value_and_the_rest_train_on_as_each_would_alone(task_a_files, tmp_path, name, carry):
    """What a tuning trial does with a grid of strengths: task A's state tiled (weights, dropout state, Fisher,
    path integral), one strength per repetition (DER++: one (alpha, beta) pair; GEM: one margin; generative
    replay: one weight, its generators trained once per seed), through
    `train_strategy` with successive halving. At its rung (epoch 1 of 3) it scores each value as that value's own
    run scores it then and stops the worst; each (value, seed) that goes on, with its optimiser and strategy state
    cut down to the survivors (``Strategy.keep``: DER++'s and GEM's buffers, generative replay's teachers too), ends
    as that value's own run: bit for bit for EWC and SI (L2 keeps as EWC does, through ``QuadraticPenalty.keep``;
    CI's time leaves it out); for MAS (its importance), LwF (its teacher's logits), DER++ (its buffers' logits), GEM
    (its memories' gradients) and generative replay (its teachers' logits), whose stacked products run over more
    repetitions, within 1e-7 (the differences seen: a few ulps).
    The stacked run logs nothing, as a trial's does not (no per-epoch log, no Keras validation pass). With
    ``finetune.carry_optimizer`` (EWC), task A's Adam state is tiled with the rest and each value goes on from it
    as its own run does."""
    keys = strength_keys(strategy_class(name))
    values = STRENGTHS.get(name) or [{keys[0]: value} for value in (0.01, 1e3, 1.0)]
    params = _params(**{"finetune.epochs": 3, "finetune.learning_rate": 3e-2, "finetune.carry_optimizer": carry})
    validation = list(mnist.load_tasks("validation", DOMAIN, task_a_files.data_root).values())

    def trained(state, value, strengths=None, halving=None):
        logs = (tmp_path / f"{value}.csv", tmp_path / f"{value}-each.csv") if halving is None else (None, None)
        return _trained(name, params, value, state, strengths, halving, logs), logs[1]

    halving = Halving(len(values), 2, DOMAIN, 3, validation)  # train_sequence gives it the strategy's rule
    assert halving.rungs == [1]
    strengths = per_repetition(_job(name, values), params)  # as a tuning trial gives them
    stacked, _ = trained(task_a_files.tiled(len(values)), values[0], strengths, halving)
    alone = [trained(task_a_files, value) for value in values]
    scores = []  # each value's score after epoch 1, from its own run's per-repetition validation log
    for _, log in alone:
        with open(log) as handle:
            rows = [r for r in csv.DictReader(handle) if r["epoch"] == "1"]
        scores.append(np.mean([(float(r["task_a_accuracy"]) + float(r["task_b_accuracy"])) / 2 for r in rows]))
    worst = int(np.argmin(scores))
    assert len(set(np.round(scores, 6))) == 3, scores  # the values made a difference
    assert halving.stopped == {worst: {"epoch": 1, "of": 3, "score": pytest.approx(scores[worst], abs=2e-6)}}
    assert halving.alive == [v for v in range(3) if v != worst]
    for i, v in enumerate(halving.alive):
        for path, weights in alone[v][0].items():
            mine, message = stacked[path][2 * i : 2 * i + 2], f"{path} {values[v]}"
            np.testing.assert_allclose(mine, weights, rtol=0, atol=1e-7, err_msg=message)
    assert stacked["mlp/hidden/kernel"].shape[0] == 4


def test_rungs_are_the_last_tasks_epochs_eta_to_the_k_where_values_can_still_stop():
    assert rungs(6, 3) == [1, 3] and rungs(24, 3) == [1, 3, 9] and rungs(2, 3) == [1] and rungs(1, 3) == []
    scenario = Scenario("domain", [(0, 2, 4, 6, 8), (1, 3), (5, 7), (9,)][:3])
    halving = Halving(6, 5, scenario, 6, [])  # 2 later tasks of 6 epochs: 2 of 6 values go on after epoch 1 of the last
    assert halving.rungs == [7]
    assert halving.stops(1) == [6] and halving.stops(2) == [1, 6]
    assert Halving(27, 5, scenario, 27, []).rungs == [27 + 1, 27 + 3, 27 + 9]  # 27 -> 9 -> 3 -> 2 values
    assert Halving(10, 5, scenario, 27, []).rungs == [27 + 1, 27 + 3]  # 10 -> 4 -> 2
    assert Halving(2, 5, scenario, 6, []).rungs == []  # two values: both train to the end


def test_rtf_trains_a_grid_of_weights_at_once_each_as_it_would_alone(task_a_files):
    """RtF's weight on the stacked axis: each (weight, seed), its feedback included, ends as that weight and seed
    trained alone, within 1e-7 (stacked products over more repetitions); no halving, which would have to cut the
    feedback's optimiser state too (``Strategy.keep`` not overridden: the tuner trains every value to the end)."""
    values, params = STRENGTHS["rtf"][:2], _params(**{"finetune.epochs": 2})
    stacked = _trained("rtf", params, values[0], task_a_files.tiled(2), per_repetition(_job("rtf", values), params))
    alone = [_trained("rtf", params, value, task_a_files) for value in values]
    for v, value in enumerate(values):
        for path, weights in alone[v].items():
            mine = stacked[path][2 * v : 2 * v + 2]
            np.testing.assert_allclose(mine, weights, rtol=0, atol=1e-7, err_msg=f"{path} {value}")
    assert not np.array_equal(alone[0]["mlp/hidden/kernel"], alone[1]["mlp/hidden/kernel"])  # the weight mattered
    assert not strategy_class("rtf").acts_at("keep") and strategy_class("generative_replay").acts_at("keep")


def test_generative_replays_tiled_copies_share_their_seeds_generator_through_keep_and_the_next_task(task_a_files):
    """A grid of 3 weights: one generator per seed (not per copy), trained as the untiled strategy's is; after the
    tuner keeps copies 4, 1 (value 2's first seed, value 0's second) with their teachers, each replays its own seed's
    samples; the next task trains the one generator per seed, as the untiled one does, bit for bit."""
    params = _params()
    build = strategy_class("generative_replay").from_params
    tiled, alone = build(params, task_a_files.tiled(3)), build(params, task_a_files)
    assert tiled.generator.repetitions == alone.generator.repetitions == 2 and tiled.teacher.repetitions == 6
    for mine, theirs in zip(tiled.generator.get_weights(), alone.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    tiled.keep([4, 1])
    assert tiled.copies == [0, 1] and tiled.teacher.repetitions == 2
    step = keras.ops.convert_to_tensor(3)
    np.testing.assert_array_equal(tiled.replayed(step), alone.replayed(step))
    network = task_a_files.model()
    task_b = mnist.load_task("task_b", "train", DOMAIN, task_a_files.data_root)
    for strategy in (tiled, alone):
        strategy.end_task(network, 1, task_b)
    for mine, theirs in zip(tiled.generator.get_weights(), alone.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(tiled.replayed(step), alone.replayed(step))
