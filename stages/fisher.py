"""Stage fisher: theta_A and the diagonal Fisher of task A at theta_A -> models/fisher.npz."""

import time

import numpy as np

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    p = params.load("fisher")
    from forgetting import data, fisher, model, training  # after validation: TensorFlow is slow to import

    training.seed_everything(p["seed"])
    net = model.load_model("models/task_a.keras", stage="train_a")
    train = data.load_split("data/prepared/task_a", "train")
    count = p["fisher"]["num_examples"]
    if count != "all" and count < len(train):
        train = train.subset(np.sort(np.random.default_rng(p["seed"]).permutation(len(train))[:count]))
    start = time.perf_counter()
    diagonal = fisher.fisher_diagonal(net, train.image, train.label, p["fisher"]["estimator"], p["seed"])
    print(
        f"{p['fisher']['estimator']} Fisher over {len(train)} task-A examples in "
        f"{time.perf_counter() - start:.2f} s; mean F per variable: "
        + ", ".join(f"{k} {v.mean():.3g}" for k, v in diagonal.items())
    )
    fisher.save_fisher("models/fisher.npz", model.weights_by_path(net), diagonal)


if __name__ == "__main__":
    run_stage(main)
