"""Choose each strategy's hyperparameters for one setting (scenario x task sequence) on VALIDATION data, never test,
with Ray Tune: every combination of a strategy's search values (``Strategy.search_space``, declared once in its
module) is a trial that trains every repetition of the setting's task-A model through the later tasks exactly as
``finetune@<strategy>`` does, and is scored by the mean validation accuracy over the tasks and repetitions.

    forgetting tune --scenario class --tasks split5 --strategies ewc,si
    forgetting tune --scenario domain --tasks even-odd --update-params    # and write the choice into params.yaml
    forgetting tune ... --address HOST:6379                               # the same trials on a Ray cluster
    forgetting tune ... --strategies ewc --space alpha=100,1000 -S seeds=2 -S data.train_per_digit=50  # a small run

Trials run on repetitions of their own, seeds TUNING_SEED (1000), 1001, ... (``-S seed=N`` for others): disjoint from
the seeds the pipeline reports on (params.yaml's 42, 43, ...), so that no reported figure keeps the luck of the seeds
its values were chosen on; their validation split is drawn from those seeds too. Both sets are recorded, in tuning/
and on the report page.

Task A (prepare, train_a, fisher) runs once per setting, with DVC, in a copy of the project that shares its DVC
cache; trials run in parallel, one per CPU by default, each in its own process. The values of a strategy's strength
(``Strategy.strength_param``, or its ``strength_params``: DER++'s two coefficients) that differ in nothing else train
together, in one process, each on its own copy of the repetitions (``Strategy.set_strengths``: each value and seed as
it would be alone);
``--one-value-per-trial`` trains each in its own. Results: every trial's score in
tuning/<setting>.json, the chosen values in tuning/<setting>.yaml (a rerun for some strategies keeps the others').
`forgetting exp <setting>` then runs the pipeline with them as a DVC experiment.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from forgetting.config import params as params_module
from forgetting.config import settings
from forgetting.config.params import set_key, value_at, with_values
from forgetting.data.mnist import check_mnist
from forgetting.errors import ForgettingError
from forgetting.evaluation.intervals import plus_minus
from forgetting.files import atomic_output
from forgetting.stage import import_tensorflow
from forgetting.tuning import project
from forgetting.tuning.project import copy_project, project_root

NAME = "tune"
TUNING_SEED = 1000  # the first seed of every trial's repetitions, unless -S seed=N
WIDENINGS = 3  # the most decades a grid grows past either end in one run (``widen``)
HELP = "choose a setting's hyperparameters on validation data (Ray Tune)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", required=True, help=f"one of {', '.join(params_module.SCENARIOS)}")
    parser.add_argument("--tasks", required=True, help=f"the task sequence: one of {', '.join(settings.SEQUENCES)}")
    parser.add_argument("--strategies", default="all", help="comma-separated strategies (default: all)")
    parser.add_argument(
        "--space", action="append", default=[], metavar="KEY=V1,V2", help="replace a key's search values"
    )
    parser.add_argument(
        "-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="a params.yaml value for every trial"
    )
    parser.add_argument("--address", help="a running Ray cluster (default: a local Ray on this machine)")
    parser.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (TensorFlow threads) per trial")
    parser.add_argument(
        "--one-value-per-trial", action="store_true", help="train each strength value alone (default: together)"
    )
    parser.add_argument(
        "--no-halving",
        action="store_true",
        help="train every value to the end (default: values trained together stop early where hopeless)",
    )
    parser.add_argument("--out", type=Path, default=settings.TUNING, help="folder for the results (default tuning/)")
    parser.add_argument(
        "--update-params", action="store_true", help="write the chosen values into params.yaml (its own setting)"
    )


def run(args: argparse.Namespace) -> int:
    root = project_root()
    setting = settings.setting_name(args.scenario, args.tasks)
    if args.cpus_per_trial < 1:
        raise ForgettingError(f"--cpus-per-trial {args.cpus_per_trial}: give each trial 1 or more CPUs (default 1)")
    names = strategy_names(args.strategies)  # a misspelt name fails before TensorFlow's import (seconds)
    import_tensorflow()  # the strategy registry imports it: quietly, first
    names = own_tuning(names, explicit=args.strategies != "all")
    base = base_params(params_module.read(root / "params.yaml"), setting, args.set)
    trials = grid(names, parse_space(args.space, names))
    from forgetting.strategies import validate_params

    problems = {}  # every trial's values, and each strategy's setting (a buffer the data cannot fill): the first
    for trial in trials:  # problem of each strategy, every strategy's named at once
        try:
            validate_params(with_values(base, trial["params"]), [trial["strategy"]])
        except ForgettingError as exc:
            problems.setdefault(trial["strategy"], trial_problem(str(exc), trial, args.space, args.set))
    if len(problems) > 1:
        numbered = " ".join(f"({i}) {problem}" for i, problem in enumerate(problems.values(), 1))
        raise ForgettingError(f"{len(problems)} strategies cannot run: {numbered}")
    if problems:
        raise ForgettingError(next(iter(problems.values())))
    if args.update_params and settings.setting_of(params_module.read(root / "params.yaml")) != setting:
        raise ForgettingError(f"--update-params: params.yaml is not set up for {setting}; leave it out")
    data = base["data"]  # MNIST's absence fails here, in seconds, not in prepare after Ray has started
    check_mnist(root / Path(data["manual_dir"]).expanduser(), root / Path(data["tfds_dir"]).expanduser())
    ray = import_ray()
    jobs = as_jobs(trials, args)
    seeds = params_module.repetition_seeds(base)
    print(f"{setting}: {len(trials)} trials in {len(jobs)} jobs ({', '.join(names)}), repetitions {seeds}")
    start = time.perf_counter()
    connect(ray, args.address)  # first: a cluster out of reach fails before any work
    try:
        with tempfile.TemporaryDirectory(prefix="forgetting-tune-") as tmp:
            files = train_task_a(root, Path(tmp) / "repo", base)
            results = run_trials(ray, jobs, trials, base, files, args.cpus_per_trial, Path(tmp) / "ray")

            def more(extra: list[dict[str, Any]], widening: int) -> list[dict[str, Any]]:
                storage = Path(tmp) / f"ray-widened-{widening}"
                jobs = as_jobs(extra, args, widening=True)
                return run_trials(ray, jobs, extra, base, files, args.cpus_per_trial, storage)

            results = widen(results, trials, base, more)
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - start
    if len(results) < len(trials):  # Ctrl-C: Ray Tune stopped the rest
        path = write_results(args.out, setting, base, results, None, args.set, seconds)
        raise ForgettingError(
            f"interrupted: {len(results)} of {len(trials)} trials finished, kept in {path} (nothing chosen); "
            "run the command again to tune the setting"
        )
    chosen, failed = choose(results)
    if chosen:
        chosen = at_edge(chosen, trials)
        write_results(args.out, setting, base, results, chosen, args.set, seconds)
        if args.update_params:
            update_params(root / "params.yaml", chosen)
        print(summary(setting, chosen, seconds, args.out))
    if failed:
        kept = f"; the others' choices are in {settings.tuning_path(setting, root=args.out)}" if chosen else ""
        raise ForgettingError("; ".join(f"every trial of {n} failed: {e}" for n, e in failed.items()) + kept)
    return 0


def strategy_names(text: str) -> list[str]:
    """The strategies to tune: ``all`` is dvc.yaml's strategy list; a name must have its module."""
    from forgetting.config.pipeline import available, listed

    names = listed() if text == "all" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in available()]
    if unknown or not names:
        raise ForgettingError(f"unknown strategy {unknown[0] if unknown else text!r}: use {', '.join(listed())}")
    return list(dict.fromkeys(names))


