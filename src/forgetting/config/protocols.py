"""Published protocols as presets: the params.yaml values that make a run follow a paper's protocol, so that its
figures can be set beside the paper's like for like (``forgetting exp SETTING --protocol NAME``; the report names
the protocol a run followed, and where it still differs from the paper's). No TensorFlow here.

Each value was read from the authors' code (the stored copies of their repositories, at the commits named in
``source``), and converted where our params define a quantity differently: our quadratic penalties are
``strength / 2 * sum_i w_i (theta_i - theta*_i)^2``, so a penalty written without the 1/2 (``reg_coef * sum ...``)
becomes strength = 2 x their coefficient. What our params cannot express is listed in ``differs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forgetting.config.params import value_at
from forgetting.errors import ForgettingError


@dataclass(frozen=True)
class Protocol:
    """A published protocol: its ``values`` (dotted params.yaml keys) for every scenario, those of each scenario
    (``by_scenario``), what a run of it cannot match (``differs``) and where it was read (``source``)."""

    title: str
    source: str
    values: dict[str, Any]
    by_scenario: dict[str, dict[str, Any]] = field(default_factory=dict)
    differs: tuple[str, ...] = ()
    per_task: dict[str, int] = field(default_factory=dict)  # keys whose value is this many per task of the sequence

    def params(self, scenario: str, tasks: int) -> dict[str, Any]:
        """Its values for a run of ``tasks`` tasks in ``scenario``."""
        values = self.values | self.by_scenario.get(scenario, {})
        return values | {key: count * tasks for key, count in self.per_task.items()}


# Hsu et al. 2018, "Re-evaluating continual learning scenarios: a categorization and case for strong baselines":
# GT-RIPL/Continual-Learning-Benchmark at d78b997, scripts/split_MNIST_incremental_{task,domain,class}.sh (every line:
# --repeat 10 --schedule 4 --batch_size 128 --model_name MLP400, Adam --lr 0.001), models/mlp.py (MLP400: two hidden
# layers of 400), agents/default.py (the class scenario's loss over the classes seen so far: valid_out_dim),
# agents/regularization.py and customization.py (loss += reg_coef * sum importance * (p - p*)^2, no 1/2; SI's
# damping 0.1; online EWC sums the Fisher: gamma 1; MAS's importance |grad of a batch's mean squared output|, averaged
# over the task's batches of 128: mas.importance batch), agents/exp_replay.py (Naive_Rehearsal_1100: 1100 stored,
# memory_size // t random examples of each of t tasks, the memory repeated max(1, N // memory_size) times beside the
# N new examples, "old data : new data = 1 : 1": memory per_task, mix one_to_one; GEM inherits it, and from dff5200,
# where GEM came in, to abe7fd4 its learn_batch repeated that memory step: two draws of each task, gem.draws 2);
# agents/default.py's one optimiser for the whole sequence (reset_optimizer False, which no script changes);
# models/mlp.py's nn.Linear layers at PyTorch's default init, the first over the 32 x 32 padded input (1024);
# dataloaders/base.py's MNIST: Pad(2) (zeros), then Normalize(mean 0.1, std 0.2752), no augmentation (train_aug off).
# --reg_coef per script (task / domain / class): L2 0.01 / 0.5 / 100, EWC_mnist 100 / 100 / 600, EWC_online_mnist
# 400 / 700 / 100, SI 300 / 3000 / 600, MAS 1 / 10000 / 1; ours are twice these (the 1/2 of our penalties).
HSU_REG_COEF = {
    "task": {"l2.weight": 0.01, "alpha": 100, "online_ewc.alpha": 400, "si.c": 300, "mas.lambda": 1},
    "domain": {"l2.weight": 0.5, "alpha": 100, "online_ewc.alpha": 700, "si.c": 3000, "mas.lambda": 10000},
    "class": {"l2.weight": 100, "alpha": 600, "online_ewc.alpha": 100, "si.c": 600, "mas.lambda": 1},
}
# van de Ven, Tuytelaars & Tolias 2022, "Three types of incremental learning" (GMvandeVen/continual-learning at
# e6d795a, params/param_values.py and params/options.py, splitMNIST): fc_lay 3 and fc_units 400 (two hidden layers of
# 400), Adam lr 0.001, batch 128, 2000 iterations a context (joint: contexts x iters), budget 100 per class, every
# class's output active from the start (neg_samples 'all'), temp 2, z_dim 100, SI's epsilon 0.1, one Adam over the
# contexts (--optimizer adam; adam_reset would renew it), models/fc/excitability_modules.py's layers initialised
# U(+-1/sqrt(in_features)) for weights and biases (init_weight standard) over 28 x 28 inputs; EWC's loss
# reg_strength * 0.5 * sum F (theta - theta*)^2 (ours as written) with ewc_lambda 1e5 / 1e10 / 1e9 (task / domain /
# class); SI's c * sum omega (theta - theta*)^2 (no 1/2, as in its v1 code) with si_c 10 / 50000 / 5000: ours twice.
VAN_DE_VEN_SI_C = {"task": 10.0, "domain": 50000.0, "class": 5000.0}
VAN_DE_VEN_EWC_LAMBDA = {"task": 1e5, "domain": 1e10, "class": 1e9}

# What both protocols share: a 2 x 400 MLP at PyTorch's default init, one Adam at 0.001 over every task, batches of
# 128, SI's damping 0.1, and stored examples as they are (no shifted copies).
TWO_BY_400_ADAM = {
    "model.hidden_units": [400, 400],
    "model.dropout": 0.0,
    "model.init": "torch",
    "train.optimizer": "adam",
    "finetune.optimizer": "adam",
    "train.learning_rate": 0.001,
    "train.batch_size": 128,
    "finetune.learning_rate": 0.001,
    "finetune.carry_optimizer": True,
    "si.xi": 0.1,
    "replay.shift": 0,
}


def rehearsal(memory: str, mix: str, draws: int = 1) -> dict[str, str | int]:
    """Replay's and GEM's ``memory`` and ``mix`` (strategies/replay.py): ours, class_balanced and per_task, as van de
    Ven et al.'s (their budget is per class; their replayed loss weighs (1 - 1/t) against the new task's 1/t), or Hsu
    et al.'s, per_task and one_to_one; and GEM's ``draws`` of each task's memory (strategies/gem.py)."""
    pairs = (("memory", memory), ("mix", mix))
    return {f"{name}.{key}": value for name in ("replay", "gem") for key, value in pairs} | {"gem.draws": draws}


