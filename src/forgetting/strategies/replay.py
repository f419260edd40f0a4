"""Experience replay: train on each new task's data mixed with a buffer of earlier tasks' training examples.

The buffer holds ``replay.buffer_size`` examples of the finished tasks' train splits (never validation or test),
drawn without replacement, seeded, and class-balanced over the digits: each digit gets N // digits examples, the
first N % digits digits one more. When a task finishes, the new buffer is drawn from the old buffer and that
task's data, so no more than N old examples are ever kept: N is the strategy's memory cost. The buffer is repeated
so that every finished task weighs as much as the new one in each epoch (with one finished task, half of each
epoch is replay), as in van de Ven et al.'s replay; each repeat translates every image by a seeded random shift of
up to ``replay.shift`` pixels in each direction (0: exact copies), so that the few kept examples are not simply
memorised (data augmentation, one of the "bag of tricks" of Buzzega et al. 2020).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar

import keras
import numpy as np

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


def shifted(images: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image (N, H, W, C) translated by its own random (dy, dx) in [-shift, shift]^2, zeros shifted in."""
    if shift == 0:
        return images.copy()
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, len(images)))
    height, width = images.shape[1:3]
    return np.stack([p[y : y + height, x : x + width] for p, y, x in zip(padded, dy, dx, strict=True)])


class ReplayParams(Section):
    buffer_size: integer("an integer >= 1 (examples of finished tasks kept)", ge=1)
    shift: integer("an integer from 0 (exact copies) to 4 pixels", ge=0, le=4)


class Replay(Strategy):
    """One buffer per repetition, drawn (and shifted) from that repetition's seed. A strategy that keeps the same
    buffer for another use (A-GEM) extends this one under its own params section (``section``)."""

    name = "replay"
    section: ClassVar[str] = "replay"  # the params section whose buffer_size sets the buffer
    params_section: ClassVar[dict[str, Any]] = {"replay": ReplayParams}
    hyperparameters = ("replay.buffer_size", "replay.shift")
    # Not the buffer size: a bigger buffer always helps; it is the memory budget, set in params.yaml.
    search_space: ClassVar[dict[str, list[Any]]] = {"replay.shift": [0, 1, 2]}
    steps = (
        "an epoch passes over the task's data and its buffer, repeated to weigh as much per finished task: "
        "(finished tasks + 1) x the others' optimiser steps"
    )

    @classmethod
    def check_setting(cls, params: dict[str, Any]) -> None:
        """The buffer, drawn class-balanced after every task but the last, takes up to ceil(N / digits seen) examples
        of each digit: the train split must hold that many of each digit of the task just finished."""
        size, data, seen, limits = params[cls.section]["buffer_size"], params["data"], set(), []
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

    def __init__(self, buffers: list[Split], seeds: list[int], shift: int = 0) -> None:
        self.buffers, self.seeds, self.shift, self.tasks_done = buffers, seeds, shift, 1

    @classmethod
    def first_buffers(cls, params: dict[str, Any], task_a: TaskAState) -> list[Split]:
        """Each repetition's buffer of task A's train split, drawn from its seed."""
        size, train = params[cls.section]["buffer_size"], task_a.train_split()
        param = f"{cls.section}.buffer_size"
        return [class_balanced_sample(train, size, seed, param) for seed in repetition_seeds(params)]

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Replay:
        return cls(cls.first_buffers(params, task_a), repetition_seeds(params), params["replay"]["shift"])

    def training_data(self, train: Split) -> Iterator[Split]:
        """Each repetition's training set in turn: the task's data and its buffer's shifted copies, the images as
        uint8 pixels (``as_uint8``: the copies, up to (tasks done) x the task's size, never exist as floats)."""
        train = replace(train, image=as_uint8(train.image))
        for buffer, seed in zip(self.buffers, self.seeds, strict=True):
            copies = max(1, round(self.tasks_done * len(train) / len(buffer)))
            repeated = replace(buffer, image=as_uint8(buffer.image)).subset(np.tile(np.arange(len(buffer)), copies))
            rng = np.random.default_rng([seed, self.tasks_done])
            yield Split.concat(train, replace(repeated, image=shifted(repeated.image, self.shift, rng)))

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        param = f"{self.section}.buffer_size"
        self.buffers = [
            class_balanced_sample(Split.concat(buffer, train), len(buffer), seed + task, param)
            for buffer, seed in zip(self.buffers, self.seeds, strict=True)
        ]
        self.tasks_done += 1
