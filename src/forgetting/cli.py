"""What every stage script shares: bad input becomes one clear line on stderr and exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from forgetting.errors import ForgettingError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a ForgettingError prints ``error: <what, where, how to fix>`` and exits 1."""
    try:
        main()
    except ForgettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
