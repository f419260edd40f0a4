"""Training, written once: Keras ``fit`` over every repetition at once, the strategy's penalty added in
``compute_loss``.

The network holds S repetitions (``forgetting.nn.model``). Each compiled step gathers each repetition's own batch
(``TrainingSet``: repetition s visits the examples in its own seeded order, and may have its own examples, as
replay's buffers are) and minimises

    sum over repetitions s of  [ mean over s's batch of CE(scenario.select(logits_s)) + penalty_s ]

so that each repetition's gradient (and Adam's update, which is per parameter) is exactly what it would be if it
were trained alone: repetition s of S is the same training as a one-repetition run with seed ``seeds[s]``.
Every model is trained through ``ContinualModel``, which lets the scenario pick the logits that the loss and the
accuracy see (the example's own head in the task scenario).
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from forgetting.config.params import repetition_seeds
from forgetting.data.mnist import Split, load_tasks
from forgetting.data.scenarios import Scenario
from forgetting.data.training_set import Reshuffle, TrainingSet
from forgetting.errors import ForgettingError
from forgetting.evaluation.intervals import half_width
from forgetting.evaluation.metrics import accuracy
from forgetting.nn import adam
from forgetting.nn.model import INPUT_DEFAULTS, STEPS_PER_EXECUTION, StackedMLP, build_network, selected
from forgetting.nn.path_integral import PathIntegral
from forgetting.strategies import Strategy, build_strategy
from forgetting.strategies.base import TaskAState


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class ContinualModel(keras.Model):
    """Wraps a ``StackedMLP`` so that ``fit`` minimises, per repetition, loss(scenario.select(logits)) + the
    strategy's terms, summed over repetitions (the module docstring), calling the strategy's hooks
    (``forgetting.strategies.base``) at their points of the step: ``penalty`` and ``memory_loss`` in the loss,
    ``adjust_gradients`` and ``see_batch`` before the optimiser step, ``after_step`` after it (and each of
    ``observers``' ``after_step``, such as task A's ``PathIntegral``). Hooks the strategy does not override are left
    out of the compiled step; the step itself is Keras' optimiser's.

    ``fit`` is given the positions 0..N-1 of the epoch (``TrainingSet``); validation data are shared by every
    repetition. Logged: ``loss`` (mean over repetitions of each one's loss + the strategy's terms), ``penalty``
    (the strategy's terms) and ``accuracy`` (means over repetitions). The optimiser trains the network's variables
    and those of the strategy's own layers (``Strategy.trained_layers``).
    """

    def __init__(
        self,
        network: StackedMLP,
        scenario: Scenario,
        data: TrainingSet,
        strategy: Strategy | None = None,
        observers: Sequence = (),
        task: int | None = None,
    ) -> None:
        super().__init__(name=f"{network.name}_{scenario.kind}")
        self.network = network
        self.scenario = scenario
        self.data = data
        self.strategy = strategy or Strategy()
        self.strategy_layers = self.strategy.trained_layers()  # tracked: trained after the network's variables
        self.task = task  # the task being trained (the scenario's outputs seen so far), None: every task at once
        self.watchers = [*([self.strategy] if self.strategy.acts_at("after_step") else []), *observers]
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.penalty_tracker = keras.metrics.Mean(name="penalty")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.penalty_tracker, self.accuracy_tracker]

    def call(self, inputs, training=False):
        """Logits (S, batch, scenario outputs) for {"image", "task"}: shared or one batch per repetition; the
        outputs not yet seen masked where the scenario says so (``Scenario.restrict``)."""
        logits = self.scenario.select(self.network.per_repetition(inputs["image"], training), inputs["task"])
        return self.scenario.restrict(logits, self.task)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Per repetition: mean cross-entropy over its batch + its penalty (and memory loss); summed over
        repetitions. Logs the means over repetitions."""
        labels = tf.broadcast_to(tf.cast(y, tf.int32), tf.shape(y_pred)[:-1])
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        penalty = self.strategy.penalty(self.network, x, y_pred) if training else tf.constant(0.0)
        if training and self.strategy.acts_at("memory_loss"):
            penalty += self.strategy.memory_loss(self.network, self.optimizer.iterations)
        total = tf.reduce_sum(tf.reduce_mean(cross_entropy, axis=-1)) + penalty
        repetitions = float(self.network.repetitions)
        self.loss_tracker.update_state(total / repetitions)
        self.penalty_tracker.update_state(penalty / repetitions)
        self.accuracy_tracker.update_state(tf.reshape(labels, (-1,)), tf.reshape(y_pred, (-1, y_pred.shape[-1])))
        return total

    def train_step(self, positions):
        x, y = self.data.batch(positions)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x, y, self(x, training=True))
        variables = self.trainable_weights
        gradients = tape.gradient(loss, variables)
        if self.strategy.acts_at("adjust_gradients"):
            gradients = self.strategy.adjust_gradients(self.network, variables, gradients, self.optimizer.iterations)
        if self.strategy.acts_at("see_batch"):
            self.strategy.see_batch(self.network, x, y, self.optimizer.iterations)
        before = [tf.identity(v.value) for v in variables] if self.watchers else None
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        for watcher in self.watchers:
            watcher.after_step(variables, gradients, before)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        self.compute_loss(x, y, self(x, training=False), training=False)
        return {m.name: m.result() for m in self.metrics if m is not self.penalty_tracker}


