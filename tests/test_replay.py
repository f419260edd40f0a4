import numpy as np
import pytest
from conftest import EVEN_ODD, FIVE_PAIRS, conflicting_tasks, split_into_tasks

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError
from forgetting.evaluation import metrics
from forgetting.nn.model import build_network, save_model
from forgetting.strategies import Naive, Replay, TaskAState, build_strategy
from forgetting.strategies.replay import class_balanced_sample, per_task_sample, shifted, task_rng
from forgetting.strategies.replay_equal_steps import EqualStepsReplay
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)


@pytest.fixture
def task_a(make_mnist):
    return split_into_tasks(make_mnist(600, seed=3), DOMAIN)[0]


def test_buffer_is_class_balanced_and_drawn_from_the_split(task_a):
    buffer = class_balanced_sample(task_a, 23, seed=1)
    assert len(buffer) == 23
    assert [int((buffer.digit == d).sum()) for d in (0, 2, 4, 6, 8)] == [5, 5, 5, 4, 4]
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
    with pytest.raises(ForgettingError, match=r"replay\.buffer_size = 5000 asks for 1000 examples of digit 0"):
        class_balanced_sample(task_a, 5000, seed=0)


def test_replay_reads_task_a_train_split_and_mixes_it_into_task_b(tmp_path, make_mnist, tiny_model):
    train, test = make_mnist(800, seed=1), make_mnist(100, seed=2)
    a = mnist.build_task(train, test, [0, 2, 4, 6, 8], 0, 0.1, seed=0)
    b = mnist.build_task(train, test, [1, 3, 5, 7, 9], 1, 0.1, seed=0)
    mnist.save_task(a, tmp_path / "data" / "task_a")
    save_model(tiny_model, tmp_path / "task_a.keras")
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras", data_root=tmp_path / "data")
    own = {"buffer_size": 50, "shift": 0, "memory": "class_balanced", "mix": "per_task"}
    replay = build_strategy("replay", {"replay": own, "seed": 4, "seeds": 3}, state)
    assert isinstance(replay, Replay)
    assert replay.seeds == [4, 5, 6]  # one buffer per repetition, each drawn from its own seed
    assert len(replay.buffers) == 3
    task_a_train = {img.tobytes() for img in a["train"].image}
    task_a_validation = {img.tobytes() for img in a["validation"].image}
    for buffer, seed in zip(replay.buffers, replay.seeds, strict=True):
        expected = class_balanced_sample(a["train"].relabel(DOMAIN), 50, seed)
        for field in ("image", "label", "digit", "task"):
            np.testing.assert_array_equal(getattr(buffer, field), getattr(expected, field))
        assert {img.tobytes() for img in buffer.image} <= task_a_train
        assert not {img.tobytes() for img in buffer.image} & task_a_validation
        assert buffer.task.tolist() == [0] * 50
        np.testing.assert_array_equal(buffer.label, buffer.digit // 2)
    assert not np.array_equal(replay.buffers[0].image, replay.buffers[1].image)
    b_train = b["train"].relabel(DOMAIN)
    mixed = list(replay.training_data(b_train))
    copies = round(len(b_train) / 50)
    assert len(mixed) == 3
    for own, buffer in zip(mixed, replay.buffers, strict=True):
        assert len(own) == len(b_train) + 50 * copies  # the buffer weighs as much as task B
        assert own.image.dtype == np.uint8  # the pixels, as TrainingSet keeps them: no float copies
        assert np.array_equal(own.image[: len(b_train)], mnist.as_uint8(b_train.image))
        np.testing.assert_array_equal(
            own.image[len(b_train) :], np.tile(mnist.as_uint8(buffer.image), (copies, 1, 1, 1))
        )
    assert float(replay.penalty(tiny_model)) == 0.0


def _two_buffers(task: mnist.Split, size: int, seeds=(0, 1)) -> Replay:
    return Replay([class_balanced_sample(task, size, seed=s) for s in seeds], seeds=list(seeds))


def test_a_finished_task_enters_each_buffer_within_its_size(make_mnist):
    scenario = Scenario("domain", FIVE_PAIRS)
    tasks = split_into_tasks(make_mnist(1000, seed=1), scenario)
    replay = _two_buffers(tasks[0], 40)
    old = list(replay.buffers)
    replay.end_task(None, 1, tasks[1])
    assert replay.tasks_done == 2 and len(replay.buffers) == 2
    for s, (buffer, before) in enumerate(zip(replay.buffers, old, strict=True)):
        assert len(buffer) == 40
        assert [int((buffer.digit == d).sum()) for d in range(4)] == [10, 10, 10, 10]
        kept = {img.tobytes() for img in before.image}
        assert {img.tobytes() for img in buffer.image[buffer.task == 0]} <= kept  # nothing new of task a
        # drawn from its own old buffer and the task, with its own seed + the task number
        expected = class_balanced_sample(mnist.Split.concat(before, tasks[1]), 40, seed=s + 1)
        np.testing.assert_array_equal(buffer.image, expected.image)
    assert not np.array_equal(replay.buffers[0].image, replay.buffers[1].image)
    for own in replay.training_data(tasks[2]):
        assert len(own) == len(tasks[2]) + 40 * round(2 * len(tasks[2]) / 40)  # two finished tasks: twice the weight


def test_each_repetitions_data_is_the_same_whatever_is_stacked_beside_it(make_mnist):
    """Repetition s of a replay with seeds (5, 6) trains on exactly what a replay with seeds[s] alone trains on,
    before and after a task enters the buffers."""
    task_a, task_b = split_into_tasks(make_mnist(600, seed=3), DOMAIN)
    both = Replay([class_balanced_sample(task_a, 30, seed=s) for s in (5, 6)], seeds=[5, 6], shift=2)
    alone = [Replay([class_balanced_sample(task_a, 30, seed=s)], seeds=[s], shift=2) for s in (5, 6)]
    for step in range(2):
        stacked = list(both.training_data(task_b))
        assert len(stacked) == 2 and not np.array_equal(stacked[0].image, stacked[1].image)
        for s, single in enumerate(alone):
            (own,) = single.training_data(task_b)
            for field in ("image", "label", "digit", "task"):
                np.testing.assert_array_equal(getattr(stacked[s], field), getattr(own, field))
        if step == 0:
            both.end_task(None, 1, task_b)
            for single in alone:
                single.end_task(None, 1, task_b)


def test_per_task_memory_keeps_n_over_t_random_examples_of_each_task(make_mnist):
    """Hsu et al.'s memory (``replay.memory: per_task``): after t tasks, N // t examples of each, drawn at random (not
    class-balanced), a task's kept ones among those it kept before; seeded per repetition and task."""
    tasks = split_into_tasks(make_mnist(1000, seed=1), Scenario("domain", FIVE_PAIRS))
    first = [per_task_sample(tasks[0], 50, task_rng(s, 0)) for s in (0, 1)]
    replay = Replay(first, seeds=[0, 1], memory="per_task", mix="one_to_one", size=50)
    assert all(len(b) == 50 and set(b.task) == {0} for b in first)
    np.testing.assert_array_equal(first[0].image, per_task_sample(tasks[0], 50, task_rng(0, 0)).image)  # seeded
    assert not np.array_equal(first[0].image, first[1].image)
    for task, each in ((1, 25), (2, 16)):  # 50 // 2, 50 // 3
        before = list(replay.buffers)
        replay.end_task(None, task, tasks[task])
        for buffer, old in zip(replay.buffers, before, strict=True):
            assert [int((buffer.task == k).sum()) for k in range(task + 1)] == [each] * (task + 1)
            for k in range(task):  # a finished task's examples: a subset of what it kept
                assert {i.tobytes() for i in buffer.image[buffer.task == k]} <= {i.tobytes() for i in old.image}
            new = {i.tobytes() for i in buffer.image[buffer.task == task]}
            assert new <= {i.tobytes() for i in tasks[task].image}
    balanced = [int((replay.buffers[0].digit == d).sum()) for d in range(6)]
    assert sum(balanced) == 48 and len(set(balanced)) > 1  # random, not class-balanced
    # a task with fewer examples than its share keeps all of them
    assert len(per_task_sample(tasks[0].subset(np.arange(7)), 50, task_rng(0, 0))) == 7


def test_one_to_one_mix_repeats_the_memory_as_often_as_it_fits_in_the_new_data(make_mnist):
    """Hsu et al.'s mix (``replay.mix: one_to_one``): the whole memory max(1, M // N) times beside the M new
    examples, however many tasks are finished; ``per_task`` weighs each finished task as much as the new one."""
    tasks = split_into_tasks(make_mnist(1000, seed=1), Scenario("domain", FIVE_PAIRS))
    first = [per_task_sample(tasks[0], 30, task_rng(5, 0))]
    hsu, ours = (Replay(first, seeds=[5], memory="per_task", mix=mix, size=30) for mix in ("one_to_one", "per_task"))
    for task in (1, 2, 3):
        (mixed,) = hsu.training_data(tasks[task])
        assert len(mixed) == len(tasks[task]) + len(hsu.buffers[0]) * (len(tasks[task]) // 30)
        assert hsu.copies(tasks[task]) == len(tasks[task]) // 30
        assert ours.copies(tasks[task]) == round(task * len(tasks[task]) / len(ours.buffers[0]))
        hsu.end_task(None, task, tasks[task])
        ours.end_task(None, task, tasks[task])
    assert hsu.copies(tasks[0].subset(np.arange(20))) == 1  # at least once


def test_replay_keeps_more_of_task_a_than_naive():
    task_a, task_b = conflicting_tasks(500)
    seeds = [0, 1]
    results = {}
    for strategy in (Naive(), Replay([class_balanced_sample(task_a, 100, seed=s) for s in seeds], seeds)):
        loop.seed_everything(0)  # deterministic ops
        net = build_network(5, hidden_units=32, seeds=seeds)
        model = loop.ContinualModel(net, DOMAIN, loop.TrainingSet(task_a, seeds, salt=0))
        loop.fit(model, None, 3, 32, 3e-3, verbose=0)
        assert np.all(metrics.accuracy(net, task_a, DOMAIN) > 0.95)
        loop.finetune(net, strategy, DOMAIN, task_b, None, 1, epochs=8, batch_size=32, learning_rate=3e-3, verbose=0)
        results[strategy.name] = (metrics.accuracy(net, task_a, DOMAIN), metrics.accuracy(net, task_b, DOMAIN))
    assert np.all(results["naive"][0] < 0.5), "the setting forgets"
    assert np.all(results["replay"][0] > results["naive"][0] + 0.3)  # in every repetition
    assert np.all(results["replay"][1] > 0.9)


def test_equal_steps_replay_takes_the_others_steps_over_replays_mix(make_mnist):
    """Replay takes (finished tasks + 1) x the optimiser steps of naive on a task; its equal-steps variant takes
    naive's count, ceil(N / batch) an epoch, each a full batch of replay's own mix (the same examples, shifts and
    labels), about half of them replayed with one finished task."""
    task_a, task_b = split_into_tasks(make_mnist(600, seed=3), DOMAIN)
    seeds = [0, 1]
    buffers = [class_balanced_sample(task_a, 30, seed=s) for s in seeds]
    replay, equal = Replay(buffers, seeds, shift=1), EqualStepsReplay(buffers, seeds, shift=1)
    mixed = list(replay.training_data(task_b))
    for own, theirs in zip(equal.training_data(task_b), mixed, strict=True):
        for field in ("image", "label", "digit", "task"):
            np.testing.assert_array_equal(getattr(own, field), getattr(theirs, field))
    steps = {}
    for strategy in (Naive(), replay, equal):
        network = build_network(5, hidden_units=8, seeds=seeds)
        history = loop.finetune(
            network, strategy, DOMAIN, task_b, None, 1, epochs=2, batch_size=32, learning_rate=1e-3, verbose=0
        )
        steps[strategy.name] = int(history.model.optimizer.iterations.numpy())
    per_epoch = -(-len(task_b) // 32)
    assert steps["naive"] == steps["replay_equal_steps"] == 2 * per_epoch
    assert len(mixed[0]) == len(task_b) + 30 * round(len(task_b) / 30)
    assert steps["replay"] == 2 * -(-len(mixed[0]) // 32) >= 2 * steps["naive"] - 2
    visited = loop.TrainingSet(mixed, seeds, 1, per_epoch, 32).permutations(0)
    assert visited.shape == (2, per_epoch * 32)
    assert 0.4 < np.mean(visited >= len(task_b)) < 0.6  # replayed examples, about half of each epoch
    assert equal.steps_per_epoch(task_b, 32) == per_epoch and Replay.steps_per_epoch(replay, task_b, 32) is None


def test_shifted_copies_translate_each_image_within_the_limit():
    images = np.zeros((50, 28, 28, 1), np.float32)
    images[:, 10, 12, 0] = 1.0  # one bright pixel per image
    moved = shifted(images, 2, np.random.default_rng(0))
    assert moved.shape == images.shape
    positions = [tuple(np.argwhere(m[..., 0] == 1.0)[0]) for m in moved]
    assert all(abs(r - 10) <= 2 and abs(c - 12) <= 2 for r, c in positions)
    assert len(set(positions)) > 5  # each image its own shift
    np.testing.assert_array_equal(shifted(images, 0, np.random.default_rng(0)), images)
    np.testing.assert_array_equal(moved, shifted(images, 2, np.random.default_rng(0)))  # seeded


def test_replayed_copies_are_shifted_but_task_b_is_not(make_mnist):
    task_a, task_b = split_into_tasks(make_mnist(600, seed=3), DOMAIN)
    replay = Replay([class_balanced_sample(task_a, 30, seed=0)] * 2, seeds=[0, 1], shift=2)  # one buffer, two seeds
    mixed = list(replay.training_data(task_b))
    for own, buffer in zip(mixed, replay.buffers, strict=True):
        np.testing.assert_array_equal(own.image[: len(task_b)], mnist.as_uint8(task_b.image))
        replayed = own.subset(np.arange(len(task_b), len(own)))
        assert np.all(replayed.task == 0) and len(replayed) % 30 == 0
        np.testing.assert_array_equal(replayed.label, np.tile(buffer.label, len(replayed) // 30))
        pixels = mnist.as_uint8(buffer.image)
        assert not np.array_equal(replayed.image[:30], pixels)
        np.testing.assert_allclose(replayed.image.sum(axis=(1, 2, 3))[:30], pixels.sum(axis=(1, 2, 3)), rtol=0.35)
    # each repetition shifts from its own seed: the same buffer, other shifts
    assert not np.array_equal(mixed[0].image[len(task_b) :], mixed[1].image[len(task_b) :])


@pytest.mark.parametrize(("tasks", "fraction", "per_digit"), [(EVEN_ODD, 0.25, "all"), (FIVE_PAIRS, 0.1, 17)])
def test_check_setting_refuses_exactly_the_buffers_the_data_cannot_fill(monkeypatch, tasks, fraction, per_digit):
    """check_params' verdict (no data read: MNIST's counts per digit) against the run's: every buffer drawn, from
    task A's train split and then after each task but the last, on data with those counts."""
    counts = (40, 37, 44, 35, 41, 39, 42, 36, 43, 38)
    monkeypatch.setattr(mnist, "TRAIN_PER_DIGIT", counts)
    digits = np.repeat(np.arange(10), counts)
    train = mnist.make_split(np.zeros((len(digits), 28, 28), np.uint8), digits)
    cap = None if per_digit == "all" else per_digit
    splits = [mnist.build_task(train, train, list(t), i, fraction, 3, cap)["train"] for i, t in enumerate(tasks)]

    def accepted(size: int) -> bool:
        params = {"tasks": [list(t) for t in tasks], "replay": {"buffer_size": size}}
        try:
            Replay.check_setting(params | {"data": {"validation_fraction": fraction, "train_per_digit": per_digit}})
        except ForgettingError:
            return False
        return True

    def runs(size: int) -> bool:
        try:
            buffer = class_balanced_sample(splits[0], size, 0)
            for t in range(1, len(tasks) - 1):
                buffer = class_balanced_sample(mnist.Split.concat(buffer, splits[t]), size, t)
        except ForgettingError:
            return False
        return True

    verdicts = [accepted(size) for size in range(1, 400)]
    per_task = {"tasks": [list(t) for t in tasks], "replay": {"buffer_size": 1000, "memory": "per_task"}}
    Replay.check_setting(per_task | {"data": {"validation_fraction": fraction, "train_per_digit": per_digit}})
    fits = verdicts.index(False)
    assert fits > 20 and not any(verdicts[fits:])
    assert runs(fits) and not runs(fits + 1)
