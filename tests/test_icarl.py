"""iCaRL (``forgetting.strategies.icarl``): herding's choice and nearest-mean classification on hand-made features,
the exemplar quotas, the distillation by hand, the nearest-mean head saved in the checkpoint (what the evaluate
stage measures), and what it keeps of a class-incremental sequence that naive forgets. Each repetition of a stacked
run equals its seed alone: ``test_strategies``."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import FIVE_PAIRS, split_into_tasks

from forgetting.data.mnist import Split
from forgetting.data.scenarios import Scenario
from forgetting.evaluation import metrics
from forgetting.nn.model import build_network, load_model, nearest_mean_scores, save_model, with_nearest_mean
from forgetting.strategies import ICaRL, Naive
from forgetting.strategies.icarl import herding, output_means, quotas
from forgetting.training import loop

# Five unit directions scaled at will (herding normalises): (0.6, 0.8) is nearest the mean (0.12, 0.16), then
# each next one brings the running mean nearest it: (0, -1), (0, 1), (-1, 0), (1, 0) (worked out in the docstring
# of the test).
TOY = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -5.0], [3.0, 4.0]])


def test_herding_chooses_by_hand():
    """Normalised rows a=(1,0), b=(0,1), c=(-1,0), d=(0,-1), e=(0.6,0.8); mean m=(0.12,0.16). k=1: the row nearest m
    (largest m.f): e (0.2; b 0.16, a 0.12). k=2: (e+f)/2 nearest m, e+f nearest 2m=(0.24,0.32): e+d=(0.6,-0.2) at
    0.63 (e+c at 0.80, e+a, e+b farther). k=3: f nearest 3m-(e+d)=(-0.24,0.68): b at 0.40. k=4: f nearest
    4m-(e+d+b)=(-0.12,-0.16): c at 0.89 (a at 1.13). Then a."""
    np.testing.assert_array_equal(herding(TOY, 5), [4, 3, 1, 2, 0])
    np.testing.assert_array_equal(herding(TOY, 2), [4, 3])  # a smaller set is the same order's prefix
    np.testing.assert_array_equal(herding(TOY, 9), [4, 3, 1, 2, 0])  # no more than there are


def test_quotas_share_the_budget_as_evenly_as_it_goes():
    assert quotas([(0, 0), (0, 2), (1, 1)], 10) == {(0, 0): 4, (0, 2): 3, (1, 1): 3}
    assert sum(quotas([(t, d) for t in range(2) for d in range(5)], 1000).values()) == 1000


def test_nearest_mean_scores_by_hand():
    """Features and means of one repetition: the score is -|f/|f| - mu|^2, the largest the nearest mean, and an
    output without a mean is never chosen."""
    features = np.array([[[3.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]], np.float32)  # (S=1, batch 3, F=2)
    means = np.array([[[1.0, 0.0], [0.0, 1.0], [-0.6, -0.8], [-0.8, -0.6]]], np.float32)  # 4 outputs
    present = np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)  # output 3 (nearest the third example) has no mean
    scores = nearest_mean_scores(tf.constant(features), tf.constant(means), tf.constant(present)).numpy()
    f = features[0] / np.linalg.norm(features[0], axis=1, keepdims=True)
    expected = -np.sum((f[:, None, :] - means[0][None, :3, :]) ** 2, axis=-1)
    np.testing.assert_allclose(scores[0, :, :3], expected, atol=1e-6)
    assert np.all(scores[0, :, 3] < -1e8)
    np.testing.assert_array_equal(np.argmax(scores[0], axis=-1), [0, 1, 2])


def test_output_means_average_each_outputs_classes():
    """Class scenario: an output's mean is its examples' normalised mean. Domain scenario: an output answering for
    two digits (two tasks) takes the normalised mean of the two classes' means, whatever their sizes."""
    features = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    digit = np.array([0, 0, 1, 2, 2, 2], np.uint8)
    task = np.array([0, 0, 0, 1, 1, 1], np.int32)
    classes = Scenario("class", ((0, 1), (2, 3)))
    split = Split(np.zeros(6), classes.labels(digit, task), digit, task)
    means, present = output_means(features, split, classes)
    np.testing.assert_allclose(means[0], [2**-0.5, 2**-0.5], atol=1e-7)  # mean of (1,0) and (0,1), normalised
    np.testing.assert_allclose(means[1], [1, 0], atol=1e-7)
    np.testing.assert_allclose(means[2], [0, 1], atol=1e-7)
    np.testing.assert_array_equal(present, [1, 1, 1, 0])
    domain = Scenario("domain", ((0, 1), (2, 3)))
    split = Split(np.zeros(6), domain.labels(digit, task), digit, task)  # output 0: digit 0 (task 0), digit 2
    means, present = output_means(features, split, domain)
    expected = np.array([2**-0.5, 2**-0.5]) + np.array([0, 1])  # the two classes' means, averaged
    np.testing.assert_allclose(means[0], expected / np.linalg.norm(expected), atol=1e-7)
    np.testing.assert_allclose(means[1], [1, 0], atol=1e-7)
    np.testing.assert_array_equal(present, [1, 1])


