"""Stage report: report/README.md and report/figures/, the results of the setting in params.yaml as a page that a
git host shows (every model's metrics, the paired differences between strategies, where the hyperparameters were
chosen), with its figures (forgetting.reporting.figures). Reads the evaluate stages' metrics/ and
tuning/<setting>.yaml."""

from forgetting.config import params
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    p = params.load("report")
    import_tensorflow()  # after validation: slow to import (the strategies' memory costs import it)
    from forgetting.reporting import report

    report.make(p)
    print("report/README.md and report/figures/ written")


if __name__ == "__main__":
    run_stage(main)
