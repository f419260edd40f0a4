"""Generative replay: the generator's loss by hand, the generator learning a task, the replayed inputs labelled by
the frozen previous classifier, and the generator's training with the tasks before replayed."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, split_into_tasks, synthetic_mnist
from test_strategies import task_a_state  # noqa: F401 (a fixture)

from forgetting.data.scenarios import Scenario
from forgetting.nn.model import build_network
from forgetting.strategies import generative_replay as gen

DOMAIN = Scenario("domain", EVEN_ODD)
OWN = {
    "weight": 0.5,
    "temperature": 2.0,
    "epochs": 1,
    "iterations": None,
    "hidden_units": 16,
    "latent": 3,
    "learning_rate": 1e-3,
    "targets": "soft",
}


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_the_generators_iterations_count_optimiser_steps_in_place_of_epochs(capsys):
    """generative_replay.iterations: that many steps, whatever the epochs. Where the examples make whole batches, 2
    epochs of 5 batches are the same 10 steps, bit for bit; 9 steps are not."""
    (task_a, _) = split_into_tasks(synthetic_mnist(300, seed=2), DOMAIN)
    assert len(task_a.label) == 150

    def trained(epochs: int, iterations: int | None) -> list[np.ndarray]:
        model = gen.build_generator(8, 2, seeds=[5, 6])
        length = {"epochs": epochs, "iterations": iterations, "learning_rate": 1e-2}
        gen.train_generator(model, task_a, None, 1, batch_size=30, verbose=0, **length)
        return [v.numpy() for v in model.weights]

    by_epochs, by_steps, fewer = trained(2, None), trained(9, 10), trained(2, 9)
    assert all(np.array_equal(a, b) for a, b in zip(by_epochs, by_steps, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(by_epochs, fewer, strict=True))
    assert capsys.readouterr().out.splitlines() == [
        f"generator: task 1 of the sequence, {length}" for length in ("2 epochs", "10 iterations", "9 iterations")
    ]
    assert gen.generator_schedule(OWN | {"iterations": 7}) == {"epochs": 1, "iterations": 7, "learning_rate": 1e-3}


@pytest.mark.parametrize("hidden", [5, [5, 3]], ids=["one-layer", "two-layers"])
def test_the_generators_loss_is_the_negative_elbo_by_hand(hidden):
    """sum over pixels of BCE(x, sigmoid(decoder(mu + s * eps))) + sum_j (mu^2 + s^2 - log s^2 - 1) / 2, per
    repetition the mean over its batch, the decoder mirroring the encoder's widths; and the weight count the memory
    column reports."""
    model = gen.build_generator(hidden, 2, seeds=[1, 2])
    widths = [hidden] if isinstance(hidden, int) else hidden
    assert [v.shape[1:] for v in model.weights if v.path.endswith("kernel")] == [
        *zip([784, *widths[:-1]], widths, strict=True),
        (widths[-1], 2),
        (widths[-1], 2),
        *zip([2, *widths[::-1][:-1]], widths[::-1], strict=True),
        (widths[0], 784),
    ]
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 3, 28, 28, 1)).astype(np.float32)
    eps = rng.normal(size=(2, 3, 2)).astype(np.float32)
    got = model.loss_per_repetition(tf.constant(images), tf.constant(eps)).numpy()
    w = {v.path.split("/", 1)[1]: v.numpy() for v in model.weights}

    def dense(s, name, a):
        return a @ w[f"{name}/kernel"][s] + w[f"{name}/bias"][s]

    for s in range(2):
        x = images[s].reshape(3, -1).astype(np.float64)
        h = x
        for number in range(len(widths)):
            h = np.maximum(dense(s, f"encoder_{number}", h), 0)
        mean, log_variance = dense(s, "mean", h), dense(s, "log_variance", h)
        h = mean + np.exp(0.5 * log_variance) * eps[s]
        for number in range(len(widths)):
            h = np.maximum(dense(s, f"decoder_{number}", h), 0)
        p = 1 / (1 + np.exp(-dense(s, "pixels", h)))
        bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(-1)
        kl = 0.5 * (mean**2 + np.exp(log_variance) - log_variance - 1).sum(-1)
        assert got[s] == pytest.approx((bce + kl).mean(), rel=1e-4)
    assert gen.generator_parameters(hidden, 2) == sum(v.numpy()[0].size for v in model.weights)


def test_the_generator_learns_a_task_and_its_samples_come_to_look_like_it():
    """After a few epochs on one synthetic task its loss on the task has fallen and its samples' mean image is
    nearer the task's than an untrained generator's; its repetitions draw different samples."""
    (task_a, _) = split_into_tasks(synthetic_mnist(300, seed=2), DOMAIN)
    images = tf.constant(np.broadcast_to(task_a.image[None, :64], (2, 64, 28, 28, 1)))
    eps = tf.zeros((2, 64, 4))
    model = gen.build_generator(32, 4, seeds=[5, 6])
    before, sample_before = model.loss_per_repetition(images, eps).numpy(), model.sample(0, 0, 200).numpy()
    gen.train_generator(model, task_a, None, 1, epochs=30, batch_size=32, learning_rate=1e-2, verbose=0)
    after, sample_after = model.loss_per_repetition(images, eps).numpy(), model.sample(0, 0, 200).numpy()
    assert np.all(after < 0.8 * before)
    target = task_a.image.mean(0)
    for s in range(2):
        assert np.abs(sample_after[s].mean(0) - target).mean() < 0.5 * np.abs(sample_before[s].mean(0) - target).mean()
    assert not np.array_equal(sample_after[0], sample_after[1])
    assert sample_after.min() >= 0 and sample_after.max() <= 1


def test_replayed_inputs_are_labelled_by_the_frozen_previous_classifier(task_a_state):  # noqa: F811
    """memory_loss = weight * k * T^2 * mean over the replayed batch of KL(softmax(z_old / T) || softmax(z / T)),
    k the finished tasks, z_old the classifier frozen at the end of the last task: training the network on does not
    move the targets, and a network equal to the teacher pays nothing."""
    params = {"seed": 7, "seeds": 2, "train": {"batch_size": 16}, "generative_replay": OWN}
    strategy = gen.GenerativeReplay.from_params(params, task_a_state)
    network = build_network(5, 8, 0.0, seeds=(7, 8))  # the task-A model's weights, without its dropout
    network.set_weights(task_a_state.model().get_weights())
    assert strategy.memory_loss(network, tf.constant(3)).numpy() == pytest.approx(0.0, abs=1e-6)
    for v in network.trainable_variables:  # the network moves on; the teacher does not
        v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, [1, 2]))
    images = strategy.replayed(tf.constant(3)).numpy()
    assert images.shape == (2, 16, 28, 28, 1)
    np.testing.assert_array_equal(images, strategy.replayed(tf.constant(3)).numpy())  # drawn from (seed, step)
    assert not np.array_equal(images, strategy.replayed(tf.constant(4)).numpy())
    old = task_a_state.model().per_repetition(images).numpy() / 2.0
    new = network.per_repetition(images).numpy() / 2.0

    target, current = _log_softmax(old.astype(np.float64)), _log_softmax(new.astype(np.float64))
    kl = (np.exp(target) * (target - current)).sum(-1).mean(-1).sum()
    expected = 0.5 * 1 * 4.0 * kl
    assert expected > 0
    assert strategy.memory_loss(network, tf.constant(3)).numpy() == pytest.approx(expected, rel=1e-4)


def test_after_a_task_the_generator_learns_it_with_the_earlier_ones_replayed(task_a_state, monkeypatch):  # noqa: F811
    """end_task trains the generator on the finished task with its frozen self (as it was) replaying, weighted as
    the tasks so far; the teacher becomes the network as it is."""
    params = {"seed": 7, "seeds": 2, "train": {"batch_size": 16}, "generative_replay": OWN}
    strategy = gen.GenerativeReplay.from_params(params, task_a_state)
    before = [v.numpy() for v in strategy.generator.weights]
    calls = []

    def recording(model, train, previous, tasks, *args, **kwargs):
        calls.append((previous, tasks))
        for mine, was in zip(previous.weights, before, strict=True):  # the frozen copy is the generator as it was
            np.testing.assert_array_equal(mine.numpy(), was)
        assert not previous.trainable and model.trainable
        return original(model, train, previous, tasks, *args, **kwargs)

    original = gen.train_generator
    monkeypatch.setattr("forgetting.strategies.generative_replay.train_generator", recording)
    network = build_network(2, 8, seeds=[7, 8])
    (_, task_b) = split_into_tasks(synthetic_mnist(200, seed=3), DOMAIN)
    strategy.end_task(network, 1, task_b)
    assert [tasks for _, tasks in calls] == [2] and strategy.tasks_done == 2
    assert any(not np.array_equal(v.numpy(), b) for v, b in zip(strategy.generator.weights, before, strict=True))
    assert not strategy.generator.trainable
    snapshot = [w.numpy() for w in network.weights]
    assert strategy.teacher is not network and not strategy.teacher.trainable
    for mine, theirs in zip(strategy.teacher.weights, snapshot, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs)
    for v in network.trainable_variables:  # training on does not move the teacher: a frozen copy, as it was
        v.assign(v * 2.0)
    for mine, theirs in zip(strategy.teacher.weights, snapshot, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs)


def test_a_replayed_generator_step_weighs_each_task_as_the_tasks_so_far():
    """With a previous generator and t = 3 tasks so far, the step minimises (1/3) loss(task's batch) + (2/3)
    loss(replayed batch); with none, the task's batch alone."""
    (task, _) = split_into_tasks(synthetic_mnist(100, seed=4), DOMAIN)
    model, previous = gen.build_generator(8, 2, seeds=[1]), gen.build_generator(8, 2, seeds=[9])
    data = gen.TrainingSet(task, model.seeds, salt=0)
    data.shuffle(0)
    positions = tf.range(16)
    x, _ = data.batch(positions)
    step = tf.constant(0, tf.int64)
    eps = gen.normal_draws(model.seeds, 2 * 5, step, (16, 2))
    own = model.loss_per_repetition(x["image"], eps)
    replayed = previous.sample(2 * 5 + 1, step, 16)
    replay = model.loss_per_repetition(replayed, gen.normal_draws(model.seeds, 2 * 5 + 1, 2**20 + step, (16, 2)))
    training = gen.GeneratorTraining(model, data, previous, tasks=3, salt=5)
    training.compile(optimizer="sgd")
    training.optimizer.build(model.trainable_weights)
    logged = training.train_step(positions)["loss"].numpy()
    assert logged == pytest.approx(float(own[0] / 3 + 2 * replay[0] / 3), rel=1e-5)


def test_in_the_class_scenario_the_new_classes_get_no_probability_in_the_targets():
    """Class scenario, one task finished of three: the replayed inputs are distilled over the classes seen so far
    (the first two tasks'), and the teacher's targets put probability 0 on the current task's classes: KL(p || q)
    with p the teacher's softmax over the old classes alone, q the network's over the four."""
    scenario = Scenario("class", ((0, 1), (2, 3), (4, 5)))
    teacher = build_network(scenario.num_outputs, 8, seeds=(1, 2))
    network = build_network(scenario.num_outputs, 8, seeds=(3, 4))
    generator = gen.build_generator(8, 2, seeds=(1, 2))
    strategy = gen.GenerativeReplay(teacher, generator, scenario, OWN, batch_size=8)
    images = strategy.replayed(tf.constant(0)).numpy()
    old = teacher.per_repetition(images).numpy().astype(np.float64) / 2.0
    new = network.per_repetition(images).numpy().astype(np.float64) / 2.0
    old_columns, so_far = scenario.seen_columns(1)[0], scenario.seen_columns(2)[0]
    assert len(old_columns) == 2 and len(so_far) == 4

    p = _log_softmax(old[..., old_columns])
    q = _log_softmax(new[..., so_far])[..., np.isin(so_far, old_columns)]
    expected = 0.5 * 1 * 4.0 * (np.exp(p) * (p - q)).sum(-1).mean(-1).sum()
    assert strategy.memory_loss(network, tf.constant(0)).numpy() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind", ["task", "class"])
def test_hard_targets_train_on_the_class_the_previous_model_predicts(kind):
    """generative_replay.targets: hard (DGR), two tasks finished of three: memory_loss = weight * k * sum_g mean over
    the replayed batch of CE(argmax_g z_old, softmax(z_g)), no temperature. Task scenario: g each finished task's
    head; class scenario: the target among the finished classes, the softmax over the classes seen so far."""
    scenario = Scenario(kind, ((0, 1), (2, 3), (4, 5)))
    teacher = build_network(scenario.num_outputs, 8, seeds=(1, 2))
    bias = teacher.trainable_variables[-1]
    bias.assign(bias + np.array([0.0, 0.3, 0.6, 0.0, 5.0, 0.0], np.float32))  # the class seen last scores highest
    network = build_network(scenario.num_outputs, 8, seeds=(3, 4))
    generator = gen.build_generator(8, 2, seeds=(1, 2))
    strategy = gen.GenerativeReplay(teacher, generator, scenario, OWN | {"targets": "hard"}, batch_size=8)
    strategy.tasks_done = 2
    strategy.groups = strategy._groups()
    images = strategy.replayed(tf.constant(0)).numpy()
    old = teacher.per_repetition(images).numpy().astype(np.float64)
    new = network.per_repetition(images).numpy().astype(np.float64)

    def cross_entropy(logits, labels):
        return -np.take_along_axis(_log_softmax(logits), labels[..., None], axis=-1)[..., 0].mean(-1)  # (S,)

    if kind == "task":
        groups = scenario.seen_columns(2)
        assert [list(g) for g in groups] == [[0, 1], [2, 3]]
        terms = [cross_entropy(new[..., g], old[..., g].argmax(-1)) for g in groups]
    else:
        (finished,), (so_far,) = scenario.seen_columns(2), scenario.seen_columns(3)
        assert list(finished) == [0, 1, 2, 3] and list(so_far) == [0, 1, 2, 3, 4, 5]
        labels = old[..., finished].argmax(-1)  # a finished class, by its position among those seen so far
        terms = [cross_entropy(new[..., so_far], labels)]
        assert np.all(old.argmax(-1) == 4)  # the teacher's answer over every class: a new one, never a target
    expected = 0.5 * 2 * np.sum(terms)
    assert strategy.memory_loss(network, tf.constant(0)).numpy() == pytest.approx(expected, rel=1e-4)
    soft = gen.GenerativeReplay(teacher, generator, scenario, OWN, batch_size=8)
    soft.tasks_done = 2
    soft.groups = soft._groups()
    assert soft.memory_loss(network, tf.constant(0)).numpy() != pytest.approx(expected, rel=1e-2)
