"""Wall time of tuning every strategy in the five settings (`forgetting tune`, Ray Tune on this machine), and the
tuned values it commits: tuning/<setting>.json and .yaml. The domain two-task setting (params.yaml's own) also
writes its choice into params.yaml (`--update-params`).

    python bench/tuning.py                       # all five settings, every strategy
    python bench/tuning.py --settings class-split5 -- --strategies ewc,si
    python bench/tuning.py --compare domain-even-odd -- -S seeds=2   # stacked values against one value per trial

--compare tunes one setting twice, side by side in one run, into temporary folders (nothing committed): with each
strength's values trained together (the default) and with `--one-value-per-trial`; it prints both wall times, their
ratio, and each strategy's chosen values and validation scores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from forgetting.config.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def tune(setting: str, *extra: str) -> float:
    """`forgetting tune` of ``setting`` with ``extra`` arguments; its wall time in seconds."""
    scenario, sequence = setting.split("-", 1)
    command = ["forgetting", "tune", "--scenario", scenario, "--tasks", sequence, *extra]
    start = time.perf_counter()
    done = subprocess.run([Path(sys.executable).parent / command[0], *command[1:]], cwd=ROOT)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed")
    return time.perf_counter() - start


def without_strategies(arguments: list[str]) -> list[str]:
    """``forgetting tune`` arguments without their ``--strategies`` option."""
    kept, skip = [], False
    for argument in arguments:
        if not skip and argument != "--strategies" and not argument.startswith("--strategies="):
            kept.append(argument)
        skip = argument == "--strategies"
    return kept


def compare(setting: str, extra: list[str]) -> None:
    """The setting tuned with stacked values and with one value per trial, side by side."""
    with tempfile.TemporaryDirectory() as tmp:
        # task A first, untimed (naive alone), so that both ways restore it from the DVC cache alike
        tune(setting, *without_strategies(extra), "--strategies", "naive", "--out", f"{tmp}/warm")
        ways = {"stacked values": [], "one value per trial": ["--one-value-per-trial"]}
        seconds = {way: tune(setting, *extra, *flags, "--out", f"{tmp}/{way}") for way, flags in ways.items()}
        chosen = {way: yaml.safe_load(Path(f"{tmp}/{way}/{setting}.yaml").read_text())["chosen"] for way in ways}
    stacked, alone = seconds.values()
    print(
        f"\n{setting} ({' '.join(extra) or 'params.yaml as it is'}): stacked {stacked:.0f} s, one value per trial "
        f"{alone:.0f} s: {stacked / alone:.2f} x"
    )
    print("\n| strategy | stacked: chosen, val acc | one value per trial: chosen, val acc |\n|---|---|---|")
    for name in chosen["stacked values"]:
        cells = [
            f"{c[name]['params'] or '-'}, {c[name]['score']:.4f} ± {c[name]['score_ci95'] or 0:.4f}"
            for c in chosen.values()
        ]
        print(f"| {name} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--compare", choices=SETTINGS, help="one setting, stacked values against one per trial")
    parser.add_argument("tune_args", nargs="*", help="more `forgetting tune` arguments (after --)")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.tune_args)
        return
    seconds = {}
    for setting in args.settings:
        seconds[setting] = tune(
            setting, *args.tune_args, *(["--update-params"] if setting == "domain-even-odd" else [])
        )
    print("\n| setting | wall time |\n|---|---:|")
    for setting, value in seconds.items():
        print(f"| {setting} | {value / 60:.1f} min |")
    print(f"| all | **{sum(seconds.values()) / 60:.1f} min** |")


if __name__ == "__main__":
    main()
