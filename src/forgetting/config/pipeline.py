"""The project's dvc.yaml as the package reads it: the strategy list (``vars: strategies``), the one place that names
the strategies the pipeline runs. No TensorFlow here (``forgetting.config.params`` uses it to know which params.yaml
keys the strategies own)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

from forgetting.errors import ForgettingError

PIPELINE = Path(__file__).resolve().parents[3] / "dvc.yaml"  # the project this package belongs to
STRATEGIES = Path(__file__).resolve().parents[1] / "strategies"
NOT_STRATEGIES = {"__init__", "base"}  # modules of the strategies package that hold no strategy


def available() -> list[str]:
    """Every strategy module of the package, by name (sorted; nothing imported)."""
    return sorted(p.stem for p in STRATEGIES.glob("*.py") if p.stem not in NOT_STRATEGIES)


@functools.cache
def _entries(pipeline: Path) -> dict[str, dict[str, Any]]:
    from ruamel.yaml import YAML

    if not pipeline.is_file():
        return {name: {} for name in available()}
    content = YAML(typ="safe", pure=True).load(pipeline.read_text())
    for entry in content.get("vars", []) if isinstance(content, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("strategies"), dict):
            return dict(entry["strategies"])
    raise ForgettingError(f"{pipeline} has no strategy list (vars: strategies): `git checkout {pipeline.name}`")


def entries(pipeline: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The strategy list, name -> its entry, in order: ``vars: strategies`` of ``pipeline``, by default the dvc.yaml
    of the working directory (where DVC runs every stage), else of the project this package belongs to; every
    available module (with empty entries) where there is neither (the package alone, as on a Ray worker)."""
    if pipeline is None:
        pipeline = next((p for p in (Path("dvc.yaml").resolve(), PIPELINE) if p.is_file()), PIPELINE)
    return _entries(Path(pipeline))


@functools.cache
def owned_keys(name: str) -> tuple[str, ...]:
    """The params.yaml keys that strategy ``name``'s module types as its own: the keys of the ``params_section``
    mapping its class writes out, read from the source (no import: no TensorFlow); none for a strategy with no
    module (``forgetting.strategies.strategy_class`` says so in one line)."""
    source = STRATEGIES / f"{name}.py"
    if not source.is_file():
        return ()
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "params_section" for t in targets):
                return tuple(key.value for key in node.value.keys if isinstance(key, ast.Constant))
    return ()


def listed(pipeline: str | Path | None = None) -> list[str]:
    """The strategies the pipeline runs, in order (``entries``)."""
    return list(entries(pipeline))
