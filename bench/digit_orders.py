"""Table 2's quoted rows in van de Ven & Tolias's digit orders against ours: their code (GMvandeVen/continual-learning
at e17b714, data.py) relabels the digits by a permutation drawn from each run's seed, so that each run splits MNIST
into other pairs; ours kept 0/1, 2/3, ... until 2026-12-05. This prints, per model of a Table 2 run (default:
``vandeven2018``, the rows they quote), its figure in their orders (bench/hsu2018.py's runs, each repetition alone on
the pairs of one of their seeds; run here where missing) beside the kept run of the same seeds in the natural order
(paired over the seeds) and the published one.

    python bench/digit_orders.py --scenarios task              # LwF, generative replay and RtF, 5 orders (an hour)
    python bench/digit_orders.py --scenarios class --models rtf --kept-only   # print what is kept, run nothing
"""

from __future__ import annotations

import argparse

import numpy as np
from hsu2018 import in_their_orders, per_seed
from project_copy import ROOT
from scenarios import add_run_options

from forgetting.config import params as params_module
from forgetting.evaluation.intervals import ci95, paired_difference
from forgetting.evaluation.results import models
from forgetting.reporting.published import (
    HSU_TABLE2,
    OURS,
    QUOTED,
    SCENARIOS,
    THEIR_ORDERS,
    runs,
    their_runs,
    their_sd,
    welch_p,
)

RUNS_DIR = ROOT / "report" / "settings" / "runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="vandeven2018", help="the Table 2 run (bench/hsu2018.py's runs)")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--models", nargs="+", help="the run's models to run (default: all of them)")
    parser.add_argument("--seeds", type=int, default=5, help="orders, one repetition each (default 5)")
    parser.add_argument("--kept-only", action="store_true", help="run nothing: print what is kept")
    add_run_options(parser, RUNS_DIR / "vandeven2018" / THEIR_ORDERS, "order")
    args = parser.parse_args()
    every = runs(models())
    if args.run not in every:
        parser.error(f"--run {args.run!r}: use one of {', '.join(every)}")
    if args.keep == parser.get_default("keep"):  # the run's own folder: report/settings/runs/<run>/their-orders/
        args.keep = RUNS_DIR / args.run / THEIR_ORDERS
    protocol, own, names = every[args.run]
    names = args.models or names
    base = params_module.read(ROOT / "params.yaml")
    first = base["seed"]
    for scenario in args.scenarios:
        if not args.kept_only:
            in_their_orders(base, scenario, args.seeds, (protocol, own, names), args.keep / scenario, args.mnist)
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
        sd, mean = their_sd(row, spread), values.mean()
        p = welch_p(mean, ci95(values), len(values), theirs, sd, their_runs(row))
        line += f"; {row} {theirs:.2f} ± {spread:.2f}: {mean - theirs:+.2f} ({(mean - theirs) / sd:+.2f} sd, Welch p = "
        line += f"{p:.2g})"
    print(line, flush=True)


if __name__ == "__main__":
    main()
