"""``forgetting diff``: two models' metrics side by side with paired 95% intervals and p-values over shared seeds,
checked against scipy on hand-made metrics folders, at git revisions and DVC experiments, and on the committed run."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from forgetting import cli
from forgetting.config.pipeline import listed
from forgetting.errors import ForgettingError
from forgetting.reporting import diff

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [42, 43, 44, 45, 46]
LISTED = ["joint", "ewc", "l2", "online_ewc", "mas", "replay", "solo", "si"]  # si: listed, never evaluated


def repetitions(seed: int, keys=("task_a_accuracy", "mean_accuracy", "task_a_forgetting"), seeds=SEEDS) -> dict:
    """Random per-repetition metrics (6 decimals, as evaluate writes them) for ``seeds``."""
    rng = np.random.default_rng(seed)
    return {"seed": list(seeds), **{key: [round(v, 6) for v in rng.uniform(0.5, 0.9, len(seeds))] for key in keys}}


def write_model(root: Path, name: str, reps: dict) -> None:
    """metrics/<name>.json (each metric's mean and a placeholder ``_ci95``) and metrics/repetitions/<name>.json."""
    means = {}
    for key, values in reps.items():
        if key != "seed":
            means[key] = round(float(np.mean(values)), 6)
            means[f"{key}_ci95"] = 0.5
    (root / "metrics/repetitions").mkdir(parents=True, exist_ok=True)
    (root / f"metrics/{name}.json").write_text(json.dumps(means))
    (root / f"metrics/repetitions/{name}.json").write_text(json.dumps(reps))


def reorder(reps: dict, order: list[int]) -> dict:
    """``reps`` with its repetitions in the order of the indices ``order``."""
    return {key: [values[i] for i in order] for key, values in reps.items()}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project root (the cwd) whose dvc.yaml lists LISTED: joint lacks task_a_forgetting, online_ewc is l2 with
    its seeds in reverse order, mas shares 3 of ewc's seeds, replay none, solo one, si has no files."""
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {}, "metrics": [f"metrics/{n}.json" for n in LISTED]}))
    write_model(tmp_path, "joint", repetitions(0, keys=("task_a_accuracy", "mean_accuracy")))
    write_model(tmp_path, "ewc", repetitions(1))
    write_model(tmp_path, "l2", repetitions(2))
    write_model(tmp_path, "online_ewc", reorder(repetitions(2), [4, 3, 2, 1, 0]))
    write_model(tmp_path, "mas", repetitions(3, seeds=[47, 44, 48, 45, 46]))
    write_model(tmp_path, "replay", repetitions(4, seeds=[1, 2]))
    write_model(tmp_path, "solo", repetitions(5, seeds=[46]))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``forgetting diff ARGV``, with the console's error handling."""
    parser = argparse.ArgumentParser(prog="forgetting diff")
    diff.add_arguments(parser)
    try:
        code = diff.run(parser.parse_args(argv))
    except ForgettingError as exc:
        print(f"error: forgetting diff: {exc}", file=sys.stderr)
        code = 1
    out, err = capsys.readouterr()
    return code, out, err


def table(out: str) -> list[list[str]]:
    """The printed table's cells, row by row (columns are two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def load(name: str) -> tuple[dict, dict]:
    """A model's means and repetitions as written in the cwd."""
    return tuple(
        json.loads(Path(path).read_text()) for path in (f"metrics/{name}.json", f"metrics/repetitions/{name}.json")
    )


def expected(old: str, new: str, key: str, seeds: list[int]) -> tuple[float, float, float]:
    """scipy's mean of new - old over ``seeds``, its 95% t half-width and the paired t-test's p-value."""
    a, b = ([dict(zip(r["seed"], r[key], strict=True))[s] for s in seeds] for r in (load(old)[1], load(new)[1]))
    d = np.subtract(b, a)
    return d.mean(), stats.t.ppf(0.975, len(d) - 1) * stats.sem(d), stats.ttest_rel(b, a).pvalue


