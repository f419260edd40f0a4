import csv

import keras
import numpy as np
import pytest
from conftest import EVEN_ODD, split_into_tasks

from forgetting import data, metrics, training
from forgetting.errors import ForgettingError
from forgetting.model import build_mlp, weights_by_path
from forgetting.scenarios import Scenario
from forgetting.strategies import L2, Naive

DOMAIN = Scenario("domain", EVEN_ODD)


def _train(seed: int, split: data.Split) -> dict[str, np.ndarray]:
    training.seed_everything(seed)
    net = build_mlp(5, hidden_units=16)
    training.fit(
        training.ContinualModel(net, DOMAIN), split, None, epochs=2, batch_size=32, learning_rate=1e-3, verbose=0
    )
    return weights_by_path(net)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(mnist_like):
    first, second, other = _train(5, mnist_like), _train(5, mnist_like), _train(6, mnist_like)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert any(not np.array_equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("kind", ["domain", "task", "class"])
def test_fit_learns_the_synthetic_tasks_in_every_scenario(make_mnist, kind):
    scenario = Scenario(kind, EVEN_ODD)
    train = data.Split.concat(*split_into_tasks(make_mnist(600, seed=1), scenario))
    test = data.Split.concat(*split_into_tasks(make_mnist(200, seed=2), scenario))
    training.seed_everything(0)
    net = build_mlp(scenario.num_outputs, hidden_units=32)
    before = metrics.accuracy(net, test, scenario)
    model = training.ContinualModel(net, scenario)
    training.fit(model, train, None, epochs=5, batch_size=32, learning_rate=3e-3, verbose=0)
    assert metrics.accuracy(net, test, scenario) > max(0.9, before + 0.3)


def test_task_scenario_accuracy_uses_only_the_examples_own_head():
    class Fixed(keras.Model):
        """Logits 0..9 for every image: head 0 is [0..4] (argmax 4), head 1 is [5..9] (argmax 4)."""

        def call(self, x):
            return keras.ops.tile(keras.ops.arange(10, dtype="float32")[None], (keras.ops.shape(x)[0], 1))

    scenario = Scenario("task", EVEN_ODD)
    images = np.zeros((4, 28, 28, 1), np.float32)
    split = data.Split(images, np.array([4, 4, 0, 3]), np.zeros(4, np.uint8), np.array([0, 1, 0, 1], np.int32))
    assert metrics.accuracy(Fixed(), split, scenario) == 0.5
    # the same logits without task identity: the argmax is output 9, which no label here names
    assert metrics.accuracy(Fixed(), split, Scenario("class", EVEN_ODD)) == 0.0


def test_a_sequence_logs_every_task_and_epoch(make_mnist, tmp_path):
    scenario = Scenario("domain", ((0, 1), (2, 3), (4, 5)))
    train = split_into_tasks(make_mnist(600, seed=1), scenario)
    tests = dict(zip(scenario.names, split_into_tasks(make_mnist(200, seed=2), scenario), strict=True))
    training.seed_everything(0)
    net = build_mlp(scenario.num_outputs, hidden_units=16)
    training.fit(training.ContinualModel(net, scenario), train[0], None, 2, 32, 3e-3, verbose=0)
    log = training.TaskAccuracyLog(tests, scenario, tmp_path / "epochs.csv", task="task_a")
    ended = []

    class Recorder(Naive):
        def end_task(self, network, task, train_split):
            ended.append((task, len(train_split)))

    training.train_sequence(
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
    assert matrix[2][2] == metrics.accuracy(net, tests["task_c"], scenario)


def test_finetune_logs_penalty_and_per_epoch_task_accuracy(make_mnist, tmp_path):
    task_a, task_b = split_into_tasks(make_mnist(1000, seed=1), DOMAIN)
    training.seed_everything(0)
    net = build_mlp(5, hidden_units=16)
    training.fit(training.ContinualModel(net, DOMAIN), task_a, None, 3, 32, 3e-3, verbose=0)
    accuracy_a = metrics.accuracy(net, task_a, DOMAIN)
    log = training.TaskAccuracyLog({"task_a": task_a, "task_b": task_b}, DOMAIN, tmp_path / "epochs.csv", "task_a")
    log.task = "task_b"
    history = training.finetune(
        net,
        L2(0.5, weights_by_path(net)),
        DOMAIN,
        task_b,
        task_b,
        epochs=3,
        batch_size=32,
        learning_rate=1e-3,
        callbacks=[log],
        verbose=0,
    )
    with open(tmp_path / "epochs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert {"task_a_accuracy", "task_b_accuracy", "loss", "penalty", "val_loss"} <= set(rows[0]) | set(rows[1])
    assert float(rows[0]["task_a_accuracy"]) == accuracy_a  # epoch 0: before fine-tuning
    assert rows[0]["penalty"] == ""  # nothing trained yet
    penalties = [float(r["penalty"]) for r in rows[1:]]
    assert all(p > 0 for p in penalties)
    assert history.history["penalty"] == keras.ops.convert_to_numpy(penalties).tolist()
    assert float(rows[-1]["task_b_accuracy"]) > float(rows[0]["task_b_accuracy"])


def test_task_metrics_keys_forgetting_matrix_and_bwt():
    assert metrics.task_metrics({"task_a": 0.9, "task_b": 0.5}, None, None) == {
        "task_a_accuracy": 0.9,
        "task_b_accuracy": 0.5,
        "mean_accuracy": 0.7,
    }
    matrix = [[0.98, 0.1, 0.0], [0.5, 0.99, 0.2], [0.25, 0.6, 0.97]]
    result = metrics.task_metrics({"task_a": 0.25, "task_b": 0.6, "task_c": 0.97}, 0.98, matrix)
    assert result["mean_accuracy"] == pytest.approx((0.25 + 0.6 + 0.97) / 3, abs=1e-6)
    assert result["task_a_forgetting"] == 0.73
    assert result["bwt"] == pytest.approx(((0.25 - 0.98) + (0.6 - 0.99)) / 2, abs=1e-6)
    assert "accuracy_matrix" not in result  # its own file: matrix_records
    only_a = metrics.task_metrics({"task_a": 0.98, "task_b": 0.1}, None, [[0.98, 0.1]])
    assert set(only_a) == {"task_a_accuracy", "task_b_accuracy", "mean_accuracy"}


def test_matrix_records_are_the_last_row_of_each_stretch():
    def row(task, a, b):
        return {"task": task, "task_a_accuracy": str(a), "task_b_accuracy": str(b)}

    names = ["task_a", "task_b"]
    rows = [row("task_a", 0.9, 0.1), row("task_b", 0.6, 0.8), row("task_b", 0.5, 0.95)]
    assert metrics.matrix_records(rows, names) == [
        {"trained": "task_a", "task": "task_a", "accuracy": 0.9},
        {"trained": "task_a", "task": "task_b", "accuracy": 0.1},
        {"trained": "task_b", "task": "task_a", "accuracy": 0.5},
        {"trained": "task_b", "task": "task_b", "accuracy": 0.95},
    ]
    assert [r["trained"] for r in metrics.matrix_records([row("joint", 0.9, 0.8)], names)] == ["joint", "joint"]


def test_accuracy_matrix_needs_a_log_that_follows_the_sequence():
    def row(task, a, b):
        return {"task": task, "task_a_accuracy": str(a), "task_b_accuracy": str(b)}

    names = ["task_a", "task_b"]
    rows = [row("task_a", 0.9, 0.1), row("task_b", 0.6, 0.8), row("task_b", 0.5, 0.95)]
    assert metrics.accuracy_matrix(rows, names) == [[0.9, 0.1], [0.5, 0.95]]
    assert metrics.accuracy_matrix([row("joint", 0.9, 0.9)], names) is None
    assert metrics.accuracy_matrix([row("task_b", 0.9, 0.9)], names) is None


def test_accuracy_uses_argmax_of_logits():
    class Fixed(keras.Model):
        def call(self, x):
            return keras.ops.one_hot(keras.ops.cast(keras.ops.sum(x, axis=(1, 2, 3)), "int32"), 5)

    images = np.zeros((4, 28, 28, 1), np.float32)
    images[:, 0, 0, 0] = [0, 1, 2, 3]
    split = data.Split(images, np.array([0, 1, 2, 0]), np.zeros(4, np.uint8), np.zeros(4, np.int32))
    assert metrics.accuracy(Fixed(), split, DOMAIN) == 0.75


def test_a_loss_that_becomes_nan_stops_training_with_one_line(mnist_like):
    """An L2 strength so large that the penalty overflows: the stage must stop, naming the epoch, the task and
    the params to lower, instead of training on NaN and writing chance-level metrics."""
    training.seed_everything(0)
    net = build_mlp(5, hidden_units=8)
    strategy = L2(1e38, {k: v + 1e3 for k, v in weights_by_path(net).items()})
    with pytest.raises(ForgettingError) as error:
        training.finetune(
            net, strategy, DOMAIN, mnist_like, None, "task_b", epochs=3, batch_size=32, learning_rate=1e-3, verbose=0
        )
    message = str(error.value)
    assert message.startswith("the loss became inf in epoch 1 of training on task_b: ") or message.startswith(
        "the loss became nan in epoch 1 of training on task_b: "
    ), message
    assert message.endswith("lower finetune.learning_rate or l2.weight in params.yaml")


def test_training_a_new_model_blames_its_learning_rate(mnist_like):
    params = {"seed": 0, "model": {"hidden_units": 8, "dropout": 0.0}, "train": {"batch_size": 32}}
    params["train"]["learning_rate"] = 1e30
    with pytest.raises(ForgettingError, match=r"training on task_a: lower train\.learning_rate in params\.yaml"):
        training.train_new_model(params, DOMAIN, mnist_like, None, epochs=2)
