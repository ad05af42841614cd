"""kill -9 of the media worker carrying a call: the front door ends both phones' dialogs
with a BYE (Reason: Q.850 cause 41), the call record says what happened, the pool replaces
the worker and the next call works.

sipp plays both phones (as in test_proxy_calls.py): 1002 registers and answers
(call_uas_long.xml), 1001 calls it with digest auth (call_uac_long.xml); both then wait for
the PBX's BYE, which must carry a Reason header, and answer it 200.
"""

from __future__ import annotations

import json
import os
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


def _calls_rows(p) -> list[dict]:
    return json.loads(p.cli("calls", "list", "--json").stdout)


def test_killed_worker_ends_both_phones_calls_and_is_replaced(pbx, tmp_path):
    p = pbx()
    callee = Phone(p, "1002", "call_uas_long.xml", tmp_path / "uas")
    result: dict = {}
    caller = threading.Thread(
        target=lambda: result.setdefault("res", call(p, "call_uac_long.xml", tmp_path / "uac", timeout=40)), daemon=True
    )
    caller.start()
    live = p.wait_for(
        lambda: [c for c in p.api("calls") if c["state"] == "talking"], timeout=20, what="the call to be answered"
    )
    [c] = live
    pid = int(c["worker"])
    time.sleep(1.0)  # both ACKs through, recording running
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()

    caller.join(45)
    assert not caller.is_alive(), "the caller never finished"
    res = result["res"]
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert callee.wait() == 0, callee.errors()
    assert time.monotonic() - t_kill < 15, "the phones were not hung up promptly"
    assert "ending dialogs with 127.0.0.1" in p.log()

    # the call record: closed as interrupted (it was answered), flagged worker_lost
    def closed():
        rows = [r for r in _calls_rows(p) if r["id"] == c["id"]]
        return (
            rows
            if rows
            and rows[0]["disposition"] not in ("offered", "in_progress", "answered_live")
            and rows[0].get("ended_at")
            else None
        )

    [row] = p.wait_for(closed, timeout=10, what="the call record to close")
    assert row["disposition"] in ("interrupted", "failed"), row
    assert "worker_lost" in str(row.get("flags")), row
    assert not p.api("calls")

    # the pool goes on: a second call gets another worker, goes through and ends normally,
    # and the pool starts workers again to keep its warm ones (the dead slot is reused)
    phone2 = Phone(p, "1002", "call_uas.xml", tmp_path / "uas2")
    res2 = call(p, "call_uac.xml", tmp_path / "uac2")
    assert res2.returncode == 0 and res2.successful == 1, res2.errors or res2.stdout[-3000:]
    assert phone2.wait() == 0, phone2.errors()
    [second] = p.wait_for(
        lambda: [r for r in _calls_rows(p) if r["id"] != c["id"] and r.get("ended_at")],
        timeout=10,
        what="the second call's record",
    )
    assert second["disposition"] == "answered" and not second.get("flags"), second
    assert second["worker"] != str(pid)

    def replaced():
        after = p.log().split(f"media worker {pid} lost", 1)
        return len(after) == 2 and "ready: slot" in after[1]

    p.wait_for(replaced, timeout=10, what="the pool to start a new worker")
    assert "Traceback" not in p.log(), p.log()[-4000:]
