"""params.yaml, typed: one pydantic model per section, strict.

Every key must be known (a typo is reported with the closest valid key), every key must be present, numbers must
be finite and in range. ``load(stage)`` checks the whole file, then returns only the keys that the stage declares
in dvc.yaml (what ``dvc.api.params_show`` gives, without its cost: ``declared``, ``select``), so that reading an
undeclared key fails loudly instead of silently escaping DVC's change tracking. The ``check_params`` stage runs the
same check on every change of params.yaml, so a typo fails ``dvc repro`` even where no stage reads the key. No
TensorFlow here: a bad value fails in well under a second.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from forgetting.config import pipeline
from forgetting.errors import ForgettingError

FISHER_ESTIMATORS = ("exact", "sampled", "empirical")
SCENARIOS = ("domain", "task", "class")  # forgetting.data.scenarios, which imports TensorFlow
CLASS_OUTPUTS = ("all", "seen")
INITS = ("glorot", "torch")  # forgetting.nn.model.INITS, which imports TensorFlow
PARAMS_FILE = "params.yaml"


def number(description: str, **bounds: float) -> Any:
    """A float field with its bounds and the phrase that error messages give as the fix."""
    return Annotated[float, Field(description=description, **bounds)]


def integer(description: str, **bounds: int) -> Any:
    """An int field with its bounds and the phrase that error messages give as the fix."""
    return Annotated[int, Field(description=description, **bounds)]


STRENGTH = number("a number >= 0", ge=0)
POSITIVE = number("a number > 0", gt=0)
AT_LEAST_ONE = integer("an integer >= 1", ge=1)
# A training's length in optimiser steps, in place of its epochs (training.loop.schedule)
ITERATIONS = Annotated[
    Annotated[int, Field(ge=1)] | None,
    Field(description="an integer >= 1 (optimiser steps, in place of the epochs), or null (train by epochs)"),
]


class Section(BaseModel):
    """Unknown keys, missing keys, non-finite numbers and strings for numbers are all errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class DataParams(Section):
    manual_dir: Annotated[str, Field(min_length=1, description="a folder path (~ is your home folder)")]
    tfds_dir: Annotated[str, Field(min_length=1, description="a folder path (~ is your home folder)")]
    validation_fraction: number("a number between 0 and 1", gt=0, lt=1)
    train_per_digit: Annotated[
        Annotated[int, Field(ge=1)] | Literal["all"],
        Field(description="an integer >= 1 (train examples kept per digit, for quick runs), or all"),
    ]


class ModelParams(Section):
    hidden_units: Annotated[
        Annotated[int, Field(ge=1)] | Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=8)],
        Field(description="a width >= 1, or a list of 1 to 8 widths, one per hidden layer (e.g. [400, 400])"),
    ]
    dropout: number("a number in [0, 1)", ge=0, lt=1)
    init: Annotated[
        Literal[INITS],
        Field(
            description="glorot (Keras' default: Glorot-uniform kernels, zero biases) or torch (PyTorch's nn.Linear)"
        ),
    ]
    input_padding: integer("an integer from 0 to 16 (zero pixels on each side; Hsu et al.: 2, to 32 x 32)", ge=0, le=16)
    input_mean: number("a number (subtracted from every pixel; Hsu et al.: 0.1)")
    input_sd: number("a number > 0 (the pixels divided by it; Hsu et al.: 0.2752)", gt=0)


OPTIMIZER = Annotated[
    Literal["adam", "sgd"], Field(description="adam or sgd (plain SGD, no momentum: Hsu et al.'s SGD runs)")
]


class TrainParams(Section):
    optimizer: OPTIMIZER
    learning_rate: POSITIVE
    batch_size: AT_LEAST_ONE
    epochs_a: AT_LEAST_ONE
    epochs_joint: AT_LEAST_ONE
    iterations_a: ITERATIONS
    iterations_joint: ITERATIONS


class FinetuneParams(Section):
    epochs: AT_LEAST_ONE
    iterations: ITERATIONS
    optimizer: OPTIMIZER
    learning_rate: POSITIVE
    carry_optimizer: Annotated[
        bool, Field(description="true (each task's Adam goes on from the previous task's) or false (a new one)")
    ]


TASK_INPUTS = ("digits", "permuted", "rotated")


class TaskInputsParams(Section):
    kind: Annotated[
        Literal[TASK_INPUTS],
        Field(description="digits (split MNIST), permuted or rotated (the same digits, shown differently per task)"),
    ]
    degrees_per_task: number("a number of degrees in [0, 360] (rotated: task t is turned by t times it)", ge=0, le=360)


class FisherParams(Section):
    estimator: Annotated[Literal[FISHER_ESTIMATORS], Field(description="one of " + ", ".join(FISHER_ESTIMATORS))]
    num_examples: Annotated[
        Annotated[int, Field(ge=1)] | Literal["all"],
        Field(description="an integer >= 1, or all (task A's whole train split)"),
    ]


