"""The generated report: ``report/README.md``, one setting's results as a page that a git host shows (tables of
every model's metrics and the paired differences between strategies, the hyperparameters and where they were
chosen), with the figures of ``forgetting.reporting.figures`` beside it; and ``write_settings_page``, the same for
several settings side by side (the scenario benchmark). Byte-stable: the same metrics and params give the same bytes."""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from forgetting.config.params import repetition_seeds, value_at
from forgetting.config.protocols import PROTOCOLS, protocol_of
from forgetting.config.settings import TUNING, other_values, setting_of, tuning_path
from forgetting.data.scenarios import Scenario
from forgetting.evaluation.intervals import plus_minus
from forgetting.evaluation.multiplicity import holm
from forgetting.evaluation.results import Results, models
from forgetting.files import atomic_output
from forgetting.reporting import figures, markdown
from forgetting.reporting.published import published
from forgetting.strategies import Memory, listed, strategy_class

LABELS = {"task_a": "`task_a` (after task A only)", "joint": "`joint` (upper bound)"}
OPTIONAL = {"task_a_forgetting": "task A forgetting", "bwt": "BWT", "fwt": "FWT"}  # shown where present
SCENARIOS = {
    "domain": "one shared head, no task identity at test time",
    "task": "one head per task, chosen by the example's task",
    "class": "one head over every digit, no task identity at test time",
}
SIDE = 28  # an MNIST image's side: the MLP's inputs are its pixels, padded by model.input_padding on each side
ALPHA = 0.05  # the all-pairs table's family-wise error rate (Holm)


def make(
    params: dict[str, Any], out: Path = Path("report"), metrics: Path = Path("metrics"), tuning: Path = TUNING
) -> None:
    """``out``/README.md and its figures in ``out``/figures/, from the metrics under ``metrics``, and the DVC plots'
    data in ``out``/plots/: all of it, or (on any error) none. (The rest of ``out`` is not touched: the scenario
    benchmark's page lives in ``out``/settings/.)"""
    with (
        atomic_output(out / "figures") as folder,
        atomic_output(out / "plots") as plots,
        atomic_output(out / "README.md") as page,
    ):
        results = Results.load(params, metrics, tuning)
        folder.mkdir()
        lines = section(results, folder, link="figures/")
        lines += [
            "",
            "Regenerate this page with `dvc repro report` (src/forgetting/reporting/report.py); do not edit it.",
        ]
        markdown.write(page, lines)
        write_plot_data(results, plots)


