"""Diagonal Fisher information of a task at the weights theta reached on it.

    F_i = 1/N * sum_n sum_c w_nc * (d log p(c | x_n) / d theta_i)^2

where p is the softmax over the task's own outputs (``Scenario.columns``: its head in the task scenario, all
logits otherwise), averaged over individual examples x_n, and the weights w_nc pick the estimator:
  - ``exact``:     w_nc = p(c | x_n)                (the true Fisher: expectation over the model's own labels)
  - ``sampled``:   w_nc = 1[c = y_n], y_n ~ p(. | x_n)  (one seeded sample per example)
  - ``empirical``: w_nc = 1[c = label_n]            (the "empirical Fisher")

Computed for each repetition of the stacked network on its own (``one_repetition_at_a_time``), in inference
mode (dropout off), and vectorised across examples with the Dense closed form: for a Dense
layer z = a K + b, the per-example gradient of a scalar s_n is dK = outer(a_n, ds_n/dz_n), db = ds_n/dz_n, so

    sum_n w_nc dK^2 = (a^2)^T (w_c * (ds/dz)^2)       (a matrix product, no loop over examples)

and ds_n/dz for all n comes from one backward pass (examples are independent). One pass per class for ``exact``,
one pass in all for the one-hot estimators.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from forgetting.config.params import FISHER_ESTIMATORS
from forgetting.data.mnist import Split
from forgetting.errors import ForgettingError
from forgetting.files import cheapest_fix, load_weight_sets, save_weight_sets
from forgetting.nn.model import StackedDense, StackedMLP, network_input, sum_over_batch

CHUNK = 4096


def repetition_logits(network: StackedMLP, images: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Inference-mode logits (S, N, outputs) for images (N, 28, 28, 1), shared, or (S, N, 28, 28, 1)."""
    parts = [
        network.per_repetition(_chunk(images, start, chunk)).numpy() for start in range(0, images.shape[-4], chunk)
    ]
    return np.concatenate(parts, axis=1)


def _chunk(array: np.ndarray, start: int, size: int, shared_rank: int = 4) -> np.ndarray:
    """Examples start..start+size of ``array``, whose example axis is the first one, or the second one when it
    has a leading repetition axis (rank ``shared_rank`` + 1)."""
    return array[start : start + size] if array.ndim == shared_rank else array[:, start : start + size]


def class_weights(
    network: StackedMLP,
    images: np.ndarray,
    labels: np.ndarray,
    estimator: str,
    seeds: list[int],
    columns: np.ndarray | None = None,
) -> np.ndarray:
    """The weights w (S, N, C) of the estimator (see the module docstring) over the outputs ``columns``, for each
    repetition (the sampled estimator draws repetition s's labels from ``seeds[s]``); rows sum to 1."""
    _dense_layers(network)  # a clear error for anything but the stacked MLP
    if estimator not in FISHER_ESTIMATORS:
        raise ForgettingError(f"unknown Fisher estimator {estimator!r}: use one of {', '.join(FISHER_ESTIMATORS)}")
    logits = repetition_logits(network, images)
    if columns is not None:
        logits = logits[..., columns]
    probs = tf.nn.softmax(tf.cast(logits, tf.float64)).numpy()
    num_classes = probs.shape[-1]
    if estimator == "exact":
        return probs
    if estimator == "sampled":
        uniform = np.stack([np.random.default_rng(seed).random(probs.shape[1]) for seed in seeds])
        targets = np.minimum((np.cumsum(probs, axis=-1) < uniform[..., None]).sum(axis=-1), num_classes - 1)
    else:
        targets = np.broadcast_to(np.asarray(labels, dtype=np.int64), probs.shape[:-1])
    return np.eye(num_classes)[targets]


def _dense_layers(network: keras.Model) -> list[StackedDense]:
    if not isinstance(network, StackedMLP):
        raise ForgettingError(
            f"{network.name} ({type(network).__name__}) is not a StackedMLP: the vectorised Fisher supports the "
            "stacked MLP of forgetting.nn.model only"
        )
    return network.dense_layers


def dense_forward(network: StackedMLP, x: tf.Tensor, tape: tf.GradientTape) -> tuple[tf.Tensor, list]:
    """Inference-mode forward pass recording each dense layer's input a ((N, in) shared, or (S, N, in)) and
    (watched) pre-activation z (S, N, units); returns the logits (S, N, outputs) and the records. The first layer's
    input is the network's (``network_input``: padded and normalised where its settings say so)."""
    layers = _dense_layers(network)
    h = network_input(x, **network.input_settings)
    records = []
    for layer in layers:
        z = layer.pre_activation(h)
        tape.watch(z)
        records.append((h, z))
        h = layer.activation(z)
    return h, records