def _class_split(make_mnist, count=750, seed=4):
    scenario = Scenario("class", FIVE_PAIRS[:3])
    return scenario, split_into_tasks(make_mnist(count, seed=seed), scenario)


def _trained_on_task_a(scenario, task_a, seeds, epochs=2):
    loop.seed_everything(0)
    network = build_network(scenario.num_outputs, hidden_units=32, seeds=seeds)
    model = loop.ContinualModel(network, scenario, loop.TrainingSet(task_a, seeds, salt=0), task=0)
    loop.fit(model, None, epochs, 32, 3e-3, verbose=0)
    return network


def test_exemplars_are_class_balanced_herded_and_cut_to_their_quota(make_mnist):
    scenario, train = _class_split(make_mnist)
    network = _trained_on_task_a(scenario, train[0], [5, 6], epochs=1)
    icarl = ICaRL(network, train[0], scenario, size=21, weight=1.0)
    first = [dict(sets) for sets in icarl.exemplars]
    for s, sets in enumerate(icarl.exemplars):
        assert {key: len(split) for key, split in sets.items()} == {(0, 0): 11, (0, 1): 10}
        members = np.flatnonzero(train[0].digit == 0)
        features = network.features(train[0].image[members]).numpy()[s]
        np.testing.assert_array_equal(sets[(0, 0)].image, train[0].image[members[herding(features, 11)]])
    icarl.end_task(network, 1, train[1])
    for s, sets in enumerate(icarl.exemplars):  # four classes: 6, 5, 5, 5; the old sets are their order's prefix
        assert {key: len(split) for key, split in sets.items()} == {(0, 0): 6, (0, 1): 5, (1, 2): 5, (1, 3): 5}
        for key in ((0, 0), (0, 1)):
            np.testing.assert_array_equal(sets[key].image, first[s][key].image[: len(sets[key])])
        assert np.all(sets[(1, 2)].digit == 2) and np.all(sets[(1, 3)].task == 1)
    assert not np.array_equal(icarl.exemplars[0][(0, 0)].image, icarl.exemplars[1][(0, 0)].image)  # own features
    assert icarl.tasks_done == 2


def test_the_distillation_by_hand(make_mnist):
    """mean over the batch and the old outputs (task A's digits 0, 1) of BCE(sigmoid(z_old), sigmoid(z)) times
    the weight, summed over repetitions."""
    scenario, train = _class_split(make_mnist)
    teacher = _trained_on_task_a(scenario, train[0], [5, 6], epochs=1)
    icarl = ICaRL(teacher, train[0], scenario, size=20, weight=0.7)
    student = build_network(scenario.num_outputs, hidden_units=32, seeds=[5, 6])
    images = np.stack([train[1].image[:16], train[1].image[16:32]])
    z = student.per_repetition(images).numpy()
    penalty = float(icarl.penalty(student, {"image": tf.constant(images)}, tf.constant(z)).numpy())
    p = 1 / (1 + np.exp(-teacher.per_repetition(images).numpy().astype(np.float64)))
    q = 1 / (1 + np.exp(-z.astype(np.float64)))
    bce = -(p * np.log(q) + (1 - p) * np.log(1 - q))[..., :2]
    expected = 0.7 * bce.mean(axis=(1, 2)).sum()
    assert abs(penalty - expected) < 1e-5 * expected


