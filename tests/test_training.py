"""Training every repetition at once: each repetition's own data order, the same training as a run alone, the
per-epoch logs (means, confidence intervals and every repetition's accuracies), and the NaN guard."""

import csv
import gc

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, split_into_tasks
from scipy import stats

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.evaluation import metrics
from forgetting.nn import adam
from forgetting.nn.model import INPUT_DEFAULTS, build_network, weights_by_path
from forgetting.strategies import L2, Naive
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)


def _params(seed: int, seeds: int, dropout: float = 0.0, hidden_units: int = 16) -> dict:
    return {
        "seed": seed,
        "seeds": seeds,
        "model": {"hidden_units": hidden_units, "dropout": dropout, "init": "glorot", **INPUT_DEFAULTS},
        "train": {"batch_size": 32, "learning_rate": 1e-3, "optimizer": "adam"},
    }


def _train_new(seed: int, seeds: int, split: mnist.Split, dropout: float = 0.0):
    network, recorder = loop.train_new_model(
        _params(seed, seeds, dropout), DOMAIN, split, None, epochs=2, path_integral=True
    )
    return network, weights_by_path(network), recorder.result()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_repetition_trains_exactly_as_it_would_alone(mnist_like, dropout):
    """Seeds 5, 6, 7 trained together: repetition 1 (seed 6) ends bit-identical to seed 6 trained alone, weights
    and SI path integral; the repetitions themselves differ (their own initialisation and data order)."""
    stacked, weights, integral = _train_new(5, 3, mnist_like, dropout)
    alone, alone_weights, alone_integral = _train_new(6, 1, mnist_like, dropout)
    assert stacked.seeds == [5, 6, 7] and alone.seeds == [6]
    assert weights.keys() == alone_weights.keys() == integral.keys()
    for key in weights:
        assert weights[key].shape == (3, *alone_weights[key].shape[1:])
        np.testing.assert_array_equal(weights[key][1], alone_weights[key][0])
        np.testing.assert_array_equal(integral[key][1], alone_integral[key][0])
        for a, b in ((0, 1), (0, 2), (1, 2)):
            assert not np.array_equal(weights[key][a], weights[key][b]), (key, a, b)
    # and seed 6 alone again gives the same bits (the run is reproducible)
    _, again, _ = _train_new(6, 1, mnist_like, dropout)
    for key in again:
        np.testing.assert_array_equal(again[key], alone_weights[key])


def test_each_repetition_visits_the_examples_in_its_own_order(mnist_like):
    n = len(mnist_like)
    data_set = loop.TrainingSet(mnist_like, [5, 6, 7], salt=0)
    assert len(data_set) == n and data_set.shared
    orders = data_set.permutations(0)
    assert orders.shape == (3, n)
    for row in orders:  # a permutation of the examples
        np.testing.assert_array_equal(np.sort(row), np.arange(n))
    assert len({row.tobytes() for row in orders}) == 3  # one order per repetition
    for s, seed in enumerate([5, 6, 7]):  # drawn from (seed, salt, epoch)
        np.testing.assert_array_equal(orders[s], np.random.default_rng([seed, 0, 0]).permutation(n))
    assert not np.array_equal(data_set.permutations(1), orders)  # a new order every epoch
    np.testing.assert_array_equal(loop.TrainingSet(mnist_like, [5, 6, 7], 0).permutations(0), orders)
    # a seed's order is the same whatever is stacked beside it; another salt (task) draws others
    np.testing.assert_array_equal(loop.TrainingSet(mnist_like, [6], 0).permutations(0)[0], orders[1])
    np.testing.assert_array_equal(
        loop.TrainingSet(mnist_like, [9, 6], 0).permutations(3)[1], data_set.permutations(3)[1]
    )
    assert not np.array_equal(loop.TrainingSet(mnist_like, [5, 6, 7], salt=1).permutations(0), orders)


def test_a_batch_gathers_each_repetitions_examples_in_its_order(mnist_like):
    data_set = loop.TrainingSet(mnist_like, [5, 6], salt=2)
    data_set.shuffle(4)
    order = data_set.permutations(4)
    np.testing.assert_array_equal(data_set.order.numpy(), order)
    positions = np.array([0, 1, 2, 3, 390], np.int32)
    x, y = data_set.batch(tf.constant(positions))
    assert tuple(x["image"].shape) == (2, 5, 28, 28, 1) and x["image"].dtype == tf.float32
    for s in range(2):
        picked = order[s, positions]
        np.testing.assert_array_equal(x["image"][s].numpy(), mnist_like.image[picked])  # uint8 / 255: exact
        np.testing.assert_array_equal(y[s].numpy(), mnist_like.label[picked])
        np.testing.assert_array_equal(x["task"][s].numpy(), mnist_like.task[picked])


