"""The generated report (forgetting.reporting.report, forgetting.reporting.figures, stages/report.py) on synthetic
metrics files: its tables hold the files' values, its pairwise table the paired differences, its figures are valid PNGs,
its bytes are stable, and a missing input leaves no report behind."""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from test_stages import repo, run_stage  # noqa: F401 (repo: the fixture stage_repo builds on)

from forgetting.config import params as params_module
from forgetting.config import settings
from forgetting.config.settings import SEQUENCES
from forgetting.data.scenarios import task_names
from forgetting.errors import ForgettingError
from forgetting.evaluation.intervals import paired_difference, summary
from forgetting.reporting import report
from forgetting.strategies import listed

STRATEGY_LIST = listed()  # dvc.yaml's strategy list

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [42, 43, 44, 45, 46]
EPOCHS = 3
# How much of a finished task each model keeps (synthetic): naive little, replay nearly all.
KEEPS = {"naive": 0.2, "l2": 0.5, "ewc": 0.6, "online_ewc": 0.6, "si": 0.61, "mas": 0.7, "lwf": 0.8, "replay": 0.93}
PNG = b"\x89PNG\r\n\x1a\n"


def make_params(tasks: list[list[int]], scenario: str = "domain") -> dict:
    """The committed params.yaml with ``tasks`` and ``scenario`` set."""
    return params_module.read(ROOT / "params.yaml") | {"tasks": tasks, "scenario": scenario}


