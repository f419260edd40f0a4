"""Atomic outputs (a stage either writes a complete file or leaves nothing behind for DVC to cache), and .npz
files of per-variable arrays (theta, Fisher, path integrals)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from forgetting.errors import ForgettingError


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


def save_weight_sets(path: str | os.PathLike, **sets: dict[str, np.ndarray]) -> None:
    """One .npz holding ``<set>/<variable path>`` for every named set of per-variable arrays (atomically)."""
    keys = [sorted(weights) for weights in sets.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError(f"the sets {', '.join(sets)} cover different variables")
    arrays = {f"{name}/{k}": v for name, weights in sets.items() for k, v in weights.items()}
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_weight_sets(path: str | os.PathLike, names: tuple[str, ...], what: str, stage: str) -> list[dict]:
    """The sets ``names`` from ``save_weight_sets``' file, which holds ``what`` (for messages) and is made by
    ``stage``; a missing, corrupt or inconsistent file (sets over different variables or shapes, or values that
    are not finite) is a ForgettingError naming the fix."""
    path = Path(path)
    fix = f"run `dvc repro --force {stage}`"
    if not path.is_file():
        raise ForgettingError(f"{what} file {path} is missing: run `dvc repro {stage}`")
    try:
        with np.load(path) as arrays:
            content = {key: arrays[key] for key in arrays.files}
    except Exception as exc:
        raise ForgettingError(f"{what} file {path} is corrupt ({type(exc).__name__}): {fix}") from exc
    sets = [{k.removeprefix(f"{n}/"): v for k, v in content.items() if k.startswith(f"{n}/")} for n in names]
    first = sets[0]
    consistent = all(s.keys() == first.keys() and all(s[k].shape == first[k].shape for k in first) for s in sets)
    if not first or not consistent:
        raise ForgettingError(f"{what} file {path} does not hold matching {'/ and '.join(names)}/ arrays: {fix}")
    if any(not np.all(np.isfinite(v)) for s in sets for v in s.values()):
        raise ForgettingError(f"{what} file {path} holds non-finite values: {fix}")
    return sets
