"""Every strategy in every scenario: run the whole pipeline once per (scenario, task sequence) on real MNIST, each in
a temporary copy of the project with the committed params otherwise, and print one markdown table per run.

    python bench/scenarios.py          # 2 tasks x {domain, task, class}, 5 tasks x {domain, class}
    python bench/scenarios.py --runs domain:2 class:5 --json out.json
    python bench/scenarios.py --workspace   # the same table for this workspace's metrics (no runs)

Each run is a full `dvc repro` (about 5-8 minutes on 2 cores, `seeds` repetitions trained together). The tables
hold test accuracy (final, per task and mean) and, for sequences, BWT, each as mean ± 95% confidence half-width over
the repetitions; below each table, paired comparisons of mean accuracy over the shared seeds: each strategy against
the next one down in the ranking, and every strategy against naive fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import yaml
from project_copy import copy_project, read_mnist_from, run

from forgetting.metrics import paired_difference

SEQUENCES = {2: [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]], 5: [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]}
MODELS = ("naive", "l2", "ewc", "online_ewc", "si", "mas", "lwf", "replay", "joint")


def read_results(repo: Path) -> dict[str, dict]:
    """Every model's metrics (means and CIs) and per-repetition values in ``repo``."""
    return {
        name: {
            "summary": json.loads((repo / "metrics" / f"{name}.json").read_text()),
            "repetitions": json.loads((repo / "metrics" / "repetitions" / f"{name}.json").read_text()),
        }
        for name in MODELS
    }


def run_pipeline(scenario: str, count: int, mnist: Path | None) -> dict[str, dict]:
    def edit(path: Path) -> None:
        read_mnist_from(mnist)(path)
        params = yaml.safe_load(path.read_text())
        params |= {"scenario": scenario, "tasks": SEQUENCES[count]}
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo", edit)
        run(repo, "dvc", "repro")
        return read_results(repo)


def cell(values: dict, key: str, bold: bool = False) -> str:
    if key not in values:
        return ""
    text = f"{values[key]:.3f} ± {values[f'{key}_ci95']:.3f}"
    return f"**{text}**" if bold else text


def table(results: dict[str, dict], count: int) -> str:
    names = [f"task_{letter}" for letter in "abcdefghij"[:count]]
    head = ["model", *(n.replace("task_", "") for n in names), "mean", "BWT"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for model, result in results.items():
        values = result["summary"]
        cells = [cell(values, f"{n}_accuracy") for n in names] + [cell(values, "mean_accuracy", bold=True)]
        lines.append(f"| `{model}` | " + " | ".join([*cells, cell(values, "bwt")]) + " |")
    return "\n".join(lines)


def comparisons(results: dict[str, dict]) -> str:
    """Paired differences in mean accuracy: down the ranking, and against naive."""
    each = {m: r["repetitions"]["mean_accuracy"] for m, r in results.items() if m != "joint"}
    ranked = sorted(each, key=lambda m: -sum(each[m]))
    pairs = list(pairwise(ranked))
    pairs += [(m, "naive") for m in ranked if m != "naive" and (m, "naive") not in pairs]
    lines = []
    for a, b in pairs:
        difference, half, p = paired_difference(each[a], each[b])
        verdict = "identical" if each[a] == each[b] else "real" if abs(difference) > half else "not resolved"
        lines.append(f"- `{a}` - `{b}`: {difference:+.3f} ± {half:.3f} (paired t-test p = {p:.2g}; {verdict})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", nargs="+", default=["domain:2", "task:2", "class:2", "domain:5", "class:5"], help="SCENARIO:TASKS"
    )
    parser.add_argument("--mnist", type=Path, help="folder of the four .gz files (default: params.yaml's)")
    parser.add_argument("--json", type=Path, help="also write every run's metrics here")
    parser.add_argument("--workspace", action="store_true", help="only print the tables of this workspace's metrics")
    args = parser.parse_args()
    if args.workspace:
        results = read_results(Path.cwd())
        print(table(results, len(yaml.safe_load(Path("params.yaml").read_text())["tasks"])))
        print(f"\nPaired differences in mean accuracy (95% CI over the shared seeds):\n\n{comparisons(results)}")
        return
    results = {}
    for spec in args.runs:
        scenario, count = spec.split(":")
        start = time.perf_counter()
        metrics = run_pipeline(scenario, int(count), args.mnist and args.mnist.resolve())
        results[spec] = metrics
        print(f"\n{scenario} scenario, {count} tasks ({time.perf_counter() - start:.0f} s):\n")
        print(table(metrics, int(count)), flush=True)
        print(
            f"\nPaired differences in mean accuracy (95% CI over the shared seeds):\n\n{comparisons(metrics)}",
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
