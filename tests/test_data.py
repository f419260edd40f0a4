import time

import numpy as np
import pytest
from conftest import EVEN_ODD

from forgetting.data import mnist
from forgetting.data.scenarios import Scenario
from forgetting.errors import ForgettingError

DOMAIN = Scenario("domain", EVEN_ODD)


def test_make_split_scales_pixels_and_keeps_digits():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    split = mnist.make_split(images, np.array([7]))
    assert split.image.dtype == np.float32
    assert split.image.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(split.image[0, :, :, 0], [[0.0, 1.0], [0.2, 0.4]], rtol=1e-6)
    assert split.label.tolist() == [7]  # the digit, until a scenario relabels it
    assert split.digit.tolist() == [7]
    assert split.task.tolist() == [-1]


def test_tasks_hold_only_their_digits_and_lose_nothing(make_mnist):
    train, test = make_mnist(1000, seed=1), make_mnist(300, seed=2)
    a = mnist.build_task(train, test, [0, 2, 4, 6, 8], 0, 0.1, seed=3)
    b = mnist.build_task(train, test, [1, 3, 5, 7, 9], 1, 0.1, seed=3)
    for split in a.values():
        assert set(np.unique(split.digit)) <= {0, 2, 4, 6, 8}
    for split in b.values():
        assert set(np.unique(split.digit)) <= {1, 3, 5, 7, 9}
    # every train example lands in exactly one of A/B x train/validation, every test one in A or B test
    assert sum(len(t[s]) for t in (a, b) for s in ("train", "validation")) == len(train)
    assert len(a["test"]) + len(b["test"]) == len(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([a["test"].digit, b["test"].digit])), np.sort(test.digit))
    for index, task in enumerate((a, b)):
        for split in task.values():
            assert split.task.tolist() == [index] * len(split)
            np.testing.assert_array_equal(split.relabel(DOMAIN).label, split.digit // 2)


def test_train_per_digit_caps_only_the_train_split(make_mnist):
    train, test = make_mnist(1000, seed=1), make_mnist(300, seed=2)
    full = mnist.build_task(train, test, [0, 1], 0, 0.1, seed=3)
    small = mnist.build_task(train, test, [0, 1], 0, 0.1, seed=3, train_per_digit=20)
    assert [int((small["train"].digit == d).sum()) for d in (0, 1)] == [20, 20]
    assert {img.tobytes() for img in small["train"].image} <= {img.tobytes() for img in full["train"].image}
    for name in ("validation", "test"):
        np.testing.assert_array_equal(small[name].image, full[name].image)


def test_validation_is_stratified_and_seeded(make_mnist):
    train = make_mnist(1000, seed=1)
    rest, held = mnist.stratified_holdout(train, 0.2, seed=5)
    for digit in range(10):
        assert (held.digit == digit).sum() == round(0.2 * (train.digit == digit).sum())
    _, again = mnist.stratified_holdout(train, 0.2, seed=5)
    _, other = mnist.stratified_holdout(train, 0.2, seed=6)
    np.testing.assert_array_equal(held.image, again.image)
    assert not np.array_equal(held.image, other.image)
    # no example is in both parts
    assert len(rest) + len(held) == len(train)


def test_save_and_load_task_round_trip(make_mnist, tmp_path):
    task = mnist.build_task(make_mnist(200), make_mnist(50, seed=9), [1, 3, 5, 7, 9], 1, 0.25, seed=0)
    mnist.save_task(task, tmp_path / "task_b")
    assert sorted(p.name for p in (tmp_path / "task_b").iterdir()) == [
        "test.npz",
        "train.npz",
        "validation.npz",
    ]
    for name, split in task.items():
        loaded = mnist.load_split(tmp_path / "task_b", name, DOMAIN)
        np.testing.assert_array_equal(loaded.image, split.image)
        np.testing.assert_array_equal(loaded.label, split.digit // 2)  # labelled for the scenario on loading
        np.testing.assert_array_equal(loaded.digit, split.digit)
        np.testing.assert_array_equal(loaded.task, split.task)
    with pytest.raises(ForgettingError, match=r"prepared for other tasks than params\.yaml's: run `dvc repro prepare`"):
        mnist.load_split(tmp_path / "task_b", "train", Scenario("domain", ((1, 3, 5, 7, 9),)))


def test_save_task_leaves_nothing_when_writing_fails(make_mnist, tmp_path, monkeypatch):
    task = mnist.build_task(make_mnist(100), make_mnist(20, seed=9), [0, 2], 0, 0.25, seed=0)
    real_save, written = mnist.save_npz, []

    def save_then_fail(path, **arrays):
        if written:
            raise OSError("disk full")
        written.append(path)
        real_save(path, **arrays)

    monkeypatch.setattr(mnist, "save_npz", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        mnist.save_task(task, tmp_path / "task_a")
    assert written, "the first split was written before the failure"
    assert list(tmp_path.iterdir()) == []


def test_missing_split_file_names_the_fix(tmp_path):
    with pytest.raises(ForgettingError, match=r"train\.npz is missing: run `dvc repro --force --single-item prepare`"):
        mnist.load_split(tmp_path, "train", DOMAIN)


def test_corrupt_split_file_is_a_clear_error(tmp_path):
    (tmp_path / "test.npz").write_bytes(b"not a zip")
    with pytest.raises(ForgettingError, match="unreadable"):
        mnist.load_split(tmp_path, "test", DOMAIN)


def test_missing_mnist_offline_names_folder_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "_online", lambda timeout=3.0: False)
    (tmp_path / "mnist").mkdir()
    with pytest.raises(ForgettingError) as error:
        mnist.load_mnist(tmp_path / "mnist", tmp_path / "tfds")
    message = str(error.value)
    assert str(tmp_path / "mnist") in message
    assert "missing: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, " in message
    assert "data.manual_dir" in message
    assert "\n" not in message


def test_saved_splits_have_stable_bytes(make_mnist, tmp_path, monkeypatch):
    """The same data gives the same bytes whenever it is written (zip entries carry no time of writing)."""
    task = mnist.build_task(make_mnist(100), make_mnist(20, seed=9), [0, 2], 0, 0.25, seed=0)
    mnist.save_task(task, tmp_path / "first")
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # another day: zipfile stamps entries with it
    mnist.save_task(task, tmp_path / "second")
    for name in mnist.SPLITS:
        assert (tmp_path / "first" / f"{name}.npz").read_bytes() == (tmp_path / "second" / f"{name}.npz").read_bytes()
        with np.load(tmp_path / "second" / f"{name}.npz") as arrays:
            np.testing.assert_array_equal(arrays["image"], task[name].image)


def test_a_corrupt_mnist_file_is_named(tmp_path):
    """Checked on every run of prepare, before tfds (which would reuse its prepared copy and not notice)."""
    checksums = mnist.registered_checksums()
    assert checksums["train-labels-idx1-ubyte.gz"] == (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    )
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the original")
    with pytest.raises(ForgettingError) as error:
        mnist.load_mnist(manual, tmp_path / "tfds")
    message = str(error.value)
    assert message.startswith(f"MNIST file {manual / 't10k-labels-idx1-ubyte.gz'} is corrupt")
    assert "replace it with the original t10k-labels-idx1-ubyte.gz" in message
    assert not (tmp_path / "tfds").exists()


def test_the_train_counts_per_digit_are_mnists():
    """check_params knows how many examples of each digit a train split holds without reading the data: MNIST's
    counts, read here from the label file itself (idx1: an 8-byte header, then one byte per label)."""
    import gzip

    from test_pipeline_e2e import mnist_dir

    folder = mnist_dir()
    if folder is None:
        pytest.skip("MNIST files not found")
    labels = np.frombuffer(gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes())[8:], np.uint8)
    assert tuple(np.bincount(labels, minlength=10)) == mnist.TRAIN_PER_DIGIT
    assert mnist.train_examples(5, 0.1, "all") == 5421 - 542 and mnist.train_examples(5, 0.1, 30) == 30
