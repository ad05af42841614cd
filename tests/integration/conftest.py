"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import harness
from tests.integration.harness import PbxProcess
from tests.phone.driver import PjPhone

PASSWORD = "correct-horse-battery"


def _check_stopped_pbxs() -> None:
    """Check the event stream of every PbxProcess that has stopped (harness.check_event_stream)."""
    done = [p for p in harness.UNCHECKED if p.proc is None or p.proc.poll() is not None]
    for p in done:
        harness.UNCHECKED.remove(p)
    for p in done:
        if p.proc is not None:
            p.check_events()


@pytest.fixture(autouse=True)
def event_stream_invariant():
    """After every test: the event streams of the PBXs it ran (and stopped) are gap-free and
    ordered, and every call ends in exactly one call.ended with its record's disposition."""
    yield
    _check_stopped_pbxs()


def pytest_terminal_summary(terminalreporter) -> None:
    c = harness.CHECKED
    if c["pbxs"]:
        terminalreporter.write_line(
            f"event stream invariant: {c['pbxs']} PBX(s), {c['calls']} call(s), {c['events']} event(s) checked"
        )


@pytest.fixture(autouse=True, scope="session")
def event_stream_invariant_at_end():
    """PBXs of module-scoped fixtures: checked once they have stopped."""
    yield
    _check_stopped_pbxs()


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


@pytest.fixture
def phone_pbx(tmp_path: Path):
    """``pbx(**overrides)`` -> a started PbxProcess with extensions 1001-1003 (PASSWORD);
    ``pbx.phone(p, ext, codecs=None)`` -> a registered pjsua2 test phone. All are closed,
    and every PBX must have stopped cleanly with no traceback in its log."""
    procs: list[PbxProcess] = []
    phones: list[PjPhone] = []

    def make(**overrides) -> PbxProcess:
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", security={"exempt": ["127.0.0.1"]}, **overrides)
        p.add_extensions(["1001", "1002", "1003"], PASSWORD)
        p.start()
        procs.append(p)
        return p

    def phone(p: PbxProcess, ext: str, codecs: list[str] | None = None) -> PjPhone:
        ph = PjPhone(f"pj{ext}", tmp_path)
        phones.append(ph)
        if codecs:
            ph.cmd("codecs", codecs=codecs)
        ph.cmd("register", server=f"127.0.0.1:{p.port}", user=ext, password=PASSWORD)
        ev = ph.wait_event(lambda e: e.get("event") == "reg", 15, f"{ext} to register")
        assert ev["code"] == 200
        return ph

    make.phone = phone  # type: ignore[attr-defined]
    yield make
    for ph in phones:
        ph.close()
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            assert p.stop() == 0
        assert "Traceback" not in p.log(), p.log()[-3000:]


@pytest.fixture
def proxy_pbx(tmp_path: Path) -> Iterator[Callable[..., PbxProcess]]:
    """``pbx(ring_timeout=None, **overrides)`` -> a started PbxProcess with extensions
    1001-1003 (PASSWORD), security-exempt for 127.0.0.1 (the sipp phones of
    test_proxy_calls). Every PBX must have stopped with no traceback in its log."""
    procs: list[PbxProcess] = []

    def make(ring_timeout: float | None = None, **overrides: Any) -> PbxProcess:
        if ring_timeout is not None:
            overrides["calls"] = {"ring_time": int(ring_timeout)}
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", security={"exempt": ["127.0.0.1"]}, **overrides)
        p.add_extensions(["1001", "1002", "1003"], PASSWORD)
        p.start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
        assert "Traceback" not in p.log(), p.log()[-4000:]


@pytest.fixture
def trunk_pbx(tmp_path: Path) -> Iterator[Callable[..., PbxProcess]]:
    """``pbx(**overrides)`` -> a PbxProcess (not started) with extensions 1001-1002 (PASSWORD),
    security-exempt for 127.0.0.1 (the trunk tests). Every PBX must have stopped with no
    traceback in its log."""
    procs: list[PbxProcess] = []

    def make(**overrides: Any) -> PbxProcess:
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", security={"exempt": ["127.0.0.1"]}, **overrides)
        p.add_extensions(["1001", "1002"], PASSWORD)
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
        assert "Traceback" not in p.log(), p.log()[-4000:]
