from pathlib import Path

import pytest
import yaml

from forgetting.config.params import read
from forgetting.errors import ForgettingError
from forgetting.strategies import validate_params as validate  # every strategy's section too

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def defaults() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid(defaults):
    validate(defaults)
    assert defaults["fisher"]["estimator"] == "exact"
    assert defaults["fisher"]["num_examples"] == "all"
    assert defaults["data"]["validation_fraction"] == 0.1
    assert defaults["scenario"] == "domain"
    assert defaults["tasks"] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("alpha", -1, "alpha = -1 is invalid; set it to a number >= 0"),
        ("alpha", "big", "alpha = 'big' is invalid"),
        ("l2.weight", -0.5, "l2.weight = -0.5 is invalid"),
        ("fisher.estimator", "diagonal", "fisher.estimator = 'diagonal' is invalid; set it to one of exact, sampled"),
        ("fisher.num_examples", 0, "fisher.num_examples = 0 is invalid"),
        ("fisher.num_examples", None, "fisher.num_examples = None is invalid; set it to an integer >= 1, or all"),
        ("train.epochs_a", 0, "train.epochs_a = 0 is invalid; set it to an integer >= 1"),
        ("train.batch_size", 0, "train.batch_size = 0 is invalid"),
        ("finetune.epochs", 2.5, "finetune.epochs = 2.5 is invalid"),
        ("finetune.iterations", 0, "finetune.iterations = 0 is invalid; set it to an integer >= 1 (optimiser steps"),
        ("train.iterations_a", 2.5, "train.iterations_a = 2.5 is invalid"),
        ("tasks", [[0, 1]], "tasks = [[0, 1]] is invalid; set it to a list of 2 to 10 tasks"),
        ("tasks", [[0, 1], []], "tasks = [[0, 1], []] is invalid"),
        ("tasks", [[0, 12], [1]], "tasks = [[0, 12], [1]] is invalid; set it to a list of 2 to 10 tasks, each a list"),
        ("tasks", [[2, 2], [1]], "tasks = [[2, 2], [1]] is invalid"),
        ("scenario", "incremental", "scenario = 'incremental' is invalid; set it to one of domain, task, class"),
        ("class_outputs", "some", "class_outputs = 'some' is invalid; set it to all (the softmax over every digit)"),
        (
            "class_outputs",
            "seen",
            "class_outputs = 'seen' is for the class scenario (scenario = 'domain' has a softmax",
        ),
        ("model.hidden_units", [400, 0], "model.hidden_units = [400, 0] is invalid; set it to a width >= 1, or a list"),
        ("model.hidden_units", [], "model.hidden_units = [] is invalid"),
        (
            "generative_replay.hidden_units",
            [400, 0],
            "generative_replay.hidden_units = [400, 0] is invalid; set it to a width >= 1, or a list of 1 to 8 widths",
        ),
        (
            "generative_replay.targets",
            "argmax",
            "generative_replay.targets = 'argmax' is invalid; set it to soft (the previous model's softened outputs)",
        ),
        ("rtf.task_a", "fresh", "rtf.task_a = 'fresh' is invalid; set it to frozen (its feedback fit to task A"),
        ("model.init", "he", "model.init = 'he' is invalid; set it to glorot (Keras' default"),
        ("model.input_padding", -1, "model.input_padding = -1 is invalid; set it to an integer from 0 to 16 (zero"),
        ("model.input_sd", 0, "model.input_sd = 0 is invalid; set it to a number > 0 (the pixels divided by it"),
        ("finetune.carry_optimizer", "yes", "finetune.carry_optimizer = 'yes' is invalid; set it to true (each"),
        ("train.optimizer", "rmsprop", "train.optimizer = 'rmsprop' is invalid; set it to adam or sgd (plain SGD"),
        ("online_ewc.gamma", 1.5, "online_ewc.gamma = 1.5 is invalid; set it to a number in [0, 1]"),
        ("si.xi", 0, "si.xi = 0 is invalid; set it to a number > 0"),
        ("si.c", -1, "si.c = -1 is invalid"),
        ("mas.lambda", -2, "mas.lambda = -2 is invalid"),
        ("replay.buffer_size", 0, "replay.buffer_size = 0 is invalid"),
        ("replay.shift", 5, "replay.shift = 5 is invalid; set it to an integer from 0"),
        (
            "data.train_per_digit",
            30,
            "params.yaml: replay.buffer_size = 1000 draws up to 200 examples of each digit of the task [0, 2, 4, 6, 8],"
            " but its train split holds 30 of digit 0 (data.train_per_digit = 30); lower replay.buffer_size to 150",
        ),
        ("data.validation_fraction", 1.0, "data.validation_fraction = 1.0 is invalid"),
        ("model.dropout", 1.0, "model.dropout = 1.0 is invalid"),
        ("seed", True, "seed = True is invalid"),
        ("seed", -1, "seed = -1 is invalid; set it to an integer from 0 to 2**32 - 1"),
        ("seed", 2**32, "seed = 4294967296 is invalid"),
        ("seeds", 0, "seeds = 0 is invalid; set it to an integer from 1 to 100 (repetitions trained together"),
        ("seeds", 2.0, "seeds = 2.0 is invalid"),
        (
            "seed",
            2**32 - 2,
            "seed = 4294967294 with seeds = 5 is invalid: the last repetition's seed, seed + 4 = 4294967298",
        ),
        ("alpha", float("inf"), "alpha = inf is not a finite number; set it to a number >= 0"),
        ("mas.lambda", float("nan"), "mas.lambda = nan is not a finite number"),
        ("finetune.learning_rate", float("-inf"), "finetune.learning_rate = -inf is not a finite number"),
        ("l2", 0.3, "l2 = 0.3 is invalid; set it to a mapping with the keys weight"),
        ("finetune.learning_rate", "1e-4", "finetune.learning_rate = '1e-4' is invalid; set it to a number > 0"),
    ],
)
def test_bad_values_name_the_param_and_the_fix(defaults, key, value, fragment):
    node = defaults
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ForgettingError) as error:
        validate(defaults)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_overlapping_digit_sets_are_rejected(defaults):
    defaults["tasks"] = [[0, 2], [1, 3], [5, 2]]
    with pytest.raises(ForgettingError, match=r"tasks share the digits \[2\]; each digit may belong to one task only"):
        validate(defaults)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tasks": [[0], [1]]}, "task 1 of tasks, [0], has one digit: in the domain scenario its labels are then one"),
        ({"tasks": [[0, 2], [1]], "scenario": "task"}, "task 2 of tasks, [1], has one digit: in the task scenario"),
        (
            {"tasks": [[0], [1, 2]], "scenario": "class", "class_outputs": "seen"},
            "the first task, [0], has one digit: with class_outputs = 'seen' it trains through a softmax over that one",
        ),
    ],
)
def test_a_softmax_over_one_class_is_refused(defaults, values, message):
    """A single-class softmax has loss 0 and accuracy 1 whatever the network does: nothing to measure."""
    defaults.update(values)
    with pytest.raises(ForgettingError) as error:
        validate(defaults)
    assert f"params.yaml: {message}" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("degrees", "task"), [(0, 2), (180, 3), (360, 2), (120, 4)])
