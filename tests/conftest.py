"""Shared fixtures: small synthetic data and a tiny model, so unit tests stay fast."""

from __future__ import annotations

import numpy as np
import pytest

from forgetting.data import Split, make_split
from forgetting.model import build_mlp


def synthetic_mnist(count: int, seed: int = 0) -> Split:
    """Random 28x28 uint8 'images' whose digit is encoded in a bright block, so a model can learn them."""
    rng = np.random.default_rng(seed)
    digits = np.arange(count) % 10
    rng.shuffle(digits)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for n, d in enumerate(digits):
        images[n, 2 * d : 2 * d + 4, 4:24] = 255
    return make_split(images, digits)


@pytest.fixture
def make_mnist():
    """The ``synthetic_mnist(count, seed)`` factory, for tests that need several sets."""
    return synthetic_mnist


@pytest.fixture
def mnist_like() -> Split:
    return synthetic_mnist(400)


@pytest.fixture
def tiny_model():
    import keras

    keras.utils.set_random_seed(7)
    return build_mlp(hidden_units=8, dropout=0.5)