class TaskAccuracyLog(keras.callbacks.Callback):
    """Test accuracy of every repetition on every task, before training (epoch 0) and after every epoch.

    Writes two CSVs as rows arrive (so forgetting can be watched as it happens):
      - ``path``: one row per epoch: ``epoch`` (counted across consecutive ``fit`` calls: one log follows a whole
        task sequence), ``task`` (the task trained so far: ``task`` on the first row, then ``log.task``, set
        before each task), ``<task>_accuracy`` (mean over repetitions) and ``<task>_accuracy_ci95`` (its 95%
        confidence half-width) for each task, then the epoch's training logs (means over repetitions);
      - ``repetitions_path``: one row per epoch and repetition: ``epoch``, ``task``, ``seed``,
        ``<task>_accuracy`` for each task.
    The last rows of each task make the accuracy matrix. Accuracy follows ``predict`` (a strategy's prediction rule,
    ``Strategy.predict``; ``train_sequence`` sets the strategy's), by default the network's logits.
    """

    def __init__(
        self,
        tests: dict[str, Split],
        scenario: Scenario,
        path: str | Path,
        repetitions_path: str | Path,
        task: str,
        network: StackedMLP | None = None,
        predict: Callable | None = None,
    ) -> None:
        super().__init__()
        self.tests, self.scenario, self.network, self.predict = tests, scenario, network, predict
        self.path, self.repetitions_path = Path(path), Path(repetitions_path)
        self.first_task = task
        self.task = task
        self.rows: list[dict[str, float | str]] = []
        self.repetition_rows: list[dict[str, float | str | int]] = []

    def _record(self, logs: dict | None) -> None:
        network = self.network if self.network is not None else self.model.network
        task = self.task if self.rows else self.first_task
        row: dict[str, float | str] = {"epoch": len(self.rows), "task": task}
        trained = self.scenario.names.index(task) if task in self.scenario.names else None
        per_task = {
            name: accuracy(network, split, self.scenario, predict=self.predict, task=trained)
            for name, split in self.tests.items()
        }
        for name, values in per_task.items():
            row[f"{name}_accuracy"] = round(float(np.mean(values)), 6)
            row[f"{name}_accuracy_ci95"] = half_width(values)
        row.update({k: round(float(v), 6) for k, v in (logs or {}).items()})
        if logs is not None:  # let later callbacks see the task accuracies too
            logs.update({k: v for k, v in row.items() if k.endswith("_accuracy")})
        for s, seed in enumerate(network.seeds):
            self.repetition_rows.append(
                {"epoch": row["epoch"], "task": task, "seed": seed}
                | {f"{name}_accuracy": round(float(values[s]), 6) for name, values in per_task.items()}
            )
        self.rows.append(row)
        _write_csv(self.path, self.rows)
        _write_csv(self.repetitions_path, self.repetition_rows)

    def on_train_begin(self, logs=None):
        if not self.rows:
            self._record(None)

    def on_epoch_end(self, epoch, logs=None):
        self._record(logs)


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


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


