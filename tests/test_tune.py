"""`forgetting tune` and `forgetting exp`: the trial grid from each strategy's declared search space, params
overrides, the choice, the tuning files and params.yaml updates (fast, no Ray); then, on real MNIST (e2e), a tiny
tune under a local Ray, its bad inputs, and the tuned values run as a DVC experiment."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from conftest import run_in
from test_pipeline_e2e import copy_project, keep_only, read_params, run, stages_run, tfds_dir  # noqa: F401 (tfds_dir: a fixture)

from forgetting.config import params, settings
from forgetting.errors import ForgettingError
from forgetting.strategies import Memory, listed, strategy_class
from forgetting.tuning import experiment, tune
from forgetting.tuning.trial import each_value, per_repetition

# its tests share module fixtures: one pytest worker runs them all
pytestmark = pytest.mark.xdist_group("test_tune")

STRATEGY_LIST = listed()  # dvc.yaml's strategy list
EWC_GRID = strategy_class("ewc").search_space["alpha"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def base() -> dict:
    return params.read(ROOT / "params.yaml")


@pytest.mark.parametrize("name", list(STRATEGY_LIST))
def test_every_strategy_declares_a_search_space_that_params_accept(name, base):
    """A new strategy fits the tuner by declaring its hyperparameters and search values; each value must be one
    params.yaml accepts for a key the strategy reads."""
    cls = strategy_class(name)
    assert set(cls.search_space) <= set(cls.hyperparameters)
    for key in cls.hyperparameters:
        tune.with_values(base, {key: 1})  # the key exists in params.yaml
    for key, values in cls.search_space.items():
        assert values, key
        for value in values:
            params.validate(tune.with_values(base, {key: value}))
    memory = cls.memory(base, num_parameters=1000, num_tasks=3)
    assert isinstance(memory, Memory) and memory.bytes >= 0 and memory.what


def test_grid_is_every_combination_of_each_strategys_values():
    trials = tune.grid(["naive", "ewc", "si"], {})
    assert trials[0] == {"strategy": "naive", "params": {}}
    alphas = [t["params"]["alpha"] for t in trials if t["strategy"] == "ewc"]
    assert alphas == strategy_class("ewc").search_space["alpha"]
    assert [t["params"] for t in trials if t["strategy"] == "si"] == [
        {"si.c": c} for c in strategy_class("si").search_space["si.c"]
    ]
    assert len(trials) == 1 + len(alphas) + len(strategy_class("si").search_space["si.c"])


def test_space_overrides_replace_or_add_a_key():
    space = tune.parse_space(["alpha=5,50", "si.xi=0.01,1"], ["ewc", "si"])
    assert space == {"alpha": [5, 50], "si.xi": [0.01, 1]}
    trials = tune.grid(["ewc", "si"], space)
    assert [t["params"] for t in trials if t["strategy"] == "ewc"] == [{"alpha": 5}, {"alpha": 50}]
    si = [t["params"] for t in trials if t["strategy"] == "si"]
    assert len(si) == 2 * len(strategy_class("si").search_space["si.c"])
    assert {p["si.xi"] for p in si} == {0.01, 1}


@pytest.mark.parametrize(
    ("items", "names", "message"),
    [
        (["alpha="], ["ewc"], "the search space of alpha is empty"),
        (["l2.weight=1"], ["ewc"], "reads 'l2.weight'"),
    ],
)
def test_bad_space(items, names, message):
    with pytest.raises(ForgettingError, match=message):
        tune.parse_space(items, names)


def test_strategy_names():
    assert tune.strategy_names("all") == list(STRATEGY_LIST)
    assert tune.strategy_names("si, ewc,si") == ["si", "ewc"]
    with pytest.raises(ForgettingError, match="unknown strategy 'ewk'"):
        tune.strategy_names("ewc,ewk")
    with pytest.raises(ForgettingError, match="unknown strategy"):
        tune.strategy_names(",")
    # a strategy that runs with another's tuned values (replay_equal_steps: replay's) is not tuned on its own
    own = [n for n in STRATEGY_LIST if n != "replay_equal_steps"]
    assert tune.own_tuning(list(STRATEGY_LIST), explicit=False) == own
    with pytest.raises(ForgettingError, match="replay_equal_steps runs with replay's tuned values"):
        tune.own_tuning(["replay", "replay_equal_steps"], explicit=True)


def test_base_params(base):
    p = tune.base_params(base, "class-split5", ["seeds=2", "data.train_per_digit=30"])
    assert p["scenario"] == "class" and p["tasks"] == settings.SEQUENCES["split5"]
    assert p["seeds"] == 2 and p["data"]["train_per_digit"] == 30
    assert base["seeds"] == 5  # a copy
    assert p["seed"] == tune.TUNING_SEED == 1000 and base["seed"] == 42  # trials: seeds of their own
    assert tune.base_params(base, "class-split5", ["seed=7"])["seed"] == 7
    with pytest.raises(ForgettingError, match="train_per_dgit is not a key"):
        tune.base_params(base, "class-split5", ["data.train_per_dgit=30"])
    with pytest.raises(ForgettingError, match=r"seeds = 0 is invalid; set it to an integer from 1 to 100"):
        tune.base_params(base, "class-split5", ["seeds=0"])
    with pytest.raises(ForgettingError, match="write KEY=VALUE"):
        tune.base_params(base, "class-split5", ["seeds"])
    with pytest.raises(ForgettingError, match="unknown task sequence 'split3'"):
        tune.base_params(base, "class-split3", [])


def test_command_line_values_are_yaml_1_2_and_errors_name_the_option(base):
    """`1e-4` is a number on the command line as in params.yaml (DVC reads YAML 1.2); a bad value is blamed on the
    option that gave it."""
    p = tune.base_params(base, "domain-even-odd", ["finetune.learning_rate=1e-4", "alpha=1e3"])
    assert p["finetune"]["learning_rate"] == 1e-4 and p["alpha"] == 1000.0
    assert tune.parse_space(["l2.weight=1e-4,1e3"], ["l2"]) == {"l2.weight": [1e-4, 1000.0]}
    with pytest.raises(ForgettingError) as error:
        tune.base_params(base, "domain-even-odd", ["seeds=2", "finetune.learning_rate=-1e-4"])
    assert str(error.value).startswith("-S finetune.learning_rate=-1e-4: finetune.learning_rate = -0.0001 is invalid")
    with pytest.raises(ForgettingError, match=r"^--space l2.weight=\[1: '\[1' is not a YAML value"):
        tune.parse_space(["l2.weight=[1"], ["l2"])


def test_a_buffer_the_data_cannot_fill_stops_the_tuner_before_any_trial(monkeypatch, capsys):
    """The replay trials would each fail after task A; the conflict is found first, naming the params to change,
    and only for the strategies being tuned."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(tune, "import_ray", lambda: pytest.fail("Ray started"))
    args = ["--scenario", "domain", "--tasks", "even-odd", "-S", "data.train_per_digit=50"]
    parser = argparse.ArgumentParser()
    tune.add_arguments(parser)
    with pytest.raises(ForgettingError) as error:
        tune.run(parser.parse_args([*args, "--strategies", "naive,replay"]))
    assert str(error.value) == (
        "replay: params.yaml: replay.buffer_size = 1000 draws up to 200 examples of each digit of the task "
        "[0, 2, 4, 6, 8], but its train split holds 50 of digit 0 (data.train_per_digit = 50); lower "
        "replay.buffer_size to 250 or raise data.train_per_digit (set by -S data.train_per_digit=50)"
    )
    with pytest.raises(ForgettingError) as error:  # several: each strategy's first problem, all in one line
        tune.run(parser.parse_args([*args, "--strategies", "replay,ewc,der"]))
    replay, der = str(error.value).removeprefix("2 strategies cannot run: (1) replay: ").split(" (2) der: ")
    assert replay.endswith(
        "lower replay.buffer_size to 250 or raise data.train_per_digit (set by -S data.train_per_digit=50)"
    )
    assert der.startswith("params.yaml: der.buffer_size = 1000 starts full of task A's train split, which holds 250 ")
    with pytest.raises(ForgettingError, match=r"^--cpus-per-trial -1: give each trial 1 or more CPUs \(default 1\)$"):
        tune.run(parser.parse_args([*args, "--strategies", "naive", "--cpus-per-trial", "-1"]))
    monkeypatch.setattr(tune, "import_ray", lambda: (_ for _ in ()).throw(SystemExit("past the checks")))
    with pytest.raises(SystemExit, match="past the checks"):  # the strategies tuned here have no such conflict
        tune.run(parser.parse_args([*args, "--strategies", "naive,ewc"]))


