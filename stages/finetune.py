"""Stage finetune@<strategy>: fine-tune the task-A model on task B under one strategy
-> models/<strategy>.keras and metrics/epochs/<strategy>.csv (test accuracy on A and B per epoch)."""

import sys

from forgetting import params
from forgetting.cli import run_stage
from forgetting.files import atomic_output


def main() -> None:
    name = sys.argv[1]
    p = params.load(f"finetune@{name}")
    from forgetting import data, model, training  # after validation: TensorFlow is slow to import
    from forgetting.strategies import TaskAState, build_strategy

    training.seed_everything(p["seed"])
    task_a = TaskAState()
    strategy = build_strategy(name, p, task_a)
    net = task_a.model()
    tests = {task: data.load_split(f"data/prepared/{task}", "test") for task in ("task_a", "task_b")}
    with atomic_output(f"metrics/epochs/{name}.csv") as csv_path:
        training.finetune(
            net,
            strategy,
            data.load_split("data/prepared/task_b", "train"),
            data.load_split("data/prepared/task_b", "validation"),
            epochs=p["finetune"]["epochs"],
            batch_size=p["train"]["batch_size"],
            learning_rate=p["train"]["learning_rate"],
            callbacks=[training.TaskAccuracyLog(tests, csv_path)],
        )
        model.save_model(net, f"models/{name}.keras")


if __name__ == "__main__":
    run_stage(main)
