"""Stage train_joint: train the MLP on tasks A and B at once (the upper bound) -> models/joint.keras."""

from forgetting import data, model, params, training
from forgetting.cli import run_stage


def both(split: str) -> data.Split:
    return data.Split.concat(
        data.load_split("data/prepared/task_a", split), data.load_split("data/prepared/task_b", split)
    )


def main() -> None:
    p = params.load("train_joint")
    training.seed_everything(p["seed"])
    net = model.build_mlp(p["model"]["hidden_units"], p["model"]["dropout"])
    training.fit(
        net,
        both("train"),
        both("validation"),
        epochs=p["train"]["epochs_joint"],
        batch_size=p["train"]["batch_size"],
        learning_rate=p["train"]["learning_rate"],
    )
    model.save_model(net, "models/joint.keras")


if __name__ == "__main__":
    run_stage(main)
