"""End to end on real MNIST: the DVC pipeline in a fresh git repo, its metrics, caching and an alpha experiment.

Needs the four MNIST .gz files: in $FORGETTING_MNIST_DIR, data/raw/mnist/ or ../shared/data/mnist/. Without
them the test is skipped, except under CI (CI=true), where it fails.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from forgetting.data import MNIST_FILES

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("naive", "l2", "ewc", "online_ewc", "si", "mas", "lwf", "replay")
ALL_STAGES = {
    "prepare",
    "train_a",
    "train_joint",
    "fisher",
    *(f"finetune@{s}" for s in STRATEGIES),
    *(f"evaluate@{s}" for s in ("task_a", "joint", *STRATEGIES)),
}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
}


def mnist_dir() -> Path | None:
    candidates = [os.environ.get("FORGETTING_MNIST_DIR"), ROOT / "data/raw/mnist", ROOT.parent / "shared/data/mnist"]
    for candidate in filter(None, candidates):
        if all((Path(candidate) / name).is_file() for name in MNIST_FILES):
            return Path(candidate)
    return None


def run(repo: Path, *command: str) -> str:
    """Run a command in ``repo`` with this interpreter's environment first on PATH (for `dvc` and the stages'
    `python`), even when it is not activated."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **GIT_ENV, "PATH": path}
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-5000:]}"
    return output


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def read_metrics(repo: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((repo / "metrics").glob("*.json"))}


def copy_project(destination: Path) -> Path:
    """The project's git-tracked files and the MNIST files in a fresh git repo at ``destination``."""
    source = mnist_dir()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("MNIST files not found: .ci/run should copy ../shared/data/mnist/* into data/raw/mnist/")
        pytest.skip("MNIST files not found (set FORGETTING_MNIST_DIR)")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.split():
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination / name)
    (destination / "data/raw/mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(source / name, destination / "data/raw/mnist" / name)
    run(destination, "git", "init", "-q")
    run(destination, "git", "add", "-A")
    run(destination, "git", "commit", "-qm", "clone")
    return destination


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("e2e") / "repo")


