"""Training, written once: Keras ``fit`` on the strategy's training data, its penalty added in ``compute_loss``.

Every model is trained through ``ContinualModel``, which feeds the images to the network and lets the scenario
pick the logits that the loss and the accuracy see (the example's own head in the task scenario).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import keras
import tensorflow as tf

from forgetting.data import Split
from forgetting.errors import ForgettingError
from forgetting.metrics import accuracy
from forgetting.model import build_mlp, compile_for_training
from forgetting.scenarios import Scenario
from forgetting.strategies import Strategy
from forgetting.strategies.base import PathIntegral


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class ContinualModel(keras.Model):
    """Wraps a network so that ``fit`` minimises  loss(scenario.select(logits)) + strategy.penalty(...).

    Inputs are ``Split.inputs()`` ({"image", "task"}). The penalty is logged as a metric. With a ``PathIntegral``
    every training step also adds -g * (theta after - theta before) to it (Synaptic Intelligence); the step
    itself is Keras' own, so the weights are the same with or without recording.
    """

    def __init__(
        self,
        network: keras.Model,
        scenario: Scenario,
        strategy: Strategy | None = None,
        path_integral: PathIntegral | None = None,
    ) -> None:
        super().__init__(name=f"{network.name}_{scenario.kind}")
        self.network = network
        self.scenario = scenario
        self.strategy = strategy or Strategy()
        self.path_integral = path_integral
        self.penalty_tracker = keras.metrics.Mean(name="penalty")

    def call(self, inputs, training=False):
        return self.scenario.select(self.network(inputs["image"], training=training), inputs["task"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        penalty = self.strategy.penalty(self.network, x, y_pred)
        self.penalty_tracker.update_state(penalty)
        return loss + penalty

    def train_step(self, data):
        if self.path_integral is None:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x["image"])[0])
            loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        gradients = tape.gradient(loss, variables)
        before = [tf.identity(v.value) for v in variables]  # copies: reading after the update must differ
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.path_integral.add(variables, gradients, before)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


class TaskAccuracyLog(keras.callbacks.Callback):
    """Writes a CSV row of test accuracy on every task before training (epoch 0) and after every epoch.

    Columns: ``epoch`` (counted across consecutive ``fit`` calls: one log follows a whole task sequence),
    ``task`` (the task trained so far: ``task`` on the first row, then ``log.task``, set before each task),
    ``<task>_accuracy`` for each task, then
    the epoch's training logs (loss, penalty, ...). Rows are written to ``path`` as they arrive, so forgetting can
    be watched as it happens; the last row of each task is its row of the accuracy matrix.
    """

    def __init__(self, tests: dict[str, Split], scenario: Scenario, path: str | Path, task: str) -> None:
        super().__init__()
        self.tests = tests
        self.scenario = scenario
        self.path = Path(path)
        self.first_task = task
        self.task = task
        self.rows: list[dict[str, float | str]] = []

    def _record(self, logs: dict | None) -> None:
        row: dict[str, float | str] = {"epoch": len(self.rows), "task": self.task if self.rows else self.first_task}
        for name, split in self.tests.items():
            row[f"{name}_accuracy"] = accuracy(self.model.network, split, self.scenario)
        row.update({k: float(v) for k, v in (logs or {}).items()})
        if logs is not None:  # let later callbacks see the task accuracies too
            logs.update({k: v for k, v in row.items() if k.endswith("_accuracy")})
        self.rows.append(row)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def on_train_begin(self, logs=None):
        if not self.rows:
            self._record(None)

    def on_epoch_end(self, epoch, logs=None):
        self._record(logs)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training as soon as the loss is NaN or infinite, with a ForgettingError naming the epoch, what was
    being trained and the params likely to blame (``suspects``), instead of training on and writing chance-level
    metrics. Checked after every compiled step (``STEPS_PER_EXECUTION`` batches)."""

    def __init__(self, what: str, suspects: str) -> None:
        super().__init__()
        self.what, self.suspects, self.epoch = what, suspects, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise ForgettingError(
                f"the loss became {loss} in epoch {self.epoch + 1} of training on {self.what}: "
                f"lower {self.suspects} in params.yaml"
            )


def fit(
    model: ContinualModel,
    train: Split,
    validation: Split | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | None = None,
    guard: NonFiniteLossGuard | None = None,
) -> keras.callbacks.History:
    """Compile (Adam, cross-entropy from logits) and ``fit``; a progress bar on a terminal, a line per epoch
    otherwise (as under ``dvc repro``). A NaN or infinite loss stops it with an error (``guard``; by default it
    blames the learning rate)."""
    compile_for_training(model, learning_rate)
    guard = guard or NonFiniteLossGuard(model.network.name, "the learning rate")
    return model.fit(
        train.inputs(),
        train.label,
        validation_data=None if validation is None else (validation.inputs(), validation.label),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[guard, *(callbacks or [])],
        verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
    )


def finetune(
    network: keras.Model,
    strategy: Strategy,
    scenario: Scenario,
    train: Split,
    validation: Split | None,
    task: str = "the next task",
    **fit_args,
):
    """Fine-tune ``network`` in place on ``strategy.training_data(train)`` (task ``task``), minimising its loss plus
    ``strategy``'s penalty."""
    model = ContinualModel(network, scenario, strategy, strategy.path_integral)
    suspects = " or ".join(filter(None, ["finetune.learning_rate", strategy.strength_param]))
    guard = NonFiniteLossGuard(task, suspects)
    return fit(model, strategy.training_data(train), validation, guard=guard, **fit_args)


def train_sequence(
    network: keras.Model,
    strategy: Strategy,
    scenario: Scenario,
    train: list[Split],
    validation: list[Split],
    log: TaskAccuracyLog,
    **fit_args,
) -> None:
    """Train ``network`` (already trained on task 0, which ``strategy`` was built from) on tasks 1, 2, ... in turn,
    letting the strategy consolidate each finished task (``Strategy.end_task``) before the next."""
    for t in range(1, len(train)):
        print(f"{strategy.name}: training on {scenario.names[t]} ({t + 1} of {len(train)})", flush=True)
        log.task = scenario.names[t]
        finetune(network, strategy, scenario, train[t], validation[t], scenario.names[t], callbacks=[log], **fit_args)
        if t < len(train) - 1:
            strategy.end_task(network, t, train[t])


def train_new_model(
    params: dict,
    scenario: Scenario,
    train: Split,
    validation: Split | None,
    epochs: int,
    callbacks: list[keras.callbacks.Callback] | None = None,
    path_integral: bool = False,
    what: str = "task_a",
) -> tuple[keras.Model, PathIntegral | None]:
    """A freshly initialised MLP (``params['model']``, the scenario's outputs), seeded with ``params['seed']``,
    trained with ``fit`` under ``params['train']``'s optimiser settings for ``epochs`` epochs; with
    ``path_integral``, also SI's path integral over this training. ``what`` names the training in errors."""
    seed_everything(params["seed"])
    network = build_mlp(scenario.num_outputs, params["model"]["hidden_units"], params["model"]["dropout"])
    recorder = PathIntegral(network) if path_integral else None
    fit(
        ContinualModel(network, scenario, path_integral=recorder),
        train,
        validation,
        epochs=epochs,
        batch_size=params["train"]["batch_size"],
        learning_rate=params["train"]["learning_rate"],
        callbacks=callbacks,
        guard=NonFiniteLossGuard(what, "train.learning_rate"),
    )
    return network, recorder