SCHEDULES = {  # a training's params: (section, epochs key, iterations key)
    "a": ("train", "epochs_a", "iterations_a"),
    "joint": ("train", "epochs_joint", "iterations_joint"),
    "finetune": ("finetune", "epochs", "iterations"),
}


def schedule(params: dict, training: str) -> tuple[int, int | None]:
    """(epochs, iterations) of ``training``: task A's (``a``), joint's or each later task's (``finetune``). Where
    its iterations param is set, one epoch of that many optimiser steps (``TrainingSet``); else its epochs, each a
    pass over the data."""
    section, epochs, iterations = SCHEDULES[training]
    steps = params[section][iterations]
    return (params[section][epochs], None) if steps is None else (1, steps)


def fit(
    model: ContinualModel,
    validation: Split | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | None = None,
    guard: NonFiniteLossGuard | None = None,
    initial_epoch: int = 0,
    optimizer: keras.optimizers.Optimizer | None = None,
    carried: adam.State | None = None,
    optimizer_kind: str = "adam",
) -> keras.callbacks.History:
    """Compile (a new optimiser of ``optimizer_kind``, one going on from the state ``carried`` of an earlier
    training's, or ``optimizer`` carrying on from earlier epochs) and ``fit`` over ``model.data``, epochs
    ``initial_epoch`` to ``epochs``; a progress bar on a terminal, a line per epoch otherwise (as under
    ``dvc repro``). A NaN or infinite loss stops it with an error (``guard``; by default it blames the learning
    rate). The data are let go afterwards (``TrainingSet.release``), and so are the traced steps
    (``forget_custom_gradients``)."""
    if optimizer is None and carried is not None:
        optimizer = adam.carried(optimizer_kind, learning_rate, model.trainable_weights, carried)
    optimizer = optimizer or adam.new(optimizer_kind, learning_rate)
    model.compile(optimizer=optimizer, steps_per_execution=STEPS_PER_EXECUTION)
    guard = guard or NonFiniteLossGuard(model.network.name, "the learning rate")
    try:
        return model.fit(
            np.arange(model.data.positions, dtype=np.int32),
            validation_data=None if validation is None else (validation.inputs(), validation.label),
            epochs=epochs,
            initial_epoch=initial_epoch,
            batch_size=batch_size,
            shuffle=False,  # each repetition's own order: Reshuffle
            callbacks=[Reshuffle(model.data), guard, *(callbacks or [])],
            verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
        )
    finally:
        model.data.release()
        forget_custom_gradients()


def forget_custom_gradients() -> None:
    """Drop the gradients that ``tf.custom_gradient`` registered while a training was traced. Keras' optimiser sums
    each step's gradients over replicas through one, even with one replica, and TensorFlow keeps what it registers
    for good, and with it the traced graph and every tensor the graph captured (a strategy's anchors, the labels):
    a process training one model after another (a tuning worker, a task sequence) would grow by each
    (tensorflow/tensorflow#97697). Called once a training has run; a step traced later registers its own. Where
    TensorFlow's registry is not where this looks, nothing is dropped."""
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
    for name in [name for name in registry if name.startswith("CustomGradient-")]:
        del registry[name]


def finetune(
    network: StackedMLP,
    strategy: Strategy,
    scenario: Scenario,
    train: Split,
    validation: Split | None,
    task_number: int,
    iterations: int | None = None,
    **fit_args,
):
    """Fine-tune ``network`` in place on ``strategy.training_data(train)`` (task number ``task_number`` of the
    scenario), minimising its loss plus ``strategy``'s penalty; each epoch a pass over the data, or ``iterations``
    batches (``TrainingSet``), or as many as the strategy takes (``Strategy.steps_per_epoch``)."""
    batch_size = fit_args.get("batch_size")
    iterations = iterations or strategy.steps_per_epoch(train, batch_size)
    data = TrainingSet(strategy.training_data(train), network.seeds, task_number, iterations, batch_size)
    model = ContinualModel(network, scenario, data, strategy, task=task_number)
    suspects = " or ".join(filter(None, ["finetune.learning_rate", strategy.strength_param]))
    guard = NonFiniteLossGuard(scenario.names[task_number], suspects)
    return fit(model, validation, guard=guard, **fit_args)


