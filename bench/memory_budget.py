"""Accuracy against memory: the strategies that store examples, at several budgets, in one setting.

Every strategy that stores training examples runs at each number of stored examples, in one setting (default
class-split5) with the values `forgetting tune` chose for it; joint and the strategies that store none are drawn as
reference lines -> report/memory_budget/memory_budget.md and memory_budget.png.

    python bench/memory_budget.py                                        # 200, 500, 1000 and 5000 examples
    python bench/memory_budget.py --budgets 200 1000 --keep /tmp/budget  # keep the runs elsewhere

Each budget runs the storing strategies' stages (`dvc repro evaluate@<name>`) in a copy of the project that shares
this project's DVC cache, so task A, its Fisher and joint train once; the reference models run with the first budget
(their params hold no buffer). A budget that the data cannot fill fails before any training, in one line. Only what
changed reruns: each budget's runs are kept in report/memory_budget/runs/<budget>/ (their metrics and the copy's
dvc.lock, committed with the page), and a later run reruns only the models that are stale there, as
bench/scenarios.py does (``scenarios.keep_runs``: a strategy added, a value re-tuned, a module edited).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from project_copy import ROOT
from scenarios import add_run_options, keep_runs

from forgetting.config import params as params_module
from forgetting.config.settings import SETTINGS, setting_params
from forgetting.errors import ForgettingError
from forgetting.stage import import_tensorflow

BUDGETS = (200, 500, 1000, 5000)


def run_budget(params: dict, names: list[str], mnist: Path | None, keep: Path) -> dict[str, dict]:
    """Each of ``names``' metrics summary with ``params``: run in a copy of the project, or kept in ``keep`` from an
    earlier run that is not stale (``keep_runs``)."""
    keep_runs(params, mnist, keep, names)
    return {name: json.loads((keep / "metrics" / f"{name}.json").read_text()) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", default="class-split5", choices=SETTINGS)
    parser.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS), help="stored examples to try")
    parser.add_argument("--out", type=Path, default=ROOT / "report" / "memory_budget", help="the page's folder")
    add_run_options(parser, ROOT / "report" / "memory_budget" / "runs", "budget")
    args = parser.parse_args()
    budgets = sorted(set(args.budgets))
    if budgets[0] < 1:
        raise ForgettingError(f"--budgets {budgets[0]}: give each budget 1 or more stored examples")
    import_tensorflow()  # quietly: the strategy modules import it
    from forgetting.reporting.budget import memory_text, storing, with_budget, write_budget_page
    from forgetting.strategies import listed, validate_params

    base = setting_params(params_module.read(ROOT / "params.yaml"), args.setting, ROOT / "tuning")
    names = storing()
    others = [name for name in listed() if name not in names]
    for budget in budgets:  # every budget checked (a buffer the data cannot fill) before any run
        validate_params(with_budget(base, budget), names)
    by_budget, reference = {}, {}
    for budget in budgets:
        start = time.perf_counter()
        run_names = names if reference else [*names, "joint", *others]
        print(f"{budget} examples:", flush=True)
        results = run_budget(with_budget(base, budget), run_names, args.mnist, args.keep / str(budget))
        by_budget[budget] = {name: results[name] for name in names}
        reference = reference or {name: results[name] for name in ["joint", *others]}
        print(f"{budget} examples: {time.perf_counter() - start:.0f} s", flush=True)
    memory = {name: memory_text(base, name) for name in others}
    write_budget_page(args.setting, by_budget, reference, memory, args.out)
    print(f"wrote {args.out / 'memory_budget.md'}")


if __name__ == "__main__":
    try:
        main()
    except ForgettingError as exc:
        print(f"error: memory_budget: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