def test_rotations_that_repeat_a_task_are_refused(defaults, degrees, task):
    """Rotated MNIST with an angle whose multiples come round again: two tasks are the same images."""
    defaults.update(tasks=[list(range(10))] * 4, task_inputs={"kind": "rotated", "degrees_per_task": degrees})
    defaults["gem"]["memory"] = "per_task"  # GEM's, where the digits recur (test_gem)
    with pytest.raises(ForgettingError) as error:
        validate(defaults)
    assert str(error.value).startswith(f"params.yaml: task_inputs.degrees_per_task = {degrees} turns task {task} by ")
    assert "the tasks repeat; choose an angle whose multiples up to 3 x it differ, e.g. 45" in str(error.value)
    defaults["task_inputs"]["degrees_per_task"] = 15
    validate(defaults)


def test_a_carried_optimizer_is_one_kind(defaults):
    """finetune.carry_optimizer goes on from task A's optimiser: of another kind, its state would mean nothing."""
    defaults["finetune"].update(optimizer="sgd", carry_optimizer=True)
    with pytest.raises(ForgettingError) as error:
        validate(defaults)
    assert str(error.value) == (
        "params.yaml: finetune.carry_optimizer goes on from task A's optimiser, but train.optimizer is 'adam' and "
        "finetune.optimizer 'sgd'; set both to one (or finetune.carry_optimizer to false)"
    )
    defaults["train"]["optimizer"] = "sgd"
    validate(defaults)
    defaults["finetune"]["carry_optimizer"] = False
    defaults["train"]["optimizer"] = "adam"
    validate(defaults)


