"""Every stage's code deps in dvc.yaml are exactly the project modules it imports, and it imports them from its own
workspace: an edit to any module a stage runs reruns that stage, and no other."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from modulefinder import ModuleFinder
from pathlib import Path

import pytest
from dvc.repo import Repo

from forgetting.strategies import available

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "forgetting"


class ProjectModuleFinder(ModuleFinder):
    """Python's own module resolution (modulefinder scans every import statement, those inside functions too),
    following only the project's package: nothing else is opened."""

    def find_module(self, name, path, parent=None):
        if parent is None and path is None and name != PACKAGE:
            raise ImportError(name)
        return super().find_module(name, path, parent)


def stage_commands() -> dict[str, list[str]]:
    """Stage name -> its command line (after `PYTHONPATH=src`), foreach instances expanded."""
    with Repo(str(ROOT)) as repo:
        return {stage.addressing: shlex.split(stage.cmd) for stage in repo.index.stages}


def declared_code(stage: str) -> tuple[set[str], set[str]]:
    """(the .py files ``stage`` depends on, the .py files of the folders of code it depends on)."""
    with Repo(str(ROOT)) as repo:
        (found,) = repo.stage.collect(stage)
        deps = [Path(dep.fs_path) for dep in found.deps]
    files = {dep.relative_to(ROOT).as_posix() for dep in deps if dep.suffix == ".py"}
    folders = [dep for dep in deps if dep.is_dir() and dep.is_relative_to(ROOT / "src")]
    return files, {f.relative_to(ROOT).as_posix() for folder in folders for f in folder.rglob("*.py")}


def import_closure(command: list[str]) -> set[str]:
    """The project files that ``python SCRIPT ARGS...`` imports, as Python resolves them with the script's folder
    and src/ first on the path (what `PYTHONPATH=src` gives every stage). A strategy named on the command line is
    imported by name through the registry (``forgetting.strategies``), so its module counts too."""
    script, *args = command[command.index("python") + 1 :]
    finder = ProjectModuleFinder(path=[str(ROOT / Path(script).parent), str(ROOT / "src")])
    finder.run_script(str(ROOT / script))
    if "forgetting.strategies" in finder.modules:
        for name in (a for a in args if a in available()):
            finder.import_hook(f"forgetting.strategies.{name}")
    files = {module.__file__ for module in finder.modules.values() if module.__file__}
    return {Path(f).resolve().relative_to(ROOT).as_posix() for f in files}


COMMANDS = stage_commands()


@pytest.mark.parametrize("stage", sorted(COMMANDS))
def test_code_deps_are_the_import_closure(stage):
    command = COMMANDS[stage]
    assert command[:2] == ["PYTHONPATH=src", "python"], f"{stage} must import the package from its own src/"
    closure = import_closure(command)
    assert any(f.startswith("src/forgetting/") for f in closure)
    files, in_folders = declared_code(stage)
    assert closure - files - in_folders == set(), f"dvc.yaml: {stage} imports these but does not depend on them"
    assert files - closure == set(), f"dvc.yaml: {stage} depends on code it does not import"
    assert not in_folders or in_folders & closure, f"dvc.yaml: {stage} depends on a folder of code it never imports"
    assert not files & in_folders, f"dvc.yaml: {stage} lists a file that a folder it depends on already holds"


def test_a_strategy_stage_imports_only_its_own_strategy():
    closure = import_closure(COMMANDS["finetune@online_ewc"])
    strategies = {Path(f).stem for f in closure if f.startswith("src/forgetting/strategies/")}
    assert strategies == {"__init__", "base", "online_ewc", "ewc"}  # online EWC builds on EWC


def test_stages_import_the_package_of_their_own_workspace(tmp_path):
    """Another checkout's editable install (this one's, here) does not hijack a stage: it runs the code beside it."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "stages", copy / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", copy / "params.yaml")
    edited = copy / "src/forgetting/config/params.py"
    edited.write_text(edited.read_text() + '\n\ndef validate(params):\n    raise ForgettingError("the copy ran")\n')
    command = " ".join(COMMANDS["check_params"]).replace("python", shlex.quote(sys.executable), 1)
    done = subprocess.run(command, shell=True, cwd=copy, capture_output=True, text=True)
    assert (done.returncode, done.stderr.strip()) == (1, "error: check_params: the copy ran")
