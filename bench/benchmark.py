"""Speed and memory of the pipeline on real MNIST; prints each figure as measured in this one run.

    python bench/benchmark.py               # everything (about 20 minutes on 2 cores)
    python bench/benchmark.py --part fisher # needs `dvc repro fisher` to have run

Targets (reached, not asserted), each measured side by side in one run: a full `dvc repro` with 5 seeds (the
default) <= 2.0 x the same with 1 seed, both from an empty cache; `dvc exp run -S alpha=50` <= 0.15 x the 5-seed
full run; peak resident memory <= 2 GB per stage; exact Fisher of every repetition <= 1.0 x one training epoch.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from project_copy import ROOT, STAGE_LINE, copy_project, read_mnist_from, run


def bench_fisher(reference_examples: int) -> None:
    from forgetting.stage import import_tensorflow

    import_tensorflow()  # quietly, as the stages do
    import keras

    from forgetting.data import mnist
    from forgetting.data.scenarios import Scenario
    from forgetting.nn import fisher, model
    from forgetting.strategies.mas import mas_importance
    from forgetting.training import loop

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    scenario = Scenario.from_params(params)
    train = mnist.load_task("task_a", "train", scenario, ROOT / "data/prepared")
    net = model.load_model(ROOT / "models/task_a.keras", stage="train_a")

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    def epoch_seconds(repetitions: int) -> float:
        loop.seed_everything(0)
        timer = EpochTimer()
        seeds = list(range(repetitions))
        fresh = model.build_network(scenario.num_outputs, params["model"]["hidden_units"], 0.0, seeds)
        data_set = loop.TrainingSet(train, seeds, salt=0)
        loop.fit(loop.ContinualModel(fresh, scenario, data_set), None, epochs=2,
                     batch_size=params["train"]["batch_size"], learning_rate=params["train"]["learning_rate"],
                     callbacks=[timer], verbose=0)  # fmt: skip
        return timer.seconds  # the second epoch: no tracing

    one, every = epoch_seconds(1), epoch_seconds(net.repetitions)
    print(
        f"one training epoch on task A ({len(train)} examples, batch 32): 1 repetition {one:.2f} s, "
        f"{net.repetitions} stacked {every:.2f} s = {every / one:.2f} x"
    )
    per_example = {}
    for estimator in ("exact", "sampled", "empirical"):
        start = time.perf_counter()
        fisher.fisher_diagonal(net, train.image, train.label, estimator)
        seconds = time.perf_counter() - start
        per_example[estimator] = seconds / len(train)
        print(
            f"Fisher '{estimator}' of {net.repetitions} repetitions on all {len(train)} task-A examples: "
            f"{seconds:.2f} s = {seconds / every:.2f} epochs"
        )
    start = time.perf_counter()
    mas_importance(net, train.image, scenario.columns(0))
    seconds = time.perf_counter() - start
    print(f"MAS importance of {net.repetitions} repetitions: {seconds:.2f} s = {seconds / every:.2f} epochs")
    subset = train.subset(slice(0, reference_examples))
    start = time.perf_counter()
    fisher.reference_fisher(net, subset.image, subset.label, "exact")
    slow = (time.perf_counter() - start) / len(subset)
    print(
        f"exact Fisher per example: one at a time (GradientTape, {len(subset)} examples) {slow * 1e3:.2f} ms, "
        f"vectorised (all examples) {per_example['exact'] * 1e3:.3f} ms: x{slow / per_example['exact']:.0f}"
    )


def with_seeds(seeds: int, mnist: Path | None):
    """An ``edit_params`` that sets ``seeds`` (and MNIST's folder, as ``read_mnist_from``)."""

    def edit(params: dict) -> None:
        read_mnist_from(mnist)(params)
        params["seeds"] = seeds

    return edit


def bench_pipeline(mnist: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        default = yaml.safe_load((ROOT / "params.yaml").read_text())["seeds"]
        full = {}
        for seeds in (1, default):  # side by side, each from an empty cache
            repo = copy_project(Path(tmp) / f"seeds{seeds}", with_seeds(seeds, mnist))
            # --force: every stage runs in both (with the committed params, DVC would find the clone's evaluate@*
            # outputs up to date and skip them)
            full[seeds], _ = run(repo, "dvc", "repro", "--force")
            print(f"full `dvc repro --force` from an empty cache, {seeds} seed(s): {full[seeds]:.1f} s")
        print(f"{default} seeds / 1 seed: {full[default] / full[1]:.2f} x")
        run(repo, "git", "commit", "-qam", "results", "--allow-empty")  # byte-stable: often nothing changed
        alpha, output = run(repo, "dvc", "exp", "run", "-S", "alpha=50")
        ran = sorted({started["name"] for started in map(STAGE_LINE.match, output.splitlines()) if started})
        print(
            f"`dvc exp run -S alpha=50` ({default} seeds): {alpha:.1f} s = {alpha / full[default]:.2f} x the full run "
            f"(ran {', '.join(ran)})"
        )
        lock = yaml.safe_load((repo / "dvc.lock").read_text())
        print(f"peak resident memory per stage ({default} seeds; each stage's command rerun on its own):")
        for stage, entry in lock["stages"].items():
            start = time.perf_counter()
            words = entry["cmd"].split()  # PYTHONPATH=src python stages/...
            assignments = list(itertools.takewhile(lambda word: "=" in word, words))
            program, *arguments = words[len(assignments) :]
            command = [sys.executable if program == "python" else program, *arguments]
            env = {**os.environ, **dict(a.split("=", 1) for a in assignments)}
            process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)
            if status:
                sys.exit(f"{stage} failed when rerun")
            print(f"  {stage:18s} {usage.ru_maxrss / 1024:7.0f} MB  {time.perf_counter() - start:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["fisher", "pipeline", "all"], default="all")
    parser.add_argument("--mnist", type=Path, help="folder of the four .gz files (default: params.yaml's)")
    parser.add_argument("--reference-examples", type=int, default=300)
    args = parser.parse_args()
    if args.part in ("pipeline", "all"):
        bench_pipeline(args.mnist)
    if args.part in ("fisher", "all"):
        bench_fisher(args.reference_examples)


if __name__ == "__main__":
    main()