def test_settings_names(base):
    assert settings.setting_of(base) == "domain-even-odd"  # params.yaml's own
    assert settings.setting_of({**base, "tasks": [[0, 1], [2, 3]]}) is None
    assert settings.values("task-even-odd") == {
        "scenario": "task",
        "tasks": settings.SEQUENCES["even-odd"],
        "task_inputs": settings.DIGITS,
    }
    with pytest.raises(ForgettingError, match="unknown scenario 'clas'"):
        settings.values("clas-split5")
    assert all(settings.values(s) for s in settings.SETTINGS)


def _trial(strategy, value, score, error=None):
    key = {"ewc": "alpha", "l2": "l2.weight"}[strategy]
    result = {"strategy": strategy, "params": {key: value}, "score": score, "score_ci95": 0.01, "seconds": 1.0}
    return result | ({"error": error} if error else {})


# A toy score surface, a sum over a trial's keys: l2 peaks at weight 20 (past its grid's top, 3), LwF at weight 0.02
# (below its grid's bottom, 0.1), MAS keeps rising with lambda (only the bound stops it), DER++ at alpha 0.05 and beta 2
# (its choice, 0.1 and 1, at the low and the high edge of a 3 x 3 grid), replay's shift is best at its edge 2 (a linear
# grid, not widened).
PEAKS = {"l2.weight": 20, "lwf.weight": 0.02, "der.alpha": 0.05, "der.beta": 2}