def write_plot_data(results: Results, folder: Path) -> None:
    """The data of dvc.yaml's plots, every model's records in one file per plot, each record with its ``model``:
    ``accuracy_per_epoch.json`` (the strategies') and ``accuracy_matrix.json`` (every model's)."""
    folder.mkdir()
    plots = {
        "accuracy_per_epoch": {name: results.per_epoch[name] for name in listed()},
        "accuracy_matrix": {name: results.matrix[name] for name in models()},
    }
    for plot, by_model in plots.items():
        records = [{"model": name, **record} for name, records in by_model.items() for record in records]
        (folder / f"{plot}.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


def write_settings_page(results_by_setting: dict[str, Results], out: Path) -> None:
    """``out``/settings.md: the mean accuracy of every model in every setting, then one section per setting with
    the tables and figures of the single-setting report (figures ``out``/<setting>-<figure>.png). ``out``
    (report/settings/, not one of the report stage's outputs, which DVC deletes before every run of the stage) also
    holds what the benchmarks keep there (runs/, hsu2018.md): only the page's own files are replaced, the new ones
    written aside in full first, so that a failure leaves the old page as it was."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".settings-", dir=out) as tmp:
        folder = Path(tmp)
        lines = ["# Every setting side by side", "", "Mean final test accuracy over each setting's tasks:", ""]
        rows = [
            [_name(name), *(mean_ci(r.summary[name], "mean_accuracy") for r in results_by_setting.values())]
            for name in ("joint", *listed(), "task_a")
        ]
        lines += markdown.table(["model", *(f"`{s}`" for s in results_by_setting)], rows)
        lines += _published(results_by_setting)
        for setting, results in results_by_setting.items():
            lines += ["", *section(results, folder, prefix=f"{setting}-", level=2)]
        markdown.write(folder / "settings.md", lines)
        for old in [out / "settings.md", *(p for f in figures.FIGURES for p in out.glob(f"*-{f.file}"))]:
            old.unlink(missing_ok=True)
        for new in sorted(folder.iterdir()):
            new.replace(out / new.name)


def _published(results_by_setting: dict[str, Results]) -> list[str]:
    """Ours beside the published 5-task split-MNIST figures (``PUBLISHED``), for the settings that have them."""
    settings = [s for s in results_by_setting if published(s)]
    if not settings:
        return []
    header = ["model", *(f"{label} `{s}`" for s in settings for label in ("ours,", "Hsu et al.,"))]
    rows = []
    for name in ("joint", *listed()):
        ours = [mean_ci(results_by_setting[s].summary[name], "mean_accuracy") for s in settings]
        rows.append(
            [_name(name), *(c for s, o in zip(settings, ours, strict=True) for c in (o, published(s).get(name, "")))]
        )
    p = results_by_setting[settings[0]].params
    hsu = PROTOCOLS["hsu2018"].params("class", 5)  # their protocol, as the preset holds it
    width = hsu["model.hidden_units"]
    intro = (
        "Beside the published 5-task split-MNIST results (Hsu et al. 2018, mean ± sd of 10 runs, in %); ours as "
        "above, mean ± 95% CI half-width over the repetitions. The protocols differ, so the columns are not a "
        f"like-for-like comparison (that is `python bench/hsu2018.py`'s page, hsu2018.md, under their protocol): "
        f"Hsu et al. train a {len(width)} x {width[0]} MLP (inputs padded to 32 x 32) with Adam at "
        f"{hsu['finetune.learning_rate']:g} on every task, batches of {hsu['train.batch_size']}, "
        f"{hsu['finetune.epochs']} epochs a task, class outputs masked to the classes seen so far and a "
        f"rehearsal buffer of {hsu['replay.buffer_size']}; here, {p['model']['hidden_units']} hidden units, Adam at "
        f"{p['finetune']['learning_rate']:g} after task A (which acts as early stopping: naive forgets less), batches "
        f"of {p['train']['batch_size']}, {_length(p)} a task, class outputs: {p['class_outputs']}, values tuned per "
        f"setting, a buffer of {p['replay']['buffer_size']} that replay repeats and shifts. The differences measure "
        "the protocol as much as the methods:"
    )
    return ["", intro, "", *markdown.table(header, rows)]


def section(results: Results, folder: Path, prefix: str = "", level: int = 1, link: str = "") -> list[str]:
    """The markdown of one setting, its title at heading ``level``; its figures are written to ``folder`` as
    ``<prefix><figure>.png`` and linked as ``<link><prefix><figure>.png``."""
    h = "#" * (level + 1)
    memory = {name: memory_cost(results.params, name) for name in listed()}
    lines = [*_title(results, level), "", f"{h} Every model", "", *_strategy_table(results, memory)]
    for figure in figures.FIGURES:
        lines += ["", f"{h} {figure.title}", ""]
        if len(results.tasks) < figure.min_tasks:
            lines.append(figure.skipped)
            continue
        figure.draw(results, folder / f"{prefix}{figure.file}", {k: _size(m) for k, m in memory.items()})
        lines += [f"![{figure.title}]({link}{prefix}{figure.file})", "", f"How to read it: {figure.how_to_read}"]
    lines += ["", f"{h} Which differences are real", "", *_pairwise_table(results)]
    return [*lines, "", f"{h} Hyperparameters and where they were chosen", "", *_hyperparameter_table(results)]


def _title(results: Results, level: int) -> list[str]:
    p, setting = results.params, setting_of(results.params)
    inputs = p.get("task_inputs", {"kind": "digits"})
    if inputs["kind"] == "digits":
        benchmark = "split MNIST"
        tasks = ", ".join(
            f"{figures.letter(t)} ({' '.join(map(str, d))})" for t, d in zip(results.tasks, p["tasks"], strict=True)
        )
    elif inputs["kind"] == "permuted":
        benchmark, tasks = "permuted MNIST", f"A to {figures.letter(results.tasks[-1])}, each with its own pixel order"
        tasks += " (A: MNIST's own)"
    else:
        step = inputs["degrees_per_task"]
        benchmark = "rotated MNIST"
        tasks = ", ".join(f"{figures.letter(t)} ({i * step:g}°)" for i, t in enumerate(results.tasks))
    last = p["seed"] + p["seeds"] - 1
    seeds = f"{p['seeds']} repetitions, seeds {p['seed']}-{last}" if p["seeds"] > 1 else f"1 repetition, seed {last}"
    return [
        f"{'#' * level} Forgetting on {benchmark}, {p['scenario']} scenario: tasks {tasks}",
        "",
        f"{f'Setting `{setting}`' if setting else 'A task sequence of your own (not a tuned setting)'}: "
        f"{SCENARIOS[p['scenario']]}; {seeds}; hyperparameters {_sources(results)}. Each "
        "number is the mean over the repetitions ± the half-width of its 95% confidence interval (Student t), on "
        "the test split; the interval covers the seeds' variance (initialisation, data order, what a strategy draws), "
        "with one train/validation split and the hyperparameters fixed, not the choice of either. Every strategy "
        f"trains {_length(p)} on each task after task A, at "
        f"learning rate {p['finetune']['learning_rate']:g}{_steps(p)}; EWC's Fisher: {p['fisher']['estimator']}, "
        f"over {p['fisher']['num_examples']} examples of the task; hidden units: {p['model']['hidden_units']}.",
        *_protocol(p),
    ]


def _protocol(p: dict) -> list[str]:
    """The published protocol the run followed (``forgetting.config.protocols``), and where it still differs."""
    name = protocol_of(p)
    if name is None:
        return []
    preset = PROTOCOLS[name]
    return [
        "",
        f"Protocol: `{name}`, {preset.title}'s (values read from {preset.source}); where this run still differs from "
        f"theirs: {'; '.join(preset.differs)}.",
    ]


def _steps(p: dict) -> str:
    """The strategies whose optimiser steps per task differ from a pass over the task's data an epoch, and how
    (``Strategy.steps``, as the strategy's own class declares it: A-GEM extends replay for its buffer, not for its
    training data); nothing where iterations are counted (every strategy takes the same)."""
    if p["finetune"]["iterations"] is not None:
        return ""
    own = {name: vars(strategy_class(name)).get("steps") for name in listed()}
    differ = [f"`{name}`: {steps}" for name, steps in own.items() if steps]
    return (
        f" (optimiser steps, where a strategy trains on more than the task's data: {'; '.join(differ)})"
        if differ
        else ""
    )


def _length(p: dict) -> str:
    """How long each later task trains: its epochs, or its iterations (``finetune.iterations``)."""
    if p["finetune"]["iterations"] is None:
        return f"{p['finetune']['epochs']} epochs"
    return f"{p['finetune']['iterations']} iterations (batches of {p['train']['batch_size']})"


def _strategy_table(results: Results, memory: dict[str, Memory]) -> list[str]:
    optional = [key for key in OPTIONAL if any(key in results.summary[name] for name in models())]
    if not fwt_differs(results.params):
        optional = [key for key in optional if key != "fwt"]
    header = [f"task {figures.letter(t)}" for t in results.tasks] + ["mean", *(OPTIONAL[k] for k in optional)]
    rows = []
    for name in results.ranked:
        s = results.summary[name]
        cells = [mean_ci(s, f"{task}_accuracy") for task in results.tasks]
        cells += [f"**{mean_ci(s, 'mean_accuracy')}**", *(mean_ci(s, key) if key in s else "" for key in optional)]
        kept = held(memory[name]) if name in memory else "every task's data (not continual)"
        rows.append([_name(name), *cells, "" if name == "task_a" else kept, _values(results, name)])
    return [
        "Final test accuracy on each task; joint first (the upper bound), then the strategies by mean accuracy, best "
        "first, then the task-A model before any later task. Memory: what a strategy keeps per repetition to train "
        "on the last task (float32 values, stored 28 x 28 examples).",
        "",
        *markdown.table(["model", *header, "memory", "hyperparameters"], rows, text=2),
        *_fwt_note(results),
    ]


def fwt_differs(params: dict[str, Any]) -> bool:
    """Whether forward transfer can differ between strategies: FWT = mean over tasks i > A of R[i-1][i] - b_i
    (accuracy on task i just before training it, minus at initialisation). With two tasks R[0][1] is the task-A
    model's, the same for every strategy; in the class scenario task i's digits have never been trained before it,
    so that R[i-1][i] is about 0 for every strategy. Only a longer sequence in the domain or task scenario lets
    each strategy enter task i from a model of its own."""
    return len(params["tasks"]) > 2 and params["scenario"] != "class"


def _fwt_note(results: Results) -> list[str]:
    """Where FWT cannot differ between strategies (``fwt_differs``), the one figure of the setting, said once: a
    strategy's that scores with the logits (its R[i-1][i] is the task-A model's or the untrained digits')."""
    if fwt_differs(results.params):
        return []
    has = [n for n in listed() if "fwt" in results.summary[n]]
    scored = [n for n in has if not strategy_class(n).acts_at("predict")]
    if not scored:
        return []
    fwt = mean_ci(results.summary[scored[0]], "fwt")
    own = [f"`{n}` {mean_ci(results.summary[n], 'fwt')}" for n in has if n not in scored]
    rule = f" (not {', '.join(own)}: a prediction rule of its own, which reads more than the logits)" if own else ""
    if len(results.tasks) == 2:
        why = "it is the task-A model's accuracy on task B less that at initialisation, and every strategy starts there"
        if results.params["scenario"] == "domain":
            why += (
                " (its sign comes from the label pairing, each digit of task B answering an output that another digit "
                "of task A trained, not from transfer)"
            )
    else:
        why = "each task's digits are untrained until it trains, so R[i-1][i] is about 0 for every strategy"
    return [
        "",
        f"Forward transfer (FWT: the accuracy on each later task just before it trains, minus that at initialisation, "
        f"averaged over those tasks) is the same for every strategy that predicts by its logits in this setting, "
        f"{fwt}{rule}: {why}. It is left out of the table (metrics files keep it).",
    ]


def _pairwise_table(results: Results) -> list[str]:
    models = ["joint", *results.strategies]
    adjusted = holm_adjusted(results, models)
    tests = sum(not math.isnan(p) for p in adjusted.values())
    rows = [[f"`{row}`", *(_difference(results, row, column, adjusted) for column in models)] for row in models]
    return [
        "Mean accuracy of the row minus that of the column, paired over the repetitions' shared seeds (the same "
        "task-A model, data order and initialisation), ± its 95% CI half-width (the pair's own, uncorrected). "
        f"**Bold**: a real difference after Holm's correction for the table's {tests} comparisons (the paired "
        f"t-test's p, Holm-adjusted, below {ALPHA}), so that the chance of any false claim in the table stays under "
        f"{ALPHA}; a difference whose own interval excludes 0 can stay plain. Identical: every repetition gave the "
        "same value. One planned comparison needs no correction: `forgetting diff A B`.",
        "",
        *markdown.table(["row - column", *(f"`{m}`" for m in models)], rows),
    ]


def holm_adjusted(results: Results, models: list[str]) -> dict[frozenset[str], float]:
    """Each unordered pair of ``models``: its paired t-test's p-value (mean accuracy, shared seeds), Holm-adjusted
    over every pair that has one (``holm``); NaN where there is no test (identical, one seed, no shared seed)."""
    pairs = [frozenset(pair) for pair in itertools.combinations(models, 2)]
    differences = [results.paired(*sorted(pair)) for pair in pairs]
    return dict(zip(pairs, holm([math.nan if d is None else d.p for d in differences]), strict=True))


def _difference(results: Results, row: str, column: str, adjusted: dict[frozenset[str], float]) -> str:
    d = None if row == column else results.paired(row, column)
    if d is None:
        return "—"
    if d.verdict == "identical":
        return "identical"
    text = f"{d.mean:+.3f} {plus_minus(d.ci95)}"
    return f"**{text}**" if adjusted[frozenset((row, column))] < ALPHA else text


def _hyperparameter_table(results: Results) -> list[str]:
    rows = []
    for name in listed():
        space = strategy_class(name).search_space
        searched = "; ".join(f"{key} ∈ {{{', '.join(map(_number, values))}}}" for key, values in space.items())
        rows.append([f"`{name}`", _values(results, name) or "none", searched or "—", _source(results, name)])
    return markdown.table(["strategy", "values", "`forgetting tune` tries", "where chosen"], rows, text=3)


def _sources(results: Results) -> str:
    """Where the hyperparameters came from, in a phrase for the title."""
    tunable = [name for name in listed() if strategy_class(name).hyperparameters]
    tuned = [name for name in tunable if _source(results, name).startswith("tuned")]
    if results.tuning is None:
        return "set by hand in params.yaml (not tuned for this setting)"
    path = tuning_path(results.tuning["setting"]).as_posix()
    elsewhere = _under_other_values(results, tuned)
    if len(tuned) == len(tunable):
        return f"tuned on validation ({path}) for every strategy{elsewhere}"
    return (
        f"tuned on validation ({path}) for {len(tuned)} of the {len(tunable)} strategies with any (the others by "
        f"hand){elsewhere}"
    )


def _other_values(results: Results, name: str) -> list[tuple[str, Any, Any]]:
    """The params that strategy ``name``'s choice was tuned under (its tuning entry's ``under``) and this run
    changes: (key, value there, value here); none where the entry records none (files older than the record)."""
    owner = strategy_class(name).tuned_as or name
    entry = (results.tuning or {}).get("chosen", {}).get(owner) or {}
    return other_values(entry.get("under", {}), results.params)


def _under_other_values(results: Results, tuned: list[str]) -> str:
    """For the title: how many of the ``tuned`` strategies' choices were made under other params than this run's,
    and which keys."""
    moved = {name: _other_values(results, name) for name in tuned}
    moved = {name: keys for name, keys in moved.items() if keys}
    if not moved:
        return ""
    keys = list(dict.fromkeys(key for keys in moved.values() for key, _, _ in keys))
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return (
        f", {len(moved)} of them under other values than this run's ({shown}: the hyperparameters table says which), "
        "so they may not be its best"
    )


def _source(results: Results, name: str) -> str:
    """Where strategy ``name``'s hyperparameters were chosen: by ``forgetting tune`` or by hand."""
    if not strategy_class(name).hyperparameters:
        return "— (no hyperparameters)"
    owner = strategy_class(name).tuned_as or name
    entry = (results.tuning or {}).get("chosen", {}).get(owner)
    if entry is None:
        return "set by hand in params.yaml (not tuned for this setting)"
    path = tuning_path(results.tuning["setting"]).as_posix()
    chosen = entry["params"]
    if all(value_at(results.params, key) == value for key, value in chosen.items()):
        whose = "" if owner == name else f" of `{owner}`, whose values these are"
        score = f"val acc {mean_ci(entry, 'score')}; {_tuning_seeds(results, entry)}{_edge(entry)}"
        return f"tuned on validation ({path}: {entry['trials']} trials{whose}, {score}{_elsewhere(results, name)})"
    return f"set by hand ({path} chose {', '.join(f'{k} = {_number(v)}' for k, v in chosen.items())})"


def _elsewhere(results: Results, name: str) -> str:
    """Where this run trains otherwise than the choice's trials did: up to three keys, each tuned-under -> here."""
    moved = _other_values(results, name)
    if not moved:
        return ""
    shown = "; ".join(f"{key} {_number(there)} there, {_number(here)} here" for key, there, here in moved[:3])
    more = f"; and {len(moved) - 3} more" if len(moved) > 3 else ""
    return f"; under other values than this run's: {shown}{more}"


def _edge(entry: dict[str, Any]) -> str:
    """What the tuner's grid widening (``forgetting.tuning.tune.widen``) did for a choice, where it did anything."""
    count = entry.get("widened", 0)
    widened = f"; {count} trial{'s' * (count != 1)} past the declared grid" if count else ""
    edge = entry.get("at_edge")
    return widened + (
        f"; {', '.join(edge)} at the edge of the values tried: the figure may understate it" if edge else ""
    )


def _tuning_seeds(results: Results, entry: dict[str, Any]) -> str:
    """The seeds a choice was made on (its own, or its tuning file's for files older than that), against those the
    figures are on: the same seeds carry their luck from the choice into the figure."""
    seeds = entry.get("seeds", results.tuning.get("seeds"))
    reported = repetition_seeds(results.params)
    if not seeds:
        return "seeds not recorded"
    if set(seeds) & set(reported):
        which = "all of the" if set(reported) <= set(seeds) else "some of the"
        return f"seeds {_seed_range(seeds)}: {'the' if seeds == reported else which} reported ones"
    return f"seeds {_seed_range(seeds)}, not the reported ones"


def _seed_range(seeds: list[int]) -> str:
    consecutive = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}-{seeds[-1]}" if consecutive and len(seeds) > 1 else ", ".join(map(str, seeds))


