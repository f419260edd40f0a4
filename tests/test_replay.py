import numpy as np
import pytest

from forgetting import data, metrics, training
from forgetting.errors import ForgettingError
from forgetting.model import build_mlp, save_model
from forgetting.strategies import Naive, Replay, TaskAState, build_strategy
from forgetting.strategies.replay import class_balanced_sample


@pytest.fixture
def task_a(make_mnist):
    return data.select_digits(make_mnist(600, seed=3), [0, 2, 4, 6, 8])


def test_buffer_is_class_balanced_and_drawn_from_the_split(task_a):
    buffer = class_balanced_sample(task_a, 23, seed=1)
    assert len(buffer) == 23
    assert np.bincount(buffer.label, minlength=5).tolist() == [5, 5, 5, 4, 4]
    # every buffered example is one of task A's, with its own label and digit, and none twice
    rows = {img.tobytes(): (lab, dig) for img, lab, dig in zip(task_a.image, task_a.label, task_a.digit, strict=True)}
    keys = [img.tobytes() for img in buffer.image]
    assert len(set(keys)) == 23
    for key, label, digit in zip(keys, buffer.label, buffer.digit, strict=True):
        assert rows[key] == (label, digit)
    assert set(np.unique(buffer.digit)) <= {0, 2, 4, 6, 8}


def test_buffer_is_seeded(task_a):
    first, again, other = (class_balanced_sample(task_a, 20, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)


def test_a_buffer_larger_than_a_class_is_a_clear_error(task_a):
    with pytest.raises(ForgettingError, match=r"replay\.buffer_size = 5000 asks for 1000 examples of label 0"):
        class_balanced_sample(task_a, 5000, seed=0)


def test_replay_reads_task_a_train_split_and_mixes_it_into_task_b(tmp_path, make_mnist, tiny_model):
    train, test = make_mnist(800, seed=1), make_mnist(100, seed=2)
    a = data.build_task(train, test, [0, 2, 4, 6, 8], 0.1, seed=0)
    b = data.build_task(train, test, [1, 3, 5, 7, 9], 0.1, seed=0)
    data.save_task(a, tmp_path / "task_a")
    save_model(tiny_model, tmp_path / "task_a.keras")
    state = TaskAState(tmp_path / "task_a.keras", tmp_path / "fisher.npz", tmp_path / "task_a")
    replay = build_strategy("replay", {"replay": {"buffer_size": 50}, "seed": 4}, state)
    assert isinstance(replay, Replay)
    train_validation = {img.tobytes() for img in a["train"].image}
    assert {img.tobytes() for img in replay.buffer.image} <= train_validation  # train split only
    mixed = replay.training_data(b["train"])
    assert len(mixed) == len(b["train"]) + 50
    assert np.array_equal(mixed.image[: len(b["train"])], b["train"].image)
    assert float(replay.penalty(tiny_model)) == 0.0


def _conflicting_tasks(count: int) -> tuple[data.Split, data.Split]:
    """Task A: a bright row block at position c means class c. Task B: the same blocks plus a marker strip,
    and block c means class (c + 1) % 5. A network can learn both (the marker tells them apart), but fitting B
    alone overwrites A: a small setting with real forgetting."""
    rng = np.random.default_rng(0)
    images = rng.random((2 * count, 28, 28, 1), dtype=np.float32) * 0.2
    classes = np.arange(2 * count) % 5
    for n, c in enumerate(classes):
        images[n, 5 * c : 5 * c + 4, 2:20] = 1.0
    images[count:, :, 24:27] = 1.0
    labels = np.concatenate([classes[:count], (classes[count:] + 1) % 5])
    digits = np.zeros(2 * count, np.uint8)
    return (
        data.Split(images[:count], labels[:count], digits[:count]),
        data.Split(images[count:], labels[count:], digits[count:]),
    )


def test_replay_keeps_more_of_task_a_than_naive():
    task_a, task_b = _conflicting_tasks(500)
    results = {}
    for strategy in (Naive(), Replay(class_balanced_sample(task_a, 100, seed=0))):
        training.seed_everything(0)
        net = build_mlp(hidden_units=32)
        training.fit(net, task_a, None, epochs=3, batch_size=32, learning_rate=3e-3, verbose=0)
        assert metrics.accuracy(net, task_a) > 0.95
        training.finetune(net, strategy, task_b, None, epochs=8, batch_size=32, learning_rate=3e-3, verbose=0)
        results[strategy.name] = (metrics.accuracy(net, task_a), metrics.accuracy(net, task_b))
    assert results["naive"][0] < 0.5, "the setting forgets"
    assert results["replay"][0] > results["naive"][0] + 0.3
    assert results["replay"][1] > 0.9
