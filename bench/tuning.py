"""Wall time of tuning every strategy in every setting (`forgetting tune`, Ray Tune on this machine).

It writes the tuned values that the project commits: tuning/<setting>.json and .yaml. The domain two-task setting
(params.yaml's own) also writes its choice into params.yaml (`--update-params`).

    python bench/tuning.py                       # all five settings, every strategy
    python bench/tuning.py --settings class-split5 -- --strategies ewc,si
    python bench/tuning.py --compare domain-even-odd -- -S seeds=2   # the tuner's three ways, side by side
    python bench/tuning.py --compare domain-even-odd --ways default old   # two of them
    python bench/tuning.py --compare domain-even-odd --ways default old --base 64dbe39   # the old way as REV ran it

--compare tunes one setting three times, side by side in one run, into temporary folders (nothing committed): with
each strength's values trained together and the hopeless ones stopped early (the default), together but each to the
end (`--no-halving`), and one value per trial (`--one-value-per-trial`, the old way); it prints the wall times, their
ratios to the old way, the jobs' own time, and each strategy's chosen values and validation scores. With --base REV
the old way runs the code of revision REV (a clone of it, sharing this project's DVC cache), so that what made every
way faster is not left out of the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from project_copy import ROOT, clone

from forgetting.config.settings import SETTINGS


def tune(setting: str, *extra: str, root: Path = ROOT) -> float:
    """`forgetting tune` of ``setting`` with ``extra`` arguments, in the project at ``root`` with its own code; its
    wall time in seconds."""
    scenario, sequence = setting.split("-", 1)
    command = ["forgetting", "tune", "--scenario", scenario, "--tasks", sequence, *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run([Path(sys.executable).parent / command[0], *command[1:]], cwd=root, env=env)
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


WAYS = {  # the tuner's ways, newest (the default) first
    "stacked + halving": [],
    "stacked": ["--no-halving"],
    "one value per trial": ["--one-value-per-trial"],
}
SHORT = dict(zip(["default", "no-halving", "old"], WAYS, strict=True))  # --ways names


def compare(setting: str, extra: list[str], ways: list[str], base: str | None = None) -> None:
    """The setting tuned in each of ``ways`` (of ``WAYS``; one value per trial always), side by side: wall times,
    their ratios to one value per trial, the trial time the jobs reported (summed), the largest trial process's peak
    memory and each strategy's choice."""
    ways = [way for way in WAYS if way in ways or way == "one value per trial"]
    with tempfile.TemporaryDirectory() as tmp:
        roots = dict.fromkeys(ways, ROOT)
        if base:
            roots["one value per trial"] = clone(base, Path(tmp, "base"), share_cache=True)
        # task A first, untimed (naive alone), so that every way restores it from the DVC cache alike
        for number, root in enumerate(dict.fromkeys(roots.values())):
            warm = ["--strategies", "naive", "--out", f"{tmp}/warm{number}"]
            tune(setting, *without_strategies(extra), *warm, root=root)
        seconds = {way: tune(setting, *extra, *WAYS[way], "--out", f"{tmp}/{way}", root=roots[way]) for way in ways}
        chosen = {way: yaml.safe_load(Path(f"{tmp}/{way}/{setting}.yaml").read_text())["chosen"] for way in ways}
        trials = {way: json.loads(Path(f"{tmp}/{way}/{setting}.json").read_text())["trials"] for way in ways}
    alone = seconds["one value per trial"]
    old = f"; one value per trial: the code of {base}" if base else ""
    print(f"\n{setting} ({' '.join(extra) or 'params.yaml as it is'}{old}):\n")
    print(
        "| way | wall time | x one value per trial | jobs | trial time, summed | values stopped early | peak memory |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for way, wall in seconds.items():
        jobs, stopped = job_seconds(trials[way]), sum("stopped" in t for t in trials[way])
        peak = max(t.get("peak_memory_mb", 0) for t in trials[way]) / 1024
        cells = f"{wall:.0f} s | {wall / alone:.2f} | {len(jobs)} | {sum(jobs):.0f} s | {stopped} | {peak:.2f} GB"
        print(f"| {way} | {cells} |")
    print(f"\n| strategy | {' | '.join(f'{way}: chosen, val acc' for way in ways)} |\n|---|{'---|' * len(ways)}")
    for name in chosen["one value per trial"]:
        cells = [
            f"{c[name]['params'] or '-'}, {c[name]['score']:.4f} ± {c[name]['score_ci95'] or 0:.4f}"
            for c in chosen.values()
        ]
        print(f"| {name} | {' | '.join(cells)} |")


def job_seconds(trials: list[dict]) -> list[float]:
    """Each job's own time (``seconds``), once per job: the values a job trained together report its time, and how
    many they were (``stacked``), each."""
    jobs = {}
    for number, trial in enumerate(trials):
        together = trial.get("stacked", 1)
        jobs[(trial["strategy"], trial.get("seconds"), together) if together > 1 else number] = trial.get("seconds", 0)
    return list(jobs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--compare", choices=SETTINGS, help="one setting, tuned the three ways side by side")
    parser.add_argument(
        "--ways", nargs="+", choices=SHORT, default=list(SHORT), help="with --compare: which (old always runs)"
    )
    parser.add_argument("--base", help="with --compare: the revision whose code runs the old way (default: this)")
    parser.add_argument("tune_args", nargs="*", help="more `forgetting tune` arguments (after --)")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.tune_args, [SHORT[way] for way in args.ways], args.base)
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
