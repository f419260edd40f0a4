"""Replay through feedback: the feedback's loss by hand, its fit to task A on frozen features, its training with the
network in the loop, and the replayed batch's loss by hand (decoded by the frozen feedback, labelled by the frozen
classifier)."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, split_into_tasks, synthetic_mnist
from test_strategies import task_a_state  # noqa: F401 (a fixture)

from forgetting.data.scenarios import Scenario
from forgetting.data.training_set import TrainingSet
from forgetting.nn.model import build_network
from forgetting.strategies import rtf
from forgetting.training import loop

DOMAIN = Scenario("domain", EVEN_ODD)
OWN = {"weight": 0.5, "temperature": 2.0, "latent": 3, "epochs": 2, "iterations": None, "learning_rate": 1e-2}
OWN["task_a"] = "frozen"
PARAMS = {"seed": 7, "seeds": 2, "train": {"batch_size": 16}, "rtf": OWN}


def _dense(w, s, name, a):
    return a @ w[f"{name}/kernel"][s].astype(np.float64) + w[f"{name}/bias"][s]


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _v_by_hand(feedback, h, x, eps):
    """(sum over pixels of BCE + KL) / 784, the mean over the batch, per repetition: features h (S, batch, H),
    pixels x (S, batch, 784), noise eps (S, batch, Z)."""
    w = {v.path.split("/", 1)[1]: v.numpy() for v in feedback.weights}
    values = []
    for s in range(h.shape[0]):
        mean, log_variance = _dense(w, s, "mean", h[s]), _dense(w, s, "log_variance", h[s])
        a = mean + np.exp(0.5 * log_variance) * eps[s]
        for number in range(len(feedback.widths)):
            a = np.maximum(_dense(w, s, f"decoder_{number}", a), 0)
        p = 1 / (1 + np.exp(-_dense(w, s, "pixels", a)))
        bce = -(x[s] * np.log(p) + (1 - x[s]) * np.log(1 - p)).sum(-1)
        kl = 0.5 * (mean**2 + np.exp(log_variance) - log_variance - 1).sum(-1)
        values.append(((bce + kl) / 784).mean())
    return np.array(values)


@pytest.mark.parametrize("widths", [[6], [7, 5]])
def test_the_feedbacks_loss_is_the_negative_elbo_per_pixel_by_hand(widths):
    """V = (sum over pixels of BCE(x, sigmoid(decoder(mu + s * eps))) + sum_j (mu^2 + s^2 - log s^2 - 1) / 2) / 784
    with mu and log s^2 read off the classifier's last hidden layer and a decoder that mirrors the hidden layers;
    the weight count the memory column reports."""
    feedback = rtf.build_feedback(widths, 2, seeds=[1, 2])
    assert [layer.units for layer in feedback.layers_in_order] == [2, 2, *reversed(widths), 784]
    rng = np.random.default_rng(0)
    h = rng.uniform(size=(2, 3, widths[-1])).astype(np.float32)
    x = rng.uniform(size=(2, 3, 784)).astype(np.float32)
    eps = rng.normal(size=(2, 3, 2)).astype(np.float32)
    got = feedback.loss_per_repetition(tf.constant(h), tf.constant(x), tf.constant(eps)).numpy()
    np.testing.assert_allclose(got, _v_by_hand(feedback, h, x, eps), rtol=1e-4)
    assert rtf.feedback_parameters(widths, 2) == sum(v.numpy()[0].size for v in feedback.weights)
    memory = rtf.RtF.memory({"model": {"hidden_units": widths}, "rtf": {"latent": 2}}, 1000, 2)
    assert memory.floats == 2 * rtf.feedback_parameters(widths, 2) + 1000


def test_from_params_fits_the_feedback_to_task_a_on_the_frozen_classifier(task_a_state, capsys):  # noqa: F811
    """The heads and decoder learn task A (V on its images falls) while the classifier's weights stay the
    checkpoint's; the replay draws from a frozen copy of the feedback as fitted."""
    network = task_a_state.model()
    untrained = rtf.build_feedback(network.widths, OWN["latent"], network.seeds)
    strategy = rtf.RtF.from_params(PARAMS, task_a_state)
    assert "generator: task 1 of the sequence, 2 epochs" in capsys.readouterr().out
    images = tf.constant(task_a_state.train_split().image[:64])
    h, flat = network.features(images), rtf.per_repetition_pixels(images, 2)
    eps = tf.zeros((2, 64, OWN["latent"]))
    before = untrained.loss_per_repetition(h, flat, eps).numpy()
    after = strategy.generator.loss_per_repetition(h, flat, eps).numpy()
    assert np.all(after < 0.9 * before)
    for mine, theirs in zip(strategy.teacher.weights, network.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    for mine, theirs in zip(strategy.previous.weights, strategy.generator.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert strategy.generator.trainable and not strategy.previous.trainable
    assert strategy.trained_layers() == [strategy.generator]


def test_the_feedback_trains_with_the_network_and_its_loss_reaches_the_hidden_layers(task_a_state):  # noqa: F811
    """In the loop, the optimiser trains the network's variables and then the feedback's; the task's batch adds V,
    whose gradient reaches the hidden layers (not the logits); the replay's frozen copy does not move."""
    strategy = rtf.RtF.from_params(PARAMS, task_a_state)
    network = task_a_state.model()
    (_, task_b) = split_into_tasks(synthetic_mnist(200, seed=3), DOMAIN)
    model = loop.ContinualModel(network, DOMAIN, TrainingSet(task_b, network.seeds, 1), strategy, task=1)
    paths = [v.path for v in model.trainable_weights]
    assert paths == [v.path for v in network.trainable_weights] + [v.path for v in strategy.generator.trainable_weights]
    images = tf.constant(np.broadcast_to(task_b.image[None, :8], (2, 8, 28, 28, 1)))
    with tf.GradientTape() as tape:
        penalty = strategy.penalty(network, {"image": images})
    gradients = dict(zip(paths, tape.gradient(penalty, model.trainable_weights), strict=True))
    assert float(penalty) > 0
    assert np.any(gradients["mlp/hidden/kernel"].numpy() != 0) and gradients["mlp/logits/kernel"] is None
    feedback, previous = [v.numpy() for v in strategy.generator.weights], [v.numpy() for v in strategy.previous.weights]
    loop.finetune(network, strategy, DOMAIN, task_b, None, 1, epochs=1, batch_size=16, learning_rate=1e-2, verbose=0)
    assert all(not np.array_equal(v.numpy(), w) for v, w in zip(strategy.generator.weights, feedback, strict=True))
    for v, w in zip(strategy.previous.weights, previous, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)


def test_the_replayed_batch_is_decoded_by_the_frozen_feedback_and_labelled_by_the_frozen_classifier(task_a_state):  # noqa: F811
    """memory_loss = weight * k * (T^2 * KL(softmax(z_old / T) || softmax(z / T)) + V), on a batch decoded from
    z ~ N(0, I) by the feedback as it was at the end of the last task; after end_task, the replay comes from the
    feedback and the labels from the classifier as they are then."""
    strategy = rtf.RtF.from_params(PARAMS, task_a_state)
    network = build_network(5, 8, 0.0, seeds=(7, 8))  # the task-A model's weights, without its dropout
    network.set_weights(task_a_state.model().get_weights())
    for v in [*network.trainable_variables, *strategy.generator.trainable_variables]:  # both move on
        v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, [1, 2]))
    step = tf.constant(3)
    images = strategy.replayed(step).numpy()
    np.testing.assert_array_equal(images, strategy.previous.sample(rtf.REPLAY_SALT + 1, step, 16).numpy())
    old = task_a_state.model().per_repetition(images).numpy().astype(np.float64) / 2.0
    new = network.per_repetition(images).numpy().astype(np.float64) / 2.0
    target, current = _log_softmax(old), _log_softmax(new)
    kl = (np.exp(target) * (target - current)).sum(-1).mean(-1).sum()
    h = network.features(tf.constant(images)).numpy().astype(np.float64)
    eps = rtf.normal_draws(network.seeds, rtf.REPLAYED_SALT + 1, step, (16, OWN["latent"])).numpy()
    v = _v_by_hand(strategy.generator, h, images.reshape(2, 16, 784).astype(np.float64), eps).sum()
    expected = 0.5 * 1 * (4.0 * kl + v)
    assert strategy.memory_loss(network, step).numpy() == pytest.approx(expected, rel=1e-4)

    (_, task_b) = split_into_tasks(synthetic_mnist(200, seed=3), DOMAIN)
    strategy.end_task(network, 1, task_b)
    assert strategy.tasks_done == 2
    pairs = [(strategy.previous, strategy.generator), (strategy.teacher, network)]
    snapshots = [[w.numpy() for w in theirs.weights] for _, theirs in pairs]
    for (mine, _), snapshot in zip(pairs, snapshots, strict=True):
        for a, b in zip(mine.weights, snapshot, strict=True):
            np.testing.assert_array_equal(a.numpy(), b)
    assert not strategy.previous.trainable and strategy.generator.trainable and not strategy.teacher.trainable
    assert strategy.previous is not strategy.generator and strategy.teacher is not network  # copies
    for v in [*network.trainable_variables, *strategy.generator.trainable_variables]:  # training on moves neither
        v.assign(v * 2.0)
    for (mine, _), snapshot in zip(pairs, snapshots, strict=True):
        for a, b in zip(mine.weights, snapshot, strict=True):
            np.testing.assert_array_equal(a.numpy(), b)