def test_table_rows_match_scipy(project, capsys):
    code, out, err = invoke(capsys, "ewc", "l2", "--precision", "6")
    rows = table(out)
    assert (code, err) == (0, "")
    assert rows[0] == ["Metric", "ewc", "l2", "Change", "95% CI", "p", "verdict"]
    assert [row[0] for row in rows[1:]] == ["task_a_accuracy", "mean_accuracy", "task_a_forgetting"]
    for metric, a, b, change, ci, p, verdict in rows[1:]:
        mean, half, p_value = expected("ewc", "l2", metric, SEEDS)
        assert (float(a), float(b)) == (load("ewc")[0][metric], load("l2")[0][metric])
        assert change == f"{mean:+.6f}"
        assert ci == f"±{half:.6f}"
        assert p == f"{p_value:.6f}"
        assert verdict == ("real" if abs(mean) > half else "not resolved")


def test_default_precision_is_4_decimals(project, capsys):
    row = table(invoke(capsys, "ewc", "l2")[1])[2]
    assert row[:3] == [
        "mean_accuracy",
        f"{load('ewc')[0]['mean_accuracy']:.4f}",
        f"{load('l2')[0]['mean_accuracy']:.4f}",
    ]


def test_json(project, capsys):
    code, out, _ = invoke(capsys, "ewc", "l2", "--json")
    result = json.loads(out)
    assert (code, result["old"], result["new"], result["seeds"]) == (0, "ewc", "l2", SEEDS)
    assert list(result["metrics"]) == ["task_a_accuracy", "mean_accuracy", "task_a_forgetting"]
    for metric, entry in result["metrics"].items():
        mean, half, p = expected("ewc", "l2", metric, SEEDS)
        assert entry["old"] == load("ewc")[0][metric]
        assert entry["new"] == load("l2")[0][metric]
        assert [entry["diff"], entry["ci95"], entry["p"]] == pytest.approx([mean, half, p], rel=1e-12)
        assert entry["verdict"] == ("real" if abs(mean) > half else "not resolved")


def test_identical_models_give_null_p(project, capsys):
    write_model(project, "mas", repetitions(2))  # the same numbers as l2
    entry = json.loads(invoke(capsys, "l2", "mas", "--json")[1])["metrics"]["mean_accuracy"]
    assert entry | {"old": 0, "new": 0} == {"old": 0, "new": 0, "diff": 0, "ci95": 0, "p": None, "verdict": "identical"}


def test_markdown(project, capsys):
    lines = invoke(capsys, "ewc", "l2", "--md")[1].splitlines()
    plain = table(invoke(capsys, "ewc", "l2")[1])
    assert re.fullmatch(r"(\|-+)+\|", lines[1])
    assert len(lines) == len(plain) + 1
    for line, cells in zip([lines[0], *lines[2:]], plain, strict=True):
        assert [cell.strip() for cell in line.strip("|").split("|")] == cells
    assert len({len(line) for line in lines}) == 1


def test_seeds_matched_by_value_not_position(project, capsys):
    reversed_seeds, in_order = (json.loads(invoke(capsys, "ewc", new, "--json")[1]) for new in ("online_ewc", "l2"))
    assert reversed_seeds["seeds"] == in_order["seeds"] == SEEDS
    assert reversed_seeds["metrics"] == in_order["metrics"]


def test_partially_shared_seeds(project, capsys):
    code, out, err = invoke(capsys, "ewc", "mas", "--json")
    assert code == 0
    entry = json.loads(out)["metrics"]["mean_accuracy"]
    assert json.loads(out)["seeds"] == [44, 45, 46]
    assert [entry["diff"], entry["ci95"], entry["p"]] == pytest.approx(
        expected("ewc", "mas", "mean_accuracy", [44, 45, 46])
    )
    assert entry["new"] == load("mas")[0]["mean_accuracy"]  # the mean over all of mas's seeds
    assert err == "note: Change, 95% CI and p over the 3 shared seeds [44, 45, 46] (A and B: means over every seed)\n"


def test_one_shared_seed_gives_no_interval(project, capsys):
    row = table(invoke(capsys, "ewc", "solo")[1])[2]
    assert row[4:] == ["±n/a", "-", "not resolved"]  # as the report shows it: no interval, not a zero one


