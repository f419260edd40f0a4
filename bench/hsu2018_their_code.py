"""Hsu et al.'s own code run here: GT-RIPL/Continual-Learning-Benchmark's iBatchLearn.py, one run a seed, for the
cells of Table 2 that ours does not reproduce (a slow reference, outside the pipeline: it needs PyTorch and quadprog,
which the project does not depend on).

    git clone https://github.com/GT-RIPL/Continual-Learning-Benchmark their && git -C their checkout 3b273f0
    python -m venv torch-env && torch-env/bin/pip install torch quadprog numpy
    torch-env/bin/python bench/hsu2018_their_code.py their --seeds 1-10 --jobs 2 \
        --out report/settings/runs/hsu2018-sgd/class-diagnostics/their-code/gem.json -- \
        --incremental_class --optimizer SGD --force_out_dim 10 --no_class_remap --first_split_size 2 \
        --other_split_size 2 --schedule 4 --batch_size 128 --model_name MLP400 \
        --agent_type customization --agent_name GEM_1100 --lr 0.01 --reg_coef 0.5

(the GEM line of their scripts/split_MNIST_incremental_class.sh, which Table 2's class GEM cell comes from).
Their code as it is at the checkout, but for two things that keep it from running here, neither changing a number:
- their ``agents/exp_replay.py`` from dff5200, where GEM came in, to 1d7caa6 (3b273f0 among them) has GEM's
  docstring at the class's own indentation, an IndentationError in every Python; it is indented before import
  (ae86cec, 2019-01-28, fixed it the same way);
- their MNIST loader downloads through torchvision; this one reads the four MNIST files from ``--mnist`` and makes the
  same tensors as their ``dataloaders/base.py``: Pad(2) with zeros, ToTensor (pixels / 255), Normalize(0.1, 0.2752).
Each run seeds torch, numpy and random with its seed (theirs seed nothing: each of their runs draws its own), runs on
the CPU (``--gpuid -1``; PyTorch's CPU build is enough) with one thread and no loader workers for the tasks' data
(``--workers 0``; their GEM's memory loader keeps its 2, which read the memory in order), and prints its final average
accuracy over the tasks (their Table 2's figure) and each task's; the last line is the mean ± sd (numpy's, ddof 0, as
their script prints).
``--out`` keeps every run (its seed, average and each task's accuracy), the commit, the arguments and the versions of
PyTorch, quadprog and NumPy, as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib.metadata
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

MNIST_PREFIXES, MNIST_KINDS = ("train", "t10k"), ("images-idx3", "labels-idx1")  # the four files, as MNIST names them


def mnist_file(raw: Path, prefix: str, kind: str) -> Path:
    """One of the four MNIST files in ``raw``: ``prefix`` of ``MNIST_PREFIXES``, ``kind`` of ``MNIST_KINDS``."""
    return raw / f"{prefix}-{kind}-ubyte.gz"


def their_mnist(raw: Path):
    """Their ``dataloaders.base.MNIST`` without torchvision: (train, test), each a ``CacheClassLabel``."""
    import torch
    from dataloaders.wrapper import CacheClassLabel

    class Mnist(torch.utils.data.Dataset):
        def __init__(self, prefix: str) -> None:
            def read(kind: str, offset: int) -> np.ndarray:
                with gzip.open(mnist_file(raw, prefix, kind)) as f:
                    return np.frombuffer(f.read(), np.uint8, offset=offset)

            images = read("images-idx3", 16).reshape(-1, 28, 28)
            self.labels = torch.from_numpy(read("labels-idx1", 8).astype(np.int64))
            pixels = torch.from_numpy(np.pad(images, ((0, 0), (2, 2), (2, 2)))).float().div(255)[:, None]
            self.images = pixels.sub(0.1).div(0.2752)

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, index: int):
            return self.images[index], int(self.labels[index])

    def mnist(dataroot: str, train_aug: bool = False):
        if train_aug:
            raise SystemExit("their_code: --train_aug is not supported here")
        train, test = (Mnist(prefix) for prefix in MNIST_PREFIXES)
        return CacheClassLabel(train, 10, train.labels), CacheClassLabel(test, 10, test.labels)

    return mnist


def indent_gem_docstring(source: str) -> str:
    """Their agents/exp_replay.py with GEM's docstring indented into its class where it sits at column 0 (an
    IndentationError), as ae86cec did; else as it is."""
    head = "class GEM(Naive_Rehearsal):\n"
    if head + '"""' not in source:
        return source
    start = source.index(head) + len(head)
    end = source.index('"""\n', start + 3) + 4
    block = "".join("    " + line if line.strip() else line for line in source[start:end].splitlines(True))
    return source[:start] + block + source[end:]


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """This script's arguments and, after ``--``, iBatchLearn.py's."""
    split = argv.index("--") if "--" in argv else len(argv)
    return argv[:split], argv[split + 1 :]


