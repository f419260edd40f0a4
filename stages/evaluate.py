"""Stage evaluate@<name>: test accuracy on tasks A and B -> metrics/<name>.json.

Usage: evaluate.py NAME MODEL REFERENCE. When REFERENCE (the task-A model) differs from MODEL, the metrics add
task_a_forgetting = task-A accuracy of REFERENCE minus that of MODEL.
"""

import sys

from forgetting import data, metrics, model
from forgetting.cli import run_stage


def main() -> None:
    name, model_path, reference_path = sys.argv[1:4]
    tests = {task: data.load_split(f"data/prepared/{task}", "test") for task in ("task_a", "task_b")}
    producer = {"task_a": "train_a", "joint": "train_joint"}.get(name, f"finetune@{name}")
    net = model.load_model(model_path, stage=producer)
    reference_a = None
    if reference_path != model_path:
        reference = model.load_model(reference_path, stage="train_a")
        reference_a = metrics.accuracy(reference, tests["task_a"])
    result = metrics.task_metrics(
        metrics.accuracy(net, tests["task_a"]), metrics.accuracy(net, tests["task_b"]), reference_a
    )
    metrics.write_metrics(result, f"metrics/{name}.json")
    print(name, result)


if __name__ == "__main__":
    run_stage(main)
