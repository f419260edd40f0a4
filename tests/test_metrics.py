"""Metrics over repetitions: every repetition's accuracy, its forgetting and BWT from its own training log, and the
means with their 95% confidence half-widths (Student t)."""

import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, split_into_tasks
from scipy import stats

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.evaluation import intervals, metrics, multiplicity
from forgetting.nn.model import build_network

DOMAIN = Scenario("domain", EVEN_ODD)
NAMES = ["task_a", "task_b"]


def _scipy_half_width(values) -> float:
    values = np.asarray(values, np.float64)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    return (high - low) / 2


@pytest.mark.parametrize(
    "values",
    [
        [0.9, 0.92, 0.95],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [0.5, 0.7],
        np.random.default_rng(0).normal(0.8, 0.05, size=10),
    ],
)
def test_ci95_is_the_student_t_half_width(values):
    assert metrics.ci95(values) == pytest.approx(_scipy_half_width(values), rel=1e-12)
    assert metrics.ci95(values) > 0


def test_one_value_has_no_interval_and_equal_values_a_zero_one():
    """One repetition is not perfect certainty: its interval is missing (NaN; null in the files, "n/a" shown)."""
    assert math.isnan(metrics.ci95([0.7])) and math.isnan(metrics.ci95(np.array([0.25])))
    assert metrics.ci95([0.5, 0.5, 0.5]) == 0.0
    assert intervals.half_width([0.7]) is None and intervals.half_width([0.5, 0.5]) == 0.0
    assert metrics.summary({"seed": [3], "mean_accuracy": [0.8]}) == {"mean_accuracy": 0.8, "mean_accuracy_ci95": None}
    assert intervals.plus_minus(None) == intervals.plus_minus(math.nan) == "± n/a"
    assert intervals.plus_minus(0.01234, 4, space="") == "±0.0123"


def _numpy_logits(network, images: np.ndarray) -> np.ndarray:
    """The stacked MLP's logits (S, B, outputs), computed by numpy from its weights."""
    x = images.reshape(len(images), -1).astype(np.float64)
    hidden = np.maximum(
        np.einsum("bi,sih->sbh", x, network.hidden.kernel.numpy()) + network.hidden.bias.numpy()[:, None], 0
    )
    return np.einsum("sbh,sho->sbo", hidden, network.logits.kernel.numpy()) + network.logits.bias.numpy()[:, None]


@pytest.mark.parametrize("kind", ["domain", "task", "class"])
def test_accuracy_is_one_value_per_repetition_from_the_argmax(make_mnist, kind):
    scenario = Scenario(kind, EVEN_ODD)
    split = mnist.Split.concat(*split_into_tasks(make_mnist(90, seed=4), scenario))
    network = build_network(scenario.num_outputs, hidden_units=8, seeds=(1, 2, 3))
    rng = np.random.default_rng(5)  # non-zero biases, so that they are checked too
    for layer in network.dense_layers:
        layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape).astype(np.float32))
    logits = _numpy_logits(network, split.image)
    if kind == "task":  # each example's own head
        heads = logits.reshape(3, len(split), len(EVEN_ODD), scenario.width)
        logits = heads[:, np.arange(len(split)), split.task]
    top = np.sort(logits, axis=-1)
    assert np.all(top[..., -1] - top[..., -2] > 1e-4), "ties would make the reference ambiguous"
    expected = np.mean(np.argmax(logits, axis=-1) == split.label[None], axis=1)
    got = metrics.accuracy(network, split, scenario, batch_size=16)  # several batches, the last one short
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert len(np.unique(got)) > 1
    np.testing.assert_array_equal(metrics.accuracy(network, split, scenario), got)  # whatever the batch size


