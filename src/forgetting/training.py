"""Training, written once: Keras ``fit`` on the strategy's training data, its penalty added in ``compute_loss``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import keras
import tensorflow as tf

from forgetting.data import Split
from forgetting.metrics import accuracy
from forgetting.model import build_mlp, compile_for_training
from forgetting.strategies import Strategy


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class PenalizedModel(keras.Model):
    """Wraps a network so that ``fit`` minimises  loss + strategy.penalty(network, x, logits); logs the penalty."""

    def __init__(self, network: keras.Model, strategy: Strategy) -> None:
        super().__init__(name=f"{network.name}_{strategy.name}")
        self.network = network
        self.strategy = strategy
        self.penalty_tracker = keras.metrics.Mean(name="penalty")

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        penalty = self.strategy.penalty(self.network, x, y_pred)
        self.penalty_tracker.update_state(penalty)
        return loss + penalty


class TaskAccuracyLog(keras.callbacks.Callback):
    """Writes a CSV row of test accuracy per task before training (epoch 0) and after every epoch.

    Columns: ``epoch``, ``<task>_accuracy`` for each task, then the epoch's training logs (loss, penalty, ...).
    The file is written to ``path`` as rows arrive, so forgetting can be watched as it happens.
    """

    def __init__(self, tasks: dict[str, Split], path: str | Path) -> None:
        super().__init__()
        self.tasks = tasks
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def _record(self, epoch: int, logs: dict | None) -> None:
        row: dict[str, float] = {"epoch": epoch}
        for name, split in self.tasks.items():
            row[f"{name}_accuracy"] = accuracy(self.model, split)
        row.update({k: float(v) for k, v in (logs or {}).items()})
        if logs is not None:  # let later callbacks see the task accuracies too
            logs.update({k: v for k, v in row.items() if k != "epoch"})
        self.rows.append(row)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def on_train_begin(self, logs=None):
        self._record(0, None)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1, logs)


def fit(
    model: keras.Model,
    train: Split,
    validation: Split | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | None = None,
) -> keras.callbacks.History:
    """Compile (Adam, cross-entropy from logits) and ``fit``; a progress bar on a terminal, a line per epoch
    otherwise (as under ``dvc repro``)."""
    compile_for_training(model, learning_rate)
    return model.fit(
        train.image,
        train.label,
        validation_data=None if validation is None else (validation.image, validation.label),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks or [],
        verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
    )


def finetune(network: keras.Model, strategy: Strategy, train: Split, validation: Split | None, **fit_args):
    """Fine-tune ``network`` in place on ``strategy.training_data(train)``, minimising its loss plus
    ``strategy``'s penalty."""
    return fit(PenalizedModel(network, strategy), strategy.training_data(train), validation, **fit_args)


def train_new_model(params: dict, train: Split, validation: Split | None, epochs: int) -> keras.Model:
    """A freshly initialised MLP (``params['model']``), seeded with ``params['seed']``, trained with ``fit`` under
    ``params['train']``'s optimiser settings for ``epochs`` epochs."""
    seed_everything(params["seed"])
    network = build_mlp(params["model"]["hidden_units"], params["model"]["dropout"])
    fit(
        network,
        train,
        validation,
        epochs=epochs,
        batch_size=params["train"]["batch_size"],
        learning_rate=params["train"]["learning_rate"],
    )
    return network