def test_one_digit_tasks_are_meaningful_in_the_class_scenario(defaults):
    """Over every digit's output (class_outputs: all), a task of one digit still has to be told from the others."""
    defaults.update(tasks=[[0], [1], [2]], scenario="class", class_outputs="all")
    validate(defaults)
    defaults.update(tasks=[[0, 1], [2]], class_outputs="seen")
    validate(defaults)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.update(alhpa=50), "params.yaml: unknown key alhpa (did you mean alpha?)"),
        (lambda p: p["l2"].update(wieght=0.3), "params.yaml: unknown key l2.wieght (did you mean l2.weight?)"),
        # a renamed key is unknown and its old name missing: the unknown one is the typo to report
        (lambda p: p["l2"].update(wieght=p["l2"].pop("weight")), "unknown key l2.wieght (did you mean l2.weight?)"),
        (lambda p: p["mas"].update(lamda=1), "unknown key mas.lamda (did you mean mas.lambda?)"),
        # the Python name of the `lambda` key is not a second spelling of it
        (lambda p: p["mas"].update(lambda_=p["mas"].pop("lambda")), "unknown key mas.lambda_ (did you mean"),
        (
            lambda p: p.update(zzz=1),
            "unknown key zzz (the keys here are seed, seeds, scenario, class_outputs, data, model,",
        ),
        (lambda p: p.pop("si"), "params.yaml: si is missing; add it"),
        (lambda p: p["fisher"].pop("estimator"), "params.yaml: fisher.estimator is missing; add it"),
    ],
)
def test_unknown_and_missing_keys_are_named(defaults, edit, message):
    edit(defaults)
    with pytest.raises(ForgettingError) as error:
        validate(defaults)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_yaml_1_2_numbers_as_dvc_reads_them(tmp_path):
    """`1e-4` is a number for DVC (YAML 1.2), so it is one here too."""
    text = (ROOT / "params.yaml").read_text().replace("learning_rate: 0.0001", "learning_rate: 1e-4")
    (tmp_path / "params.yaml").write_text(text)
    assert validate(read(tmp_path / "params.yaml")).finetune.learning_rate == 1e-4


def test_unreadable_params_file(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: [1\n")
    with pytest.raises(ForgettingError, match=r"params.yaml is not valid YAML .*git diff"):
        read(tmp_path / "params.yaml")


def test_a_strategys_keys_are_required_but_typed_by_its_module(defaults):
    """Without the strategies' modules (every stage but check_params), a key a listed strategy reads is required,
    and its type is its module's: check_params (validate_params) and the strategy's own stage check it."""
    from forgetting.config.params import validate as validate_common
    from forgetting.config.params import validate_section
    from forgetting.strategies import L2

    defaults["l2"]["weight"] = -1
    validate_common(defaults)  # the common sections are fine
    with pytest.raises(ForgettingError, match=r"l2\.weight = -1 is invalid; set it to a number >= 0"):
        validate_section(defaults, L2.params_section)
    defaults.pop("l2")
    with pytest.raises(ForgettingError, match=r"params\.yaml: l2 is missing; add it"):
        validate_common(defaults)
