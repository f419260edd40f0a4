"""Stage scripts on bad input: one clear error line, a non-zero exit, and no output left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from forgetting import fisher
from forgetting.model import build_mlp, save_model, weights_by_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path) -> Path:
    """A minimal DVC repo with the project's dvc.yaml, params.yaml and stage scripts."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def set_param(repo: Path, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def run_stage(repo: Path, *args: str) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True, env=env, timeout=300)
    return done.returncode, done.stderr.strip().splitlines()


def assert_one_error_line(stderr: list[str], *fragments: str) -> str:
    errors = [line for line in stderr if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert stderr[-1] == errors[0], "the error is the last thing printed"
    for fragment in fragments:
        assert fragment in errors[0]
    return errors[0]


def test_negative_alpha_fails_before_any_work(repo):
    set_param(repo, "alpha", -1)
    code, stderr = run_stage(repo, "stages/finetune.py", "ewc")
    assert code == 1
    assert stderr == [
        "error: finetune@ewc: params.yaml: alpha = -1 is invalid; set it to a number >= 0 (0 turns EWC into naive "
        "fine-tuning)"
    ]
    assert not (repo / "models").exists()
    assert not (repo / "metrics").exists()


def test_unknown_fisher_estimator(repo):
    set_param(repo, "fisher.estimator", "diag")
    code, stderr = run_stage(repo, "stages/fisher.py")
    assert code == 1
    assert_one_error_line(stderr, "fisher.estimator = 'diag' is invalid", "exact, sampled, empirical")


def test_overlapping_digits(repo):
    set_param(repo, "tasks", [[0, 2], [0, 1, 3]])
    code, stderr = run_stage(repo, "stages/prepare.py")
    assert code == 1
    assert_one_error_line(stderr, "tasks share the digits [0]")
    assert not (repo / "data").exists()


def test_unknown_strategy_in_dvc_yaml(repo):
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline["stages"]["finetune"]["foreach"]["agem"] = {
        "param": "alpha",
        "extra": "seed",
        "needs": "models/task_a.keras",
        "builds_on": "base",
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    (repo / "models").mkdir()
    save_model(build_mlp(5), repo / "models" / "task_a.keras")
    code, stderr = run_stage(repo, "stages/finetune.py", "agem")
    assert code == 1
    assert_one_error_line(
        stderr, "unknown strategy 'agem': use one of naive, l2, ewc, online_ewc, si, mas, lwf, replay"
    )
    assert sorted(p.name for p in (repo / "models").iterdir()) == ["task_a.keras"]
    assert not (repo / "metrics" / "epochs" / "agem.csv").exists()


def test_missing_si_path_integral_names_the_stage(repo):
    (repo / "models").mkdir()
    save_model(build_mlp(5), repo / "models" / "task_a.keras")
    code, stderr = run_stage(repo, "stages/finetune.py", "si")
    assert code == 1
    assert_one_error_line(
        stderr,
        "error: finetune@si: SI path integral file models/task_a_path_integral.npz is missing",
        "run `dvc repro --force --single-item train_a`",
    )
    assert not (repo / "models" / "si.keras").exists()
    assert not (repo / "metrics" / "epochs" / "si.csv").exists()


def test_missing_mnist(repo, tmp_path_factory):
    empty = tmp_path_factory.mktemp("no_mnist")
    set_param(repo, "data.manual_dir", str(empty))
    set_param(repo, "data.tfds_dir", str(empty / "tfds"))
    code, stderr = run_stage(repo, "stages/prepare.py")
    assert code == 1
    assert_one_error_line(
        stderr, str(empty), "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "data.manual_dir"
    )
    assert not (repo / "data" / "prepared").exists()


def test_corrupt_checkpoint(repo):
    (repo / "models").mkdir()
    (repo / "models" / "task_a.keras").write_bytes(b"this is not a zip archive")
    code, stderr = run_stage(repo, "stages/fisher.py")
    assert code == 1
    assert_one_error_line(
        stderr, "error: fisher: checkpoint models/task_a.keras is corrupt", "dvc repro --force --single-item train_a"
    )
    assert not (repo / "models" / "fisher.npz").exists()


def test_corrupt_fisher_leaves_no_ewc_outputs(repo):
    (repo / "models").mkdir()
    net = build_mlp(5)
    save_model(net, repo / "models" / "task_a.keras")
    (repo / "models" / "fisher.npz").write_bytes(b"PK\x03\x04 cut short")
    code, stderr = run_stage(repo, "stages/finetune.py", "ewc")
    assert code == 1
    assert_one_error_line(stderr, "Fisher file models/fisher.npz is corrupt", "dvc repro --force --single-item fisher")
    assert not (repo / "models" / "ewc.keras").exists()
    assert not (repo / "metrics" / "epochs" / "ewc.csv").exists()
    # a Fisher file of other weights is refused too
    theta = {k: v + 1 for k, v in weights_by_path(net).items()}
    fisher.save_fisher(repo / "models" / "fisher.npz", theta, {k: np.ones_like(v) for k, v in theta.items()})
    code, stderr = run_stage(repo, "stages/finetune.py", "ewc")
    assert code == 1
    assert_one_error_line(stderr, "was computed for other weights", "dvc repro fisher")
