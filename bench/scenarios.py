"""Every strategy in every setting, each with its tuned values: run the whole pipeline once per setting (scenario x
task sequence) with the values `forgetting tune` chose for it (tuning/<setting>.yaml), each in a temporary copy of
the project, and write the tables and figures of all of them side by side to report/settings/settings.md.

    python bench/scenarios.py                                  # every setting (permuted MNIST alone: about 35 min)
    python bench/scenarios.py --settings class-split5 task-even-odd

Only what changed reruns: each setting's runs are kept in report/settings/runs/<setting>/ (its models' metrics, and
the copy's dvc.lock as the record of how they were made), committed with the page, and a later run of the script
reruns only the models whose stages' code, params or command differ from that record (a strategy added, a value
re-tuned, a module edited), with their upstream stages. The setting that params.yaml is set up for is not rerun:
its results are the workspace's metrics (run `dvc repro` first). A setting without a tuning file runs with
params.yaml's values, and the page says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from project_copy import ROOT, copy_project, read_mnist_from, run

from forgetting.config import params as params_module
from forgetting.config.settings import SETTINGS, setting_of, setting_params
from forgetting.stage import import_tensorflow


def run_setting(params: dict, mnist: Path | None, keep: Path):
    """Every model's results in the setting of ``params``, run in a copy of the project or kept in ``keep``
    (``keep_runs``)."""
    from forgetting.reporting.report import Results

    keep_runs(params, mnist, keep)
    return Results.load(params, keep / "metrics", ROOT / "tuning")


def keep_runs(params: dict, mnist: Path | None, keep: Path, names: list[str] | None = None) -> None:
    """The pipeline in a copy of the project with ``params`` (sharing this project's DVC cache), for the models of
    ``names`` (default: every model) whose runs ``keep`` does not hold: all of them the first time; later, those whose
    metrics it lacks and those that its record of the runs (``keep``/dvc.lock) shows stale, their code, params or
    command changed since (``stale_models``). Their metrics go to ``keep``/metrics and the copy's dvc.lock to the
    record."""
    from forgetting.evaluation.results import FILES, models
    from forgetting.tuning.project import stale_models

    names, record = names or models(), keep / "dvc.lock"
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo", lambda p: (p.update(params), read_mnist_from(mnist)(p)), True)
        todo = names
        if record.is_file():
            shutil.copyfile(record, repo / "dvc.lock")
            stale = set(stale_models(repo, names))
            kept = {m for m in names if all((keep / "metrics" / f"{f}{m}.json").is_file() for f in FILES.values())}
            todo = [m for m in names if m in stale or m not in kept]
        running = ", ".join(todo) or "none"
        print(f"  {len(names) - len(todo)} of {len(names)} models kept in {keep}; running {running}", flush=True)
        if todo:
            run(repo, "dvc", "repro", *(f"evaluate@{m}" for m in todo))
            for path in (repo / "metrics").rglob("*.json"):
                if path.stem in todo:
                    (keep / path.relative_to(repo)).parent.mkdir(parents=True, exist_ok=True)
                    (keep / path.relative_to(repo)).write_bytes(path.read_bytes())
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / "dvc.lock", record)


def add_run_options(parser: argparse.ArgumentParser, keep: Path, each: str) -> None:
    """The options of the benchmarks that run in copies of the project and keep their runs: --mnist and --keep
    (default ``keep``, one folder for ``each`` run)."""
    parser.add_argument("--mnist", type=Path, help="folder of the four .gz files (default: params.yaml's)")
    parser.add_argument(
        "--keep",
        type=Path,
        default=keep,
        help=f"keep each {each}'s runs here (its metrics and dvc.lock), and reuse those that are not stale "
        f"(default: {keep.relative_to(ROOT)}, committed with the page)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--out", type=Path, default=ROOT / "report" / "settings", help="the page's folder")
    add_run_options(parser, ROOT / "report" / "settings" / "runs", "setting")
    args = parser.parse_args()
    import_tensorflow()  # quietly: forgetting.reporting.report imports it
    from forgetting.reporting.report import Results, write_settings_page

    base = params_module.read(ROOT / "params.yaml")
    results, seconds = {}, {}
    for setting in args.settings:
        start = time.perf_counter()
        params = setting_params(base, setting, ROOT / "tuning")
        if setting == setting_of(base):
            results[setting] = Results.load(base, ROOT / "metrics", ROOT / "tuning")
        else:
            print(f"{setting}:", flush=True)
            results[setting] = run_setting(params, args.mnist, args.keep / setting)
        seconds[setting] = round(time.perf_counter() - start)
        print(f"{setting}: {seconds[setting]} s", flush=True)
    write_settings_page(results, args.out)
    print(json.dumps(seconds), f"\nwrote {args.out / 'settings.md'}")


if __name__ == "__main__":
    main()
