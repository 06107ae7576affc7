"""The package's import graph: no cycles, and each domain imports only the layers below it.

Read from the sources with :mod:`ast` (nothing is imported), so a new cycle fails here with the modules that
form it, not later as a half-initialised module at import time.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"cpt_hw": ROOT / "cpt_hw", "cpt_driver": ROOT / "host" / "cpt_driver"}

#: Domain -> the cpt_hw domains (and cpt_driver) it may import.  The root modules (errors, fileio, paths,
#: schedules and the compatibility aliases config/golden/regmap) form the domain "cpt_hw".
LAYERS: dict[str, set[str]] = {
    "cpt_hw": {"cpt_hw.hw"},                       # the aliases point into hw
    "cpt_hw.hw": {"cpt_driver"},                   # the DDR layout and the driver's spec/errors
    "cpt_hw.gen": {"cpt_hw.hw", "cpt_driver"},
    "cpt_hw.flows": {"cpt_hw.hw", "cpt_hw.gen", "cpt_driver"},
    "cpt_hw.nn": {"cpt_hw.hw", "cpt_driver"},
    "cpt_hw.fast": {"cpt_hw.hw", "cpt_hw.nn"},
    "cpt_hw.models": {"cpt_hw.nn"},
    "cpt_hw.train": {"cpt_hw.hw", "cpt_hw.nn", "cpt_hw.fast", "cpt_hw.models"},
    "cpt_hw.export": {"cpt_hw.hw", "cpt_hw.nn", "cpt_hw.models", "cpt_hw.train"},
    "cpt_hw.cli": {"cpt_hw.hw", "cpt_hw.gen", "cpt_hw.flows", "cpt_hw.nn", "cpt_hw.fast", "cpt_hw.models",
                   "cpt_hw.train", "cpt_hw.export"},
    "cpt_driver": {"cpt_hw.hw"},                   # lazily only: see OPTIONAL
}

#: Imports inside functions that close a cycle on purpose: cpt_hw is an optional dependency of the driver (the
#: board's pynq backend needs only numpy), so the emu backend and spec import it when they are used.
OPTIONAL = {("cpt_driver.backends.emu", "cpt_hw.hw.emu_device")}


def _modules() -> dict[str, Path]:
    mods = {}
    for top, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            parts = f.relative_to(root).with_suffix("").parts
            name = ".".join((top,) + parts)
            mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = f
    return mods


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """(import node, at module level) for every import that runs (``if TYPE_CHECKING:`` blocks excluded)."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, top))
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, True)
    return out


def _targets(mod: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement executes: the module, its packages, imported submodules."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = mod.split(".") if MODULES[mod].name == "__init__.py" else mod.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            src = ".".join(base + ([node.module] if node.module else []))
        else:
            src = node.module or ""
        names = [src] + [f"{src}.{a.name}" for a in node.names]
    else:
        names = [a.name for a in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        while name:  # importing a.b.c runs a and a.b first
            if name in MODULES and name != mod and not mod.startswith(name + "."):
                out.append(name)
            name = name.rpartition(".")[0]
    return out


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for mod, path in MODULES.items():
        for node, top in _imports(ast.parse(path.read_text())):
            if top or not module_level_only:
                g[mod].update(t for t in _targets(mod, node) if (mod, t) not in OPTIONAL)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return found


def _domain(mod: str) -> str:
    parts = mod.split(".")
    if parts[0] == "cpt_driver":
        return "cpt_driver"
    if mod == "cpt_hw.__main__":
        return "cpt_hw.cli"  # ``python -m cpt_hw`` is the CLI
    pkg = f"cpt_hw.{parts[1]}" if len(parts) > 1 else ""
    return pkg if pkg in MODULES and MODULES[pkg].name == "__init__.py" else "cpt_hw"


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module-level", "with-function-imports"])
def test_no_import_cycles(module_level_only):
    assert _cycles(_graph(module_level_only)) == []


def test_each_domain_imports_only_the_layers_below_it():
    wrong = []
    for mod, deps in sorted(_graph(module_level_only=False).items()):
        here = _domain(mod)
        for dep in sorted(deps):
            there = _domain(dep)
            if there != here and there not in LAYERS[here] and there != "cpt_hw":
                wrong.append(f"{mod} -> {dep}")
    assert wrong == []


def test_the_driver_imports_cpt_hw_only_when_used():
    """cpt_driver runs on the board with numpy alone: no module-level import of cpt_hw."""
    g = _graph(module_level_only=True)
    assert [(m, d) for m in g for d in g[m] if m.startswith("cpt_driver") and d.startswith("cpt_hw")] == []


def test_the_hardware_model_needs_no_torch():
    """cpt_hw.hw (config, register map, golden model, emulated device) is plain Python + numpy."""
    heavy = {"torch", "matplotlib", "cocotb", "jinja2"}
    found = []
    for mod, path in MODULES.items():
        if _domain(mod) == "cpt_hw.hw":
            for node, _ in _imports(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                found += [f"{mod}: {n}" for n in names if n.split(".")[0] in heavy]
    assert found == []


def test_the_graph_sees_a_cycle():
    """The checker itself: a two-module cycle is found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
