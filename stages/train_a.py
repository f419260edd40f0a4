"""Stage train_a: train the MLP on task A -> models/task_a.keras."""

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    p = params.load("train_a")
    from forgetting import data, model, training  # after validation: TensorFlow is slow to import

    task_a = "data/prepared/task_a"
    net = training.train_new_model(
        p, data.load_split(task_a, "train"), data.load_split(task_a, "validation"), p["train"]["epochs_a"]
    )
    model.save_model(net, "models/task_a.keras")


if __name__ == "__main__":
    run_stage(main)
