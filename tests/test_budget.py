"""The memory-budget page (forgetting.reporting.budget, bench/memory_budget.py): which strategies store examples and
the key that sets how many, and the page's table and figure against its inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from test_report import PNG, ROOT, make_params, mean_ci, table

from forgetting.config.params import value_at
from forgetting.reporting import budget
from forgetting.reporting.report import num_parameters
from forgetting.strategies import listed, strategy_class

FIVE = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def _memory(params: dict, name: str):
    return strategy_class(name).memory(params, num_parameters(params), len(params["tasks"]))


def test_a_budget_sets_the_stored_examples_of_every_strategy_that_stores_any_and_nothing_else():
    params = make_params(FIVE, "class")
    stores = [name for name in listed() if _memory(params, name).examples > 0]
    assert budget.storing() == stores and {"replay", "agem", "gem", "der", "icarl"} <= set(stores)
    changed = budget.with_budget(params, 321)
    for name in listed():
        expected = 321 if name in stores else 0
        assert _memory(changed, name).examples == expected, name
        if name not in stores:  # its params untouched: the same stages, cached
            assert all(value_at(changed, k) == value_at(params, k) for k in strategy_class(name).hyperparameters)
    assert value_at(params, "replay.buffer_size") == 1000  # the input is not changed


def _summary(mean: float, half: float) -> dict[str, float]:
    return {"mean_accuracy": mean, "mean_accuracy_ci95": half}


def test_the_page_holds_every_run_and_its_figure_and_the_same_inputs_give_the_same_bytes(tmp_path):
    rng = np.random.default_rng(0)
    names = budget.storing()
    by_budget = {b: {n: _summary(rng.uniform(0.5, 0.95), rng.uniform(0.001, 0.03)) for n in names} for b in (200, 1000)}
    reference = {"joint": _summary(0.975, 0.002), "generative_replay": _summary(0.9, 0.01), "lwf": _summary(0.2, 0)}
    memory = {"generative_replay": "the generator: 1.26 MB", "lwf": "the previous network: 0.41 MB"}
    (tmp_path / "out" / "runs" / "200").mkdir(parents=True)
    (tmp_path / "out" / "runs" / "200" / "dvc.lock").write_text("kept")  # the runs kept beside the page stay
    budget.write_budget_page("class-split5", by_budget, reference, memory, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([budget.FIGURE, budget.PAGE, "runs"])
    assert (tmp_path / "out" / "runs" / "200" / "dvc.lock").read_text() == "kept"

    page = (tmp_path / "out" / budget.PAGE).read_text()
    rows = table(page, "strategy")
    assert list(rows) == [f"`{n}`" for n in names]
    for n in names:
        assert rows[f"`{n}`"] == [mean_ci(by_budget[b][n], "mean_accuracy") for b in (200, 1000)]
    references = table(page, "model")
    assert references == {f"`{n}`": [mean_ci(s, "mean_accuracy"), memory.get(n, "")] for n, s in reference.items()}
    assert f"![Accuracy against stored examples]({budget.FIGURE})" in page
    figure = (tmp_path / "out" / budget.FIGURE).read_bytes()
    assert figure.startswith(PNG)

    budget.write_budget_page("class-split5", by_budget, reference, memory, tmp_path / "again")
    assert (tmp_path / "again" / budget.PAGE).read_text() == page
    assert (tmp_path / "again" / budget.FIGURE).read_bytes() == figure


def _bench(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent), "HOME": str(Path.home())}
    script = [sys.executable, "bench/memory_budget.py", *args]
    return subprocess.run(script, cwd=ROOT, capture_output=True, text=True, env=env)


def test_a_budget_below_one_or_that_the_data_cannot_fill_fails_in_one_line_before_any_run(tmp_path):
    out, keep = tmp_path / "page", tmp_path / "runs"  # keep: where each budget's runs would go
    done = _bench("--budgets", "0", "200", "--out", str(out), "--keep", str(keep))
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: memory_budget: --budgets 0: give each budget 1 or more stored examples"]
    done = _bench("--budgets", "200", "10000000", "--out", str(out), "--keep", str(keep))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    (error,) = [line for line in lines if line.startswith("error:")]
    assert lines[-1] == error, "the error is the last thing printed"
    assert error.startswith("error: memory_budget: ") and "buffer_size = 10000000" in error
    assert not out.exists() and not keep.exists()  # budget 200, which the data can fill, did not run first