def train_sequence(
    network: StackedMLP,
    strategy: Strategy,
    scenario: Scenario,
    train: list[Split],
    validation: list[Split | None],
    log: TaskAccuracyLog | None,
    epochs: int,
    halving=None,
    iterations: int | None = None,
    optimizer_state: adam.State | None = None,
    **fit_args,
) -> StackedMLP:
    """Train ``network`` (already trained on task 0, which ``strategy`` was built from) on tasks 1, 2, ... in turn,
    ``epochs`` epochs each (of ``iterations`` batches where given: ``schedule``), letting the strategy consolidate
    each finished task (``Strategy.end_task``) before the next, with ``log`` (if any) watching every epoch and
    Keras' own validation pass on task t's ``validation[t]`` (if not None). Returns the network trained:
    ``network`` itself, or, where ``halving`` (the tuner's successive halving,
    ``forgetting.tuning.halving.Halving``) stopped repetitions at one of its rungs (``stops``: the epochs of a task
    after which it looks; ``rung``: the repetitions it keeps), a network of the others, which carry on as they
    would have (their weights, dropout and optimiser state, data order and the strategy's state:
    ``Strategy.keep``); either as ``Strategy.end_training`` gives it back (iCaRL's with its nearest-mean head).
    Each task trains with a new Adam, or, given the ``optimizer_state`` that task 0's training left
    (``forgetting.nn.adam``), with one going on from it and then from each task's own. A strategy that trains on
    task 0 again first (``Strategy.retrain_task_a``) does so before task 1, with a new Adam (over the network and
    its own layers at once), which task 1's then goes on from where it does from task 0's."""
    for watcher in (log, halving) if strategy.acts_at("predict") else ():  # they score under its rule
        if watcher is not None:
            watcher.predict = strategy.predict
    again = strategy.retrain_task_a()
    if again is not None:
        print(f"{strategy.name}: training on {scenario.names[0]} again, with its own layers", flush=True)
        steps = again["iterations"]  # one epoch of that many steps, where set (``schedule``)
        history = finetune(
            network, strategy, scenario, train[0], None, 0, epochs=again["epochs"] if steps is None else 1,
            iterations=steps, **(fit_args | {"learning_rate": again["learning_rate"]}),
        )  # fmt: skip
        optimizer_state = None if optimizer_state is None else adam.state(history.model.optimizer)  # task 1 goes on
        strategy.end_task(network, 0, train[0])
    for t in range(1, len(train)):
        print(f"{strategy.name}: training on {scenario.names[t]} ({t + 1} of {len(train)})", flush=True)
        if log is not None:
            log.task = scenario.names[t]
        start, optimizer = 0, None
        for stop in halving.stops(t) if halving else [epochs]:
            history = finetune(
                network, strategy, scenario, train[t], validation[t], t, callbacks=[log] if log else [], epochs=stop,
                initial_epoch=start, optimizer=optimizer, carried=optimizer_state, iterations=iterations, **fit_args,
            )  # fmt: skip
            start, optimizer = stop, history.model.optimizer
            kept = halving.rung(network, t, stop) if halving else None
            if kept is not None:
                network = selected(network, kept)
                optimizer = _carried(optimizer, network, kept) if stop < epochs else optimizer
                strategy.keep(kept)
        if optimizer_state is not None:  # the next task goes on from this one's (a new Adam otherwise)
            optimizer_state = adam.state(optimizer) if kept is None else adam.selected(adam.state(optimizer), kept)
        if t < len(train) - 1:
            strategy.end_task(network, t, train[t])
    return strategy.end_training(network, len(train) - 1, train[-1])


def _carried(optimizer: keras.optimizers.Optimizer, network: StackedMLP, kept: list[int]):
    """An optimiser of ``optimizer``'s kind and settings for ``network`` (the repetitions ``kept`` of the one it
    trained), carrying on from it: its step count, and the kept repetitions' slots (Adam's moments)."""
    carried = optimizer.__class__.from_config(optimizer.get_config())
    carried.build(network.trainable_variables)
    for mine, theirs in zip(carried.variables, optimizer.variables, strict=True):
        value = theirs.numpy()
        mine.assign(value if tuple(mine.shape) == value.shape else value[kept])  # a slot: one per repetition
    return carried