def test_a_repetition_can_have_its_own_examples(make_mnist):
    own = [make_mnist(50, seed=1), make_mnist(50, seed=2)]
    data_set = loop.TrainingSet(iter(own), [5, 6], salt=1)  # an iterable, as replay's training data is
    assert not data_set.shared
    data_set.shuffle(0)
    order = data_set.permutations(0)
    x, y = data_set.batch(tf.range(50))
    for s in range(2):
        np.testing.assert_array_equal(x["image"][s].numpy(), own[s].image[order[s]])
        np.testing.assert_array_equal(y[s].numpy(), own[s].label[order[s]])
    with pytest.raises(ValueError, match="lengths"):
        loop.TrainingSet([make_mnist(50), make_mnist(40)], [5, 6], salt=1)
    with pytest.raises(ValueError, match="for 3 repetitions"):
        loop.TrainingSet(own, [5, 6, 7], salt=1)


def test_fit_draws_a_new_order_every_epoch(mnist_like):
    network = build_network(5, hidden_units=8, seeds=(3, 4))
    data_set = loop.TrainingSet(mnist_like, network.seeds, salt=0)
    model = loop.ContinualModel(network, DOMAIN, data_set)
    loop.fit(model, None, epochs=3, batch_size=64, learning_rate=1e-3, verbose=0)
    np.testing.assert_array_equal(data_set.order.numpy(), data_set.permutations(2))  # the last epoch's


def test_fit_lets_its_examples_go(mnist_like):
    """After ``fit`` the training set holds no examples, whatever still holds the model (its History), so that a
    sequence's training sets do not pile up (replay's grow with every task)."""
    network = build_network(5, hidden_units=8, seeds=(3, 4))
    data_set = loop.TrainingSet(mnist_like, network.seeds, salt=0)
    assert data_set.images.numpy().shape == (len(mnist_like), *mnist_like.image.shape[1:])
    model = loop.ContinualModel(network, DOMAIN, data_set)
    loop.fit(model, None, epochs=1, batch_size=64, learning_rate=1e-3, verbose=0)
    assert data_set.images.numpy().shape == (0, *mnist_like.image.shape[1:])


def test_nothing_keeps_a_trained_models_traced_step(mnist_like):
    """Once a trained model is gone, so is its traced step and what the step captured: a tuning worker trains one
    model after another, a task sequence one per task (``forget_custom_gradients``)."""

    def traced_graphs() -> int:
        gc.collect()
        return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())

    def train() -> None:
        network = build_network(5, hidden_units=8, seeds=(3, 4))
        model = loop.ContinualModel(network, DOMAIN, loop.TrainingSet(mnist_like, network.seeds, salt=0))
        loop.fit(model, None, epochs=1, batch_size=64, learning_rate=1e-3, verbose=0)

    train()
    before = traced_graphs()
    train()
    assert traced_graphs() == before


def test_iterations_read_a_stream_of_passes_cut_to_whole_batches(mnist_like):
    """``iterations`` batches per epoch: each repetition reads its passes k = 0, 1, ... (the permutations an
    epoch-counted run draws for its epochs k), each cut to whole batches, one after another; the next epoch carries
    on where this one stopped."""
    n, batch = len(mnist_like), 64
    whole = n // batch * batch
    assert whole < n  # the last partial batch of each pass is dropped
    by_epoch = loop.TrainingSet(mnist_like, [5, 6], salt=3)
    data_set = loop.TrainingSet(mnist_like, [5, 6], salt=3, iterations=20, batch_size=batch)
    assert data_set.positions == 20 * batch and len(data_set) == n
    stream = np.concatenate([by_epoch.permutations(k)[:, :whole] for k in range(7)], axis=1)
    np.testing.assert_array_equal(data_set.permutations(0), stream[:, : 20 * batch])
    np.testing.assert_array_equal(data_set.permutations(1), stream[:, 20 * batch : 40 * batch])
    np.testing.assert_array_equal(  # a seed's stream is its own, whatever is stacked beside it
        loop.TrainingSet(mnist_like, [6], 3, 20, batch).permutations(1)[0], stream[1, 20 * batch : 40 * batch]
    )
    with pytest.raises(ForgettingError, match="3 iterations of batch 64 from 10 examples: a batch needs more"):
        loop.TrainingSet(mnist_like.subset(np.arange(10)), [5], 0, iterations=3, batch_size=batch)


