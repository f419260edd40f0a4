"""The network: S independent repetitions of the MLP  Flatten -> Dense(hidden, relu) -> Dropout -> Dense(outputs)
logits, trained together as one model with a leading repetition axis (a "stacked seed axis"), and its checkpoints.

Every weight has a leading repetition dimension (``hidden/kernel`` is (S, 784, hidden)); repetition s is the MLP
whose weights are slice s, initialised from its own seed (``seeds[s]``) and never mixed with another's: each
layer is a batched matrix product over the repetitions, so the repetitions' computations are the same as if each
were trained alone (``forgetting.training.loop`` gives each its own data order and sums their losses, so each one's
gradient is exactly its own). The number of logits is the scenario's (``Scenario.num_outputs``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from forgetting.errors import ForgettingError
from forgetting.files import ZIP_EPOCH, atomic_output, cheapest_fix, restamp_zip

IMAGE_SHAPE = (28, 28, 1)
# Batches per compiled call in fit: the same updates in the same order, with a fraction of the per-step overhead
# (which dominates for a model this small).
STEPS_PER_EXECUTION = 32


def sum_over_batch(x: tf.Tensor) -> tf.Tensor:
    """x (S, batch, units) summed over the batch, (S, units), as a batched product with ones: each repetition's
    sum is one matrix product of its own, added in the same order whatever else is stacked beside it (a
    ``reduce_sum`` over the middle axis adds in another order for S = 1 than for S > 1 at some widths)."""
    ones = tf.ones(tf.stack([tf.shape(x)[0], 1, tf.shape(x)[1]]), x.dtype)
    return tf.matmul(ones, x)[:, 0, :]


@tf.custom_gradient
def _add_bias(z: tf.Tensor, bias: tf.Tensor):
    """z (S, batch, units) + bias (S, units), whose bias gradient is ``sum_over_batch``."""

    def gradient(upstream):
        return upstream, sum_over_batch(upstream)

    return z + bias[:, None, :], gradient


@keras.saving.register_keras_serializable(package="forgetting")
class StackedDense(keras.layers.Layer):
    """S dense layers side by side: z[s] = a[s] @ kernel[s] + bias[s], kernel (S, inputs, units), bias (S, units).

    The input is (batch, inputs), shared by every repetition, or (S, batch, inputs), one batch per repetition;
    the output is (S, batch, units)."""

    def __init__(self, repetitions: int, units: int, activation: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.repetitions, self.units = int(repetitions), int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape) -> None:
        inputs = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.repetitions, inputs, self.units), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.repetitions, self.units), initializer="zeros")

    def pre_activation(self, a: tf.Tensor) -> tf.Tensor:
        if len(a.shape) == 2:  # one batch for all repetitions: copied for each, so that each product is computed
            # as in training (a broadcast product takes another kernel, which rounds differently)
            a = tf.broadcast_to(a[None], tf.concat([[self.repetitions], tf.shape(a)], axis=0))
        return _add_bias(tf.matmul(a, self.kernel.value), self.bias.value)

    def call(self, a):
        return self.activation(self.pre_activation(a))

    def get_config(self) -> dict:
        activation = keras.activations.serialize(self.activation)
        return {**super().get_config(), "repetitions": self.repetitions, "units": self.units, "activation": activation}


@keras.saving.register_keras_serializable(package="forgetting")
class StackedDropout(keras.layers.Layer):
    """Dropout on (S, batch, units) with repetition s's mask drawn from its own seed (``seeds[s]``), so that a
    repetition draws the same masks whatever else is stacked beside it."""

    def __init__(self, rate: float, seeds: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate, self.seeds = float(rate), [int(s) for s in seeds]
        self.generators = [keras.random.SeedGenerator(s) for s in self.seeds] if self.rate > 0 else []

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        return tf.stack([keras.random.dropout(x[s], self.rate, seed=g) for s, g in enumerate(self.generators)], axis=0)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seeds": self.seeds}


UNSCORED = -1e9  # the score of an output with no mean: below any reachable one


def nearest_mean_scores(features: tf.Tensor, means: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    """Each repetition's score of each output o, -||f/|f| - mu_o||^2, for features f (S, batch, F) and means
    (S, outputs, F); ``UNSCORED`` where ``present`` (S, outputs) is 0 (an output with no mean yet): (S, batch,
    outputs). The largest score is the nearest mean."""
    f = tf.math.l2_normalize(features, axis=-1)
    squared = (
        tf.reduce_sum(tf.square(f), axis=-1, keepdims=True)
        - 2.0 * tf.matmul(f, means, transpose_b=True)
        + tf.reduce_sum(tf.square(means), axis=-1)[:, None, :]
    )
    return tf.where(present[:, None, :] > 0, -squared, tf.constant(UNSCORED, squared.dtype))


@keras.saving.register_keras_serializable(package="forgetting")
class NearestMeanHead(keras.layers.Layer):
    """A prediction rule kept in the network: each repetition's outputs scored by the nearest of its class means
    on the last hidden layer's L2-normalised features (``nearest_mean_scores``; iCaRL's nearest-mean-of-exemplars
    classifier). ``means`` (S, outputs, F) and ``present`` (S, outputs) are weights that training does not touch;
    a strategy sets them (``with_nearest_mean``)."""

    def __init__(self, repetitions: int, outputs: int, features: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.repetitions, self.outputs, self.features = int(repetitions), int(outputs), int(features)

    def build(self, input_shape=None) -> None:
        shape = (self.repetitions, self.outputs)
        self.means = self.add_weight(name="means", shape=(*shape, self.features), initializer="zeros", trainable=False)
        self.present = self.add_weight(name="present", shape=shape, initializer="zeros", trainable=False)

    def call(self, features):
        return nearest_mean_scores(features, self.means.value, self.present.value)

    def get_config(self) -> dict:
        sizes = {"repetitions": self.repetitions, "outputs": self.outputs, "features": self.features}
        return {**super().get_config(), **sizes}


@keras.saving.register_keras_serializable(package="forgetting")
class StackedMLP(keras.Model):
    """The S repetitions of the MLP. Called on images (batch, 28, 28, 1) it returns every repetition's logits,
    (batch, S, outputs); ``per_repetition`` also takes one batch per repetition and keeps the repetition axis
    first. ``repetition(model, s)`` gives repetition s as a plain Keras MLP."""

    def __init__(
        self,
        num_outputs: int,
        hidden_units: int | Sequence[int] = 128,
        dropout: float = 0.0,
        seeds: Sequence[int] = (0,),
        nearest_mean: bool = False,
        input_padding: int = 0,
        input_mean: float = 0.0,
        input_sd: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_outputs, self.rate = int(num_outputs), float(dropout)
        self.hidden_units = hidden_units if isinstance(hidden_units, int) else [int(u) for u in hidden_units]
        self.seeds = [int(s) for s in seeds]
        self.input_padding, self.input_mean, self.input_sd = int(input_padding), float(input_mean), float(input_sd)
        # one attribute per layer (``hidden``, ``hidden_2``, ...): Keras saves each layer's weights under its attribute
        for number, units in enumerate(self.widths):
            setattr(self, hidden_name(number), StackedDense(len(self.seeds), units, "relu", name=hidden_name(number)))
        self.dropout = StackedDropout(self.rate, self.seeds, name="dropout")
        self.logits = StackedDense(len(self.seeds), self.num_outputs, name="logits")
        # a prediction rule of its own (``scores``): iCaRL's nearest mean of exemplars
        features = self.widths[-1]
        head = NearestMeanHead(len(self.seeds), self.num_outputs, features, name="nearest_mean")
        self.nearest_mean = head if nearest_mean else None

    @property
    def widths(self) -> list[int]:
        """The hidden layers' widths: ``hidden_units`` as a list (one int is one layer)."""
        return [self.hidden_units] if isinstance(self.hidden_units, int) else list(self.hidden_units)

    @property
    def input_settings(self) -> dict:
        """How the network takes its images: ``input_padding``, ``input_mean`` and ``input_sd`` (``network_input``)."""
        return {"input_padding": self.input_padding, "input_mean": self.input_mean, "input_sd": self.input_sd}

    @property
    def input_size(self) -> int:
        """The first layer's inputs: the pixels of a digit padded by ``input_padding`` on each side."""
        return (IMAGE_SHAPE[0] + 2 * self.input_padding) * (IMAGE_SHAPE[1] + 2 * self.input_padding)

    @property
    def hidden_layers(self) -> list[StackedDense]:
        return [getattr(self, hidden_name(number)) for number in range(len(self.widths))]

    def build(self, input_shape=(None, *IMAGE_SHAPE)) -> None:
        """Create the weights, named ``hidden/kernel``, ``hidden/bias`` (then ``hidden_2/...``, ... for more hidden
        layers), ``logits/kernel``, ``logits/bias``, whether built here or by Keras when a checkpoint loads."""
        inputs = self.input_size
        for layer, units in zip(self.hidden_layers, self.widths, strict=True):
            layer.build((None, inputs))
            inputs = units
        self.logits.build((None, inputs))
        if self.nearest_mean is not None:
            self.nearest_mean.build()
        self.built = True

    @property
    def repetitions(self) -> int:
        return len(self.seeds)

    @property
    def dense_layers(self) -> list[StackedDense]:
        return [*self.hidden_layers, self.logits]

    def per_repetition(self, images, training=False):
        """Logits (S, batch, outputs) for images (batch, 28, 28, 1), shared, or (S, batch, 28, 28, 1)."""
        return self.logits(self.features(images, training))

    def features(self, images, training=False):
        """The last hidden layer's output (S, batch, units): what the logits are a linear function of."""
        h = network_input(images, **self.input_settings)
        if len(images.shape) == 4:
            h = tf.ensure_shape(h, (None, self.input_size))
        else:
            h = tf.ensure_shape(h, (self.repetitions, None, self.input_size))
        for layer in self.hidden_layers:
            h = self.dropout(layer(h), training=training)
        return h

    def scores(self, images):
        """The prediction rule's per-repetition scores (S, batch, outputs), argmax the answer: the logits, or, for
        a network with a nearest-mean head (``with_nearest_mean``), the nearest-mean scores. The evaluate stage
        measures these."""
        if self.nearest_mean is None:
            return self.per_repetition(images)
        return self.nearest_mean(self.features(images))

    def call(self, images, training=False):
        return tf.transpose(self.per_repetition(images, training), (1, 0, 2))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_outputs": self.num_outputs,
            "hidden_units": self.hidden_units,
            "dropout": self.rate,
            "seeds": self.seeds,
            **({"nearest_mean": True} if self.nearest_mean is not None else {}),
            # only where they differ from the defaults: a default network's checkpoint keeps its bytes
            **{key: value for key, value in self.input_settings.items() if value != INPUT_DEFAULTS[key]},
        }