def seed_range(text: str) -> list[int]:
    """The seeds of ``--seeds`` FIRST-LAST (or one seed)."""
    first, _, last = text.partition("-")
    try:
        seeds = list(range(int(first), int(last or first) + 1))
    except ValueError:
        seeds = []
    if not seeds:
        raise SystemExit(f"hsu2018_their_code: --seeds {text} is not FIRST-LAST with FIRST <= LAST; e.g. --seeds 1-10")
    return seeds


def load_their_code(checkout: Path, raw: Path, copy: Path):
    """Their modules, copied from ``checkout`` to ``copy`` with GEM's docstring indented, MNIST read from ``raw``:
    their ``iBatchLearn``."""
    shutil.copytree(checkout, copy, ignore=shutil.ignore_patterns(".git"))
    path = copy / "agents" / "exp_replay.py"
    path.write_text(indent_gem_docstring(path.read_text()))
    sys.path.insert(0, str(copy))
    os.chdir(copy)  # iBatchLearn.run makes outputs/ where it runs
    for name in ("torchvision", "torchvision.transforms"):  # imported by dataloaders/base.py, whose MNIST is replaced
        sys.modules[name] = types.ModuleType(name)
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    import dataloaders.base
    import iBatchLearn

    dataloaders.base.MNIST = their_mnist(raw)
    return iBatchLearn


def run(their, seed: int, argv: list[str]) -> dict:
    """One run of theirs, seeded: its final average accuracy over the tasks and each task's, in %."""
    import torch

    args = their.get_args(["--gpuid", "-1", "--workers", "0", "--print_freq", "0", "--repeat", "1", *argv])
    args.reg_coef = args.reg_coef[0]
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
    torch.set_num_threads(1)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # their run prints every evaluation
        table, names = their.run(args)
    tasks = [table[name][names[-1]] for name in names]
    return {"seed": seed, "average": float(np.mean(tasks)), "tasks": tasks}


def runs(checkout: Path, raw: Path, seeds: list[int], argv: list[str]) -> list[dict]:
    """``seeds``' runs in one process (their code loaded once), each printed as it ends."""
    with tempfile.TemporaryDirectory() as tmp:
        their = load_their_code(checkout, raw, Path(tmp) / "their")
        results = []
        for seed in seeds:
            start = time.time()
            results.append(run(their, seed, argv))
            print(f"seed {seed}: {json.dumps(results[-1])}, {time.time() - start:.0f} s", flush=True)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], usage="%(prog)s CHECKOUT [options] -- IBATCHLEARN_ARGUMENTS"
    )
    parser.add_argument("checkout", type=Path, help="their repository, checked out at the commit to run")
    parser.add_argument("--seeds", default="1-10", help="FIRST-LAST, one run each")
    parser.add_argument("--jobs", type=int, default=1, help="processes, each running every JOBS-th seed")
    parser.add_argument("--mnist", type=Path, default=Path.home() / "tensorflow_datasets/downloads/manual")
    parser.add_argument("--out", type=Path, help="a JSON file to keep the runs in")
    own, argv = split_arguments(sys.argv[1:])
    args = parser.parse_args(own)
    seeds = seed_range(args.seeds)
    if not (args.checkout / "iBatchLearn.py").is_file():
        raise SystemExit(f"hsu2018_their_code: no iBatchLearn.py in {args.checkout}; clone their repository there")
    files = [mnist_file(args.mnist, prefix, kind) for prefix in MNIST_PREFIXES for kind in MNIST_KINDS]
    if missing := [path for path in files if not path.is_file()]:
        raise SystemExit(f"hsu2018_their_code: no {missing[0].name} in {args.mnist}; point --mnist at the MNIST files")
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    checkout, raw = args.checkout.resolve(), args.mnist.resolve()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one core a job
        os.environ.setdefault(name, "1")
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = [pool.submit(runs, checkout, raw, seeds[i :: args.jobs], argv) for i in range(args.jobs)]
        results = sorted((r for part in parts for r in part.result()), key=lambda r: r["seed"])
    averages = [r["average"] for r in results]
    print(f"{len(averages)} runs: mean {np.mean(averages):.2f} sd {np.std(averages):.2f}", flush=True)
    if args.out:
        versions = {name: importlib.metadata.version(name) for name in ("torch", "quadprog", "numpy")}
        record = {"commit": commit.stdout.strip(), "arguments": argv, "versions": versions, "runs": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        partial = args.out.with_name(f".{args.out.name}.partial")
        partial.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(partial, args.out)


if __name__ == "__main__":
    main()
