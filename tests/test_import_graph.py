"""The floor plan holds: no import cycle between rankstack's sub-packages or between its modules, counting imports
inside functions and under ``TYPE_CHECKING``; the ground floor and the metrics load without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Known imports that close a cycle (an entry that no longer exists fails test_allowlist_is_current): none.
ALLOWED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` at ``where`` (file:line)."""

    importer: str
    imported: str
    where: str


def module_name(path: Path, src: Path) -> str:
    """``rankstack.a.b`` for ``src/rankstack/a/b.py`` (a package is named by its ``__init__``'s folder)."""
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(src: Path, root: str = "rankstack", typing_only: bool = True) -> list[Edge]:
    """Every import of a ``root`` module by a ``root`` module, wherever it stands in the file (functions too);
    without ``typing_only``, leave out those under ``if TYPE_CHECKING:``, which never run."""
    files = sorted((src / root).rglob("*.py"))
    modules = {module_name(f, src) for f in files}
    edges = []
    for file in files:
        name = module_name(file, src)
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(file.read_text(), str(file))
        skipped = set() if typing_only else _typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            for target in _targets(node, package, modules):
                if target.split(".")[0] == root and target != name:
                    where = f"{file.relative_to(src.parent)}:{node.lineno}"  # type: ignore[attr-defined]
                    edges.append(Edge(name, _existing(target, modules), where))
    return edges


def _typing_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return out


def _targets(node: ast.AST, package: str, modules: set[str]) -> Iterable[str]:
    """The modules an import statement names; ``from pkg import sub`` names the submodule ``pkg.sub``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def _existing(target: str, modules: set[str]) -> str:
    """The longest prefix of ``target`` that is a module (an imported name resolves to its module)."""
    while target not in modules and "." in target:
        target = target.rpartition(".")[0]
    return target


def unit_of(module: str) -> str:
    """The sub-package a module belongs to (``rankstack.pipeline`` for ``rankstack.pipeline.api``); a module at the
    package root is its own unit."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            visit(node)
    return out


def _report(edges: list[Edge], component: list[str], unit: dict[str, str]) -> str:
    """The import lines that hold a cycle's members together."""
    inside = [e for e in edges if unit[e.importer] != unit[e.imported]
              and unit[e.importer] in component and unit[e.imported] in component]
    lines = [f"  {e.where}: {e.importer} -> {e.imported}" for e in inside]
    return f"cycle {' <-> '.join(component)}:\n" + "\n".join(sorted(set(lines)))


def _cycles_among(edges: list[Edge], unit: dict[str, str]) -> list[str]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        if unit[e.importer] != unit[e.imported]:
            graph.setdefault(unit[e.importer], set()).add(unit[e.imported])
    return [_report(edges, component, unit) for component in cycles(graph)]


def package_cycles(src: Path, allowed: set[tuple[str, str]]) -> list[str]:
    """One report per cycle between sub-packages (allowed imports left out)."""
    edges = [e for e in import_edges(src) if (e.importer, e.imported) not in allowed]
    unit = {m: unit_of(m) for e in edges for m in (e.importer, e.imported)}
    return _cycles_among(edges, unit)


def module_cycles(src: Path, allowed: set[tuple[str, str]]) -> list[str]:
    """One report per run-time cycle between modules; a package's ``__init__`` importing its own submodules (its
    exports) is left out, as Python runs it before any of them anyway, and so are annotation-only imports under
    ``if TYPE_CHECKING:`` (a model's ``*_train`` module names the model in its annotations)."""
    edges = [e for e in import_edges(src, typing_only=False) if (e.importer, e.imported) not in allowed
             and not e.imported.startswith(e.importer + ".")]
    return _cycles_among(edges, {m: m for e in edges for m in (e.importer, e.imported)})


def test_no_cycle_between_subpackages() -> None:
    found = package_cycles(SRC, ALLOWED)
    assert not found, "import cycles between sub-packages of src/rankstack:\n" + "\n".join(found)


def test_no_cycle_between_modules() -> None:
    found = module_cycles(SRC, ALLOWED)
    assert not found, "import cycles between modules of src/rankstack:\n" + "\n".join(found)


def test_allowlist_is_current() -> None:
    edges = {(e.importer, e.imported) for e in import_edges(SRC)}
    stale = sorted(ALLOWED - edges)
    assert not stale, f"ALLOWED lists imports that no longer exist; delete them: {stale}"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    _write(tmp_path, {
        "rankstack/__init__.py": "",
        "rankstack/low/__init__.py": "",
        "rankstack/low/base.py": "def f():\n    from rankstack.high import top\n",
        "rankstack/high/__init__.py": "",
        "rankstack/high/top.py": "from ..low import base\n",
    })
    found = package_cycles(tmp_path, set())
    assert len(found) == 1 and "rankstack.high <-> rankstack.low" in found[0]
    assert "rankstack/low/base.py:2: rankstack.low.base -> rankstack.high.top" in found[0]
    assert package_cycles(tmp_path, {("rankstack.low.base", "rankstack.high.top")}) == []


def test_a_module_cycle_inside_a_package_is_found(tmp_path: Path) -> None:
    _write(tmp_path, {
        "rankstack/__init__.py": "",
        "rankstack/pipe/__init__.py": "from rankstack.pipe.a import A\n",  # a package's exports are no cycle
        "rankstack/pipe/a.py": "from rankstack.pipe.b import B\nA = 1\n",
        "rankstack/pipe/b.py": "B = 2\ndef load():\n    from rankstack.pipe import a\n",
    })
    assert package_cycles(tmp_path, set()) == []
    found = module_cycles(tmp_path, set())
    assert len(found) == 1 and "rankstack.pipe.a <-> rankstack.pipe.b" in found[0]


@pytest.mark.parametrize("module", ["rankstack.candidates", "rankstack.evaluation.metrics", "rankstack.state.store",
                                    "rankstack.events"])
def test_light_modules_load_without_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'redis', 'fastapi') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing {module} loaded {out}"
