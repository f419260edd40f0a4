"""Hsu et al. (2018)'s Table 2 under their protocol: the whole pipeline on the 5-task split in the task, domain and
class scenarios with the `hsu2018` preset (forgetting.config.protocols), each in a copy of the project, and ours beside
theirs with a verdict per cell -> report/settings/hsu2018.md. The rows that Hsu et al. quote from van de Ven & Tolias
(LwF, DGR, RtF: ``published.QUOTED``) run under the protocol those were measured under, `vandeven2018`, each
repetition alone on the digit pairs their code draws for one of its seeds (``published.IN_THEIR_ORDERS``), and
rehearsal with 4400 stored examples in a run of its own (``published.RUNS``).

    python bench/hsu2018.py                                   # 3 scenarios x every strategy x 10 repetitions (hours)
    python bench/hsu2018.py --scenarios class --seeds 5 --keep /tmp/hsu   # a cheaper look, kept elsewhere
    python bench/hsu2018.py --seeds 5 --kept-only              # the page from the runs kept so far, running nothing
    python bench/hsu2018.py --seeds 5 --runs hsu2018-sgd       # one run brought up to date, the page from them all
    python bench/hsu2018.py --seeds 5 --runs --explanations    # only the explained cells' diagnostics, and the page

Each scenario's run shares this project's DVC cache; its runs are kept in --keep/<scenario>/ (default:
report/settings/runs/hsu2018/, committed with the page) and the other runs' beside it, in --keep/../<run>/<scenario>/
(hsu2018-buffer4400, hsu2018-sgd; vandeven2018's in --keep/../vandeven2018/their-orders/<scenario>/seed-<seed>/),
and a later run reruns only the models that are stale there (``scenarios.keep_runs``: a strategy added, a value or a
module changed, another number of repetitions). A cell that does not agree and that ``published.EXPLAINED`` explains
gets a paragraph from its evidence, kept in --keep/../: a run of ours with the difference undone and the cell's run of
the same seeds (``--explanations`` brings both up to date), and their own code's runs (bench/hsu2018_their_code.py,
which needs PyTorch).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from project_copy import ROOT
from scenarios import add_run_options, keep_runs

from forgetting.config import params as params_module
from forgetting.config.protocols import PROTOCOLS, van_de_ven_tasks
from forgetting.config.settings import setting_params
from forgetting.evaluation.intervals import summary
from forgetting.evaluation.results import models
from forgetting.reporting.published import (
    EXPLAINED,
    IN_THEIR_ORDERS,
    OURS,
    SCENARIOS,
    THEIR_ORDERS,
    explanation_evidence,
    run_of,
    runs,
    write_table2_page,
)


def preset_params(
    base: dict, scenario: str, seeds: int | None, protocol: str = "hsu2018", own: dict | None = None
) -> dict:
    """params.yaml for ``<scenario>-split5`` under ``protocol`` and the values ``own`` (``seeds`` repetitions where
    given)."""
    params = setting_params(base, f"{scenario}-split5")
    values = PROTOCOLS[protocol].params(scenario, len(params["tasks"])) | (own or {})
    return params_module.with_values(params, values | ({"seeds": seeds} if seeds else {}))


def in_their_orders(
    base: dict, scenario: str, seeds: int, run: tuple[str, dict, list[str]], keep: Path, mnist: Path | None = None
) -> None:
    """``run`` (preset, its own values, its models) once per seed, repetition ``seed + i`` alone on the digit pairs
    that van de Ven & Tolias's code draws for their seed ``1 + i`` (``protocols.van_de_ven_tasks``), each kept in
    ``keep``/seed-<seed>/ (``keep_runs``: only what is stale reruns)."""
    protocol, own, names = run
    for i in range(seeds):
        seed, tasks = base["seed"] + i, van_de_ven_tasks(1 + i)
        print(f"  seed {seed}, tasks {tasks}:", flush=True)
        params = preset_params(base, scenario, 1, protocol, own | {"seed": seed, "tasks": tasks})
        keep_runs(params, mnist, keep / f"seed-{seed}", names)


def explanation_runs(base: dict, root: Path, mnist: Path | None) -> None:
    """Each explained cell's two runs of ours (``published.EXPLAINED``), kept under ``root``, for the cell's model and
    with the explanation's seeds: the cell's run with the difference undone (its values and the explanation's), and
    as it is, the baseline they pair with (only what is stale reruns)."""
    for (scenario, row), explanation in EXPLAINED.items():
        protocol, own, _ = runs(models())[run_of(row)]
        for folder, values in ((explanation.diagnostic, explanation.values), (explanation.baseline, {})):
            print(f"{scenario}, {row}, explained, {values or 'as the cell'}:", flush=True)
            params = preset_params(base, scenario, explanation.seeds, protocol, own | values)
            keep_runs(params, mnist, root / folder, [OURS[row][0]])


def per_seed(keep: Path, model: str) -> dict[int, float]:
    """Seed -> mean accuracy of each of ``model``'s repetitions kept in ``keep`` (none where it is not kept)."""
    path = keep / "metrics" / "repetitions" / f"{model}.json"
    if not path.is_file():
        return {}
    kept = json.loads(path.read_text())
    return dict(zip(kept["seed"], kept["mean_accuracy"], strict=True))


def ordered_summaries(keep: Path, names: list[str], seeds: int, first: int) -> dict[str, dict]:
    """The mean accuracy (its mean and 95% CI half-width over the seeds, as a metrics summary holds them) of each
    model of ``names`` whose runs in their orders (``in_their_orders``) ``keep`` holds for every one of the ``seeds``
    seeds from ``first``."""
    kept = {}
    for name in names:
        values = {}
        for seed in range(first, first + seeds):
            values |= per_seed(keep / f"seed-{seed}", name)
        if sorted(values) == list(range(first, first + seeds)):
            kept[name] = summary({"mean_accuracy": [values[seed] for seed in sorted(values)]})
    return kept


def summaries(keep: Path, names: list[str], seeds: int) -> dict[str, dict]:
    """The metrics summary (metrics/<name>.json) of each model of ``names`` kept in ``keep`` with ``seeds``
    repetitions (those it holds)."""
    kept = {}
    for name in names:
        repetitions = keep / "metrics" / "repetitions" / f"{name}.json"
        if repetitions.is_file() and len(json.loads(repetitions.read_text())["seed"]) == seeds:
            kept[name] = json.loads((keep / "metrics" / f"{name}.json").read_text())
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--seeds", type=int, help="repetitions (default: the protocol's 10)")
    parser.add_argument(
        "--runs", nargs="*", default=list(runs(models())), choices=list(runs(models())),
        help="the runs to bring up to date (default: all; none: only the explanations); the page takes every run's",
    )  # fmt: skip
    parser.add_argument(
        "--explanations", action="store_true", help="bring the explained cells' runs of ours up to date too"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "report" / "settings" / "hsu2018.md", help="the page")
    parser.add_argument(
        "--kept-only",
        action="store_true",
        help="run nothing: write the page from the runs kept so far (a model's cells read 'not run' until it is)",
    )
    add_run_options(parser, ROOT / "report" / "settings" / "runs" / "hsu2018", "scenario")
    args = parser.parse_args()
    from forgetting.stage import import_tensorflow

    import_tensorflow()  # quietly: the results import it

    base = params_module.read(ROOT / "params.yaml")
    seeds = args.seeds or preset_params(base, "class", None)["seeds"]
    ours, seconds = {}, {}
    for scenario in args.scenarios:
        ours[scenario] = {}
        for name, (protocol, own, names) in runs(models()).items():
            start, params = time.perf_counter(), preset_params(base, scenario, seeds, protocol, own)
            keep = (args.keep if name == "hsu2018" else args.keep.parent / name) / scenario
            ordered = args.keep.parent / name / THEIR_ORDERS / scenario
            running = name in args.runs and not args.kept_only
            if running:
                print(f"{scenario}, {name}:", flush=True)
                if name in IN_THEIR_ORDERS:
                    in_their_orders(base, scenario, seeds, (protocol, own, names), ordered, args.mnist)
                else:
                    keep_runs(params, args.mnist, keep, names)
            if name in IN_THEIR_ORDERS:
                ours[scenario][name] = ordered_summaries(ordered, names, seeds, base["seed"])
            else:
                ours[scenario][name] = summaries(keep, names, seeds)
            if running:
                seconds[f"{scenario}, {name}"] = round(time.perf_counter() - start)
                print(f"{scenario}, {name}: {seconds[f'{scenario}, {name}']} s", flush=True)
    if args.explanations and not args.kept_only:
        explanation_runs(base, args.keep.parent, args.mnist)
    write_table2_page(ours, seeds, args.out, explanation_evidence(args.keep.parent))
    print(json.dumps(seconds), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
