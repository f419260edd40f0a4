"""Stage prepare: MNIST (tensorflow-datasets) -> data/prepared/task_{a,b,...}/{train,validation,test}.npz, one
folder per digit set of the ``tasks`` param, shown as ``task_inputs`` says (permuted or rotated MNIST)."""

from forgetting.config import params
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    p = params.load("prepare")
    import_tensorflow()  # after validation: slow to import
    from forgetting.data import mnist, scenarios
    from forgetting.files import atomic_output

    cfg = p["data"]
    train, test = mnist.load_mnist(cfg["manual_dir"], cfg["tfds_dir"])
    with atomic_output("data/prepared") as root:
        for t, (name, digits) in enumerate(zip(scenarios.task_names(len(p["tasks"])), p["tasks"], strict=True)):
            per_digit = None if cfg["train_per_digit"] == "all" else cfg["train_per_digit"]
            splits = mnist.build_task(train, test, digits, t, cfg["validation_fraction"], p["seed"], per_digit)
            splits = mnist.show(splits, t, p["task_inputs"], p["seed"])
            mnist.save_task(splits, root / name)
            print(name, digits, {split: len(part) for split, part in splits.items()})


if __name__ == "__main__":
    run_stage(main)