def own_tuning(names: list[str], explicit: bool) -> list[str]:
    """``names`` less the strategies that run with another's tuned values (``Strategy.tuned_as``): left out of
    ``all``, an error where named."""
    from forgetting.strategies import strategy_class

    borrowed = {name: strategy_class(name).tuned_as for name in names if strategy_class(name).tuned_as}
    if explicit and borrowed:
        name, owner = next(iter(borrowed.items()))
        raise ForgettingError(f"{name} runs with {owner}'s tuned values and has none of its own: tune {owner}")
    return [name for name in names if name not in borrowed]


def parse_space(items: list[str], names: list[str]) -> dict[str, list[Any]]:
    """``--space KEY=V1,V2`` options as {key: values}; a key no chosen strategy reads, or no values, is an error."""
    from forgetting.strategies import strategy_class

    readable = {key for name in names for key in strategy_class(name).hyperparameters}
    space = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            values = [params_module.parse_value(v) for v in text.split(",") if v.strip()]
        except ForgettingError as exc:
            raise ForgettingError(f"--space {item}: {exc}") from None
        if key not in readable:
            raise ForgettingError(
                f"--space {item}: no strategy tuned here reads {key!r} (they read {sorted(readable)})"
            )
        if not values:
            raise ForgettingError(f"--space {item}: the search space of {key} is empty; give values, KEY=V1,V2")
        space[key] = values
    return space


