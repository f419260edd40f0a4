"""One strategy list (dvc.yaml's ``vars: strategies``): every place that needs the strategies takes them from there,
and each entry agrees with its strategy's module. A failure names the place that disagrees."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from forgetting.config import params
from forgetting.config.pipeline import owned_keys
from forgetting.errors import ForgettingError
from forgetting.reporting import figures, report
from forgetting.strategies import (
    PIPELINE,
    Strategy,
    TaskAState,
    available,
    listed,
    strategy_class,
    validate_params,
)

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_VARS = {k: v for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"] for k, v in entry.items()}
ENTRIES = PIPELINE_VARS["strategies"]


def test_the_list_is_read_from_the_working_directorys_dvc_yaml(tmp_path, monkeypatch):
    assert PIPELINE == ROOT / "dvc.yaml"
    assert listed() == list(ENTRIES) == listed(ROOT / "dvc.yaml")
    (tmp_path / "dvc.yaml").write_text("vars:\n- strategies: {ewc: {}, naive: {}}\nstages: {}\n")
    monkeypatch.chdir(tmp_path)
    assert listed() == ["ewc", "naive"]


def test_every_strategy_module_is_listed_and_every_listed_strategy_has_a_module():
    assert set(listed()) - set(available()) == set(), "dvc.yaml lists strategies with no module in strategies/"
    assert set(available()) - set(listed()) == set(), "strategies/ has modules that dvc.yaml's list leaves out"


def test_dvc_runs_a_finetune_and_an_evaluate_stage_for_each_listed_strategy():
    with Repo(str(ROOT)) as repo:
        stages = {stage.addressing for stage in repo.index.stages}
    assert {s.partition("@")[2] for s in stages if s.startswith("finetune@")} == set(listed())
    assert {s.partition("@")[2] for s in stages if s.startswith("evaluate@")} == set(report.models())
    assert list(PIPELINE_VARS["models"]) == [*listed(), "task_a", "joint"]


@pytest.mark.parametrize("name", listed())
def test_each_entry_agrees_with_its_module(name):
    entry, cls = ENTRIES[name], strategy_class(name)
    own = list(cls.params_section) or ["seed"]  # naive reads no key of its own: it repeats seed
    assert [entry["params"]] == own, f"dvc.yaml: strategies.{name}.params must be {name}.py's params_section key"
    assert {key.split(".")[0] for key in cls.hyperparameters} <= set(cls.params_section), f"{name}.py"
    expected_extra = "fisher" if "fisher" in cls.task_a_needs else "seed"
    assert entry["extra"] == expected_extra, f"dvc.yaml: strategies.{name}.extra"
    products = TaskAState.files()
    needs = [products[need].as_posix() for need in cls.task_a_needs] or [products["model"].as_posix()]
    assert [entry["needs"]] == needs, f"dvc.yaml: strategies.{name}.needs must be {name}.py's task_a_needs"
    parents = [c.__module__.rpartition(".")[2] for c in cls.__mro__[1:] if c.__module__.rpartition(".")[2] in listed()]
    assert entry["builds_on"] == (parents[0] if parents else "base"), f"dvc.yaml: strategies.{name}.builds_on"


@pytest.mark.parametrize("name", listed())
def test_each_strategy_module_defines_its_strategy_with_its_hooks(name):
    cls = strategy_class(name)
    assert issubclass(cls, Strategy) and cls.name == name
    assert inspect.getdoc(inspect.getmodule(cls)), f"{name}.py: the module docstring states the method's math"
    declared = {key.split(".")[0] for key in params.declared(f"finetune@{name}", ROOT / "dvc.yaml")}
    assert set(cls.params_section) <= declared, f"finetune@{name} does not declare {name}.py's own keys"
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(cls.params_section) <= set(committed), f"params.yaml has no {', '.join(cls.params_section)}"


@pytest.mark.parametrize("name", available())
def test_the_keys_a_module_owns_are_read_without_importing_it(name):
    """params.py (no TensorFlow) reads each module's params_section keys from its source: the same as imported."""
    assert list(owned_keys(name)) == list(strategy_class(name).params_section)


def test_a_strategy_left_out_of_the_list_keeps_its_params_but_a_listed_one_needs_them(tmp_path, monkeypatch):
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    pipeline = (ROOT / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(pipeline.replace("    ewc: {", "    # ewc: {", 1))
    monkeypatch.chdir(tmp_path)
    assert "ewc" not in listed()
    validate_params(committed)  # alpha, ewc's key, is still allowed ...
    without = {k: v for k, v in committed.items() if k != "alpha"}
    validate_params(without)  # ... and may go
    with pytest.raises(ForgettingError, match=r"params\.yaml: l2 is missing"):
        validate_params({k: v for k, v in committed.items() if k != "l2"})


def test_the_report_and_its_figures_take_the_list():
    assert report.models() == ["task_a", "joint", *listed()]
    colours = [figures.colour(name) for name in listed()]
    assert len(set(colours)) == len(colours), "figures: two strategies share a colour"
    assert figures.colour("joint") not in colours and figures.colour("task_a") not in colours
    assert len(set(figures.PALETTE)) == len(figures.PALETTE) >= 18  # room for 10 more strategies


def test_a_strategy_is_found_by_its_module_name_only(tmp_path):
    assert strategy_class("online_ewc").__name__ == "OnlineEWC"
    with pytest.raises(Exception, match="unknown strategy 'ge'"):
        strategy_class("ge")
