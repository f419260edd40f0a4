"""Diagonal Fisher information of a task at the weights theta reached on it.

    F_i = 1/N * sum_n sum_c w_nc * (d log p(c | x_n) / d theta_i)^2

where p is the softmax over the task's own outputs (``Scenario.columns``: its head in the task scenario, all
logits otherwise),
averaged over individual examples x_n, and the weights w_nc pick the estimator:
  - ``exact``:     w_nc = p(c | x_n)                (the true Fisher: expectation over the model's own labels)
  - ``sampled``:   w_nc = 1[c = y_n], y_n ~ p(. | x_n)  (one seeded sample per example)
  - ``empirical``: w_nc = 1[c = label_n]            (the "empirical Fisher")

Computed in inference mode (dropout off) and vectorised across examples with the Dense closed form: for a Dense
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

from forgetting.data import Split
from forgetting.errors import ForgettingError
from forgetting.files import cheapest_fix, load_weight_sets, save_weight_sets
from forgetting.params import FISHER_ESTIMATORS

CHUNK = 4096


def class_weights(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    estimator: str,
    seed: int,
    columns: np.ndarray | None = None,
) -> np.ndarray:
    """The weights w (N, C) of the estimator (see the module docstring) over the outputs ``columns``; rows sum
    to 1."""
    if estimator not in FISHER_ESTIMATORS:
        raise ForgettingError(f"unknown Fisher estimator {estimator!r}: use one of {', '.join(FISHER_ESTIMATORS)}")
    logits = model.predict(images, batch_size=CHUNK, verbose=0)
    if columns is not None:
        logits = logits[:, columns]
    probs = tf.nn.softmax(tf.cast(logits, tf.float64)).numpy()
    num_classes = probs.shape[1]
    if estimator == "exact":
        return probs
    if estimator == "sampled":
        uniform = np.random.default_rng(seed).random(len(probs))
        targets = np.minimum((np.cumsum(probs, axis=1) < uniform[:, None]).sum(axis=1), num_classes - 1)
    else:
        targets = np.asarray(labels, dtype=np.int64)
    return np.eye(num_classes)[targets]


def _dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
    dense = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            if not layer.use_bias:
                raise ForgettingError(f"layer {layer.name}: the Fisher closed form expects Dense with a bias")
            dense.append(layer)
        elif layer.trainable_weights:
            raise ForgettingError(
                f"layer {layer.name} ({type(layer).__name__}) has weights but is not Dense: "
                "the vectorised Fisher supports chains of Dense layers only"
            )
    return dense


def dense_forward(
    model: keras.Model, x: tf.Tensor, tape: tf.GradientTape
) -> tuple[tf.Tensor, list[tuple[tf.Tensor, tf.Tensor]]]:
    """Inference-mode forward pass recording each Dense layer's input a and (watched) pre-activation z."""
    records = []
    h = x
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Dense):
            z = tf.matmul(h, layer.kernel.value) + layer.bias.value
            tape.watch(z)
            records.append((h, z))
            h = layer.activation(z)
        else:
            h = layer(h, training=False)
    return h, records


def dense_sums(records: list[tuple[tf.Tensor, tf.Tensor]], deltas: list[tf.Tensor], transform) -> list[tf.Tensor]:
    """Per-example Dense closed form: for each layer, sum_n transform(a_n) outer transform-ed deltas, i.e.
    transform(a)^T deltas for the kernel and sum_n deltas for the bias, in layer order. ``deltas`` must already be
    transformed (and weighted)."""
    sums = []
    for (a, _), d in zip(records, deltas, strict=True):
        sums.append(tf.matmul(transform(a), d, transpose_a=True))
        sums.append(tf.reduce_sum(d, axis=0))
    return sums


def _chunk_sums(model: keras.Model, x: tf.Tensor, w: tf.Tensor, one_hot: bool, columns: tf.Tensor) -> list[tf.Tensor]:
    """[sum over the chunk of w-weighted squared gradients] for each Dense kernel and bias, in layer order."""
    with tf.GradientTape(persistent=True) as tape:
        logits, records = dense_forward(model, x, tape)
        log_p = tf.nn.log_softmax(tf.gather(logits, columns, axis=1))
        # one-hot weights: one pass, since the gradient of sum_n log p(y_n | x_n) holds each example's own
        # gradient; soft weights (exact): one pass per class c of sum_n log p(c | x_n).
        targets = [tf.reduce_sum(w * log_p)] if one_hot else tf.unstack(tf.reduce_sum(log_p, axis=0))
    zs = [z for _, z in records]
    weighted = [tf.zeros_like(z) for z in zs]
    for c, target in enumerate(targets):
        weight = 1.0 if one_hot else w[:, c : c + 1]
        grads = tape.gradient(target, zs)
        weighted = [s + weight * tf.square(g) for s, g in zip(weighted, grads, strict=True)]
    del tape
    return dense_sums(records, weighted, tf.square)


