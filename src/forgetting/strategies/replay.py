"""Experience replay: fine-tune on task B's train split mixed with a buffer of task-A training examples.

The buffer holds ``replay.buffer_size`` examples of task A's train split (never its validation or test split), drawn
without replacement, seeded, and class-balanced: each label gets N // classes examples, the first N % classes labels
one more. Its size is the strategy's memory cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgetting.data import Split
from forgetting.errors import ForgettingError
from forgetting.strategies.base import Strategy, TaskAState


def class_balanced_sample(split: Split, size: int, seed: int) -> Split:
    """``size`` examples of ``split``, as equal a number per label as the labels allow, seeded."""
    labels = np.unique(split.label)
    rng = np.random.default_rng(seed)
    quota = np.full(len(labels), size // len(labels))
    quota[: size % len(labels)] += 1
    chosen = []
    for label, count in zip(labels, quota, strict=True):
        members = np.flatnonzero(split.label == label)
        if count > len(members):
            raise ForgettingError(
                f"params.yaml: replay.buffer_size = {size} asks for {count} examples of label {label}, "
                f"but task A's train split has {len(members)}; use a smaller buffer"
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return split.subset(np.sort(np.concatenate(chosen)))


class Replay(Strategy):
    name = "replay"

    def __init__(self, buffer: Split) -> None:
        self.buffer = buffer

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> Replay:
        return cls(class_balanced_sample(task_a.train_split(), params["replay"]["buffer_size"], params["seed"]))

    def training_data(self, train: Split) -> Split:
        return Split.concat(train, self.buffer)
