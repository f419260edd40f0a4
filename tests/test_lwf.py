import numpy as np
import pytest
import tensorflow as tf
from conftest import EVEN_ODD, FIVE_PAIRS

from forgetting.data.scenarios import Scenario
from forgetting.nn.model import StackedMLP, build_network, repetition, save_model
from forgetting.strategies import LwF, TaskAState, build_strategy

DOMAIN = Scenario("domain", EVEN_ODD)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _kl(teacher_logits: np.ndarray, student_logits: np.ndarray, t: float) -> float:
    """mean over the batch of KL(softmax(teacher / t) || softmax(student / t)), logits (batch, outputs)."""
    p, q = _softmax(teacher_logits / t), _softmax(student_logits / t)
    return float(np.sum(p * (np.log(p) - np.log(q)), axis=-1).mean())


def _batch(split, n=16):
    return {"image": split.image[:n], "task": split.task[:n]}


def _all_weights(network) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in network.weights]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_distillation_value_and_gradient(tiny_model, mnist_like, temperature):
    """The penalty is w T^2 times the sum over repetitions of each one's batch-mean KL from its own teacher (here
    repetition s of the task-A network, computed as a plain Keras MLP), and its gradient on repetition s's logits
    is that repetition's own."""
    x = _batch(mnist_like)
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 16, 5)).astype(np.float32))
    lwf = LwF(tiny_model, DOMAIN, temperature, weight=0.7)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = lwf.penalty(tiny_model, x, logits)
    gradient = tape.gradient(value, logits).numpy()
    teacher_logits = [repetition(tiny_model, s)(x["image"], training=False).numpy().astype(np.float64) for s in (0, 1)]
    student_logits = logits.numpy().astype(np.float64)
    kl = [_kl(teacher_logits[s], student_logits[s], temperature) for s in (0, 1)]
    assert kl[0] != pytest.approx(kl[1], rel=1e-3)  # two repetitions, two teachers
    assert float(value) == pytest.approx(0.7 * temperature**2 * sum(kl), rel=1e-4)
    # d/dz of w T^2 KL(p_A || softmax(z / T)), averaged over the batch, is w T (softmax(z / T) - p_A) / N
    for s in (0, 1):
        teacher, student = _softmax(teacher_logits[s] / temperature), _softmax(student_logits[s] / temperature)
        expected = 0.7 * temperature * (student - teacher) / 16
        np.testing.assert_allclose(gradient[s], expected, rtol=1e-4, atol=1e-7)


def test_no_penalty_when_the_student_answers_like_the_teacher(tiny_model, mnist_like):
    x = _batch(mnist_like)
    lwf = LwF(tiny_model, DOMAIN, 2.0, weight=3.0)
    assert float(lwf.penalty(tiny_model, x, tiny_model.per_repetition(x["image"]))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("kind", "groups_after_two"), [("task", [[0, 1], [2, 3]]), ("class", [[0, 1, 2, 3]])])