def matrices(name: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic accuracy matrices of ``name``, one per repetition: (repetitions, trained, tested)."""
    rows, columns = np.indices((count, count))
    keeps = KEEPS.get(name, 1.0)
    learnt = 0.97 - (1 - keeps) * 0.8 * (rows - columns) / max(count - 1, 1)
    grid = np.where(columns <= rows, learnt, 0.1)
    return np.clip(grid + rng.normal(0, 0.012, (len(SEEDS), count, count)), 0, 1)


def write_json(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def write_model(metrics: Path, name: str, grids: np.ndarray, twin_of: Path | None = None) -> None:
    """Every metrics file of model ``name`` from its per-repetition accuracy matrices ``grids`` (the task-A model
    keeps row A only, joint the last row as its single row ``joint``)."""
    count = grids.shape[1]
    tasks = task_names(count)
    final = grids[:, 0 if name == "task_a" else -1]
    repetitions = {"seed": list(SEEDS)} | {f"{t}_accuracy": final[:, j].round(6).tolist() for j, t in enumerate(tasks)}
    repetitions["mean_accuracy"] = final.mean(axis=1).round(6).tolist()
    if name in STRATEGY_LIST:
        repetitions["task_a_forgetting"] = (grids[:, 0, 0] - final[:, 0]).round(6).tolist()
        repetitions["bwt"] = np.mean([final[:, i] - grids[:, i, i] for i in range(count - 1)], axis=0).round(6).tolist()
    if name == "si":  # its repetitions listed in another order: pairs must be matched by seed
        repetitions = {key: values[::-1] for key, values in repetitions.items()}
    write_json(metrics / f"{name}.json", summary(repetitions))
    write_json(metrics / "repetitions" / f"{name}.json", repetitions)
    mean = grids.mean(axis=0)
    trained = {"task_a": ["task_a"], "joint": ["joint"]}.get(name, tasks)
    rows = {"joint": [mean[-1]], "task_a": [mean[0]]}.get(name, list(mean))
    matrix = [
        {"trained": tr, "task": t, "accuracy": round(float(row[j]), 6)}
        for tr, row in zip(trained, rows, strict=True)
        for j, t in enumerate(tasks)
    ]
    write_json(metrics / "accuracy_matrix" / f"{name}.json", matrix)
    write_json(metrics / "accuracy_per_epoch" / f"{name}.json", epoch_records(name, mean, tasks))


def epoch_records(name: str, mean: np.ndarray, tasks: list[str]) -> list[dict]:
    """A per-epoch log: task A's training (from a random start) or joint's, or a strategy's from the end of task A
    through each later task, moving linearly between the matrix's rows."""
    if name in ("task_a", "joint"):
        start, end = np.full(len(tasks), 0.15), mean[0] if name == "task_a" else mean[-1]
        steps = [(name, start + (end - start) * e / EPOCHS) for e in range(EPOCHS + 1)]
    else:
        steps = [("task_a", mean[0])] + [
            (tasks[k], mean[k - 1] + (mean[k] - mean[k - 1]) * e / EPOCHS)
            for k in range(1, len(tasks))
            for e in range(1, EPOCHS + 1)
        ]
    return [
        {"epoch": epoch, "trained": trained, "task": t, "accuracy": round(float(values[j]), 6),
         "low": round(float(values[j]) - 0.02, 6), "high": round(float(values[j]) + 0.02, 6)}
        for epoch, (trained, values) in enumerate(steps)
        for j, t in enumerate(tasks)
    ]  # fmt: skip


def write_metrics(metrics: Path, count: int, seed: int = 0) -> Path:
    """Synthetic metrics files of every model for a sequence of ``count`` tasks (online EWC equal to EWC)."""
    rng = np.random.default_rng(seed)
    for name in report.models():
        grids = matrices(name, count, rng)
        if name == "online_ewc":
            grids = matrices("ewc", count, np.random.default_rng(seed + 100))
        if name == "ewc":
            grids = matrices(name, count, np.random.default_rng(seed + 100))
        write_model(metrics, name, grids)
    return metrics


def pairs(count: int) -> list[list[int]]:
    return [[2 * t, 2 * t + 1] for t in range(count)]


def build(tmp_path: Path, count: int = 2, tuning: dict | None = None, **params) -> tuple[Path, Path]:
    """(report folder, metrics folder) of a synthetic run of ``count`` tasks (even / odd digits for two)."""
    metrics = write_metrics(tmp_path / "metrics", count)
    if tuning is not None:
        write_json(tmp_path / "tuning" / f"{tuning['setting']}.yaml", tuning)
    tasks = SEQUENCES["even-odd"] if count == 2 else pairs(count)
    out = tmp_path / "report"
    report.make(make_params(tasks) | params, out, metrics, tmp_path / "tuning")
    return out, metrics


def table(markdown: str, first_header: str, start: int = 0) -> dict[str, list[str]]:
    """The first markdown table from character ``start`` on whose header starts with ``first_header``: each row's
    cells by its first cell."""
    lines = markdown[start:].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0]] = cells[1:]
    return rows


def load(metrics: Path, folder: str, name: str):
    return json.loads((metrics / folder / f"{name}.json").read_text())


def mean_ci(values: dict, key: str) -> str:
    return f"{values[key]:.3f} ± {values[key + '_ci95']:.3f}"


def test_the_strategy_table_holds_the_metrics_files_values(tmp_path):
    out, metrics = build(tmp_path, count=3)
    rows = table((out / "README.md").read_text(), "model")
    means = {name: load(metrics, "", name)["mean_accuracy"] for name in STRATEGY_LIST}
    ranked = sorted(STRATEGY_LIST, key=lambda name: -means[name])
    expected = ["`joint` (upper bound)", *(f"`{name}`" for name in ranked), "`task_a` (after task A only)"]
    assert list(rows) == expected
    for label, name in zip(expected, ["joint", *ranked, "task_a"], strict=True):
        s = load(metrics, "", name)
        cells = [mean_ci(s, f"{t}_accuracy") for t in ("task_a", "task_b", "task_c")]
        cells += [f"**{mean_ci(s, 'mean_accuracy')}**"]
        cells += [mean_ci(s, key) if key in s else "" for key in ("task_a_forgetting", "bwt")]
        assert rows[label][:6] == cells, name