INPUT_DEFAULTS = {"input_padding": 0, "input_mean": 0.0, "input_sd": 1.0}  # the digits as they are


def network_input(images, input_padding: int = 0, input_mean: float = 0.0, input_sd: float = 1.0) -> tf.Tensor:
    """What the first layer takes of images (..., 28, 28, 1) in [0, 1]: each padded with ``input_padding`` zero
    pixels on every side, flattened, then normalised, (x - input_mean) / input_sd (..., (28 + 2 p)^2), as
    torchvision's ``Pad`` then ``Normalize`` (Hsu et al.: p = 2, mean 0.1, sd 0.2752, so that each padding pixel
    feeds -0.363). The defaults change nothing (no operation is added)."""
    if input_padding:
        rank = len(images.shape)
        spatial = [[input_padding, input_padding], [input_padding, input_padding], [0, 0]]
        images = tf.pad(images, [[0, 0]] * (rank - 3) + spatial)
    flat = tf.reshape(images, tf.concat([tf.shape(images)[:-3], [-1]], axis=0))
    if (input_mean, input_sd) != (0.0, 1.0):
        flat = (flat - input_mean) / input_sd
    return flat


def hidden_name(number: int) -> str:
    """Hidden layer ``number``'s name (0, 1, ...): ``hidden``, ``hidden_2``, ``hidden_3``, ..."""
    return "hidden" if number == 0 else f"hidden_{number + 1}"