TASKS = "a list of 2 to 10 tasks, each a list of distinct digits 0-9, e.g. [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]"


class Params(Section):
    """The common sections of params.yaml; each strategy's own keys (``alpha``, ``l2``, ...) are typed in its module
    (``Strategy.params_section``) and added by ``validate``."""

    seed: integer("an integer from 0 to 2**32 - 1 (NumPy's seed range)", ge=0, lt=2**32)
    seeds: integer(
        "an integer from 1 to 100 (repetitions trained together; 2 or more give confidence intervals)", ge=1, le=100
    )
    scenario: Annotated[Literal[SCENARIOS], Field(description="one of " + ", ".join(SCENARIOS))]
    class_outputs: Annotated[
        Literal[CLASS_OUTPUTS],
        Field(description="all (the softmax over every digit) or seen (over the digits of the tasks seen so far)"),
    ]
    data: DataParams
    model: ModelParams
    train: TrainParams
    finetune: FinetuneParams
    fisher: FisherParams
    task_inputs: TaskInputsParams
    tasks: Annotated[
        list[Annotated[list[Annotated[int, Field(ge=0, le=9)]], Field(min_length=1)]],
        Field(min_length=2, max_length=10, description=TASKS),
    ]

    @model_validator(mode="after")
    def _last_seed_in_range(self) -> Params:
        last = self.seed + self.seeds - 1
        if last >= 2**32:
            raise ValueError(
                f"seed = {self.seed} with seeds = {self.seeds} is invalid: the last repetition's seed, seed + "
                f"{self.seeds - 1} = {last}, is past 2**32 - 1; lower seed or seeds"
            )
        return self

    @model_validator(mode="after")
    def _one_optimizer_carried(self) -> Params:
        if self.finetune.carry_optimizer and self.train.optimizer != self.finetune.optimizer:
            raise ValueError(
                f"finetune.carry_optimizer goes on from task A's optimiser, but train.optimizer is "
                f"{self.train.optimizer!r} and finetune.optimizer {self.finetune.optimizer!r}; set both to one "
                "(or finetune.carry_optimizer to false)"
            )
        return self

    @model_validator(mode="after")
    def _outputs_of_the_class_scenario(self) -> Params:
        if self.class_outputs != "all" and self.scenario != "class":
            raise ValueError(
                f"class_outputs = {self.class_outputs!r} is for the class scenario (scenario = {self.scenario!r} "
                "has a softmax per task or over one shared head already); set class_outputs: all"
            )
        return self

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, tasks: list[list[int]]) -> list[list[int]]:
        if any(len(set(task)) != len(task) for task in tasks):
            raise ValueError(f"a task lists a digit twice; set it to {TASKS}")
        return tasks

    @model_validator(mode="after")
    def _tasks_fit_their_inputs(self) -> Params:
        """Split MNIST: each digit in one task only. Permuted and rotated MNIST: every task the same digits, in the
        domain or task scenario (the class scenario tells the tasks' digits apart, and these share theirs)."""
        if self.task_inputs.kind == "digits":
            seen: set[int] = set()
            for task in self.tasks:
                if seen & set(task):
                    raise ValueError(
                        f"tasks share the digits {sorted(seen & set(task))}; each digit may belong to one task only "
                        "(or set task_inputs.kind to permuted or rotated, where every task has the same digits)"
                    )
                seen |= set(task)
            return self
        kind = self.task_inputs.kind
        if any(sorted(task) != sorted(self.tasks[0]) for task in self.tasks):
            raise ValueError(
                f"task_inputs.kind = {kind!r} shows the same digits in every task, but tasks lists different ones; "
                f"list the same digits for each task, e.g. {[list(range(10))] * 2}"
            )
        if self.scenario == "class":
            raise ValueError(
                f"task_inputs.kind = {kind!r} gives every task the same digits, which the class scenario cannot tell "
                "apart; use scenario domain or task"
            )
        if kind == "rotated":
            degrees = self.task_inputs.degrees_per_task
            angles = [round(t * degrees % 360, 9) for t in range(len(self.tasks))]
            if len(set(angles)) < len(angles):
                again = next(t for t, angle in enumerate(angles) if angle in angles[:t])
                raise ValueError(
                    f"task_inputs.degrees_per_task = {degrees:g} turns task {again + 1} by {again} x {degrees:g} "
                    f"degrees, as much as task {angles.index(angles[again]) + 1}: the tasks repeat; choose an angle "
                    f"whose multiples up to {len(angles) - 1} x it differ, e.g. {360 / len(angles) / 2:g}"
                )
        return self

    @model_validator(mode="after")
    def _every_softmax_has_two_classes(self) -> Params:
        """A task trained through a softmax over one class has loss 0 and accuracy 1 whatever the network does: in
        the domain and task scenarios every task's own labels, in the class scenario with ``class_outputs: seen``
        the first task's."""
        if self.scenario == "class":
            if self.class_outputs == "seen" and len(self.tasks[0]) < 2:
                raise ValueError(
                    f"the first task, {self.tasks[0]}, has one digit: with class_outputs = 'seen' it trains through "
                    "a softmax over that one class (loss 0, accuracy 1 whatever the network learns); give it 2 or "
                    "more digits, or set class_outputs: all"
                )
            return self
        for number, task in enumerate(self.tasks, 1):
            if len(task) < 2:
                raise ValueError(
                    f"task {number} of tasks, {task}, has one digit: in the {self.scenario} scenario its labels are "
                    "then one class (loss 0, accuracy 1 whatever the network learns); give every task 2 or more "
                    "digits, or use scenario: class"
                )
        return self