def _toy(trial: dict) -> dict:
    score = 0.0
    for key, value in trial["params"].items():
        if key == "mas.lambda":
            score += math.log10(value)
        elif key == "replay.shift":
            score -= (value - 2) ** 2
        else:
            score -= (math.log10(value) - math.log10(PEAKS[key])) ** 2
    return {"strategy": trial["strategy"], "params": trial["params"], "score": score, "score_ci95": 0.01}


def test_a_choice_at_its_grids_edge_widens_the_grid_a_decade_at_a_time(base):
    p = tune.base_params(base, "domain-even-odd", [])
    trials = tune.grid(["l2", "lwf", "mas", "replay", "der"], {})
    rounds = []

    def run(extra, widening):
        rounds.append([(t["strategy"], *t["params"].values()) for t in extra])
        return [_toy(t) for t in extra]

    results = tune.widen([_toy(t) for t in trials], trials, p, run)
    assert rounds == [  # each from its chosen edge, a decade on; DER++ along each of its keys
        [("l2", 30.0), ("lwf", 0.01), ("mas", 1000.0), ("der", 0.01, 1.0), ("der", 0.1, 10.0)],
        [("l2", 300.0), ("lwf", 0.001), ("mas", 10000.0)],  # DER++ chooses inside what it tried
        [("mas", 100000.0)],  # l2 and LwF too; MAS until the bound
    ]
    assert len(rounds) == tune.WIDENINGS
    chosen = tune.at_edge(tune.choose(results)[0], trials)
    assert (
        chosen["l2"]["params"] == {"l2.weight": 30.0} and chosen["l2"]["widened"] == 2 and "at_edge" not in chosen["l2"]
    )
    assert chosen["lwf"]["params"]["lwf.weight"] == 0.01 and chosen["lwf"]["widened"] == 2
    assert chosen["mas"]["params"] == {"mas.lambda": 100000.0} and chosen["mas"]["at_edge"] == ["mas.lambda"]
    assert chosen["der"]["params"] == {"der.alpha": 0.1, "der.beta": 1.0} and chosen["der"]["widened"] == 2
    assert "at_edge" not in chosen["der"]
    assert chosen["replay"]["params"] == {"replay.shift": 2}  # at the edge of a linear grid: neither widened nor marked
    assert "widened" not in chosen["replay"] and "at_edge" not in chosen["replay"]
    assert [r.get("widened") for r in results if r["strategy"] == "mas"] == [None] * 5 + [1, 2, 3]
    assert [t.get("widened") for t in trials if t["strategy"] == "l2"] == [None] * 6 + [1, 2]
    # an interrupted run (fewer results than trials) widens nothing
    assert tune.widen([_toy(t) for t in trials[:-1]], trials[:], p, run) == [_toy(t) for t in trials[:-1]]
    assert len(rounds) == tune.WIDENINGS
    assert not tune.widenable("agem", "agem.memory_batch", [64, 256, 1000])  # a count
    assert not tune.widenable("replay", "replay.shift", [0, 1, 2]) and not tune.widenable("l2", "l2.weight", [0.1, 0.2])
    assert tune.widenable("der", "der.alpha", [0.1, 0.1, 0.3, 1.0, 1.0])  # each value once per beta
    assert tune.widenable("ewc", "alpha", [100, 1000, 10000])  # a strength given as integers (--space)
    assert tune.widenable("gem", "gem.margin", strategy_class("gem").search_space["gem.margin"])  # a log grid


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux's per-process peak memory")
def test_a_trials_peak_memory_is_its_own_and_freed_memory_goes_back():
    """``peak_memory_mb`` is the worker's peak during one trial, not since the worker began: after a reset the
    peak is what the process holds now, and a large allocation freed afterwards still counts in it."""
    import numpy as np

    from forgetting.tuning.trial import peak_memory, release_memory, reset_peak_memory

    size_mb = 300
    block = np.ones(size_mb * 2**20, np.uint8)  # touched, so resident
    del block
    release_memory()
    before = peak_memory()
    reset_peak_memory()
    after_reset = peak_memory()
    assert after_reset < before - size_mb / 2  # the earlier block no longer counts
    block = np.ones(size_mb * 2**20, np.uint8)
    del block
    release_memory()
    assert peak_memory() >= after_reset + size_mb * 0.9