def grid(names: list[str], overrides: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every trial: each strategy's search space (with ``overrides``), every combination of its values."""
    from forgetting.strategies import strategy_class

    trials = []
    for name in names:
        space = {key: overrides.get(key, values) for key, values in strategy_class(name).search_space.items()}
        space |= {key: values for key, values in overrides.items() if key in strategy_class(name).hyperparameters}
        for combination in itertools.product(*space.values()):
            trials.append({"strategy": name, "params": dict(zip(space, combination, strict=True))})
    return trials


def base_params(params: dict[str, Any], setting: str, assignments: list[str]) -> dict[str, Any]:
    """params.yaml for ``setting`` (``settings.setting_params``) on the tuning seeds (``TUNING_SEED`` on), then the
    ``-S KEY=VALUE`` assignments; validated."""
    params = settings.setting_params(params, setting) | {"seed": TUNING_SEED}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ForgettingError(f"-S {item}: write KEY=VALUE, e.g. -S seeds=2")
        try:
            params = with_values(params, {key: params_module.parse_value(text)})
        except ForgettingError as exc:
            raise ForgettingError(f"-S {item}: {exc}") from None
    from forgetting.strategies import validate_params  # every strategy's section too

    try:
        validate_params(params, strategies=[])  # each trial's strategy's setting: with its values (run)
    except ForgettingError as exc:
        raise ForgettingError(blame(str(exc), assignments, "-S")) from None
    return params


def _key(key: str) -> str:
    """A pattern for the params key ``key`` as a whole (not ``alpha`` inside ``online_ewc.alpha``)."""
    return rf"(?<![\w.]){re.escape(key)}(?![\w.])"


def blame(problem: str, assignments: list[str], option: str) -> str:
    """``problem`` (params.yaml: KEY = ... ) told of the command-line assignment that set KEY, where one did."""
    body = problem.removeprefix(f"{params_module.PARAMS_FILE}: ")
    for item in assignments:
        if re.match(_key(item.partition("=")[0]), body):
            return f"{option} {item}: {body}"
    return problem


def trial_problem(problem: str, trial: dict[str, Any], space: list[str], assignments: list[str]) -> str:
    """``problem`` with a trial told of where the values it names came from: the trial's (a ``--space`` option or
    the strategy's own search space) and the ``-S`` assignments."""
    source = trial["strategy"]
    if any(re.search(_key(key), problem) for key in trial["params"]):
        given = [item for item in space if item.partition("=")[0] in trial["params"]]
        values = ", ".join(f"{key} = {value!r}" for key, value in trial["params"].items())
        source += f" trial ({values}, from {f'--space {given[0]}' if given else 'its module search_space'})"
    set_here = [f"-S {item}" for item in assignments if re.search(_key(item.partition("=")[0]), problem)]
    return f"{source}: {problem}" + (f" (set by {', '.join(set_here)})" if set_here else "")


def import_ray():
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic reporter, which verbose=0 silences
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise ForgettingError("Ray Tune is not installed: pip install -e '.[tune]'") from None
    return ray


def train_task_a(root: Path, repo: Path, params: dict[str, Any]) -> dict[str, bytes]:
    """Prepare the setting's data and train its task-A model, Fisher and path integral (``dvc repro fisher`` in a
    copy of the project that shares its DVC cache); their files by path, test splits left out."""
    print("task A: dvc repro fisher (prepare, train_a, fisher) in a copy of the project", flush=True)
    repo.mkdir(parents=True)
    copy_project(root, repo, lambda p: p.update(params))
    project.run(repo, "dvc", "repro", "fisher")
    prepared = [p for p in (repo / "data" / "prepared").rglob("*.npz") if p.stem != "test"]
    from forgetting.strategies import TaskAState

    products = [repo / path for path in TaskAState.files().values()]
    return {str(p.relative_to(repo)): p.read_bytes() for p in [*prepared, *products]}


def connect(ray, address: str | None) -> None:
    """Start a local Ray (``address`` None) or join the cluster at ``address``, whose workers get this package."""
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    runtime_env: dict[str, Any] = {"env_vars": env}
    if address:
        runtime_env["py_modules"] = [str(Path(__file__).parents[1])]  # the forgetting package
    quiet = {"include_dashboard": False, "logging_level": "error", "log_to_driver": False}
    try:
        ray.init(address=address, runtime_env=runtime_env, **quiet)
    except ConnectionError as exc:
        problem = f"cannot reach the Ray cluster at {address} ({str(exc).splitlines()[0]})"
        fix = "check `ray status` there (a cluster with token authentication also needs RAY_AUTH_MODE=token here)"
        raise ForgettingError(f"{problem}: {fix}, or leave --address out") from None


def as_jobs(trials: list[dict[str, Any]], args: argparse.Namespace, widening: bool = False) -> list[dict[str, Any]]:
    """The trials as the jobs that ``args`` asks for: one per trial (``--one-value-per-trial``, in every round), or
    ``stacked``, with successive halving unless ``--no-halving`` or they widen a grid (``widen``: values added past
    an edge, whose choice is made on every one trained to the end)."""
    if args.one_value_per_trial:
        return trials
    return stacked(trials, halving=not (args.no_halving or widening))


def stacked(trials: list[dict[str, Any]], halving: bool = True) -> list[dict[str, Any]]:
    """The trials as Ray Tune's jobs: those of one strategy that differ only in its strength (or strengths: DER++'s
    alpha and beta, ``trial.strength_keys``), where the strategy can take one per repetition, become one job
    (``{"strategy", "params": the rest, "stack": {key: values}}``, every key's values in step)
    that trains every value at once, with ``halving`` (successive halving, ``forgetting.tuning.halving``) where
    the strategy can drop repetitions (``Strategy.keep``); the others stay one job each. The jobs of the most values
    come first (in the grid's order among equals), so that the workers' last jobs are short ones."""
    from forgetting.strategies import strategy_class
    from forgetting.tuning.trial import each_value, strength_keys

    jobs: list[dict[str, Any]] = []
    for trial in trials:
        cls = strategy_class(trial["strategy"])
        keys = [key for key in strength_keys(cls) if key in trial["params"]]
        if not keys:
            jobs.append(trial)
            continue
        rest = {k: v for k, v in trial["params"].items() if k not in keys}
        same = (trial["strategy"], rest, keys)
        job = next((j for j in jobs if j.get("stack") and (j["strategy"], j["params"], list(j["stack"])) == same), None)
        if job is None:
            jobs.append({"strategy": trial["strategy"], "params": rest, "stack": {key: [] for key in keys}})
            if halving and cls.acts_at("keep"):
                jobs[-1]["halving"] = True
            job = jobs[-1]
        for key in keys:
            job["stack"][key].append(trial["params"][key])
    return sorted(jobs, key=lambda job: -len(each_value(job)))


def run_trials(ray, jobs, trials, params, files, cpus, storage: Path) -> list[dict[str, Any]]:
    """Every job (``stacked``) on Ray Tune, connected (``connect``): one process per job, ``cpus`` CPUs each; each
    trial's config and result, in the order of ``trials``."""
    from ray import tune

    from forgetting.tuning.trial import train_and_score

    shipped = [ray.put(files)]  # a reference in a list: each trial fetches the files and lets them go once written
    trainable = tune.with_resources(
        tune.with_parameters(train_and_score, files=shipped, params=params, cpus=cpus), {"cpu": cpus}
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(jobs)},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name="tune", verbose=0, callbacks=[Progress(len(trials))]),
    )
    logging.getLogger("ray.tune").setLevel(logging.ERROR)  # not its note on resuming from our temporary folder
    return finished(fitted(tuner, cpus), trials)


