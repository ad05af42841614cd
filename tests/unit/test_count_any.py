"""tools/count_any.py: the Any counter behind `make any-count` (issue 9)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "tools" / "count_any.py"
_spec = importlib.util.spec_from_file_location("count_any", _PATH)
assert _spec is not None and _spec.loader is not None
count_any_mod = importlib.util.module_from_spec(_spec)
sys.modules["count_any"] = count_any_mod
_spec.loader.exec_module(count_any_mod)


def test_counts_uses_not_imports() -> None:
    src = (
        "from typing import Any, Mapping\n"
        "import typing\n"
        "import typing as t\n"
        "X = dict[str, Any]\n"
        "def f(a: Any, *rest: typing.Any, **kw: 't.Any') -> 'Mapping[str, Any]':\n"
        "    y: Any = a  # Any in a comment does not count\n"
        "    return {'Any': y}\n"
    )
    # X, a, rest, kw (quoted), return (quoted), y
    assert count_any_mod.count_any(src) == 6


def test_literal_strings_are_not_annotations() -> None:
    src = "from typing import Literal\ndef f(mode: Literal['Any thing', 'r']) -> None: ...\n"
    assert count_any_mod.count_any(src) == 0


def test_cli_per_file_total_and_max(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.py").write_text("from typing import Any\nx: Any = 1\ny: list[Any] = []\n")
    (tmp_path / "b.py").write_text("from typing import Any\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.py").write_text("import typing\nz: typing.Any = 0\n")
    assert count_any_mod.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["2", str(tmp_path / "a.py")]
    assert out[1].split() == ["1", str(tmp_path / "sub" / "c.py")]
    assert out[2].split()[0] == "3" and len(out) == 3
    assert count_any_mod.main([str(tmp_path), "--max", "2"]) == 1
    assert count_any_mod.main([str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
