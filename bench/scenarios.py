"""Every strategy in every scenario: run the whole pipeline once per (scenario, task sequence) on real MNIST, each in
a temporary copy of the project with the committed params otherwise, and print one markdown table per run.

    python bench/scenarios.py          # 2 tasks x {domain, task, class}, 5 tasks x {domain, class}
    python bench/scenarios.py --runs domain:2 class:5 --json out.json

Each run is a full `dvc repro` (about 4-6 minutes on 2 cores); the tables hold test accuracy (final, per task and
mean) and, for sequences, BWT.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml
from project_copy import copy_project, read_mnist_from, run

SEQUENCES = {2: [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]], 5: [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]}
MODELS = ("naive", "l2", "ewc", "online_ewc", "si", "mas", "lwf", "replay", "joint")


def run_pipeline(scenario: str, count: int, mnist: Path | None) -> dict[str, dict]:
    def edit(path: Path) -> None:
        read_mnist_from(mnist)(path)
        params = yaml.safe_load(path.read_text())
        params |= {"scenario": scenario, "tasks": SEQUENCES[count]}
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo", edit)
        run(repo, "dvc", "repro")
        return {name: json.loads((repo / "metrics" / f"{name}.json").read_text()) for name in MODELS}


def table(metrics: dict[str, dict], count: int) -> str:
    names = [f"task_{letter}" for letter in "abcdefghij"[:count]]
    head = ["model", *(n.replace("task_", "") for n in names), "mean", "BWT"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for model, values in metrics.items():
        cells = [f"{values[f'{n}_accuracy']:.4f}" for n in names] + [f"**{values['mean_accuracy']:.4f}**"]
        cells.append(f"{values['bwt']:.4f}" if "bwt" in values else "")
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", nargs="+", default=["domain:2", "task:2", "class:2", "domain:5", "class:5"], help="SCENARIO:TASKS"
    )
    parser.add_argument("--mnist", type=Path, help="folder of the four .gz files (default: params.yaml's)")
    parser.add_argument("--json", type=Path, help="also write every run's metrics here")
    args = parser.parse_args()
    results = {}
    for spec in args.runs:
        scenario, count = spec.split(":")
        start = time.perf_counter()
        metrics = run_pipeline(scenario, int(count), args.mnist and args.mnist.resolve())
        results[spec] = metrics
        print(f"\n{scenario} scenario, {count} tasks ({time.perf_counter() - start:.0f} s):\n")
        print(table(metrics, int(count)), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