def fitted(tuner, cpus: int):
    """``tuner.fit()``'s results; one clear error where Ray stopped a trial's process for lack of memory (Ray Tune
    2.60 then gives up on the whole run with a RuntimeError)."""
    from ray.exceptions import OutOfMemoryError

    try:
        return tuner.fit()
    except RuntimeError as exc:
        if not isinstance(exc.__cause__, OutOfMemoryError):
            raise
        raise ForgettingError(
            f"the machine ran out of memory with one trial per {cpus} CPU(s) (Ray stopped a trial's process): run "
            f"fewer at once (--cpus-per-trial {2 * cpus}), or tune fewer strategies per run (--strategies)"
        ) from None


def finished(grid_results, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finished trial's config and result, in the order of ``trials``: a failed one (a crash too) with its
    error; those Ctrl-C stopped before they reported are left out. A job of several values (``stacked``) gives one
    result per value."""
    from forgetting.tuning.trial import failures

    results = []
    for result in grid_results:
        if result.error is not None:
            results += failures(result.config["trial"], str(result.error).strip().splitlines()[-1])
        elif "results" in (result.metrics or {}):
            results += result.metrics["results"]
    return sorted(results, key=lambda r: trials.index({"strategy": r["strategy"], "params": r["params"]}))


class Progress:  # a ray.tune.Callback, made one in ``__new__`` so that this module imports without Ray
    """One line per finished trial: the strategy, its values, the mean validation accuracy and how many are done."""

    def __new__(cls, total: int):
        from ray.tune import Callback

        class _Progress(Callback):
            def __init__(self) -> None:
                self.done = 0

            def on_trial_result(self, iteration, trials, trial, result, **info):
                for each in result["results"]:
                    self.done += 1
                    print(f"  [{self.done}/{total}] {describe(each)}", flush=True)

        return _Progress()


def describe(result: dict[str, Any]) -> str:
    values = " ".join(f"{k}={v:g}" for k, v in result["params"].items()) or "(no hyperparameters)"
    if result.get("error"):
        return f"{result['strategy']} {values}: failed ({result['error']})"
    if result.get("stopped"):
        stop = result["stopped"]
        when = f"stopped after epoch {stop['epoch']} of {stop['of']}"
        return f"{result['strategy']} {values}: {when} (val acc {stop['score']:.4f} then)"
    score = f"val acc {result['score']:.4f} {plus_minus(result['score_ci95'], 4)}"
    together = result.get("stacked", 1)
    took = f"{result['seconds']:.0f} s" + (f" for {together} values together" if together > 1 else "")
    return f"{result['strategy']} {values}: {score} ({took})"


def choose(results: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each strategy's best trial by mean validation accuracy among those trained to the end (the first of equals,
    in search order), with how many trials it had and how many of them successive halving stopped early; and the
    first error of each strategy whose every trial failed."""
    chosen: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for name in dict.fromkeys(r["strategy"] for r in results):
        own = [r for r in results if r["strategy"] == name]
        scored = [r for r in own if r.get("score") is not None]
        if not scored:
            failed[name] = next(r.get("error") for r in own if r.get("error"))
            continue
        best = max(scored, key=lambda r: r["score"])
        chosen[name] = {"params": best["params"], "score": best["score"], "score_ci95": best["score_ci95"]}
        chosen[name] |= {"trials": len(own), "stopped": sum("stopped" in r for r in own)}
    return chosen, failed


def widenable(name: str, key: str, values: list[Any]) -> bool:
    """Whether strategy ``name``'s key ``key`` is a coefficient whose tried ``values`` form a grid that ``widen``
    grows: its strength (``strength_param``) or a key whose module searches floats (DER++'s coefficients; not a
    count such as A-GEM's memory batch, which the buffer bounds), tried at positive values on a log scale (each
    distinct value at least 2.5 times the one before; not a linear grid such as replay's shift)."""
    from forgetting.strategies import strategy_class

    cls = strategy_class(name)
    coefficient = key == cls.strength_param or all(isinstance(v, float) for v in cls.search_space.get(key, [0]))
    ordered = sorted(set(values))
    positive = all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in ordered)
    geometric = all(b >= 2.5 * a for a, b in itertools.pairwise(ordered))
    return coefficient and positive and geometric and len(ordered) > 1