@pytest.mark.parametrize(
    ("count", "scenario", "column"), [(2, "domain", False), (3, "domain", True), (3, "class", False)]
)
def test_fwt_is_a_column_only_where_strategies_can_differ_in_it(tmp_path, count, scenario, column):
    """FWT (R[i-1][i] - b_i) is the task-A model's with two tasks and about 0 - b_i for all in the class scenario:
    one figure in a sentence there (a logits-scored strategy's), a column only for longer domain or task sequences."""
    metrics = write_metrics(tmp_path / "metrics", count)
    for offset, name in enumerate(["naive", "ewc", "icarl"]):  # iCaRL scores by its nearest mean: not the one
        write_json(metrics / f"{name}.json", load(metrics, "", name) | {"fwt": 0.0123 + offset, "fwt_ci95": 0.0046})
    tasks = SEQUENCES["even-odd"] if count == 2 else pairs(count)
    report.make(make_params(tasks, scenario), tmp_path / "report", metrics, tmp_path / "tuning")
    markdown = (tmp_path / "report" / "README.md").read_text()
    assert report.fwt_differs(make_params(tasks, scenario)) == column
    assert ("| FWT |" in markdown) == column
    note = re.search(r"Forward transfer \(FWT.*? by its logits in this setting, ([^:]*): (.*)", markdown)
    if column:
        assert note is None
        assert table(markdown, "model")["`ewc`"][count + 3] == "1.012 ± 0.005"
        assert table(markdown, "model")["`l2`"][count + 3] == ""
        return
    # naive's, the first listed; iCaRL's own rule named with its own figure
    assert note.group(1) == "0.012 ± 0.005 (not `icarl` 2.012 ± 0.005"
    assert "`ewc`" not in note.group(0)  # it predicts by its logits: naive's figure is its own
    assert ("label pairing" in note.group(2)) == (count == 2 and scenario == "domain")


def test_the_pairwise_table_holds_the_paired_differences_by_seed(tmp_path):
    out, metrics = build(tmp_path)
    rows = table((out / "README.md").read_text(), "row - column")
    models = ["joint", *sorted(STRATEGY_LIST, key=lambda n: -load(metrics, "", n)["mean_accuracy"])]

    def difference(row: str, column: str):
        a, b = (load(metrics, "repetitions", m) for m in (row, column))
        by_seed_a, by_seed_b = (dict(zip(r["seed"], r["mean_accuracy"], strict=True)) for r in (a, b))
        return paired_difference([by_seed_a[s] for s in SEEDS], [by_seed_b[s] for s in SEEDS])

    # Holm by hand over the table's pairs with a test: the k-th smallest p (k from 0) times (m - k), never below
    # the one before it
    tested = sorted(
        (difference(*pair).p, frozenset(pair))
        for pair in itertools.combinations(models, 2)
        if not math.isnan(difference(*pair).p)
    )
    adjusted, running = {}, 0.0
    for k, (p, pair) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - k) * p))
        adjusted[pair] = running
    assert f"Holm's correction for the table's {len(tested)} comparisons" in (out / "README.md").read_text()
    seen = set()
    for row in models:
        for column, cell in zip(models, rows[f"`{row}`"], strict=True):
            if row == column:
                assert cell == "—"
                continue
            d = difference(row, column)
            text = f"{d.mean:+.3f} ± {d.ci95:.3f}"
            if d.verdict == "identical":
                expected, kind = "identical", "identical"
            elif adjusted[frozenset((row, column))] < 0.05:
                expected, kind = f"**{text}**", "real after Holm"
            else:
                expected, kind = text, "own interval excludes 0" if d.verdict == "real" else "not resolved"
            seen.add(kind)
            assert cell == expected, (row, column)
    # the synthetic data exercise every case, a pair whose own interval excludes 0 but not after Holm's correction
    assert seen == {"identical", "real after Holm", "own interval excludes 0", "not resolved"}