def glorot_uniform(shape: tuple[int, int], seed: int, layer: int) -> np.ndarray:
    """Keras' default Dense kernel initialisation, drawn by NumPy from (seed, layer number)."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return np.random.default_rng([seed, layer]).uniform(-limit, limit, size=shape).astype(np.float32)


INITS = ("glorot", "torch")  # params.yaml's model.init


def torch_linear(shape: tuple[int, int], seed: int, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's default ``nn.Linear`` initialisation (kaiming-uniform with a = sqrt(5)): kernel and bias both
    uniform in +-1/sqrt(fan_in), fan_in = shape[0], drawn by NumPy from (seed, layer number)."""
    bound = 1.0 / np.sqrt(shape[0])
    draws = np.random.default_rng([seed, layer])
    kernel = draws.uniform(-bound, bound, size=shape).astype(np.float32)
    return kernel, draws.uniform(-bound, bound, size=shape[1:]).astype(np.float32)


def build_network(
    num_outputs: int,
    hidden_units: int | Sequence[int] = 128,
    dropout: float = 0.0,
    seeds: Sequence[int] = (0,),
    init: str = "glorot",
    **inputs,
) -> StackedMLP:
    """One MLP per seed, stacked: repetition s's weights are drawn from ``seeds[s]`` and depend on nothing else.
    ``init`` glorot: Keras' default, Glorot-uniform kernels and zero biases; torch: PyTorch's ``nn.Linear`` default
    (``torch_linear``; the first layer's fan-in the padded digit's pixels). ``inputs``: ``input_padding``,
    ``input_mean``, ``input_sd`` (``network_input``; default: the digits as they are)."""
    if init not in INITS:
        raise ForgettingError(f"unknown initialisation {init!r}: use one of {', '.join(INITS)}")
    network = StackedMLP(num_outputs, hidden_units, dropout, seeds, name="mlp", **inputs)
    network.build((None, *IMAGE_SHAPE))
    for number, layer in enumerate(network.dense_layers):
        shape = tuple(layer.kernel.shape[1:])
        if init == "glorot":
            layer.kernel.assign(np.stack([glorot_uniform(shape, seed, number) for seed in network.seeds]))
            continue
        kernels, biases = zip(*(torch_linear(shape, seed, number) for seed in network.seeds), strict=True)
        layer.kernel.assign(np.stack(kernels))
        layer.bias.assign(np.stack(biases))
    return network


