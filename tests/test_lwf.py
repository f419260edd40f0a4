import keras
import numpy as np
import pytest
import tensorflow as tf

from forgetting.model import save_model
from forgetting.strategies import LwF, TaskAState, build_strategy


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_distillation_value_and_gradient(tiny_model, mnist_like, temperature):
    x = mnist_like.image[:16]
    logits = tf.constant(np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32))
    lwf = LwF(tiny_model, temperature, weight=0.7)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = lwf.penalty(tiny_model, x, logits)
    teacher = _softmax(tiny_model(x, training=False).numpy().astype(np.float64) / temperature)
    student = _softmax(logits.numpy().astype(np.float64) / temperature)
    kl = np.sum(teacher * (np.log(teacher) - np.log(student)), axis=-1).mean()
    assert float(value) == pytest.approx(0.7 * temperature**2 * kl, rel=1e-4)
    # d/dz of w T^2 KL(p_A || softmax(z / T)), averaged over the batch, is w T (softmax(z / T) - p_A) / N
    expected = 0.7 * temperature * (student - teacher) / 16
    np.testing.assert_allclose(tape.gradient(value, logits).numpy(), expected, rtol=1e-4, atol=1e-7)


def test_no_penalty_when_the_student_answers_like_the_teacher(tiny_model, mnist_like):
    x = mnist_like.image[:16]
    lwf = LwF(tiny_model, 2.0, weight=3.0)
    assert float(lwf.penalty(tiny_model, x, tiny_model(x, training=False))) == pytest.approx(0.0, abs=1e-6)


def test_lwf_reads_its_params_and_freezes_a_copy_of_the_task_a_model(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "task_a.keras")
    state = TaskAState(tmp_path / "task_a.keras")
    lwf = build_strategy("lwf", {"lwf": {"temperature": 3.0, "weight": 0.25}}, state)
    assert (lwf.temperature, lwf.weight) == (3.0, 0.25)
    assert not lwf.teacher.trainable
    assert lwf.teacher is not tiny_model
    for mine, theirs in zip(lwf.teacher.get_weights(), tiny_model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert isinstance(lwf.teacher, keras.Model)