def test_metrics_only_one_model_has(project, capsys):
    rows = table(invoke(capsys, "joint", "ewc")[1])
    assert [row[0] for row in rows[1:]] == ["task_a_accuracy", "mean_accuracy"]
    rows = table(invoke(capsys, "joint", "ewc", "--all")[1])
    forgetting = load("ewc")[0]["task_a_forgetting"]
    assert rows[-1] == ["task_a_forgetting", "-", f"{forgetting:.4f}", "-", "-", "-", "-"]
    assert json.loads(invoke(capsys, "joint", "ewc", "--all", "--json")[1])["metrics"]["task_a_forgetting"] == {
        "old": None, "new": forgetting, "diff": None, "ci95": None, "p": None, "verdict": None
    }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ewk", "l2"],
            "unknown model 'ewk': use one of joint, ewc, l2, online_ewc, mas, replay, solo, si (did you mean ewc?)",
        ),
        (["ewc", "zzz"], "unknown model 'zzz': use one of joint, ewc, l2, online_ewc, mas, replay, solo, si\n"),
        (["ewc", "si"], "metrics/si.json is missing: run `dvc repro evaluate@si`"),
        (["ewc", "ewc"], "both models are 'ewc': name two different ones"),
        (["ewc", "replay"], "ewc (seeds [42, 43, 44, 45, 46]) and replay (seeds [1, 2]) share no seed: rerun one"),
        (["ewc", "l2", "--precision", "-1"], "--precision -1: give the decimals to show, 0 to 12 (default 4)"),
    ],
)
def test_errors(project, capsys, argv, message):
    code, out, err = invoke(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("error: forgetting diff: ")
    assert message in err
    assert err.count("\n") == 1


def test_corrupt_metrics_file(project, capsys):
    (project / "metrics/l2.json").write_text("{")
    code, out, err = invoke(capsys, "ewc", "l2")
    assert (code, out) == (1, "")
    assert err.startswith("error: forgetting diff: metrics/l2.json is corrupt (")
    assert err.endswith("): run `dvc repro evaluate@l2`\n")


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        ("metrics/l2.json", [0.8], "metrics/l2.json is not a metrics file (a mapping of metric names to numbers)"),
        ("metrics/l2.json", {"mean_accuracy": "high"}, "metrics/l2.json is not a metrics file"),
        (
            "metrics/repetitions/l2.json",
            {"seed": [42], "mean_accuracy": 0.8},
            "metrics/repetitions/l2.json is not a metrics file (a mapping of metric names to lists of numbers)",
        ),
        ("metrics/repetitions/l2.json", {"mean_accuracy": [0.8]}, "metrics/repetitions/l2.json has no seed list"),
    ],
)
def test_valid_json_of_the_wrong_shape(project, capsys, path, content, message):
    (project / path).write_text(json.dumps(content))
    code, out, err = invoke(capsys, "ewc", "l2")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: forgetting diff: {message}") and err.endswith(": run `dvc repro evaluate@l2`\n")
    assert err.count("\n") == 1


