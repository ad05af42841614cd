"""Faults at the SIP front door, on a real ``pypbx run`` with sipp phones (issue 12).

* A phone's BYE for a call the restarted PBX no longer knows gets 481, not silence.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

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
