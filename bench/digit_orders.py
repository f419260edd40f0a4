"""Table 2's quoted rows in van de Ven & Tolias's digit orders: their code (GMvandeVen/continual-learning at e17b714,
data.py) relabels the digits by a permutation drawn from each run's seed, so that each run splits MNIST into other
pairs; ours keeps 0/1, 2/3, ... . This runs a Table 2 run (default: ``vandeven2018``, the rows they quote) once per
seed, repetition ``seed + i`` on the pairs their code draws for seed ``order_seed + i``, and prints each model's
figure over those orders beside the kept natural-order run of the same seeds (paired) and the published one.

    python bench/digit_orders.py --scenarios task             # LwF, generative replay and RtF, 5 orders (an hour)
    python bench/digit_orders.py --scenarios class --models rtf --kept-only   # print what is kept, run nothing

Each order's run is kept in --keep/<scenario>/seed-<seed>/ (default: report/settings/runs/<run>/their-orders/),
and reruns only where stale, as bench/hsu2018.py's runs do.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from hsu2018 import preset_params
from project_copy import ROOT
from scenarios import add_run_options, keep_runs
from scipy import stats

from forgetting.config import params as params_module
from forgetting.evaluation.intervals import ci95, paired_difference
from forgetting.evaluation.results import models
from forgetting.reporting.published import HSU_TABLE2, OURS, QUOTED, QUOTED_RUNS, SCENARIOS, runs, their_sd

RUNS_DIR = ROOT / "report" / "settings" / "runs"


def van_de_ven_tasks(order_seed: int, count: int = 5) -> list[list[int]]:
    """The split of the digits into ``count`` tasks that their data.py makes for seed ``order_seed`` (main.py seeds
    NumPy first): digit y takes the label ``permutation[y]``, and task k holds labels k * w .. k * w + w - 1 (w = 10 //
    count), in that order: the digit of label l is ``argsort(permutation)[l]``, which takes position l - k * w (their
    domain label) and is our task's list in that order. Seed 0 is their exception: the natural order."""
    permutation = np.arange(10) if order_seed == 0 else np.random.RandomState(order_seed).permutation(10)
    digit_of, width = np.argsort(permutation), 10 // count
    return [[int(d) for d in digit_of[k * width : (k + 1) * width]] for k in range(count)]


def per_seed(keep: Path, model: str) -> dict[int, float]:
    """Seed -> mean accuracy of ``model``'s repetitions kept in ``keep`` (none where it is not kept)."""
    path = keep / "metrics" / "repetitions" / f"{model}.json"
    if not path.is_file():
        return {}
    kept = json.loads(path.read_text())
    return dict(zip(kept["seed"], kept["mean_accuracy"], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="vandeven2018", help="the Table 2 run (bench/hsu2018.py's runs)")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--models", nargs="+", help="the run's models to run (default: all of them)")
    parser.add_argument("--seeds", type=int, default=5, help="orders, one repetition each (default 5)")
    parser.add_argument("--order-seed", type=int, default=1, help="their seed of the first order (default 1)")
    parser.add_argument("--kept-only", action="store_true", help="run nothing: print what is kept")
    add_run_options(parser, RUNS_DIR / "vandeven2018" / "their-orders", "order")
    args = parser.parse_args()
    every = runs(models())
    if args.run not in every:
        parser.error(f"--run {args.run!r}: use one of {', '.join(every)}")
    protocol, own, names = every[args.run]
    names = args.models or names
    base = params_module.read(ROOT / "params.yaml")
    first = base["seed"]
    for scenario in args.scenarios:
        for i in range(args.seeds):
            seed, tasks = first + i, van_de_ven_tasks(args.order_seed + i)
            keep = args.keep / scenario / f"seed-{seed}"
            if not args.kept_only:
                print(f"{scenario}, seed {seed}, tasks {tasks}:", flush=True)
                params = preset_params(base, scenario, 1, protocol, own | {"seed": seed, "tasks": tasks})
                keep_runs(params, args.mnist, keep, names)
        natural = RUNS_DIR / args.run / scenario
        for model in names:
            ordered = {}
            for i in range(args.seeds):
                ordered |= per_seed(args.keep / scenario / f"seed-{first + i}", model)
            summary(scenario, model, ordered, per_seed(natural, model), args.run)


def summary(scenario: str, model: str, ordered: dict[int, float], natural: dict[int, float], run: str) -> None:
    """Print ``model``'s figure over their orders (``ordered``: seed -> mean accuracy), paired with ``natural`` over
    the shared seeds, and beside the published row (Welch's t-test from both means, sds and run counts)."""
    if len(ordered) < 2:
        print(f"{scenario}, {model}: {len(ordered)} order(s) kept")
        return
    values = np.array(list(ordered.values())) * 100
    line = f"{scenario}, {model}: their orders {values.mean():.2f} ± {ci95(values):.2f} (per seed "
    line += ", ".join(f"{v:.2f}" for v in values) + ")"
    shared = sorted(set(ordered) & set(natural))
    if len(shared) >= 2:
        d = paired_difference([100 * ordered[s] for s in shared], [100 * natural[s] for s in shared])
        line += f"; minus our order {d.mean:+.2f} ± {d.ci95:.2f} (p = {d.p:.2g}, {len(shared)} seeds)"
    rows = [row for row in HSU_TABLE2 if OURS[row][0] == model and (run != "vandeven2018" or row in QUOTED)]
    for row in rows:
        theirs, spread = HSU_TABLE2[row][SCENARIOS.index(scenario)]
        sd, n = their_sd(row, spread), QUOTED_RUNS if row in QUOTED else 10
        mean, own_sd = values.mean(), values.std(ddof=1)
        welch = stats.ttest_ind_from_stats(mean, own_sd, len(values), theirs, sd, n, equal_var=False)
        gap = (mean - theirs) / sd
        line += f"; {row} {theirs:.2f} ± {spread:.2f}: {mean - theirs:+.2f} ({gap:+.2f} sd, Welch p = "
        line += f"{welch.pvalue:.2g})" if math.isfinite(welch.pvalue) else "n/a)"
    print(line, flush=True)


if __name__ == "__main__":
    main()
