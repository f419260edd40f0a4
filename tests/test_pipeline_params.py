"""Granular caching: which stage declares which param (what `dvc exp run -S KEY=...` will rerun), and that a stage
reads exactly those (``params.load``: what ``dvc.api.params_show`` gives)."""

import json
import shutil
import subprocess
from pathlib import Path

import dvc.api
import pytest
import yaml

from forgetting.config import params
from forgetting.strategies import listed

# its tests share a module fixture: one pytest worker runs them all
pytestmark = pytest.mark.xdist_group("test_pipeline_params")

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = tuple(listed())  # dvc.yaml's strategy list
STAGES = [
    "prepare",
    "train_a",
    "train_joint",
    "fisher",
    *(f"finetune@{s}" for s in STRATEGIES),
    *(f"evaluate@{s}" for s in ("task_a", "joint", *STRATEGIES)),
]


def _flatten(node: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys |= _flatten(value, f"{dotted}.") if isinstance(value, dict) else {dotted}
    return keys


@pytest.fixture(scope="module")
def declared() -> dict[str, set[str]]:
    everything = params.read(ROOT / "params.yaml")
    return {stage: _flatten(params.select(everything, params.declared(stage, ROOT / "dvc.yaml"))) for stage in STAGES}


def test_a_stage_loads_exactly_what_dvc_params_show_gives(tmp_path, monkeypatch):
    """For every stage, check_params and report included: the same keys, values and order as DVC's own API (in a
    copy without dvc.lock, where DVC answers in half a second rather than five)."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    for stage in ("check_params", *STAGES, "report"):
        assert json.dumps(params.load(stage)) == json.dumps(dvc.api.params_show(stages=stage)), stage
    with pytest.raises(params.ForgettingError, match="cannot read the params of stage 'finetune@ewk'"):
        params.load("finetune@ewk")


def _readers(declared: dict[str, set[str]], key: str) -> set[str]:
    return {stage for stage, keys in declared.items() if any(k == key or k.startswith(f"{key}.") for k in keys)}


@pytest.mark.parametrize(
    ("key", "stages"),
    [
        ("alpha", {"finetune@ewc"}),
        ("online_ewc.alpha", {"finetune@online_ewc"}),
        ("online_ewc.gamma", {"finetune@online_ewc"}),
        ("l2.weight", {"finetune@l2"}),
        ("si.c", {"finetune@si"}),
        ("si.xi", {"finetune@si"}),
        ("mas.lambda", {"finetune@mas"}),
        ("replay.buffer_size", {"finetune@replay", "finetune@replay_equal_steps"}),
        ("replay.shift", {"finetune@replay", "finetune@replay_equal_steps"}),
        ("replay.memory", {"finetune@replay", "finetune@replay_equal_steps"}),
        ("replay.mix", {"finetune@replay", "finetune@replay_equal_steps"}),
        ("agem.buffer_size", {"finetune@agem"}),
        ("agem.memory_batch", {"finetune@agem"}),
        ("gem.margin", {"finetune@gem"}),
        ("gem.train_on_memory", {"finetune@gem"}),
        ("gem.memory", {"finetune@gem"}),
        ("gem.mix", {"finetune@gem"}),
        ("gem.draws", {"finetune@gem"}),
        ("der.alpha", {"finetune@der"}),
        ("der.buffer_size", {"finetune@der"}),
        ("icarl.buffer_size", {"finetune@icarl"}),
        ("icarl.weight", {"finetune@icarl"}),
        ("generative_replay.weight", {"finetune@generative_replay"}),
        ("generative_replay.epochs", {"finetune@generative_replay"}),
        ("generative_replay.iterations", {"finetune@generative_replay"}),
        ("generative_replay.latent", {"finetune@generative_replay"}),
        ("generative_replay.targets", {"finetune@generative_replay"}),
        ("rtf.weight", {"finetune@rtf"}),
        ("rtf.latent", {"finetune@rtf"}),
        ("rtf.iterations", {"finetune@rtf"}),
        ("rtf.task_a", {"finetune@rtf"}),
        ("lwf.temperature", {"finetune@lwf"}),
        ("lwf.weight", {"finetune@lwf"}),
        # later tasks' Fisher uses the same settings as task A's
        ("fisher.estimator", {"fisher", "finetune@ewc", "finetune@online_ewc"}),
        ("fisher.num_examples", {"fisher", "finetune@ewc", "finetune@online_ewc"}),
        ("finetune.epochs", {f"finetune@{s}" for s in STRATEGIES}),
        ("train.epochs_a", {"train_a"}),
        ("train.epochs_joint", {"train_joint"}),
        ("finetune.iterations", {f"finetune@{s}" for s in STRATEGIES}),
        ("train.iterations_a", {"train_a"}),
        ("train.iterations_joint", {"train_joint"}),
        ("data.validation_fraction", {"prepare"}),
        ("data.train_per_digit", {"prepare"}),
        ("train.learning_rate", {"train_a", "train_joint"}),
        ("finetune.learning_rate", {f"finetune@{s}" for s in STRATEGIES}),
        # the scenario and the task sequence shape every model and every evaluation, but not the data
        ("scenario", set(STAGES) - {"prepare"}),
        ("tasks", set(STAGES)),
    ],
)
def test_each_param_is_declared_only_by_the_stages_that_read_it(declared, key, stages):
    assert _readers(declared, key) == stages


def test_every_param_is_declared_by_some_stage(declared):
    params = _flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))
    used = set().union(*declared.values())
    assert params == used