def repetition_seeds(params: dict[str, Any]) -> list[int]:
    """The seeds of the repetitions that every model stage trains together: ``seed``, ``seed + 1``, ...
    (``seeds`` of them). Repetition r of a run trains as it would alone, as the one repetition of seed + r (on the
    same data: the split is the one ``seed`` picks)."""
    return [params["seed"] + r for r in range(params["seeds"])]


def validate(params: dict[str, Any], types: dict[str, Any] | None = None) -> Params:
    """The typed params; anything wrong is a ForgettingError naming the first bad key and what it should be.

    Beside the common sections, each strategy's own keys (``pipeline.owned_keys``): required for the strategies
    dvc.yaml lists, allowed for the others (a strategy left out of a run keeps its values). ``types``: their types
    (``forgetting.strategies.validate_params`` reads them from the modules); by default they are typed when their
    strategy's stage builds it (``validate_section``)."""
    types = types or {}
    required = {key for name in pipeline.listed() for key in pipeline.owned_keys(name)}
    allowed = {key for name in pipeline.available() for key in pipeline.owned_keys(name)} - required
    fields = [(key, types.get(key, Any), True) for key in sorted(required)]
    fields += [(key, types.get(key, Any), False) for key in sorted(allowed)]
    model = _with_sections(tuple(fields))
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ForgettingError(_explain(exc, params, model)) from None


def validate_section(params: dict[str, Any], section: dict[str, Any]) -> None:
    """One strategy's own keys (``Strategy.params_section``) of ``params`` against their types; the rest ignored."""
    model = create_model(
        "StrategyParams",
        __config__=ConfigDict(extra="ignore", strict=True, allow_inf_nan=False),
        **{key: (annotation, ...) for key, annotation in section.items()},
    )
    try:
        model.model_validate(params)
    except ValidationError as exc:
        raise ForgettingError(_explain(exc, params, model)) from None


@functools.cache
def _with_sections(fields: tuple[tuple[str, Any, bool], ...]) -> type[Params]:
    """``Params`` with the strategies' keys: (key, type, required) each."""
    return create_model(
        "Params", __base__=Params, **{key: (annotation, ... if needed else None) for key, annotation, needed in fields}
    )


def parse_value(text: str) -> Any:
    """A value written on the command line (``-S KEY=VALUE``, ``--space KEY=V1,V2``), read as DVC reads params.yaml:
    YAML 1.2, so ``1e-4`` is a number (YAML 1.1 made it a string)."""
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ForgettingError(f"{text!r} is not a YAML value ({str(exc).strip().splitlines()[0]})") from None


