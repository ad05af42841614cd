"""Count the uses of ``typing.Any`` in Python sources (issue 9 wants fewer than 30 in pypbx/).

    python3 tools/count_any.py [PATH ...] [--max N]

Counts ``Any`` and ``typing.Any``/``t.Any`` wherever they appear in code (annotations, aliases,
casts), also inside quoted annotations; the import lines themselves do not count. Prints one
line per file that has any (most first) and the total; with ``--max N`` it exits 1 when the
total is above N. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def _annotations(tree: ast.AST) -> Iterator[ast.expr]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                yield node.returns
            args = node.args
            for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if a is not None and a.annotation is not None:
                    yield a.annotation
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def _count_names(tree: ast.AST) -> int:
    n = 0
    for node in ast.walk(tree):
        if (isinstance(node, ast.Name) and node.id == "Any") or (
            isinstance(node, ast.Attribute) and node.attr == "Any"
        ):
            n += 1
    return n


def count_any(source: str, filename: str = "<source>") -> int:
    """``Any`` uses in one module's source (import statements excluded)."""
    tree = ast.parse(source, filename=filename)
    n = _count_names(tree)
    # quoted annotations ("dict[str, Any]") are strings to ast: parse and count them too
    for ann in _annotations(tree):
        for node in ast.walk(ann):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    n += _count_names(ast.parse(node.value, mode="eval"))
                except SyntaxError:
                    pass  # a Literal["..."] string, not an annotation
    return n


def python_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts))
        elif p.suffix == ".py":
            files.append(p)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Count typing.Any uses (import lines excluded).")
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("pypbx")], help="files or directories")
    parser.add_argument("--max", type=int, default=None, help="exit 1 if the total is above this")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"count_any: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    counts: list[tuple[int, str]] = []
    for f in python_files(args.paths):
        try:
            n = count_any(f.read_text(encoding="utf-8"), str(f))
        except SyntaxError as exc:
            print(f"count_any: {f}: cannot parse: {exc.msg} (line {exc.lineno})", file=sys.stderr)
            return 2
        if n:
            counts.append((n, str(f)))
    for n, name in sorted(counts, key=lambda c: (-c[0], c[1])):
        print(f"{n:6d}  {name}")
    total = sum(n for n, _ in counts)
    print(f"{total:6d}  total Any in {', '.join(str(p) for p in args.paths)}")
    if args.max is not None and total > args.max:
        print(f"count_any: {total} > --max {args.max}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
