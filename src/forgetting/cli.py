"""The ``forgetting`` console command: ``forgetting diff`` compares two strategies' metrics with paired confidence
intervals, ``forgetting tune`` chooses a setting's hyperparameters on validation with Ray Tune, ``forgetting exp``
runs a setting with its tuned values as a DVC experiment."""

from __future__ import annotations

import argparse
import sys

from forgetting.errors import ForgettingError


def main(argv: list[str] | None = None) -> int:
    from forgetting.reporting import diff
    from forgetting.tuning import experiment, tune

    parser = argparse.ArgumentParser(prog="forgetting", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (diff, tune, experiment):
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except ForgettingError as exc:
        print(f"error: forgetting {args.command}: {exc}", file=sys.stderr)
        return 1


def main_exit() -> None:
    """The console script's entry point (pyproject.toml)."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
