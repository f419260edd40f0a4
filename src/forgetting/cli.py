"""What every stage script shares: bad input becomes one clear line on stderr and exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from forgetting.errors import ForgettingError


def stage_name(argv: list[str]) -> str:
    """The dvc.yaml stage that ``argv`` runs: the script's name, ``@`` its first argument for a foreach stage
    (``stages/finetune.py ewc`` -> ``finetune@ewc``)."""
    name = Path(argv[0]).stem
    return f"{name}@{argv[1]}" if len(argv) > 1 else name


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a ForgettingError prints ``error: <stage>: <what, where, how to fix>`` and exits 1."""
    try:
        main()
    except ForgettingError as exc:
        print(f"error: {stage_name(sys.argv)}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
