"""pypbx.runlock: one running PBX per data directory (the real-process test is
tests/integration/test_run_lock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pypbx import runlock
from pypbx.config import render_config

HOLD = (
    "import sys, time; from pathlib import Path; from pypbx import runlock; "
    "runlock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(30)"
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path/var``'s lock."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "var")], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    yield p
    p.kill()
    p.wait()


def test_acquire_is_idempotent_in_one_process_and_writes_the_pid(tmp_path):
    d = tmp_path / "data"
    path = runlock.acquire(d)
    try:
        assert runlock.acquire(d) == path == d / "pypbx.lock"
        assert path.read_text().strip() == str(os.getpid())
    finally:
        runlock.release(d)
    assert path.read_text() == ""
    runlock.acquire(d)  # free again
    runlock.release(d)


def test_held_by_another_process_refused_at_once_with_its_pid(tmp_path, holder):
    t0 = time.monotonic()
    with pytest.raises(runlock.AlreadyRunning) as e:
        runlock.acquire(tmp_path / "var")
    assert time.monotonic() - t0 < 0.5
    assert str(e.value) == f"pypbx is already running on this data directory (pid {holder.pid})"
    assert e.value.exit_code == 1


def test_released_when_the_holder_dies(tmp_path, holder):
    holder.kill()
    holder.wait()
    assert (tmp_path / "var" / "pypbx.lock").exists()
    runlock.acquire(tmp_path / "var")
    runlock.release(tmp_path / "var")


def test_preflight_exits_1_with_one_line_before_the_cli_loads(tmp_path, holder, capsys):
    cfg = tmp_path / "pypbx.toml"
    cfg.write_text(render_config(data_dir="./var"), encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        runlock.preflight(["--config", str(cfg), "run"])
    assert e.value.code == 1
    assert capsys.readouterr().err == f"Error: pypbx is already running on this data directory (pid {holder.pid})\n"
    with pytest.raises(SystemExit):
        runlock.preflight(["run", f"--config={cfg}"])
    for other in (["status", "--config", str(cfg)], ["run", "--help", "--config", str(cfg)], []):
        runlock.preflight(other)  # not a run, or help: the CLI answers
    runlock.preflight(["run", "--config", str(tmp_path / "missing.toml")])  # the CLI reports it


def test_argv_parsing():
    assert runlock._argv_config(["run"]) == (True, None)
    assert runlock._argv_config(["--config", "a.toml", "run"]) == (True, "a.toml")
    assert runlock._argv_config(["run", "--config=b.toml"]) == (True, "b.toml")
    assert runlock._argv_config(["ext", "list", "run"]) == (False, None)
    assert runlock._argv_config(["--config", "run", "status"]) == (False, None)
