"""Stage train_a: train the MLP on task A (the first task), one repetition per seed, together -> models/task_a.keras,
SI's path integral over that training -> models/task_a_path_integral.npz, Adam's state at its end (what
finetune.carry_optimizer goes on from) -> models/task_a_optimizer.npz, and test accuracy per epoch ->
metrics/epochs/task_a.csv (mean and 95% CI over repetitions) and metrics/epochs/repetitions/task_a.csv."""

from forgetting.config import params
from forgetting.files import atomic_output
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    p = params.load("train_a")
    import_tensorflow()  # after validation: slow to import
    from forgetting.data import mnist
    from forgetting.data.scenarios import Scenario
    from forgetting.nn import model
    from forgetting.training import loop

    scenario = Scenario.from_params(p)
    with (
        atomic_output("metrics/epochs/task_a.csv") as csv_path,
        atomic_output("metrics/epochs/repetitions/task_a.csv") as repetitions_path,
    ):
        tests = mnist.load_tasks("test", scenario)
        log = loop.TaskAccuracyLog(tests, scenario, csv_path, repetitions_path, task="task_a")
        net, path_integral = loop.train_new_model(
            p,
            scenario,
            mnist.load_task("task_a", "train", scenario),
            mnist.load_task("task_a", "validation", scenario),
            *loop.schedule(p, "a"),
            callbacks=[log],
            path_integral=True,
            optimizer_path="models/task_a_optimizer.npz",
        )
        path_integral.save("models/task_a_path_integral.npz")
        model.save_model(net, "models/task_a.keras")


if __name__ == "__main__":
    run_stage(main)
