"""Split, permuted and rotated MNIST: task datasets built from tensorflow-datasets' MNIST.

Pixels are scaled to [0, 1] (float32). A task is a set of digits (``tasks`` in params.yaml); each task has train,
validation and test splits, the validation split being a seeded, stratified (per digit) part of MNIST's train
split. ``task_inputs`` says what else sets a task apart: nothing (``digits``: split MNIST), a fixed pixel
permutation per task (``permuted``: task t's is drawn from (seed, t), task 0 keeps MNIST's own order; Goodfellow et
al. 2013, Kirkpatrick et al. 2017), or a rotation (``rotated``: task t turned by t x ``degrees_per_task`` degrees).
The files keep each example's digit and task index; its label depends on the scenario and is set when a split is
loaded (``forgetting.data.scenarios``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forgetting.errors import ForgettingError
from forgetting.files import atomic_output, cheapest_fix, save_npz

if TYPE_CHECKING:
    from forgetting.data.scenarios import Scenario

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SPLITS = ("train", "validation", "test")
# Examples of each digit 0-9 in MNIST's train split (60,000 in all), before the validation hold-out.
TRAIN_PER_DIGIT = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
PREPARED = "data/prepared"  # prepare's output: one folder per task
_DOWNLOAD_HOST = "storage.googleapis.com"


@dataclass(frozen=True)
class Split:
    """Images (N, 28, 28, 1) float32 in [0, 1], labels (N,) int64, digits (N,) uint8, task indices (N,) int32.
    (A strategy's training data, which only ``TrainingSet`` reads, may hold the images' uint8 pixels instead:
    ``as_uint8``.)"""

    image: np.ndarray
    label: np.ndarray
    digit: np.ndarray
    task: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.image[index], self.label[index], self.digit[index], self.task[index])

    @staticmethod
    def concat(*splits: Split) -> Split:
        return Split(*(np.concatenate(parts) for parts in zip(*(_fields(s) for s in splits), strict=True)))

    def inputs(self) -> dict[str, np.ndarray]:
        """What the training model takes: the images and, for the task scenario's heads, the task indices."""
        return {"image": self.image, "task": self.task}

    def relabel(self, scenario: Scenario) -> Split:
        return Split(self.image, scenario.labels(self.digit, self.task), self.digit, self.task)


def _fields(split: Split) -> tuple[np.ndarray, ...]:
    return split.image, split.label, split.digit, split.task


def make_split(images: np.ndarray, digits: np.ndarray, task: int = -1) -> Split:
    """Scale uint8 images to [0, 1] float32; the label is the digit until a scenario relabels it."""
    image = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    if image.ndim == 3:
        image = image[..., None]
    digit = np.asarray(digits).astype(np.uint8)
    return Split(image, digit.astype(np.int64), digit, np.full(len(digit), task, np.int32))


