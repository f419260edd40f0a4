"""Choose a strategy's hyperparameters on VALIDATION data (never test).

For every combination of the given values, fine-tune the task-A model on task B under the strategy exactly as
`finetune@<strategy>` does (same params, seed and epochs, built by the same registry from the task-A checkpoint and
Fisher file), and print validation accuracy on tasks A and B and their mean. Run after `dvc repro fisher`:

    python bench/sweep.py ewc alpha=0,1,5,25,100 --seeds 42 1 2
    python bench/sweep.py lwf lwf.temperature=1,2,4 lwf.weight=0.5,1,2

With several seeds (they change only the fine-tuning: shuffling order), each figure is the mean over seeds.
"""

from __future__ import annotations

import argparse
import copy
import itertools

import yaml

from forgetting import data, metrics, training
from forgetting.params import validate
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
    parser.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default: params seed)")
    args = parser.parse_args()
    with open("params.yaml") as handle:
        base = yaml.safe_load(handle)
    keys, values = zip(*(item.split("=", 1) for item in args.grid), strict=True)
    grid = [[yaml.safe_load(v) for v in vs.split(",")] for vs in values]
    task_a = TaskAState()
    validation = {t: data.load_split(f"data/prepared/{t}", "validation") for t in ("task_a", "task_b")}
    train_b = data.load_split("data/prepared/task_b", "train")
    seeds = args.seeds or [base["seed"]]
    print(f"{args.strategy}, seeds {seeds}, validation splits")
    print(f"| {' | '.join(keys)} | task A val acc | task B val acc | mean val acc |")
    print("|" + "---:|" * (len(keys) + 3))
    for combination in itertools.product(*grid):
        params = copy.deepcopy(base)
        for key, value in zip(keys, combination, strict=True):
            _set(params, key, value)
        validate(params)
        results = []
        for seed in seeds:
            training.seed_everything(seed)
            strategy = build_strategy(args.strategy, params, task_a)
            net = task_a.model()
            training.finetune(
                net,
                strategy,
                train_b,
                validation["task_b"],
                epochs=params["finetune"]["epochs"],
                batch_size=params["train"]["batch_size"],
                learning_rate=params["train"]["learning_rate"],
                verbose=0,
            )
            results.append([metrics.accuracy(net, validation[t]) for t in ("task_a", "task_b")])
        acc_a, acc_b = (sum(column) / len(seeds) for column in zip(*results, strict=True))
        cells = " | ".join(f"{v:g}" for v in combination)
        print(f"| {cells} | {acc_a:.4f} | {acc_b:.4f} | {(acc_a + acc_b) / 2:.4f} |", flush=True)


if __name__ == "__main__":
    main()
