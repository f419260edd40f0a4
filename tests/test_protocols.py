"""The published protocols as presets (forgetting.config.protocols): their values against those read from the
authors' code, valid params in every scenario, `forgetting exp --protocol`, and the report naming the protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetting.config import params, protocols, settings
from forgetting.errors import ForgettingError
from forgetting.tuning import experiment

ROOT = Path(__file__).resolve().parents[1]
# What the authors' scripts pass (GT-RIPL/Continual-Learning-Benchmark, scripts/split_MNIST_incremental_*.sh:
# --reg_coef; penalty reg_coef * sum F (p - p*)^2) and default (GMvandeVen/continual-learning,
# params/param_values.py: ewc_lambda with a 1/2 as ours, si_c without), and so our strengths, by hand.
OURS = {
    ("hsu2018", "task"): {"l2.weight": 0.02, "alpha": 200, "online_ewc.alpha": 800, "si.c": 600, "mas.lambda": 2},
    ("hsu2018", "domain"): {"l2.weight": 1.0, "alpha": 200, "online_ewc.alpha": 1400, "si.c": 6000, "mas.lambda": 2e4},
    ("hsu2018", "class"): {"l2.weight": 200, "alpha": 1200, "online_ewc.alpha": 200, "si.c": 1200, "mas.lambda": 2},
    ("vandeven", "task"): {"alpha": 1e5, "si.c": 20.0},
    ("vandeven", "domain"): {"alpha": 1e10, "si.c": 1e5},
    ("vandeven", "class"): {"alpha": 1e9, "si.c": 1e4},
}


@pytest.fixture
def base() -> dict:
    return params.read(ROOT / "params.yaml")


@pytest.mark.parametrize(("name", "scenario"), list(OURS))
def test_each_protocols_strengths_are_the_authors_converted_to_our_penalties(name, scenario):
    values = protocols.PROTOCOLS[name].params(scenario, 5)
    assert {key: values[key] for key in OURS[name, scenario]} == pytest.approx(OURS[name, scenario])


def test_the_protocols_shared_values_are_the_papers():
    hsu = protocols.PROTOCOLS["hsu2018"].params("class", 5)
    assert hsu["model.hidden_units"] == [400, 400] and hsu["train.batch_size"] == 128
    assert hsu["train.epochs_a"] == hsu["finetune.epochs"] == 4 and hsu["finetune.iterations"] is None
    assert hsu["finetune.learning_rate"] == hsu["train.learning_rate"] == 0.001
    assert hsu["class_outputs"] == "seen" and hsu["replay.buffer_size"] == 1100 and hsu["seeds"] == 10
    assert hsu["model.init"] == "torch"
    # dataloaders/base.py: Pad(2), then Normalize((0.1000,), (0.2752,)) "for 32x32"
    assert (hsu["model.input_padding"], hsu["model.input_mean"], hsu["model.input_sd"]) == (2, 0.1, 0.2752)
    assert hsu["finetune.carry_optimizer"] is True  # agents/default.py: reset_optimizer False
    assert hsu["mas.importance"] == "batch"  # agents/regularization.py: |grad of pred.pow(2).mean()| per batch
    # agents/exp_replay.py's GEM_1100: Naive_Rehearsal's training on the memory, each task's whole memory's gradient,
    # --reg_coef 0.5 as project2cone2's margin; every preset keeps one optimiser kind, Adam (their SGD rows: a run)
    assert hsu["gem.buffer_size"] == 1100 and hsu["gem.memory_batch"] >= 1100 and hsu["gem.margin"] == 0.5
    assert hsu["gem.train_on_memory"] is True
    # and, from dff5200 (GEM's first commit, with Table 2's GEM row) to abe7fd4, GEM.learn_batch repeated
    # Naive_Rehearsal's memory step: two draws of each task, each a constraint; the other presets draw once
    assert [preset.params("class", 5)["gem.draws"] for preset in protocols.PROTOCOLS.values()] == [2, 1, 1]
    for preset in protocols.PROTOCOLS.values():
        assert preset.params("class", 5)["train.optimizer"] == preset.params("class", 5)["finetune.optimizer"] == "adam"
    vdv = protocols.PROTOCOLS["vandeven"].params("class", 5)
    assert vdv["train.iterations_a"] == vdv["finetune.iterations"] == 2000 and vdv["train.batch_size"] == 128
    assert vdv["train.iterations_joint"] == 10000  # contexts x iters
    assert protocols.PROTOCOLS["vandeven"].params("domain", 2)["train.iterations_joint"] == 4000
    assert (
        vdv["class_outputs"] == "all" and vdv["replay.buffer_size"] == 1000 and vdv["generative_replay.latent"] == 100
    )
    assert vdv["generative_replay.iterations"] == 2000 and vdv["generative_replay.hidden_units"] == [400, 400]
    assert vdv["generative_replay.targets"] == "hard"  # DGR: compare_MNIST.py and compare.py run it without --distill
    assert vdv["rtf.iterations"] == 2000 and vdv["rtf.latent"] == 100 and vdv["rtf.learning_rate"] == 0.001
    assert vdv["rtf.task_a"] == "joint"  # main.py --feedback: one network, classifier and decoder, from task 1
    assert vdv["generative_replay.weight"] == vdv["rtf.weight"] == 1.0  # their 1/t : 1 - 1/t, times t
    assert vdv["model.init"] == "torch"  # U(+-1/sqrt(784)) on 28 x 28 in [0, 1], as they are
    assert (vdv["model.input_padding"], vdv["model.input_mean"], vdv["model.input_sd"]) == (0, 0.0, 1.0)
    assert vdv["finetune.carry_optimizer"] is True  # --optimizer adam, not adam_reset
    assert vdv["lwf.loss"] == "kl" and "lwf.weight" not in vdv  # the 2022 code's LwF is not matched: ours
    # each protocol's own forms of MAS and LwF, set even where they are the defaults, so that a workspace that
    # ran another protocol leaks none into it
    # (and replay's and GEM's memory: agents/exp_replay.py's Naive_Rehearsal keeps memory_size // task_count random
    # examples of each task and repeats them max(1, len(new data) // memory_size) times, "old data : new data = 1:1")
    keys = ("mas.importance", "lwf.loss", "replay.memory", "replay.mix", "gem.memory", "gem.mix")
    forms = {name: {k: preset.params("class", 5)[k] for k in keys} for name, preset in protocols.PROTOCOLS.items()}
    ours, theirs = ("class_balanced", "per_task") * 2, ("per_task", "one_to_one") * 2
    assert forms == {
        "hsu2018": dict(zip(keys, ("batch", "kl", *theirs), strict=True)),
        "vandeven": dict(zip(keys, ("per_example", "kl", *ours), strict=True)),
        "vandeven2018": dict(zip(keys, ("per_example", "vandeven2018", *ours), strict=True)),
    }


def test_van_de_ven_and_tolias_2018_is_their_first_code():
    """e17b714: main.py's defaults as in 2022 (iters 2000, lr 0.001, batch 128, fc 2 x 400, z 100, temp 2), but
    train.py's active classes (the class scenario's outputs, those seen so far) and encoder.py / utils.py's LwF loss."""
    vdv2018 = {scenario: protocols.PROTOCOLS["vandeven2018"].params(scenario, 5) for scenario in ("task", "class")}
    assert vdv2018["class"]["class_outputs"] == "seen" and vdv2018["task"]["class_outputs"] == "all"
    for values in vdv2018.values():
        assert values["lwf.loss"] == "vandeven2018" and values["lwf.weight"] == 1.0 and values["lwf.temperature"] == 2
        assert (
            values["train.iterations_a"] == values["finetune.iterations"] == 2000 and values["train.batch_size"] == 128
        )
        assert values["model.hidden_units"] == [400, 400] and values["model.input_padding"] == 0  # mnist28: 28 x 28
        assert values["generative_replay.iterations"] == values["rtf.iterations"] == 2000
        assert values["finetune.carry_optimizer"] is True and values["train.learning_rate"] == 0.001
        assert "alpha" not in values and "si.c" not in values  # their EWC and SI values are not in this code


