"""Experience replay: train on each new task's data mixed with a buffer of earlier tasks' training examples.

The buffer holds ``replay.buffer_size`` examples of the finished tasks' train splits (never validation or test),
drawn without replacement, seeded, and class-balanced over the digits: each digit gets N // digits examples, the
first N % digits digits one more. When a task finishes, the new buffer is drawn from the old buffer and that
task's data, so no more than N old examples are ever kept: N is the strategy's memory cost. The buffer is repeated
so that every finished task weighs as much as the new one in each epoch (with one finished task, half of each
epoch is replay), as in van de Ven et al.'s replay.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from forgetting.data import Split
from forgetting.errors import ForgettingError
from forgetting.strategies.base import Strategy, TaskAState


def class_balanced_sample(split: Split, size: int, seed: int) -> Split:
    """``size`` examples of ``split``, as equal a number per digit as the digits allow, seeded."""
    digits = np.unique(split.digit)
    rng = np.random.default_rng(seed)
    quota = np.full(len(digits), size // len(digits))
    quota[: size % len(digits)] += 1
    chosen = []
    for digit, count in zip(digits, quota, strict=True):
        members = np.flatnonzero(split.digit == digit)
        if count > len(members):
            raise ForgettingError(
                f"params.yaml: replay.buffer_size = {size} asks for {count} examples of digit {digit}, "
                f"but only {len(members)} are available; use a smaller buffer"
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return split.subset(np.sort(np.concatenate(chosen)))


class Replay(Strategy):
    name = "replay"

    def __init__(self, buffer: Split, seed: int) -> None:
        self.buffer, self.seed, self.tasks_done = buffer, seed, 1

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Replay:
        seed = params["seed"]
        return cls(class_balanced_sample(task_a.train_split(), params["replay"]["buffer_size"], seed), seed)

    def training_data(self, train: Split) -> Split:
        copies = max(1, round(self.tasks_done * len(train) / len(self.buffer)))
        return Split.concat(train, self.buffer.subset(np.tile(np.arange(len(self.buffer)), copies)))

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        self.buffer = class_balanced_sample(Split.concat(self.buffer, train), len(self.buffer), self.seed + task)
        self.tasks_done += 1
