"""A full `dvc repro` of this checkout against another revision's, side by side in one run: each in a fresh clone
with an empty DVC cache (so every stage runs), one after the other, with their metrics compared file by file.

    python bench/revisions.py --base 5fb0551        # this checkout's HEAD against 5fb0551 (about 12 minutes)

Target (reached, not asserted): HEAD's full run within 10% of the base's, every metric identical.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from project_copy import clone

from forgetting.tuning import project


def full_run(repo: Path) -> float:
    start = time.perf_counter()
    project.run(repo, "dvc", "repro")
    return time.perf_counter() - start


def metrics(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted((repo / "metrics").rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", default="HEAD", help="the revision to measure (default HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forgetting-revisions-") as tmp:
        repos = {name: clone(rev, Path(tmp) / name) for name, rev in (("base", args.base), ("head", args.head))}
        seconds = {}
        for name, repo in repos.items():
            commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=repo, text=True).strip()
            print(f"{name} ({commit}): dvc repro", flush=True)
            seconds[name] = full_run(repo)
            print(f"  {seconds[name]:.1f} s", flush=True)
        base, head = (metrics(repo) for repo in repos.values())
        shared = sorted(set(base) & set(head))
        differing = [name for name in shared if base[name] != head[name]]
        print(f"full dvc repro: base {seconds['base']:.1f} s, head {seconds['head']:.1f} s = "
              f"{seconds['head'] / seconds['base']:.3f} x base")  # fmt: skip
        print(
            f"metrics files: {len(shared)} in both, {len(differing)} differ" + (f": {differing}" if differing else "")
        )
        only = sorted(set(base) ^ set(head))
        if only:
            print(f"in one only: {only}")


if __name__ == "__main__":
    main()
