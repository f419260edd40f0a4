"""Stage scripts on bad input: one clear error line, a non-zero exit, and no output left behind."""

from __future__ import annotations

import csv
import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import EVEN_ODD, run_in
from scipy import stats

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.nn import fisher
from forgetting.nn.model import build_network, save_model, weights_by_path

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


def completed_stage(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """Stage script ``args[0]`` with the arguments ``args[1:]``, run in ``repo`` as DVC runs it there, but in this
    process (``run_in``): its exit status (0 where it returns) and what it printed."""
    argv = sys.argv
    sys.argv = list(args)
    try:
        code, out, err = run_in(repo, lambda: runpy.run_path(args[0], run_name="__main__"))
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(list(args), 0 if isinstance(code, dict) else code, out, err)


def run_stage(repo: Path, *args: str) -> tuple[int, list[str]]:
    done = completed_stage(repo, *args)
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


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("replay.buffer_size", 30000, "replay.buffer_size = 30000 draws up to 6000 examples of each digit of the task"),
        ("gem.draws", 2, "gem.draws = 2 draws each task's memory more than once"),
    ],
)
def test_a_strategys_stage_checks_its_setting_before_any_work(repo, key, value, fragment):
    """check_params' check of a strategy's setting (``check_setting``), run by its own stage too: a targeted `dvc repro
    evaluate@<name>` skips check_params, and the stage would otherwise fail once training had begun (replay's
    buffer) or train on as nobody asked (GEM's per-task draws beside a class-balanced memory)."""
    name = key.partition(".")[0]
    set_param(repo, key, value)
    code, stderr = run_stage(repo, "stages/finetune.py", name)
    assert code == 1
    assert assert_one_error_line(stderr, fragment).startswith(f"error: finetune@{name}: params.yaml: {key} = ")
    assert not (repo / "models").exists()
    assert not (repo / "metrics").exists()


def test_check_params_names_every_strategy_that_cannot_run_at_once(repo):
    """A small run (50 examples per digit) with params.yaml's buffers of 1000: every storing strategy's buffer is too
    large, and check_params names each, with its fix, in one line (one try, not one per strategy; replay's once,
    though equal-steps replay runs it too); with one left, the line is that strategy's alone."""
    set_param(repo, "data.train_per_digit", 50)
    code, stderr = run_stage(repo, "stages/check_params.py")
    line = assert_one_error_line(stderr, "error: check_params: params.yaml: 5 problems with this setting: (1) ")
    named = [f"({i}) {key}.buffer_size = 1000 " for i, key in enumerate(("replay", "agem", "gem", "der", "icarl"), 1)]
    assert code == 1 and [line.index(n) for n in named] == sorted(line.index(n) for n in named)  # dvc.yaml's order
    assert line.count("lower ") == 5 and "lower der.buffer_size to 250" in line
    for key in ("replay", "agem", "gem", "der"):
        set_param(repo, f"{key}.buffer_size", 250)
    code, stderr = run_stage(repo, "stages/check_params.py")
    assert code == 1 and stderr[-1].startswith("error: check_params: params.yaml: icarl.buffer_size = 1000 draws ")
    set_param(repo, "icarl.buffer_size", 250)
    done = completed_stage(repo, "stages/check_params.py")
    assert (done.returncode, done.stdout.strip()) == (0, "params.yaml: every key known, present and valid")


def test_unknown_fisher_estimator(repo):
    set_param(repo, "fisher.estimator", "diag")
    code, stderr = run_stage(repo, "stages/fisher.py")
    assert code == 1
    assert_one_error_line(stderr, "fisher.estimator = 'diag' is invalid", "exact, sampled, empirical")
    assert not (repo / "models").exists()


def test_overlapping_digits(repo):
    set_param(repo, "tasks", [[0, 2], [0, 1, 3]])
    code, stderr = run_stage(repo, "stages/prepare.py")
    assert code == 1
    assert_one_error_line(stderr, "tasks share the digits [0]")
    assert not (repo / "data").exists()