class _Fixed:
    """Two repetitions with fixed logits for every image: repetition 0 gives 0..9 (each head's argmax is its last
    output, 4), repetition 1 gives 9..0 (each head's argmax is its first output, 0)."""

    repetitions = 2

    def per_repetition(self, images, training=False):
        row = tf.stack([tf.range(10, dtype=tf.float32), tf.range(9, -1, -1, dtype=tf.float32)])
        return tf.tile(row[:, None], (1, tf.shape(images)[0], 1))

    scores = per_repetition  # its prediction rule: its logits, as a StackedMLP without a nearest-mean head


def test_task_scenario_accuracy_uses_only_the_examples_own_head():
    images = np.zeros((4, 28, 28, 1), np.float32)
    split = mnist.Split(images, np.array([4, 4, 0, 3]), np.zeros(4, np.uint8), np.array([0, 1, 0, 1], np.int32))
    np.testing.assert_array_equal(metrics.accuracy(_Fixed(), split, Scenario("task", EVEN_ODD)), [0.5, 0.25])
    # the same logits without task identity: the argmaxes are outputs 9 (no label here) and 0
    np.testing.assert_array_equal(metrics.accuracy(_Fixed(), split, Scenario("class", EVEN_ODD)), [0.0, 0.25])


def test_task_metrics_keys_forgetting_matrix_and_bwt():
    assert metrics.task_metrics({"task_a": 0.9, "task_b": 0.5}, None, None) == pytest.approx(
        {"task_a_accuracy": 0.9, "task_b_accuracy": 0.5, "mean_accuracy": 0.7}
    )
    matrix = [[0.98, 0.1, 0.0], [0.5, 0.99, 0.2], [0.25, 0.6, 0.97]]
    result = metrics.task_metrics({"task_a": 0.25, "task_b": 0.6, "task_c": 0.97}, 0.98, matrix)
    assert result["mean_accuracy"] == pytest.approx((0.25 + 0.6 + 0.97) / 3, abs=1e-12)
    assert result["task_a_forgetting"] == pytest.approx(0.73, abs=1e-12)
    assert result["bwt"] == pytest.approx(((0.25 - 0.98) + (0.6 - 0.99)) / 2, abs=1e-12)
    assert "accuracy_matrix" not in result  # its own file: matrix_records
    only_a = metrics.task_metrics({"task_a": 0.98, "task_b": 0.1}, None, [[0.98, 0.1]])
    assert set(only_a) == {"task_a_accuracy", "task_b_accuracy", "mean_accuracy"}


def test_fwt_is_the_accuracy_on_each_task_just_before_it_minus_the_initial_one():
    """FWT (Lopez-Paz & Ranzato 2017) = 1/(T-1) * sum_{i>0} (R[i-1][i] - b_i), b_i at initialisation."""
    matrix = [[0.98, 0.1, 0.05], [0.5, 0.99, 0.3], [0.25, 0.6, 0.97]]
    initial = {"task_a": 0.2, "task_b": 0.15, "task_c": 0.1}
    result = metrics.task_metrics({"task_a": 0.25, "task_b": 0.6, "task_c": 0.97}, 0.98, matrix, initial)
    assert result["fwt"] == pytest.approx(((0.1 - 0.15) + (0.3 - 0.1)) / 2, abs=1e-12)
    assert "fwt" not in metrics.task_metrics({"task_a": 0.25, "task_b": 0.6, "task_c": 0.97}, 0.98, matrix)
    assert "fwt" not in metrics.task_metrics({"task_a": 0.98, "task_b": 0.1}, None, [[0.98, 0.1]], initial)


def test_initial_accuracies_are_each_seeds_epoch_0_row():
    rows = _repetition_log()
    assert metrics.initial_accuracies(rows, NAMES) == {
        seed: {"task_a": m[0][0], "task_b": m[0][1]} for seed, m in MATRICES.items()
    }


def _row(task, a, b, **extra) -> dict[str, str]:
    return {"task": task, "task_a_accuracy": str(a), "task_b_accuracy": str(b), **{k: str(v) for k, v in extra.items()}}


