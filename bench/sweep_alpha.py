"""Choose EWC's alpha on VALIDATION data (never test).

For each alpha, fine-tune the task-A model (models/task_a.keras) on task B with the EWC penalty of
models/fisher.npz, exactly as `finetune@ewc` does (same params, seed and epochs), and print the validation
accuracy on tasks A and B and their mean. Run after `dvc repro fisher`:

    python bench/sweep_alpha.py 1 10 100 1000 --seeds 1 2 3

With several seeds (they change only the fine-tuning: shuffling order), each figure is the mean over seeds.
"""

from __future__ import annotations

import argparse

import yaml

from forgetting import data, metrics, training
from forgetting.strategies import EWC, TaskAState

DEFAULT_ALPHAS = [0, 1, 5, 25, 100, 1000, 1e4, 1e5, 1e6, 1e7]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alphas", nargs="*", type=float, default=DEFAULT_ALPHAS)
    parser.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default: params seed)")
    args = parser.parse_args()
    with open("params.yaml") as handle:
        p = yaml.safe_load(handle)
    task_a = TaskAState()
    theta, fisher = task_a.fisher()
    validation = {t: data.load_split(f"data/prepared/{t}", "validation") for t in ("task_a", "task_b")}
    train_b = data.load_split("data/prepared/task_b", "train")
    seeds = args.seeds or [p["seed"]]
    print(f"seeds {seeds}\n| alpha | task A val acc | task B val acc | mean val acc |\n|---:|---:|---:|---:|")
    for alpha in args.alphas:
        results = []
        for seed in seeds:
            training.seed_everything(seed)
            net = task_a.model()
            training.finetune(
                net,
                EWC(alpha, theta, fisher),
                train_b,
                validation["task_b"],
                epochs=p["finetune"]["epochs"],
                batch_size=p["train"]["batch_size"],
                learning_rate=p["train"]["learning_rate"],
                verbose=0,
            )
            results.append([metrics.accuracy(net, validation[t]) for t in ("task_a", "task_b")])
        acc_a, acc_b = (sum(column) / len(seeds) for column in zip(*results, strict=True))
        print(f"| {alpha:g} | {acc_a:.4f} | {acc_b:.4f} | {(acc_a + acc_b) / 2:.4f} |", flush=True)


if __name__ == "__main__":
    main()
