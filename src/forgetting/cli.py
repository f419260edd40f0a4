"""The ``forgetting`` console command: ``forgetting diff`` compares two strategies' metrics with paired confidence
intervals, ``forgetting tune`` chooses a setting's hyperparameters on validation with Ray Tune, ``forgetting exp``
runs a setting with its tuned values as a DVC experiment, ``forgetting restore`` goes back to the last commit's
results after a failed run."""

from __future__ import annotations

import argparse
import functools
import os
import sys

from forgetting.errors import ForgettingError


class OneLineParser(argparse.ArgumentParser):
    """A bad option or value is one line, ``error: forgetting diff: ...``, and exit status 2 (argparse's)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


HELP_WIDTH = 120  # each command's help: its module's docstring as written (120 columns, its lines as they are), the
# options wrapped to the same width whatever the terminal's (argparse's default: the terminal's, or 80 off one)


def main(argv: list[str] | None = None) -> int:
    from forgetting import restore
    from forgetting.reporting import diff
    from forgetting.tuning import experiment, tune

    summary = "Compare models (diff), tune a setting (tune), run it tuned (exp), go back after a failed run (restore)."
    parser = OneLineParser(prog="forgetting", description=summary)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for module in (diff, tune, experiment, restore):
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        sub.formatter_class = functools.partial(argparse.RawDescriptionHelpFormatter, width=HELP_WIDTH)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "targets"):  # stages after an option (`exp SETTING --queue evaluate@ewc`): argparse stops at it
        args.targets += [word for word in extra if not word.startswith("-")]
        extra = [word for word in extra if word.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args) or 0
    except ForgettingError as exc:
        print(f"error: forgetting {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: forgetting {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`forgetting diff ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush stays quiet
        return 0


def main_exit() -> None:
    """The console script's entry point (pyproject.toml)."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
