"""Hsu et al. (2018)'s Table 2 under their protocol: the whole pipeline on the 5-task split in the task, domain and
class scenarios with the `hsu2018` preset (forgetting.config.protocols), each in a copy of the project, and ours beside
theirs with a verdict per cell -> report/settings/hsu2018.md.

    python bench/hsu2018.py                                   # 3 scenarios x every strategy x 10 repetitions (hours)
    python bench/hsu2018.py --scenarios class --seeds 5 --keep /tmp/hsu   # a cheaper look, kept elsewhere

Each scenario's run shares this project's DVC cache; its runs are kept in --keep/<scenario>/ (default:
report/settings/runs/hsu2018/, committed with the page), and a later run reruns only the models that are stale there
(``scenarios.run_setting``: a strategy added, a value or a module changed, another number of repetitions).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from project_copy import ROOT
from scenarios import add_run_options, run_setting

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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--seeds", type=int, help="repetitions (default: the protocol's 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "report" / "settings" / "hsu2018.md", help="the page")
    add_run_options(parser, ROOT / "report" / "settings" / "runs" / "hsu2018", "scenario")
    args = parser.parse_args()
    from forgetting.stage import import_tensorflow

    import_tensorflow()  # quietly: the results import it

    base = params_module.read(ROOT / "params.yaml")
    summaries, seconds = {}, {}
    for scenario in args.scenarios:
        start, params = time.perf_counter(), preset_params(base, scenario, args.seeds)
        print(f"{scenario}:", flush=True)
        summaries[scenario] = run_setting(params, args.mnist, args.keep / scenario).summary
        seconds[scenario] = round(time.perf_counter() - start)
        print(f"{scenario}: {seconds[scenario]} s", flush=True)
    write_table2_page(summaries, preset_params(base, "class", args.seeds)["seeds"], args.out)
    print(json.dumps(seconds), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