def read(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as DVC reads it (YAML 1.2, so ``1e-4`` is a number)."""
    from ruamel.yaml import YAML, YAMLError

    path = Path(path)
    if not path.is_file():
        raise ForgettingError(f"{path} is missing: run from the project's root, or `git checkout {path}`")
    try:
        content = YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ForgettingError(f"{path} is not valid YAML ({first}): `git diff {path}` shows what changed") from None
    if not isinstance(content, dict):
        raise ForgettingError(f"{path} must be a mapping of keys to values: `git diff {path}` shows what changed")
    return content


def declared(stage: str, pipeline_file: str | Path = "dvc.yaml") -> list[str | None]:
    """The params.yaml keys that ``stage`` (``"finetune@ewc"``) declares in ``pipeline_file``, as DVC resolves it
    (its own parser: ``vars``, ``foreach`` and ``${...}``); None stands for the whole file. The lock file is not
    read: parsing it cost ``dvc.api.params_show`` about 5 s a stage, as long as the work of a small stage."""
    from dvc.exceptions import DvcException
    from dvc.parsing import DataResolver
    from dvc.repo import Repo
    from dvc.utils.serialize import load_yaml

    path = Path(pipeline_file)
    try:
        with Repo(str(path.parent)) as repo:
            resolver = DataResolver(repo, repo.root_dir, load_yaml(str(path), fs=repo.fs))
            definition = resolver.resolve_one(stage)[stage]
    except DvcException as exc:
        raise ForgettingError(f"cannot read the params of stage '{stage}': {exc}") from exc
    keys: list[str | None] = []
    for entry in definition.get("params", []):
        for file, names in entry.items() if isinstance(entry, dict) else [(PARAMS_FILE, [entry])]:
            if file != PARAMS_FILE:
                raise ForgettingError(
                    f"{path}: stage '{stage}' reads params from {file}: declare them in {PARAMS_FILE}"
                )
            keys += names or [None]
    return keys


def select(params: dict[str, Any], keys: list[str | None]) -> dict[str, Any]:
    """The part of params.yaml's content ``params`` that ``keys`` (``declared``) name, nested as in the file and in
    the order declared, as ``dvc.api.params_show`` gives it."""
    if None in keys:
        return json.loads(json.dumps(params))
    chosen: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        node = chosen
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(json.dumps(value_at(params, key)))
    return chosen


def load(stage: str) -> dict[str, Any]:
    """The params that ``stage`` (e.g. ``"finetune@ewc"``) declares in dvc.yaml, after checking the whole file: a
    stage that reads a key it does not declare fails (KeyError) instead of escaping DVC's change tracking."""
    content = read()
    validate(content)
    return select(content, declared(stage))


def _explain(exc: ValidationError, params: dict[str, Any], root: type[BaseModel] = Params) -> str:
    """One line for the most useful error: an unknown key first (a typo also makes its key 'missing'), then a
    missing key, then a bad value."""
    order = {"extra_forbidden": 0, "missing": 1}
    error = min(exc.errors(), key=lambda e: order.get(e["type"], 2))
    model, path = _field_path(error["loc"], root)
    key = ".".join(path)
    if error["type"] == "extra_forbidden":
        known = [f"{'.'.join(path[:-1])}.{name}".lstrip(".") for name in _keys(model)]
        hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        fix = f"did you mean {hint[0]}?" if hint else f"the keys here are {', '.join(known)}"
        return f"{PARAMS_FILE}: unknown key {key} ({fix})"
    if error["type"] == "missing":
        return f"{PARAMS_FILE}: {key} is missing; add it (`git diff {PARAMS_FILE}` shows what changed)"
    value = value_at(params, path)
    if error["type"] == "value_error" and not path:  # a check across keys
        return f"{PARAMS_FILE}: {error['ctx']['error']}"
    if error["type"] == "value_error":
        return f"{PARAMS_FILE}: {key} = {value!r} is invalid: {error['ctx']['error']}"
    problem = "is not a finite number" if error["type"] == "finite_number" else "is invalid"
    return f"{PARAMS_FILE}: {key} = {value!r} {problem}; set it to {_expected(model, path[-1])}"


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields by their key in params.yaml (the alias, where a key is a Python keyword)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _keys(model: type[BaseModel]) -> list[str]:
    return list(_fields(model))


def _field_path(loc: tuple, root: type[BaseModel] = Params) -> tuple[type[BaseModel], list[str]]:
    """(the model that holds the key, the key's path in params.yaml) for a pydantic error location; the location
    may go on below the key (a union's branch, a list index), which is dropped."""
    model: type[BaseModel] = root
    path: list[str] = []
    for part in loc:
        path.append(str(part))
        fields = _fields(model)
        annotation = fields[part].annotation if part in fields else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and len(path) < len(loc):
            model = annotation
            continue
        break
    return model, path


def value_at(document: dict[str, Any], key: str | list[str]) -> Any:
    """The value of a dotted key (``si.c``, or its parts) of params.yaml's content; None where it has none."""
    node: Any = document
    for part in key.split(".") if isinstance(key, str) else key:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def set_key(document: dict[str, Any], dotted: str, value: Any) -> None:
    """Set the dotted key (``si.c``) of params.yaml's content ``document`` in place; a key it does not have is an
    error."""
    *parents, leaf = dotted.split(".")
    node = value_at(document, parents)
    if not isinstance(node, dict) or leaf not in node:
        raise ForgettingError(f"{dotted} is not a key of params.yaml")
    node[leaf] = value


def with_values(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with dotted keys set; a key params.yaml does not have is an error."""
    params = json.loads(json.dumps(params))
    for dotted, value in values.items():
        set_key(params, dotted, value)
    return params


def _expected(model: type[BaseModel], key: str) -> str:
    field = _fields(model).get(key)
    if field is None:
        return "a valid value"
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
        return f"a mapping with the keys {', '.join(_keys(field.annotation))}"
    return field.description or "a valid value"