def test_icarl_keeps_the_old_classes_that_naive_forgets_and_its_checkpoint_predicts_as_its_log(make_mnist, tmp_path):
    """Three class-incremental tasks: naive ends knowing only the last; iCaRL's nearest-mean rule keeps every task.
    The saved network holds the rule: loaded, it scores the test split as the log's last row did."""
    scenario, train = _class_split(make_mnist, count=900)
    seeds = [5, 6]
    tests = dict(zip(scenario.names, train, strict=True))
    results = {}
    for make in (lambda net: Naive(), lambda net: ICaRL(net, train[0], scenario, size=60, weight=1.0)):
        network = _trained_on_task_a(scenario, train[0], seeds)
        strategy = make(network)
        csv = tmp_path / f"{strategy.name}.csv"
        log = loop.TaskAccuracyLog(tests, scenario, csv, csv.with_suffix(".r.csv"), "task_a")
        final = loop.train_sequence(
            network, strategy, scenario, train, [None] * 3, log, epochs=3, batch_size=32, learning_rate=3e-3, verbose=0
        )
        results[strategy.name] = {task: metrics.accuracy(final, split, scenario) for task, split in tests.items()}
        if strategy.name == "icarl":
            save_model(final, tmp_path / "icarl.keras")
            loaded = load_model(tmp_path / "icarl.keras", stage="finetune@icarl")
            for task, split in tests.items():
                measured = metrics.accuracy(loaded, split, scenario)
                np.testing.assert_array_equal(measured, results["icarl"][task])
                assert (
                    float(log.rows[-1][f"{task}_accuracy"]) == np.float64(measured.mean()).round(6)
                    or abs(float(log.rows[-1][f"{task}_accuracy"]) - measured.mean()) < 1e-6
                )
            np.testing.assert_array_equal(
                loaded.per_repetition(train[0].image[:8]), network.per_repetition(train[0].image[:8])
            )
    assert np.all(results["naive"]["task_a"] < 0.2) and np.all(results["naive"]["task_c"] > 0.9), results
    for task in ("task_a", "task_b"):
        assert np.all(results["icarl"][task] > results["naive"][task] + 0.5), results
    assert np.all(results["icarl"]["task_c"] > 0.8), results


def test_a_checkpoint_without_the_head_predicts_by_its_logits(tmp_path):
    network = build_network(4, hidden_units=6, seeds=[1, 2])
    images = np.random.default_rng(0).random((5, 28, 28, 1), np.float32)
    np.testing.assert_array_equal(network.scores(images), network.per_repetition(images))
    means = np.random.default_rng(1).normal(size=(2, 4, 6)).astype(np.float32)
    headed = with_nearest_mean(network, means, np.ones((2, 4), np.float32))
    assert "nearest_mean" in headed.get_config() and "nearest_mean" not in network.get_config()
    np.testing.assert_array_equal(headed.per_repetition(images), network.per_repetition(images))
    expected = nearest_mean_scores(network.features(images), tf.constant(means), tf.ones((2, 4)))
    np.testing.assert_array_equal(headed.scores(images), expected)
    save_model(network, tmp_path / "naive.keras")  # saved and loaded, each checkpoint keeps its rule
    save_model(headed, tmp_path / "icarl.keras")
    headless = load_model(tmp_path / "naive.keras", stage="finetune@naive")
    nearest = load_model(tmp_path / "icarl.keras", stage="finetune@icarl")
    assert "nearest_mean" not in headless.get_config() and "nearest_mean" in nearest.get_config()
    np.testing.assert_array_equal(headless.scores(images), network.per_repetition(images))
    np.testing.assert_allclose(nearest.scores(images), expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(nearest.scores(images), headless.scores(images))  # the two rules differ here