def dense_sums(records: list[tuple[tf.Tensor, tf.Tensor]], deltas: list[tf.Tensor], transform) -> list[tf.Tensor]:
    """Per-example dense closed form, per repetition: for each layer, sum_n transform(a_n) outer deltas_n, i.e.
    transform(a)^T deltas (S, in, units) for the kernel and sum_n deltas (S, units) for the bias, in layer order.
    ``deltas`` (S, N, units) must already be transformed (and weighted)."""
    sums = []
    for (a, _), d in zip(records, deltas, strict=True):
        a = transform(a)
        sums.append(tf.matmul(a[None] if len(a.shape) == 2 else a, d, transpose_a=True))
        sums.append(sum_over_batch(d))
    return sums


def _chunk_sums(network: StackedMLP, x: tf.Tensor, w: tf.Tensor, one_hot: bool, columns: tf.Tensor) -> list:
    """[sum over the chunk of w-weighted squared gradients] for each dense kernel and bias, in layer order."""
    with tf.GradientTape(persistent=True) as tape:
        logits, records = dense_forward(network, x, tape)
        log_p = tf.nn.log_softmax(tf.gather(logits, columns, axis=-1))
        # one-hot weights: one pass, since the gradient of sum_n log p(y_n | x_n) holds each example's own
        # gradient; soft weights (exact): one pass per class c of sum_n log p(c | x_n). The repetitions are
        # independent, so one pass serves them all.
        targets = [tf.reduce_sum(w * log_p)] if one_hot else tf.unstack(tf.reduce_sum(log_p, axis=(0, 1)))
    zs = [z for _, z in records]
    weighted = [tf.zeros_like(z) for z in zs]
    for c, target in enumerate(targets):
        weight = 1.0 if one_hot else w[..., c : c + 1]
        grads = tape.gradient(target, zs)
        weighted = [s + weight * tf.square(g) for s, g in zip(weighted, grads, strict=True)]
    del tape
    return dense_sums(records, weighted, tf.square)


