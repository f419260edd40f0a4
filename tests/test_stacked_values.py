"""A grid's values on the stacked axis (the tuner's way to train every value of a strength at once): repetition
(value v, seed s) of a run with one strength per repetition is that value and seed trained alone, bit for bit, for
a quadratic penalty with and without importances (L2, EWC, SI, MAS, online EWC) and for LwF's distillation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EVEN_ODD

from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.nn.model import build_network, weights_by_path
from forgetting.strategies import Naive, QuadraticPenalty
from forgetting.strategies.lwf import LwF
from forgetting.training import loop

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
