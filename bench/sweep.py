"""Choose a strategy's hyperparameters on VALIDATION data (never test).

For every combination of the given values, train the task-A model on the later tasks under the strategy exactly as
`finetune@<strategy>` does (same params, seed and epochs, built by the same registry from the task-A checkpoint,
Fisher and path-integral files), and print the final validation accuracy on every task and their mean. Run after
`dvc repro fisher` (with the scenario and tasks to sweep for):

    python bench/sweep.py ewc alpha=0,1,5,25,100
    python bench/sweep.py lwf lwf.temperature=1,2,4 lwf.weight=0.5,1,2

Every repetition of the task-A checkpoint (params.yaml's `seeds`) is fine-tuned, together; each figure is the mean
over them, the last column the 95% confidence half-width of the mean.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import tempfile
from pathlib import Path

import numpy as np
import yaml

from forgetting import data, metrics, training
from forgetting.params import validate
from forgetting.scenarios import Scenario
from forgetting.strategies import TaskAState, build_strategy


def _set(params: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        params = params[part]
    params[leaf] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy")
    parser.add_argument("grid", nargs="+", help="KEY=V1,V2,... (a params.yaml key, dotted)")
    args = parser.parse_args()
    with open("params.yaml") as handle:
        base = yaml.safe_load(handle)
    keys, values = zip(*(item.split("=", 1) for item in args.grid), strict=True)
    grid = [[yaml.safe_load(v) for v in vs.split(",")] for vs in values]
    scenario = Scenario.from_params(base)
    task_a = TaskAState(scenario)
    train = list(data.load_tasks("train", scenario).values())
    validation = data.load_tasks("validation", scenario)
    seeds = task_a.model().seeds
    print(f"{args.strategy}, {scenario.kind} scenario, {len(train)} tasks, repetitions {seeds}, validation splits")
    print(f"| {' | '.join(keys)} | {' | '.join(validation)} | mean | ci95 |")
    print("|" + "---:|" * (len(keys) + len(validation) + 2))
    for combination in itertools.product(*grid):
        params = copy.deepcopy(base)
        for key, value in zip(keys, combination, strict=True):
            _set(params, key, value)
        validate(params)
        training.seed_everything(params["seed"])
        strategy = build_strategy(args.strategy, params, task_a)
        net = task_a.model()
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            log = training.TaskAccuracyLog(validation, scenario, tmp / "log.csv", tmp / "each.csv", task="task_a")
            training.train_sequence(
                net,
                strategy,
                scenario,
                train,
                list(validation.values()),
                log,
                epochs=params["finetune"]["epochs"],
                batch_size=params["train"]["batch_size"],
                learning_rate=params["finetune"]["learning_rate"],
                verbose=0,
            )
        each = np.array([metrics.accuracy(net, split, scenario) for split in validation.values()])  # tasks x reps
        cells = " | ".join(f"{v:g}" for v in combination)
        columns = " | ".join(f"{m:.4f}" for m in each.mean(axis=1))
        mean = each.mean(axis=0)  # each repetition's mean over the tasks
        print(f"| {cells} | {columns} | {mean.mean():.4f} | {metrics.ci95(mean):.4f} |", flush=True)


if __name__ == "__main__":
    main()