def tiled(network: StackedMLP, times: int) -> StackedMLP:
    """``network`` with its repetitions repeated ``times`` times, in order: repetition v * S + s is a copy of
    repetition s, so that ``times`` values of a strength can train the same repetitions side by side
    (``Strategy.set_strengths``)."""
    return selected(network, [s for _ in range(times) for s in range(network.repetitions)])


def selected(network: StackedMLP, repetitions: Sequence[int]) -> StackedMLP:
    """A network of the repetitions ``repetitions`` of ``network`` (indices, in that order): its repetition i is a
    copy of repetition ``repetitions[i]`` (its weights, its seed, its dropout generator's state), and trains on as
    that one would have."""
    return _copy(network, [int(r) for r in repetitions])


def with_nearest_mean(network: StackedMLP, means: np.ndarray, present: np.ndarray) -> StackedMLP:
    """A copy of ``network`` (every repetition) that predicts by the nearest of ``means`` (S, outputs, F), the
    L2-normalised class means on its last hidden layer, among the outputs where ``present`` (S, outputs) is 1
    (``StackedMLP.scores``); its logits are ``network``'s."""
    copy = _copy(network, list(range(network.repetitions)), nearest_mean=True)
    copy.nearest_mean.means.assign(np.asarray(means, np.float32))
    copy.nearest_mean.present.assign(np.asarray(present, np.float32))
    return copy


def frozen_copy(network: StackedMLP) -> StackedMLP:
    """A copy of every repetition that training does not change (a teacher: repetition s is s as it was)."""
    copy = StackedMLP.from_config(network.get_config())
    copy.build((None, *IMAGE_SHAPE))
    copy.set_weights(network.get_weights())
    copy.trainable = False
    return copy


def _copy(network: StackedMLP, index: list[int], nearest_mean: bool = False) -> StackedMLP:
    seeds = [network.seeds[r] for r in index]
    shape = (network.num_outputs, network.hidden_units, network.rate, seeds, nearest_mean)
    copy = StackedMLP(*shape, name=network.name, **network.input_settings)
    copy.build((None, *IMAGE_SHAPE))
    for mine, theirs in zip(copy.dense_layers, network.dense_layers, strict=True):
        for variable, source in ((mine.kernel, theirs.kernel), (mine.bias, theirs.bias)):
            variable.assign(source.numpy()[index])
    for number, generator in enumerate(copy.dropout.generators):  # none without dropout
        generator.state.assign(network.dropout.generators[index[number]].state)
    return copy