def test_every_figure_is_a_png_that_the_page_links(tmp_path):
    out, _ = build(tmp_path, count=3)
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (out / "README.md").read_text())
    assert sorted(linked) == sorted(f"figures/{p.name}" for p in (out / "figures").glob("*.png"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "figures", "plots"]
    assert len(linked) == 4
    for name in linked:
        content = (out / name).read_bytes()
        assert content[:8] == PNG
        width, height = struct.unpack(">II", content[16:24])
        assert 400 <= width <= 2000 and 250 <= height <= 1500, (name, width, height)


def test_the_plots_data_gathers_every_models_records(tmp_path):
    """report/plots/: the data of dvc.yaml's plots, each model's records as evaluate wrote them, with its name."""
    out, metrics = build(tmp_path, count=3)
    plots = {p.stem: json.loads(p.read_text()) for p in (out / "plots").iterdir()}
    assert set(plots) == {"accuracy_per_epoch", "accuracy_matrix"}
    for plot, models in (("accuracy_per_epoch", STRATEGY_LIST), ("accuracy_matrix", report.models())):
        assert list(dict.fromkeys(r["model"] for r in plots[plot])) == list(models)
        for name in models:
            records = [{k: v for k, v in r.items() if k != "model"} for r in plots[plot] if r["model"] == name]
            assert records == load(metrics, plot, name), (plot, name)


def test_accuracy_matrices_for_three_tasks_not_for_two(tmp_path):
    three, _ = build(tmp_path / "three", count=3)
    assert "![Accuracy matrices](figures/accuracy_matrices.png)" in (three / "README.md").read_text()
    assert (three / "figures/accuracy_matrices.png").is_file()
    two, _ = build(tmp_path / "two", count=2)
    assert "Not drawn for two tasks" in (two / "README.md").read_text()
    assert not (two / "figures/accuracy_matrices.png").exists()


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    first, metrics = build(tmp_path, count=3)
    second = tmp_path / "again"
    report.make(make_params(pairs(3)), second, metrics, tmp_path / "tuning")
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*"))
    assert files == sorted(str(p.relative_to(second)) for p in second.rglob("*"))
    assert len(files) == 9  # README.md, figures/ and its 4 figures, plots/ and its 2 files
    for name in files:
        if (first / name).is_file():
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_missing_input_leaves_no_report(tmp_path):
    out, metrics = build(tmp_path)  # a report from an earlier run, now stale
    (metrics / "accuracy_matrix" / "si.json").unlink()
    with pytest.raises(ForgettingError, match=r"accuracy_matrix/si\.json is missing: run `dvc repro`"):
        report.make(make_params(SEQUENCES["even-odd"]), out, metrics, tmp_path / "tuning")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics", "report"]
    assert list((tmp_path / "report").iterdir()) == []  # no page, no figures, no partial file or folder


def test_metrics_of_other_tasks_are_refused(tmp_path):
    metrics = write_metrics(tmp_path / "metrics", 2)
    with pytest.raises(ForgettingError, match=r"lack task_c_accuracy.*run `dvc repro`"):
        report.make(make_params(pairs(3)), tmp_path / "report", metrics, tmp_path / "tuning")


def test_where_the_hyperparameters_were_chosen(tmp_path):
    chosen = {
        "ewc": {"params": {"alpha": 1000.0}, "score": 0.81234, "score_ci95": 0.0123, "trials": 6},  # as in params
        "l2": {"params": {"l2.weight": 3.0}, "score": 0.8, "score_ci95": 0.01, "trials": 6},  # params say 0.3
        "mas": {"params": {"mas.lambda": 0.1}, "score": 0.8, "score_ci95": 0.01, "trials": 5, "seeds": [1000, 1001]},
        "der": {"params": {"der.alpha": 0.1}, "score": 0.9, "score_ci95": 0.01, "trials": 10, "widened": 1},
        "lwf": {"params": {"lwf.weight": 0.3}, "score": 0.9, "score_ci95": 0.01, "trials": 8, "widened": 3},
    }
    chosen["lwf"] |= {"at_edge": ["lwf.weight"], "seeds": [1000, 1001, 1002, 1003, 1004]}
    chosen["si"] = {
        "params": {"si.c": 10.0},
        "score": 0.8,
        "score_ci95": 0.01,
        "trials": 5,
        "seeds": list(range(42, 52)),
    }
    tuning = {"setting": "domain-even-odd", "scenario": "domain", "tasks": SEQUENCES["even-odd"], "chosen": chosen}
    tuning["seeds"] = SEEDS  # the file's (older files: one set for every choice), where a choice records none
    out, _ = build(tmp_path, tuning=tuning)
    markdown = (out / "README.md").read_text()
    rows = table(markdown, "strategy")
    assert rows["`ewc`"] == [
        "alpha = 1000",
        "alpha ∈ {10, 100, 1000, 10000, 100000, 1e+06}",
        "tuned on validation (tuning/domain-even-odd.yaml: 6 trials, val acc 0.812 ± 0.012; seeds 42-46: the reported "
        "ones)",
    ]
    assert rows["`mas`"][2] == (
        "tuned on validation (tuning/domain-even-odd.yaml: 5 trials, val acc 0.800 ± 0.010; seeds 1000-1001, not the "
        "reported ones)"
    )
    assert rows["`lwf`"][2] == (
        "tuned on validation (tuning/domain-even-odd.yaml: 8 trials, val acc 0.900 ± 0.010; seeds 1000-1004, not the "
        "reported ones; 3 trials past the declared grid; lwf.weight at the edge of the values tried: the figure may "
        "understate it)"
    )
    assert rows["`der`"][2].endswith("reported ones; 1 trial past the declared grid)")
    assert rows["`l2`"][2] == "set by hand (tuning/domain-even-odd.yaml chose l2.weight = 3)"
    assert rows["`si`"][2].endswith("; seeds 42-51: all of the reported ones)")  # and more: their luck carries over
    assert rows["`online_ewc`"][2] == "set by hand in params.yaml (not tuned for this setting)"
    assert rows["`naive`"] == ["none", "—", "— (no hyperparameters)"]
    with_any = len(STRATEGY_LIST) - 1  # all but naive
    assert (
        f"tuned on validation (tuning/domain-even-odd.yaml) for 5 of the {with_any} strategies with any (the others "
        "by hand)" in markdown
    )


def test_a_choice_tuned_under_other_values_than_the_runs_says_so(tmp_path):
    """A small run (50 examples per digit, 1 epoch a task, a buffer of 100) of values tuned on the full data: each
    row names what differs, the title counts the choices; a run under the same values says nothing of it, and a
    choice that records nothing (a file older than the record) is taken as before."""
    params = make_params(SEQUENCES["even-odd"])
    small = {"data": params["data"] | {"train_per_digit": 50}, "finetune": params["finetune"] | {"epochs": 1}}
    small["replay"] = params["replay"] | {"buffer_size": 100}
    entry = {"score": 0.8, "score_ci95": 0.01, "trials": 6, "seeds": [1000, 1001]}
    chosen = {
        name: entry | {"params": values, "under": settings.tuned_under(params, name, set(values))}
        for name, values in (("ewc", {"alpha": params["alpha"]}), ("replay", {"replay.shift": 1}))
    }
    chosen["mas"] = entry | {"params": {"mas.lambda": params["mas"]["lambda"]}}  # no record: nothing to compare
    tuning = {"setting": "domain-even-odd", "scenario": "domain", "tasks": SEQUENCES["even-odd"], "chosen": chosen}
    out, _ = build(tmp_path / "small", tuning=tuning, **small)
    markdown = (out / "README.md").read_text()
    rows = table(markdown, "strategy")
    assert rows["`ewc`"][2] == (
        "tuned on validation (tuning/domain-even-odd.yaml: 6 trials, val acc 0.800 ± 0.010; seeds 1000-1001, not the "
        "reported ones; under other values than this run's: data.train_per_digit all there, 50 here; finetune.epochs "
        "6 there, 1 here)"
    )
    assert rows["`replay`"][2].endswith("finetune.epochs 6 there, 1 here; replay.buffer_size 1000 there, 100 here)")
    assert rows["`replay_equal_steps`"][2].endswith("replay.buffer_size 1000 there, 100 here)")  # replay's choice
    assert "under other values" not in rows["`mas`"][2]
    assert (
        "for 4 of the 14 strategies with any (the others by hand), 3 of them under other values than this run's "
        "(data.train_per_digit, finetune.epochs, replay.buffer_size: the hyperparameters table says which), so they "
        "may not be its best" in " ".join(markdown.split())
    )
    out, _ = build(tmp_path / "same", tuning=tuning)
    assert "under other values" not in (out / "README.md").read_text()


def test_untuned_settings_say_so(tmp_path):
    out, _ = build(tmp_path, count=3)
    markdown = (out / "README.md").read_text()
    assert (
        "A task sequence of your own (not a tuned setting): one shared head, no task identity at test time; 5 "
        "repetitions, seeds 42-46" in " ".join(markdown.split())
    )
    assert "hyperparameters set by hand in params.yaml (not tuned for this setting)" in markdown
    assert (  # what the intervals cover, said once
        "the interval covers the seeds' variance (initialisation, data order, what a strategy draws), with one "
        "train/validation split and the hyperparameters fixed, not the choice of either" in markdown
    )


def test_the_title_names_the_benchmark_and_how_each_task_shows_the_digits(tmp_path):
    """Permuted and rotated MNIST's pages say so in their first line (each task all ten digits, shown its own way)."""
    titles = {}
    for kind in ("permuted", "rotated"):
        inputs = {"kind": kind, "degrees_per_task": 45.0}
        out, _ = build(tmp_path / kind, count=3, tasks=[list(range(10))] * 3, task_inputs=inputs)
        titles[kind] = (out / "README.md").read_text().splitlines()[0]
    assert titles["permuted"] == (
        "# Forgetting on permuted MNIST, domain scenario: tasks A to C, each with its own pixel order (A: MNIST's own)"
    )
    assert titles["rotated"] == "# Forgetting on rotated MNIST, domain scenario: tasks A (0°), B (45°), C (90°)"


def test_the_page_says_how_long_each_later_task_trains(tmp_path):
    """Epochs by default; optimiser steps where ``finetune.iterations`` is set."""
    out, _ = build(tmp_path / "epochs")
    assert "Every strategy trains 6 epochs on each task after task A" in (out / "README.md").read_text()
    params = make_params(SEQUENCES["even-odd"])
    steps = {"finetune": params["finetune"] | {"iterations": 2000}, "train": params["train"] | {"batch_size": 128}}
    out, _ = build(tmp_path / "iterations", **steps)
    markdown = " ".join((out / "README.md").read_text().split())
    assert "Every strategy trains 2000 iterations (batches of 128) on each task after task A" in markdown


def test_the_page_says_which_strategies_take_more_steps_and_whose_values_they_use(tmp_path):
    """Replay's optimiser steps per task differ from the others' (its repeated buffer); its equal-steps variant
    takes theirs and runs with replay's tuned values. Where iterations are counted, every strategy takes the same."""
    chosen = {"replay": {"params": {"replay.shift": 1}, "score": 0.959, "score_ci95": 0.002, "trials": 3}}
    chosen["replay"]["seeds"] = SEEDS
    tuning = {"setting": "domain-even-odd", "scenario": "domain", "tasks": SEQUENCES["even-odd"], "chosen": chosen}
    out, _ = build(tmp_path / "epochs", tuning=tuning)
    markdown = " ".join((out / "README.md").read_text().split())
    assert (
        "at learning rate 0.0001 (optimiser steps, where a strategy trains on more than the task's data: `replay`: an "
        "epoch passes over the "
        "task's data and its buffer, repeated to weigh as much per finished task: (finished tasks + 1) x the others' "
        "optimiser steps (replay.mix one_to_one: about 2 x); `replay_equal_steps`: replay's mix, in as many optimiser "
        "steps as the others" in markdown
    )
    assert "`agem`: " not in markdown  # it extends replay for its buffer, not for its training data
    assert "`icarl`: an epoch passes over the task's data and its exemplars once: (N + buffer) / N" in markdown
    rows = table((out / "README.md").read_text(), "strategy")
    assert rows["`replay_equal_steps`"] == [
        "replay.buffer_size = 1000, replay.shift = 1, replay.memory = class_balanced, replay.mix = per_task",
        "—",
        "tuned on validation (tuning/domain-even-odd.yaml: 3 trials of `replay`, whose values these are, val acc 0.959 "
        "± 0.002; seeds 42-46: the reported ones)",
    ]
    params = make_params(SEQUENCES["even-odd"])
    out, _ = build(tmp_path / "iterations", finetune=params["finetune"] | {"iterations": 2000})
    assert "optimiser steps, where a strategy" not in (out / "README.md").read_text()


def test_memory_costs(tmp_path):
    assert report.num_parameters(make_params(SEQUENCES["even-odd"])) == 784 * 128 + 128 + 128 * 5 + 5
    assert report.num_parameters(make_params(pairs(5), "class")) == 784 * 128 + 128 + 128 * 10 + 10
    assert report.num_parameters(make_params(pairs(3), "task")) == 784 * 128 + 128 + 128 * 6 + 6
    out, _ = build(tmp_path, count=3)
    rows = table((out / "README.md").read_text(), "model")
    ewc_bytes = 4 * 2 * 2 * (784 * 128 + 128 + 128 * 2 + 2)  # theta and F of two finished tasks
    assert rows["`ewc`"][-2] == f"θ and F of each finished task: {ewc_bytes / 1e6:.2f} MB"
    assert rows["`replay`"][-2] == f"stored examples of finished tasks: {1000 * 785 / 1e6:.2f} MB"
    assert rows["`naive`"][-2] == "nothing"


def test_settings_page_with_two_settings(tmp_path):
    by_setting = {
        "domain-even-odd": report.Results.load(
            make_params(SEQUENCES["even-odd"]), write_metrics(tmp_path / "a", 2), tmp_path / "tuning"
        ),
        "class-split5": report.Results.load(
            make_params(SEQUENCES["split5"], "class"), write_metrics(tmp_path / "b", 5, seed=1), tmp_path / "tuning"
        ),
    }
    out = tmp_path / "settings"
    # what the benchmarks keep beside the page stays; an earlier page's figures go
    (out / "runs" / "class-split5").mkdir(parents=True)
    (out / "runs" / "class-split5" / "dvc.lock").write_text("kept")
    (out / "hsu2018.md").write_text("kept")
    (out / "domain-rotated-mean_accuracy.png").write_bytes(b"an earlier page's")
    report.write_settings_page(by_setting, out)
    assert (out / "runs" / "class-split5" / "dvc.lock").read_text() == (out / "hsu2018.md").read_text() == "kept"
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".png")) == [
        "hsu2018.md",
        "runs",
        "settings.md",
    ]
    markdown = (out / "settings.md").read_text()
    overview = table(markdown, "model")
    assert list(overview) == [
        "`joint` (upper bound)",
        *(f"`{s}`" for s in STRATEGY_LIST),
        "`task_a` (after task A only)",
    ]
    for column, results in enumerate(by_setting.values()):
        assert overview["`ewc`"][column] == mean_ci(results.summary["ewc"], "mean_accuracy")
    assert markdown.count("\n## Forgetting on split MNIST, ") == 2
    assert "class scenario: tasks A (0 1), B (2 3), C (4 5), D (6 7), E (8 9)" in markdown
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert len(linked) == 3 + 4  # no accuracy matrices for two tasks
    assert sorted(linked) == sorted(p.name for p in out.glob("*.png"))
    for setting, figures in (("domain-even-odd", 3), ("class-split5", 4)):
        assert sum(name.startswith(f"{setting}-") for name in linked) == figures
    # the 5-task class setting beside the published figures (Hsu et al. 2018's Table 2)
    assert "The protocols differ, so the columns are not a like-for-like comparison" in markdown
    theirs = "a 2 x 400 MLP (inputs padded to 32 x 32) with Adam at 0.001 on every task, batches of 128, 4 epochs"
    assert theirs in markdown and "rehearsal buffer of 1100;" in markdown  # the hsu2018 preset's values
    assert "`python bench/hsu2018.py`'s page, hsu2018.md" in markdown
    published = table(markdown, "model", start=markdown.index("Hsu et al. 2018"))
    assert published["`replay`"] == [
        mean_ci(by_setting["class-split5"].summary["replay"], "mean_accuracy"),
        "90.8 ± 0.9",
    ]
    assert published["`naive`"][1] == "19.7 ± 0.1" and published["`icarl`"][1] == ""  # theirs lists no iCaRL