def as_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] images (multiples of 1/255, as ``make_split`` makes them) back to their uint8 pixels, exactly: a
    quarter of the memory, and ``uint8 / 255`` in float32 gives back the same floats. uint8 images are returned as
    they are."""
    if images.dtype == np.uint8:
        return images
    return np.rint(np.asarray(images, np.float32) * np.float32(255.0)).astype(np.uint8)


def select_digits(split: Split, digits: list[int]) -> Split:
    """The examples of ``split`` whose digit is in ``digits``."""
    return split.subset(np.isin(split.digit, digits))


def stratified_holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split into (rest, holdout): per digit, a seeded random ``fraction`` goes to the holdout."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(split), dtype=bool)
    for digit in np.unique(split.digit):
        members = np.flatnonzero(split.digit == digit)
        count = round(fraction * len(members))
        held[rng.choice(members, size=count, replace=False)] = True
    return split.subset(np.flatnonzero(~held)), split.subset(np.flatnonzero(held))


def build_task(
    train: Split,
    test: Split,
    digits: list[int],
    task: int,
    fraction: float,
    seed: int,
    train_per_digit: int | None = None,
) -> dict[str, Split]:
    """Task number ``task``'s train / validation / test splits from MNIST's train and test splits; with
    ``train_per_digit``, the train split keeps only that many seeded examples of each digit (for quick runs)."""
    rest, validation = stratified_holdout(select_digits(train, digits), fraction, seed)
    if train_per_digit is not None:
        rng = np.random.default_rng(seed)
        keep = [rng.permutation(np.flatnonzero(rest.digit == d))[:train_per_digit] for d in np.unique(rest.digit)]
        rest = rest.subset(np.sort(np.concatenate(keep)))
    splits = {"train": rest, "validation": validation, "test": select_digits(test, digits)}
    return {name: replace(split, task=np.full(len(split), task, np.int32)) for name, split in splits.items()}


def train_examples(digit: int, validation_fraction: float, train_per_digit: int | str) -> int:
    """How many examples of ``digit`` a task's train split holds (``build_task``): MNIST's, less the validation
    hold-out, capped at ``train_per_digit`` (params.yaml's ``data.train_per_digit``: an integer, or all)."""
    rest = TRAIN_PER_DIGIT[digit] - round(validation_fraction * TRAIN_PER_DIGIT[digit])
    return rest if train_per_digit == "all" else min(rest, train_per_digit)


def pixel_order(seed: int, task: int, pixels: int = 28 * 28) -> np.ndarray:
    """Permuted MNIST's order of the pixels of task ``task``: the identity for task 0, else a permutation drawn
    from (``seed``, ``task``); the same for every repetition."""
    return np.arange(pixels) if task == 0 else np.random.default_rng([seed, task]).permutation(pixels)


def permuted(split: Split, order: np.ndarray) -> Split:
    """``split`` with each image's pixels (flattened, row by row) taken in ``order``."""
    flat = split.image.reshape(len(split), -1)
    return replace(split, image=flat[:, order].reshape(split.image.shape))


def rotated(split: Split, degrees: float) -> Split:
    """``split`` with each image turned by ``degrees`` (counter-clockwise) about its centre: bilinear, zeros shifted
    in, computed on the uint8 pixels and rounded back to them, so the images stay multiples of 1/255. 0 degrees
    gives the images back unchanged."""
    if degrees % 360 == 0:
        return split
    from scipy import ndimage

    pixels = np.rint(split.image * np.float32(255.0))
    turned = ndimage.rotate(pixels, degrees, axes=(2, 1), reshape=False, order=1, mode="constant", cval=0.0)
    image = np.clip(np.rint(turned), 0, 255).astype(np.float32) / np.float32(255.0)
    return replace(split, image=image)


def show(splits: dict[str, Split], task: int, inputs: dict, seed: int) -> dict[str, Split]:
    """Task number ``task``'s splits as params.yaml's ``task_inputs`` shows them (permuted, rotated, or as they
    are)."""
    if inputs["kind"] == "permuted":
        order = pixel_order(seed, task)
        return {name: permuted(split, order) for name, split in splits.items()}
    if inputs["kind"] == "rotated":
        return {name: rotated(split, task * inputs["degrees_per_task"]) for name, split in splits.items()}
    return splits


def load_mnist(manual_dir: str | Path, tfds_dir: str | Path) -> tuple[Split, Split]:
    """MNIST's train and test splits through tensorflow-datasets.

    tfds builds the dataset from the four original .gz files in ``manual_dir`` and keeps the prepared copy in
    ``tfds_dir`` (``~`` expands to the home folder; the defaults are tfds' own folders). The files are checked
    against tfds' registered checksums on every call, so a corrupt or replaced file stops ``prepare`` with its
    name even when tfds would reuse its prepared copy; with the files absent, tfds downloads them, if it can.
    """
    manual_dir, tfds_dir = Path(manual_dir).expanduser(), Path(tfds_dir).expanduser()
    check_mnist(manual_dir, tfds_dir)
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    try:
        with _quiet():
            train, test = tfds.as_numpy(
                tfds.load(
                    "mnist",
                    split=["train", "test"],
                    batch_size=-1,
                    as_supervised=True,
                    data_dir=str(tfds_dir),
                    download_and_prepare_kwargs={"download_config": config},
                )
            )
    except Exception as exc:  # tfds raises many types: checksum, network, corrupt archives
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ForgettingError(
            f"tensorflow-datasets could not build MNIST from {manual_dir}/ ({type(exc).__name__}: {first}); "
            f"put the original files {', '.join(MNIST_FILES)} there and delete {tfds_dir}/mnist"
        ) from exc
    print(f"MNIST: {len(train[1])} train and {len(test[1])} test images (tensorflow-datasets, {tfds_dir})")
    return make_split(*train), make_split(*test)


def check_mnist(manual_dir: str | Path, tfds_dir: str | Path) -> None:
    """A ForgettingError, in seconds and without TensorFlow, where ``load_mnist`` could not get MNIST: a file in
    ``manual_dir`` that is not the original, or files missing with neither tfds' prepared copy in ``tfds_dir`` nor
    the internet to download them."""
    manual_dir, tfds_dir = Path(manual_dir).expanduser(), Path(tfds_dir).expanduser()
    _check_files(manual_dir, registered_checksums())
    missing = [name for name in MNIST_FILES if not (manual_dir / name).is_file()]
    if missing and not _prepared(tfds_dir) and not _online():
        raise ForgettingError(
            f"MNIST is not in {manual_dir}/ (missing: {', '.join(missing)}) and there is no internet "
            f"to download it: copy the four files {', '.join(MNIST_FILES)} there, "
            "or point params.yaml data.manual_dir at the folder that holds them"
        )


def registered_checksums() -> dict[str, str]:
    """File name -> sha256 of the original MNIST files, as tensorflow-datasets registers them (read from its
    package without importing it, which would import TensorFlow)."""
    (root,) = importlib.util.find_spec("tensorflow_datasets").submodule_search_locations
    rows = (line.split("\t") for line in (Path(root) / "url_checksums/mnist.txt").read_text().splitlines() if line)
    return {Path(url).name: sha256 for url, _size, sha256, *_ in rows}


def _check_files(manual_dir: Path, checksums: dict[str, str]) -> None:
    """A ForgettingError naming the first MNIST file in ``manual_dir`` that is not the original."""
    for name in MNIST_FILES:
        path = manual_dir / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != checksums[name]:
            raise ForgettingError(
                f"MNIST file {path} is corrupt (its sha256 is not the original's): replace it with the original "
                f"{name} (or delete it: tfds then reuses its prepared copy, or downloads it if it can)"
            )


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence what tfds prints while it builds MNIST offline: "Downloading ... Unknown size" and its absl
    warnings, which read as a download or a failure (its progress bars are off)."""
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        absl_logging.set_verbosity(verbosity)


def _prepared(tfds_dir: Path) -> bool:
    return any(tfds_dir.glob("mnist/*/dataset_info.json"))


def _online(timeout: float = 3.0) -> bool:
    """Whether tfds' download host answers: the fast way to know a download cannot work (tfds itself retries
    for minutes before giving up)."""
    try:
        socket.create_connection((_DOWNLOAD_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def save_task(task: dict[str, Split], directory: str | Path) -> None:
    """Write a task as ``directory/{train,validation,test}.npz`` (atomically: all splits or none)."""
    with atomic_output(directory) as tmp:
        tmp.mkdir()
        for name, split in task.items():
            save_npz(tmp / f"{name}.npz", image=split.image, digit=split.digit, task=split.task)


def load_split(directory: str | Path, name: str, scenario: Scenario) -> Split:
    """One split of a task written by ``save_task``, labelled for ``scenario``."""
    path = Path(directory) / f"{name}.npz"
    prepared = Path(directory).parent  # prepare's output, one folder per task
    if not path.is_file():
        raise ForgettingError(f"{path} is missing: {cheapest_fix(prepared, 'prepare')}")
    try:
        with np.load(path) as arrays:
            image, digit, task = arrays["image"], arrays["digit"], arrays["task"]
    except Exception as exc:
        problem = f"{path} is unreadable ({type(exc).__name__})"
        raise ForgettingError(f"{problem}: {cheapest_fix(prepared, 'prepare')}") from exc
    if len(task) and not 0 <= task.min() <= task.max() < len(scenario.tasks):
        raise ForgettingError(f"{path} was prepared for other tasks than params.yaml's: run `dvc repro prepare`")
    return Split(image, scenario.labels(digit, task), digit, task)


def load_task(name: str, split: str, scenario: Scenario, root: str | Path = PREPARED) -> Split:
    """Split ``split`` of the task called ``name`` (``task_a``, ...) from the prepared data."""
    return load_split(Path(root) / name, split, scenario)


def load_tasks(split: str, scenario: Scenario, root: str | Path = PREPARED) -> dict[str, Split]:
    """Split ``split`` of every task of the scenario, by task name, in order."""
    return {name: load_task(name, split, scenario, root) for name in scenario.names}
