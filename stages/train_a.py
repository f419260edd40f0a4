"""Stage train_a: train the MLP on task A -> models/task_a.keras."""

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    p = params.load("train_a")
    from forgetting import data, model, training  # after validation: TensorFlow is slow to import

    training.seed_everything(p["seed"])
    net = model.build_mlp(p["model"]["hidden_units"], p["model"]["dropout"])
    training.fit(
        net,
        data.load_split("data/prepared/task_a", "train"),
        data.load_split("data/prepared/task_a", "validation"),
        epochs=p["train"]["epochs_a"],
        batch_size=p["train"]["batch_size"],
        learning_rate=p["train"]["learning_rate"],
    )
    model.save_model(net, "models/task_a.keras")


if __name__ == "__main__":
    run_stage(main)