def stored(examples: int) -> dict[str, int]:
    """Every strategy's buffer at ``examples`` stored examples."""
    return {f"{name}.buffer_size": examples for name in ("replay", "agem", "gem", "der", "icarl")}


# GMvandeVen/continual-learning's split-MNIST defaults, the same in its code of 2018 (e17b714: main.py, train.py) and
# of 2022 (above), but for the class scenario's outputs (2022: all from the start; 2018: those seen so far)
VAN_DE_VEN = (
    TWO_BY_400_ADAM
    | stored(1000)
    | {
        "model.input_padding": 0,  # 28 x 28 inputs in [0, 1]
        "model.input_mean": 0.0,
        "model.input_sd": 1.0,
        # the other protocols' forms set back, so that none leaks in from a workspace that ran one
        "mas.importance": "per_example",
        "lwf.loss": "kl",
        **rehearsal("class_balanced", "per_task"),
        "train.iterations_a": 2000,
        "finetune.iterations": 2000,
        "class_outputs": "all",
        "lwf.temperature": 2.0,
        # their replayed loss weighted (1 - 1/t) against the new task's 1/t: ours at weight 1, times t
        "generative_replay.weight": 1.0,
        "generative_replay.temperature": 2.0,
        "generative_replay.hidden_units": [400, 400],  # main.py: the generator's layers are the classifier's
        "generative_replay.iterations": 2000,
        "generative_replay.latent": 100,
        "generative_replay.learning_rate": 0.001,
        "generative_replay.targets": "hard",  # DGR: the previous model's predicted class (no --distill)
        "rtf.weight": 1.0,
        "rtf.temperature": 2.0,
        "rtf.latent": 100,
        "rtf.iterations": 2000,
        "rtf.learning_rate": 0.001,
        "rtf.task_a": "joint",  # the classifier and its feedback train together from the first task
    }
)
# The differences from their code that both versions share
NATURAL_ORDER = "the digits in their natural order (theirs: shuffled by each seed but seed 0)"
# Both codes train on all of MNIST's train split and evaluate on its test split; ours holds a validation split out
# (data.validation_fraction, above 0: the tuner's and the per-epoch logs' data)
HELD_OUT = (
    "each task trained on its train examples less the validation split held out (data.validation_fraction, 10%; "
    "theirs: all of MNIST's train split)"
)
VAN_DE_VEN_DIFFERS = (
    NATURAL_ORDER,
    HELD_OUT,
    "replay weighs each finished task as much as the new one by repeating the buffer (theirs: loss = "
    "L_new / t + (1 - 1 / t) L_replay)",
    "the generator's weights and RtF's heads and decoder Glorot-uniform with zero biases (theirs: PyTorch's "
    "default, as the classifier's)",
    "RtF's classifier and feedback trained together on task A for 2000 iterations from the task-A model (theirs: "
    "together from a fresh classifier), the classifier 4000 iterations on task A in all",
)


