"""Gradient episodic memory, GEM (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning").

Each step, with g the gradient of the new task's loss and g_k the gradient of the loss on finished task k's stored
examples (k = 1..K, the K tasks finished), GEM asks for an update that raises no finished task's loss, to first
order: g~ . g_k >= 0 for every k. Where g already keeps every constraint it is applied as it is; else it is projected,
through the dual of min ||g~ - g||^2 / 2 subject to G g~ >= 0 (G the K x p matrix of the g_k):

    v* = argmin_{v >= margin} v^T (G G^T + eps I) v / 2 + (G g)^T v,        g~ = G^T v* + g

with eps = 1e-3 and ``gem.margin`` as the authors' code writes it (GradientEpisodicMemory's ``project2cone2``,
whose ``memory_strength`` is the bound on v, not on G g~; Hsu et al. 2018 copy it, reg_coef 0.5 on split MNIST). At
most 9 finished tasks, so the QP is solved exactly: every split of the K multipliers into those at the bound and
those free, the free ones solving (G G^T + eps I) v = -G g on their rows, is a candidate; the feasible one of least
objective is the optimum (one candidate is it). Each repetition solves its own, over its own weights' gradients.

The memory is replay's buffer (``replay.py``): ``gem.buffer_size`` examples of the finished tasks' train splits,
seeded per repetition, redrawn after each task, drawn as ``gem.memory`` says (replay's ``memory``: class-balanced, or
per_task, Hsu et al.'s buffer_size // K random examples of each task): each finished task holds about buffer_size / K
of them (the paper's: a fixed number per task). Class-balanced only where no stored digit recurs in a later stored
task (split MNIST): else each repetition would keep its own number of a task's examples (permuted and rotated MNIST's
settings set per_task). Each g_k is the gradient of the mean loss on up to ``gem.memory_batch``
of task k's stored examples, drawn afresh each step without replacement from the repetition's seed, the task and the
step (all of them where it holds no more: the paper's and Hsu et al.'s, every step), with the loss the new task
trains with (the scenario's logits: task k's own head in the task scenario; the outputs seen so far where
``class_outputs: seen`` masks the others). ``gem.train_on_memory``: false (the paper's: the memory only constrains)
or true (Hsu et al.'s GEM_1100 also trains on it, as replay does, exact copies repeated as ``gem.mix`` says:
replay's ``mix``).

``gem.draws`` (per_task memory only): how many independent draws of each finished task the memory holds, each a
memory, and so a constraint, of its own: 1 (the paper's), or 2 as Hsu et al.'s code ran GEM from dff5200 (2019-01-23,
where GEM came in; their Table 2, GEM's row in it, went into the readme that day: 3b273f0) to abe7fd4 (2020-07-06,
"Remove duplicated memory operation in GEM"): GEM.learn_batch repeated Naive_Rehearsal's memory step, so after t
tasks their memory held 2t draws of N // (2t) random examples, two of each task, each draw an earlier one's random
subset: 2t constraints, each with v >= margin, and all 2t draws trained on where trained on the memory (a task's two
draws may share examples).

The tuner trains a grid's margins at once, one per repetition (``set_strengths``: each repetition's quadratic program
bounded by its own), and stops the hopeless ones (``keep``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, ClassVar

import keras
import numpy as np
import tensorflow as tf
from pydantic import Field

from forgetting.config.params import Section, integer, number, repetition_seeds
from forgetting.data.mnist import Split, as_uint8
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.strategies.base import TaskAState, stored_gradients
from forgetting.strategies.replay import MEMORY, MIX, Replay, per_task_sample

EPSILON = 1e-3  # added to G G^T's diagonal, as the authors' code does
MAX_CONSTRAINTS = 9  # 2^9 candidate splits of the multipliers: a 10-task sequence, the longest params allow


def draw_rng(seed: int, task: int, draw: int) -> np.random.Generator:
    """The generator of memory ``draw`` (its index among them) after task ``task``, repetition ``seed``."""
    return np.random.default_rng([seed, task, draw])


def new_draws(train: Split, size: int, draws: int, seed: int, task: int, first: int) -> list[Split]:
    """``draws`` independent draws of ``size`` random examples of task ``task``'s ``train``, repetition ``seed``:
    memories ``first``, ``first`` + 1, ... among those kept after that task."""
    return [per_task_sample(train, size, draw_rng(seed, task, first + d)) for d in range(draws)]


def dual(gram: tf.Tensor, dots: tf.Tensor, margin: float | np.ndarray) -> tf.Tensor:
    """v* = argmin_{v >= margin} v^T (gram + eps I) v / 2 + dots^T v, per repetition: ``gram`` (S, K, K) the g_k . g_j,
    ``dots`` (S, K) the g_k . g; float64; ``margin`` one float, or one per repetition (S,). Exact: the feasible
    candidate of least objective over every split of v into bound (v_i = margin) and free coordinates (row i of the
    stationarity condition)."""
    count = gram.shape[-1]
    if count > MAX_CONSTRAINTS:
        raise ForgettingError(f"gem: {count} memories to keep; it solves its quadratic program for at most 9")
    matrix = gram + EPSILON * tf.eye(count, dtype=gram.dtype)
    free = tf.constant(list(itertools.product([False, True], repeat=count)))[None]  # (1, 2^K, K): the splits
    rows = tf.where(free[..., None], matrix[:, None], tf.eye(count, dtype=gram.dtype))  # (S, 2^K, K, K)
    bound = np.reshape(np.asarray(margin, np.float64), (-1, 1, 1) if np.ndim(margin) else ())  # as candidates
    targets = tf.where(free, -dots[:, None], tf.constant(bound, gram.dtype))  # (S, 2^K, K)
    candidates = tf.linalg.solve(rows, targets[..., None])[..., 0]
    feasible = tf.reduce_all(candidates >= bound - 1e-9 * (1.0 + abs(bound)), axis=-1)  # all-bound: always
    objective = 0.5 * tf.einsum("smi,sij,smj->sm", candidates, matrix, candidates)
    objective += tf.einsum("smi,si->sm", candidates, dots)
    best = tf.argmin(tf.where(feasible, objective, tf.constant(np.inf, gram.dtype)), axis=1)
    return tf.gather(candidates, best, batch_dims=1)


def projected(
    gradients: list[tf.Tensor], task_gradients: list[list[tf.Tensor]], margin: float | np.ndarray
) -> list[tf.Tensor]:
    """g~ per repetition (the leading axis): g where g . g_k >= 0 for every finished task k, else G^T v* + g.
    ``task_gradients[k]`` are g_k's variables, as ``gradients``."""

    def flat(variables: list[tf.Tensor]) -> list[tf.Tensor]:  # each variable (S, its size), in float64, once
        return [tf.reshape(tf.cast(x, tf.float64), (tf.shape(x)[0], -1)) for x in variables]

    def dot(a: list[tf.Tensor], b: list[tf.Tensor]) -> tf.Tensor:  # (S,): sum over every variable
        return tf.add_n([tf.reduce_sum(x * y, 1) for x, y in zip(a, b, strict=True)])

    new, memories = flat(gradients), [flat(g_k) for g_k in task_gradients]
    dots = tf.stack([dot(g_k, new) for g_k in memories], axis=1)  # (S, K)
    count = len(memories)
    upper = {(k, j): dot(memories[k], memories[j]) for k in range(count) for j in range(k, count)}  # symmetric
    gram = tf.stack([tf.stack([upper[min(k, j), max(k, j)] for j in range(count)], 1) for k in range(count)], 1)
    weights = dual(gram, dots, margin)  # (S, K)
    weights = tf.where(tf.reduce_any(dots < 0, axis=1, keepdims=True), weights, tf.zeros_like(weights))
    out = []
    for i, g in enumerate(gradients):
        shape = (-1,) + (1,) * (len(g.shape) - 1)
        added = tf.add_n([tf.reshape(tf.cast(weights[:, k], g.dtype), shape) * task_gradients[k][i]
                          for k in range(len(task_gradients))])  # fmt: skip
        out.append(g + added)
    return out


