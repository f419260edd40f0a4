"""A throwaway copy of the project for benchmark runs: its git-tracked files in a fresh git repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid"}
GIT_ENV |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def run(repo: Path, *command: str) -> tuple[float, str]:
    """Run ``command`` in ``repo`` with this interpreter's environment first on PATH (for `dvc` and the stages'
    `python`); exit with its output if it fails. Returns (seconds, output)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=repo, capture_output=True, text=True, env={**os.environ, **GIT_ENV, "PATH": path}
    )
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout + done.stderr


def copy_project(repo: Path, edit_params=None) -> Path:
    """Copy the tracked files to ``repo``, let ``edit_params(path)`` change params.yaml, and commit them all."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    if edit_params is not None:
        edit_params(repo / "params.yaml")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        run(repo, *command)
    return repo


def read_mnist_from(mnist: Path | None):
    """An ``edit_params`` that points the copy's ``data.manual_dir`` at ``mnist`` (None: keep params.yaml's)."""

    def edit(path: Path) -> None:
        if mnist is not None:
            params = yaml.safe_load(path.read_text())
            params["data"]["manual_dir"] = str(mnist)
            path.write_text(yaml.safe_dump(params, sort_keys=False))

    return edit
