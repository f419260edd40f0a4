"""Stage fisher: theta_A and the diagonal Fisher of task A at theta_A, for every repetition -> models/fisher.npz."""

import time

from forgetting.config import params
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    p = params.load("fisher")
    import_tensorflow()  # after validation: slow to import
    from forgetting.data import mnist
    from forgetting.data.scenarios import Scenario
    from forgetting.nn import fisher, model
    from forgetting.training import loop

    loop.seed_everything(p["seed"])
    scenario = Scenario.from_params(p)
    net = model.load_model("models/task_a.keras", stage="train_a")
    start = time.perf_counter()
    diagonal = fisher.task_fisher(
        net, mnist.load_task("task_a", "train", scenario), scenario.columns(0), p["fisher"], net.seeds
    )
    print(
        f"{p['fisher']['estimator']} Fisher of task A ({p['fisher']['num_examples']} examples) in "
        f"{time.perf_counter() - start:.2f} s for {net.repetitions} repetitions; mean F per variable: "
        + ", ".join(f"{k} {v.mean():.3g}" for k, v in diagonal.items())
    )
    fisher.save_fisher("models/fisher.npz", model.weights_by_path(net), diagonal)


if __name__ == "__main__":
    run_stage(main)
