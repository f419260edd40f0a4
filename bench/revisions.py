"""A full `dvc repro --force` of this checkout against another revision's, side by side in one run: each in a fresh
clone with an empty DVC cache, one after the other, with their metrics compared file by file. ``--force``: every stage
runs (without it, DVC finds each clone's committed evaluate@* metrics and report up to date once the models it retrains
come out byte for byte as dvc.lock records them, and skips those stages: the figure would leave them out).

    python bench/revisions.py --base 5fb0551             # this checkout's HEAD against 5fb0551
    python bench/revisions.py --base 0a4246d --rounds 2  # base, head, then head, base (25 minutes a round here)

With ``--rounds`` N, N rounds, the order alternating (base first, then head first, ...), each run in a clone of its
own: each round's ratio, and their mean with its range, since one pair's ratio on a shared machine moves by several
percent. Then each stage's seconds (mean over the rounds), base beside head, from its "Running stage" line to the
next one's (DVC's own work between them included): which stages the difference is made of, and what the stages only
HEAD has cost as a fraction of the base's whole run (a budget of 1.5 x leaves them 0.5). Targets (reached or not,
never asserted): per issue, HEAD's full run within a stated ratio of the base's, every metric identical.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from project_copy import STAGE_LINE, clone

from forgetting.tuning import project


def full_run(repo: Path) -> tuple[float, dict[str, float]]:
    """Seconds of `dvc repro --force` in ``repo``, and each stage's (``stage_seconds``)."""
    marks, output = [], []
    command = ["dvc", "repro", "--force"]
    start = time.perf_counter()
    with subprocess.Popen(
        command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=project.command_env()
    ) as process:
        for line in process.stdout:  # as it comes: the moment each stage starts
            output.append(line)
            started = STAGE_LINE.match(line.rstrip("\n"))
            if started:
                marks.append((started["name"], time.perf_counter()))
    end = time.perf_counter()
    if process.returncode:
        raise project.failure(command, "".join(output))
    return end - start, stage_seconds(marks, end)


def stage_seconds(marks: list[tuple[str, float]], end: float) -> dict[str, float]:
    """Each stage's seconds, from the moments (``marks``, in order) DVC printed that it starts running them: to the
    next one's, the last one's to ``end``."""
    ends = [moment for _, moment in marks[1:]] + [end]
    return {name: stop - moment for (name, moment), stop in zip(marks, ends, strict=True)}


def stage_table(base: dict[str, float], head: dict[str, float], base_total: float) -> list[str]:
    """Markdown lines: each stage's seconds in the base and the head (blank where it has none), HEAD's order first,
    then the sums of the stages both have and of those only HEAD has, with the latter as a fraction of the base's
    whole run ``base_total``."""
    names = list(head) + [name for name in base if name not in head]
    lines = ["| stage | base s | head s |", "|---|---:|---:|"]
    for name in names:
        cells = [f"{runs[name]:.1f}" if name in runs else "" for runs in (base, head)]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    shared = [name for name in head if name in base]
    only = [name for name in head if name not in base]
    lines.append(f"| the stages both have ({len(shared)}) | {sum(base[n] for n in shared):.1f} | "
                 f"{sum(head[n] for n in shared):.1f} |")  # fmt: skip
    extra = sum(head[name] for name in only)
    lines.append(f"| the stages only HEAD has ({len(only)}) | | {extra:.1f} = {extra / base_total:.3f} x base's run |")
    return lines


def mean_stages(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each stage's mean seconds over ``runs`` (every run has the same stages)."""
    return {name: statistics.mean(run[name] for run in runs) for name in runs[0]}


def metrics(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted((repo / "metrics").rglob("*")) if p.is_file()}


def compare(base: dict[str, bytes], head: dict[str, bytes]) -> None:
    shared = sorted(set(base) & set(head))
    differing = [name for name in shared if base[name] != head[name]]
    print(f"metrics files: {len(shared)} in both, {len(differing)} differ" + (f": {differing}" if differing else ""))
    only = sorted(set(base) ^ set(head))
    if only:
        print(f"in one only: {only}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", default="HEAD", help="the revision to measure (default HEAD)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of one run each, the order alternating")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give 1 or more")
    revisions, ratios, first = {"base": args.base, "head": args.head}, [], {}
    totals, stages = {"base": [], "head": []}, {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="forgetting-revisions-") as tmp:
        for number in range(1, args.rounds + 1):
            order = ("base", "head") if number % 2 else ("head", "base")
            seconds = {}
            for name in order:
                repo = clone(revisions[name], Path(tmp) / f"{name}-{number}")
                commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=repo, text=True).strip()
                print(f"round {number}, {name} ({commit}): dvc repro --force", flush=True)
                seconds[name], each = full_run(repo)
                totals[name].append(seconds[name])
                stages[name].append(each)
                print(f"  {seconds[name]:.1f} s", flush=True)
                if number == 1:
                    first[name] = metrics(repo)
                elif metrics(repo) != first[name]:
                    print(f"  {name}'s metrics differ from round 1's", flush=True)
            ratios.append(seconds["head"] / seconds["base"])
            print(f"round {number} ({' first, '.join(order)} second): dvc repro --force: base {seconds['base']:.1f} s, "
                  f"head {seconds['head']:.1f} s = {ratios[-1]:.3f} x base", flush=True)  # fmt: skip
        if args.rounds > 1:
            print(f"head / base over {args.rounds} rounds: mean {statistics.mean(ratios):.3f} x "
                  f"(range {min(ratios):.3f} to {max(ratios):.3f})")  # fmt: skip
        compare(first["base"], first["head"])
        print(f"each stage's seconds (mean over {args.rounds} round{'s' * (args.rounds > 1)}):")
        base, head = mean_stages(stages["base"]), mean_stages(stages["head"])
        print("\n".join(stage_table(base, head, statistics.mean(totals["base"]))))


if __name__ == "__main__":
    main()