class GEMParams(Section):
    buffer_size: integer("an integer >= 1 (examples of finished tasks kept)", ge=1)
    memory_batch: integer("an integer >= 1 (stored examples of each finished task per step's g_k)", ge=1)
    margin: number("a number >= 0 (the bound on the dual's multipliers: 0.5 in the authors' code)", ge=0)
    train_on_memory: Annotated[
        bool, Field(description="false (the memory only constrains: the paper's) or true (trained on too: Hsu et al.)")
    ]
    memory: MEMORY
    mix: MIX
    draws: integer("an integer >= 1 (memories of each finished task: 1 the paper's, 2 Hsu et al.'s code)", ge=1)


class GEM(Replay):
    """Replay's buffers, as one memory per finished task whose gradient constrains each step."""

    name = "gem"
    section = "gem"
    params_section: ClassVar[dict[str, Any]] = {"gem": GEMParams}
    hyperparameters = (
        "gem.buffer_size",
        "gem.memory_batch",
        "gem.margin",
        "gem.train_on_memory",
        "gem.memory",
        "gem.mix",
        "gem.draws",
    )
    search_space: ClassVar[dict[str, list[Any]]] = {"gem.margin": [0.1, 0.3, 1.0, 3.0]}  # log: widened at an edge
    strength_param = "gem.margin"  # one per repetition where the tuner stacks a grid of it (``set_strengths``)
    steps = "where trained on its memory too (gem.train_on_memory), replay's, as gem.mix says (replay.mix)"

    def __init__(
        self,
        buffers: list[Split],
        seeds: list[int],
        scenario: Scenario,
        memory_batch: int,
        margin: float,
        train_on_memory: bool = False,
        memory: str = "class_balanced",
        mix: str = "per_task",
        size: int | None = None,
        draws: list[list[Split]] | None = None,
    ) -> None:
        """``draws``: each repetition's memories of the first task where it is drawn more than once (``gem.draws``;
        ``buffers`` their union); by default one, its buffer."""
        super().__init__(buffers, seeds, 0, memory, mix, size)  # shift 0: trained on, the stored examples are exact
        self.scenario, self.memory_batch = scenario, int(memory_batch)
        self.margin: float | np.ndarray = float(margin)  # or one per repetition (``set_strengths``)
        self.train_on_memory = bool(train_on_memory)
        self.drawn = draws  # each repetition's memories, in task order, where drawn more than once
        self.draws = 1 if draws is None else len(draws[0])  # memories of each finished task
        self._stack()

    @classmethod
    def check_setting(cls, params: dict[str, Any]) -> None:
        super().check_setting(params)
        own, finished = params["gem"], len(params["tasks"]) - 1
        kept = params["tasks"][:-1]  # the tasks whose examples are ever stored
        recurring = sorted({d for i, task in enumerate(kept) for d in task if any(d in k for k in kept[i + 1 :])})
        if own["memory"] == "class_balanced" and recurring:
            raise ForgettingError(
                f"gem.memory: class_balanced balances the digits, and digit {recurring[0]} recurs in a later task, so "
                "each repetition would keep a different number of a task's examples, which GEM's per-task memories "
                "cannot stack; set gem.memory: per_task (the GEM paper's memory, a number per task)"
            )
        if own["draws"] > 1 and own["memory"] != "per_task":
            raise ForgettingError(
                f"gem.draws = {own['draws']} draws each task's memory more than once, which gem.memory: per_task does "
                f"(it is {own['memory']}); set gem.memory: per_task or gem.draws: 1"
            )
        if own["draws"] * finished > MAX_CONSTRAINTS:
            raise ForgettingError(
                f"gem.draws = {own['draws']} with {finished} finished tasks makes {own['draws'] * finished} memories; "
                f"GEM solves its quadratic program for at most {MAX_CONSTRAINTS}: lower gem.draws"
            )

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> GEM:
        own, seeds, draws = params["gem"], repetition_seeds(params) * task_a.tiles, None  # v * S + s: seed s
        if own["draws"] > 1:
            train = task_a.train_split()
            draws = [new_draws(train, own["buffer_size"] // own["draws"], own["draws"], seed, 0, 0) for seed in seeds]
        if draws is None:
            buffers = cls.first_buffers(params, task_a) * task_a.tiles
        else:
            buffers = [Split.concat(*d) for d in draws]
        extra = own["train_on_memory"], own["memory"], own["mix"], own["buffer_size"]
        return cls(buffers, seeds, task_a.scenario, own["memory_batch"], own["margin"], *extra, draws)

    def set_strengths(self, strengths: Sequence[float]) -> None:
        """Repetition r's margin = ``strengths[r]``: a grid's margins on the stacked axis, each repetition solving
        its own quadratic program with its own bound, as alone."""
        values = np.asarray(strengths, np.float64)
        if values.shape != (len(self.seeds),):
            raise ValueError(f"gem: {values.shape} margins for {len(self.seeds)} repetitions")
        self.margin = values

    def keep(self, repetitions: Sequence[int]) -> None:
        """Keep the repetitions ``repetitions`` (indices, in order): their seeds, memories and margins."""
        index = list(repetitions)
        self.seeds, self.buffers = [self.seeds[i] for i in index], [self.buffers[i] for i in index]
        if self.drawn is not None:
            self.drawn = [self.drawn[i] for i in index]
        if np.ndim(self.margin) == 1:
            self.margin = self.margin[index]
        self._stack()

    def task_of(self, memory: int) -> int:
        """The task that memory ``memory`` holds examples of (its head in the task scenario)."""
        return memory // self.draws

    def _stack(self) -> None:
        """Each memory's stored examples, the repetition axis first: (pixels, labels), one memory per finished task
        (or ``gem.draws`` of each, in task order). Every repetition holds as many of each (the class-balanced quotas
        and the per-task sizes do not depend on the seed)."""
        if self.drawn is None:
            memories = [
                [b.subset(np.flatnonzero(b.task == task)) for b in self.buffers] for task in range(self.tasks_done)
            ]
        else:
            memories = [list(drawn) for drawn in zip(*self.drawn, strict=True)]
        self.memories = []
        for k, kept in enumerate(memories):
            if len({len(split.label) for split in kept}) != 1:
                raise ForgettingError(f"gem: the repetitions' buffers hold different numbers of memory {k}'s examples")
            images = np.stack([as_uint8(split.image) for split in kept])
            labels = np.stack([split.label for split in kept]).astype(np.int32)
            self.memories.append((tf.constant(images), tf.constant(labels)))

    def training_data(self, train: Split) -> Split | Iterator[Split]:
        return super().training_data(train) if self.train_on_memory else train

    def task_gradient(self, network: keras.Model, variables: list, task: int, step: tf.Tensor) -> list[tf.Tensor]:
        """g_k of memory ``task`` (finished task ``task`` where drawn once): the gradients of each repetition's mean
        loss on up to ``memory_batch`` of its stored examples, drawn for ``step`` (summed over repetitions: each slice
        is its own)."""
        images, labels = self.memories[task]
        size, step = images.shape[1], tf.cast(step, tf.int32)
        if self.memory_batch < size:  # a draw without replacement from (seed, tasks done, task, step)
            keys = [tf.random.stateless_uniform((size,), [seed * 1000 + self.tasks_done, step * 16 + task])
                    for seed in self.seeds]  # fmt: skip
            index = tf.stack([tf.math.top_k(key, k=self.memory_batch).indices for key in keys])
            images, labels = tf.gather(images, index, batch_dims=1), tf.gather(labels, index, batch_dims=1)
        return stored_gradients(network, variables, self.scenario, images, labels, self.task_of(task), self.tasks_done)

    def adjust_gradients(
        self, network: keras.Model, variables: list, gradients: list[tf.Tensor], step: tf.Tensor
    ) -> list[tf.Tensor]:
        task_gradients = [self.task_gradient(network, variables, k, step) for k in range(len(self.memories))]
        return projected(gradients, task_gradients, self.margin)

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        """Replay's redraw, or where drawn more than once (Hsu et al.'s code): after t tasks, every memory a random
        N // (draws t) of its examples, and ``draws`` new ones of the task just finished."""
        if self.drawn is None:
            super().end_task(network, task, train)
        else:
            size = self.size // (self.draws * (self.tasks_done + 1))
            self.drawn = [
                [per_task_sample(kept, size, draw_rng(seed, task, k)) for k, kept in enumerate(drawn)]
                + new_draws(train, size, self.draws, seed, task, len(drawn))
                for drawn, seed in zip(self.drawn, self.seeds, strict=True)
            ]
            self.buffers = [Split.concat(*drawn) for drawn in self.drawn]
            self.tasks_done += 1
        self._stack()