@pytest.fixture
def stage_repo(repo) -> Path:  # noqa: F811 (the repo fixture of test_stages)
    """test_stages' minimal DVC repo (the project's dvc.yaml, params.yaml and stage scripts) with synthetic
    metrics."""
    write_metrics(repo / "metrics", 2)
    return repo


def test_the_stage_reads_only_the_params_it_declares(stage_repo):
    code, stderr = run_stage(stage_repo, "stages/report.py")
    assert code == 0, stderr
    assert (stage_repo / "report" / "README.md").is_file()


def test_the_stage_names_a_missing_file_in_one_line(stage_repo):
    (stage_repo / "metrics" / "repetitions" / "lwf.json").unlink()
    code, stderr = run_stage(stage_repo, "stages/report.py")
    assert code == 1
    assert stderr == [
        "error: report: metrics/repetitions/lwf.json is missing: run `dvc repro` (stage evaluate@lwf writes it)"
    ]
    assert not (stage_repo / "report" / "README.md").exists() and not (stage_repo / "report" / "figures").exists()


def test_one_repetition_has_no_interval_anywhere(tmp_path):
    """seeds: 1: every interval reads "n/a" (the files hold null), never "± 0.000" or "nan", and the figures are
    drawn without error bars or bands."""
    metrics = write_metrics(tmp_path / "metrics", 2)
    for name in report.models():
        repetitions = {key: values[:1] for key, values in load(metrics, "repetitions", name).items()}
        write_json(metrics / f"{name}.json", summary(repetitions))
        write_json(metrics / "repetitions" / f"{name}.json", repetitions)
        records = load(metrics, "accuracy_per_epoch", name)
        write_json(metrics / "accuracy_per_epoch" / f"{name}.json", [r | {"low": None, "high": None} for r in records])
    assert load(metrics, "", "ewc")["mean_accuracy_ci95"] is None
    out = tmp_path / "report"
    report.make(make_params(SEQUENCES["even-odd"]), out, metrics, tmp_path / "tuning")
    page = (out / "README.md").read_text()
    rows = table(page, "model")
    assert rows["`ewc`"][2] == f"**{load(metrics, '', 'ewc')['mean_accuracy']:.3f} ± n/a**"
    assert "± 0.000" not in page and "nan" not in page.lower() and page.count("± n/a") > 20
    assert all(png.read_bytes().startswith(b"\x89PNG") for png in (out / "figures").glob("*.png"))