def at_grid_edge(name: str, key: str, value: Any, trials: list[dict[str, Any]]) -> str | None:
    """Where ``value`` of strategy ``name``'s key ``key`` sits among the values ``trials`` tried: "high" or "low" at
    an edge of a grid that widens (``widenable``), else None."""
    tried = [t["params"][key] for t in trials if t["strategy"] == name and key in t["params"]]
    if not widenable(name, key, tried) or value not in (min(tried), max(tried)):
        return None
    return "high" if value == max(tried) else "low"


def edge_trials(results: list[dict[str, Any]], trials: list[dict[str, Any]], params: dict) -> list[dict[str, Any]]:
    """The next decade of each strategy's grid whose chosen value sits at its edge: the best trial's values with the
    key at the edge times 10 (or divided by 10 at the low end), for every key ``widenable`` among the values tried
    (``trials``); not where params.yaml's types refuse the value, nor where it has been tried."""
    from forgetting.strategies import validate_params

    chosen, _ = choose(results)
    extra = []
    for name, entry in chosen.items():
        for key, value in entry["params"].items():
            edge = at_grid_edge(name, key, value, trials)
            if edge is None:
                continue
            step = float(f"{(value * 10 if edge == 'high' else value / 10):.6g}")
            trial = {"strategy": name, "params": entry["params"] | {key: step}}
            if any(t["strategy"] == name and t["params"].get(key) == step for t in trials) or trial in extra:
                continue
            try:
                validate_params(with_values(params, trial["params"]), [name])
            except ForgettingError:
                continue
            extra.append(trial)
    return extra