def test_a_training_by_iterations_takes_exactly_that_many_steps(mnist_like):
    """``finetune.iterations`` (and ``train.iterations_a``, ``iterations_joint``): one epoch of exactly that many
    optimiser steps, each on a full batch; null keeps the epochs."""
    params = {"train": {"epochs_a": 4, "iterations_a": 7, "epochs_joint": 2, "iterations_joint": None}}
    params["finetune"] = {"epochs": 3, "iterations": 25}
    assert loop.schedule(params, "a") == (1, 7)
    assert loop.schedule(params, "joint") == (2, None)
    assert loop.schedule(params, "finetune") == (1, 25)
    network = build_network(5, hidden_units=8, seeds=(3, 4))
    model = loop.ContinualModel(network, DOMAIN, loop.TrainingSet(mnist_like, network.seeds, 0, 25, 32))
    history = loop.fit(model, None, epochs=1, batch_size=32, learning_rate=1e-3, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 25 and len(history.history["loss"]) == 1
    stacked, alone = _train_by_iterations([5, 6], mnist_like), _train_by_iterations([6], mnist_like)
    for key, value in stacked.items():  # and a repetition still trains exactly as it would alone
        np.testing.assert_array_equal(value[1], alone[key][0])


def _train_by_iterations(seeds: list[int], split: mnist.Split) -> dict:
    network, _ = loop.train_new_model(_params(seeds[0], len(seeds)), DOMAIN, split, None, 1, iterations=30)
    return weights_by_path(network)


@pytest.mark.parametrize("kind", ["domain", "task", "class"])
def test_fit_learns_the_synthetic_tasks_in_every_scenario(make_mnist, kind):
    scenario = Scenario(kind, EVEN_ODD)
    train = mnist.Split.concat(*split_into_tasks(make_mnist(600, seed=1), scenario))
    test = mnist.Split.concat(*split_into_tasks(make_mnist(200, seed=2), scenario))
    loop.seed_everything(0)
    net = build_network(scenario.num_outputs, hidden_units=32, seeds=(0, 1))
    before = metrics.accuracy(net, test, scenario)
    model = loop.ContinualModel(net, scenario, loop.TrainingSet(train, net.seeds, salt=0))
    loop.fit(model, None, epochs=5, batch_size=32, learning_rate=3e-3, verbose=0)
    after = metrics.accuracy(net, test, scenario)
    assert after.shape == (2,)
    assert np.all(after > np.maximum(0.9, before + 0.3)), (before, after)


def test_task_accuracy_log_writes_means_ci95_and_every_repetition(make_mnist, tmp_path):
    """Repetition s made to answer class s whatever the image: its accuracy on a split is the share of labels s,
    so both logs are checked against numpy and scipy, not against the model."""
    tasks = split_into_tasks(make_mnist(400, seed=3), DOMAIN)
    # unbalanced classes (6, 10, 14, ... examples of label 0, 1, 2, ...), so that the repetitions' accuracies differ
    tests = {
        name: split.subset(np.concatenate([np.flatnonzero(split.label == c)[: 6 + 4 * c + t] for c in range(5)]))
        for t, (name, split) in enumerate(zip(DOMAIN.names, tasks, strict=True))
    }
    net = build_network(5, hidden_units=8, seeds=(5, 6, 7))
    log = loop.TaskAccuracyLog(tests, DOMAIN, tmp_path / "epochs.csv", tmp_path / "reps.csv", "task_a", net)
    log.on_train_begin()  # epoch 0
    bias = np.zeros((3, 5), np.float32)
    bias[[0, 1, 2], [0, 1, 2]] = 1e4
    net.logits.bias.assign(bias)
    log.task = "task_b"
    logs = {"loss": 1.25, "penalty": 0.5}
    log.on_epoch_end(0, logs)
    expected = {name: np.array([np.mean(split.label == s) for s in range(3)]) for name, split in tests.items()}
    with open(tmp_path / "epochs.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == [
        "epoch",
        "task",
        "task_a_accuracy",
        "task_a_accuracy_ci95",
        "task_b_accuracy",
        "task_b_accuracy_ci95",
        "loss",
        "penalty",
    ]
    assert [(r["epoch"], r["task"]) for r in rows] == [("0", "task_a"), ("1", "task_b")]
    assert rows[0]["loss"] == "" and float(rows[1]["loss"]) == 1.25 and float(rows[1]["penalty"]) == 0.5
    for name, values in expected.items():
        assert len(np.unique(values)) == 3  # the interval is not trivially 0
        mean = np.mean(values)
        low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(values))
        assert float(rows[1][f"{name}_accuracy"]) == pytest.approx(mean, abs=1e-6)
        assert float(rows[1][f"{name}_accuracy_ci95"]) == pytest.approx((high - low) / 2, abs=1e-6)
        assert logs[f"{name}_accuracy"] == pytest.approx(mean, abs=1e-6)  # later callbacks see it too
        before = metrics.accuracy(build_network(5, hidden_units=8, seeds=(5, 6, 7)), tests[name], DOMAIN)
        assert float(rows[0][f"{name}_accuracy"]) == pytest.approx(np.mean(before), abs=1e-6)
    with open(tmp_path / "reps.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        repetitions = list(reader)
    assert reader.fieldnames == ["epoch", "task", "seed", "task_a_accuracy", "task_b_accuracy"]
    assert [(r["epoch"], r["task"], r["seed"]) for r in repetitions] == [
        ("0", "task_a", "5"),
        ("0", "task_a", "6"),
        ("0", "task_a", "7"),
        ("1", "task_b", "5"),
        ("1", "task_b", "6"),
        ("1", "task_b", "7"),
    ]
    for name, values in expected.items():
        got = [float(r[f"{name}_accuracy"]) for r in repetitions[3:]]
        np.testing.assert_allclose(got, values, atol=1e-6)
        assert np.mean(got) == pytest.approx(float(rows[1][f"{name}_accuracy"]), abs=2e-6)


def test_a_sequence_logs_every_task_and_epoch(make_mnist, tmp_path):
    scenario = Scenario("domain", ((0, 1), (2, 3), (4, 5)))
    train = split_into_tasks(make_mnist(600, seed=1), scenario)
    tests = dict(zip(scenario.names, split_into_tasks(make_mnist(200, seed=2), scenario), strict=True))
    loop.seed_everything(0)
    net = build_network(scenario.num_outputs, hidden_units=16, seeds=(0, 1))
    model = loop.ContinualModel(net, scenario, loop.TrainingSet(train[0], net.seeds, salt=0))
    loop.fit(model, None, 2, 32, 3e-3, verbose=0)
    log = loop.TaskAccuracyLog(tests, scenario, tmp_path / "epochs.csv", tmp_path / "reps.csv", task="task_a")
    ended = []

    class Recorder(Naive):
        def end_task(self, network, task, train_split):
            ended.append((task, len(train_split)))

    loop.train_sequence(
        net, Recorder(), scenario, train, train, log, epochs=2, batch_size=32, learning_rate=1e-3, verbose=0
    )
    rows = metrics.read_log(tmp_path / "epochs.csv")
    assert [(int(r["epoch"]), r["task"]) for r in rows] == [
        (0, "task_a"),
        (1, "task_b"),
        (2, "task_b"),
        (3, "task_c"),
        (4, "task_c"),
    ]
    assert ended == [(1, len(train[1]))]  # consolidated after task b, not after the last task
    matrix = metrics.accuracy_matrix(rows, scenario.names)
    assert np.array(matrix).shape == (3, 3)
    assert matrix[2] == [float(rows[-1][f"{n}_accuracy"]) for n in scenario.names]
    final = {name: metrics.accuracy(net, split, scenario) for name, split in tests.items()}
    assert matrix[2][2] == round(float(np.mean(final["task_c"])), 6)
    # the per-repetition log follows the same epochs, one row per seed, and gives each repetition's matrix
    repetitions = metrics.read_log(tmp_path / "reps.csv")
    assert [(int(r["epoch"]), r["task"], int(r["seed"])) for r in repetitions] == [
        (e, t, s) for e, t in [(int(r["epoch"]), r["task"]) for r in rows] for s in (0, 1)
    ]
    for s, (seed, own) in enumerate(metrics.by_seed(repetitions).items()):
        assert seed == s
        own_matrix = metrics.accuracy_matrix(own, scenario.names)
        assert own_matrix[2] == [round(float(final[n][s]), 6) for n in scenario.names]
    means = np.mean([metrics.accuracy_matrix(own, scenario.names) for own in metrics.by_seed(repetitions).values()], 0)
    np.testing.assert_allclose(means, matrix, atol=1e-6)


def test_finetune_logs_penalty_and_per_epoch_task_accuracy(make_mnist, tmp_path):
    task_a, task_b = split_into_tasks(make_mnist(1000, seed=1), DOMAIN)
    loop.seed_everything(0)
    net = build_network(5, hidden_units=16, seeds=(0, 1))
    loop.fit(loop.ContinualModel(net, DOMAIN, loop.TrainingSet(task_a, net.seeds, 0)), None, 3, 32, 3e-3, verbose=0)
    accuracy_a = metrics.accuracy(net, task_a, DOMAIN)
    tests = {"task_a": task_a, "task_b": task_b}
    log = loop.TaskAccuracyLog(tests, DOMAIN, tmp_path / "epochs.csv", tmp_path / "reps.csv", "task_a")
    log.task = "task_b"
    history = loop.finetune(
        net,
        L2(0.5, weights_by_path(net)),
        DOMAIN,
        task_b,
        task_b,
        1,
        epochs=3,
        batch_size=32,
        learning_rate=1e-3,
        callbacks=[log],
        verbose=0,
    )
    with open(tmp_path / "epochs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert {"task_a_accuracy", "task_a_accuracy_ci95", "task_b_accuracy", "loss", "penalty", "val_loss"} <= set(rows[1])
    assert float(rows[0]["task_a_accuracy"]) == round(float(np.mean(accuracy_a)), 6)  # epoch 0: before fine-tuning
    assert rows[0]["penalty"] == ""  # nothing trained yet
    penalties = [float(r["penalty"]) for r in rows[1:]]
    assert all(p > 0 for p in penalties)
    np.testing.assert_allclose(history.history["penalty"], penalties, atol=1e-6)
    assert float(rows[-1]["task_b_accuracy"]) > float(rows[0]["task_b_accuracy"])


def test_a_loss_that_becomes_nan_stops_training_with_one_line(mnist_like):
    """An L2 strength so large that the penalty overflows: the stage must stop, naming the epoch, the task and
    the params to lower, instead of training on NaN and writing chance-level metrics."""
    loop.seed_everything(0)
    net = build_network(5, hidden_units=8, seeds=(0, 1))
    strategy = L2(1e38, {k: v + 1e3 for k, v in weights_by_path(net).items()})
    with pytest.raises(ForgettingError) as error:
        loop.finetune(
            net, strategy, DOMAIN, mnist_like, None, 1, epochs=3, batch_size=32, learning_rate=1e-3, verbose=0
        )
    message = str(error.value)
    assert message.startswith("the loss became inf in epoch 1 of training on task_b: ") or message.startswith(
        "the loss became nan in epoch 1 of training on task_b: "
    ), message
    assert message.endswith("lower finetune.learning_rate or l2.weight in params.yaml")


def test_training_a_new_model_blames_its_learning_rate(mnist_like):
    params = _params(0, 2, hidden_units=8)
    params["train"]["learning_rate"] = 1e30
    with pytest.raises(ForgettingError, match=r"training on task_a: lower train\.learning_rate in params\.yaml"):
        loop.train_new_model(params, DOMAIN, mnist_like, None, epochs=2)


def test_logged_loss_and_accuracy_are_means_over_repetitions(mnist_like):
    """``loss`` is the mean over repetitions of each one's mean cross-entropy (+ penalty); validation shares its
    examples with every repetition."""
    net = build_network(5, hidden_units=8, seeds=(3, 4, 5))
    model = loop.ContinualModel(net, DOMAIN, loop.TrainingSet(mnist_like, net.seeds, salt=0))
    model.compile(optimizer=keras.optimizers.Adam(0.0))
    result = model.evaluate(
        mnist_like.inputs(), mnist_like.label, batch_size=len(mnist_like), verbose=0, return_dict=True
    )
    logits = net.per_repetition(mnist_like.image).numpy().astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_p, np.broadcast_to(mnist_like.label, (3, len(mnist_like)))[..., None], -1)
    assert result["loss"] == pytest.approx(cross_entropy.mean(axis=(1, 2)).mean(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(metrics.accuracy(net, mnist_like, DOMAIN)), abs=1e-6)


def _carried_sequence(make_mnist, tmp_path, carry: str, kind: str = "adam"):
    """Seeds (0, 1) trained on task a (2 epochs), then on tasks b and c (1 epoch each) with ``kind`` at 3e-3: one
    optimiser object over the whole sequence (``one``), the sequence going on from task a's saved state
    (``saved``), or a new optimiser per task (``new``). The network's weights and the step count at the end."""
    scenario = Scenario("domain", ((0, 1), (2, 3), (4, 5)))
    train = split_into_tasks(make_mnist(600, seed=1), scenario)
    loop.seed_everything(0)
    net = build_network(scenario.num_outputs, hidden_units=16, seeds=(0, 1))
    model = loop.ContinualModel(net, scenario, loop.TrainingSet(train[0], net.seeds, salt=0))
    optimizer = loop.fit(model, None, 2, 32, 3e-3, verbose=0, optimizer_kind=kind).model.optimizer
    adam.save(tmp_path / "adam.npz", optimizer)
    settings = {"batch_size": 32, "learning_rate": 3e-3, "verbose": 0, "optimizer_kind": kind}
    if carry == "one":
        for t in (1, 2):
            loop.finetune(net, Naive(), scenario, train[t], None, t, epochs=1, optimizer=optimizer, **settings)
        return weights_by_path(net), int(optimizer.iterations.numpy())
    state = adam.load(tmp_path / "adam.npz") if carry == "saved" else None
    loop.train_sequence(net, Naive(), scenario, train, [None] * 3, None, 1, optimizer_state=state, **settings)
    return weights_by_path(net), None


def test_a_carried_optimizer_trains_the_sequence_as_one_adam_would(make_mnist, tmp_path):
    """finetune.carry_optimizer: task b goes on from task a's Adam as saved (step count and moments) and task c
    from task b's, bit for bit as one Adam object trained over the three tasks; a new Adam per task (the default)
    ends elsewhere."""
    one, steps = _carried_sequence(make_mnist, tmp_path / "one", "one")
    saved, _ = _carried_sequence(make_mnist, tmp_path / "saved", "saved")
    new, _ = _carried_sequence(make_mnist, tmp_path / "new", "new")
    state = adam.load(tmp_path / "saved" / "adam.npz")
    assert 0 < int(state["iterations"]) < steps  # task a's steps, then b's and c's on top
    assert state["momentum/mlp/hidden/kernel"].shape == (2, 784, 16) and np.any(state["velocity/mlp/logits/bias"])
    for key in one:
        np.testing.assert_array_equal(saved[key], one[key])
    assert any(not np.array_equal(new[key], one[key]) for key in one)


def test_sgd_steps_by_the_gradient_and_carries_its_step_count_alone(make_mnist, tmp_path, mnist_like):
    """train.optimizer / finetune.optimizer sgd: one step moves every weight by -learning_rate x its gradient (plain
    SGD, no momentum: Hsu et al.'s); its saved state is the step count alone, and a sequence going on from it ends
    bit for bit where one SGD object over the sequence does (nothing else is carried, so a new SGD per task too)."""
    net = build_network(DOMAIN.num_outputs, hidden_units=8, seeds=(3, 4))
    before = [v.numpy() for v in net.trainable_variables]
    data = loop.TrainingSet(mnist_like, net.seeds, salt=0, iterations=1, batch_size=len(mnist_like))
    model = loop.ContinualModel(net, DOMAIN, data)
    with tf.GradientTape() as tape:  # the one batch is the whole split, whatever its order: the step's gradient
        logits = net.per_repetition(mnist_like.image, training=True)
        labels = np.broadcast_to(mnist_like.label, (2, len(mnist_like)))
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_sum(tf.reduce_mean(cross_entropy, axis=-1))
    gradients = tape.gradient(loss, net.trainable_variables)
    optimizer = loop.fit(model, None, 1, len(mnist_like), 0.5, verbose=0, optimizer_kind="sgd").model.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0
    for variable, start, gradient in zip(net.trainable_variables, before, gradients, strict=True):
        np.testing.assert_allclose(variable.numpy(), start - 0.5 * gradient.numpy(), rtol=1e-5, atol=1e-6)
    one, steps = _carried_sequence(make_mnist, tmp_path / "one", "one", "sgd")
    saved, _ = _carried_sequence(make_mnist, tmp_path / "saved", "saved", "sgd")
    new, _ = _carried_sequence(make_mnist, tmp_path / "new", "new", "sgd")
    state = adam.load(tmp_path / "saved" / "adam.npz")
    assert list(state) == ["iterations"] and 0 < int(state["iterations"]) < steps
    for key in one:
        np.testing.assert_array_equal(saved[key], one[key])
        np.testing.assert_array_equal(new[key], one[key])


def test_a_missing_optimizer_state_names_its_stage(tmp_path):
    with pytest.raises(ForgettingError, match=r"optimiser state file .*adam.npz is missing: .*train_a"):
        adam.load(tmp_path / "adam.npz")
