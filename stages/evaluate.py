"""Stage evaluate@<name>: every repetition's test accuracy on every task, forgetting and BWT -> the means and their
95% confidence half-widths in metrics/<name>.json, each repetition's values in metrics/repetitions/<name>.json;
the accuracy matrix -> metrics/accuracy_matrix/<name>.json and every task's accuracy per epoch (mean and 95% CI)
-> metrics/accuracy_per_epoch/<name>.json (the report stage gathers them for the DVC plots).

Usage: evaluate.py NAME. Final accuracies come from models/NAME.keras alone (a strategy with a prediction rule of its
own, ``Strategy.predict``, keeps it in its network); the accuracy matrices from the training logs
metrics/epochs/NAME.csv (means) and metrics/epochs/repetitions/NAME.csv (per repetition). For a strategy, the
metrics add task_a_forgetting = task-A accuracy of the task-A model (models/task_a.keras) minus that of NAME's,
repetition by repetition. For a sequence, BWT and FWT; FWT's baseline, each repetition's accuracy at initialisation,
is the first row of the task-A model's log, metrics/epochs/repetitions/task_a.csv.
"""

import sys

from forgetting.config import params
from forgetting.errors import ForgettingError
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    name = sys.argv[1]
    model_path, reference_path = f"models/{name}.keras", "models/task_a.keras"
    p = params.load(f"evaluate@{name}")
    import_tensorflow()  # after validation: slow to import
    from forgetting.data import mnist
    from forgetting.data.scenarios import Scenario
    from forgetting.evaluation import metrics
    from forgetting.evaluation.intervals import plus_minus
    from forgetting.nn import model

    scenario = Scenario.from_params(p)
    tests = mnist.load_tasks("test", scenario)
    producer = {"task_a": "train_a", "joint": "train_joint"}.get(name, f"finetune@{name}")
    net = model.load_model(model_path, stage=producer)
    reference_a = None
    if name not in ("task_a", "joint"):  # models measured against themselves
        reference = model.load_model(reference_path, stage="train_a")
        if reference.seeds != net.seeds:
            raise ForgettingError(
                f"{model_path} holds the repetitions {net.seeds}, {reference_path} {reference.seeds}: "
                f"run `dvc repro {producer}`"
            )
        reference_a = metrics.accuracy(reference, tests["task_a"], scenario)
    log = metrics.read_log(f"metrics/epochs/{name}.csv")
    repetitions = metrics.repetition_metrics(
        net.seeds,
        {task: metrics.accuracy(net, split, scenario) for task, split in tests.items()},
        reference_a,
        metrics.read_log(f"metrics/epochs/repetitions/{name}.csv"),
        scenario.names,
        metrics.initial_accuracies(metrics.read_log("metrics/epochs/repetitions/task_a.csv"), scenario.names),
    )
    result = metrics.summary(repetitions)
    # each mean with its 95% half-width ("± n/a" with one repetition), built before any output is written
    line = ", ".join(
        f"{key} {result[key]:.4f} {plus_minus(result[f'{key}_ci95'], 4)}" for key in repetitions if key != "seed"
    )
    metrics.write_metrics(metrics.matrix_records(log, scenario.names), f"metrics/accuracy_matrix/{name}.json")
    metrics.write_metrics(metrics.epoch_records(log, scenario.names), f"metrics/accuracy_per_epoch/{name}.json")
    metrics.write_metrics(repetitions, f"metrics/repetitions/{name}.json")
    metrics.write_metrics(result, f"metrics/{name}.json")
    print(name, line)


if __name__ == "__main__":
    run_stage(main)