def fisher_diagonal(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    estimator: str = "exact",
    seed: int = 0,
    chunk: int = CHUNK,
    columns: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The diagonal Fisher of ``model`` on (images, labels), keyed by variable path; the softmax is over the
    outputs ``columns`` (all by default), which ``labels`` index."""
    columns = np.arange(model.output_shape[-1]) if columns is None else np.asarray(columns)
    weights = class_weights(model, images, labels, estimator, seed, columns)
    one_hot = estimator != "exact"
    picked = tf.constant(columns, tf.int32)
    step = tf.function(
        lambda x, w: _chunk_sums(model, x, w, one_hot, picked),
        input_signature=[
            tf.TensorSpec((None, *images.shape[1:]), tf.float32),
            tf.TensorSpec((None, weights.shape[1]), tf.float32),
        ],
    )
    return mean_over_chunks(model, images, step, weights, chunk)


def mean_over_chunks(model: keras.Model, images: np.ndarray, step, extra: np.ndarray | None, chunk: int = CHUNK):
    """1/N * the sum of ``step(x, extra)``'s per-variable sums over chunks of ``images``, keyed by variable path."""
    variables = [v for layer in _dense_layers(model) for v in (layer.kernel, layer.bias)]
    totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
    for start in range(0, len(images), chunk):
        x = tf.convert_to_tensor(images[start : start + chunk], dtype=tf.float32)
        args = (x,) if extra is None else (x, tf.convert_to_tensor(extra[start : start + chunk], dtype=tf.float32))
        for total, part in zip(totals, step(*args), strict=True):
            total += part.numpy()
    return {v.path: (t / len(images)).astype(np.float32) for v, t in zip(variables, totals, strict=True)}


def reference_fisher(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    estimator: str = "exact",
    seed: int = 0,
    columns: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The same Fisher, one example and one class at a time with GradientTape: slow, for tests and benchmarks."""
    columns = np.arange(model.output_shape[-1]) if columns is None else np.asarray(columns)
    weights = class_weights(model, images, labels, estimator, seed, columns)
    variables = model.trainable_variables
    totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
    for n in range(len(images)):
        classes = np.flatnonzero(weights[n])
        with tf.GradientTape(persistent=True) as tape:
            log_p = tf.nn.log_softmax(tf.gather(model(images[n : n + 1], training=False)[0], columns))
            picked = [log_p[c] for c in classes]
        for c, log_p_c in zip(classes, picked, strict=True):
            grads = tape.gradient(log_p_c, variables)
            for total, g in zip(totals, grads, strict=True):
                total += weights[n, c] * np.square(g.numpy().astype(np.float64))
        del tape
    return {v.path: (t / len(images)).astype(np.float32) for v, t in zip(variables, totals, strict=True)}


def save_fisher(path: str | Path, theta: dict[str, np.ndarray], fisher: dict[str, np.ndarray]) -> None:
    """One .npz holding ``theta/<variable path>`` and ``fisher/<variable path>`` for every variable."""
    save_weight_sets(path, theta=theta, fisher=fisher)


def load_fisher(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(theta_A, Fisher) from ``save_fisher``'s file; a missing, corrupt or inconsistent file is an error."""
    theta, fisher = load_weight_sets(path, ("theta", "fisher"), "Fisher", "fisher")
    if any(np.any(f < 0) for f in fisher.values()):
        raise ForgettingError(f"Fisher file {path} holds negative values: {cheapest_fix(path, 'fisher')}")
    return theta, fisher


def subsample(split: Split, count: int | str, seed: int) -> Split:
    """``count`` seeded examples of ``split`` in their original order, or all of it (``"all"``)."""
    if count == "all" or count >= len(split):
        return split
    return split.subset(np.sort(np.random.default_rng(seed).permutation(len(split))[:count]))


def task_fisher(model: keras.Model, train: Split, columns: np.ndarray, settings: dict, seed: int) -> dict:
    """The Fisher of one task from its train split under params.yaml's ``fisher`` settings."""
    train = subsample(train, settings["num_examples"], seed)
    return fisher_diagonal(model, train.image, train.label, settings["estimator"], seed, columns=columns)
