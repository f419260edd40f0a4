"""One ``forgetting tune`` trial, run by Ray Tune in a worker process: the ``finetune@<strategy>`` work on the
setting's task-A files, scored on the validation splits."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

_threads_set = False


def train_and_score(config: dict[str, Any], files: list, params: dict[str, Any], cpus: int) -> None:
    """Write the task-A files to a scratch folder (``files``: a reference to their ``{path: bytes}`` in Ray's
    object store, in a list so that Ray hands over the reference rather than the bytes, which go once written),
    train every repetition through the later tasks under ``config["trial"]`` (a strategy, its values, and maybe
    ``stack``: every value of its strength at once, each on its own copy of the repetitions, and ``halving``:
    successive halving stops the hopeless values early, ``forgetting.tuning.halving``), and report ``{"results":
    [{strategy, params, score, score_ci95, repetitions, <task>_accuracy...}, ...]}``, one per value: score = the
    mean over its repetitions of each one's mean validation accuracy over the tasks, with its 95% confidence
    half-width; a value stopped early has no score but ``stopped``: ``{epoch, of, score}`` (its score then, after
    ``epoch`` of the trial's ``of`` epochs). Each also reports the trial's ``seconds``, how many values it trained
    (``stacked``) and the peak resident memory of its worker process during the trial (``peak_memory_mb``:
    ``peak_memory``). A trial whose loss diverges reports its error for each value instead. The worker hands the
    memory it freed back before its next trial (``release_memory``)."""
    import ray
    from ray import tune

    trial, start = config["trial"], time.perf_counter()
    reset_peak_memory()
    _limit_threads(cpus)
    from forgetting.errors import ForgettingError

    with tempfile.TemporaryDirectory(prefix="forgetting-trial-") as tmp:
        _write(ray.get(files[0]), Path(tmp))
        try:
            results = _score(trial, Path(tmp), params)
        except ForgettingError as exc:
            results = failures(trial, str(exc))
    seconds = round(time.perf_counter() - start, 1)
    own = {"seconds": seconds, "stacked": len(results), "peak_memory_mb": peak_memory()}
    release_memory()
    tune.report({"results": [{**result, **own} for result in results]})


def reset_peak_memory() -> None:
    """Start this process's peak resident memory afresh from what it holds now (Linux: ``/proc/self/clear_refs``;
    elsewhere the peak stays the process's)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory() -> int:
    """This process's peak resident memory in MB since ``reset_peak_memory`` (Linux's VmHWM; elsewhere since the
    process began)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return round(int(line.split()[1]) / 1024)  # kB


def release_memory() -> None:
    """Collect the garbage a trial leaves (its models, their traced functions, which every ``fit`` lets go:
    ``loop.forget_custom_gradients``) and hand the C heap's free pages back to the system (glibc's ``malloc_trim``),
    so that a reused worker starts its next trial from what it needs."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write(files: dict[str, bytes], root: Path) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def strength_keys(cls) -> tuple[str, ...]:
    """The params that strategy class ``cls`` can take one value of per repetition (``Strategy.set_strengths``): its
    ``strength_params`` where it declares them (DER++'s alpha and beta), else its ``strength_param``; none where
    it cannot."""
    if not cls.acts_at("set_strengths"):
        return ()
    return tuple(getattr(cls, "strength_params", None) or [cls.strength_param])


def each_value(trial: dict[str, Any]) -> list[dict[str, Any]]:
    """A trial's (strategy, params) per value: one, or one per value of its ``stack`` (``{key: values}``, the
    values of every key in step: value v sets each key's v-th)."""
    if not trial.get("stack"):
        return [{"strategy": trial["strategy"], "params": trial["params"]}]
    keys, rows = list(trial["stack"]), zip(*trial["stack"].values(), strict=True)
    return [{"strategy": trial["strategy"], "params": trial["params"] | dict(zip(keys, r, strict=True))} for r in rows]


def per_repetition(trial: dict[str, Any], params: dict[str, Any]):
    """What a stacked trial gives ``Strategy.set_strengths``: repetition v * S + s (S seeds) value v's strength, or,
    for a strategy of several (``strength_keys``), its row of them, each key's value as value v's params set it
    (searched, or params.yaml's); None for a trial of one value."""
    import numpy as np

    from forgetting.config.params import repetition_seeds, value_at, with_values
    from forgetting.strategies import strategy_class

    if not trial.get("stack"):
        return None
    keys = strength_keys(strategy_class(trial["strategy"]))
    rows = [[value_at(with_values(params, value["params"]), key) for key in keys] for value in each_value(trial)]
    table = np.array(rows, np.float64)
    return np.repeat(table[:, 0] if len(keys) == 1 else table, len(repetition_seeds(params)), axis=0)


def failures(trial: dict[str, Any], error: str) -> list[dict[str, Any]]:
    """Each value of ``trial`` recorded as failed with ``error`` (no score)."""
    return [{**value, "score": None, "score_ci95": None, "error": error} for value in each_value(trial)]


def _limit_threads(cpus: int) -> None:
    """TensorFlow's thread pools sized to the trial's CPUs, once per worker process (before TensorFlow runs)."""
    global _threads_set
    from forgetting.stage import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    if not _threads_set:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
        _threads_set = True


def _score(trial: dict[str, Any], root: Path, params: dict[str, Any]) -> list[dict[str, Any]]:
    import numpy as np

    from forgetting.config.params import repetition_seeds, with_values
    from forgetting.data import mnist
    from forgetting.data.scenarios import Scenario
    from forgetting.evaluation import metrics
    from forgetting.evaluation.intervals import half_width
    from forgetting.strategies import TaskAState
    from forgetting.training import loop
    from forgetting.tuning.halving import Halving

    values = each_value(trial)
    strengths = per_repetition(trial, params)
    params = with_values(params, values[0]["params"])
    seeds = len(repetition_seeds(params))
    scenario = Scenario.from_params(params)
    task_a = TaskAState(scenario).rooted(root).tiled(len(values))
    validation = list(mnist.load_tasks("validation", scenario, task_a.data_root).values())
    halving = None  # scores under the strategy's rule (``train_sequence`` gives it the strategy's ``predict``)
    if trial.get("halving"):
        halving = Halving(len(values), seeds, scenario, loop.schedule(params, "finetune")[0], validation)
    network = loop.train_strategy(
        trial["strategy"], params, task_a, "validation", verbose=0, strengths=strengths, halving=halving
    )
    # the network's own rule (``StackedMLP.scores``), as the evaluate stage measures it
    each = np.array([metrics.accuracy(network, split, scenario) for split in validation])
    alive, stopped = (halving.alive, halving.stopped) if halving else (list(range(len(values))), {})
    names = [f"{name}_accuracy" for name in scenario.names]
    results = []
    for v, value in enumerate(values):
        if v in stopped:
            results.append({**value, "score": None, "score_ci95": None, "stopped": stopped[v]})
            continue
        i = alive.index(v)  # (tasks, kept values x seeds): value v's repetitions
        own = each[:, i * seeds : (i + 1) * seeds]
        repetitions = own.mean(axis=0)  # each repetition's mean over the tasks
        results.append(
            {
                **value,
                "score": round(float(repetitions.mean()), 6),
                "score_ci95": half_width(repetitions),
                "repetitions": [round(float(r), 6) for r in repetitions],
                **{name: round(float(a), 6) for name, a in zip(names, own.mean(axis=1), strict=True)},
            }
        )
    return results
