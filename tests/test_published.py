"""Hsu et al. (2018)'s Table 2 beside ours (forgetting.reporting.published): the verdict per cell against a hand
computation, the rows our models stand in for, and the page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from forgetting.config import protocols
from forgetting.evaluation.results import models
from forgetting.reporting import published


def test_a_cell_agrees_within_two_of_their_standard_deviations():
    assert published.verdict(93.46 - 4.0, 93.46, 2.01) == "agrees"  # 1.99 sd
    assert published.verdict(80.0, 93.46, 2.01) == "-13.5 (-6.7 sd)"
    assert published.verdict(91.0, 90.78, 0.05) == "+0.2 (+4.4 sd)"
    assert published.verdict(99.736, 99.60, 0.067) == "+0.1 (+2.03 sd)"  # just over 2: not shown as 2.0
    assert published.verdict(99.60 - 0.067 * 2.04, 99.60, 0.067) == "-0.1 (-2.04 sd)"
    assert published.verdict(99.60 + 0.067 * 2.051, 99.60, 0.067) == "+0.1 (+2.1 sd)"


def test_welch_s_test_from_both_sides_summaries_as_from_their_runs():
    """welch_p, from our mean and 95% CI half-width and their mean and sd, gives scipy's Welch test of the runs
    themselves, and the t statistic and Welch-Satterthwaite degrees of freedom by hand."""
    import math

    import numpy as np

    from forgetting.evaluation.intervals import ci95

    ours = np.array([91.2, 92.5, 91.9, 91.1, 92.7])
    theirs = np.array([92.1, 92.3, 92.2, 92.0, 92.4, 92.2, 92.1, 92.3, 92.2, 92.2])
    p = published.welch_p(ours.mean(), ci95(ours), 5, theirs.mean(), theirs.std(ddof=1), 10)
    assert p == pytest.approx(stats.ttest_ind(ours, theirs, equal_var=False).pvalue, rel=1e-9)
    a, b = ours.var(ddof=1) / 5, theirs.var(ddof=1) / 10
    t, df = (ours.mean() - theirs.mean()) / math.sqrt(a + b), (a + b) ** 2 / (a**2 / 4 + b**2 / 9)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9) and 0.05 < p < 0.5  # 0.5 points, not resolved
    assert math.isnan(published.welch_p(91.9, None, 1, 92.2, 0.1, 10))  # one run: no interval, no test
    assert published.their_runs("EWC") == 10 and published.their_runs("RtF") == published.QUOTED_RUNS == 5


def test_a_difference_outside_two_sd_is_real_only_after_holm():
    """The verdict says whether Welch's test resolves a difference outside 2 sd after Holm's correction over every
    cell of the page: a raw p of 0.02 in one of two cells is adjusted to 0.04 (real), in one of three to 0.06 (not)."""
    assert published.verdict(92.0, 92.2, 0.05, (0.02, 0.04)) == "-0.2 (-4.0 sd; real: p = 0.02, Holm 0.04)"
    assert published.verdict(92.0, 92.2, 0.05, (0.02, 0.06)) == "-0.2 (-4.0 sd; not resolved: p = 0.02, Holm 0.06)"
    assert published.verdict(92.0, 92.2, 0.05, (0.5, 1.0)) == "-0.2 (-4.0 sd; not resolved: p = 0.5, Holm 1)"
    assert published.verdict(92.15, 92.2, 0.05, (1e-6, 1e-5)) == "agrees"  # within 2 sd: the summary line names it
    cell = {"mean_accuracy": 0.9188, "mean_accuracy_ci95": 0.0064}  # GEM's class cell: 2.6 of their sd below
    naive = {"mean_accuracy": 0.1947, "mean_accuracy_ci95": 4e-4}
    summaries = {"class": {"hsu2018-sgd": {"gem": cell, "naive": naive}}}
    tests = published.welch_tests(summaries, 5)
    raw, adjusted = tests[("class", "GEM")]
    other, other_adjusted = tests[("class", "naive (SGD)")]
    assert raw < other and adjusted == pytest.approx(2 * raw)  # Holm over the two cells: the smaller p times 2
    assert other_adjusted == pytest.approx(max(2 * raw, other))  # ... the larger times 1, kept in order
    assert published.real_differences(published.welch_tests(summaries, 5)) == {}
    summaries["class"]["hsu2018-sgd"]["gem"] = {"mean_accuracy": 0.9100, "mean_accuracy_ci95": 0.0020}
    assert published.real_differences(published.welch_tests(summaries, 5)) == {"class": ["GEM"]}


def test_the_quoted_rows_sd_is_their_sem_times_the_root_of_their_runs():
    # van de Ven & Tolias's code prints mean ± SEM over its seeds (5 runs): sd = SEM x sqrt(5)
    assert published.their_sd("LwF", 0.33) == pytest.approx(0.33 * 5**0.5) == pytest.approx(0.7379, abs=1e-4)
    assert published.their_sd("EWC", 0.05) == 0.05  # Hsu et al.'s own rows: mean ± sd already
    summaries = {"class": {"vandeven2018": {"lwf": {"mean_accuracy": 0.2328, "mean_accuracy_ci95": 0.0067}}}}
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in published.table2(summaries, 5)}
    assert rows["LwF"][2:] == ["23.28 ± 0.67", "24.17 ± 0.33", "agrees"]  # -0.89 = -1.2 sd (-2.7 SEM)
    assert published.verdict(23.28, 24.17, 0.33) == "-0.9 (-2.7 sd)"


def test_the_published_column_of_a_5_task_setting():
    assert published.published("class-split5")["replay"] == "90.8 ± 0.9"
    assert published.published("domain-split5")["naive"] == "55.2 ± 1.4"
    assert published.published("task-split5")["joint"] == "99.5 ± 0.2"
    assert "icarl" not in published.published("class-split5")  # not in their table
    assert "agem" not in published.published("class-split5")  # not in their table
    assert "gem" not in published.published("class-split5")  # theirs trains with SGD: on Table 2's page only
    assert published.published("domain-even-odd") == {}


def test_table2_holds_ours_theirs_and_the_verdict(tmp_path):
    summaries = {  # scenario -> run -> model -> summary
        "task": {"hsu2018": {"naive": {"mean_accuracy": 0.9346, "mean_accuracy_ci95": 0.01}}},
        "class": {
            "hsu2018": {
                "replay": {"mean_accuracy": 0.80, "mean_accuracy_ci95": 0.004},
                "naive": {"mean_accuracy": 0.2},
            },
            "hsu2018-buffer4400": {"replay": {"mean_accuracy": 0.9559, "mean_accuracy_ci95": 0.003}},
        },
    }
    lines = published.table2(summaries, 5)
    assert lines[0].startswith("| method (theirs) | ours | ours, task | Hsu et al., task | verdict, task | ours, class")
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in lines[2:]}
    assert list(rows) == list(published.HSU_TABLE2)
    task, klass = rows["naive (Adam)"][2:5], rows["naive (Adam)"][5:]
    assert task == ["93.46 ± 1.00", "93.46 ± 2.01", "agrees"]
    assert klass == ["20.00 ± n/a", "19.71 ± 0.08", "+0.3 (+3.6 sd)"]
    assert rows["rehearsal (buffer 1100)"][1] == "`replay`"  # their rehearsal, as their code keeps and mixes it
    # Welch's test over the 3 cells with an interval, from scipy: ours 80.00 ± 0.40 (5 seeds) against 90.78, sd 0.85
    # (10 runs), the smallest of the 3 p-values, so Holm multiplies it by 3
    ours_sd = 0.40 * 5**0.5 / stats.t.ppf(0.975, 4)
    p = stats.ttest_ind_from_stats(80.00, ours_sd, 5, 90.78, 0.85, 10, equal_var=False).pvalue
    assert p < 1e-12 and rows["rehearsal (buffer 1100)"][5:] == [
        "80.00 ± 0.40",
        "90.78 ± 0.85",
        f"-10.8 (-12.7 sd; real: p = {p:.2g}, Holm {3 * p:.2g})",
    ]
    assert rows["rehearsal (buffer 4400)"][5:] == ["95.59 ± 0.30", "95.59 ± 0.49", "agrees"]  # its own run's replay
    assert rows["rehearsal (buffer 4400)"][2] == "not run"  # no run of it kept in the task scenario
    assert rows["RtF"][1].startswith("`rtf` (under `vandeven2018`, in their digit orders; ours trains the task-A")
    assert rows["RtF"][2:5] == ["not run", "99.66 ± 0.03", ""]
    assert rows["LwF"][1] == "`lwf` (under `vandeven2018`, in their digit orders)"  # as the runs Hsu et al. quote
    assert rows["naive (SGD)"][1] == "`naive` (plain SGD at 0.01 on every task, theirs: a run of its own)"
    assert rows["naive (SGD)"][2:5] == ["not run", "97.98 ± 0.09", ""]  # not the Adam run's naive
    published.write_table2_page(summaries, 5, tmp_path / "hsu2018.md")
    page = (tmp_path / "hsu2018.md").read_text()
    assert (
        "under `hsu2018`" in page
        and "5 repetitions each" in page
        and "EWC's Fisher as the expectation over the model's outputs" in page  # a difference the preset lists
    )
    # the quoted rows' protocol and how it differs, without what each preset says of the rows it does not run
    assert "LwF, DGR and RtF are not in their code: Hsu et al. quote van de Ven & Tolias's runs" in page
    assert "run under `vandeven2018` (van de Ven & Tolias 2018's protocol" in page
    assert "generative_replay.targets: hard, DGR's" in page
    assert protocols.HSU_QUOTED not in page and protocols.VAN_DE_VEN_2018_OTHERS not in page
    # their digit orders: the preset's natural order is not a difference of these runs
    assert "each repetition alone on the digit pairs that their data.py draws for one of their seeds" in page
    assert protocols.NATURAL_ORDER in protocols.PROTOCOLS["vandeven2018"].differs
    assert protocols.NATURAL_ORDER not in page
    assert "in the task and class scenarios under" in page  # the scenarios run, in Table 2's order
    assert published.agreeing(summaries) == {"task": (1, 1), "class": (1, 3)}  # naive: 3.6 sd; replay: -12.7 sd
    assert "Rows that agree: task, 1 of 1; class, 1 of 3 (DGR's with our stand-in)." in page
    assert "Differences that Welch's test resolves after Holm's correction over the 3 cells: class, rehearsal " in page
    assert "its p and that p Holm-adjusted over the page's 3 cells" in page  # naive's class cell: no interval
    # the rows that one of our models runs but whose run is not kept: named once per scenario
    (not_run,) = [line for line in page.splitlines() if line.startswith("Not run yet")]
    assert not_run.endswith("task: naive (SGD), L2, EWC, online EWC, SI, MAS, LwF, rehearsal (buffer 1100), "
                            "rehearsal (buffer 4400), GEM, DGR, RtF and offline (joint); class: naive (SGD), L2, EWC, "
                            "online EWC, SI, MAS, LwF, GEM, DGR, RtF and offline (joint).")  # fmt: skip
    every = {s: {name: {m: {"mean_accuracy": 0.5} for m in published.runs(models())[name][2]} for name in
                 published.runs(models())} for s in published.SCENARIOS}  # fmt: skip
    assert published._not_run(every) == [] and "not run" not in "".join(published.table2(every, 5))
    first = page
    published.write_table2_page(summaries, 5, tmp_path / "hsu2018.md")
    assert (tmp_path / "hsu2018.md").read_text() == first
    published.write_table2_page({"class": summaries["class"]}, 5, tmp_path / "class.md")
    assert "in the class scenario under" in (tmp_path / "class.md").read_text()


@pytest.mark.parametrize("scenario", published.SCENARIOS)
def test_every_row_maps_to_one_of_our_models_or_says_why_not(scenario):
    from forgetting.evaluation.results import models

    for row, (model, note) in published.OURS.items():
        assert model in (*models(), None), row
        assert model is not None or note, row


def test_each_row_comes_from_one_run_the_quoted_rows_from_van_de_ven_and_tolias_s_protocol():
    from forgetting.evaluation.results import models

    runs = published.runs(models())
    assert list(runs) == ["hsu2018", "vandeven2018", "hsu2018-buffer4400", "hsu2018-sgd"]
    assert runs["hsu2018-sgd"] == ("hsu2018", published.SGD_AT_0_01, ["naive", "gem"])  # iBatchLearn.py: momentum 0
    assert published.SGD_AT_0_01 == {
        "train.optimizer": "sgd",
        "finetune.optimizer": "sgd",
        "train.learning_rate": 0.01,
        "finetune.learning_rate": 0.01,
    }
    assert runs["vandeven2018"] == ("vandeven2018", {}, ["lwf", "generative_replay", "rtf"])
    assert runs["hsu2018-buffer4400"] == ("hsu2018", {"replay.buffer_size": 4400}, ["replay"])
    plain = runs["hsu2018"]
    assert plain[:2] == ("hsu2018", {}) and plain[2] == [
        m for m in models() if m not in ("lwf", "generative_replay", "rtf", "gem")
    ]
    assert [published.run_of(row) for row in ("LwF", "DGR", "RtF", "EWC", "rehearsal (buffer 4400)")] == [
        "vandeven2018",
        "vandeven2018",
        "vandeven2018",
        "hsu2018",
        "hsu2018-buffer4400",
    ]
    for preset, _, _ in runs.values():
        assert preset in protocols.PROTOCOLS
    preset = protocols.PROTOCOLS["hsu2018"]  # a run of either preset still says what it does with the other rows
    assert protocols.HSU_QUOTED in preset.differs
    assert protocols.VAN_DE_VEN_2018_OTHERS in protocols.PROTOCOLS["vandeven2018"].differs


def test_the_page_from_the_kept_runs_only(tmp_path, monkeypatch):
    """bench/hsu2018.py --kept-only runs nothing: it writes the page from the kept runs of the asked repetition count
    (a kept run of another count is left out) and marks the rest not run."""
    import json
    import runpy
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def keep(run: str, scenario: str, model: str, mean: float, seeds: list[int]) -> None:
        metrics = tmp_path / "runs" / run / scenario / "metrics"
        (metrics / "repetitions").mkdir(parents=True, exist_ok=True)
        (metrics / f"{model}.json").write_text(json.dumps({"mean_accuracy": mean, "mean_accuracy_ci95": 0.001}))
        (metrics / "repetitions" / f"{model}.json").write_text(json.dumps({"seed": seeds}))

    keep("hsu2018", "class", "naive", 0.1975, [42, 43, 44, 45, 46])
    keep("hsu2018", "class", "ewc", 0.5, [42, 43, 44])  # another repetition count: left out
    keep("vandeven2018", "class", "lwf", 0.2328, [42, 43, 44, 45, 46])  # in our order: not the page's
    for seed, accuracy in zip(range(42, 47), (0.2412, 0.2398, 0.2455, 0.2387, 0.2430), strict=True):  # in theirs
        repetitions = tmp_path / "runs" / "vandeven2018" / "their-orders" / "class" / f"seed-{seed}" / "metrics"
        (repetitions / "repetitions").mkdir(parents=True)
        (repetitions / "repetitions" / "lwf.json").write_text(json.dumps({"seed": [seed], "mean_accuracy": [accuracy]}))
    keep("hsu2018-sgd", "class", "gem", 0.9150, [42, 43, 44, 45, 46])  # -5.8 sd, and explained:
    explanation = published.EXPLAINED["class", "GEM"]
    diagnostic = tmp_path / "runs" / explanation.diagnostic
    keep(str(diagnostic.relative_to(tmp_path / "runs")), "", "gem", 0.9228, list(range(42, 52)))
    for run, mean in ((diagnostic, 0.9228), (tmp_path / "runs" / explanation.baseline, 0.9196)):
        _keep_repetitions(run, list(range(42, 52)), [mean + i / 1000 for i in range(10)], [0.93] * 10)
    (tmp_path / "runs" / explanation.their_code).parent.mkdir(parents=True)
    (tmp_path / "runs" / explanation.their_code).write_text(
        json.dumps({"commit": "3b273f0", "runs": [{"average": 92}, {"average": 92.4}]})
    )
    out = tmp_path / "page.md"
    argv = ["hsu2018.py", "--seeds", "5", "--kept-only", "--scenarios", "class"]
    monkeypatch.setattr(sys, "argv", [*argv, "--keep", str(tmp_path / "runs" / "hsu2018"), "--out", str(out)])
    monkeypatch.syspath_prepend(str(root / "bench"))
    runpy.run_path(str(root / "bench" / "hsu2018.py"), run_name="__main__")
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in out.read_text().splitlines()}
    assert rows["naive (Adam)"][2:] == ["19.75 ± 0.10", "19.71 ± 0.08", "agrees"]
    assert rows["EWC"][2] == "not run" and rows["LwF"][2:] == ["24.16 ± 0.33", "24.17 ± 0.33", "agrees"]
    assert "Rows that agree: class, 2 of 3" in out.read_text()
    assert rows["GEM"][-1].startswith("-0.7 (-5.8 sd; real: p = ") and rows["GEM"][-1].endswith("); explained below")
    assert "**GEM, class** (-5.8 of their sd in the table) is accounted for" in out.read_text()


def test_van_de_ven_s_digit_orders():
    """protocols.van_de_ven_tasks(s): digit y, labelled permutation[y] by their data.py (NumPy seeded with s first, as
    main.py does), sits in task permutation[y] // 2 at position permutation[y] % 2 (their domain label); seed 0, their
    exception, keeps the natural order."""
    import numpy as np

    for seed in (1, 2, 5):
        np.random.seed(seed)
        permutation = np.random.permutation(list(range(10)))
        tasks = protocols.van_de_ven_tasks(seed)
        assert sorted(d for task in tasks for d in task) == list(range(10))
        for digit, label in enumerate(permutation):
            assert tasks[label // 2].index(digit) == label % 2
    assert protocols.van_de_ven_tasks(1) == [[4, 6], [0, 5], [3, 9], [2, 7], [8, 1]]  # [2 9 6 4 0 3 1 7 8 5]
    assert protocols.van_de_ven_tasks(0) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert protocols.van_de_ven_tasks(3, 2) == [[7, 2, 3, 8, 1], [0, 5, 6, 9, 4]]  # two tasks of five


def test_the_quoted_rows_from_their_orders_one_repetition_a_seed(tmp_path, monkeypatch):
    """bench/hsu2018.py's runs in their orders: each seed's repetition kept alone in seed-<seed>/; a model's figure is
    the mean and 95% CI over the seeds, and only where every seed's run is kept."""
    import json
    from pathlib import Path

    from forgetting.evaluation.intervals import ci95

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    from hsu2018 import ordered_summaries

    accuracies = {42: 0.9951, 43: 0.9937, 44: 0.9962, 45: 0.9948, 46: 0.9940}
    for seed, accuracy in accuracies.items():
        repetitions = tmp_path / f"seed-{seed}" / "metrics" / "repetitions"
        repetitions.mkdir(parents=True)
        (repetitions / "lwf.json").write_text(json.dumps({"seed": [seed], "mean_accuracy": [accuracy]}))
        if seed != 46:
            (repetitions / "rtf.json").write_text(json.dumps({"seed": [seed], "mean_accuracy": [accuracy]}))
    kept = ordered_summaries(tmp_path, ["lwf", "rtf"], 5, 42)
    assert list(kept) == ["lwf"]  # rtf's seed 46 not kept
    assert kept["lwf"]["mean_accuracy"] == pytest.approx(sum(accuracies.values()) / 5, abs=1e-6)
    assert kept["lwf"]["mean_accuracy_ci95"] == pytest.approx(ci95(list(accuracies.values())), abs=1e-6)
    assert ordered_summaries(tmp_path, ["lwf"], 4, 43)["lwf"]["mean_accuracy"] == pytest.approx(0.994675)  # seeds 43-46