def test_matrix_records_are_the_last_row_of_each_stretch():
    rows = [_row("task_a", 0.9, 0.1), _row("task_b", 0.6, 0.8), _row("task_b", 0.5, 0.95)]
    assert metrics.matrix_records(rows, NAMES) == [
        {"trained": "task_a", "task": "task_a", "accuracy": 0.9},
        {"trained": "task_a", "task": "task_b", "accuracy": 0.1},
        {"trained": "task_b", "task": "task_a", "accuracy": 0.5},
        {"trained": "task_b", "task": "task_b", "accuracy": 0.95},
    ]
    assert [r["trained"] for r in metrics.matrix_records([_row("joint", 0.9, 0.8)], NAMES)] == ["joint", "joint"]


def test_accuracy_matrix_needs_a_log_that_follows_the_sequence():
    rows = [_row("task_a", 0.9, 0.1), _row("task_b", 0.6, 0.8), _row("task_b", 0.5, 0.95)]
    assert metrics.accuracy_matrix(rows, NAMES) == [[0.9, 0.1], [0.5, 0.95]]
    assert metrics.accuracy_matrix([_row("joint", 0.9, 0.9)], NAMES) is None
    assert metrics.accuracy_matrix([_row("task_b", 0.9, 0.9)], NAMES) is None


# A per-repetition log of a two-task sequence (TaskAccuracyLog's repetitions_path, as read back: strings), three
# seeds: epoch 0 is the task-A model, epochs 1 and 2 train on task B. Each seed's accuracy matrix is
# [[R00, R01], [R10, R11]] = its row of epoch 0 and its row of epoch 2.
MATRICES = {10: [[0.98, 0.10], [0.60, 0.95]], 11: [[0.97, 0.05], [0.50, 0.96]], 12: [[0.99, 0.12], [0.70, 0.94]]}


def _repetition_log() -> list[dict[str, str]]:
    rows = []
    for epoch, task in [(0, "task_a"), (1, "task_b"), (2, "task_b")]:
        for seed, matrix in MATRICES.items():
            a, b = matrix[0] if epoch == 0 else matrix[1] if epoch == 2 else (0.8, 0.7)
            rows.append(_row(task, a, b, epoch=epoch, seed=seed))
    return rows


def test_repetition_metrics_and_summary_of_a_hand_made_log():
    seeds = [10, 11, 12]
    final = {"task_a": np.array([0.60, 0.50, 0.70]), "task_b": np.array([0.95, 0.96, 0.94])}
    reference_a = np.array([0.98, 0.97, 0.99])  # each repetition's task-A model
    repetitions = metrics.repetition_metrics(seeds, final, reference_a, _repetition_log(), NAMES)
    assert list(repetitions) == [
        "seed",
        "task_a_accuracy",
        "task_b_accuracy",
        "mean_accuracy",
        "task_a_forgetting",
        "bwt",
    ]
    expected = {
        "task_a_accuracy": [0.60, 0.50, 0.70],
        "task_b_accuracy": [0.95, 0.96, 0.94],
        "mean_accuracy": [0.775, 0.73, 0.82],
        "task_a_forgetting": [0.38, 0.47, 0.29],  # reference - final, repetition by repetition
        "bwt": [0.60 - 0.98, 0.50 - 0.97, 0.70 - 0.99],  # R10 - R00 of each repetition's own matrix
    }
    assert repetitions["seed"] == seeds
    for key, values in expected.items():
        assert repetitions[key] == pytest.approx(values, abs=1e-9), key
    result = metrics.summary(repetitions)
    assert set(result) == {key for name in expected for key in (name, f"{name}_ci95")}
    for key, values in expected.items():
        assert result[key] == pytest.approx(np.mean(values), abs=1e-6), key
        assert result[f"{key}_ci95"] == pytest.approx(_scipy_half_width(values), abs=1e-6), key
        assert result[f"{key}_ci95"] > 0
    # the same log, the model's repetitions listed in another order: each keeps its own matrix
    reordered = metrics.repetition_metrics(
        [12, 10, 11],
        {k: v[[2, 0, 1]] for k, v in final.items()},
        reference_a[[2, 0, 1]],
        _repetition_log(),
        NAMES,
    )
    assert reordered["bwt"] == pytest.approx([expected["bwt"][i] for i in (2, 0, 1)], abs=1e-9)
    # FWT from each seed's own initial accuracy: R01 - b_B, repetition by repetition
    initial = {
        10: {"task_a": 0.2, "task_b": 0.3},
        11: {"task_a": 0.1, "task_b": 0.02},
        12: {"task_a": 0.1, "task_b": 0.2},
    }
    with_fwt = metrics.repetition_metrics(seeds, final, reference_a, _repetition_log(), NAMES, initial)
    assert with_fwt["fwt"] == pytest.approx([0.10 - 0.3, 0.05 - 0.02, 0.12 - 0.2], abs=1e-9)


