"""Successive halving over a grid's values trained side by side (Jamieson & Talwalkar 2016; ASHA, Li et al. 2020, is
its asynchronous form): a trial that trains V values of a strength at once (``forgetting.tuning.trial``) looks at
every value's validation accuracy at a few rungs and stops the hopeless ones there, so that the compute goes to the
promising ones; the choice is made among the values trained to the end.

The rungs lie in the last task, the only stretch of training where a value's score covers what the choice is made
on: with E epochs per task and reduction factor eta, they are epochs eta^k (k = 0, 1, ..., below E) of the last
task, ASHA's geometric rungs from a grace period of one epoch (Ray Tune's ``ASHAScheduler(grace_period=1)``): epochs
1 and 3 of 6. At a rung, a value's score is the mean over its seeds of each one's mean validation accuracy over every
task (the tuner's final score, taken early); the best ceil(n / eta) of the n values still training go on, never fewer
than ``survivors`` (the first of equals, in the grid's order). Training pauses only at the rungs where values can
still stop (6 values: 2 go on after epoch 1, and the rung at epoch 3 is skipped). Values compete only with the other
values of their own trial: one strategy's.

Why not earlier: before the last task a score can only cover the tasks trained so far, and that favours plasticity
(a weak penalty learns the next task fastest) over the stability that pays off over the tasks still to come. On
``domain-rotated`` (5 tasks) rungs over all 24 epochs (then floor(24 / 3^k): epochs 2 and 8, both in task B) kept
``l2.weight`` 0.01 and 0.03, which end at validation accuracy 0.537 and 0.554, and stopped 0.1 to 3, which trained
to the end (``--no-halving``) score 0.581, 0.600 ± 0.013, 0.552 and 0.445: the best value was stopped. A rung at epoch
20 of 24 keeps 0.1 and 0.3 and chooses 0.3, as ``--no-halving`` does. On two tasks the last task is the only one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.evaluation import metrics

REDUCTION = 3  # eta: a third of the values go on at each rung
SURVIVORS = 2  # never fewer values trained to the end


class Halving:
    """Successive halving over ``values`` values, each trained on ``seeds`` repetitions (value v's repetitions
    v * seeds ... v * seeds + seeds - 1 of the network, and of the network kept after each rung, in the same order),
    for ``epochs`` epochs per later task of ``scenario``, scored on ``validation`` (a split per task) under
    ``predict`` (the strategy's prediction rule). ``alive``: the values still training; ``stopped``: by value, when
    each stopped value stopped and its score then, ``{"epoch", "of", "score"}``."""

    def __init__(
        self,
        values: int,
        seeds: int,
        scenario: Scenario,
        epochs: int,
        validation: list[Split],
        predict: Callable | None = None,
        reduction: int = REDUCTION,
        survivors: int = SURVIVORS,
    ) -> None:
        self.seeds, self.scenario, self.epochs, self.validation, self.predict = (
            seeds,
            scenario,
            epochs,
            validation,
            predict,
        )
        self.reduction, self.survivors = reduction, survivors
        self.total = (len(scenario.names) - 1) * epochs
        self.rungs, going_on = [], values  # in the last task, those where values can still stop
        for epoch in rungs(epochs, reduction):
            if self.kept(going_on) >= going_on:
                break
            self.rungs.append(self.total - epochs + epoch)
            going_on = self.kept(going_on)
        self.alive = list(range(values))
        self.stopped: dict[int, dict[str, Any]] = {}

    def kept(self, going_on: int) -> int:
        """How many of ``going_on`` values still training go on after a rung."""
        return max(self.survivors, math.ceil(going_on / self.reduction))

    def stops(self, task: int) -> list[int]:
        """The epochs of later task ``task`` (1, 2, ...) after which training pauses: its rungs (those where values
        can still stop) and its end."""
        offset = (task - 1) * self.epochs
        return sorted({r - offset for r in self.rungs if offset < r < offset + self.epochs} | {self.epochs})

    def rung(self, network, task: int, epoch: int) -> list[int] | None:
        """After ``epoch`` epochs of later task ``task``: at a rung, score the values still training on ``network``
        and return the repetitions (indices into ``network``) of those that go on; None where none stop."""
        done = (task - 1) * self.epochs + epoch
        if done not in self.rungs:  # only rungs where values can still stop (``__init__``)
            return None
        keep = self.kept(len(self.alive))
        tasks = self.validation[: task + 1]
        each = np.mean([metrics.accuracy(network, s, self.scenario, predict=self.predict, task=task) for s in tasks], 0)
        scores = each.reshape(len(self.alive), self.seeds).mean(axis=1)  # value i's: repetitions i * seeds ...
        order = sorted(range(len(self.alive)), key=lambda i: -scores[i])  # stable: the first of equals first
        going_on = sorted(order[:keep])
        for i in sorted(order[keep:]):
            self.stopped[self.alive[i]] = {"epoch": done, "of": self.total, "score": round(float(scores[i]), 6)}
        self.alive = [self.alive[i] for i in going_on]
        return [i * self.seeds + s for i in going_on for s in range(self.seeds)]


def rungs(total: int, reduction: int) -> list[int]:
    """The epochs reduction^k, k = 0, 1, ..., below ``total``, ascending."""
    found, epoch = [], 1
    while reduction > 1 and epoch < total:
        found.append(epoch)
        epoch *= reduction
    return found