def _gem_class(mean: float, ci: float) -> dict:
    """Summaries whose only cell is GEM's in the class scenario (its own run: SGD at 0.01)."""
    return {"class": {"hsu2018-sgd": {"gem": {"mean_accuracy": mean, "mean_accuracy_ci95": ci}}}}


def _keep_repetitions(run, seeds: list[int], mean: list[float], last: list[float]) -> None:
    """A kept run's metrics/repetitions/gem.json: its seeds, mean accuracy and last task's accuracy."""
    (run / "metrics" / "repetitions").mkdir(parents=True, exist_ok=True)
    text = json.dumps({"seed": seeds, "task_a_accuracy": mean, "task_e_accuracy": last, "mean_accuracy": mean})
    (run / "metrics" / "repetitions" / "gem.json").write_text(text)


def test_a_cell_that_does_not_agree_is_explained_from_its_evidence(tmp_path):
    """A cell outside 2 sd that EXPLAINED covers: its verdict says so, and a paragraph beside the table gives the
    difference, ours with it undone against the published figure (92.20 ± 0.12) and paired with the cell's run over
    the seeds, and their code's runs here against the published figure, computed by hand."""
    explanation = published.EXPLAINED["class", "GEM"]
    assert explanation.difference in protocols.PROTOCOLS["hsu2018"].differs  # a difference the preset lists
    root, seeds = tmp_path / "runs", [42, 43, 44]
    diagnostic, baseline = root / explanation.diagnostic, root / explanation.baseline
    _keep_repetitions(diagnostic, seeds, [0.921, 0.925, 0.9224], [0.93, 0.935, 0.928])
    (diagnostic / "metrics" / "gem.json").write_text('{"mean_accuracy": 0.9228, "mean_accuracy_ci95": 0.003}')
    _keep_repetitions(baseline, seeds, [0.915, 0.924, 0.918], [0.89, 0.925, 0.90])
    theirs = root / explanation.their_code
    theirs.parent.mkdir(parents=True)
    averages = [92.0, 92.5, 91.7, 92.3]
    theirs.write_text(json.dumps({"commit": "3b273f0" + "0" * 33, "runs": [{"average": averages[0]}]}))
    assert published.explanation_evidence(root) == {}  # one run of their code: no spread, no explanation
    theirs.write_text(json.dumps({"commit": "3b273f0" + "0" * 33, "runs": [{"average": a} for a in averages]}))
    evidence = published.explanation_evidence(root)
    assert list(evidence) == [("class", "GEM")] and evidence["class", "GEM"][1]["seed"] == seeds

    summaries = _gem_class(0.9183, 0.0114)  # 91.83: -3.1 of their sd
    published.write_table2_page(summaries, 5, tmp_path / "page.md", evidence)
    page = (tmp_path / "page.md").read_text()
    (row,) = [line for line in page.splitlines() if line.startswith("| GEM |")]
    assert row.strip("| ").split(" | ")[-1].endswith("; explained below")
    (paragraph,) = [line for line in page.splitlines() if line.startswith("**GEM, class**")]
    p = stats.ttest_ind_from_stats(92.28, 0.30 * 3**0.5 / stats.t.ppf(0.975, 2), 3, 92.20, 0.12, 10, False).pvalue
    their_mean = sum(averages) / 4
    their_sd = (sum((a - their_mean) ** 2 for a in averages) / 4) ** 0.5  # NumPy's, as their script prints it
    assert "(-3.1 of their sd in the table) is accounted for by a difference the preset lists: " in paragraph
    assert explanation.difference in paragraph
    assert f"92.28 ± 0.30, +0.7 of their sd, agrees (Welch's p = {p:.2g})" in paragraph
    assert "`data.validation_fraction: 0.01`, 3 repetitions" in paragraph
    cell = stats.ttest_rel([92.1, 92.5, 92.24], [91.5, 92.4, 91.8])  # the mean accuracies, paired over the seeds
    task = stats.ttest_rel([93.0, 93.5, 92.8], [89.0, 92.5, 90.0])  # the last task's
    half = stats.t.ppf(0.975, 2) * np.std([4.0, 1.0, 2.8], ddof=1) / 3**0.5
    assert "the cell +0.38 ± " in paragraph and f"(p = {cell.pvalue:.2g})" in paragraph
    assert f"its last task +2.60 ± {half:.2f} (p = {task.pvalue:.2g})" in paragraph
    assert "at 3b273f0, `bench/hsu2018_their_code.py`) run here, 4 seeded runs" in paragraph
    assert f"{their_mean:.2f} ± {their_sd:.2f} (mean ± sd), {(their_mean - 92.20) / 0.12:+.1f} of their sd, agrees" in (
        paragraph
    )
    assert "Cells that do not agree, explained:" in page

    # a cell that agrees needs no explanation: neither the mark nor the paragraph
    published.write_table2_page(_gem_class(0.9215, 0.002), 5, tmp_path / "agrees.md", evidence)
    agrees = (tmp_path / "agrees.md").read_text()
    assert "explained" not in agrees and "| agrees |" in agrees
    # without the evidence, the cell stays as the verdict gives it
    published.write_table2_page(summaries, 5, tmp_path / "bare.md")
    assert "explained" not in (tmp_path / "bare.md").read_text()
    # evidence is all there or none: a baseline of other seeds, or no diagnostic, leaves the cell unexplained
    _keep_repetitions(baseline, [42, 43, 45], [0.915, 0.924, 0.918], [0.89, 0.925, 0.90])
    assert published.explanation_evidence(root) == {}
    _keep_repetitions(baseline, seeds, [0.915, 0.924, 0.918], [0.89, 0.925, 0.90])
    (diagnostic / "metrics" / "gem.json").unlink()
    assert published.explanation_evidence(root) == {}


