"""Atomic outputs (a stage either writes a complete file or leaves nothing behind for DVC to cache), byte-stable
archives (the same arrays give the same bytes, whenever they are written, so DVC's hashes and dvc.lock only change
when the content does), .npz files of per-variable arrays (theta, Fisher, path integrals), and the cheapest fix
for a missing or corrupt output."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
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


# Zip entries get this timestamp (the earliest a zip can hold) instead of the time of writing.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(path: str | os.PathLike, entries: dict[str, bytes], compression: dict[str, int] | None = None) -> None:
    """A zip archive of ``entries`` (name -> bytes, in order) whose bytes depend on nothing else: fixed
    timestamps and permissions; stored uncompressed unless ``compression`` gives an entry's method."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = (compression or {}).get(name, zipfile.ZIP_STORED)
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)


def restamp_zip(path: str | os.PathLike, edit: Callable[[str, bytes], bytes]) -> None:
    """Rewrite the zip at ``path`` in place through ``write_zip``, each entry compressed as it was and its content
    passed through ``edit(name, content)``."""
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: edit(info.filename, archive.read(info)) for info in archive.infolist()}
        compression = {info.filename: info.compress_type for info in archive.infolist()}
    write_zip(path, entries, compression)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` with stable bytes (``np.load`` reads it), written atomically."""
    entries = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
        entries[f"{name}.npy"] = buffer.getvalue()
    with atomic_output(path) as tmp:
        write_zip(tmp, entries)


def save_weight_sets(path: str | os.PathLike, **sets: dict[str, np.ndarray]) -> None:
    """One .npz holding ``<set>/<variable path>`` for every named set of per-variable arrays (atomically)."""
    keys = [sorted(weights) for weights in sets.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError(f"the sets {', '.join(sets)} cover different variables")
    save_npz(path, **{f"{name}/{k}": v for name, weights in sets.items() for k, v in weights.items()})


def load_weight_sets(path: str | os.PathLike, names: tuple[str, ...], what: str, stage: str) -> list[dict]:
    """The sets ``names`` from ``save_weight_sets``' file, which holds ``what`` (for messages) and is made by
    ``stage``; a missing, corrupt or inconsistent file (sets over different variables or shapes, or values that
    are not finite) is a ForgettingError naming the fix."""
    path = Path(path)

    def problem(what_is_wrong: str) -> ForgettingError:  # the fix is looked up only when something is wrong
        return ForgettingError(f"{what} file {path} {what_is_wrong}: {cheapest_fix(path, stage)}")

    if not path.is_file():
        raise problem("is missing")
    try:
        with np.load(path) as arrays:
            content = {key: arrays[key] for key in arrays.files}
    except Exception as exc:
        raise problem(f"is corrupt ({type(exc).__name__})") from exc
    sets = [{k.removeprefix(f"{n}/"): v for k, v in content.items() if k.startswith(f"{n}/")} for n in names]
    first = sets[0]
    consistent = all(s.keys() == first.keys() and all(s[k].shape == first[k].shape for k in first) for s in sets)
    if not first or not consistent:
        raise problem(f"does not hold matching {'/ and '.join(names)}/ arrays")
    if any(not np.all(np.isfinite(v)) for s in sets for v in s.values()):
        raise problem("holds non-finite values")
    return sets


def cheapest_fix(path: str | os.PathLike, stage: str) -> str:
    """What to run when ``path``, an output of ``stage``, is missing or corrupt: ``dvc checkout --force PATH``
    (under a second) when DVC's cache holds the version that dvc.lock records, else ``dvc repro --force
    --single-item STAGE`` (which reruns that stage alone)."""
    if _cached(Path(path), stage):
        return f"run `dvc checkout --force {Path(path).as_posix()}` (DVC's cache holds it)"
    return f"run `dvc repro --force --single-item {stage}`"


def _cached(path: Path, stage: str) -> bool:
    """Whether DVC's cache holds the content that dvc.lock records for output ``path`` of ``stage`` (all of it,
    for a folder)."""
    try:
        from dvc.repo import Repo

        with Repo() as repo:
            (target,) = [out for out in repo.stage.collect(stage)[0].outs if out.fs_path == str(path.resolve())]
            oid = target.hash_info.value
            cache = repo.cache.local
            if not oid or not cache.exists(oid):
                return False
            if not oid.endswith(".dir"):
                return True
            with open(cache.oid_to_path(oid)) as handle:
                return all(cache.exists(entry["md5"]) for entry in json.load(handle))
    except Exception:  # no DVC repo, no lock entry, an unreadable manifest: the fix is to rebuild
        return False
