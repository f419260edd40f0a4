"""Hsu et al. (2018)'s Table 2 (5-task split MNIST, their protocol: ``forgetting.config.protocols``' ``hsu2018``)
and ours beside it, with a verdict per cell: the page ``bench/hsu2018.py`` writes to report/settings/hsu2018.md, and
the published column of the settings page (``report.write_settings_page``). No TensorFlow here.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from forgetting.config.protocols import HELD_OUT, HSU_QUOTED, NATURAL_ORDER, PROTOCOLS, VAN_DE_VEN_2018_OTHERS
from forgetting.evaluation.intervals import paired_difference, plus_minus
from forgetting.evaluation.multiplicity import holm
from forgetting.files import atomic_output
from forgetting.reporting import markdown

SCENARIOS = ("task", "domain", "class")
# "Re-evaluating continual learning scenarios: a categorization and case for strong baselines", Table 2: each method's
# mean accuracy over the 5 tasks after the last, in %, mean ± sd over 10 runs (task, domain, class).
HSU_TABLE2: dict[str, tuple[tuple[float, float], ...]] = {
    "naive (Adam)": ((93.46, 2.01), (55.16, 1.38), (19.71, 0.08)),
    "naive (SGD)": ((97.98, 0.09), (63.20, 0.35), (19.46, 0.04)),
    "L2": ((98.18, 0.96), (66.00, 3.73), (22.52, 1.08)),
    "EWC": ((97.70, 0.81), (58.85, 2.59), (19.80, 0.05)),
    "online EWC": ((98.04, 1.10), (57.33, 1.44), (19.77, 0.04)),
    "SI": ((98.56, 0.49), (64.76, 3.09), (19.67, 0.09)),
    "MAS": ((99.22, 0.21), (68.57, 6.85), (19.52, 0.29)),
    "LwF": ((99.60, 0.03), (71.02, 1.26), (24.17, 0.33)),
    "rehearsal (buffer 1100)": ((99.40, 0.08), (95.16, 0.49), (90.78, 0.85)),
    "rehearsal (buffer 4400)": ((99.57, 0.07), (97.11, 0.34), (95.59, 0.49)),
    "GEM": ((98.42, 0.10), (96.16, 0.35), (92.20, 0.12)),
    "DGR": ((99.47, 0.03), (95.74, 0.23), (91.24, 0.33)),
    "RtF": ((99.66, 0.03), (97.31, 0.11), (92.56, 0.21)),
    "offline (joint)": ((99.52, 0.16), (98.59, 0.15), (97.53, 0.30)),
}
# Their row -> our model, and how ours differs where it is a stand-in (None: nothing of ours runs it).
OURS: dict[str, tuple[str | None, str]] = {
    "naive (Adam)": ("naive", ""),
    "naive (SGD)": ("naive", "plain SGD at 0.01 on every task, theirs: a run of its own"),
    "L2": ("l2", ""),
    "EWC": ("ewc", ""),
    "online EWC": ("online_ewc", ""),
    "SI": ("si", ""),
    "MAS": ("mas", ""),
    "LwF": ("lwf", ""),
    "rehearsal (buffer 1100)": ("replay", ""),
    "rehearsal (buffer 4400)": ("replay", "at 4400 stored examples: a run of its own"),
    "GEM": ("gem", "plain SGD at 0.01 on every task, theirs: the same run as naive (SGD)"),
    "DGR": (
        "generative_replay",
        "our generative replay stands in: a VAE per repetition (DGR's, 2 x 400 each way) whose inputs the old model "
        "labels with the class it predicts (generative_replay.targets: hard, DGR's; soft is their DGR+distill)",
    ),
    "RtF": ("rtf", "ours trains the task-A model again on task A, together with its decoder (rtf.task_a: joint)"),
    "offline (joint)": ("joint", ""),
}
STAND_INS = ("DGR",)  # another method of ours in their row: on Table 2's page, not beside the settings
STAND_INS_NOTE = "DGR's with our stand-in"
# The rows that Hsu et al. quote from van de Ven & Tolias (2018) rather than run: ours of them run under the protocol
# they were measured under (``QUOTED_PROTOCOL``), the rest under ``hsu2018``.
QUOTED = ("LwF", "DGR", "RtF")
QUOTED_PROTOCOL = "vandeven2018"
# Their figures of those rows are mean ± SEM (their code, compare_MNIST.py, prints the standard error of the mean over
# its seeds), over 5 runs (the vandeven2018 preset's record; their later papers run 20, which would make each sd twice
# as wide again): the verdict compares with their sd, SEM x sqrt(5), the stricter of the two.
QUOTED_RUNS = 5
# The runs that Table 2's page takes its rows from, by the name of the folder that keeps each: its preset, the values
# it sets beyond the preset's, and its rows. Every other row that one of our models runs is the plain ``hsu2018`` run's.
SGD_AT_0_01 = {"train.optimizer": "sgd", "finetune.optimizer": "sgd", "train.learning_rate": 0.01}
SGD_AT_0_01["finetune.learning_rate"] = 0.01
RUNS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    QUOTED_PROTOCOL: (QUOTED_PROTOCOL, {}, QUOTED),
    "hsu2018-buffer4400": ("hsu2018", {"replay.buffer_size": 4400}, ("rehearsal (buffer 4400)",)),
    # their SGD rows: --optimizer SGD --lr 0.01 (momentum 0, iBatchLearn.py's default) for the whole sequence
    "hsu2018-sgd": ("hsu2018", SGD_AT_0_01, ("naive (SGD)", "GEM")),
}
# The runs whose every repetition runs alone on the digit pairs that van de Ven & Tolias's code draws for one of its
# seeds (``protocols.van_de_ven_tasks``: their runs split the digits anew for each seed), kept in
# runs/<run>/THEIR_ORDERS/<scenario>/seed-<seed>/
IN_THEIR_ORDERS = (QUOTED_PROTOCOL,)
THEIR_ORDERS = "their-orders"
Summaries = dict[str, dict[str, dict[str, dict[str, Any]]]]  # scenario -> run -> our model -> its metrics summary
WITHIN = 2.0  # a cell agrees where our mean is within this many of their standard deviations of theirs
HSU_RUNS = 10  # the runs of each of Hsu et al.'s own rows (their Table 2's caption)
LEVEL = 0.05  # a difference from theirs is real where Welch's test's Holm-adjusted p is below this


@dataclass(frozen=True)
class Explanation:
    """Why a cell that does not agree differs, with its evidence kept beside the page's runs (folders and files under
    the runs' root): ``difference``, one the preset lists; ``diagnostic``, a run of ours as the cell's but for
    ``values``, which undo that difference, with ``seeds`` repetitions, and ``baseline``, the cell's run with as many
    (bench/hsu2018.py --explanations keeps both), paired over the seeds; ``their_code``, their own code's runs of the
    cell here (bench/hsu2018_their_code.py's record)."""

    difference: str
    values: dict[str, Any]
    seeds: int
    diagnostic: str
    baseline: str
    their_code: str


# (scenario, row) -> why it differs. GEM's class cell: with 10% of each task's examples held out, 3 of our 10 runs
# fell short on the last task (87.1 to 90.4%); with 1% held out none did (92.3% or above), nor their code's runs here
EXPLAINED: dict[tuple[str, str], Explanation] = {
    ("class", "GEM"): Explanation(
        HELD_OUT,
        {"data.validation_fraction": 0.01},
        10,
        "hsu2018-sgd/class-diagnostics/seeds-10-two-draws-validation-0.01",
        "hsu2018-sgd/class-diagnostics/seeds-10-two-draws",
        "hsu2018-sgd/class-diagnostics/their-code/gem.json",
    ),
}
# (scenario, row) -> the diagnostic's metrics summary and repetitions, the baseline's repetitions, their code's record
Evidence = dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]]


