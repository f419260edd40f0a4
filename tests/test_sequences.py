"""Permuted and rotated MNIST: the same digits in every task, shown through a seeded pixel permutation or a rotation
per task; the params that ask for them, and the settings that name them."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from forgetting.config import settings
from forgetting.data import mnist
from forgetting.errors import ForgettingError
from forgetting.strategies import validate_params

ROOT = Path(__file__).resolve().parents[1]
EVERY_DIGIT = list(range(10))


@pytest.fixture
def defaults() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_each_tasks_pixel_order_is_a_seeded_bijection_and_task_0_keeps_mnists():
    np.testing.assert_array_equal(mnist.pixel_order(42, 0), np.arange(784))
    orders = [mnist.pixel_order(42, t) for t in range(1, 10)]
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(784))  # every pixel exactly once
        assert not np.array_equal(order, np.arange(784))
    assert len({o.tobytes() for o in orders}) == 9  # each task its own
    np.testing.assert_array_equal(mnist.pixel_order(42, 3), orders[2])  # the same again: seeded
    assert not np.array_equal(mnist.pixel_order(7, 3), orders[2])  # another seed, another order


def test_a_permuted_split_moves_every_pixel_where_its_order_says(mnist_like):
    order = mnist.pixel_order(42, 1)
    moved = mnist.permuted(mnist_like, order)
    flat, moved_flat = mnist_like.image.reshape(len(mnist_like), -1), moved.image.reshape(len(mnist_like), -1)
    np.testing.assert_array_equal(moved_flat, flat[:, order])
    np.testing.assert_array_equal(moved.digit, mnist_like.digit)
    back = np.empty_like(order)
    back[order] = np.arange(784)
    np.testing.assert_array_equal(moved_flat[:, back], flat)  # a bijection: it can be undone


def test_rotation_by_0_is_the_identity_and_by_90_a_quarter_turn(mnist_like):
    assert mnist.rotated(mnist_like, 0.0) is mnist_like
    np.testing.assert_array_equal(mnist.rotated(mnist_like, 360.0).image, mnist_like.image)
    quarter = mnist.rotated(mnist_like, 90.0)
    np.testing.assert_array_equal(quarter.image, np.rot90(mnist_like.image, 1, axes=(1, 2)))  # counter-clockwise
    turned = mnist.rotated(mnist_like, 45.0).image
    assert not np.array_equal(turned, mnist_like.image)
    np.testing.assert_array_equal(turned * 255, np.rint(turned * 255))  # still whole uint8 pixel values
    assert turned.min() >= 0 and turned.max() <= 1


def test_show_turns_task_t_by_t_steps_and_permutes_task_t_by_its_own_order(mnist_like):
    splits = {"train": mnist_like}
    rotated = mnist.show(splits, 2, {"kind": "rotated", "degrees_per_task": 45.0}, seed=1)
    np.testing.assert_array_equal(rotated["train"].image, np.rot90(mnist_like.image, 1, axes=(1, 2)))
    permuted = mnist.show(splits, 2, {"kind": "permuted", "degrees_per_task": 45.0}, seed=1)
    np.testing.assert_array_equal(permuted["train"].image, mnist.permuted(mnist_like, mnist.pixel_order(1, 2)).image)
    assert mnist.show(splits, 2, {"kind": "digits", "degrees_per_task": 45.0}, seed=1) is splits


@pytest.mark.parametrize("kind", ["permuted", "rotated"])
def test_the_same_digits_in_every_task_are_allowed_only_for_permuted_and_rotated(defaults, kind):
    defaults |= {"tasks": [EVERY_DIGIT] * 3, "task_inputs": {"kind": kind, "degrees_per_task": 30.0}}
    with pytest.raises(ForgettingError, match=r"gem\.memory: class_balanced .* set gem\.memory: per_task"):
        validate_params(defaults)  # GEM's memories: a number of each task's examples, as the settings set it
    defaults["gem"] = defaults["gem"] | {"memory": "per_task"}
    validate_params(defaults)
    with pytest.raises(ForgettingError, match=r"tasks share the digits \[0, 1, .*or set task_inputs\.kind"):
        validate_params(defaults | {"task_inputs": {"kind": "digits", "degrees_per_task": 30.0}})
    with pytest.raises(ForgettingError, match=rf"task_inputs\.kind = '{kind}' shows the same digits in every task"):
        validate_params(defaults | {"tasks": [EVERY_DIGIT, [0, 1]]})
    with pytest.raises(
        ForgettingError, match="which the class scenario cannot tell apart; use scenario domain or task"
    ):
        validate_params(defaults | {"scenario": "class"})
    bad = copy.deepcopy(defaults)
    bad["task_inputs"]["kind"] = "shuffled"
    with pytest.raises(ForgettingError, match=r"task_inputs\.kind = 'shuffled' is invalid; set it to digits"):
        validate_params(bad)


@pytest.mark.parametrize("setting", settings.SETTINGS)
def test_every_setting_is_valid_params_and_is_recognised_again(defaults, setting):
    from forgetting.config.params import with_values

    params = with_values(defaults, settings.values(setting))
    validate_params(params)
    assert settings.setting_of(params) == setting
    assert settings.setting_of(defaults) == "domain-even-odd"


def test_the_new_sequences_sizes():
    assert settings.values("domain-permuted")["tasks"] == [EVERY_DIGIT] * 10
    assert settings.values("domain-rotated")["tasks"] == [EVERY_DIGIT] * 5
    assert settings.values("domain-rotated")["task_inputs"] == {"kind": "rotated", "degrees_per_task": 45.0}
    assert settings.values("domain-permuted")["data.train_per_digit"] == 1000  # a size that fits 2 cores
    assert "data.train_per_digit" not in settings.values("class-split5")
    assert settings.values("task-permuted")["scenario"] == "task"