def van_de_ven_tasks(order_seed: int, count: int = 5) -> list[list[int]]:
    """The split of the digits into ``count`` tasks that their code (e17b714, data.py) makes for seed ``order_seed``
    (main.py seeds NumPy first): digit y takes the label ``permutation[y]``, and task k holds the labels k * w .. k * w
    + w - 1 (w = 10 // count), in that order; so the digit of label l, ``argsort(permutation)[l]``, sits at position
    l - k * w of task k (their domain label), which is our ``tasks`` list. Seed 0 is their exception: the natural
    order."""
    permutation = np.arange(10) if order_seed == 0 else np.random.RandomState(order_seed).permutation(10)
    digit_of, width = np.argsort(permutation), 10 // count
    return [[int(d) for d in digit_of[k * width : (k + 1) * width]] for k in range(count)]


# What a run of either preset says of the strategies that do not follow the paper's code: Table 2's page (which runs
# Hsu et al.'s quoted rows under vandeven2018 and the rest under hsu2018) leaves these out.
HSU_QUOTED = (
    "LwF, DGR and RtF are not in their code (their Table 2 quotes them): ours run with our values, the generator for "
    "generative_replay.epochs (3: about 280 iterations a task at batch 128; DGR's, 2000)"
)
VAN_DE_VEN_2018_OTHERS = (
    "only LwF, generative replay (DGR), RtF and joint follow their code: the other strategies run with our values"
)

