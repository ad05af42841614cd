"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.integration.harness import PbxProcess


@pytest.fixture
def pbx(tmp_path: Path) -> Callable[..., PbxProcess]:
    """``pbx(**config_overrides)`` -> a PbxProcess (not started) in its own directory;
    every one still running at the end of the test is stopped with SIGTERM."""
    procs: list[PbxProcess] = []

    def make(**overrides) -> PbxProcess:
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", **overrides)
        procs.append(p)
        return p
    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