@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
@pytest.mark.parametrize("setting", ["task-split5", "domain-split5", "class-split5", "domain-even-odd"])
def test_a_protocol_makes_valid_params_in_every_setting_and_is_recognised(base, name, setting):
    from forgetting.strategies import validate_params

    setting_params = settings.setting_params(base, setting)
    assert protocols.protocol_of(setting_params) is None  # the project's own protocol
    values = protocols.PROTOCOLS[name].params(setting_params["scenario"], len(setting_params["tasks"]))
    preset = params.with_values(setting_params, values)
    validate_params(preset)  # every key's type, and every strategy's buffer against the data
    assert protocols.protocol_of(preset) == name
    assert protocols.protocol_of(params.with_values(preset, {"train.batch_size": 32})) is None
    assert protocols.protocol_of(params.with_values(preset, {"seeds": 2})) == name  # fewer runs: the same protocol


def test_exp_with_a_protocol_sets_its_values_not_the_tuned_ones():
    dvc = experiment.command("class-split5", None, "class-split5-hsu2018", protocol="hsu2018")
    assert dvc[:5] == ["dvc", "exp", "run", "-n", "class-split5-hsu2018"]
    assert dvc[5:11] == [
        "-S",
        "scenario=class",
        "-S",
        "tasks=[[0,1],[2,3],[4,5],[6,7],[8,9]]",
        "-S",
        "task_inputs.kind=digits",
    ]
    assert "model.hidden_units=[400,400]" in dvc and "alpha=1200" in dvc and 'class_outputs="seen"' in dvc
    assert "finetune.iterations=null" in dvc
    with pytest.raises(ForgettingError, match="unknown protocol 'hsu'"):
        protocols.protocol("hsu")


def test_the_report_names_the_protocol_a_run_followed_and_where_it_still_differs(tmp_path):
    from test_report import make_params, write_metrics

    from forgetting.reporting import report

    own = make_params(settings.SEQUENCES["even-odd"])
    preset = params.with_values(own, protocols.PROTOCOLS["hsu2018"].params("domain", 2))
    for name, p in (("own", own), ("hsu2018", preset)):
        report.make(p, tmp_path / name, write_metrics(tmp_path / f"{name}-metrics", 2), tmp_path / "tuning")
    assert "Protocol:" not in (tmp_path / "own" / "README.md").read_text()
    markdown = (tmp_path / "hsu2018" / "README.md").read_text()
    assert "Protocol: `hsu2018`, Hsu et al. 2018's (values read from GT-RIPL/Continual-Learning-Benchmark" in markdown
    assert "EWC's Fisher as the expectation over the model's outputs (theirs: the gradient of its" in markdown