def test_their_code_runner_s_pure_parts():
    """bench/hsu2018_their_code.py (it needs PyTorch to run their code): GEM's docstring, at column 0 in their
    exp_replay.py from dff5200 to 1d7caa6, indented into its class, the arguments split at --, and the seeds."""
    import ast
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from hsu2018_their_code import indent_gem_docstring, seed_range, split_arguments
    finally:
        sys.path.pop(0)
    theirs = 'class GEM(Naive_Rehearsal):\n"""\n@inproceedings{GEM,\n}\n"""\n\n    def __init__(self):\n        pass\n'
    with pytest.raises(IndentationError):
        ast.parse(theirs)
    fixed = indent_gem_docstring(theirs)
    assert ast.get_docstring(ast.parse(fixed).body[0]) == "@inproceedings{GEM,\n}"
    assert indent_gem_docstring(fixed) == fixed  # ae86cec's, already indented: as it is
    assert split_arguments(["their", "--jobs", "2", "--", "--lr", "0.01"]) == (
        ["their", "--jobs", "2"],
        ["--lr", "0.01"],
    )
    assert split_arguments(["their"]) == (["their"], [])
    assert seed_range("1-10") == list(range(1, 11)) and seed_range("7") == [7]
    for bad in ("a-b", "5-2", ""):
        with pytest.raises(SystemExit, match=r"--seeds .* is not FIRST-LAST"):
            seed_range(bad)
