"""The three continual-learning scenarios (van de Ven & Tolias 2019) over a sequence of digit sets.

Task t is the t-th digit set of the ``tasks`` param, named ``task_a``, ``task_b``, ...; a digit's *position* is
its index in its task's list (so with tasks [0,2,4,6,8], [1,3,5,7,9] the position of d is d // 2). W is the largest
task's size.

  - ``domain``: one shared W-way head; label = position; no task identity at test time.
  - ``task``:   one W-way head per task (the network has T * W outputs, head t is outputs t*W .. t*W+W-1); the
                example's task selects its head in training and testing; label = position.
  - ``class``:  one head over every digit of every task; label = the digit's index among all of them (the digit
                itself when the tasks cover 0-9); no task identity at test time. ``class_outputs`` says what the
                softmax spans while task t trains (its loss, the Fisher, MAS's importance, the per-epoch logs):
                ``all`` the digits (the default), or ``seen``, only the digits of tasks 0..t (van de Ven et al.'s
                ``active_classes``, Hsu et al.'s ``valid_out_dim``); after the last task both are every digit.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from forgetting.config.params import SCENARIOS

__all__ = ["SCENARIOS", "Scenario", "task_names"]


def task_names(count: int) -> list[str]:
    """``task_a``, ``task_b``, ... for a sequence of ``count`` tasks."""
    return [f"task_{letter}" for letter in string.ascii_lowercase[:count]]


MASKED = -1e9  # the logit of an output outside the softmax: exp(MASKED - anything reachable) is 0 in float32


@dataclass(frozen=True)
class Scenario:
    kind: str
    tasks: tuple[tuple[int, ...], ...]
    class_outputs: str = "all"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Scenario:
        """The scenario of ``params``; ``class_outputs`` is declared by the stages that train on a task of the
        sequence (``train_a``, ``fisher``, ``finetune@*``), and is ``all`` for the others (joint training sees every
        task at once, and the evaluation comes after the last task)."""
        tasks = tuple(tuple(task) for task in params["tasks"])
        return cls(params["scenario"], tasks, params.get("class_outputs", "all"))

    @property
    def masks_unseen(self) -> bool:
        return self.kind == "class" and self.class_outputs == "seen"

    def seen_digits(self, task: int) -> np.ndarray:
        """The output indices of the digits of tasks 0..``task`` (class scenario)."""
        return np.searchsorted(self.digits, sorted(d for members in self.tasks[: task + 1] for d in members))

    def restrict(self, logits: tf.Tensor, task: int | None) -> tf.Tensor:
        """``logits`` (..., outputs) as the softmax sees them while task ``task`` trains: unchanged, or (class
        scenario, ``class_outputs: seen``) with the outputs of digits not yet seen set to ``MASKED``. ``task``
        None: every task at once (joint)."""
        if not self.masks_unseen or task is None or task >= len(self.tasks) - 1:
            return logits
        seen = np.zeros(self.num_outputs, bool)
        seen[self.seen_digits(task)] = True
        return tf.where(tf.constant(seen), logits, tf.constant(MASKED, logits.dtype))

    @property
    def names(self) -> list[str]:
        return task_names(len(self.tasks))

    @property
    def width(self) -> int:
        return max(len(task) for task in self.tasks)

    @property
    def digits(self) -> list[int]:
        return sorted(d for task in self.tasks for d in task)

    @property
    def num_outputs(self) -> int:
        """The network's number of logits."""
        return {"domain": self.width, "task": len(self.tasks) * self.width, "class": len(self.digits)}[self.kind]

    def labels(self, digits: np.ndarray, task: np.ndarray) -> np.ndarray:
        """The label of each (digit, task index) pair, as int64."""
        digits, task = np.asarray(digits, np.int64), np.asarray(task, np.int64)
        if self.kind == "class":
            index = np.full(10, -1, np.int64)
            index[self.digits] = np.arange(len(self.digits))
            return index[digits]
        position = np.full((len(self.tasks), 10), -1, np.int64)
        for t, members in enumerate(self.tasks):
            position[t, list(members)] = np.arange(len(members))
        return position[task, digits]

    def column(self, label: np.ndarray, task: np.ndarray) -> np.ndarray:
        """The network output of each example (``label``, ``task`` index): its label, or in the task scenario that
        position of its task's head."""
        label = np.asarray(label, np.int64)
        return label + self.width * np.asarray(task, np.int64) if self.kind == "task" else label

    def columns(self, task: int) -> np.ndarray:
        """The network outputs that make up task ``task``'s prediction (softmax over these) at its end."""
        if self.kind == "task":
            return task * self.width + np.arange(self.width)
        if self.masks_unseen:
            return self.seen_digits(task)
        return np.arange(self.num_outputs)

    def seen_columns(self, tasks_done: int) -> list[np.ndarray]:
        """The output groups (one softmax each) that answer for the first ``tasks_done`` tasks: the shared head
        (domain), each finished task's head (task), or the logits of the finished tasks' digits (class)."""
        if self.kind == "domain":
            return [np.arange(self.width)]
        if self.kind == "task":
            return [self.columns(t) for t in range(tasks_done)]
        seen = sorted(d for task in self.tasks[:tasks_done] for d in task)
        return [np.searchsorted(self.digits, seen)]

    def select(self, logits: tf.Tensor, task: tf.Tensor) -> tf.Tensor:
        """The logits that the loss and the prediction use: the example's own head in the task scenario, all
        logits otherwise. ``logits`` is (..., outputs), ``task`` the examples' task indices, broadcast to
        ``logits``' leading dimensions (one per example, shared by every repetition, or one per repetition)."""
        if self.kind != "task":
            return logits
        leading = tf.shape(logits)[:-1]
        heads = tf.reshape(logits, tf.concat([leading, [len(self.tasks), self.width]], axis=0))
        task = tf.broadcast_to(tf.cast(task, tf.int32), leading)[..., None]
        rank = len(logits.shape) - 1
        return tf.squeeze(tf.gather(heads, task, axis=rank, batch_dims=rank), axis=rank)
