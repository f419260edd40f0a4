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

from forgetting.data import MNIST_FILES

ROOT = Path(__file__).resolve().parents[1]
ALL_STAGES = {
    "prepare",
    "train_a",
    "train_joint",
    "fisher",
    *(f"finetune@{s}" for s in ("naive", "l2", "ewc", "replay", "lwf")),
    *(f"evaluate@{s}" for s in ("task_a", "joint", "naive", "l2", "ewc", "replay", "lwf")),
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


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    source = mnist_dir()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("MNIST files not found: .ci/run should copy ../shared/data/mnist/* into data/raw/mnist/")
        pytest.skip("MNIST files not found (set FORGETTING_MNIST_DIR)")
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.split():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / "data/raw/mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(source / name, repo / "data/raw/mnist" / name)
    run(repo, "git", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "clone")
    return repo


@pytest.mark.e2e
def test_pipeline_end_to_end(repo):
    # A full run from an empty cache runs every stage.
    assert stages_run(run(repo, "dvc", "repro")) == ALL_STAGES

    metrics = read_metrics(repo)
    assert set(metrics) == {"task_a", "joint", "naive", "l2", "ewc", "replay", "lwf"}
    for name, values in metrics.items():
        keys = {"task_a_accuracy", "task_b_accuracy", "mean_accuracy"}
        if name in ("naive", "l2", "ewc", "replay", "lwf"):
            keys.add("task_a_forgetting")
        assert set(values) == keys, name
        assert all(0 <= values[k] <= 1 or k == "task_a_forgetting" for k in values)
        assert values["mean_accuracy"] == pytest.approx((values["task_a_accuracy"] + values["task_b_accuracy"]) / 2)
    assert metrics["task_a"]["task_a_accuracy"] > 0.95
    assert metrics["joint"]["mean_accuracy"] > 0.95
    assert metrics["naive"]["task_a_accuracy"] < 0.6
    assert metrics["naive"]["task_b_accuracy"] > 0.95
    assert metrics["ewc"]["task_a_accuracy"] > metrics["naive"]["task_a_accuracy"]
    assert metrics["l2"]["task_a_accuracy"] > metrics["naive"]["task_a_accuracy"]
    assert metrics["replay"]["mean_accuracy"] > 0.9
    assert metrics["lwf"]["task_a_accuracy"] > metrics["naive"]["task_a_accuracy"]
    for name in ("naive", "l2", "ewc", "replay", "lwf"):
        forgetting = metrics["task_a"]["task_a_accuracy"] - metrics[name]["task_a_accuracy"]
        assert metrics[name]["task_a_forgetting"] == pytest.approx(forgetting, abs=2e-6)

    # The per-epoch log: epoch 0 is the task-A model, then one row per fine-tuning epoch.
    for name in ("naive", "l2", "ewc", "replay", "lwf"):
        with open(repo / f"metrics/epochs/{name}.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["epoch"]) for r in rows] == list(range(7))
        assert float(rows[0]["task_a_accuracy"]) == pytest.approx(metrics["task_a"]["task_a_accuracy"], abs=1e-6)
        assert float(rows[-1]["task_a_accuracy"]) == pytest.approx(metrics[name]["task_a_accuracy"], abs=1e-6)
        assert float(rows[-1]["task_b_accuracy"]) == pytest.approx(metrics[name]["task_b_accuracy"], abs=1e-6)

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
    assert changed == [("alpha: 25", "alpha: 50")], "DVC rewrote params.yaml beyond the alpha line"
    assert read_metrics(repo)["naive"] == metrics["naive"]
    diff = run(repo, "dvc", "metrics", "diff", "--json")
    assert "metrics/ewc.json" in diff
