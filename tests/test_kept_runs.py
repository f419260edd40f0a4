"""Kept runs (the settings page's and Hsu et al.'s Table 2's benchmarks): which models a project copy's dvc.lock no
longer stands for, so that only those rerun (forgetting.tuning.project.stale_models)."""

from pathlib import Path

import pytest
import yaml

from forgetting.evaluation.results import models
from forgetting.tuning import project

ROOT = Path(__file__).resolve().parents[1]


def test_a_status_entry_changes_results_through_code_params_or_command_only():
    products = {"data/prepared", "models/task_a.keras", "models/ewc.keras", "metrics/epochs/ewc.csv"}

    def changes(entry):
        return project.changes_results(entry, products)

    assert changes("changed command")
    assert changes({"changed deps": {"params.yaml": {"alpha": "modified"}}})
    assert changes({"changed deps": {"src/forgetting/strategies/l2.py": "modified", "data/prepared": "deleted"}})
    assert changes({"changed deps": {"params.yaml": "new"}})  # a stage the lock lacks
    # another stage's products, absent (no cache holds them) or another run's (a log the copy came with)
    assert not changes({"changed deps": {"data/prepared": "deleted", "models/task_a.keras": "deleted"}})
    assert not changes({"changed deps": {"metrics/epochs/ewc.csv": "modified"}})
    assert not changes({"changed outs": {"models/ewc.keras": "not in cache", "metrics/epochs/ewc.csv": "modified"}})


def _edit_params(repo: Path, **values) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in values.items():
        *sections, key = dotted.split("__")
        target = params
        for section in sections:
            target = target[section]
        target[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DVC's Python API about its own internals
def test_the_stale_models_are_those_whose_stages_code_params_or_upstream_changed(tmp_path):
    """A copy of the project with its dvc.lock and none of its products (as a kept run's record, on a machine whose
    DVC cache holds none of them): another run's log changes nothing, an L2 weight makes the l2 model stale, an edit
    of ewc.py the ewc and online_ewc models (online EWC builds on it), and the number of repetitions every model
    (train_a is upstream of all)."""
    repo = project.copy_project(ROOT, tmp_path / "repo", share_cache=False)
    names = models()
    before = set(project.stale_models(repo, names))  # a working tree's edits not yet run (CI's clone: none)
    assert before.isdisjoint({"l2", "ewc", "online_ewc"}), f"stale before any edit: {sorted(before)} (run them first)"
    (repo / "metrics" / "epochs" / "naive.csv").write_text("epoch\n0\n")  # a log of another run (another setting)
    assert set(project.stale_models(repo, names)) == before
    _edit_params(repo, l2__weight=123.0)
    with open(repo / "src" / "forgetting" / "strategies" / "ewc.py", "a") as handle:
        handle.write("# an edit\n")
    after = project.stale_models(repo, names)
    assert set(after) == before | {"l2", "ewc", "online_ewc"}
    assert after == [name for name in names if name in set(after)]  # in the models' order
    _edit_params(repo, seeds=2)
    assert project.stale_models(repo, names) == names
