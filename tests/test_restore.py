"""`forgetting restore`, the way back from a failed run, in a small DVC project of its own (no TensorFlow, seconds):
after a failed `dvc exp run -S` with a same-length bad value, which git's index takes for unchanged, and after a
failed stage that lost its git-tracked outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import params_differ_from_head
from test_pipeline_e2e import run

from forgetting.restore import checkout_problem

CHECK = (  # a second or more after DVC rewrote params.yaml, as check_params (TensorFlow's import) takes
    "python -c \"import sys, time, yaml; time.sleep(1.5); sys.exit(yaml.safe_load(open('params.yaml'))['seeds'] < 1)\""
)
REPORT = (
    "python -c \"import sys, yaml; p = yaml.safe_load(open('params.yaml')); "
    "sys.exit(p['fail']) if p['fail'] else open('report/README.md', 'w').write(str(p['seeds']))\""
)
DVC_YAML = f"""stages:
  check:
    cmd: {CHECK}
    params: [seeds]
  model:
    cmd: python -c "open('model.bin', 'w').write('weights')"
    outs: [model.bin]
  report:
    cmd: {REPORT}
    deps: [model.bin]
    params: [seeds, fail]
    outs:
    - report/README.md:
        cache: false
"""


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "report").mkdir()
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("seeds: 2\nfail: 0\n")
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, "dvc", "init", "-q")
    run(tmp_path, "dvc", "repro", "-q")
    run(tmp_path, "git", "add", "-A")
    run(tmp_path, "git", "commit", "-qm", "results")
    return tmp_path


def committed(project: Path) -> dict[str, bytes]:
    return {name: (project / name).read_bytes() for name in ("params.yaml", "dvc.lock", "report/README.md")}


def restore(project: Path) -> str:
    command = [sys.executable, "-c", "from forgetting.cli import main_exit; main_exit()", "restore"]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_back_from_a_same_length_bad_value(project):
    before = committed(project)
    run(project, "dvc", "exp", "run", "-S", "seeds=0", check=False)  # fails in `check`, 1.5 s after the rewrite
    assert (project / "params.yaml").read_text() == "seeds: 0\nfail: 0\n"
    # git's index may now hold the bad file's stat data under the good file's hash (DVC's doing): then git takes the
    # file for unchanged, and `git checkout params.yaml` would restore nothing. Whether it does depends on timing
    # (git re-hashes a file whose mtime is too close to the index's), so the test does not count on either case.
    assert run(project, "git", "status", "--porcelain") in ("", " M params.yaml\n")
    output = restore(project)
    assert output.startswith("restored params.yaml, dvc.lock, report from HEAD (")
    assert committed(project) == before
    assert run(project, "git", "status", "--porcelain") == ""


def test_back_from_a_failed_stage_that_lost_its_outputs(project):
    before = committed(project)
    (project / "model.bin").unlink()  # a DVC output: dvc checkout brings it back from the cache
    run(project, "dvc", "exp", "run", "-S", "fail=3", check=False)  # the report stage fails: its output deleted
    assert not (project / "report/README.md").exists()
    restore(project)
    assert committed(project) == before
    assert (project / "model.bin").read_text() == "weights"
    assert run(project, "git", "status", "--porcelain") == ""
    assert "up to date" in run(project, "dvc", "status")


def test_outside_a_project_is_one_line(tmp_path):
    command = [sys.executable, "-c", "from forgetting.cli import main_exit; main_exit()", "restore"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert (
        done.stderr
        == f"error: forgetting restore: {tmp_path} holds no dvc.yaml and params.yaml: run from the project's root\n"
    )


def test_a_fresh_clone_has_no_cache_of_heads_outputs(project, tmp_path):
    """A clone's DVC cache is empty (no remote): restore gives back the git-tracked files and says, in one line, which
    of HEAD's outputs the cache lacks and that `dvc repro` rebuilds them, not DVC's bare error link."""
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    command = [sys.executable, "-c", "from forgetting.cli import main_exit; main_exit()", "restore"]
    done = subprocess.run(command, cwd=clone, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "error: forgetting restore: DVC's cache here lacks 1 of HEAD's outputs (model.bin): they were built where HEAD "
        "was committed (a clone starts with an empty cache, and this project sets up no DVC remote); params.yaml, "
        "dvc.lock, metrics/ and report/ are HEAD's now: run `dvc repro` to rebuild the rest"
    )
    assert committed(clone) == committed(project) and "error.dvc.org" not in done.stdout + done.stderr


def test_the_missing_outputs_named_three_and_a_count():
    output = "ERROR: Checkout failed for following targets:\ndata/prepared\nmodels/a.keras\nmodels/b.keras\n"
    output += "models/c.keras\nmodels/d.keras\nIs your cache up to date?\n<https://error.dvc.org/missing-files>\n"
    problem = checkout_problem(output)
    assert problem.startswith(
        "DVC's cache here lacks 5 of HEAD's outputs (data/prepared, models/a.keras, models/b.keras and 2 more): "
    )
    assert checkout_problem("ERROR: unexpected error\n") == (
        "dvc checkout: ERROR: unexpected error: run `dvc repro` to rebuild what the cache lacks"
    )


def test_the_tests_say_when_params_yaml_is_not_heads(project):
    """pytest's header (and, after failures, its summary) names an experiment's params.yaml in the workspace, by
    content: the same-length value that git's index takes for unchanged included."""
    assert not params_differ_from_head(project)
    run(project, "dvc", "exp", "run", "-S", "seeds=0", check=False)  # fails, leaving params.yaml at 0
    assert params_differ_from_head(project)
    restore(project)
    assert not params_differ_from_head(project)
