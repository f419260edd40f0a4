"""Experience replay: train on each new task's data mixed with a buffer of earlier tasks' training examples.

The buffer holds ``replay.buffer_size`` = N examples of the finished tasks' train splits (never validation or test),
drawn without replacement, seeded, and redrawn from the old buffer and the task just finished after each task, so no
more than N old examples are ever kept: N is the strategy's memory cost. ``replay.memory`` says how:

- ``class_balanced``: balanced over the digits: each digit gets N // digits examples, the first N % digits one more;
- ``per_task`` (Hsu et al. 2018's Naive_Rehearsal, GT-RIPL/Continual-Learning-Benchmark agents/exp_replay.py): after
  t tasks, N // t random examples of each (all of a task's where it holds fewer), a task's kept ones a random subset
  of those it kept before (theirs: the first N // t of a random draw, the same in distribution).

``replay.mix`` says how often the buffer is repeated in each epoch of a task whose train split holds M examples:

- ``per_task``: so that every finished task weighs as much as the new one, round(t M / |buffer|) times after t tasks
  (with one finished task, half of each epoch is replay), as in van de Ven et al.'s replay;
- ``one_to_one``: max(1, M // N) times, the whole buffer about as much as the new data whatever t is (Hsu et al.'s
  "old data : new data = 1 : 1").

Each repeat translates every image by a seeded random shift of up to ``replay.shift`` pixels in each direction (0:
exact copies), so that the few kept examples are not simply memorised (data augmentation, one of the "bag of tricks"
of Buzzega et al. 2020).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

import keras
import numpy as np
from pydantic import Field

from forgetting.config.params import Section, integer, repetition_seeds
from forgetting.data.mnist import Split, as_uint8, train_examples
from forgetting.errors import ForgettingError
from forgetting.strategies.base import Memory, Strategy, TaskAState


def class_balanced_sample(split: Split, size: int, seed: int, param: str = "replay.buffer_size") -> Split:
    """``size`` examples of ``split``, as equal a number per digit as the digits allow, seeded; ``param`` (the one
    that set ``size``) is named in the error when a digit has too few."""
    digits = np.unique(split.digit)
    rng = np.random.default_rng(seed)
    quota = np.full(len(digits), size // len(digits))
    quota[: size % len(digits)] += 1
    chosen = []
    for digit, count in zip(digits, quota, strict=True):
        members = np.flatnonzero(split.digit == digit)
        if count > len(members):
            raise ForgettingError(
                f"params.yaml: {param} = {size} asks for {count} examples of digit {digit}, "
                f"but only {len(members)} are available; use a smaller buffer"
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return split.subset(np.sort(np.concatenate(chosen)))


def task_rng(seed: int, task: int) -> np.random.Generator:
    """The generator of a per-task draw: repetition ``seed``'s, after task ``task``."""
    return np.random.default_rng([seed, task])


def per_task_sample(split: Split, size: int, rng: np.random.Generator) -> Split:
    """``size`` random examples of each task of ``split`` (all of a task's where it holds fewer), in task order."""
    chosen = []
    for task in np.unique(split.task):
        members = np.flatnonzero(split.task == task)
        chosen.append(np.sort(rng.choice(members, size=min(size, len(members)), replace=False)))
    return split.subset(np.concatenate(chosen))