def widen(results, trials, params, run) -> list[dict[str, Any]]:
    """``results`` with those of the trials that grow each grid by a decade past the edge where its choice sits
    (``edge_trials``), run by ``run(extra, widening)`` (their results), again until no choice sits at an edge or
    ``WIDENINGS`` decades have been added; each added trial (appended to ``trials``) and its result record
    ``widened``: the round that added it (1, 2, ...). A run that Ctrl-C cut short (fewer results than trials) is not
    widened further."""
    for widening in range(1, WIDENINGS + 1):
        extra = edge_trials(results, trials, params) if len(results) == len(trials) else []
        if not extra:
            break
        steps = ", ".join(f"{t['strategy']} {' '.join(f'{k}={v:g}' for k, v in t['params'].items())}" for t in extra)
        print(f"at the edge of its grid, so a decade further ({widening} of at most {WIDENINGS}): {steps}", flush=True)
        trials += [t | {"widened": widening} for t in extra]
        results = results + [r | {"widened": widening} for r in run(extra, widening)]
    return results


def at_edge(chosen: dict[str, dict[str, Any]], trials: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``chosen`` with, per strategy, the trials that widening added (``widened``) and the coefficients whose choice
    still sits at the edge of every value tried (``at_edge``: widening stopped at its bound, or params.yaml refused
    the next decade; the figure may understate the method). Keys that do not widen (``widenable``) are not marked:
    a count or a linear grid has edges of its own making."""
    marked = {}
    for name, entry in chosen.items():
        edges = [key for key, value in entry["params"].items() if at_grid_edge(name, key, value, trials)]
        widened = sum("widened" in t for t in trials if t["strategy"] == name)
        marked[name] = entry | ({"widened": widened} if widened else {}) | ({"at_edge": edges} if edges else {})
    return marked


class PlainDumper(yaml.SafeDumper):
    """YAML as a person writes it: a value shared by several entries (every choice's ``seeds``) written out in
    each, not as an anchor and aliases (``&id001`` ... ``*id001``)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_results(out: Path, setting, params, results, chosen, assignments, seconds) -> Path:
    """tuning/<setting>.json (every trial) and .yaml (the chosen values), merged with the strategies that an earlier
    run tuned and this one did not; both or neither. With ``chosen`` None (an interrupted run), the finished trials
    alone, in tuning/<setting>.partial.json, which a later full run of the setting removes. The path written."""
    json_path, yaml_path = settings.tuning_path(setting, ".json", out), settings.tuning_path(setting, ".yaml", out)
    partial = settings.tuning_path(setting, ".partial.json", out)
    header = {"setting": setting, "scenario": params["scenario"], "tasks": params["tasks"]}
    header |= {"seeds": params_module.repetition_seeds(params), "overrides": assignments}
    out.mkdir(parents=True, exist_ok=True)
    if chosen is None:
        with atomic_output(partial) as tmp:
            tmp.write_text(json.dumps({**header, "seconds": round(seconds), "trials": results}, indent=1) + "\n")
        return partial
    old_trials = json.loads(json_path.read_text())["trials"] if json_path.is_file() else []
    old = settings.tuned(setting, out) or {}
    # each strategy's own seeds, which the header (this run's) no longer tells once runs are merged
    old_chosen = {
        name: entry if "seeds" in entry else entry | {"seeds": old.get("seeds")}
        for name, entry in old.get("chosen", {}).items()
    }
    trials = [t for t in old_trials if t["strategy"] not in chosen] + results
    chosen = {
        name: entry | {"seeds": header["seeds"], "under": under(params, name, entry)} for name, entry in chosen.items()
    }
    with atomic_output(json_path) as tmp_json, atomic_output(yaml_path) as tmp_yaml:
        tmp_json.write_text(json.dumps({**header, "trials": trials}, indent=1, allow_nan=False) + "\n")
        kept = set(old_chosen) - set(chosen)
        took = f"{seconds:.0f} s" + (f" for {', '.join(chosen)}; the others' in earlier runs" if kept else "")
        note = f"# Chosen by `forgetting tune` on validation data ({took}); every trial: {json_path.name}\n"
        body = {**header, "chosen": {**old_chosen, **chosen}}
        tmp_yaml.write_text(note + yaml.dump(body, Dumper=PlainDumper, sort_keys=False, default_flow_style=None))
    partial.unlink(missing_ok=True)
    return json_path


def under(params: dict[str, Any], name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """What strategy ``name``'s choice ``entry`` was made under: ``params``' values its trials trained with but did not
    search (``settings.tuned_under``), which the report compares with a run's."""
    from forgetting.strategies import strategy_class

    return settings.tuned_under(params, name, set(strategy_class(name).search_space) | set(entry["params"]))


def in_kind(old: Any, value: Any) -> Any:
    """``value`` as the number kind params.yaml gives the key (``old``): a float where it writes one (``c: 10.0``
    stays ``c: 1000.0``), else a whole number as an int (``alpha: 1000``, not ``1000.0``)."""
    if isinstance(old, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def update_params(path: Path, chosen: dict[str, dict[str, Any]]) -> None:
    """Write the chosen values into params.yaml, keeping its comments and layout."""
    from ruamel.yaml import YAML

    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    document = yaml_rt.load(path.read_text())
    for entry in chosen.values():
        for dotted, value in entry["params"].items():
            set_key(document, dotted, in_kind(value_at(document, dotted), value))
    with atomic_output(path) as tmp, open(tmp, "w") as handle:
        yaml_rt.dump(document, handle)


def summary(setting: str, chosen: dict[str, dict[str, Any]], seconds: float, out: Path) -> str:
    lines = [f"{setting}: chosen on validation in {seconds:.0f} s (written to {out}/{setting}.yaml):"]
    for name, entry in chosen.items():
        values = " ".join(f"{k}={v:g}" for k, v in entry["params"].items()) or "-"
        lines.append(f"  {name:<11} {values:<24} val acc {entry['score']:.4f} {plus_minus(entry['score_ci95'], 4)}")
    lines.append(f"run it: forgetting exp {setting}")
    return "\n".join(lines)
