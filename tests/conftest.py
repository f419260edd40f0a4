"""Shared fixtures: small synthetic data and a tiny model, so unit tests stay fast."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forgetting.data.mnist import Split, make_split, select_digits
from forgetting.data.scenarios import Scenario
from forgetting.nn.model import build_network

EVEN_ODD = ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9))
FIVE_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


ROOT = Path(__file__).resolve().parents[1]
PARAMS_NOTE = (
    "params.yaml differs from HEAD's (an experiment's values?), and the tests read the workspace's: run them at the "
    "committed values (`forgetting restore`; `dvc exp apply NAME` brings an experiment back)"
)


def params_differ_from_head(root: Path = ROOT) -> bool:
    """Whether ``root``'s params.yaml holds other bytes than HEAD's (compared by content: after `dvc exp run -S`, git's
    index may take the rewritten file for unchanged); False outside a git checkout."""
    done = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=root, capture_output=True)
    return done.returncode == 0 and done.stdout != (root / "params.yaml").read_bytes()


def pytest_report_header() -> list[str]:
    return [PARAMS_NOTE] if params_differ_from_head() else []


def pytest_terminal_summary(terminalreporter, exitstatus) -> None:
    """Failures at an experiment's params.yaml (a smaller train_per_digit fails the params tests' expectations) end
    with the reason, where it applies."""
    if exitstatus != 0 and params_differ_from_head():
        terminalreporter.write_line(PARAMS_NOTE, yellow=True)


def pytest_collection_modifyitems(items) -> None:
    """The longest work first, so that pytest's two workers finish close together: the end-to-end runs (minutes
    each, in file order: the default pipeline's first; xdist queues the third behind it, so a short one is third),
    then the modules whose tests one worker runs together (``xdist_group``: minutes as one unit, which started last
    would leave the other worker idle), then the rest."""

    def order(item) -> tuple[bool, bool]:
        e2e = item.get_closest_marker("e2e") is not None
        return not e2e, not e2e and item.get_closest_marker("xdist_group") is None

    items.sort(key=order)


def run_in(folder: Path, call: Callable[[], Any]) -> tuple[Any, str, str]:
    """``call()`` with ``folder`` as the working directory, in this process (CI's time: a process of its own spends
    about 3 s importing TensorFlow): what it returned (SystemExit's code where it exits), its stdout and its stderr."""
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = call()
    except SystemExit as exc:
        result = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(cwd)
    return result, out.getvalue(), err.getvalue()


def synthetic_mnist(count: int, seed: int = 0) -> Split:
    """Random 28x28 uint8 'images' whose digit is encoded in a bright block, so a model can learn them."""
    rng = np.random.default_rng(seed)
    digits = np.arange(count) % 10
    rng.shuffle(digits)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for n, d in enumerate(digits):
        images[n, 2 * d : 2 * d + 4, 4:24] = 255
    return make_split(images, digits)


def split_into_tasks(split: Split, scenario: Scenario) -> list[Split]:
    """``split``'s examples of each of the scenario's tasks, with their task index and the scenario's labels."""
    tasks = []
    for t, digits in enumerate(scenario.tasks):
        part = select_digits(split, list(digits))
        tasks.append(Split(part.image, part.label, part.digit, np.full(len(part), t, np.int32)).relabel(scenario))
    return tasks


def conflicting_tasks(count: int) -> tuple[Split, Split]:
    """Task A: a bright row block at position c means class c. Task B: the same blocks plus a marker strip,
    and block c means class (c + 1) % 5. A network can learn both (the marker tells them apart), but fitting B
    alone overwrites A: a small setting with real forgetting."""
    rng = np.random.default_rng(0)
    images = rng.random((2 * count, 28, 28, 1), dtype=np.float32) * 0.2
    classes = np.arange(2 * count) % 5
    for n, c in enumerate(classes):
        images[n, 5 * c : 5 * c + 4, 2:20] = 1.0
    images[count:, :, 24:27] = 1.0
    labels = np.concatenate([classes[:count], (classes[count:] + 1) % 5])
    digits = np.concatenate([2 * classes[:count], 2 * classes[count:] + 1]).astype(np.uint8)
    task = np.repeat(np.array([0, 1], np.int32), count)
    return (
        Split(images[:count], labels[:count], digits[:count], task[:count]),
        Split(images[count:], labels[count:], digits[count:], task[count:]),
    )


@pytest.fixture
def make_mnist():
    """The ``synthetic_mnist(count, seed)`` factory, for tests that need several sets."""
    return synthetic_mnist


@pytest.fixture
def mnist_like() -> Split:
    """400 synthetic examples labelled as in the two-task domain scenario (label = digit // 2, task = parity)."""
    split = synthetic_mnist(400)
    task = (split.digit % 2).astype(np.int32)
    return Split(split.image, split.label, split.digit, task).relabel(Scenario("domain", EVEN_ODD))


@pytest.fixture
def tiny_model():
    """Two repetitions (seeds 7 and 8) of a 784-8-5 MLP with dropout."""
    return build_network(5, hidden_units=8, dropout=0.5, seeds=(7, 8))
