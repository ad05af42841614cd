"""Function-level imports only where a comment says why (issue 9).

An import inside a function hides a dependency from the reader and from the import
machinery; it is allowed only with a reason written next to it: a comment on the import's
own line or on the line just above it (e.g. "heavy: needs libsndfile", "optional
dependency", "an ImportError here becomes a one-line error"). Imports under
``if TYPE_CHECKING:`` are not function-level.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_import_cycles import MODULES, PACKAGES, ROOT, find_modules


def unexplained_function_imports(path: Path) -> list[str]:
    """``file:line: statement`` of each function-level import in ``path`` without a comment."""
    src = path.read_text(encoding="utf-8")
    lines = src.splitlines()
    out: list[str] = []
    for fn in ast.walk(ast.parse(src)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            line = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            if "#" not in line and not above.startswith("#"):
                out.append(f"{path}:{node.lineno}: {line.strip()}")
    return sorted(set(out))


def test_finder_sees_an_unexplained_import_and_accepts_an_explained_one(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text(
        "def a():\n"
        "    import json\n"
        "def b():\n"
        "    # heavy: only needed here\n"
        "    import csv\n"
        "def c():\n"
        "    import zlib  # optional\n"
    )
    assert unexplained_function_imports(mod) == [f"{mod}:2: import json"]


def test_every_function_level_import_in_the_project_says_why() -> None:
    modules = find_modules(ROOT, PACKAGES, MODULES)
    assert "pypbx.call.manager" in modules, f"project modules not found under {ROOT}"
    found = [hit for path in sorted(set(modules.values())) for hit in unexplained_function_imports(path)]
    assert found == [], "function-level imports without a comment saying why:\n" + "\n".join(found)
