"""A throwaway copy of the project (the files git tracks or would track, committed in a fresh git repo) to run the
pipeline in with other params: ``forgetting tune`` trains a setting's task-A model there, the benchmarks run whole
settings, and rerun only the models whose kept runs are stale (``stale_models``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from forgetting.errors import ForgettingError

GIT_ENV = {"GIT_AUTHOR_NAME": "forgetting", "GIT_AUTHOR_EMAIL": "forgetting@example.invalid"}
GIT_ENV |= {"GIT_COMMITTER_NAME": "forgetting", "GIT_COMMITTER_EMAIL": "forgetting@example.invalid"}


def project_root(start: Path | None = None) -> Path:
    """The project's root: the current folder, which must hold dvc.yaml and params.yaml."""
    root = (start or Path.cwd()).resolve()
    if not (root / "dvc.yaml").is_file() or not (root / "params.yaml").is_file():
        raise ForgettingError(f"{root} holds no dvc.yaml and params.yaml: run from the project's root")
    return root


def command_env() -> dict[str, str]:
    """The environment for commands run in a copy: this interpreter's folder first on PATH (for `dvc` and the
    stages' `python`), a git identity, TensorFlow's C++ logs off."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **GIT_ENV, "PATH": path, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def run(repo: Path, *command: str, quiet: bool = True) -> str:
    """Run ``command`` in ``repo``; its output (stdout and stderr). A failure raises a ForgettingError with the
    command's ``error:`` line (the stages' one-line errors), else its last lines."""
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=command_env())
    output = done.stdout + done.stderr
    if not quiet:
        print(done.stdout, end="", flush=True)
    if done.returncode:
        raise failure(command, output)
    return output


def failure(command: Sequence[str], output: str) -> ForgettingError:
    """The error of ``command``, failed with ``output``: its first ``error:`` line (the stages' one-line errors),
    else its last lines."""
    lines = output.splitlines()
    errors = [line for prefix in ("error:", "ERROR:") for line in lines if line.startswith(prefix)]
    return ForgettingError(errors[0] if errors else f"`{' '.join(command)}` failed: {output.strip()[-500:]}")


def copy_project(
    root: Path, repo: Path, edit_params: Callable[[dict], None] | None = None, share_cache: bool = True
) -> Path:
    """Copy ``root``'s files (tracked by git, or new and not ignored) to ``repo``, let ``edit_params(params)``
    change its params (a dict, written back to params.yaml), commit them all in a fresh git repo, and (with
    ``share_cache``) use ``root``'s DVC cache, so that stages already run there with the same inputs are restored,
    not rerun."""
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=root, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (root / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, repo / name)
    if edit_params is not None:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        edit_params(params)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        run(repo, *command)
    if share_cache:
        run(repo, "dvc", "cache", "dir", "--local", str(root / ".dvc" / "cache"))
    return repo


def stale_models(repo: Path, models: Sequence[str]) -> list[str]:
    """The models of ``models`` whose metrics the project copy ``repo``'s dvc.lock no longer stands for: where
    ``dvc status`` finds, in stage evaluate@<model> or a stage it depends on, a changed command, changed params, a
    code file that differs from the lock's, or a stage the lock lacks. The stages' products (models, data, logs) do
    not count, absent or not: the lock is the record of runs whose metrics are kept elsewhere (the benchmarks'
    ``--keep``), and the copy holds none of their products (no DVC cache here need hold them; its logs are other
    runs')."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph  # an edge from each stage to each stage it depends on
        stages = {stage.name: stage for stage in graph.nodes}
        products = {str(out.def_path) for stage in graph.nodes for out in stage.outs}
        status = dvc_repo.status()  # keyed by each stage's address from here: "<path>/dvc.yaml:<name>"
        changed = {
            address.rpartition(":")[2]
            for address, entries in status.items()
            if any(changes_results(entry, products) for entry in entries)
        }
        stale = []
        for model in models:
            seen, todo = set(), [stages[f"evaluate@{model}"]]
            while todo:
                stage = todo.pop()
                seen.add(stage.name)
                todo.extend(s for s in graph.successors(stage) if s.name not in seen)
            if seen & changed:
                stale.append(model)
    return stale


def changes_results(entry: str | dict, products: set[str]) -> bool:
    """Whether one entry of a stage's ``dvc status`` can change what the stage computes: a changed command, or a
    dependency other than another stage's product (one of ``products``) that changed, params included; nothing about
    the stage's own outputs."""
    if isinstance(entry, str):  # "changed command", "always changed"
        return True
    return any(path not in products for path in entry.get("changed deps", {}))
