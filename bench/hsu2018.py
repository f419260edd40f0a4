"""Hsu et al. (2018)'s Table 2 under their protocol: the whole pipeline on the 5-task split in the task, domain and
class scenarios with the `hsu2018` preset (forgetting.config.protocols), each in a copy of the project, and ours beside
theirs with a verdict per cell -> report/settings/hsu2018.md. The rows that Hsu et al. quote from van de Ven & Tolias
(LwF, DGR, RtF: ``published.QUOTED``) run under the protocol those were measured under, `vandeven2018`, and
rehearsal with 4400 stored examples in a run of its own (``published.RUNS``).

    python bench/hsu2018.py                                   # 3 scenarios x every strategy x 10 repetitions (hours)
    python bench/hsu2018.py --scenarios class --seeds 5 --keep /tmp/hsu   # a cheaper look, kept elsewhere
    python bench/hsu2018.py --seeds 5 --kept-only              # the page from the runs kept so far, running nothing
    python bench/hsu2018.py --seeds 5 --runs hsu2018-sgd       # one run brought up to date, the page from them all

Each scenario's run shares this project's DVC cache; its runs are kept in --keep/<scenario>/ (default:
report/settings/runs/hsu2018/, committed with the page) and the other runs' beside it, in --keep/../<run>/<scenario>/
(vandeven2018, hsu2018-buffer4400), and a later run reruns only the models that are stale there
(``scenarios.keep_runs``: a strategy added, a value or a module changed, another number of repetitions).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from project_copy import ROOT
from scenarios import add_run_options, keep_runs

from forgetting.config import params as params_module
from forgetting.config.protocols import PROTOCOLS
from forgetting.config.settings import setting_params
from forgetting.evaluation.results import models
from forgetting.reporting.published import SCENARIOS, runs, write_table2_page


def preset_params(
    base: dict, scenario: str, seeds: int | None, protocol: str = "hsu2018", own: dict | None = None
) -> dict:
    """params.yaml for ``<scenario>-split5`` under ``protocol`` and the values ``own`` (``seeds`` repetitions where
    given)."""
    params = setting_params(base, f"{scenario}-split5")
    values = PROTOCOLS[protocol].params(scenario, len(params["tasks"])) | (own or {})
    return params_module.with_values(params, values | ({"seeds": seeds} if seeds else {}))


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
        "--runs", nargs="+", default=list(runs(models())), choices=list(runs(models())),
        help="the runs to bring up to date (default: all); the page takes every run's kept models",
    )  # fmt: skip
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
            running = name in args.runs and not args.kept_only
            if running:
                print(f"{scenario}, {name}:", flush=True)
                keep_runs(params, args.mnist, keep, names)
            ours[scenario][name] = summaries(keep, names, seeds)
            if running:
                seconds[f"{scenario}, {name}"] = round(time.perf_counter() - start)
                print(f"{scenario}, {name}: {seconds[f'{scenario}, {name}']} s", flush=True)
    write_table2_page(ours, seeds, args.out)
    print(json.dumps(seconds), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