def fisher_diagonal(
    network: StackedMLP,
    images: np.ndarray,
    labels: np.ndarray,
    estimator: str = "exact",
    seeds: list[int] | None = None,
    chunk: int = CHUNK,
    columns: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The diagonal Fisher of every repetition of ``network`` on (images, labels), keyed by variable path (each
    array with the repetition axis first); the softmax is over the outputs ``columns`` (all by default), which
    ``labels`` index. ``images`` (N, 28, 28, 1) and ``labels`` (N,) are shared, or (S, N, 28, 28, 1) and (S, N)
    one set per repetition; repetition s's sampled labels are drawn from ``seeds[s]``."""
    _dense_layers(network)  # a clear error for anything but the stacked MLP, first
    seeds = seeds or network.seeds
    columns = np.arange(network.num_outputs) if columns is None else np.asarray(columns)
    one_hot, picked = estimator != "exact", tf.constant(columns, tf.int32)

    def trace(single: StackedMLP) -> tf.types.experimental.GenericFunction:
        return tf.function(
            lambda x, w: _chunk_sums(single, x, w, one_hot, picked),
            input_signature=[
                tf.TensorSpec((*([1] if images.ndim == 5 else []), None, *images.shape[-3:]), tf.float32),
                tf.TensorSpec((1, None, len(columns)), tf.float32),
            ],
        )

    def alone(single: StackedMLP, s: int, step) -> dict[str, np.ndarray]:
        own_images, own_labels = (images, labels) if images.ndim == 4 else (images[s : s + 1], labels[s : s + 1])
        weights = class_weights(single, own_images, own_labels, estimator, [seeds[s]], columns)
        return mean_over_chunks(single, own_images, step, weights, chunk)

    return one_repetition_at_a_time(network, trace, alone)


def one_repetition_at_a_time(network: StackedMLP, trace, compute) -> dict[str, np.ndarray]:
    """``compute(single, s, step)`` for each repetition s, with ``single`` a one-repetition copy of the network
    holding repetition s's weights, stacked along the repetition axis, and ``step = trace(single)``, traced once for
    every repetition (TensorFlow keeps each traced function's graph: one per repetition kept about 7 MB each). So
    each repetition's importance is computed exactly as if it were alone (TensorFlow's CPU kernels may round a
    product over stacked repetitions differently from the same product over one), at the same cost in arithmetic."""
    _dense_layers(network)  # a clear error for anything but the stacked MLP
    if network.repetitions == 1:
        return compute(network, 0, trace(network))
    single = StackedMLP.from_config(network.get_config() | {"seeds": network.seeds[:1]})
    single.build()
    step = trace(single)
    parts = []
    for s in range(network.repetitions):
        for mine, theirs in zip(single.dense_layers, network.dense_layers, strict=True):
            mine.kernel.assign(theirs.kernel.value[s : s + 1])
            mine.bias.assign(theirs.bias.value[s : s + 1])
        parts.append(compute(single, s, step))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def mean_over_chunks(network: StackedMLP, images: np.ndarray, step, extra: np.ndarray | None, chunk: int = CHUNK):
    """1/N * the sum of ``step(x, extra)``'s per-variable sums over chunks of ``images`` (and of ``extra``, (S, N,
    ...)), keyed by variable path."""
    variables = [v for layer in _dense_layers(network) for v in (layer.kernel, layer.bias)]
    totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
    count = images.shape[-4]
    for start in range(0, count, chunk):
        x = tf.convert_to_tensor(_chunk(images, start, chunk), dtype=tf.float32)
        args = (x,) if extra is None else (x, tf.convert_to_tensor(extra[:, start : start + chunk], dtype=tf.float32))
        for total, part in zip(totals, step(*args), strict=True):
            total += part.numpy()
    return {v.path: (t / count).astype(np.float32) for v, t in zip(variables, totals, strict=True)}


def reference_fisher(
    network: StackedMLP,
    images: np.ndarray,
    labels: np.ndarray,
    estimator: str = "exact",
    seeds: list[int] | None = None,
    columns: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The same Fisher, one repetition, example and class at a time with GradientTape: slow, for tests."""
    columns = np.arange(network.num_outputs) if columns is None else np.asarray(columns)
    weights = class_weights(network, images, labels, estimator, seeds or network.seeds, columns)
    variables = network.trainable_variables
    totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
    for s in range(network.repetitions):
        own = images if images.ndim == 4 else images[s]
        for n in range(len(own)):
            classes = np.flatnonzero(weights[s, n])
            with tf.GradientTape(persistent=True) as tape:
                log_p = tf.nn.log_softmax(tf.gather(network(own[n : n + 1])[0, s], columns))
                picked = [log_p[c] for c in classes]
            for c, log_p_c in zip(classes, picked, strict=True):
                grads = tape.gradient(log_p_c, variables)
                for total, g in zip(totals, grads, strict=True):
                    total += weights[s, n, c] * np.square(g.numpy().astype(np.float64))
            del tape
    count = images.shape[-4]
    return {v.path: (t / count).astype(np.float32) for v, t in zip(variables, totals, strict=True)}


def save_fisher(path: str | Path, theta: dict[str, np.ndarray], fisher: dict[str, np.ndarray]) -> None:
    """One .npz holding ``theta/<variable path>`` and ``fisher/<variable path>`` for every variable."""
    save_weight_sets(path, theta=theta, fisher=fisher)


def load_fisher(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(theta_A, Fisher) from ``save_fisher``'s file; a missing, corrupt or inconsistent file is an error."""
    theta, fisher = load_weight_sets(path, ("theta", "fisher"), "Fisher", "fisher")
    if any(np.any(f < 0) for f in fisher.values()):
        raise ForgettingError(f"Fisher file {path} holds negative values: {cheapest_fix(path, 'fisher')}")
    return theta, fisher


def subsample(split: Split, count: int | str, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) for the Fisher: all of ``split`` (``"all"``, or at least as many as it holds), shared by
    every repetition, or ``count`` examples per repetition, drawn from its own seed and kept in their original
    order: images (S, count, 28, 28, 1), labels (S, count)."""
    if count == "all" or count >= len(split):
        return split.image, split.label
    picks = [np.sort(np.random.default_rng(seed).permutation(len(split))[:count]) for seed in seeds]
    return np.stack([split.image[p] for p in picks]), np.stack([split.label[p] for p in picks])


def task_fisher(network: StackedMLP, train: Split, columns: np.ndarray, settings: dict, seeds: list[int]) -> dict:
    """The Fisher of one task from its train split under params.yaml's ``fisher`` settings, per repetition
    (repetition s draws its examples and sampled labels from ``seeds[s]``)."""
    images, labels = subsample(train, settings["num_examples"], seeds)
    return fisher_diagonal(network, images, labels, settings["estimator"], seeds, columns=columns)
