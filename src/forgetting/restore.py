"""`forgetting restore`: back to the last commit's results after a failed run.

A failed `dvc exp run -S KEY=VALUE` leaves params.yaml at the bad value, and a failed stage has lost its outputs
(DVC deletes them before it runs a stage, report/ and the git-tracked per-epoch CSVs included). `git checkout
params.yaml` is not always the way back: DVC rewrites params.yaml and updates git's index with the new file's stat
data, so when the bad value has the same length as the good one (seeds 2 -> 0), git takes the file for unchanged,
`git status` is clean and `git checkout` restores nothing. This command takes params.yaml, dvc.lock, metrics/ and
report/ out of the index and checks them out of HEAD, which rewrites them whatever their stat data says, then runs
`dvc checkout` for the models and data. Files git does not track are left alone.

  forgetting restore
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys

from forgetting.errors import ForgettingError
from forgetting.tuning.project import project_root

NAME = "restore"
HELP = "after a failed run: params.yaml, dvc.lock, metrics/ and report/ as HEAD has them, then dvc checkout"
PATHS = ("params.yaml", "dvc.lock", "metrics", "report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments: it always goes back to HEAD."""


def _git(root, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        problem = (done.stderr.strip() or done.stdout.strip() or "failed").splitlines()[0]
        raise ForgettingError(f"git {args[0]}: {problem}")
    return done.stdout


def run(args: argparse.Namespace) -> int:
    root = project_root()
    _git(root, "rev-parse", "--verify", "-q", "HEAD")  # a repository with a commit to go back to
    tracked = set(_git(root, "ls-tree", "--name-only", "HEAD", "--", *PATHS).split())
    paths = [path for path in PATHS if path in tracked]
    _git(root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *paths)
    _git(root, "checkout", "HEAD", "--", *paths)
    commit = _git(root, "rev-parse", "--short", "HEAD").strip()
    print(f"restored {', '.join(paths)} from HEAD ({commit}); the models and data: dvc checkout", flush=True)
    done = subprocess.run([sys.executable, "-m", "dvc", "checkout"], cwd=root, text=True, capture_output=True)
    if done.returncode != 0:
        raise ForgettingError(checkout_problem(done.stdout + done.stderr))
    print(done.stdout.strip() or "(nothing to check out)")
    return 0


def checkout_problem(output: str) -> str:
    """What a failed `dvc checkout` printed, in one line: the outputs of HEAD that DVC's cache lacks, where it names
    them (a fresh clone's cache is empty: HEAD's results were built where they were committed, and the project sets
    up no DVC remote), with the way to rebuild them."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("ERROR: Checkout failed for")), None)
    if start is None:
        last = lines[-1] if lines else "failed"
        return f"dvc checkout: {last}: run `dvc repro` to rebuild what the cache lacks"
    missing = list(itertools.takewhile(lambda line: not line.startswith(("Is your cache", "<http")), lines[start:]))
    named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (
        f"DVC's cache here lacks {len(missing)} of HEAD's outputs ({named}): they were built where HEAD was committed "
        "(a clone starts with an empty cache, and this project sets up no DVC remote); params.yaml, dvc.lock, "
        "metrics/ and report/ are HEAD's now: run `dvc repro` to rebuild the rest"
    )