def test_unknown_strategy_in_dvc_yaml(repo):
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline["vars"][0]["strategies"]["ogd"] = {  # listed, with no module
        "params": "alpha",
        "extra": "seed",
        "needs": "models/task_a.keras",
        "builds_on": "base",
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    (repo / "models").mkdir()
    save_model(build_network(5, hidden_units=8, seeds=[42, 43]), repo / "models" / "task_a.keras")
    code, stderr = run_stage(repo, "stages/finetune.py", "ogd")
    assert code == 1
    assert_one_error_line(
        stderr,
        "error: finetune@ogd: dvc.yaml's strategy list (vars: strategies) names 'ogd', but "
        "src/forgetting/strategies/ogd.py does not exist: add the module, or remove the entry",
    )
    assert sorted(p.name for p in (repo / "models").iterdir()) == ["task_a.keras"]
    assert not (repo / "metrics" / "epochs" / "ogd.csv").exists()
    assert not (repo / "metrics" / "epochs" / "repetitions" / "ogd.csv").exists()


def test_missing_si_path_integral_names_the_stage(repo):
    (repo / "models").mkdir()
    save_model(build_network(5, hidden_units=8, seeds=[42, 43]), repo / "models" / "task_a.keras")
    code, stderr = run_stage(repo, "stages/finetune.py", "si")
    assert code == 1
    assert_one_error_line(
        stderr,
        "error: finetune@si: SI path integral file models/task_a_path_integral.npz is missing",
        "run `dvc repro --force --single-item train_a`",
    )
    assert not (repo / "models" / "si.keras").exists()
    assert not (repo / "metrics" / "epochs" / "si.csv").exists()
    assert not (repo / "metrics" / "epochs" / "repetitions" / "si.csv").exists()


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
    net = build_network(5, hidden_units=8, seeds=[42, 43])
    save_model(net, repo / "models" / "task_a.keras")
    (repo / "models" / "fisher.npz").write_bytes(b"PK\x03\x04 cut short")
    code, stderr = run_stage(repo, "stages/finetune.py", "ewc")
    assert code == 1
    assert_one_error_line(stderr, "Fisher file models/fisher.npz is corrupt", "dvc repro --force --single-item fisher")
    assert not (repo / "models" / "ewc.keras").exists()
    assert not (repo / "metrics" / "epochs" / "ewc.csv").exists()
    assert not (repo / "metrics" / "epochs" / "repetitions" / "ewc.csv").exists()
    # a Fisher file of other weights is refused too
    theta = {k: v + 1 for k, v in weights_by_path(net).items()}
    fisher.save_fisher(repo / "models" / "fisher.npz", theta, {k: np.ones_like(v) for k, v in theta.items()})
    code, stderr = run_stage(repo, "stages/finetune.py", "ewc")
    assert code == 1
    assert_one_error_line(stderr, "was computed for other weights", "dvc repro fisher")


def test_too_few_seeds_fail_before_any_work(repo):
    set_param(repo, "seeds", 0)
    code, stderr = run_stage(repo, "stages/train_a.py")
    assert code == 1
    assert_one_error_line(stderr, "error: train_a: params.yaml: seeds = 0 is invalid", "an integer from 1 to 100")
    assert not (repo / "models").exists()
    assert not (repo / "metrics").exists()


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _answering(seeds: list[int], classes: list[int]):
    """A stacked network whose repetition s answers class ``classes[s]`` whatever the image."""
    network = build_network(5, hidden_units=8, seeds=seeds)
    bias = np.zeros((len(seeds), 5), np.float32)
    bias[np.arange(len(seeds)), classes] = 1e4
    network.logits.bias.assign(bias)
    return network


def test_evaluate_writes_every_repetition_and_the_mean_with_its_interval(repo, make_mnist):
    """evaluate@naive on synthetic data, with a model and a task-A model whose repetitions answer one class each
    (so every accuracy is a share of labels) and hand-written training logs: the per-repetition metrics, their
    means and 95% half-widths, the accuracy matrix and the per-epoch records. A log of other repetitions than the
    model's is refused, leaving none of them."""
    seeds, scenario = [42, 43, 44], Scenario("domain", EVEN_ODD)
    tests = {}
    for t, (name, digits) in enumerate(zip(scenario.names, EVEN_ODD, strict=True)):
        task = mnist.build_task(make_mnist(200, seed=1), make_mnist(300, seed=2 + t), list(digits), t, 0.1, seed=0)
        # unbalanced classes (5, 8, 11, ... test examples of label 0, 1, 2, ...), so that the accuracies differ
        label = task["test"].relabel(scenario).label
        task["test"] = task["test"].subset(
            np.concatenate([np.flatnonzero(label == c)[: 5 + 3 * c + t] for c in range(5)])
        )
        mnist.save_task(task, repo / "data" / "prepared" / name)
        tests[name] = task["test"].relabel(scenario).label
    (repo / "models").mkdir()
    save_model(_answering(seeds, [0, 1, 2]), repo / "models" / "naive.keras")
    save_model(_answering(seeds, [1, 2, 3]), repo / "models" / "task_a.keras")
    matrices = {42: [[0.98, 0.1], [0.6, 0.95]], 43: [[0.97, 0.05], [0.5, 0.96]], 44: [[0.99, 0.12], [0.7, 0.94]]}
    repetition_rows = [
        {"epoch": e, "task": task, "seed": seed, "task_a_accuracy": m[i][0], "task_b_accuracy": m[i][1]}
        for e, task, i in [(0, "task_a", 0), (1, "task_b", 1)]
        for seed, m in matrices.items()
    ]
    mean_rows = [
        {"epoch": e, "task": task}
        | {f"{n}_accuracy": np.mean([m[e][j] for m in matrices.values()]) for j, n in enumerate(scenario.names)}
        | {f"{n}_accuracy_ci95": 0.01 * (e + 1) for n in scenario.names}
        for e, task in [(0, "task_a"), (1, "task_b")]
    ]
    _write_csv(repo / "metrics" / "epochs" / "naive.csv", mean_rows)
    _write_csv(
        repo / "metrics" / "epochs" / "repetitions" / "naive.csv", [r for r in repetition_rows if r["seed"] != 44]
    )
    # task A's log begins with each repetition's accuracy at initialisation (FWT's baseline)
    initial = {42: [0.21, 0.2], 43: [0.19, 0.08], 44: [0.2, 0.15]}
    task_a_rows = [
        {"epoch": 0, "task": "task_a", "seed": seed, "task_a_accuracy": a, "task_b_accuracy": b}
        for seed, (a, b) in initial.items()
    ]
    _write_csv(repo / "metrics" / "epochs" / "repetitions" / "task_a.csv", task_a_rows)
    outputs = [
        repo / "metrics" / "naive.json",
        repo / "metrics" / "repetitions" / "naive.json",
        repo / "metrics" / "accuracy_matrix" / "naive.json",
        repo / "metrics" / "accuracy_per_epoch" / "naive.json",
    ]
    command = ("stages/evaluate.py", "naive", "models/naive.keras", "models/task_a.keras")
    code, stderr = run_stage(repo, *command)
    assert code == 1
    assert_one_error_line(
        stderr, "error: evaluate@naive: the training log holds the repetitions [42, 43], the model [42, 43, 44]"
    )
    assert not any(path.exists() for path in outputs)

    _write_csv(repo / "metrics" / "epochs" / "repetitions" / "naive.csv", repetition_rows)
    code, stderr = run_stage(repo, *command)
    assert code == 0, stderr
    final = {name: np.array([np.mean(labels == c) for c in (0, 1, 2)]) for name, labels in tests.items()}
    reference_a = np.array([np.mean(tests["task_a"] == c) for c in (1, 2, 3)])
    expected = {
        "task_a_accuracy": final["task_a"],
        "task_b_accuracy": final["task_b"],
        "mean_accuracy": (final["task_a"] + final["task_b"]) / 2,
        "task_a_forgetting": reference_a - final["task_a"],
        "bwt": np.array([m[1][0] - m[0][0] for m in matrices.values()]),
        "fwt": np.array([m[0][1] - initial[seed][1] for seed, m in matrices.items()]),  # R01 - b_B
    }
    repetitions = json.loads(outputs[1].read_text())
    assert list(repetitions) == ["seed", *expected]
    assert repetitions["seed"] == seeds
    summary = json.loads(outputs[0].read_text())
    assert list(summary) == [key for name in expected for key in (name, f"{name}_ci95")]
    for key, values in expected.items():
        assert np.ptp(values) > 0, key  # so that the intervals are not trivially 0
        np.testing.assert_allclose(repetitions[key], values, atol=1e-6, err_msg=key)
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert summary[key] == pytest.approx(np.mean(values), abs=1e-6), key
        assert summary[f"{key}_ci95"] == pytest.approx((high - low) / 2, abs=1e-6), key
    matrix = json.loads(outputs[2].read_text())
    assert [(r["trained"], r["task"]) for r in matrix] == [(t, n) for t in scenario.names for n in scenario.names]
    by_hand = [mean_rows[i][f"{n}_accuracy"] for i in (0, 1) for n in scenario.names]  # the mean log, not a seed's
    assert [r["accuracy"] for r in matrix] == pytest.approx(by_hand, abs=1e-6)
    per_epoch = json.loads(outputs[3].read_text())
    assert len(per_epoch) == 4
    for record in per_epoch:
        row = mean_rows[record["epoch"]]
        assert record["trained"] == row["task"]
        assert record["accuracy"] == pytest.approx(row[f"{record['task']}_accuracy"], abs=1e-6)
        half = row[f"{record['task']}_accuracy_ci95"]
        assert (record["low"], record["high"]) == pytest.approx((record["accuracy"] - half, record["accuracy"] + half))


def test_evaluate_with_one_repetition_prints_no_interval(repo, make_mnist):
    """seeds: 1 (a quick run, the speed benchmark's): evaluate@naive succeeds, every half-width is null in the files
    and reads "± n/a" in the printed line, as in the report."""
    scenario = Scenario("domain", EVEN_ODD)
    for t, (name, digits) in enumerate(zip(scenario.names, EVEN_ODD, strict=True)):
        task = mnist.build_task(make_mnist(100, seed=1), make_mnist(100, seed=2 + t), list(digits), t, 0.1, seed=0)
        mnist.save_task(task, repo / "data" / "prepared" / name)
    (repo / "models").mkdir()
    save_model(_answering([42], [0]), repo / "models" / "naive.keras")
    save_model(_answering([42], [1]), repo / "models" / "task_a.keras")
    rows = [{"epoch": 0, "task": "task_a", "seed": 42, "task_a_accuracy": 0.9, "task_b_accuracy": 0.2}]
    rows.append(rows[0] | {"epoch": 1, "task": "task_b", "task_a_accuracy": 0.6, "task_b_accuracy": 0.95})
    _write_csv(repo / "metrics" / "epochs" / "repetitions" / "naive.csv", rows)
    _write_csv(repo / "metrics" / "epochs" / "repetitions" / "task_a.csv", rows[:1])
    means = [{k: v for k, v in r.items() if k != "seed"} | {"task_a_accuracy_ci95": "", "task_b_accuracy_ci95": ""}
             for r in rows]  # fmt: skip
    _write_csv(repo / "metrics" / "epochs" / "naive.csv", means)
    done = completed_stage(repo, "stages/evaluate.py", "naive")
    assert done.returncode == 0, done.stderr
    summary = json.loads((repo / "metrics" / "naive.json").read_text())
    assert summary["bwt"] == pytest.approx(0.6 - 0.9) and summary["bwt_ci95"] is None
    assert all(summary[key] is None for key in summary if key.endswith("_ci95"))
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("naive ")]
    assert "bwt -0.3000 ± n/a" in line and line.count("± n/a") == len(summary) // 2