def test_a_reader_that_stops_early_and_ctrl_c(project, monkeypatch, capsys):
    """`forgetting diff ... | head`: the closed pipe ends the command quietly; Ctrl-C is one line, exit 130."""
    command = [sys.executable, "-c", "from forgetting.cli import main_exit; main_exit()", "diff", "ewc", "l2"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.close()  # before the child prints: its every write meets a closed pipe
    assert (child.wait(timeout=60), child.stderr.read()) == (0, "")

    def interrupted(args):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_status:  # a value argparse refuses: one line too
        cli.main(["diff", "ewc", "l2", "--precision", "abc"])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err == (
        "error: forgetting diff: argument --precision: invalid int value: 'abc' (see forgetting diff --help)\n"
    )
    monkeypatch.setattr(diff, "run", interrupted)
    assert cli.main(["diff", "ewc", "l2"]) == 130
    assert capsys.readouterr().err == "error: forgetting diff: interrupted (Ctrl-C)\n"


def test_not_the_project_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert invoke(capsys, "ewc", "l2") == (
        1,
        "",
        f"error: forgetting diff: no dvc.yaml in {tmp_path}: run from the project's root\n",
    )


def git(*args: str) -> str:
    """Run git in the cwd; its stdout."""
    return subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def committed(project, monkeypatch) -> Path:
    """``project`` as a git + DVC repo with every file committed."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    git("init", "-q")
    subprocess.run(["dvc", "init", "-q"], check=True)
    git("add", "-A")
    git("commit", "-qm", "metrics")
    return project


def test_rev_reads_the_committed_metrics(committed, capsys):
    at_head = invoke(capsys, "ewc", "l2", "--json")[1]
    write_model(committed, "l2", repetitions(9))  # the workspace changes
    assert invoke(capsys, "ewc", "l2", "--rev", "HEAD", "--json")[1] == at_head
    assert (
        json.loads(invoke(capsys, "ewc", "l2", "--json")[1])["metrics"]["mean_accuracy"]["new"]
        == load("l2")[0]["mean_accuracy"]
    )
    assert at_head != invoke(capsys, "ewc", "l2", "--json")[1]


def test_rev_reads_a_dvc_experiment(committed, capsys):
    baseline = git("rev-parse", "HEAD").strip()
    write_model(committed, "l2", repetitions(9))
    experiment = invoke(capsys, "ewc", "l2", "--json")[1]
    git("commit", "-qam", "experiment")  # stored as DVC stores experiments: refs/exps/<baseline>/<name>
    git("update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/tiny-exp", "HEAD")
    git("reset", "-q", "--hard", baseline)
    assert invoke(capsys, "ewc", "l2", "--rev", "tiny-exp", "--json")[1] == experiment
    assert invoke(capsys, "ewc", "l2", "--json")[1] != experiment


def test_bad_rev(committed, capsys):
    code, out, err = invoke(capsys, "ewc", "l2", "--rev", "nope")
    assert (code, out) == (1, "")
    assert err.startswith("error: forgetting diff: cannot read revision 'nope' (")
    assert err.endswith("): see `git log` or `dvc exp list`\n")


def test_model_missing_at_rev(committed, capsys):
    code, out, err = invoke(capsys, "ewc", "si", "--rev", "HEAD")
    assert (code, out, err) == (
        1,
        "",
        "error: forgetting diff: metrics/si.json is missing at HEAD: run `dvc repro evaluate@si`\n",
    )


def test_committed_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rows = table(invoke(capsys, "ewc", "l2")[1])
    ewc, l2 = load("ewc")[0], load("l2")[0]
    keys = [key for key in ewc if not key.endswith("_ci95")]
    assert [row[0] for row in rows[1:]] == keys
    for row, key in zip(rows[1:], keys, strict=True):
        assert row[1:3] == [f"{ewc[key]:.4f}", f"{l2[key]:.4f}"]


def test_the_committed_pipelines_models_are_task_a_joint_and_the_strategy_list(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code, out, err = invoke(capsys, "ewc", "ewk")
    assert (code, out) == (1, "")
    models = ", ".join(["task_a", "joint", *listed()])
    assert err == f"error: forgetting diff: unknown model 'ewk': use one of {models} (did you mean ewc?)\n"


def test_no_tensorflow():
    code = (
        "import sys; from forgetting.reporting import diff; from forgetting import cli; import argparse; "
        "p = argparse.ArgumentParser(); "
        "diff.add_arguments(p); diff.run(p.parse_args(['ewc', 'l2', '--rev', 'HEAD'])); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "[]"


def test_each_commands_help_keeps_its_docstrings_width(capsys):
    """The options wrap at the 120 columns the descriptions are written to, not at a terminal's 80."""
    from forgetting import cli

    with pytest.raises(SystemExit):
        cli.main(["tune", "--help"])
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= cli.HELP_WIDTH
    options = [line for line in lines if line.startswith("  --")]
    assert max(map(len, options)) > 80  # an option's help on its own line runs past 80 columns