def train_strategy(
    name: str,
    params: dict,
    task_a: TaskAState,
    evaluation: str,
    log_path: str | Path | None = None,
    repetitions_path: str | Path | None = None,
    verbose: int | None = None,
    strengths: Sequence[float] | None = None,
    halving=None,
) -> StackedMLP:
    """What ``finetune@<name>`` does: every repetition of the task-A model trained on tasks B, C, ... in turn under
    strategy ``name`` (built from ``params`` and ``task_a`` first, so that its missing or corrupt inputs fail before
    any work), with every task's accuracy on its ``evaluation`` split logged per epoch (``TaskAccuracyLog`` to
    ``log_path`` and ``repetitions_path``) and Keras' validation pass on each task's validation split. Returns the
    network. The stage evaluates on the test splits; ``forgetting tune``'s trials log nothing (no paths: neither the
    log nor Keras' validation pass, which would evaluate every task's validation split after every epoch) and score
    the network they get back on the validation splits, with ``strengths``, one per repetition of a tiled ``task_a``
    (``Strategy.set_strengths``): a grid's values at once, maybe with ``halving`` stopping the hopeless ones
    (``train_sequence``). With ``finetune.carry_optimizer``, task B's Adam goes on from task A's (``train_a``'s
    saved state), and each later task's from its predecessor's."""
    seed_everything(params["seed"])
    scenario = task_a.scenario
    strategy = build_strategy(name, params, task_a)
    if strengths is not None:
        strategy.set_strengths(strengths)
    network = task_a.model()
    logged = log_path is not None
    needed = ("train", "validation", evaluation) if logged else ("train",)
    splits = {split: load_tasks(split, scenario, task_a.data_root) for split in dict.fromkeys(needed)}
    epochs, iterations = schedule(params, "finetune")
    train = list(splits["train"].values())
    return train_sequence(
        network,
        strategy,
        scenario,
        train,
        list(splits["validation"].values()) if logged else [None] * len(train),
        TaskAccuracyLog(splits[evaluation], scenario, log_path, repetitions_path, task="task_a") if logged else None,
        epochs=epochs,
        halving=halving,
        iterations=iterations,
        optimizer_state=task_a.optimizer_state() if params["finetune"]["carry_optimizer"] else None,
        batch_size=params["train"]["batch_size"],
        learning_rate=params["finetune"]["learning_rate"],
        optimizer_kind=params["finetune"]["optimizer"],
        verbose=verbose,
    )


def train_new_model(
    params: dict,
    scenario: Scenario,
    train: Split,
    validation: Split | None,
    epochs: int,
    iterations: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    path_integral: bool = False,
    what: str = "task_a",
    task: int | None = 0,
    optimizer_path: str | Path | None = None,
) -> tuple[StackedMLP, PathIntegral | None]:
    """Freshly initialised MLPs (``params['model']``, the scenario's outputs), one per repetition seed
    (``repetition_seeds``), trained together with ``fit`` under ``params['train']``'s optimiser settings for
    ``epochs`` epochs (of ``iterations`` batches where given: ``schedule``), as task number ``task`` of the sequence
    (None: every task at once); with ``path_integral``, also the path integral over this training
    (``forgetting.nn.path_integral``); with ``optimizer_path``, Adam's state at its end saved there (what
    ``finetune.carry_optimizer`` goes on from: ``forgetting.nn.adam``). ``what`` names the training in errors."""
    seed_everything(params["seed"])
    seeds = repetition_seeds(params)
    shape = params["model"]
    inputs = {key: shape[key] for key in INPUT_DEFAULTS}
    width = (shape["hidden_units"], shape["dropout"])
    network = build_network(scenario.num_outputs, *width, seeds, shape["init"], **inputs)
    recorder = PathIntegral(network) if path_integral else None
    history = fit(
        ContinualModel(
            network,
            scenario,
            TrainingSet(train, seeds, 0, iterations, params["train"]["batch_size"]),
            observers=[recorder] if recorder else (),
            task=task,
        ),
        validation,
        epochs=epochs,
        batch_size=params["train"]["batch_size"],
        learning_rate=params["train"]["learning_rate"],
        optimizer_kind=params["train"]["optimizer"],
        callbacks=callbacks,
        guard=NonFiniteLossGuard(what, "train.learning_rate"),
    )
    if optimizer_path is not None:
        adam.save(optimizer_path, history.model.optimizer)
    return network, recorder
