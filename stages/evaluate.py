"""Stage evaluate@<name>: test accuracy on every task and BWT -> metrics/<name>.json, and the accuracy matrix
-> metrics/accuracy_matrix/<name>.json.

Usage: evaluate.py NAME MODEL REFERENCE. Final accuracies come from MODEL; the accuracy matrix from the training
log metrics/epochs/NAME.csv. When REFERENCE (the task-A model) differs from MODEL, the metrics add
task_a_forgetting = task-A accuracy of REFERENCE minus that of MODEL.
"""

import sys

from forgetting import params
from forgetting.cli import import_tensorflow, run_stage


def main() -> None:
    name, model_path, reference_path = sys.argv[1:4]
    p = params.load(f"evaluate@{name}")
    import_tensorflow()  # after validation: slow to import
    from forgetting import data, metrics, model
    from forgetting.scenarios import Scenario

    scenario = Scenario.from_params(p)
    tests = data.load_tasks("test", scenario)
    producer = {"task_a": "train_a", "joint": "train_joint"}.get(name, f"finetune@{name}")
    net = model.load_model(model_path, stage=producer)
    reference_a = None
    if reference_path != model_path:
        reference = model.load_model(reference_path, stage="train_a")
        reference_a = metrics.accuracy(reference, tests["task_a"], scenario)
    log = metrics.read_log(f"metrics/epochs/{name}.csv")
    result = metrics.task_metrics(
        {task: metrics.accuracy(net, split, scenario) for task, split in tests.items()},
        reference_a,
        metrics.accuracy_matrix(log, scenario.names),
    )
    metrics.write_metrics(metrics.matrix_records(log, scenario.names), f"metrics/accuracy_matrix/{name}.json")
    metrics.write_metrics(result, f"metrics/{name}.json")
    print(name, result)


if __name__ == "__main__":
    run_stage(main)