def shifted(images: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image (N, H, W, C) translated by its own random (dy, dx) in [-shift, shift]^2, zeros shifted in."""
    if shift == 0:
        return images.copy()
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, len(images)))
    height, width = images.shape[1:3]
    return np.stack([p[y : y + height, x : x + width] for p, y, x in zip(padded, dy, dx, strict=True)])


MEMORIES = ("class_balanced", "per_task")
MIXES = ("per_task", "one_to_one")
MEMORY = Annotated[
    Literal[MEMORIES],
    Field(description="class_balanced (as many of each digit) or per_task (buffer_size // t of each of t tasks)"),
]
MIX = Annotated[
    Literal[MIXES],
    Field(description="per_task (each finished task as much as the new one) or one_to_one (old data as much as new)"),
]


class ReplayParams(Section):
    buffer_size: integer("an integer >= 1 (examples of finished tasks kept)", ge=1)
    shift: integer("an integer from 0 (exact copies) to 4 pixels", ge=0, le=4)
    memory: MEMORY
    mix: MIX


class Replay(Strategy):
    """One buffer per repetition, drawn (and shifted) from that repetition's seed. A strategy that keeps the same
    buffer for another use (A-GEM) extends this one under its own params section (``section``)."""

    name = "replay"
    section: ClassVar[str] = "replay"  # the params section whose buffer_size sets the buffer
    params_section: ClassVar[dict[str, Any]] = {"replay": ReplayParams}
    hyperparameters = ("replay.buffer_size", "replay.shift", "replay.memory", "replay.mix")
    # Not the buffer size: a bigger buffer always helps; it is the memory budget, set in params.yaml.
    search_space: ClassVar[dict[str, list[Any]]] = {"replay.shift": [0, 1, 2]}
    steps = (
        "an epoch passes over the task's data and its buffer, repeated to weigh as much per finished task: "
        "(finished tasks + 1) x the others' optimiser steps (replay.mix one_to_one: about 2 x)"
    )

    @classmethod
    def check_setting(cls, params: dict[str, Any]) -> None:
        """The buffer, drawn class-balanced after every task but the last, takes up to ceil(N / digits seen) examples
        of each digit: the train split must hold that many of each digit of the task just finished."""
        own, data, seen, limits = params[cls.section], params["data"], set(), []
        if cls.memory_of(params) == "per_task":
            return  # N // t of each task, or all it holds
        size = own["buffer_size"]
        for task in params["tasks"][:-1]:  # the largest buffer each draw allows, from its task's scarcest digit
            seen |= set(task)
            counts = {d: train_examples(d, data["validation_fraction"], data["train_per_digit"]) for d in task}
            digit = min(counts, key=counts.get)
            limits.append((counts[digit] * len(seen), task, -(-size // len(seen)), digit, counts[digit]))
        fits, task, quota, digit, held = min(limits, key=lambda limit: limit[0])
        if size > fits:
            raise ForgettingError(
                f"{cls.section}.buffer_size = {size} draws up to {quota} examples of each digit of the task {task}, "
                f"but its train split holds {held} of digit {digit} (data.train_per_digit = "
                f"{data['train_per_digit']}); lower {cls.section}.buffer_size to {fits} or raise data.train_per_digit"
            )

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        return Memory("stored examples of finished tasks", examples=params[cls.section]["buffer_size"])

    def __init__(
        self,
        buffers: list[Split],
        seeds: list[int],
        shift: int = 0,
        memory: str = "class_balanced",
        mix: str = "per_task",
        size: int | None = None,
    ) -> None:
        """``size``: N, the buffer's budget (default: the first buffer's length)."""
        self.buffers, self.seeds, self.shift, self.tasks_done = buffers, seeds, shift, 1
        self.kept, self.mix = memory, mix  # replay.memory: how the buffer is kept (``memory`` is its cost)
        self.size = len(buffers[0]) if size is None else int(size)

    @classmethod
    def memory_of(cls, params: dict[str, Any]) -> str:
        """How the buffer is drawn: its section's ``memory`` (A-GEM's section has none: class_balanced)."""
        return params[cls.section].get("memory", "class_balanced")

    @classmethod
    def first_buffers(cls, params: dict[str, Any], task_a: TaskAState) -> list[Split]:
        """Each repetition's buffer of task A's train split, drawn from its seed."""
        own, train = params[cls.section], task_a.train_split()
        size, param = own["buffer_size"], f"{cls.section}.buffer_size"
        if cls.memory_of(params) == "per_task":
            return [per_task_sample(train, size, task_rng(seed, 0)) for seed in repetition_seeds(params)]
        return [class_balanced_sample(train, size, seed, param) for seed in repetition_seeds(params)]

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Replay:
        own = params["replay"]
        buffers = cls.first_buffers(params, task_a)
        return cls(buffers, repetition_seeds(params), own["shift"], own["memory"], own["mix"], own["buffer_size"])

    def copies(self, train: Split) -> int:
        """How many times the buffer is repeated in an epoch on ``train`` (``replay.mix``)."""
        if self.mix == "one_to_one":
            return max(1, len(train) // self.size)
        return max(1, round(self.tasks_done * len(train) / len(self.buffers[0])))

    def training_data(self, train: Split) -> Iterator[Split]:
        """Each repetition's training set in turn: the task's data and its buffer's shifted copies, the images as
        uint8 pixels (``as_uint8``: the copies, up to (tasks done) x the task's size, never exist as floats)."""
        train, copies = replace(train, image=as_uint8(train.image)), self.copies(train)
        for buffer, seed in zip(self.buffers, self.seeds, strict=True):
            repeated = replace(buffer, image=as_uint8(buffer.image)).subset(np.tile(np.arange(len(buffer)), copies))
            rng = np.random.default_rng([seed, self.tasks_done])
            yield Split.concat(train, replace(repeated, image=shifted(repeated.image, self.shift, rng)))

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        param = f"{self.section}.buffer_size"
        if self.kept == "per_task":  # N // t of each of the t tasks finished, from the old buffer and the new task
            self.buffers = [
                per_task_sample(Split.concat(buffer, train), self.size // (self.tasks_done + 1), task_rng(seed, task))
                for buffer, seed in zip(self.buffers, self.seeds, strict=True)
            ]
        else:
            self.buffers = [
                class_balanced_sample(Split.concat(buffer, train), len(buffer), seed + task, param)
                for buffer, seed in zip(self.buffers, self.seeds, strict=True)
            ]
        self.tasks_done += 1
