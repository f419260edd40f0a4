"""Stage train_joint: train the MLP on tasks A and B at once (the upper bound) -> models/joint.keras."""

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    p = params.load("train_joint")
    from forgetting import data, model, training  # after validation: TensorFlow is slow to import

    def both(split: str) -> data.Split:
        return data.Split.concat(*(data.load_split(f"data/prepared/{task}", split) for task in ("task_a", "task_b")))

    net = training.train_new_model(p, both("train"), both("validation"), p["train"]["epochs_joint"])
    model.save_model(net, "models/joint.keras")


if __name__ == "__main__":
    run_stage(main)