def test_a_trial_process_out_of_memory_is_one_clear_error():
    """Ray Tune gives up on the whole run when Ray stops a trial's process for lack of memory; the tuner says so in
    one line with the fix (fewer trials at once), and other errors pass through as they are."""
    from ray.exceptions import OutOfMemoryError

    class Tuner:
        def __init__(self, cause):
            self.cause = cause

        def fit(self):
            raise RuntimeError("Caught unexpected exception") from self.cause

    with pytest.raises(ForgettingError, match=r"out of memory .* \(--cpus-per-trial 4\)") as caught:
        tune.fitted(Tuner(OutOfMemoryError("1 worker(s) were killed")), cpus=2)
    assert "\n" not in str(caught.value)
    with pytest.raises(RuntimeError, match="unexpected"):
        tune.fitted(Tuner(ValueError("something else")), cpus=1)


def test_choose_takes_the_best_validation_score_and_skips_failed_trials():
    results = [_trial("ewc", 10, 0.7), _trial("ewc", 100, 0.8), _trial("ewc", 1e6, None, "the loss became nan")]
    results += [_trial("l2", 0.1, 0.75), _trial("l2", 1, 0.75)]
    stopped = {"strategy": "ewc", "params": {"alpha": 1}, "score": None, "score_ci95": None}
    results.insert(0, stopped | {"stopped": {"epoch": 2, "of": 6, "score": 0.95}})  # scored early, not chosen
    chosen, failed = tune.choose(results)
    assert chosen["ewc"] == {"params": {"alpha": 100}, "score": 0.8, "score_ci95": 0.01, "trials": 4, "stopped": 1}
    assert "stopped after epoch 2 of 6 (val acc 0.9500 then)" in tune.describe(results[0])
    assert chosen["l2"]["params"] == {"l2.weight": 0.1}  # the first of equals
    assert failed == {}
    # a strategy whose every trial failed is named with its own first error, and the others are still chosen
    chosen, failed = tune.choose([_trial("l2", 1, 0.6), _trial("ewc", 1e6, None, "the loss became nan")])
    assert list(chosen) == ["l2"] and failed == {"ewc": "the loss became nan"}


class _Result:  # what Ray Tune's ResultGrid yields, as `finished` reads it
    def __init__(self, trial, metrics=None, error=None):
        self.config, self.metrics, self.error = {"trial": trial}, metrics, error


def test_a_strengths_values_become_one_job_the_rest_stay_apart():
    trials = tune.grid(["naive", "ewc", "online_ewc", "lwf", "replay", "der", "gem", "generative_replay", "rtf"], {})
    jobs = tune.stacked(trials)
    by_strategy = {job["strategy"]: job for job in jobs if "stack" in job}
    assert by_strategy["ewc"] == {"strategy": "ewc", "params": {}, "stack": {"alpha": EWC_GRID}, "halving": True}
    # DER++: its two coefficients' every pair in one job, the keys' values in step
    space = strategy_class("der").search_space
    pairs = [(a, b) for a in space["der.alpha"] for b in space["der.beta"]]
    assert by_strategy["der"]["halving"] and len([j for j in jobs if j["strategy"] == "der"]) == 1
    assert list(zip(*by_strategy["der"]["stack"].values(), strict=True)) == pairs
    assert "halving" not in tune.stacked(trials, halving=False)[1]
    assert by_strategy["lwf"]["stack"] == {"lwf.weight": strategy_class("lwf").search_space["lwf.weight"]}
    assert by_strategy["gem"]["stack"] == {"gem.margin": strategy_class("gem").search_space["gem.margin"]}
    # generative replay's weight halves; RtF's trains every value to the end (its feedback's optimiser state)
    weights = strategy_class("generative_replay").search_space["generative_replay.weight"]
    assert by_strategy["generative_replay"] == {
        "strategy": "generative_replay", "params": {}, "stack": {"generative_replay.weight": weights}, "halving": True
    }  # fmt: skip
    rtf = {"strategy": "rtf", "params": {}, "stack": {"rtf.weight": strategy_class("rtf").search_space["rtf.weight"]}}
    assert by_strategy["rtf"] == rtf
    # online EWC: one job per value of gamma, each stacking every alpha
    online = [job for job in jobs if job["strategy"] == "online_ewc"]
    gammas = strategy_class("online_ewc").search_space.get("online_ewc.gamma", [None])
    assert len(online) == len(gammas) and all(len(j["stack"]["online_ewc.alpha"]) > 1 for j in online)
    # naive has no values, replay's shift is not a strength: one job per trial
    assert [j for j in jobs if j["strategy"] in ("naive", "replay")] == [
        t for t in trials if t["strategy"] in ("naive", "replay")
    ]
    # the jobs of the most values first, so that the last to run are short
    sizes = [len(each_value(job)) for job in jobs]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 1 and sizes[-1] == 1
    # every trial is in exactly one job
    expanded = [value for job in jobs for value in each_value(job)]
    assert sorted(map(repr, expanded)) == sorted(map(repr, trials))


