"""Faults at the SIP front door, on a real ``pypbx run`` with sipp phones (issue 12).

* A phone's BYE for a call the restarted PBX no longer knows gets 481, not silence.
* A phone that never ACKs a 200 is booked failed ("no ACK") and its call freed at Timer H.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.harness import SIPP_DIR, auth_users, free_port, require_tool, run_sipp
from tests.integration.test_proxy_calls import Phone, call

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(proxy_pbx):
    """The PBX factory of the proxy tests (conftest.proxy_pbx)."""
    return proxy_pbx


def test_bye_after_a_restart_gets_481(pbx, tmp_path):
    p = pbx()
    callee = Phone(p, "1002", "call_uas_long.xml", tmp_path / "uas")
    result: dict = {}
    caller = threading.Thread(
        target=lambda: result.setdefault(
            "res", call(p, "call_uac_bye_after_restart.xml", tmp_path / "uac", timeout=45)
        ),
        daemon=True,
    )
    caller.start()
    p.wait_for(lambda: [c for c in p.api("calls") if c["state"] == "talking"], timeout=20, what="the call answered")
    time.sleep(0.5)  # the ACK through
    assert p.stop(signal.SIGKILL) == -signal.SIGKILL
    p.start()  # same data directory, same route secret: the phone's route set still checks
    caller.join(45)
    assert not caller.is_alive(), "the caller never finished"
    res = result["res"]
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert p.api("calls") == []
    assert p.status()["counters"]["proxy_no_dialog"] >= 1
    callee.proc.kill()
    callee.wait()
    rows = json.loads(p.cli("calls", "list", "--json").stdout)
    assert len(rows) == 1


def _callee(p, workdir, scenario="call_uas.xml", seconds=60):
    """A sipp UAS registered as 1002 (like test_proxy_calls.Phone, with a longer life)."""
    port = free_port("both")
    workdir.mkdir(parents=True, exist_ok=True)
    res = run_sipp(
        "register.xml",
        f"127.0.0.1:{p.port}",
        users=auth_users(["1002"], PASSWORD),
        workdir=workdir,
        extra=["-p", str(port)],
    )
    assert res.returncode == 0, res.errors or res.stdout[-2000:]
    args = [require_tool("sipp"), "-sf", str(SIPP_DIR / scenario), "-s", "1002", "-i", "127.0.0.1"]
    args += ["-p", str(port), "-m", "1", "-d", "200", "-nostdin", "-trace_err", "-timeout", f"{seconds}s"]
    with open(workdir / "uas.out", "w") as out:
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(0.4)
    return proc


def test_caller_that_never_acks_is_failed_at_timer_h(pbx, tmp_path):
    """The caller's phone never ACKs the 200: at Timer H (30 s after the 200) the call is
    booked failed, cause "no ACK" (not answered), both phones get a BYE and the worker is
    free again -- not ~64 s later as an answered call with no talk."""
    p = pbx()
    callee = _callee(p, tmp_path / "uas")
    t0 = time.monotonic()
    res = call(p, "call_uac_no_ack.xml", tmp_path / "uac", timeout=60)
    took = time.monotonic() - t0
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert took < 45, took
    assert callee.wait(30) == 0
    rows = p.wait_for(
        lambda: [r for r in json.loads(p.cli("calls", "list", "--json").stdout) if r["disposition"] != "in_progress"],
        timeout=10,
        what="the call record closed",
    )
    [row] = rows
    assert row["disposition"] == "failed", row
    assert row["hangup_cause"] == "no ACK", row
    assert p.status()["counters"]["proxy_no_ack"] == 1
    p.wait_for(lambda: p.api("calls") == [], timeout=5, what="the worker released")
    assert "no ACK from 127.0.0.1" in p.log()