def test_repetition_metrics_without_reference_or_sequence():
    """The task-A model (its own reference) has no forgetting; the joint model's log no accuracy matrix (no BWT);
    one repetition has a zero-width interval."""
    joint = [_row("joint", 0.5, 0.5, epoch=0, seed=3), _row("joint", 0.9, 0.8, epoch=1, seed=3)]
    repetitions = metrics.repetition_metrics(
        [3], {"task_a": np.array([0.9]), "task_b": np.array([0.8])}, None, joint, NAMES
    )
    assert repetitions == {"seed": [3], "task_a_accuracy": [0.9], "task_b_accuracy": [0.8], "mean_accuracy": [0.85]}
    assert metrics.summary(repetitions) == pytest.approx(
        {
            "task_a_accuracy": 0.9,
            "task_a_accuracy_ci95": None,
            "task_b_accuracy": 0.8,
            "task_b_accuracy_ci95": None,
            "mean_accuracy": 0.85,
            "mean_accuracy_ci95": None,
        }
    )


def test_a_log_of_other_repetitions_than_the_model_is_refused():
    final = {"task_a": np.array([0.6, 0.5, 0.7]), "task_b": np.array([0.9, 0.9, 0.9])}
    with pytest.raises(
        ForgettingError, match=r"the training log holds the repetitions \[10, 11, 12\], the model \[10, 11, 13\]"
    ):
        metrics.repetition_metrics([10, 11, 13], final, None, _repetition_log(), NAMES)
    with pytest.raises(ForgettingError, match=r"run `dvc repro`"):
        metrics.repetition_metrics([10, 11], {k: v[:2] for k, v in final.items()}, None, _repetition_log(), NAMES)


def test_by_seed_groups_a_logs_rows_in_order():
    groups = metrics.by_seed(_repetition_log())
    assert list(groups) == [10, 11, 12]
    assert [(r["epoch"], r["task"]) for r in groups[11]] == [("0", "task_a"), ("1", "task_b"), ("2", "task_b")]
    assert metrics.accuracy_matrix(groups[11], NAMES) == MATRICES[11]