def test_a_stacked_trial_gives_each_repetition_its_values_strengths(base):
    seeds = len(params.repetition_seeds(base))
    ewc = {"strategy": "ewc", "params": {}, "stack": {"alpha": [10, 1000]}}
    assert per_repetition(ewc, base).tolist() == [10.0] * seeds + [1000.0] * seeds
    der = {"strategy": "der", "params": {}, "stack": {"der.alpha": [0.1, 1.0], "der.beta": [0.3, 3.0]}}
    assert per_repetition(der, base).tolist() == [[0.1, 0.3]] * seeds + [[1.0, 3.0]] * seeds
    # a coefficient the grid does not search: each value's row takes params.yaml's
    alpha_only = {"strategy": "der", "params": {}, "stack": {"der.alpha": [0.1, 1.0]}}
    beta = base["der"]["beta"]
    assert per_repetition(alpha_only, base).tolist() == [[0.1, beta]] * seeds + [[1.0, beta]] * seeds
    assert per_repetition({"strategy": "naive", "params": {}}, base) is None


def test_one_value_per_trial_holds_in_every_round_and_widened_values_train_to_the_end():
    trials = tune.grid(["ewc", "der"], {})
    ways = {"old": ["--one-value-per-trial"], "default": [], "no-halving": ["--no-halving"]}
    parser = argparse.ArgumentParser()
    tune.add_arguments(parser)
    for way, options in ways.items():
        args = parser.parse_args(["--scenario", "domain", "--tasks", "even-odd", *options])
        first, widened = tune.as_jobs(trials, args), tune.as_jobs(trials, args, widening=True)
        if way == "old":  # the old way's widening rounds too: one job per trial
            assert first == trials and widened == trials
            continue
        assert len(first) == len(widened) == 2 and all("stack" in job for job in first + widened)
        assert [job.get("halving", False) for job in first] == [way == "default"] * 2
        assert not any(job.get("halving") for job in widened)


def test_finished_trials_keep_failures_and_leave_out_those_ctrl_c_stopped():
    trials = [{"strategy": "ewc", "params": {"alpha": a}} for a in (1, 10, 100, 1000)]
    done = {"score": 0.8, "score_ci95": 0.01, "seconds": 2.0}
    grid = [
        _Result(trials[3], {"results": [{**trials[3], **done}]}),
        _Result(
            {"strategy": "ewc", "params": {}, "stack": {"alpha": [1, 10]}}, {}, RuntimeError("...\nValueError: died")
        ),
        _Result(trials[2], {}),  # stopped by Ctrl-C before it reported
    ]
    failed = {"score": None, "score_ci95": None, "error": "ValueError: died"}
    assert tune.finished(grid, trials) == [{**trials[0], **failed}, {**trials[1], **failed}, {**trials[3], **done}]


def test_an_interrupted_tune_keeps_its_finished_trials_and_chooses_nothing(tmp_path, base):
    p = tune.base_params(base, "domain-even-odd", [])
    path = tune.write_results(tmp_path, "domain-even-odd", p, [_trial("ewc", 10, 0.7)], None, ["seeds=2"], 5.0)
    assert path == tmp_path / "domain-even-odd.partial.json"
    assert json.loads(path.read_text())["trials"] == [_trial("ewc", 10, 0.7)]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["domain-even-odd.partial.json"]  # nothing chosen
    results = [_trial("ewc", 10, 0.7)]
    tune.write_results(tmp_path, "domain-even-odd", p, results, tune.choose(results)[0], [], 5.0)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["domain-even-odd.json", "domain-even-odd.yaml"]


