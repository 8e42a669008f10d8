"""The layout: one sub-package per stage of a bar's trip, imports pointing down the stages.

Read from the source (every ``import`` and ``from ... import``, at module level or inside functions),
so a later change that makes a stage import one above it, or closes a cycle, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mt5lab"

# Top-level modules every stage may import, each only the ones before it (no cycles among them).
BASE = ("_warnings", "progress", "errors", "catalog", "envsubst", "config")
# Entry points: may import every stage (not the test harnesses) and the entry points before them; no
# stage imports them. ``__init__`` and ``demo`` are top-level modules, ``cli`` is a package (the
# ``mt5lab`` command, one module per concern); every module in it is checked as ``cli``.
ENTRY = ("__init__", "demo", "cli")
ENTRY_PACKAGES = frozenset({"cli"})
# The stages, bottom to top, and the stages each may import besides the base modules. This is the
# README's layout section and every sub-package's "May import" paragraph, as data.
_RUNTIME = ("storage", "feast_repo", "bars", "features", "training", "online")
STAGES: dict[str, frozenset[str]] = {
    "storage": frozenset(),
    "feast_repo": frozenset({"storage"}),
    "bars": frozenset({"storage"}),
    "features": frozenset({"storage", "bars"}),
    "training": frozenset({"storage", "feast_repo", "bars"}),
    "online": frozenset({"storage", "feast_repo", "bars", "features"}),
    "research": frozenset(_RUNTIME),
    "model": frozenset(_RUNTIME),  # above training and online: models, their validation and serving
    # above features and training: builds, training sets and materialize on a Spark cluster
    "spark": frozenset({"storage", "feast_repo", "features", "training"}),
    "plots": frozenset({*_RUNTIME, "research"}),
    "notebook": frozenset({*_RUNTIME, "research", "plots"}),
    "testing": frozenset(),
}


def unit_of(path: Path) -> str:
    """The layout unit of a module file: its sub-package, or its own name at the top level."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(source: str) -> set[str]:
    """Every mt5lab unit that ``source`` imports (``mt5lab`` itself counts as ``__init__``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add("<relative import>")  # mt5lab imports absolutely: a relative one would hide a stage
            continue
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "mt5lab" else [f"mt5lab.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "mt5lab":
                continue
            sub = parts[1] if len(parts) > 1 else "__init__"
            is_module = (PKG / sub).is_dir() or (PKG / f"{sub}.py").is_file()
            found.add(sub if is_module else "__init__")
    return found


def allowed(unit: str) -> set[str]:
    if unit in BASE:
        return set(BASE[: BASE.index(unit)])
    if unit in ENTRY:
        return ({*BASE, *STAGES} - {"testing"}) | set(ENTRY[: ENTRY.index(unit)])
    if unit == "testing":
        return {"testing"}
    return {*BASE, *STAGES[unit], unit}


def violations(unit: str, source: str) -> list[str]:
    return sorted(f"{unit} imports {u}" for u in imported_units(source) - allowed(unit) - {unit})


def _modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_every_unit_is_placed():
    units = {unit_of(p) for p in _modules()}
    assert units - set(BASE) - set(ENTRY) - set(STAGES) == set()


def test_imports_point_down_the_stages():
    bad = [f"{p.relative_to(PKG.parent)}: {v}" for p in _modules()
           for v in violations(unit_of(p), p.read_text(encoding="utf-8"))]
    assert bad == []


def test_checker_catches_an_upward_import():
    # The rule is only as good as the reader of imports: plant the kinds of violation it must see.
    assert violations("bars", "from mt5lab.online.reader import reader") == ["bars imports online"]
    assert violations("features", "def f():\n    import mt5lab.training.pit as pit\n") == [
        "features imports training"]
    assert violations("storage", "from mt5lab import feature_store") == ["storage imports __init__"]
    assert violations("catalog", "from mt5lab.config import resolve") == ["catalog imports config"]
    assert violations("online", "from mt5lab.testing import sandbox") == ["online imports testing"]
    assert violations("bars", "from ..online import reader") == ["bars imports <relative import>"]
    assert violations("plots", "from mt5lab.research import quality") == []
    # The cli package: an entry point that may import every stage and demo, never the test harnesses;
    # nothing but a later entry point may import it.
    assert violations("cli", "from mt5lab.demo import run_demo\nfrom mt5lab.online.reader import reader\n"
                             "from mt5lab.cli.render import table") == []
    assert violations("cli", "from mt5lab.testing.sandbox import feature_server") == ["cli imports testing"]
    assert violations("cli", "from mt5lab.cli import render") == []
    assert violations("demo", "from mt5lab.cli import render") == ["demo imports cli"]
    assert violations("online", "from mt5lab.cli.render import to_json") == ["online imports cli"]


def test_entry_points_exist_in_their_form():
    for name in ENTRY:
        if name in ENTRY_PACKAGES:
            assert (PKG / name / "__init__.py").is_file() and not (PKG / f"{name}.py").exists(), name
            assert {unit_of(p) for p in (PKG / name).rglob("*.py")} == {name}
        else:
            assert (PKG / f"{name}.py").is_file(), name


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_cycles_between_units():
    graph: dict[str, set[str]] = {}
    for p in _modules():
        u = unit_of(p)
        graph.setdefault(u, set()).update(imported_units(p.read_text(encoding="utf-8")) - {u})
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder works


def test_stage_rules_form_no_cycle():
    assert _cycles({k: set(v) for k, v in STAGES.items()}) == []


def test_top_level_stays_small_and_stages_explain_themselves():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 12, top
    for pkg in sorted(d for d in PKG.iterdir() if d.is_dir() and not d.name.startswith("__")):
        init = pkg / "__init__.py"
        assert init.is_file(), pkg.name
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc.split()) >= 30 and "May import" in doc, f"{pkg.name}/__init__.py docstring"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_over_400_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400
