"""iCaRL (Rebuffi et al. 2017, "iCaRL: Incremental Classifier and Representation Learning").

Exemplars: ``icarl.buffer_size`` = K stored training examples per repetition, class-balanced over the (task, digit)
classes seen so far (K // C each, the first K % C one more), each class's set chosen by herding on the network's
features when its task ends: with f = phi(x) / |phi(x)| the L2-normalised last hidden layer and mu the class's
mean of f over its training examples, the k-th exemplar is

    p_k = argmin_x  | mu - (f(x) + sum_{j<k} f(p_j)) / k |      (x not yet chosen),

so that each prefix of the set is the best its size can do at matching the mean. When a new task's classes come in,
each old set keeps its first K // C (the order is the priority).

Training on task t: its train split and the exemplars, each once per epoch; the loss is the scenario's
cross-entropy plus ``icarl.weight`` times the distillation of the model from the end of task t-1 on the outputs of
the finished tasks (``Scenario.seen_columns``) over the whole batch,

    icarl.weight * mean over the batch and the old outputs o of BCE(sigmoid(z_old,o(x)), sigmoid(z_o(x))).

The paper trains every output with that binary cross-entropy (one-hot targets for the new classes); here the new
classes' term is the scenario's softmax cross-entropy, as every other strategy's is.

Classification: nearest mean of exemplars. Output o's mean is mu_o = m / |m|, m the mean of f over the exemplars
whose label is o (recomputed with the network as it is: the features drift), and x gets the output whose mean is
nearest to f(x) (``forgetting.nn.model.nearest_mean_scores``). While a task trains (the per-epoch logs) and at the
end, the current task's outputs take their means over its whole train split (herding's target, which its
exemplars approximate), the finished ones over their exemplars. The saved network holds the means as its
nearest-mean head (``with_nearest_mean``), so the evaluate stage measures this rule. In the domain scenario an
output answers for a digit of each task (its mean spans their exemplars); in the task scenario the example's task
picks its head's outputs, as for the logits.

Each repetition chooses its own exemplars with its own features; nothing is drawn at random.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from forgetting.config.params import STRENGTH, Section, integer
from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.nn.model import StackedMLP, frozen_copy, nearest_mean_scores, selected, with_nearest_mean
from forgetting.strategies.base import Memory, TaskAState
from forgetting.strategies.replay import Replay

Exemplars = dict[tuple[int, int], Split]  # by (task, digit), each in herding order


class ICaRLParams(Section):
    buffer_size: integer("an integer >= 1 (exemplars kept, over every class seen)", ge=1)
    weight: STRENGTH


def herding(features: np.ndarray, count: int) -> np.ndarray:
    """The indices of ``count`` rows of ``features`` (n, F), in herding's order: each next one the row that brings
    the mean of the L2-normalised rows chosen so far nearest to that of them all."""
    f = normalised(features.astype(np.float64))
    target, total, chosen = f.mean(axis=0), np.zeros(f.shape[1]), []
    available = np.ones(len(f), bool)
    for k in range(1, min(count, len(f)) + 1):
        distance = np.linalg.norm(target - (total + f) / k, axis=1)
        distance[~available] = np.inf
        best = int(np.argmin(distance))
        chosen.append(best)
        available[best] = False
        total += f[best]
    return np.asarray(chosen, np.int64)


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


def quotas(classes: Sequence[tuple[int, int]], size: int) -> dict[tuple[int, int], int]:
    """Each class's share of ``size`` exemplars, as equal as it goes: the first ``size % C`` one more."""
    return {c: size // len(classes) + (i < size % len(classes)) for i, c in enumerate(classes)}


def output_means(features: np.ndarray, split: Split, scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(means (outputs, F), present (outputs,)) from ``features`` (n, F) of the examples of ``split``: each class's
    (task, digit) normalised mean of the normalised features, then each output's normalised mean of the means of
    the classes it answers for (one class per output but in the domain scenario)."""
    f = normalised(features.astype(np.float64))
    classes = split.task.astype(np.int64) * 10 + split.digit
    columns = scenario.column(split.label, split.task)
    means, present = np.zeros((scenario.num_outputs, f.shape[1])), np.zeros(scenario.num_outputs)
    for column in np.unique(columns):
        mine = columns == column
        each = [normalised(f[mine & (classes == c)].mean(axis=0)) for c in np.unique(classes[mine])]
        means[column] = normalised(np.mean(each, axis=0))
        present[column] = 1
    return means.astype(np.float32), present.astype(np.float32)


class ICaRL(Replay):
    """Herded exemplars per repetition, distillation from the previous network, and a nearest-mean classifier.
    It extends replay for its class-balanced budget check (``Replay.check_setting``) alone."""

    name = "icarl"
    section: ClassVar[str] = "icarl"
    params_section: ClassVar[dict[str, Any]] = {"icarl": ICaRLParams}
    strength_param = "icarl.weight"
    hyperparameters = ("icarl.buffer_size", "icarl.weight")
    # Not the buffer size: the memory budget, set in params.yaml.
    search_space: ClassVar[dict[str, list[Any]]] = {"icarl.weight": [0.3, 1.0, 3.0, 10.0, 30.0]}
    steps = "an epoch passes over the task's data and its exemplars once: (N + buffer) / N x the others' steps"

    @classmethod
    def memory(cls, params: dict[str, Any], num_parameters: int, num_tasks: int) -> Memory:
        outputs = Scenario.from_params(params).num_outputs
        width = params["model"]["hidden_units"]
        features = width if isinstance(width, int) else width[-1]
        size = params["icarl"]["buffer_size"]
        return Memory("exemplars, the previous network and the class means", num_parameters + outputs * features, size)

    def __init__(self, network: StackedMLP, train: Split, scenario: Scenario, size: int, weight: float) -> None:
        self.scenario, self.size, self.weight, self.tasks_done = scenario, int(size), float(weight), 1
        self.teacher = frozen_copy(network)
        self.exemplars: list[Exemplars] = [{} for _ in network.seeds]
        self.current, self._means = train, None
        self.choose_exemplars(network, 0, train)

    @classmethod
    def from_params(cls, params: dict[str, Any], task_a: TaskAState) -> ICaRL:
        own = params["icarl"]
        return cls(task_a.model(), task_a.train_split(), task_a.scenario, own["buffer_size"], own["weight"])

    def choose_exemplars(self, network: StackedMLP, task: int, train: Split) -> None:
        """Add task ``task``'s classes, herded from ``train`` with each repetition's features, and cut every class
        to its new quota."""
        self._means = None
        digits = [int(d) for d in np.unique(train.digit)]
        features = _features(network, train.image)
        for s, sets in enumerate(self.exemplars):
            share = quotas([*sets, *((task, d) for d in digits)], self.size)
            for key in list(sets):
                sets[key] = sets[key].subset(np.arange(min(share[key], len(sets[key]))))
            for digit in digits:
                members = np.flatnonzero(train.digit == digit)
                sets[(task, digit)] = train.subset(members[herding(features[s][members], share[(task, digit)])])

    def stored(self, s: int) -> Split:
        """Repetition ``s``'s exemplars, in the order of their classes."""
        sets = self.exemplars[s]
        return Split.concat(*(sets[key] for key in sorted(sets)))

    def training_data(self, train: Split) -> Iterator[Split]:
        self.current, self._means = train, None
        for s in range(len(self.exemplars)):
            yield Split.concat(train, self.stored(s))

    def penalty(self, model: keras.Model, x: dict | None = None, logits: tf.Tensor | None = None) -> tf.Tensor:
        old = tf.sigmoid(tf.stop_gradient(self.teacher.per_repetition(x["image"])))
        # the full logits: in the task scenario ``logits`` holds only the current task's head
        new = model.per_repetition(x["image"], training=True) if self.scenario.kind == "task" else logits
        columns = tf.constant(np.concatenate(self.scenario.seen_columns(self.tasks_done)), tf.int32)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(
            tf.gather(old, columns, axis=-1), tf.gather(new, columns, axis=-1)
        )
        each = tf.reduce_mean(bce, axis=[1, 2])
        if np.ndim(self.weight) == 1:  # each repetition's term scaled by its own weight
            return tf.reduce_sum(tf.constant(self.weight, tf.float32) * each)
        return self.weight * tf.reduce_sum(each)

    def set_strengths(self, strengths: Sequence[float]) -> None:
        self.weight = np.asarray(strengths, np.float64)

    def keep(self, repetitions: Sequence[int]) -> None:
        index = list(repetitions)
        self.teacher = selected(self.teacher, index)
        self.teacher.trainable = False
        self.exemplars, self._means = [self.exemplars[r] for r in index], None
        if np.ndim(self.weight) == 1:
            self.weight = self.weight[index]

    def means(self, network: StackedMLP) -> tuple[np.ndarray, np.ndarray]:
        """Each repetition's output means (S, outputs, F) and which outputs have one (S, outputs), with
        ``network``'s features now: the current task's classes over its train split, the others over their
        exemplars. Computed once for a state of the weights, the exemplars and the current task (the per-epoch log
        asks for them on every batch of every split it scores)."""
        weights = hashlib.blake2b(b"".join(v.numpy().tobytes() for v in network.trainable_variables)).digest()
        if self._means is None or self._means[0] != weights:
            self._means = (weights, self._compute_means(network))
        return self._means[1]

    def _compute_means(self, network: StackedMLP) -> tuple[np.ndarray, np.ndarray]:
        task = int(self.current.task[0])
        current = _features(network, self.current.image)
        every = [[sets[key] for key in sorted(sets) if key[0] != task] for sets in self.exemplars]
        stored = [Split.concat(*finished) if finished else self.current.subset(np.arange(0)) for finished in every]
        # one batch per repetition (all of one size: the quotas are the same in every repetition)
        own = _features(network, np.stack([split.image for split in stored]))
        result = []
        for s, split in enumerate(stored):
            features = np.concatenate([own[s], current[s]])
            metadata = Split(np.zeros(len(features)), *(np.concatenate(f) for f in _labels(split, self.current)))
            result.append(output_means(features, metadata, self.scenario))
        return np.stack([m for m, _ in result]), np.stack([p for _, p in result])

    def predict(self, network: StackedMLP, images: tf.Tensor) -> tf.Tensor:
        means, present = self.means(network)
        return nearest_mean_scores(network.features(images), tf.constant(means), tf.constant(present))

    def end_task(self, network: keras.Model, task: int, train: Split) -> None:
        self.choose_exemplars(network, task, train)
        self.teacher = frozen_copy(network)
        self.tasks_done += 1

    def end_training(self, network: keras.Model, task: int, train: Split) -> keras.Model:
        self.current, self._means = train, None
        return with_nearest_mean(network, *self.means(network))


def _labels(*splits: Split) -> tuple[list[np.ndarray], ...]:
    """The labels, digits and task indices of ``splits``, field by field."""
    return [s.label for s in splits], [s.digit for s in splits], [s.task for s in splits]


def _features(network: StackedMLP, images: np.ndarray) -> np.ndarray:
    """Every repetition's last hidden layer (S, n, F) for ``images``: shared (n, 28, 28, 1), or one batch per
    repetition (S, n, 28, 28, 1)."""
    n = images.shape[-4]
    chunks = [network.features(images[..., i : i + 2048, :, :, :]).numpy() for i in range(0, n, 2048)]
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((network.repetitions, 0, network.widths[-1]))
