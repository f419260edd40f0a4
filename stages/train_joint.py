"""Stage train_joint: train the MLP on tasks A and B at once (the upper bound) -> models/joint.keras."""

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    p = params.load("train_joint")
    from forgetting import data, model, training  # after validation: TensorFlow is slow to import

    def both(split: str) -> data.Split:
        return data.Split.concat(*(data.load_split(f"data/prepared/{task}", split) for task in ("task_a", "task_b")))

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