def test_distillation_covers_the_outputs_of_every_finished_task(mnist_like, kind, groups_after_two):
    scenario = Scenario(kind, FIVE_PAIRS)
    teacher = build_network(10, hidden_units=8, seeds=(1, 2))
    student = build_network(10, hidden_units=8, seeds=(3, 4))
    x = _batch(mnist_like)
    lwf = LwF(teacher, scenario, 2.0, weight=1.0)
    z_teacher = teacher.per_repetition(x["image"]).numpy().astype(np.float64)
    z_student = student.per_repetition(x["image"]).numpy().astype(np.float64)
    assert z_teacher.shape == z_student.shape == (2, 16, 10)
    logits = scenario.select(student.per_repetition(x["image"]), x["task"])
    assert float(lwf.penalty(student, x, logits)) == pytest.approx(
        sum(4 * _kl(z_teacher[s, :, :2], z_student[s, :, :2], 2.0) for s in (0, 1)), rel=1e-4
    )
    lwf.end_task(teacher, 1, None)  # task b done: distil tasks a and b
    expected = sum(4 * _kl(z_teacher[s][:, g], z_student[s][:, g], 2.0) for g in groups_after_two for s in (0, 1))
    assert float(lwf.penalty(student, x, logits)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind", ["domain", "task", "class"])
def test_van_de_ven_2018_loss_is_their_code_times_the_task_count(mnist_like, kind):
    """With k finished tasks, their loss is CE / (k + 1) + k / (k + 1) * (mean over replays of T^2 KD); ours times
    k + 1: CE + penalty, so penalty = k T^2 * mean over replays of KD (KD a mean over the batch and active
    outputs; class scenario: every class seen so far, the old model's answer padded with zeros). KL and their
    cross-entropy differ by the targets' entropy, a constant that the comparison takes off theirs."""
    scenario = Scenario(kind, FIVE_PAIRS)
    teacher = build_network(scenario.num_outputs, hidden_units=8, seeds=(1, 2))
    student = build_network(scenario.num_outputs, hidden_units=8, seeds=(3, 4))
    x = _batch(mnist_like)
    lwf = LwF(teacher, scenario, 2.0, weight=1.0, loss="vandeven2018")
    for task in (1, 2):
        lwf.end_task(teacher, task, None)  # k = 3 finished tasks: a, b, c; task d trains
    z_teacher = teacher.per_repetition(x["image"]).numpy().astype(np.float64)
    z_student = student.per_repetition(x["image"])
    value = lwf.penalty(student, x, z_student)  # the task scenario reads its heads from the student itself
    heads = {"domain": [[0, 1]], "task": [[0, 1], [2, 3], [4, 5]], "class": [list(range(8))]}[kind]
    expected_value = 0.0
    for s in (0, 1):
        # their loss, replay by replay, on repetition s's logits alone
        terms, entropy = [], 0.0
        for columns in heads:
            p = np.zeros((16, len(columns)))
            old = columns[:6] if kind == "class" else columns  # class: the old model answers for a, b, c only
            p[:, : len(old)] = _softmax(z_teacher[s][:, old] / 2.0)
            log_q = tf.nn.log_softmax(tf.gather(z_student[s], columns, axis=-1) / 2.0)
            terms.append(4.0 * tf.reduce_mean(tf.reduce_sum(-p * log_q, -1)) / len(columns))
            entropy += 4.0 * float(-(p * np.log(np.where(p > 0, p, 1.0))).sum(-1).mean()) / len(columns)
        theirs = 3 * tf.add_n(terms) / len(terms)
        expected_value += float(theirs) - 3 * entropy / len(heads)  # KL = their cross-entropy - the targets' entropy
    assert float(value) == pytest.approx(expected_value, rel=1e-4) and expected_value > 0


@pytest.mark.parametrize("kind", ["domain", "task", "class"])
def test_each_repetition_is_distilled_from_its_own_teacher(mnist_like, kind):
    """With teachers and students of two repetitions, the penalty is the sum of the penalties of each repetition
    alone (networks built from its seeds only), and its gradient on repetition s's weights is repetition s's own."""
    scenario = Scenario(kind, FIVE_PAIRS)
    x = _batch(mnist_like)
    teacher = build_network(scenario.num_outputs, hidden_units=8, seeds=(1, 2))
    student = build_network(scenario.num_outputs, hidden_units=8, seeds=(3, 4))

    def penalty_and_gradient(teacher, student):
        lwf = LwF(teacher, scenario, 2.0, weight=0.5)
        lwf.end_task(teacher, 1, None)
        with tf.GradientTape() as tape:
            logits = scenario.select(student.per_repetition(x["image"], training=True), x["task"])
            value = lwf.penalty(student, x, logits)
        return float(value), [g.numpy() for g in tape.gradient(value, student.trainable_variables)]

    stacked, stacked_gradient = penalty_and_gradient(teacher, student)
    alone = [
        penalty_and_gradient(
            build_network(scenario.num_outputs, hidden_units=8, seeds=(t,)),
            build_network(scenario.num_outputs, hidden_units=8, seeds=(s,)),
        )
        for t, s in ((1, 3), (2, 4))
    ]
    assert stacked > 0 and stacked == pytest.approx(alone[0][0] + alone[1][0], rel=1e-6)
    for s, (_, gradient) in enumerate(alone):
        for mine, own in zip(stacked_gradient, gradient, strict=True):
            np.testing.assert_allclose(mine[s], own[0], rtol=1e-5, atol=1e-9)


def test_lwf_reads_its_params_and_freezes_a_copy_of_the_task_a_model(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "task_a.keras")
    state = TaskAState(DOMAIN, tmp_path / "task_a.keras")
    lwf = build_strategy("lwf", {"lwf": {"temperature": 3.0, "weight": 0.25, "loss": "vandeven2018"}}, state)
    assert (lwf.temperature, lwf.weight, lwf.loss) == (3.0, 0.25, "vandeven2018")
    assert isinstance(lwf.teacher, StackedMLP)
    assert lwf.teacher.seeds == tiny_model.seeds == [7, 8]  # the whole stacked network: one teacher per repetition
    assert not lwf.teacher.trainable and lwf.teacher.trainable_variables == []
    assert lwf.teacher is not tiny_model
    for mine, theirs in zip(_all_weights(lwf.teacher), _all_weights(tiny_model), strict=True):
        assert mine.shape[0] == 2
        np.testing.assert_array_equal(mine, theirs)


def test_end_task_freezes_a_copy_of_the_network_as_it_is(tiny_model, mnist_like):
    x = _batch(mnist_like)
    student = build_network(5, hidden_units=8, dropout=0.5, seeds=(7, 8))
    for variable in student.trainable_variables:
        variable.assign(variable + 0.1)
    lwf = LwF(tiny_model, DOMAIN, 2.0, weight=1.0)
    assert float(lwf.penalty(student, x, student.per_repetition(x["image"]))) > 0
    lwf.end_task(student, 1, None)
    assert lwf.teacher is not student and not lwf.teacher.trainable
    snapshot = _all_weights(student)
    for mine, theirs in zip(_all_weights(lwf.teacher), snapshot, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert float(lwf.penalty(student, x, student.per_repetition(x["image"]))) == pytest.approx(0.0, abs=1e-6)
    for variable in student.trainable_variables:  # training on does not move the teacher
        variable.assign(variable * 2.0)
    for mine, theirs in zip(_all_weights(lwf.teacher), snapshot, strict=True):
        np.testing.assert_array_equal(mine, theirs)
