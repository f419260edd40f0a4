import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, FIVE_PAIRS

from forgetting.model import build_mlp, save_model
from forgetting.scenarios import Scenario
from forgetting.strategies import LwF, TaskAState, build_strategy

DOMAIN = Scenario("domain", EVEN_ODD)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _kl(teacher_logits: np.ndarray, student_logits: np.ndarray, t: float) -> float:
    p, q = _softmax(teacher_logits / t), _softmax(student_logits / t)
    return float(np.sum(p * (np.log(p) - np.log(q)), axis=-1).mean())


def _batch(split, n=16):
    return {"image": split.image[:n], "task": split.task[:n]}


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_distillation_value_and_gradient(tiny_model, mnist_like, temperature):
    x = _batch(mnist_like)
    logits = tf.constant(np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32))
    lwf = LwF(tiny_model, DOMAIN, temperature, weight=0.7)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = lwf.penalty(tiny_model, x, logits)
    teacher_logits = tiny_model(x["image"], training=False).numpy().astype(np.float64)
    kl = _kl(teacher_logits, logits.numpy().astype(np.float64), temperature)
    assert float(value) == pytest.approx(0.7 * temperature**2 * kl, rel=1e-4)
    # d/dz of w T^2 KL(p_A || softmax(z / T)), averaged over the batch, is w T (softmax(z / T) - p_A) / N
    teacher, student = _softmax(teacher_logits / temperature), _softmax(logits.numpy() / temperature)
    expected = 0.7 * temperature * (student - teacher) / 16
    np.testing.assert_allclose(tape.gradient(value, logits).numpy(), expected, rtol=1e-4, atol=1e-7)


def test_no_penalty_when_the_student_answers_like_the_teacher(tiny_model, mnist_like):
    x = _batch(mnist_like)
    lwf = LwF(tiny_model, DOMAIN, 2.0, weight=3.0)
    assert float(lwf.penalty(tiny_model, x, tiny_model(x["image"], training=False))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("kind", "groups_after_two"), [("task", [[0, 1], [2, 3]]), ("class", [[0, 1, 2, 3]])])
def test_distillation_covers_the_outputs_of_every_finished_task(mnist_like, kind, groups_after_two):
    scenario = Scenario(kind, FIVE_PAIRS)
    keras.utils.set_random_seed(1)
    teacher, student = build_mlp(10, hidden_units=8), build_mlp(10, hidden_units=8)
    x = _batch(mnist_like)
    lwf = LwF(teacher, scenario, 2.0, weight=1.0)
    z_teacher = teacher(x["image"]).numpy().astype(np.float64)
    z_student = student(x["image"]).numpy().astype(np.float64)
    logits = scenario.select(student(x["image"]), x["task"])
    assert float(lwf.penalty(student, x, logits)) == pytest.approx(
        4 * _kl(z_teacher[:, :2], z_student[:, :2], 2.0), rel=1e-4
    )
    lwf.end_task(teacher, 1, None)  # task b done: distil tasks a and b
    expected = sum(4 * _kl(z_teacher[:, g], z_student[:, g], 2.0) for g in groups_after_two)
    assert float(lwf.penalty(student, x, logits)) == pytest.approx(expected, rel=1e-4)


def test_lwf_reads_its_params_and_freezes_a_copy_of_the_task_a_model(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "task_a.keras")
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras")
    lwf = build_strategy("lwf", {"lwf": {"temperature": 3.0, "weight": 0.25}}, state)
    assert (lwf.temperature, lwf.weight) == (3.0, 0.25)
    assert not lwf.teacher.trainable
    assert lwf.teacher is not tiny_model
    for mine, theirs in zip(lwf.teacher.get_weights(), tiny_model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert isinstance(lwf.teacher, keras.Model)
