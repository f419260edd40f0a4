"""Stage finetune@<strategy>: from the task-A model (every repetition), train on tasks B, C, ... in turn under one
strategy -> models/<strategy>.keras, and test accuracy on every task per epoch -> metrics/epochs/<strategy>.csv
(mean and 95% CI over repetitions) and metrics/epochs/repetitions/<strategy>.csv."""

import sys

from forgetting.config import params
from forgetting.files import atomic_output
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    name = sys.argv[1]
    p = params.load(f"finetune@{name}")
    import_tensorflow()  # after validation: slow to import
    from forgetting.data.scenarios import Scenario
    from forgetting.nn import model
    from forgetting.strategies import TaskAState, check_own_params, check_setting
    from forgetting.training import loop

    check_own_params(name, p)  # its own keys' types (and an unknown strategy), before any output
    # check_params' check of its setting, as `dvc repro evaluate@<name>` runs without it; over the whole file as there
    # (the buffer against data.*): it changes no output, only whether the stage stops before any work
    check_setting(name, params.read())

    task_a = TaskAState(Scenario.from_params(p))
    with (
        atomic_output(f"metrics/epochs/{name}.csv") as csv_path,
        atomic_output(f"metrics/epochs/repetitions/{name}.csv") as repetitions_path,
    ):
        net = loop.train_strategy(name, p, task_a, "test", csv_path, repetitions_path)
        model.save_model(net, f"models/{name}.keras")


if __name__ == "__main__":
    run_stage(main)
