"""Atomic outputs: a stage either writes a complete file or leaves nothing behind for DVC to cache."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix) and move it into place only on success.

    Works for files and directories. On any exception the temporary is removed and ``path`` is left absent
    (a stale ``path`` from an earlier run is removed too, so a failed stage never looks finished).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        _remove(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        _remove(path)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