@pytest.mark.e2e
def test_pipeline_end_to_end(repo):
    # A full run from an empty cache runs every stage.
    assert stages_run(run(repo, "dvc", "repro")) == ALL_STAGES

    metrics = read_metrics(repo)
    assert set(metrics) == {"task_a", "joint", *STRATEGIES}
    for name, values in metrics.items():
        keys = {"task_a_accuracy", "task_b_accuracy", "mean_accuracy"}
        if name in STRATEGIES:
            keys |= {"task_a_forgetting", "accuracy_matrix", "bwt"}
            assert values["bwt"] == pytest.approx(-values["task_a_forgetting"], abs=2e-6)
        if name == "task_a":
            keys.add("accuracy_matrix")
        assert set(values) == keys, name
        assert all(0 <= values[k] <= 1 for k in ("task_a_accuracy", "task_b_accuracy", "mean_accuracy"))
        assert values["mean_accuracy"] == pytest.approx((values["task_a_accuracy"] + values["task_b_accuracy"]) / 2)
    assert metrics["task_a"]["task_a_accuracy"] > 0.95
    assert metrics["joint"]["mean_accuracy"] > 0.95
    assert metrics["naive"]["task_a_accuracy"] < 0.6
    assert metrics["naive"]["task_b_accuracy"] > 0.95
    assert metrics["ewc"]["task_a_accuracy"] > metrics["naive"]["task_a_accuracy"]
    assert metrics["l2"]["task_a_accuracy"] > metrics["naive"]["task_a_accuracy"]
    assert metrics["replay"]["mean_accuracy"] > 0.9
    params = yaml.safe_load((repo / "params.yaml").read_text())
    if params["online_ewc"]["alpha"] == params["alpha"]:  # with two tasks online EWC is EWC
        assert metrics["online_ewc"]["mean_accuracy"] == metrics["ewc"]["mean_accuracy"]
    for name in ("l2", "ewc", "si", "mas", "lwf", "replay"):
        assert metrics[name]["task_a_accuracy"] > metrics["naive"]["task_a_accuracy"], name
    for name in STRATEGIES:
        forgetting = metrics["task_a"]["task_a_accuracy"] - metrics[name]["task_a_accuracy"]
        assert metrics[name]["task_a_forgetting"] == pytest.approx(forgetting, abs=2e-6)

    # The per-epoch log: epoch 0 is the task-A model, then one row per fine-tuning epoch.
    for name in STRATEGIES:
        with open(repo / f"metrics/epochs/{name}.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["epoch"]) for r in rows] == list(range(7))
        assert float(rows[0]["task_a_accuracy"]) == pytest.approx(metrics["task_a"]["task_a_accuracy"], abs=1e-6)
        assert float(rows[-1]["task_a_accuracy"]) == pytest.approx(metrics[name]["task_a_accuracy"], abs=1e-6)
        assert float(rows[-1]["task_b_accuracy"]) == pytest.approx(metrics[name]["task_b_accuracy"], abs=1e-6)
        matrix = metrics[name]["accuracy_matrix"]
        assert matrix["after_task_a"]["task_a"] == metrics["task_a"]["task_a_accuracy"]
        assert matrix["after_task_b"]["task_b"] == metrics[name]["task_b_accuracy"]

    # Nothing changed: nothing runs.
    assert stages_run(run(repo, "dvc", "repro")) == set()

    # Determinism: rerunning a stage with the same params reproduces its metrics exactly.
    run(repo, "dvc", "repro", "--force", "--single-item", "finetune@naive", "evaluate@naive")
    assert read_metrics(repo)["naive"] == metrics["naive"]

    # DVC's views: one metrics row per model, plots of the per-epoch CSVs.
    shown = run(repo, "dvc", "metrics", "show", "--json")
    assert all(f"metrics/{name}.json" in shown for name in metrics)
    run(repo, "dvc", "plots", "show", "-o", "plots_html")
    html = (repo / "plots_html" / "index.html").read_text()
    assert "task_a_accuracy" in html

    # An alpha experiment reruns only the EWC work.
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "results")
    params_before = (repo / "params.yaml").read_text().splitlines()
    assert stages_run(run(repo, "dvc", "exp", "run", "-S", "alpha=50")) == {"finetune@ewc", "evaluate@ewc"}
    params_after = (repo / "params.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(params_before, params_after, strict=True) if a != b]
    assert changed == [(f"alpha: {params['alpha']}", "alpha: 50")], "DVC rewrote params.yaml beyond the alpha line"
    assert read_metrics(repo)["naive"] == metrics["naive"]
    diff = run(repo, "dvc", "metrics", "diff", "--json")
    assert "metrics/ewc.json" in diff


FIVE_TASKS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


@pytest.mark.e2e
@pytest.mark.parametrize("scenario", ["domain", "class"])
def test_five_task_sequence_end_to_end(tmp_path, scenario):
    """The standard 5-task split on a small real-MNIST subset (200 train examples per digit, two epochs per task):
    every strategy trains through all five tasks; the metrics hold the 5x5 accuracy matrix and BWT."""
    repo = copy_project(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params |= {"tasks": FIVE_TASKS, "scenario": scenario}
    params["data"]["train_per_digit"] = 200
    params["train"] |= {"epochs_a": 2, "epochs_joint": 2}
    params["finetune"] |= {"epochs": 2, "learning_rate": 0.001}  # a quick run: the full rate
    params["replay"]["buffer_size"] = 100
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert stages_run(run(repo, "dvc", "repro")) == ALL_STAGES

    metrics = read_metrics(repo)
    names = [f"task_{letter}" for letter in "abcde"]
    prepared = sorted(p.name for p in (repo / "data/prepared").iterdir())
    assert prepared == names
    for name in STRATEGIES:
        values = metrics[name]
        matrix = [[values["accuracy_matrix"][f"after_{i}"][j] for j in names] for i in names]
        assert len(matrix) == 5 and all(len(row) == 5 for row in matrix), name
        final = [values[f"{j}_accuracy"] for j in names]
        assert matrix[-1] == pytest.approx(final, abs=2e-6), name
        assert values["mean_accuracy"] == pytest.approx(sum(final) / 5, abs=2e-6)
        bwt = sum(matrix[4][i] - matrix[i][i] for i in range(4)) / 4
        assert values["bwt"] == pytest.approx(bwt, abs=2e-6), name
        assert matrix[0] == pytest.approx([metrics["task_a"][f"{j}_accuracy"] for j in names], abs=2e-6)
        with open(repo / f"metrics/epochs/{name}.csv") as handle:
            tasks = [row["task"] for row in csv.DictReader(handle)]
        assert tasks == ["task_a", *[n for n in names[1:] for _ in range(2)]], name  # two epochs per task
    assert all(metrics["naive"]["accuracy_matrix"][f"after_{n}"][n] > 0.6 for n in names)  # each task is learnt
    if scenario == "class":  # the classic result: without replay, class-incremental learning forgets everything
        assert metrics["naive"]["bwt"] < -0.8
        assert metrics["replay"]["mean_accuracy"] > metrics["naive"]["mean_accuracy"] + 0.2
    else:
        assert metrics["naive"]["bwt"] < 0
    assert metrics["joint"]["mean_accuracy"] > max(metrics[name]["mean_accuracy"] for name in STRATEGIES) - 0.05
