"""Hsu et al. (2018)'s Table 2 under their protocol: the whole pipeline on the 5-task split in the task, domain and
class scenarios with the `hsu2018` preset (forgetting.config.protocols), each in a copy of the project, and ours beside
theirs with a verdict per cell -> report/settings/hsu2018.md.

    python bench/hsu2018.py                                   # 3 scenarios x every strategy x 10 repetitions (hours)
    python bench/hsu2018.py --scenarios class --seeds 5 --keep /tmp/hsu   # a cheaper look; reuse the runs kept there

Each scenario's run shares this project's DVC cache; its metrics are kept in --keep/<scenario>/ and reused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from project_copy import ROOT
from scenarios import run_setting

from forgetting.config import params as params_module
from forgetting.config.protocols import PROTOCOLS
from forgetting.config.settings import setting_params
from forgetting.reporting.published import SCENARIOS, write_table2_page


def preset_params(base: dict, scenario: str, seeds: int | None) -> dict:
    """params.yaml for ``<scenario>-split5`` under ``hsu2018`` (``seeds`` repetitions where given)."""
    params = setting_params(base, f"{scenario}-split5")
    values = PROTOCOLS["hsu2018"].params(scenario, len(params["tasks"]))
    return params_module.with_values(params, values | ({"seeds": seeds} if seeds else {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--seeds", type=int, help="repetitions (default: the protocol's 10)")
    parser.add_argument("--mnist", type=Path, help="folder of the four .gz files (default: params.yaml's)")
    parser.add_argument("--out", type=Path, default=ROOT / "report" / "settings" / "hsu2018.md", help="the page")
    parser.add_argument("--keep", type=Path, help="keep each scenario's metrics here, and reuse those already there")
    args = parser.parse_args()
    from forgetting.stage import import_tensorflow

    import_tensorflow()  # quietly: the results import it
    from forgetting.evaluation.results import Results

    base = params_module.read(ROOT / "params.yaml")
    summaries, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        for scenario in args.scenarios:
            start, params = time.perf_counter(), preset_params(base, scenario, args.seeds)
            kept = keep / scenario / "metrics"
            if args.keep and kept.is_dir():
                results = Results.load(params, kept, ROOT / "tuning")
                had = len(results.repetitions["joint"]["seed"])
                if had != params["seeds"]:
                    raise SystemExit(
                        f"{kept} holds runs of {had} repetitions, not {params['seeds']}: pass --seeds {had}"
                    )
            else:
                results = run_setting(params, args.mnist, keep / scenario)
            summaries[scenario] = results.summary
            seconds[scenario] = round(time.perf_counter() - start)
            print(f"{scenario}: {seconds[scenario]} s", flush=True)
    write_table2_page(summaries, preset_params(base, "class", args.seeds)["seeds"], args.out)
    print(json.dumps(seconds), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
