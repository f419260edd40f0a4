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
    print(f"restored {', '.join(paths)} from HEAD ({commit}); dvc checkout:", flush=True)
    done = subprocess.run([sys.executable, "-m", "dvc", "checkout"], cwd=root, text=True, capture_output=True)
    print(done.stdout.strip() or "(nothing to check out)")
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1]
        raise ForgettingError(f"dvc checkout: {last}: run `dvc repro` to rebuild what the cache lacks")
    return 0
