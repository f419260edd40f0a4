"""A throwaway copy of the project for benchmark runs (``forgetting.tuning.project``), timed."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from forgetting.tuning import project

ROOT = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^Running stage '(?P<name>[^']+)':$")  # DVC's line as it starts running a stage


def run(repo: Path, *command: str) -> tuple[float, str]:
    """Run ``command`` in ``repo`` (``forgetting.tuning.project.run``); (seconds, output)."""
    start = time.perf_counter()
    output = project.run(repo, *command)
    return time.perf_counter() - start, output


def copy_project(repo: Path, edit_params: Callable[[dict], None] | None = None, share_cache: bool = False) -> Path:
    """The project's files in a fresh git repo at ``repo``, params edited by ``edit_params(params)``; with its own,
    empty DVC cache unless ``share_cache``."""
    repo.mkdir(parents=True, exist_ok=True)
    return project.copy_project(ROOT, repo, edit_params, share_cache=share_cache)


def read_mnist_from(mnist: Path | None) -> Callable[[dict], None]:
    """An ``edit_params`` that points the copy's ``data.manual_dir`` at ``mnist`` (None: keep params.yaml's)."""

    def edit(params: dict) -> None:
        if mnist is not None:
            params["data"]["manual_dir"] = str(mnist)

    return edit


def clone(revision: str, destination: Path, share_cache: bool = False) -> Path:
    """A clone of this project at ``revision``, with its own, empty DVC cache unless ``share_cache``."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(destination)], check=True)
    subprocess.run(["git", "checkout", "-q", revision], cwd=destination, check=True)
    if share_cache:
        project.run(destination, "dvc", "cache", "dir", "--local", str(ROOT / ".dvc" / "cache"))
    return destination
