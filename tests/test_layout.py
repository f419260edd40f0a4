"""The package's layout is its architecture: each subpackage imports only those in the layers below it, and no two
modules import each other, directly or round a longer loop (imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "forgetting"
# Lowest first: a unit may import the units before it, never one after it.
LAYERS = (
    "errors",
    "files",
    "stage",
    "config",
    "data",
    "nn",
    "evaluation",
    "strategies",
    "training",
    "reporting",
    "tuning",
    "restore",
    "cli",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in SRC.rglob("*.py")}


def imports(module: str) -> set[str]:
    """The project modules ``module`` imports (``from forgetting.x import y`` counts y where y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "forgetting":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "forgetting"}
    return found - {module}


def unit(module: str) -> str:
    return module.split(".")[1]


def test_every_module_belongs_to_a_layer():
    assert {unit(m) for m in MODULES if m != "forgetting"} == set(LAYERS)


def test_each_layer_imports_only_the_layers_below_it():
    upward = [
        f"{module} imports {other}"
        for module in MODULES
        if module != "forgetting"
        for other in imports(module)
        if other != "forgetting" and LAYERS.index(unit(other)) > LAYERS.index(unit(module))
    ]
    assert upward == []


def test_no_import_cycles():
    graph = {module: imports(module) & MODULES.keys() for module in MODULES}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                return [*path, module, other]
            if other not in state and (cycle := visit(other, [*path, module])):
                return cycle
        state[module] = "done"
        return None

    cycles = [cycle for module in sorted(graph) if module not in state and (cycle := visit(module, []))]
    assert cycles == []


def test_the_graph_holds_the_imports_the_sources_show():
    """The graph these tests walk is the real one (imports inside functions included)."""
    assert "forgetting.training.loop" in imports("forgetting.tuning.trial")
    assert "forgetting.strategies" in imports("forgetting.training.loop")
    assert "forgetting.nn.model" in imports("forgetting.strategies.base")