PROTOCOLS: dict[str, Protocol] = {
    "hsu2018": Protocol(
        title="Hsu et al. 2018",
        source="GT-RIPL/Continual-Learning-Benchmark at d78b997 (scripts/split_MNIST_incremental_*.sh)",
        values=TWO_BY_400_ADAM
        | stored(1100)
        | {
            "model.input_padding": 2,  # their 28 x 28 digits padded to 32 x 32, then normalised
            "model.input_mean": 0.1,
            "model.input_sd": 0.2752,
            "train.epochs_a": 4,
            "train.epochs_joint": 4,
            "train.iterations_a": None,
            "train.iterations_joint": None,
            "finetune.epochs": 4,
            "finetune.iterations": None,
            "class_outputs": "all",  # the class scenario's: the classes seen so far (below)
            "online_ewc.gamma": 1.0,
            "mas.importance": "batch",
            # agents/exp_replay.py's GEM, as GEM_1100 runs it: trained on the memory too (Naive_Rehearsal's
            # learn_batch), each finished task's gradient on all of its stored examples, --reg_coef 0.5 the bound
            "gem.memory_batch": 1100,
            "gem.margin": 0.5,
            "gem.train_on_memory": True,
            **rehearsal("per_task", "one_to_one", draws=2),
            "lwf.loss": "kl",  # LwF is not in their code (the vandeven2018 preset has the runs they quote)
            "seeds": 10,
        },
        by_scenario={
            scenario: {key: 2 * value for key, value in coefficients.items()}
            | ({"class_outputs": "seen"} if scenario == "class" else {})
            for scenario, coefficients in HSU_REG_COEF.items()
        },
        differs=(
            "EWC's Fisher as the expectation over the model's outputs (theirs: the gradient of its predicted label)",
            HELD_OUT,
            "seeded runs (10 by default), mean ± 95% CI (theirs: 10 unseeded runs, mean ± sd)",
            HSU_QUOTED,
        ),
    ),
    "vandeven": Protocol(
        title="van de Ven et al. 2022",
        source="GMvandeVen/continual-learning at e6d795a (params/param_values.py, params/options.py)",
        values=VAN_DE_VEN,
        by_scenario={
            scenario: {"alpha": VAN_DE_VEN_EWC_LAMBDA[scenario], "si.c": 2 * VAN_DE_VEN_SI_C[scenario]}
            for scenario in VAN_DE_VEN_SI_C
        },
        per_task={"train.iterations_joint": 2000},
        differs=(
            *VAN_DE_VEN_DIFFERS,
            "5 runs seeded 42-46 unless -S seeds=20 (theirs: 20 seeds)",
            "L2, online EWC, MAS, LwF, DER++ and iCaRL's values are not taken from their code: ours run with our "
            "values",
        ),
    ),
    # van de Ven & Tolias 2018, "Generative replay with feedback connections as a general strategy for continual
    # learning" (arXiv 1809.10635v1), whose LwF, DGR and RtF rows Hsu et al.'s Table 2 quotes: GMvandeVen/continual-
    # learning at e17b714 (its first upload): main.py's defaults as above; train.py's active_classes (the class
    # scenario's outputs: those of the tasks seen so far); encoder.py's loss rnt * L_new + (1 - rnt) * L_replay with
    # rnt = 1/t; utils.py's loss_fn_kd (a mean over the classes and the batch, times T^2, the old model's answer padded
    # with zeros to the active classes): lwf.loss vandeven2018 at weight 1.
    "vandeven2018": Protocol(
        title="van de Ven & Tolias 2018",
        source="GMvandeVen/continual-learning at e17b714 (main.py, train.py, encoder.py, utils.py)",
        values=VAN_DE_VEN | {"lwf.loss": "vandeven2018", "lwf.weight": 1.0},
        by_scenario={"class": {"class_outputs": "seen"}},
        per_task={"train.iterations_joint": 2000},
        differs=(
            *VAN_DE_VEN_DIFFERS,
            "joint trained on every task for 2000 iterations a task (theirs, 'offline': the tasks so far, 2000 "
            "iterations at each task of the sequence)",
            "generative replay's replayed losses summed over the finished tasks' heads in the task scenario "
            "(theirs: averaged)",
            "5 runs seeded 42-46 (theirs: 5 seeds from compare_MNIST.py's --seed, 1111 by default)",
            VAN_DE_VEN_2018_OTHERS,
        ),
    ),
}


def protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ForgettingError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_of(params: dict[str, Any]) -> str | None:
    """The protocol whose every value params.yaml's content holds (for its scenario and task count; the number of
    repetitions aside: a cheaper run of a protocol is still that protocol), or None."""
    for name, preset in PROTOCOLS.items():
        values = preset.params(params["scenario"], len(params["tasks"]))
        if all(value_at(params, key) == value for key, value in values.items() if key != "seeds"):
            return name
    return None
