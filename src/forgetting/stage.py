"""What every stage script shares: bad input becomes one clear line on stderr and exit status 1."""

from __future__ import annotations

import os
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


def import_tensorflow() -> None:
    """Import TensorFlow and Keras with the process's stderr (file descriptor 2) pointed at /dev/null meanwhile.

    TensorFlow's C++ runtime prints start-up lines ("All log messages before absl::InitializeLog()", oneDNN and
    CUDA-driver notices) before its logging is configured, so no environment setting hides them; they would
    appear, twice, in every stage of every run. An import that fails still raises, and its traceback prints after
    stderr is back.
    """
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(null, 2)
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
