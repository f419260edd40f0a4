"""Stage finetune@<strategy>: from the task-A model (every repetition), train on tasks B, C, ... in turn under one
strategy -> models/<strategy>.keras, and test accuracy on every task per epoch -> metrics/epochs/<strategy>.csv
(mean and 95% CI over repetitions) and metrics/epochs/repetitions/<strategy>.csv."""

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
    with (
        atomic_output(f"metrics/epochs/{name}.csv") as csv_path,
        atomic_output(f"metrics/epochs/repetitions/{name}.csv") as repetitions_path,
    ):
        tests = data.load_tasks("test", scenario)
        training.train_sequence(
            net,
            strategy,
            scenario,
            list(data.load_tasks("train", scenario).values()),
            list(data.load_tasks("validation", scenario).values()),
            training.TaskAccuracyLog(tests, scenario, csv_path, repetitions_path, task="task_a"),
            epochs=p["finetune"]["epochs"],
            batch_size=p["train"]["batch_size"],
            learning_rate=p["finetune"]["learning_rate"],
        )
        model.save_model(net, f"models/{name}.keras")


if __name__ == "__main__":
    run_stage(main)
