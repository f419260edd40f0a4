import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, FIVE_PAIRS

from forgetting.data.scenarios import Scenario, task_names


def test_task_names_are_lettered():
    assert task_names(5) == ["task_a", "task_b", "task_c", "task_d", "task_e"]


@pytest.mark.parametrize(
    ("kind", "tasks", "outputs", "labels"),
    [
        # label of digits 0..9, each in its own task
        ("domain", EVEN_ODD, 5, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),  # the reference notebook's digit // 2
        ("task", EVEN_ODD, 10, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),
        ("class", EVEN_ODD, 10, list(range(10))),
        ("domain", FIVE_PAIRS, 2, [0, 1] * 5),
        ("task", FIVE_PAIRS, 10, [0, 1] * 5),
        ("class", FIVE_PAIRS, 10, list(range(10))),
        ("class", ((3, 7), (5,)), 3, None),
    ],
)
def test_outputs_and_label_maps(kind, tasks, outputs, labels):
    scenario = Scenario(kind, tasks)
    assert scenario.num_outputs == outputs
    if labels is not None:
        digits = np.arange(10)
        task = np.array([next(t for t, members in enumerate(tasks) if d in members) for d in digits])
        assert scenario.labels(digits, task).tolist() == labels
    else:  # digits missing from every task are not classes: the rest are numbered in order
        assert scenario.labels(np.array([3, 5, 7]), np.array([0, 1, 0])).tolist() == [0, 1, 2]


def test_the_task_scenario_selects_each_examples_own_head():
    scenario = Scenario("task", FIVE_PAIRS)
    logits = tf.reshape(tf.range(2 * 10, dtype=tf.float32), (2, 10))  # row 0: 0..9, row 1: 10..19
    picked = scenario.select(logits, tf.constant([3, 0])).numpy()
    np.testing.assert_array_equal(picked, [[6.0, 7.0], [10.0, 11.0]])  # head 3 of row 0, head 0 of row 1
    np.testing.assert_array_equal(scenario.columns(3), [6, 7])


def _select_reference(logits: np.ndarray, task: np.ndarray, width: int) -> np.ndarray:
    """Numpy: for every (repetition, example), the ``width`` logits of head ``task[s, b]``."""
    repetitions, batch, _ = logits.shape
    picked = np.empty((repetitions, batch, width), logits.dtype)
    for s in range(repetitions):
        for b in range(batch):
            picked[s, b] = logits[s, b, task[s, b] * width : (task[s, b] + 1) * width]
    return picked


@pytest.mark.parametrize("tasks", [EVEN_ODD, FIVE_PAIRS])
def test_the_task_scenario_selects_heads_for_every_repetition(tasks):
    """Logits (S, B, outputs) of S repetitions: the task indices are one per example, shared by every repetition
    (B,), or one per repetition and example (S, B), as when each repetition trains on its own batch."""
    scenario = Scenario("task", tasks)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, scenario.num_outputs)).astype(np.float32)
    shared = rng.integers(0, len(tasks), size=6)
    own = rng.integers(0, len(tasks), size=(3, 6))
    assert len({row.tobytes() for row in own}) == 3
    picked = scenario.select(tf.constant(logits), tf.constant(shared)).numpy()
    assert picked.shape == (3, 6, scenario.width)
    np.testing.assert_array_equal(picked, _select_reference(logits, np.broadcast_to(shared, (3, 6)), scenario.width))
    picked = scenario.select(tf.constant(logits), tf.constant(own, tf.int64)).numpy()
    np.testing.assert_array_equal(picked, _select_reference(logits, own, scenario.width))
    # repetition s's slice is what select gives for its logits alone (B, outputs)
    for s in range(3):
        alone = scenario.select(tf.constant(logits[s]), tf.constant(own[s])).numpy()
        np.testing.assert_array_equal(picked[s], alone)


@pytest.mark.parametrize("kind", ["domain", "class"])
def test_without_task_identity_every_logit_is_used(kind):
    scenario = Scenario(kind, EVEN_ODD)
    logits = tf.ones((3, scenario.num_outputs))
    assert scenario.select(logits, tf.constant([0, 1, 1])) is logits
    stacked = tf.ones((2, 3, scenario.num_outputs))  # (S, B, outputs)
    assert scenario.select(stacked, tf.constant([0, 1, 1])) is stacked
    assert scenario.select(stacked, tf.constant([[0, 1, 1], [1, 1, 0]])) is stacked
    np.testing.assert_array_equal(scenario.columns(1), np.arange(scenario.num_outputs))


def test_seen_columns_are_the_outputs_of_finished_tasks():
    assert [g.tolist() for g in Scenario("domain", FIVE_PAIRS).seen_columns(3)] == [[0, 1]]
    assert [g.tolist() for g in Scenario("task", FIVE_PAIRS).seen_columns(2)] == [[0, 1], [2, 3]]
    assert [g.tolist() for g in Scenario("class", FIVE_PAIRS).seen_columns(2)] == [[0, 1, 2, 3]]
    assert [g.tolist() for g in Scenario("class", EVEN_ODD).seen_columns(1)] == [[0, 2, 4, 6, 8]]