def explanation_evidence(root: Path) -> Evidence:
    """Each explained cell's evidence kept under ``root`` (report/settings/runs/): its diagnostic's metrics summary and
    repetitions, its baseline's repetitions and their code's record; a cell is left out unless all of them are there,
    the two runs of the same two or more seeds, and their code's of two or more runs."""
    evidence = {}
    for (scenario, row), explanation in EXPLAINED.items():
        name, theirs = OURS[row][0], root / explanation.their_code
        files = [root / run / "metrics" / part / f"{name}.json" for run, part in
                 ((explanation.diagnostic, ""), (explanation.diagnostic, "repetitions"),
                  (explanation.baseline, "repetitions"))]  # fmt: skip
        if not all(path.is_file() for path in (*files, theirs)):
            continue
        summary, repetitions, baseline = (json.loads(path.read_text()) for path in files)
        record = json.loads(theirs.read_text())
        if len(repetitions["seed"]) > 1 and baseline["seed"] == repetitions["seed"] and len(record["runs"]) > 1:
            evidence[scenario, row] = (summary, repetitions, baseline, record)
    return evidence


def published(setting: str) -> dict[str, str]:
    """Our model -> the published figure of the 5-task setting ``setting`` (``<scenario>-split5``) as text, "mean ±
    sd" in %, for the rows that one of our models runs (not a stand-in: ``STAND_INS``) from a run that sets no values
    beyond its preset's (not rehearsal with 4400 stored examples: replay's figure is the 1100-example row's)."""
    scenario, _, sequence = setting.partition("-")
    if sequence != "split5":
        return {}
    column = SCENARIOS.index(scenario)
    return {
        OURS[row][0]: f"{_tenths(cells[column][0])} ± {_tenths(cells[column][1])}"
        for row, cells in HSU_TABLE2.items()
        if OURS[row][0] is not None and row not in STAND_INS and not RUNS.get(run_of(row), ("", {}, ()))[1]
    }


