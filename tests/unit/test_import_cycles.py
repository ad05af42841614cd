"""No import cycles between the project's modules (issue 9).

The import graph is built from the source with :mod:`ast`, not by importing anything. It
counts every ``import``/``from ... import`` that can run: at module level AND inside
functions and methods (a function-level import hides a cycle from Python's import machinery,
not from the design). Only imports under ``if TYPE_CHECKING:`` are left out: they never
run, and that is the sanctioned way for annotations to name a type from a module that
imports this one.

An edge goes to the most specific project module named: ``import pypbx.db`` and
``from pypbx import db`` both give an edge to ``pypbx.db`` (not to the package ``pypbx``);
``from pypbx.db import Database`` gives ``pypbx.db``. Imports from outside the project
(stdlib, numpy, pjsua2, ...) are ignored.

A cycle is reported as its strongly connected component (the modules that all reach each
other), with the import statements inside it (file:line, and whether function-level) and
one shortest cycle through it, so the message says what to cut.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: the project's top-level packages (with all their sub-packages) and single-file modules
PACKAGES = ("sip", "acd", "media", "pypbx")
MODULES = ("cli",)


@dataclass(frozen=True)
class ImportEdge:
    src: str
    dst: str
    path: Path
    line: int
    function_level: bool

    def describe(self, root: Path) -> str:
        where = "function-level" if self.function_level else "module-level"
        try:
            shown = self.path.relative_to(root)
        except ValueError:
            shown = self.path
        return f"{self.src} -> {self.dst}  ({shown}:{self.line}, {where})"


def find_modules(root: Path, packages: tuple[str, ...], modules: tuple[str, ...]) -> dict[str, Path]:
    """{dotted module name: file} of the packages (recursively) and single-file modules."""
    found: dict[str, Path] = {}
    for pkg in packages:
        base = root / pkg
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            # only real packages: every directory on the way has an __init__.py
            if any(not (root.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    for mod in modules:
        path = root / f"{mod}.py"
        if path.is_file():
            found[mod] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that can run, with whether it is inside a function."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append((node, in_function))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:  # `else:` of `if TYPE_CHECKING:` does run
                visit(stmt, in_function)
            return
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return out


def _known_prefix(name: str, known: dict[str, Path]) -> str | None:
    """The longest project module that ``name`` is or lies in (``a.b.C`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def import_edges(known: dict[str, Path]) -> list[ImportEdge]:
    """The edges between project modules, one per (import statement, imported module)."""
    edges: list[ImportEdge] = []
    for mod, path in sorted(known.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        package = mod if is_package else mod.rpartition(".")[0]
        for node, in_function in _runtime_imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base_parts = package.split(".") if package else []
                    up = node.level - 1
                    if up > len(base_parts):
                        continue  # beyond the top: not one of ours
                    base_parts = base_parts[: len(base_parts) - up]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
                    targets.append(sub if sub in known else base)
            for dst in dict.fromkeys(_known_prefix(t, known) for t in targets):  # once per statement
                if dst is None or dst == mod:
                    continue
                edges.append(ImportEdge(mod, dst, path, node.lineno, in_function))
    return edges


def find_cycles(edges: list[ImportEdge]) -> list[list[str]]:
    """Strongly connected components with more than one module, each sorted, sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    sccs: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # iterative Tarjan: (node, iterator over its successors)
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    sccs.append(sorted(component))
    return sorted(sccs)


def shortest_cycle(component: list[str], edges: list[ImportEdge]) -> list[str]:
    """One shortest cycle through the first module of a component: [m, ..., m]."""
    members = set(component)
    graph: dict[str, set[str]] = {m: set() for m in component}
    for e in edges:
        if e.src in members and e.dst in members:
            graph[e.src].add(e.dst)
    start = component[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return component


def cycle_report(root: Path, cycles: list[list[str]], edges: list[ImportEdge]) -> str:
    lines = [f"{len(cycles)} import cycle(s) between project modules:"]
    for component in cycles:
        members = set(component)
        lines.append("")
        lines.append("cycle among {" + ", ".join(component) + "}")
        lines.append("  e.g. " + " -> ".join(shortest_cycle(component, edges)))
        for e in sorted(edges, key=lambda e: (e.src, e.dst, e.line)):
            if e.src in members and e.dst in members:
                lines.append("    " + e.describe(root))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the check


def test_no_import_cycles() -> None:
    known = find_modules(ROOT, PACKAGES, MODULES)
    assert "pypbx" in known and "cli" in known, f"project modules not found under {ROOT}"
    edges = import_edges(known)
    cycles = find_cycles(edges)
    assert cycles == [], cycle_report(ROOT, cycles, edges)


# --------------------------------------------------------------------------- the finder itself


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_finder_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "def f():\n    from pkg.c import thing\n    return thing\n",
            "pkg/c.py": "import pkg.a\nthing = 1\n",
            "pkg/d.py": "import os\nfrom pkg.a import x, y\n",  # into the cycle, not part of it
            "solo.py": "import pkg.d\n",
        },
    )
    known = find_modules(tmp_path, ("pkg",), ("solo",))
    assert set(known) == {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "solo"}
    edges = import_edges(known)
    assert len(edges) == 5  # one edge per statement and module, also for `import x, y`
    assert {(e.src, e.dst, e.function_level) for e in edges} == {
        ("pkg.a", "pkg.b", False),
        ("pkg.b", "pkg.c", True),
        ("pkg.c", "pkg.a", False),
        ("pkg.d", "pkg.a", False),
        ("solo", "pkg.d", False),
    }
    cycles = find_cycles(edges)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c"]]
    assert shortest_cycle(cycles[0], edges) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    report = cycle_report(tmp_path, cycles, edges)
    assert "cycle among {pkg.a, pkg.b, pkg.c}" in report
    assert f"pkg.b -> pkg.c  ({Path('pkg/b.py')}:2, function-level)" in report


def test_finder_separates_independent_cycles_and_subpackages(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "top/__init__.py": "",
            "top/x.py": "from .sub.y import Y\n",
            "top/sub/__init__.py": "",
            "top/sub/y.py": "from .. import x\nclass Y: ...\n",
            "top/p.py": "class P:\n    def m(self):\n        from .q import Q\n        return Q\n",
            "top/q.py": "async def g():\n    from top.p import P\n    return P\n",
            "top/ok.py": "from top.sub import y\nimport top.x\n",
        },
    )
    edges = import_edges(find_modules(tmp_path, ("top",), ()))
    assert find_cycles(edges) == [["top.p", "top.q"], ["top.sub.y", "top.x"]]


def test_finder_ignores_type_checking_outside_and_self_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "m/__init__.py": "from .a import A\n",
            "m/a.py": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "import json, numpy\n"
                "import m.a\n"
                "if TYPE_CHECKING:\n"
                "    from m.b import B\n"
                "class A: ...\n"
            ),
            "m/b.py": "from m.a import A\nimport typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    import m.c\n",
            "m/c.py": "",
        },
    )
    edges = import_edges(find_modules(tmp_path, ("m",), ()))
    assert {(e.src, e.dst) for e in edges} == {("m", "m.a"), ("m.b", "m.a"), ("m.b", "m.c")}
    assert find_cycles(edges) == []