def _values(results: Results, name: str) -> str:
    """The hyperparameters that strategy ``name`` ran with, ``key = value``; empty for other models."""
    keys = strategy_class(name).hyperparameters if name in listed() else ()
    return ", ".join(f"{key} = {_number(value_at(results.params, key))}" for key in keys)


def memory_cost(params: dict[str, Any], name: str) -> Memory:
    """What strategy ``name`` keeps per repetition to train on the last task under ``params``."""
    return strategy_class(name).memory(params, num_parameters(params), len(params["tasks"]))


def num_parameters(params: dict[str, Any]) -> int:
    """The MLP's parameter count per repetition: each dense layer's inputs x units + units biases, from the (padded)
    image's pixels through the hidden layers to the outputs."""
    hidden, inputs = params["model"]["hidden_units"], (SIDE + 2 * params["model"].get("input_padding", 0)) ** 2
    widths = [inputs, *([hidden] if isinstance(hidden, int) else hidden), Scenario.from_params(params).num_outputs]
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def _name(model: str) -> str:
    """A model's name in the tables."""
    return LABELS.get(model, f"`{model}`")


def held(memory: Memory) -> str:
    """What a strategy keeps and its size."""
    return f"{memory.what}: {_size(memory)}" if memory.bytes else memory.what


def _size(memory: Memory) -> str:
    if memory.bytes == 0:
        return "nothing"
    return f"{memory.bytes / 1e6:.2f} MB" if memory.bytes >= 1e4 else f"{memory.bytes / 1e3:.1f} kB"


def _number(value: Any) -> str:
    """A param's value as the tables show it: floats short, None as params.yaml spells it (null)."""
    return "null" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def mean_ci(values: dict[str, float], key: str) -> str:
    """``values[key]`` with its 95% CI half-width (``<key>_ci95``), as the tables show it: 0.812 ± 0.004 (± n/a
    for one repetition)."""
    return f"{values[key]:.3f} {plus_minus(values[f'{key}_ci95'])}"