def test_joint_task_a_trains_the_classifier_and_its_feedback_together_on_task_a_first(
    task_a_state,  # noqa: F811
    capsys,
    monkeypatch,
):
    """rtf.task_a: joint: from_params fits nothing; the loop trains the checkpoint's classifier and the feedback
    together on task A (CE + V, nothing replayed: memory_loss is 0) for rtf.iterations steps at rtf.learning_rate,
    then end_task(network, 0): the replay comes from the feedback and the labels from the classifier as they are
    then; task B trains from there, its Adam going on from that training's new one (finetune.carry_optimizer), as
    theirs goes on from the first task's."""
    own = OWN | {"task_a": "joint", "iterations": 6}
    network = task_a_state.model()
    checkpoint = [v.numpy() for v in network.weights]
    strategy = rtf.RtF.from_params({**PARAMS, "rtf": own}, task_a_state)
    untrained = rtf.build_feedback(network.widths, own["latent"], network.seeds)
    for mine, theirs in zip(strategy.generator.weights, untrained.weights, strict=True):  # nothing fitted yet
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert strategy.tasks_done == 0 and float(strategy.memory_loss(network, tf.constant(0))) == 0.0
    assert strategy.retrain_task_a() == {"epochs": 2, "iterations": 6, "learning_rate": 1e-2}
    assert rtf.RtF.from_params(PARAMS, task_a_state).retrain_task_a() is None  # frozen: the checkpoint as it is
    at_end_of_a = {}
    end_task = strategy.end_task

    def recording(net, task, train):
        at_end_of_a.update(task=task, tasks_done=strategy.tasks_done, iterations=int(strategy.steps.numpy()))
        at_end_of_a["network"] = [v.numpy() for v in net.weights]
        at_end_of_a["feedback"] = [v.numpy() for v in strategy.generator.weights]
        end_task(net, task, train)
        strategy.end_task = end_task

    strategy.end_task = recording
    task_a = task_a_state.train_split()
    (_, task_b) = split_into_tasks(synthetic_mnist(200, seed=3), DOMAIN)
    calls, finetune = [], loop.finetune

    def spy(*args, **kwargs):
        calls.append((args[5], kwargs.get("carried"), kwargs["learning_rate"]))
        return finetune(*args, **kwargs)

    monkeypatch.setattr(loop, "finetune", spy)
    loop.train_sequence(
        network, strategy, DOMAIN, [task_a, task_b], [None, None], None, epochs=1, batch_size=16,
        learning_rate=1e-4, verbose=0, optimizer_state={"iterations": np.asarray(100, np.int64)},
    )  # fmt: skip
    steps = [(task, carried and int(carried["iterations"]), rate) for task, carried, rate in calls]
    assert steps == [(0, None, 1e-2), (1, 6, 1e-4)]  # a new Adam on task A, its state carried to task B
    feedback_moments = [f"momentum/{v.path}" for v in strategy.generator.trainable_weights]
    assert all(key in calls[1][1] for key in feedback_moments) and feedback_moments
    out = capsys.readouterr().out
    assert "rtf: training on task_a again, with its own layers" in out and out.index("again") < out.index("task_b")
    assert at_end_of_a["task"] == 0 and at_end_of_a["tasks_done"] == 0 and at_end_of_a["iterations"] == 6
    assert all(not np.array_equal(a, b) for a, b in zip(at_end_of_a["network"], checkpoint, strict=True))
    images = tf.constant(task_a.image[:64])
    eps = tf.zeros((2, 64, own["latent"]))
    fitted = rtf.Feedback.from_config(strategy.generator.get_config())
    fitted.build()
    fitted.set_weights(at_end_of_a["feedback"])
    for mine, theirs in zip(strategy.previous.weights, fitted.weights, strict=True):  # the replay: as of task A's end
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    for mine, theirs in zip(strategy.teacher.weights, at_end_of_a["network"], strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs)
    h, flat = strategy.teacher.features(images), rtf.per_repetition_pixels(images, 2)
    before, after = (f.loss_per_repetition(h, flat, eps).numpy() for f in (untrained, fitted))
    assert np.all(after < before)
    assert strategy.tasks_done == 1 and int(strategy.steps.numpy()) > 6  # task B trained on from there