def build_mlp(num_outputs: int, hidden_units: int | Sequence[int] = 128, dropout: float = 0.0, **inputs) -> keras.Model:
    """A plain Keras MLP (one repetition); its variables are named by layer (``hidden/kernel``, ...). ``inputs`` as
    ``build_network``'s: Keras' ``ZeroPadding2D`` and ``Rescaling`` layers (x / sd - mean / sd: the same within float
    rounding)."""
    inputs = INPUT_DEFAULTS | inputs
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = image
    if inputs["input_padding"]:
        x = keras.layers.ZeroPadding2D(inputs["input_padding"], name="padding")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if (inputs["input_mean"], inputs["input_sd"]) != (0.0, 1.0):
        scale = 1.0 / inputs["input_sd"]
        x = keras.layers.Rescaling(scale, -inputs["input_mean"] * scale, name="normalisation")(x)
    widths = [hidden_units] if isinstance(hidden_units, int) else list(hidden_units)
    for number, units in enumerate(widths):
        x = keras.layers.Dense(units, activation="relu", name=hidden_name(number))(x)
        x = keras.layers.Dropout(dropout, name="dropout" if number == 0 else f"dropout_{number + 1}")(x)
    outputs = keras.layers.Dense(num_outputs, name="logits")(x)
    return keras.Model(image, outputs, name="mlp")


def repetition(network: StackedMLP, index: int) -> keras.Model:
    """Repetition ``index`` of ``network`` as a plain Keras MLP (Dense layers, logits (batch, outputs))."""
    if not 0 <= index < network.repetitions:
        raise ForgettingError(
            f"there is no repetition {index}: the model holds {network.repetitions} (0 to {network.repetitions - 1})"
        )
    plain = build_mlp(network.num_outputs, network.hidden_units, network.rate, **network.input_settings)
    for layer in network.dense_layers:
        plain.get_layer(layer.name).set_weights([layer.kernel.numpy()[index], layer.bias.numpy()[index]])
    return plain


def weights_by_path(model: keras.Model) -> dict[str, np.ndarray]:
    """The trainable variables as numpy arrays, keyed by variable path (``hidden/kernel``, ...)."""
    return {v.path: np.array(v.numpy()) for v in model.trainable_variables}


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save in the native ``.keras`` format, atomically, with stable bytes. Keras writes the time of saving into
    the archive (``metadata.json``'s ``date_saved``, the zip entries' timestamps), both set to a fixed date here,
    and the memory address of each object that layers share (``shared_object_id`` in ``config.json``: the dtype
    policy), renumbered 1, 2, ... in order of appearance (loading only matches equal ids). So the same weights
    always give the same file, in any process (and DVC the same hash). The weights file inside is untouched."""
    if Path(path).suffix != ".keras":
        raise ForgettingError(f"{path}: checkpoints are saved in the .keras format; name it *.keras")
    with atomic_output(path) as tmp:
        model.save(tmp)
        restamp_zip(tmp, _stable_entry)


def _stable_entry(name: str, content: bytes) -> bytes:
    if name == "metadata.json":
        metadata = json.loads(content)
        metadata["date_saved"] = "{:04d}-{:02d}-{:02d}@{:02d}:{:02d}:{:02d}".format(*ZIP_EPOCH)
        return json.dumps(metadata, sort_keys=True).encode()
    if name == "config.json":
        return json.dumps(_renumber_shared_objects(json.loads(content), {})).encode()
    return content


def _renumber_shared_objects(node, numbers: dict[int, int]):
    """``node`` (a Keras config) with every ``shared_object_id`` replaced by its rank of first appearance."""
    if isinstance(node, list):
        return [_renumber_shared_objects(item, numbers) for item in node]
    if not isinstance(node, dict):
        return node
    renumbered = {key: _renumber_shared_objects(value, numbers) for key, value in node.items()}
    if "shared_object_id" in node:
        renumbered["shared_object_id"] = numbers.setdefault(node["shared_object_id"], len(numbers) + 1)
    return renumbered


def load_model(path: str | Path, stage: str) -> keras.Model:
    """Load a checkpoint; a missing or corrupt file names the stage that rebuilds it."""
    path = Path(path)
    if not path.is_file():
        raise ForgettingError(f"checkpoint {path} is missing: {cheapest_fix(path, stage)}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ForgettingError(
            f"checkpoint {path} is corrupt or not a Keras model ({type(exc).__name__}): {cheapest_fix(path, stage)}"
        ) from exc
