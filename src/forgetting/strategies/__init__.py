"""Continual-learning strategies, one module each: ``<name>.py`` defines the ``Strategy`` subclass whose ``name`` is
``<name>`` (its math, params, search space, memory cost and hooks; ``base.py`` has the interface).

Which strategies run, and in which order the report shows them, is the list in dvc.yaml (``vars: strategies``):
``listed()`` reads it, and ``finetune@<name>`` / ``evaluate@<name>`` iterate over it. Nothing else names them:
adding a strategy is its module, its section in params.yaml and one line in that list.

A strategy's module is imported only when it is asked for, so that ``finetune@ewc`` runs (and depends on)
``ewc.py`` and not every other strategy's module: dvc.yaml lists exactly the modules each stage imports.
"""

from __future__ import annotations

import functools
import pkgutil
from importlib import import_module
from pathlib import Path
from typing import Any

from forgetting.errors import ForgettingError
from forgetting.strategies.base import Memory, QuadraticPenalty, Strategy, TaskAState

PIPELINE = Path(__file__).resolve().parents[3] / "dvc.yaml"  # the project this package belongs to
NOT_STRATEGIES = {"base"}  # modules of this package that hold no strategy

__all__ = [
    "Memory",
    "QuadraticPenalty",
    "Strategy",
    "TaskAState",
    "available",
    "build_strategy",
    "listed",
    "strategy_class",
]


def available() -> list[str]:
    """Every strategy module of this package, by name (sorted; nothing imported)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in NOT_STRATEGIES)


@functools.cache
def _listed(pipeline: Path) -> tuple[str, ...]:
    from ruamel.yaml import YAML

    if not pipeline.is_file():
        return tuple(available())
    content = YAML(typ="safe", pure=True).load(pipeline.read_text())
    for entry in content.get("vars", []):
        if isinstance(entry, dict) and "strategies" in entry:
            return tuple(entry["strategies"])
    raise ForgettingError(f"{pipeline} has no strategy list (vars: strategies): `git checkout {pipeline.name}`")


def listed(pipeline: str | Path | None = None) -> list[str]:
    """The strategies the pipeline runs, in order: ``vars: strategies`` of ``pipeline``, by default the dvc.yaml of
    the working directory (where DVC runs every stage), else of the project this package belongs to; every
    available module where there is neither (the package alone, as on a Ray worker)."""
    if pipeline is None:
        pipeline = next((p for p in (Path("dvc.yaml").resolve(), PIPELINE) if p.is_file()), PIPELINE)
    return list(_listed(Path(pipeline)))


def strategy_class(name: str) -> type[Strategy]:
    """The strategy ``name``: the ``Strategy`` subclass of module ``<name>.py`` whose ``name`` it is."""
    if name not in available() and name in listed():
        raise ForgettingError(
            f"dvc.yaml's strategy list (vars: strategies) names {name!r}, but src/forgetting/strategies/{name}.py "
            "does not exist: add the module, or remove the entry"
        )
    if name not in available():
        raise ForgettingError(f"unknown strategy {name!r}: use one of {', '.join(listed())}")
    module = import_module(f"{__name__}.{name}")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Strategy) and value.__module__ == module.__name__
    ]
    matching = [cls for cls in found if cls.name == name]
    if len(matching) != 1:
        raise ForgettingError(
            f"{module.__file__} must define one Strategy subclass with name = {name!r} (found "
            f"{', '.join(f'{cls.__name__} ({cls.name!r})' for cls in found) or 'none'})"
        )
    return matching[0]


def build_strategy(name: str, params: dict[str, Any], task_a: TaskAState) -> Strategy:
    """The strategy ``name``, built from its params and task A's state."""
    return strategy_class(name).from_params(params, task_a)


def __getattr__(attribute: str) -> type[Strategy]:
    """``from forgetting.strategies import EWC`` still works, importing only that strategy's module."""
    for name in available():
        module = import_module(f"{__name__}.{name}")
        if isinstance(getattr(module, attribute, None), type):
            return getattr(module, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
