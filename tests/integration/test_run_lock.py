"""One running PBX per data directory (issue 12): a second ``pypbx run`` on the same data
directory says so in one line and exits 1 at once; a lock left by a killed PBX does not
block the next start."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.integration.harness import BIN, wait_workers_gone

pytestmark = pytest.mark.slow


def _second_run(config_path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    res = subprocess.run(
        [str(BIN / "pypbx"), "run", "--config", str(config_path)], capture_output=True, text=True, timeout=30
    )
    return res, time.monotonic() - t0


def test_second_run_on_same_data_dir_exits_1_with_one_line_in_under_a_second(pbx):
    first = pbx()
    first.start()
    assert first.proc is not None
    res, took = _second_run(first.config_path)
    assert res.returncode == 1
    assert took < 1.0, f"second run took {took:.2f} s"
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert lines == [f"Error: pypbx is already running on this data directory (pid {first.proc.pid})"]
    assert "Traceback" not in first.log()
    first.status()  # the first PBX is untouched
    assert first.stop() == 0


def test_lock_of_a_killed_pbx_does_not_block_the_next_start(pbx):
    first = pbx()
    first.start()
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    lock = first.cfg.data_dir / "pypbx.lock"
    assert lock.exists()  # the stale file stays; only the kernel's lock went away
    wait_workers_gone(first)  # the killed PBX's media workers exit on their own, freeing their ports
    first.start()
    assert first.proc is not None
    assert lock.read_text().strip() == str(first.proc.pid)
    assert first.stop() == 0