def test_results_merge_with_earlier_strategies_and_both_files_are_written(tmp_path, base):
    p = tune.base_params(base, "domain-even-odd", [])
    first = [_trial("ewc", 10, 0.7), _trial("ewc", 100, 0.8), _trial("l2", 1, 0.6)]
    tune.write_results(tmp_path, "domain-even-odd", p, first, tune.choose(first)[0], [], 12.0)
    again = [_trial("l2", 0.1, 0.9)]
    p2 = tune.base_params(base, "domain-even-odd", ["seeds=2"])
    tune.write_results(tmp_path, "domain-even-odd", p2, again, tune.choose(again)[0], ["seeds=2"], 3.0)
    trials = json.loads((tmp_path / "domain-even-odd.json").read_text())
    assert [(t["strategy"], t["score"]) for t in trials["trials"]] == [("ewc", 0.7), ("ewc", 0.8), ("l2", 0.9)]
    tuned = settings.tuned("domain-even-odd", tmp_path)
    assert tuned["chosen"]["ewc"]["params"] == {"alpha": 100} and tuned["chosen"]["l2"]["params"] == {"l2.weight": 0.1}
    assert tuned["seeds"] == [1000, 1001] and tuned["overrides"] == ["seeds=2"]  # this run's
    # each choice keeps the seeds it was made on: the tuning seeds, disjoint from params.yaml's reporting ones
    assert tuned["chosen"]["ewc"]["seeds"] == [1000, 1001, 1002, 1003, 1004] and tuned["chosen"]["l2"]["seeds"] == [
        1000,
        1001,
    ]
    assert not set(tuned["chosen"]["ewc"]["seeds"]) & set(params.repetition_seeds(base))
    assert tuned["tasks"] == settings.SEQUENCES["even-odd"]
    written = (tmp_path / "domain-even-odd.yaml").read_text()
    assert "&id" not in written  # the seeds written out, no YAML aliases
    # the time is this run's, for the strategies it tuned; each kept choice's keys in their order
    assert written.startswith("# Chosen by `forgetting tune` on validation data (3 s for l2; the others' in earlier")
    assert list(tuned["chosen"]["ewc"]) == ["params", "score", "score_ci95", "trials", "stopped", "seeds", "under"]
    # what each choice's trials trained under, that they did not search: read back as the run's params give it
    ewc, l2 = tuned["chosen"]["ewc"]["under"], tuned["chosen"]["l2"]["under"]
    assert ewc["fisher.estimator"] == p["fisher"]["estimator"] and ewc["finetune.epochs"] == p["finetune"]["epochs"]
    assert "alpha" not in ewc and "fisher.estimator" not in l2 and "l2.weight" not in l2 and "seeds" not in l2
    assert ewc["data.train_per_digit"] == p["data"]["train_per_digit"] and "data.manual_dir" not in ewc
    assert settings.other_values(ewc, p) == [] and settings.other_values(l2, p2) == []
    p3 = tune.base_params(base, "domain-even-odd", ["finetune.epochs=1", "data.train_per_digit=50"])
    assert settings.other_values(ewc, p3) == [("data.train_per_digit", "all", 50), ("finetune.epochs", 6, 1)]


