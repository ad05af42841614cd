"""The front line with a real pypbx process and pjsua2 test phones: an IVR navigated by
DTMF to an extension, a voicemail left and listed with the CLI, the survey scored after
the callee hangs up, and after-hours routing with a fixed clock (PYPBX_FAKE_NOW)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.integration.test_calls import _state, dominant_freq, tone

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(phone_pbx):
    """The PBX factory of test_calls: started, with pjsua2 phones (conftest.phone_pbx)."""
    return phone_pbx


def _events(p, call_id: str) -> list[dict]:
    return json.loads(p.cli("calls", "show", call_id, "--json").stdout)["events"]


def _closed_calls(p, n: int = 1, timeout: float = 20) -> list[dict]:
    def done():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        return rows if len(rows) >= n and all(r["disposition"] != "in_progress" for r in rows) else None

    return sorted(p.wait_for(done, timeout, "the call records to close"), key=lambda r: r["offered_at"])


def _wait_kind(p, kind: str, timeout: float = 15) -> dict:
    def find():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        for r in rows:
            for e in _events(p, r["id"]):
                if e["kind"] == kind:
                    return e
        return None

    return p.wait_for(find, timeout, f"call event {kind}")


def test_ivr_navigated_by_dtmf_to_an_extension(pbx, tmp_path):
    p = pbx()
    p.cli(
        "ivr",
        "add",
        "main",
        "--number",
        "700",
        "--option",
        "3=extension:1002",
        "--option",
        "0=hangup",
        "--timeout",
        "15",
    )
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    call_a = a.cmd("call", uri=f"sip:700@127.0.0.1:{p.port}")["call"]
    _state(a, call_a, "CONFIRMED")
    _wait_kind(p, "ivr_menu", 10)
    time.sleep(0.5)  # into the greeting: a key press interrupts it
    a.cmd("dtmf", call=call_a, digits="3")
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "1002 to ring")
    b.cmd("answer", call=inc["call"])
    _state(b, inc["call"], "CONFIRMED")
    time.sleep(1.5)
    a.cmd("hangup", call=call_a)
    _state(b, inc["call"], "DISCONNECTED")
    [r] = _closed_calls(p)
    assert r["disposition"] == "answered" and r["extension"] == "1002" and r["callee_number"] == "700"
    # the recording is merged and the caller counted just after the record closes
    kinds = p.wait_for(
        lambda: (k := [e["kind"] for e in _events(p, r["id"])]) and "recording_saved" in k and k, 15, "the recording"
    )
    assert "ivr" in kinds and "ivr_choice" in kinds and "ivr_dial" in kinds
    caller = p.wait_for(
        lambda: (
            (c := json.loads(p.cli("callers", "show", "1001", "--json", check=False).stdout or "null"))
            and c["calls"] == 1
            and c
        ),
        10,
        "the caller counted",
    )
    assert caller["last_outcome"] == "answered"


def test_voicemail_left_and_listed(pbx, tmp_path):
    p = pbx()
    p.cli("voicemail", "box", "1002", "--number", "801", "--max-seconds", "30")
    a = pbx.phone(p, "1001")
    low = tone(tmp_path / "440.wav", 440)
    call_a = a.cmd("call", uri=f"sip:801@127.0.0.1:{p.port}")["call"]
    _state(a, call_a, "CONFIRMED")
    a.cmd("play", call=call_a, file=str(low))
    started = _wait_kind(p, "voicemail_recording", 15)
    time.sleep(3.0)
    a.cmd("dtmf", call=call_a, digits="#")
    _state(a, call_a, "DISCONNECTED", timeout=20)  # goodbye, then the PBX hangs up
    [r] = _closed_calls(p)
    assert r["disposition"] == "voicemail"
    stop = next(e for e in _events(p, r["id"]) if e["kind"] == "voicemail_stop")
    [m] = json.loads(p.cli("voicemail", "list", "1002", "--json").stdout)
    assert m["caller"] == "1001" and m["did"] == "801" and not m["heard"]
    expected = stop["ts"] - started["ts"]
    assert 2.5 < m["seconds"] < 6.0 and abs(m["seconds"] - expected) < 0.6, (m["seconds"], expected)
    path = Path(p.cli("voicemail", "play", m["id"]).stdout.strip())
    assert path.exists() and path.parent.name == time.strftime("%Y-%m-%d") and path.parent.parent.name == "1002"
    data, rate = sf.read(path, dtype="int16")
    assert data.ndim == 1 and abs(len(data) / rate - m["seconds"]) < 0.05
    mid = data[len(data) // 4 : 3 * len(data) // 4]
    assert np.sqrt(np.mean(mid.astype(float) ** 2)) > 300 and abs(dominant_freq(mid, rate) - 440) < 15
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["caller"] == "1001" and side["call_id"] == r["id"]
    p.cli("voicemail", "heard", m["id"])
    assert json.loads(p.cli("voicemail", "list", "1002", "--json").stdout)[0]["heard"] is True


def test_survey_scored_after_the_callee_hangs_up(pbx, tmp_path):
    p = pbx()
    p.cli("survey", "enable")
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    call_a = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "1002 to ring")
    b.cmd("answer", call=inc["call"])
    _state(a, call_a, "CONFIRMED")
    time.sleep(1.5)
    b.cmd("hangup", call=inc["call"])  # the callee first: the caller stays
    _wait_kind(p, "survey_offered", 10)
    time.sleep(1.0)
    a.cmd("dtmf", call=call_a, digits="5")
    _state(a, call_a, "DISCONNECTED", timeout=20)
    [r] = _closed_calls(p)
    assert r["disposition"] == "answered" and r["hangup_side"] == "callee"
    rep = json.loads(p.cli("survey", "report", "--json").stdout)
    assert rep["answers"] == 1 and rep["agents"] == [
        {"agent": "1002", "answers": 1, "average": 5.0, "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}}
    ]
    assert any(e["kind"] == "survey" and json.loads(e["detail"])["score"] == 5 for e in _events(p, r["id"]))


def test_after_hours_routing_with_a_fixed_clock(pbx, tmp_path, monkeypatch):
    monkeypatch.setenv("PYPBX_FAKE_NOW", "2026-12-25T10:00")  # Christmas, a Friday
    p = pbx()
    p.cli("hours", "set", "clinic", "--week", "mon-fri 08:00-18:00", "--tz", "Europe/Paris")
    p.cli("hours", "holiday", "clinic", "2026-12-25")
    p.cli(
        "ivr",
        "add",
        "day",
        "--number",
        "702",
        "--schedule",
        "clinic",
        "--after-hours",
        "play:clinic_closed",
        "--option",
        "1=extension:1002",
    )
    a = pbx.phone(p, "1001")
    call_a = a.cmd("call", uri=f"sip:702@127.0.0.1:{p.port}")["call"]
    _state(a, call_a, "CONFIRMED")
    _state(a, call_a, "DISCONNECTED", timeout=20)  # closed message, goodbye, hung up
    [r] = _closed_calls(p)
    assert r["disposition"] == "after_hours" and "after_hours" in r["flags"]
    ev = next(e for e in _events(p, r["id"]) if e["kind"] == "after_hours")
    assert json.loads(ev["detail"])["schedule"] == "clinic"
