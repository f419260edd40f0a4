"""The optimiser (``train.optimizer``, ``finetune.optimizer``: Adam, or plain SGD, with no momentum, as Hsu et al.'s
SGD runs), and its state carried from one training to the next (``finetune.carry_optimizer``).

By default each task trains with a new Adam: moments m = v = 0 and step count 0, so that its bias correction
(1 - beta^k) starts again. Hsu et al.'s code keeps one Adam for the whole sequence, and so does a run that carries
it: task B's training goes on from the step count and moments that task A's left (``train_a`` saves them), task C's
from task B's, and so on, as one optimiser over every task would.

The state is saved as ``momentum/<variable path>`` and ``velocity/<variable path>`` (one slot per trained variable,
the repetitions stacked on its first axis, as the variable's) and ``iterations`` (the step count). SGD keeps no state
but its step count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from forgetting.files import load_weight_sets, save_npz

SLOTS = ("momentum", "velocity")
State = dict[str, np.ndarray]


def new(kind: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A new optimiser of ``kind`` (adam or sgd: ``train.optimizer``) at ``learning_rate``, Keras' defaults
    otherwise."""
    optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[kind]
    return optimizer(learning_rate=learning_rate)


def state(optimizer: keras.optimizers.Optimizer) -> State:
    """The step count and every trained variable's moments, by variable path (SGD's: the step count alone)."""
    saved = {"iterations": np.asarray(optimizer.iterations.numpy(), np.int64)}
    if not isinstance(optimizer, keras.optimizers.Adam):
        return saved
    slots = {"momentum": optimizer._momentums, "velocity": optimizer._velocities}
    for variable in optimizer._trainable_variables:
        index = optimizer._get_variable_index(variable)
        saved |= {f"{slot}/{variable.path}": np.array(slots[slot][index].numpy()) for slot in SLOTS}
    return saved


def carried(kind: str, learning_rate: float, variables: Sequence, saved: State) -> keras.optimizers.Optimizer:
    """An optimiser of ``kind`` at ``learning_rate`` for ``variables`` that goes on from ``saved``: its step count,
    and Adam's moments of every variable ``saved`` holds (by path; one it does not hold, a strategy's own layer new
    to this training, starts at zero)."""
    optimizer = new(kind, learning_rate)
    optimizer.build(list(variables))
    optimizer.iterations.assign(saved["iterations"])
    if kind != "adam":
        return optimizer
    slots = {"momentum": optimizer._momentums, "velocity": optimizer._velocities}
    for variable in variables:
        index = optimizer._get_variable_index(variable)
        for slot in SLOTS:
            value = saved.get(f"{slot}/{variable.path}")
            if value is not None:
                slots[slot][index].assign(value)
    return optimizer


def selected(saved: State, repetitions: Sequence[int]) -> State:
    """``saved`` for the repetitions ``repetitions`` (indices, in that order) of the network it was saved for."""
    index = list(repetitions)
    return {key: value if key == "iterations" else value[index] for key, value in saved.items()}


def save(path: str | Path, optimizer: keras.optimizers.Optimizer) -> None:
    save_npz(path, **state(optimizer))


def load(path: str | Path) -> State:
    """``save``'s file (made by ``train_a``); a missing or corrupt one names the fix."""
    momentum, velocity = load_weight_sets(path, SLOTS, "optimiser state", "train_a") if _has_slots(path) else ({}, {})
    with np.load(path) as arrays:
        iterations = arrays["iterations"]
    return (
        {"iterations": iterations}
        | {f"momentum/{k}": v for k, v in momentum.items()}
        | {f"velocity/{k}": v for k, v in velocity.items()}
    )


def _has_slots(path: str | Path) -> bool:
    """False for a readable file that holds a step count and nothing else (SGD's state); True otherwise, where
    ``load_weight_sets`` says what is wrong with a file that is missing, corrupt or without its moments."""
    try:
        with np.load(path) as arrays:
            return list(arrays.files) != ["iterations"]
    except Exception:
        return True