def test_epoch_records_give_the_mean_and_its_interval():
    rows = [
        _row("task_a", 0.9, 0.1, epoch=0, task_a_accuracy_ci95=0.02, task_b_accuracy_ci95=0.05),
        _row("task_b", 0.6, 0.8, epoch=1, task_a_accuracy_ci95=0.1, task_b_accuracy_ci95=0.0),
    ]
    assert metrics.epoch_records(rows, NAMES) == [
        {"epoch": 0, "trained": "task_a", "task": "task_a", "accuracy": 0.9, "low": 0.88, "high": 0.92},
        {"epoch": 0, "trained": "task_a", "task": "task_b", "accuracy": 0.1, "low": 0.05, "high": 0.15},
        {"epoch": 1, "trained": "task_b", "task": "task_a", "accuracy": 0.6, "low": 0.5, "high": 0.7},
        {"epoch": 1, "trained": "task_b", "task": "task_b", "accuracy": 0.8, "low": 0.8, "high": 0.8},
    ]
    for record in metrics.epoch_records(rows, NAMES):
        assert record["high"] - record["accuracy"] == pytest.approx(record["accuracy"] - record["low"], abs=2e-6)
    # a log without intervals (one repetition, its cells empty): no band
    for row in ([_row("task_a", 0.9, 0.1, epoch=0)], [_row("task_a", 0.9, 0.1, epoch=0, task_a_accuracy_ci95="")]):
        assert metrics.epoch_records(row, NAMES)[0] == {
            "epoch": 0,
            "trained": "task_a",
            "task": "task_a",
            "accuracy": 0.9,
            "low": None,
            "high": None,
        }


def test_paired_difference_is_the_paired_t_test():
    a, b = np.array([0.80, 0.85, 0.78, 0.90]), np.array([0.70, 0.80, 0.75, 0.82])
    mean, half, p = metrics.paired_difference(a, b)
    assert mean == pytest.approx(np.mean(a - b), abs=1e-12)
    assert half == pytest.approx(_scipy_half_width(a - b), rel=1e-12)
    assert p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert np.isnan(metrics.paired_difference(a, a - 0.1)[2])  # every difference the same: no test
    assert metrics.paired_difference(a, b).verdict == ("real" if abs(mean) > half else "not resolved")
    assert metrics.paired_difference(a, a).verdict == "identical"
    single = metrics.paired_difference([0.8], [0.7])  # one seed: no interval, nothing resolved
    assert np.isnan(single.ci95) and np.isnan(single.p) and single.verdict == "not resolved"


def test_holm_adjusts_by_rank_and_keeps_the_order():
    """By hand: the finite p sorted 0.005, 0.01, 0.03, 0.04 (m = 4) times 4, 3, 2, 1 give 0.02, 0.03, 0.06, 0.04,
    and each adjusted value is at least the one before it (0.04 -> 0.06); NaN is no test and not counted."""
    adjusted = multiplicity.holm([0.01, 0.04, 0.03, 0.005, math.nan])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15) and math.isnan(adjusted[4])
    assert multiplicity.holm([0.6, 0.5]) == [1.0, 1.0]  # capped at 1
    assert multiplicity.holm([0.02]) == [0.02] and multiplicity.holm([]) == []
    # Holm's guarantee on random p: each adjusted p at least its raw p, and a rejection at 0.05 only where
    # Bonferroni's step-down would make it (raw p_(i) < 0.05 / (m - i + 1) for every rank up to it)
    p = np.random.default_rng(1).uniform(0, 0.08, size=12).tolist()
    adjusted, ranked = multiplicity.holm(p), sorted(range(12), key=p.__getitem__)
    assert all(a >= raw for a, raw in zip(adjusted, p, strict=True))
    stepdown = [all(p[j] < 0.05 / (12 - r) for r, j in enumerate(ranked[: k + 1])) for k in range(12)]
    assert [adjusted[j] < 0.05 for j in ranked] == stepdown


def test_a_log_that_stops_short_for_one_repetition_is_refused():
    """One repetition's log reaches task B, the other's does not: a clear error, not a KeyError."""
    rows = [
        {"epoch": "0", "task": "task_a", "seed": s, "task_a_accuracy": "0.9", "task_b_accuracy": "0.1"} for s in "12"
    ]
    rows.append({"epoch": "1", "task": "task_b", "seed": "1", "task_a_accuracy": "0.5", "task_b_accuracy": "0.9"})
    final = {"task_a": np.array([0.5, 0.5]), "task_b": np.array([0.9, 0.9])}
    with pytest.raises(ForgettingError, match="does not follow every repetition through the same tasks"):
        metrics.repetition_metrics([1, 2], final, None, rows, NAMES)
