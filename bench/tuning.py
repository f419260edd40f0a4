"""Wall time of tuning every strategy in the five settings (`forgetting tune`, Ray Tune on this machine), and the
tuned values it commits: tuning/<setting>.json and .yaml. The domain two-task setting (params.yaml's own) also
writes its choice into params.yaml (`--update-params`).

    python bench/tuning.py                       # all five settings, every strategy
    python bench/tuning.py --settings class-split5 -- --strategies ewc,si
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from forgetting.config.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("tune_args", nargs="*", help="more `forgetting tune` arguments (after --)")
    args = parser.parse_args()
    seconds = {}
    for setting in args.settings:
        scenario, sequence = setting.split("-", 1)
        command = ["forgetting", "tune", "--scenario", scenario, "--tasks", sequence, *args.tune_args]
        if setting == "domain-even-odd":
            command.append("--update-params")
        start = time.perf_counter()
        done = subprocess.run([Path(sys.executable).parent / command[0], *command[1:]], cwd=ROOT)
        seconds[setting] = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"{' '.join(command)} failed")
    print("\n| setting | wall time |\n|---|---:|")
    for setting, value in seconds.items():
        print(f"| {setting} | {value / 60:.1f} min |")
    print(f"| all | **{sum(seconds.values()) / 60:.1f} min** |")


if __name__ == "__main__":
    main()
