"""The network: Flatten -> Dense(hidden, relu) -> Dropout -> Dense(outputs) logits, and its checkpoints.

The number of logits is the scenario's (``Scenario.num_outputs``): 5 for the two-task domain scenario."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from forgetting.errors import ForgettingError
from forgetting.files import ZIP_EPOCH, atomic_output, cheapest_fix, restamp_zip

IMAGE_SHAPE = (28, 28, 1)
# Batches per compiled call in fit: the same updates in the same order, with a fraction of the per-step overhead
# (which dominates for a model this small).
STEPS_PER_EXECUTION = 32


def build_mlp(num_outputs: int, hidden_units: int = 128, dropout: float = 0.0) -> keras.Model:
    """The MLP; its variables are named by layer (``hidden/kernel``, ``logits/bias``, ...)."""
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_outputs, name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp")


def compile_for_training(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam and sparse categorical cross-entropy from logits, with accuracy as a Keras metric."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


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
