"""Stage finetune@<strategy>: from the task-A model, train on tasks B, C, ... in turn under one strategy
-> models/<strategy>.keras and metrics/epochs/<strategy>.csv (test accuracy on every task per epoch)."""

import sys

from forgetting import params
from forgetting.cli import import_tensorflow, run_stage
from forgetting.files import atomic_output


def main() -> None:
    name = sys.argv[1]
    p = params.load(f"finetune@{name}")
    import_tensorflow()  # after validation: slow to import
    from forgetting import data, model, training
    from forgetting.scenarios import Scenario
    from forgetting.strategies import TaskAState, build_strategy

    training.seed_everything(p["seed"])
    scenario = Scenario.from_params(p)
    task_a = TaskAState(scenario)
    strategy = build_strategy(name, p, task_a)
    net = task_a.model()
    with atomic_output(f"metrics/epochs/{name}.csv") as csv_path:
        training.train_sequence(
            net,
            strategy,
            scenario,
            list(data.load_tasks("train", scenario).values()),
            list(data.load_tasks("validation", scenario).values()),
            training.TaskAccuracyLog(data.load_tasks("test", scenario), scenario, csv_path, task="task_a"),
            epochs=p["finetune"]["epochs"],
            batch_size=p["train"]["batch_size"],
            learning_rate=p["finetune"]["learning_rate"],
        )
        model.save_model(net, f"models/{name}.keras")


if __name__ == "__main__":
    run_stage(main)
