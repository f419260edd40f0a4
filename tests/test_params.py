from pathlib import Path

import pytest
import yaml

from forgetting.errors import ForgettingError
from forgetting.params import validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def defaults() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid(defaults):
    validate(defaults)
    assert defaults["fisher"]["estimator"] == "exact"
    assert defaults["fisher"]["num_examples"] == "all"
    assert defaults["data"]["validation_fraction"] == 0.1
    assert defaults["l2"]["weight"] == 1.0


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
        ("data.task_a_digits", [], "data.task_a_digits = [] is invalid"),
        ("data.task_b_digits", [1, 12], "data.task_b_digits = [1, 12] is invalid; set it to a non-empty list"),
        ("data.task_a_digits", [2, 2], "data.task_a_digits = [2, 2] is invalid"),
        ("data.validation_fraction", 1.0, "data.validation_fraction = 1.0 is invalid"),
        ("model.dropout", 1.0, "model.dropout = 1.0 is invalid"),
        ("seed", True, "seed = True is invalid"),
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
    defaults["data"]["task_b_digits"] = [1, 2, 3]
    with pytest.raises(ForgettingError, match=r"share \[2\]; each digit may belong to one task only"):
        validate(defaults)


def test_a_stage_only_validates_what_it_declares():
    validate({"alpha": 3.0, "seed": 1})  # no other keys: nothing else to check
