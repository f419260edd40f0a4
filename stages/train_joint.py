"""Stage train_joint: train the MLP on all tasks at once (the upper bound), one repetition per seed, together ->
models/joint.keras, and test accuracy per epoch -> metrics/epochs/joint.csv (mean and 95% CI over repetitions)
and metrics/epochs/repetitions/joint.csv."""

from forgetting.config import params
from forgetting.files import atomic_output
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    p = params.load("train_joint")
    import_tensorflow()  # after validation: slow to import
    from forgetting.data import mnist
    from forgetting.data.scenarios import Scenario
    from forgetting.nn import model
    from forgetting.training import loop

    scenario = Scenario.from_params(p)

    def every_task(split: str) -> mnist.Split:
        return mnist.Split.concat(*mnist.load_tasks(split, scenario).values())

    with (
        atomic_output("metrics/epochs/joint.csv") as csv_path,
        atomic_output("metrics/epochs/repetitions/joint.csv") as repetitions_path,
    ):
        tests = mnist.load_tasks("test", scenario)
        log = loop.TaskAccuracyLog(tests, scenario, csv_path, repetitions_path, task="joint")
        net, _ = loop.train_new_model(
            p,
            scenario,
            every_task("train"),
            every_task("validation"),
            *loop.schedule(p, "joint"),
            callbacks=[log],
            what="every task at once",
            task=None,
        )
        model.save_model(net, "models/joint.keras")


if __name__ == "__main__":
    run_stage(main)
