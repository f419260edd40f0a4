"""Every strategy in every setting, each with its tuned values: run the whole pipeline once per setting (scenario x
task sequence) with the values `forgetting tune` chose for it (tuning/<setting>.yaml), each in a temporary copy of
the project, and write the tables and figures of all of them side by side to report/settings/settings.md.

    python bench/scenarios.py                                  # every setting (permuted MNIST alone: about 35 min)
    python bench/scenarios.py --settings class-split5 task-even-odd

The setting that params.yaml is set up for is not rerun: its results are the workspace's metrics (run `dvc repro`
first). A setting without a tuning file runs with params.yaml's values, and the page says so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from project_copy import ROOT, copy_project, read_mnist_from, run

from forgetting.config import params as params_module
from forgetting.config.settings import SETTINGS, setting_of, setting_params
from forgetting.stage import import_tensorflow


def run_setting(params: dict, mnist: Path | None, keep: Path):
    """The pipeline in a copy of the project with ``params`` (sharing this project's DVC cache); its metrics are
    copied to ``keep`` and read back."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo", lambda p: (p.update(params), read_mnist_from(mnist)(p)), True)
        run(repo, "dvc", "repro")
        for path in (repo / "metrics").rglob("*.json"):
            (keep / path.relative_to(repo)).parent.mkdir(parents=True, exist_ok=True)
            (keep / path.relative_to(repo)).write_bytes(path.read_bytes())
    from forgetting.reporting.report import Results

    return Results.load(params, keep / "metrics", ROOT / "tuning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--mnist", type=Path, help="folder of the four .gz files (default: params.yaml's)")
    parser.add_argument("--out", type=Path, default=ROOT / "report" / "settings", help="the page's folder")
    parser.add_argument(
        "--keep", type=Path, help="keep each setting's metrics here, and reuse those already there (default: none)"
    )
    args = parser.parse_args()
    import_tensorflow()  # quietly: forgetting.reporting.report imports it
    from forgetting.reporting.report import Results, write_settings_page

    base = params_module.read(ROOT / "params.yaml")
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        for setting in args.settings:
            start = time.perf_counter()
            kept, params = keep / setting / "metrics", setting_params(base, setting, ROOT / "tuning")
            if setting == setting_of(base):
                results[setting] = Results.load(base, ROOT / "metrics", ROOT / "tuning")
            elif args.keep and kept.is_dir():
                results[setting] = Results.load(params, kept, ROOT / "tuning")
            else:
                results[setting] = run_setting(params, args.mnist, keep / setting)
            seconds[setting] = round(time.perf_counter() - start)
            print(f"{setting}: {seconds[setting]} s", flush=True)
    write_settings_page(results, args.out)
    print(json.dumps(seconds), f"\nwrote {args.out / 'settings.md'}")


if __name__ == "__main__":
    main()
