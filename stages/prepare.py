"""Stage prepare: MNIST (tensorflow-datasets) -> data/prepared/task_{a,b}/{train,validation,test}.npz."""

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    p = params.load("prepare")
    from forgetting import data  # after validation: TensorFlow is slow to import

    cfg = p["data"]
    train, test = data.load_mnist(cfg["manual_dir"], cfg["tfds_dir"])
    for task in ("task_a", "task_b"):
        splits = data.build_task(train, test, cfg[f"{task}_digits"], cfg["validation_fraction"], p["seed"])
        data.save_task(splits, f"data/prepared/{task}")
        print(task, {name: len(split) for name, split in splits.items()})


if __name__ == "__main__":
    run_stage(main)