def test_update_params_keeps_comments(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = path.read_text()
    chosen = {
        "l2": {"params": {"l2.weight": 0.03}},
        "ewc": {"params": {"alpha": 100.0}},
        "si": {"params": {"si.c": 1000}},
    }
    tune.update_params(path, chosen)
    after = path.read_text()
    p = params.read(path)
    assert p["l2"]["weight"] == 0.03 and p["alpha"] == 100 and p["si"]["c"] == 1000
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 3  # the three values, comments and layout kept
    # each number in the kind params.yaml writes it: alpha an int (1000), si.c a float (10.0)
    assert [b.split("#")[0].strip() for _, b in changed] == ["alpha: 100", "weight: 0.03", "c: 1000.0"]
    assert all(a.split("#")[1:] == b.split("#")[1:] for a, b in changed)


def test_experiment_command_sets_the_setting_and_every_tuned_value():
    tuned = {
        "scenario": "class",
        "tasks": settings.SEQUENCES["split5"],
        "chosen": {"ewc": {"params": {"alpha": 1e4}}, "lwf": {"params": {"lwf.weight": 0.3}}, "naive": {"params": {}}},
    }
    assert experiment.command("class-split5", tuned, "class-split5", queue=True) == [
        *("dvc", "exp", "run", "-n", "class-split5", "--queue"),
        *("-S", "scenario=class", "-S", "tasks=[[0,1],[2,3],[4,5],[6,7],[8,9]]", "-S", "task_inputs.kind=digits"),
        *("-S", "alpha=10000.0", "-S", "lwf.weight=0.3"),
    ]
    permuted = {"scenario": "domain", "tasks": settings.SEQUENCES["permuted"], "chosen": {}}
    assert experiment.command("domain-permuted", permuted, "p")[-6:] == [  # DVC reads "per_task" as per_task
        *("-S", "task_inputs.kind=permuted", "-S", "data.train_per_digit=1000", "-S", 'gem.memory="per_task"')
    ]
    # stages to run, after the values: dvc exp run's targets
    targets = ("evaluate@ewc", "evaluate@lwf")
    assert experiment.command("class-split5", tuned, "c", targets=targets)[-4:] == ["-S", "lwf.weight=0.3", *targets]


def test_an_experiments_target_must_be_a_stage_of_the_pipeline(capsys, monkeypatch):
    from forgetting import cli

    monkeypatch.chdir(ROOT)
    assert cli.main(["exp", "domain-even-odd", "evaluate@ewk", "--dry"]) == 1
    assert capsys.readouterr().err == (
        "error: forgetting exp: no stage 'evaluate@ewk' in dvc.yaml: did you mean evaluate@ewc?\n"
    )
    # stages after an option are stages too (argparse alone stops taking positionals at the first option)
    assert cli.main(["exp", "domain-even-odd", "--dry", "evaluate@ewc", "evaluate@si"]) == 0
    assert capsys.readouterr().out.split()[-2:] == ["evaluate@ewc", "evaluate@si"]
    with pytest.raises(SystemExit) as exit_info:  # an unknown option stays argparse's one-line error
        cli.main(["exp", "domain-even-odd", "--dry", "evaluate@ewc", "--fast"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: forgetting: unrecognized arguments: --fast (see forgetting --help)\n")


# --- end to end: a tiny tune on real MNIST under a local Ray -------------------------------------------------------

TINY = {"seeds": 2, "train_per_digit": 30, "epochs": 1}


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory, tfds_dir) -> Path:  # noqa: F811 (the fixture imported above)
    """A copy of the project whose params.yaml trains 2 repetitions for 1 epoch on 30 examples per digit, and whose
    pipeline runs l2 only."""
    from ruamel.yaml import YAML

    repo = copy_project(tmp_path_factory.mktemp("tune") / "repo", tfds_dir)
    yaml_rt = YAML()  # round trip: the comments stay
    p = yaml_rt.load((repo / "params.yaml").read_text())
    p["seeds"], p["data"]["train_per_digit"] = TINY["seeds"], TINY["train_per_digit"]
    p["train"]["epochs_a"], p["train"]["epochs_joint"], p["finetune"]["epochs"] = 1, 1, 1
    p["replay"]["buffer_size"] = 100  # at most 30 examples of a digit here
    p["agem"]["buffer_size"], p["agem"]["memory_batch"] = 100, 32
    p["gem"]["buffer_size"], p["gem"]["memory_batch"] = 100, 32
    p["der"]["buffer_size"] = 100
    p["icarl"]["buffer_size"] = 100
    with open(repo / "params.yaml", "w") as handle:
        yaml_rt.dump(p, handle)
    keep_only(repo, ["l2"])  # CI's time: the experiment's pipeline runs the tuned strategy's stages alone
    run(repo, "git", "commit", "-qam", "tiny")
    return repo


def _tuning_files(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted((repo / "tuning").rglob("*")) if p.is_file()}


def _fails(repo: Path, *args: str) -> str:
    """Run `forgetting tune ARGS` in ``repo`` (in this process: CI's time); it must exit non-zero with one `error:`
    line and write nothing to tuning/."""
    from forgetting import cli

    before = _tuning_files(repo)
    code, out, err = run_in(repo, lambda: cli.main(["tune", *args]))
    assert code != 0
    output = out + err
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert _tuning_files(repo) == before
    return errors[0]


@pytest.mark.e2e
def test_bad_tune_input_is_one_line_and_writes_nothing(tiny_repo, tmp_path):
    setting = ("--scenario", "domain", "--tasks", "even-odd")
    assert "unknown strategy 'ewk'" in _fails(tiny_repo, *setting, "--strategies", "ewk")
    assert "unknown task sequence 'split3'" in _fails(tiny_repo, "--scenario", "domain", "--tasks", "split3")
    assert "search space of l2.weight is empty" in _fails(
        tiny_repo, *setting, "--strategies", "l2", "--space", "l2.weight="
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    no_mnist = _fails(
        tiny_repo, *setting, "--strategies", "naive", "-S", f"data.manual_dir={empty}", "-S", f"data.tfds_dir={empty}"
    )
    assert no_mnist.startswith(f"error: forgetting tune: MNIST is not in {empty}/ (missing: train-images")


@pytest.mark.e2e
def test_tiny_tune_then_its_values_as_a_dvc_experiment(tiny_repo):
    output = run(
        tiny_repo,
        *("forgetting", "tune", "--scenario", "domain", "--tasks", "even-odd", "-S", "finetune.epochs=3"),
        *("--strategies", "l2", "--space", "l2.weight=0.01,30,1e4", "--update-params", "--cpus-per-trial", "2"),
    )
    assert "[3/3]" in output and "I0000" not in output
    # the three values trained in one job, each on its own repetitions; successive halving stopped one at its rung
    assert output.count("for 3 values together") == 2 and output.count("stopped after epoch 1 of 3 (val acc") == 1
    everything = json.loads((tiny_repo / "tuning/domain-even-odd.json").read_text())["trials"]
    trials = [t for t in everything if t["strategy"] == "l2"]
    assert {t["strategy"] for t in everything} > {"l2"}  # the committed trials of the others are kept
    grid, widened = [t for t in trials if "widened" not in t], [t for t in trials if "widened" in t]
    assert sorted(t["params"]["l2.weight"] for t in grid) == [0.01, 30, 1e4]
    # a choice at the grid's low edge (0.01; 1e4 stopped early) widens the grid by a decade, through Ray again
    first = max((t for t in grid if t["score"] is not None), key=lambda t: t["score"])
    assert bool(widened) == (first["params"]["l2.weight"] == 0.01)
    if widened:
        assert widened[0]["params"]["l2.weight"] == 0.001 and widened[0]["widened"] == 1
        assert "at the edge of its grid, so a decade further (1 of at most 3): l2 l2.weight=0.001" in output
    (stopped,) = [t for t in trials if t["score"] is None]
    assert stopped["stopped"]["epoch"] == 1 and stopped["stopped"]["of"] == 3 and 0 < stopped["stopped"]["score"] < 1
    trials.remove(stopped)
    for t in trials:
        assert len(t["repetitions"]) == TINY["seeds"] and 0 < t["score"] < 1
        assert t["score"] == pytest.approx(statistics.mean(t["repetitions"]), abs=2e-6)
        assert t["score"] == pytest.approx((t["task_a_accuracy"] + t["task_b_accuracy"]) / 2, abs=2e-6)
        half = statistics.stdev(t["repetitions"]) / math.sqrt(TINY["seeds"]) * 12.706204736174698  # t_0.975,1
        assert t["score_ci95"] == pytest.approx(half, abs=3e-5)  # from rounded repetitions, times t = 12.7
    best = max(trials, key=lambda t: t["score"])
    tuned = yaml.safe_load((tiny_repo / "tuning/domain-even-odd.yaml").read_text())
    under = tuned["chosen"]["l2"].pop("under")  # the tiny run's own values, which a full run's report would name
    assert under["data.train_per_digit"] == TINY["train_per_digit"] and "l2.weight" not in under
    assert tuned["chosen"]["l2"] == {
        "params": best["params"],
        "score": best["score"],
        "score_ci95": best["score_ci95"],
        "trials": 3 + len(widened),
        "stopped": 1,
        **({"widened": len(widened)} if widened else {}),
        "seeds": list(range(tune.TUNING_SEED, tune.TUNING_SEED + TINY["seeds"])),  # not the reported seeds
    }
    assert read_params(tiny_repo)["l2"]["weight"] == best["params"]["l2.weight"]
    assert "# penalty weight/2" in (tiny_repo / "params.yaml").read_text()  # comments kept

    run(tiny_repo, "git", "checkout", "params.yaml")
    run(tiny_repo, "git", "add", "tuning")
    run(tiny_repo, "git", "commit", "-qm", "tuned")
    output = run(tiny_repo, "forgetting", "exp", "domain-even-odd", "evaluate@l2")  # the stages L2's metrics need
    assert f"-S l2.weight={best['params']['l2.weight']}" in output
    assert stages_run(output) == {"prepare", "train_a", "finetune@l2", "evaluate@l2"}
    shown = json.loads(run(tiny_repo, "dvc", "exp", "show", "--json"))
    experiments = [e for row in shown for e in (row.get("experiments") or []) if e.get("name") == "domain-even-odd"]
    assert experiments, shown
    (revision,) = experiments[0]["revs"]
    assert revision["data"]["params"]["params.yaml"]["data"]["l2"]["weight"] == best["params"]["l2.weight"]


def test_console_reports_a_bad_setting_in_one_line(capsys, monkeypatch):
    from forgetting import cli

    monkeypatch.chdir(ROOT)
    before = sorted((ROOT / "tuning").rglob("*")) if (ROOT / "tuning").exists() else []
    assert cli.main(["tune", "--scenario", "domian", "--tasks", "even-odd"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: forgetting tune: unknown scenario 'domian': use one of domain, task, class\n"
    assert (sorted((ROOT / "tuning").rglob("*")) if (ROOT / "tuning").exists() else []) == before