def run_of(row: str) -> str:
    """The name of the run that Table 2's page takes ``row`` from: one of ``RUNS``, else ``hsu2018``."""
    return next((name for name, (_, _, rows) in RUNS.items() if row in rows), "hsu2018")


def runs(every: list[str]) -> dict[str, tuple[str, dict[str, Any], list[str]]]:
    """Every run of Table 2's page: its name -> (preset, its own values, our models in it), the ``hsu2018`` run's
    models those of ``every`` (our models, in order) but those whose every row is another run's."""
    elsewhere = {OURS[row][0] for row in OURS if run_of(row) != "hsu2018"}
    elsewhere -= {OURS[row][0] for row in OURS if run_of(row) == "hsu2018"}
    plain = {"hsu2018": ("hsu2018", {}, [m for m in every if m not in elsewhere])}
    return plain | {name: (preset, values, [OURS[r][0] for r in rows]) for name, (preset, values, rows) in RUNS.items()}


def _tenths(value: float) -> str:
    """``value`` to one decimal, halves rounded up as printed tables round them (0.85 -> 0.9; float's own 0.8)."""
    return str(Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def verdict(ours: float, theirs: float, sd: float, p: tuple[float, float] = (math.nan, math.nan)) -> str:
    """Whether our mean (%) is within ``WITHIN`` of their standard deviations of theirs, and by how many if not; there,
    with ``p`` (Welch's test's p and its Holm-adjusted p, ``welch_tests``; NaN: no test), whether the difference is
    ``real`` (adjusted p < ``LEVEL``) or ``not resolved`` from the two sets of runs' noise."""
    gap = (ours - theirs) / sd
    if abs(gap) <= WITHIN:
        return "agrees"
    digits = 2 if round(abs(gap), 1) <= WITHIN else 1  # 2.03 sd shows as such, not as a 2.0 that does not agree
    raw, adjusted = p
    tested = ""
    if not math.isnan(adjusted):
        tested = f"; {'real' if adjusted < LEVEL else 'not resolved'}: p = {_p(raw)}, Holm {_p(adjusted)}"
    return f"{ours - theirs:+.1f} ({gap:+.{digits}f} sd{tested})"


def _p(p: float) -> str:
    """A p-value to two significant digits, 1 as such."""
    return "1" if p >= 0.995 else f"{p:.2g}"


def welch_p(mean: float, ci: float | None, seeds: int, theirs: float, sd: float, runs: int) -> float:
    """Welch's t-test of our mean against theirs, two-sided, from both sides' summaries: ours ``mean`` with the 95% CI
    half-width ``ci`` over ``seeds`` runs (its sd ``ci * sqrt(seeds) / t_0.975,seeds-1``), theirs ``theirs`` with
    ``sd`` over ``runs`` runs (``scipy.stats.ttest_ind_from_stats`` with ``equal_var=False``); NaN without our
    interval (one run) or where neither side varies."""
    if ci is None or seeds < 2 or (ci == 0 and sd == 0):
        return math.nan
    ours_sd = ci * math.sqrt(seeds) / stats.t.ppf(0.975, seeds - 1)
    test = stats.ttest_ind_from_stats(mean, ours_sd, seeds, theirs, sd, runs, equal_var=False)
    return float(test.pvalue)


def their_sd(row: str, spread: float) -> float:
    """Their standard deviation of ``row``, whose published ± is ``spread``: the sd itself, but for the ``QUOTED``
    rows, whose ± is the SEM over ``QUOTED_RUNS`` runs."""
    return spread * their_runs(row) ** 0.5 if row in QUOTED else spread


def their_runs(row: str) -> int:
    """How many runs ``row``'s published figure averages: ``QUOTED_RUNS`` for the ``QUOTED`` rows, else
    ``HSU_RUNS``."""
    return QUOTED_RUNS if row in QUOTED else HSU_RUNS


def _compared(summaries: Summaries, scenario: str):
    """Each row of Table 2 in ``scenario``, in order: (our mean in %, its 95% CI half-width in % or None, their mean,
    their published ±, their sd (``their_sd``)); our mean None where none of our models ran the row."""
    for row, cells in HSU_TABLE2.items():
        model = OURS[row][0]
        summary = summaries[scenario].get(run_of(row), {}).get(model) if model else None
        theirs, spread = cells[SCENARIOS.index(scenario)]
        if summary is None:
            yield None, None, theirs, spread, their_sd(row, spread)
            continue
        ci = summary.get("mean_accuracy_ci95")
        yield 100 * summary["mean_accuracy"], None if ci is None else 100 * ci, theirs, spread, their_sd(row, spread)


def welch_tests(summaries: Summaries, seeds: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(scenario, row) -> Welch's test's p of each cell that one of our runs of ``seeds`` repetitions fills
    (``welch_p``), and that p Holm-adjusted over all of them (``multiplicity.holm``: the page tests every cell at
    once)."""
    cells = {
        (scenario, row): welch_p(mean, ci, seeds, theirs, sd, their_runs(row))
        for scenario in (s for s in SCENARIOS if s in summaries)
        for row, (mean, ci, theirs, _, sd) in zip(HSU_TABLE2, _compared(summaries, scenario), strict=True)
        if mean is not None
    }
    return dict(zip(cells, zip(cells.values(), holm(list(cells.values())), strict=True), strict=True))


def _cells(
    mean: float | None,
    ci: float | None,
    theirs: float,
    spread: float,
    sd: float,
    model: str | None = None,
    p: tuple[float, float] = (math.nan, math.nan),
) -> list[str]:
    """One scenario's three cells of a row: ours (mean ± 95% CI), theirs (mean ± ``spread``, as published), the
    verdict (against their ``sd``, with Welch's test's ``p``, raw and adjusted); ours and the verdict empty where none
    of our models runs the row, ours "not run" where ``model`` runs it but its run is not kept yet."""
    published = f"{theirs:.2f} ± {spread:.2f}"
    if mean is None:
        return ["not run" if model else "", published, ""]
    return [f"{mean:.2f} {plus_minus(ci, 2)}", published, verdict(mean, theirs, sd, p)]


def table2(summaries: Summaries, seeds: int, explained: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """The markdown table: each row of theirs, and per scenario (``summaries``: scenario -> run (``runs``) -> our
    model -> its metrics summary, as metrics/<name>.json holds it, over ``seeds`` repetitions) ours in % (mean ± 95%
    CI), theirs, and the verdict, "explained below" after it where the cell is one of ``explained`` (scenario, row:
    those ``_explained`` writes a paragraph for)."""
    scenarios = [s for s in SCENARIOS if s in summaries]
    header = ["method (theirs)", "ours"]
    header += [f"{label}, {s}" for s in scenarios for label in ("ours", "Hsu et al.", "verdict")]
    models = [OURS[row][0] for row in HSU_TABLE2]
    tests = welch_tests(summaries, seeds)
    columns = [
        [
            _cells(*c, m, tests.get((s, row), (math.nan, math.nan)))
            for row, c, m in zip(HSU_TABLE2, _compared(summaries, s), models, strict=True)
        ]
        for s in scenarios
    ]
    for s, column in zip(scenarios, columns, strict=True):
        for row, cells in zip(HSU_TABLE2, column, strict=True):
            if (s, row) in explained:
                cells[2] += "; explained below"
    rows = []
    for i, row in enumerate(HSU_TABLE2):
        model, note = OURS[row]
        if run_of(row) == QUOTED_PROTOCOL:
            orders = ", in their digit orders" * (QUOTED_PROTOCOL in IN_THEIR_ORDERS)
            note = "; ".join(filter(None, (f"under `{QUOTED_PROTOCOL}`{orders}", note)))
        line = [row, f"`{model}`" + (f" ({note})" if note else "") if model else f"— ({note})"]
        rows.append(line + [cell for column in columns for cell in column[i]])
    return markdown.table(header, rows, left=[1, *(4 + 3 * k for k in range(len(scenarios)))])  # ours, verdicts


def real_differences(tests: dict[tuple[str, str], tuple[float, float]]) -> dict[str, list[str]]:
    """Per scenario: the rows whose difference from theirs Welch's test resolves after Holm's correction (``tests``,
    as ``welch_tests`` gives them: the adjusted p below ``LEVEL``), whether or not they agree within ``WITHIN`` sd."""
    real = {}
    for (scenario, row), (_, adjusted) in tests.items():
        if adjusted < LEVEL:
            real.setdefault(scenario, []).append(row)
    return real


def agreeing(summaries: Summaries) -> dict[str, tuple[int, int]]:
    """Per scenario of ``summaries``: how many of the rows that one of our models ran agree, and how many ran."""
    counts = {}
    for scenario in (s for s in SCENARIOS if s in summaries):
        compared = _compared(summaries, scenario)
        verdicts = [verdict(mean, theirs, sd) for mean, _, theirs, _, sd in compared if mean is not None]
        counts[scenario] = (verdicts.count("agrees"), len(verdicts))
    return counts


def _explained(summaries: Summaries, evidence: Evidence) -> dict[tuple[str, str], str]:
    """(scenario, row) -> a paragraph, for each cell of ``summaries`` that does not agree and that ``evidence``
    (``explanation_evidence``) explains: the difference; ours with it undone beside the published figure, and paired
    over the seeds with the cell's run (the cell and its last task); their own code's runs here beside the published
    figure (each a planned comparison: p uncorrected; their code's sd NumPy's, as their script prints it)."""
    paragraphs = {}
    for scenario in (s for s in SCENARIOS if s in summaries):
        for row, (mean, _, theirs, _, sd) in zip(HSU_TABLE2, _compared(summaries, scenario), strict=True):
            if mean is None or (scenario, row) not in evidence or verdict(mean, theirs, sd) == "agrees":
                continue
            explanation, (diagnostic, repetitions, baseline, record) = EXPLAINED[scenario, row], evidence[scenario, row]
            ours, ci = 100 * diagnostic["mean_accuracy"], 100 * diagnostic["mean_accuracy_ci95"]
            p = welch_p(ours, ci, len(repetitions["seed"]), theirs, sd, their_runs(row))
            last = [key for key in repetitions if key.startswith("task_") and key.endswith("_accuracy")][-1]
            paired = {
                key: paired_difference(100 * np.asarray(repetitions[key]), 100 * np.asarray(baseline[key]))
                for key in ("mean_accuracy", last)
            }
            cell, task = (f"{d.mean:+.2f} ± {d.ci95:.2f} (p = {_p(d.p)})" for d in paired.values())
            averages = [run["average"] for run in record["runs"]]
            their_mean, their_sd_here = statistics.fmean(averages), statistics.pstdev(averages)
            values = ", ".join(f"`{key}: {value}`" for key, value in explanation.values.items())
            paragraphs[scenario, row] = (
                f"**{row}, {scenario}** ({(mean - theirs) / sd:+.1f} of their sd in the table) is accounted for by a "
                f"difference the preset lists: {explanation.difference}. Ours with it undone ({values}, "
                f"{len(repetitions['seed'])} repetitions, kept in `runs/{explanation.diagnostic}/`): {ours:.2f} "
                f"{plus_minus(ci, 2)}, {(ours - theirs) / sd:+.1f} of their sd, {verdict(ours, theirs, sd)} (Welch's "
                f"p = {_p(p)}); paired over the same seeds with the cell's run of them (kept in "
                f"`runs/{explanation.baseline}/`), the cell {cell} and its last task {task}. Their own code "
                f"(GT-RIPL/Continual-Learning-Benchmark at {record['commit'][:7]}, `bench/hsu2018_their_code.py`) run "
                f"here, {len(averages)} seeded runs (kept in `runs/{explanation.their_code}`): {their_mean:.2f} ± "
                f"{their_sd_here:.2f} (mean ± sd), {(their_mean - theirs) / sd:+.1f} of their sd, "
                f"{verdict(their_mean, theirs, sd)}."
            )
    return paragraphs


def _not_run(summaries: Summaries) -> list[str]:
    """A paragraph naming, per scenario of ``summaries``, the rows that one of our models runs but whose run is not
    kept yet (their cells read "not run"); none where every run is."""
    missing = {}
    for scenario in (s for s in SCENARIOS if s in summaries):
        compared = zip(HSU_TABLE2, _compared(summaries, scenario), strict=True)
        rows = [row for row, (mean, *_) in compared if OURS[row][0] is not None and mean is None]
        if rows:
            missing[scenario] = rows
    if not missing:
        return []
    listed = "; ".join(f"{scenario}: {_listed(rows)}" for scenario, rows in missing.items())
    return [f"Not run yet (`python bench/hsu2018.py` runs what is missing, keeping the rest): {listed}.", ""]


def _listed(words: list[str]) -> str:
    """The words as a sentence lists them: a; a and b; a, b and c."""
    return " and ".join(filter(None, (", ".join(words[:-1]), words[-1])))


def _but(differs: tuple[str, ...], *left_out: str) -> str:
    """A protocol's differences as a sentence lists them, those of ``left_out`` left out."""
    return "; ".join(d for d in differs if d not in left_out)


def write_table2_page(summaries: Summaries, seeds: int, out: Path, evidence: Evidence | None = None) -> None:
    """``out`` (report/settings/hsu2018.md): Table 2 beside ours under ``hsu2018`` (the ``QUOTED`` rows under
    ``QUOTED_PROTOCOL``), run with ``seeds`` repetitions, and the explanations of ``evidence``'s cells
    (``explanation_evidence``) that do not agree."""
    preset, quoted = PROTOCOLS["hsu2018"], PROTOCOLS[QUOTED_PROTOCOL]
    explained = _explained(summaries, evidence or {})
    tests = welch_tests(summaries, seeds)
    tested, real = sum(not math.isnan(p) for p, _ in tests.values()), real_differences(tests)
    lines = [
        "# Hsu et al. (2018)'s Table 2 under their protocol",
        "",
        f"5-task split MNIST in the {_listed([s for s in SCENARIOS if s in summaries])} "
        f"scenario{'s' * (len(summaries) > 1)} under `hsu2018` ({preset.title}'s protocol, read "
        f"from {preset.source}), {seeds} repetitions each: ours as mean ± 95% CI half-width, theirs as mean ± sd of "
        f"10 runs, in %. Verdict: `agrees` where our mean is within {WITHIN:g} of their standard deviations of "
        "theirs; otherwise the difference, in points and in their standard deviations, which needs an explanation, and "
        "whether it is `real` or `not resolved` from the two sets of runs' noise: where their sd is small, our "
        "mean's own standard error can exceed it, so the difference is tested, by Welch's t-test of the two means "
        f"from both sides' sds and run counts (ours: the sd behind the 95% CI, {seeds} runs; theirs: {HSU_RUNS} runs, "
        f"{QUOTED_RUNS} for the rows they quote, below), its p and that p Holm-adjusted over the page's {tested} "
        f"cells: `real` where the adjusted p is below {LEVEL:g}. "
        f"Where this run still differs from theirs: {_but(preset.differs, HSU_QUOTED)}.",
        "",
        f"{_listed(list(QUOTED))} are not in their code: Hsu et al. quote van de Ven & Tolias's runs, whose code "
        "(GMvandeVen/continual-learning at e17b714, compare_MNIST.py) reports mean ± SEM, below the sd by the square "
        f"root of their run count: on those rows the verdict takes their sd as the SEM times the square root of "
        f"{QUOTED_RUNS}, their runs (with 20, as their later papers run, it would be wider still). Ours of those rows "
        "run under "
        f"`{QUOTED_PROTOCOL}` ({quoted.title}'s protocol, read from {quoted.source}), each repetition alone on the "
        "digit pairs that their data.py draws for one of their seeds, as their runs split the digits anew for each "
        f"seed (their seeds 1 to {seeds}, one a repetition, the first but their exception 0: "
        "`protocols.van_de_ven_tasks`; which seeds their paper ran is not in their code, whose compare_MNIST.py starts "
        "from 1111 by default), where the preset differs from their "
        f"code: {_but(quoted.differs, VAN_DE_VEN_2018_OTHERS, NATURAL_ORDER)}.",
        "",
        *table2(summaries, seeds, frozenset(explained)),
        "",
        "Rows that agree: "
        + "; ".join(f"{s}, {agree} of {ran}" for s, (agree, ran) in agreeing(summaries).items())
        + f" ({STAND_INS_NOTE}).",
        f"Differences that Welch's test resolves after Holm's correction over the {tested} cells: "
        + ("; ".join(f"{s}, {_listed(rows)}" for s, rows in real.items()) or "none")
        + ".",
        "",
        *(["Cells that do not agree, explained:", ""] if explained else []),
        *(line for paragraph in explained.values() for line in (paragraph, "")),
        *_not_run(summaries),
        "Regenerate this page with `python bench/hsu2018.py`; do not edit it.",
    ]
    with atomic_output(out) as tmp:
        markdown.write(tmp, lines)
