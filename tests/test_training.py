import csv

import keras
import numpy as np

from forgetting import data, metrics, training
from forgetting.model import build_mlp, weights_by_path
from forgetting.strategies import L2


def _train(seed: int, split: data.Split) -> dict[str, np.ndarray]:
    training.seed_everything(seed)
    net = build_mlp(hidden_units=16)
    training.fit(net, split, None, epochs=2, batch_size=32, learning_rate=1e-3, verbose=0)
    return weights_by_path(net)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(mnist_like):
    first, second, other = _train(5, mnist_like), _train(5, mnist_like), _train(6, mnist_like)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_fit_learns_the_synthetic_task(make_mnist):
    train, test = make_mnist(600, seed=1), make_mnist(200, seed=2)
    training.seed_everything(0)
    net = build_mlp(hidden_units=32)
    before = metrics.accuracy(net, test)
    training.fit(net, train, None, epochs=5, batch_size=32, learning_rate=3e-3, verbose=0)
    assert metrics.accuracy(net, test) > max(0.9, before + 0.3)


def test_finetune_logs_penalty_and_per_epoch_task_accuracy(make_mnist, tmp_path):
    task_a = data.select_digits(make_mnist(500, seed=1), [0, 2, 4, 6, 8])
    task_b = data.select_digits(make_mnist(500, seed=2), [1, 3, 5, 7, 9])
    training.seed_everything(0)
    net = build_mlp(hidden_units=16)
    training.fit(net, task_a, None, epochs=3, batch_size=32, learning_rate=3e-3, verbose=0)
    accuracy_a = metrics.accuracy(net, task_a)
    log = training.TaskAccuracyLog({"task_a": task_a, "task_b": task_b}, tmp_path / "epochs.csv")
    history = training.finetune(
        net,
        L2(0.5, weights_by_path(net)),
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


def test_task_metrics_keys_and_forgetting():
    assert metrics.task_metrics(0.9, 0.5, None) == {
        "task_a_accuracy": 0.9,
        "task_b_accuracy": 0.5,
        "mean_accuracy": 0.7,
    }
    with_forgetting = metrics.task_metrics(0.25, 0.75, 0.98)
    assert with_forgetting["mean_accuracy"] == 0.5
    assert with_forgetting["task_a_forgetting"] == 0.73


def test_accuracy_uses_argmax_of_logits():
    class Fixed(keras.Model):
        def call(self, x):
            return keras.ops.one_hot(keras.ops.cast(keras.ops.sum(x, axis=(1, 2, 3)), "int32"), 5)

    images = np.zeros((4, 28, 28, 1), np.float32)
    images[:, 0, 0, 0] = [0, 1, 2, 3]
    split = data.Split(images, np.array([0, 1, 2, 0]), np.zeros(4, np.uint8))
    assert metrics.accuracy(Fixed(), split) == 0.75
