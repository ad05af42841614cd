"""Calls whose phones vanish end (issue 12): an answered call whose phones send no RTP and
no BYE is ended by the PBX after ``[media] rtp_timeout`` seconds, booked with the cause
"rtp timeout", its recording closed and its worker freed; a call longer than ``[calls]
max_duration`` is ended with the cause "max duration".

sipp plays both phones (as in test_proxy_calls.py): 1002 registers and answers
(call_uas_silent.xml), 1001 calls it with digest auth (call_uac_silent.xml); neither sends
RTP nor a BYE: both wait for the PBX's BYE and answer it 200.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_proxy_calls import Phone, call

pytestmark = pytest.mark.slow


def _row(p, call_id: str) -> dict | None:
    rows = [r for r in json.loads(p.cli("calls", "list", "--json").stdout) if r["id"] == call_id]
    return rows[0] if rows and rows[0].get("ended_at") else None


def _silent_call(p, tmp_path: Path, timeout: float = 40) -> tuple[dict, threading.Thread, dict, Phone, float]:
    callee = Phone(p, "1002", "call_uas_silent.xml", tmp_path / "uas")
    result: dict = {}
    caller = threading.Thread(
        target=lambda: result.setdefault("res", call(p, "call_uac_silent.xml", tmp_path / "uac", timeout=timeout)),
        daemon=True,
    )
    caller.start()
    [c] = p.wait_for(
        lambda: [c for c in p.api("calls") if c["state"] == "talking"], timeout=20, what="the call to be answered"
    )
    return c, caller, result, callee, time.monotonic()


def _check_ended(p, c, caller, result, callee, t_answer: float, cause: str, within: float) -> dict:
    caller.join(45)
    assert not caller.is_alive(), "the caller never got the PBX's BYE"
    res = result["res"]
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert callee.wait() == 0, callee.errors()
    took = time.monotonic() - t_answer
    assert took < within, f"the call was ended after {took:.1f} s"
    row = p.wait_for(lambda: _row(p, c["id"]), timeout=10, what="the call record to close")
    assert row["disposition"] == "answered", row
    assert row["hangup_cause"] == cause, row
    assert row["hangup_side"] == "system", row
    # the recording was closed: merged, listed, no party file left behind
    rec = p.wait_for(
        lambda: [r for r in json.loads(p.cli("recordings", "--json").stdout) if r["id"] == c["id"]],
        timeout=10,
        what="the recording to be listed",
    )
    assert rec[0]["recording_path"].endswith(".wav"), rec
    assert Path(rec[0]["recording_path"]).exists()
    assert Path(rec[0]["recording_path"]).with_suffix(".json").exists()
    parts = [f for f in (p.workdir / "var" / "recordings").rglob("*.wav") if f.name.count("-") > 1 and "-in-" in f.name]
    assert not parts, parts
    p.wait_for(lambda: not p.api("calls"), timeout=5, what="no live call")
    return row


def test_silent_answered_call_ends_after_rtp_timeout(proxy_pbx, tmp_path):
    # one worker only: the next call goes through only if the silent call freed it
    p = proxy_pbx(media={"rtp_timeout": 3, "workers_max": 1, "workers_warm": 1})
    c, caller, result, callee, t0 = _silent_call(p, tmp_path)
    time.sleep(1.5)
    assert [x for x in p.api("calls") if x["id"] == c["id"]], "ended before the RTP timeout"
    row = _check_ended(p, c, caller, result, callee, t0, "rtp timeout", within=12)
    assert row["talk_seconds"] >= 2.5, row
    assert "no RTP for" in p.log()
    phone2 = Phone(p, "1002", "call_uas.xml", tmp_path / "uas2")
    res2 = call(p, "call_uac.xml", tmp_path / "uac2")
    assert res2.returncode == 0 and res2.successful == 1, res2.errors or res2.stdout[-3000:]
    assert phone2.wait() == 0, phone2.errors()


def test_call_longer_than_max_duration_is_ended(proxy_pbx, tmp_path):
    p = proxy_pbx(media={"rtp_timeout": 0}, calls={"max_duration": 5})
    c, caller, result, callee, t0 = _silent_call(p, tmp_path)
    row = _check_ended(p, c, caller, result, callee, t0, "max duration", within=12)
    assert "no RTP for" not in p.log()
    assert row["talk_seconds"] < 6, row
