"""Calls between real phones through a running pypbx: the media engine bridges and records
them, and every call lands in the books with one disposition.

The phones are pjsua2 test phones (tests/phone/) that play a tone each, so the recording can
be checked channel by channel: the caller's tone on the left, the callee's on the right.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.integration.harness import PbxProcess, auth_users, dominant_freq, run_sipp, tone
from tests.phone.driver import PjPhone

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"


@pytest.fixture
def pbx(phone_pbx):
    return phone_pbx


def _state(ph: PjPhone, call: int, state: str, timeout: float = 15) -> dict:
    return ph.wait_event(
        lambda e: e.get("event") == "state" and e.get("call") == call and e["state"] == state,
        timeout,
        f"call {call} {state}",
    )


def _wait_record(p: PbxProcess, timeout: float = 15) -> dict:
    def done():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        return rows if rows and all(r["disposition"] != "in_progress" for r in rows) else None

    return p.wait_for(done, timeout, "the call record to close")


def test_call_between_two_phones_is_bridged_recorded_and_booked(pbx, tmp_path):
    p = pbx()
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    low, high = tone(tmp_path / "440.wav", 440), tone(tmp_path / "1000.wav", 1000)
    call_a = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    a.cmd("play", call=call_a, file=str(low))
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "1002 to ring")
    time.sleep(0.5)  # ring a little
    b.cmd("answer", call=inc["call"])
    b.cmd("play", call=inc["call"], file=str(high))
    b.cmd("record", call=inc["call"], file=str(tmp_path / "heard_by_1002.wav"))
    _state(a, call_a, "CONFIRMED")
    live = p.api("calls")
    assert len(live) == 1 and live[0]["caller"] == "1001" and live[0]["callee"] == "1002"
    assert live[0]["state"] == "talking"
    time.sleep(3.0)
    a.cmd("hangup", call=call_a)
    _state(b, inc["call"], "DISCONNECTED")

    rows = _wait_record(p)
    assert len(rows) == 1
    r = rows[0]
    assert (r["caller_number"], r["callee_number"], r["direction"]) == ("1001", "1002", "internal")
    assert r["disposition"] == "answered" and r["hangup_side"] == "caller"
    assert 0.3 < r["ring_seconds"] < 5 and 2.5 < r["talk_seconds"] < 6

    def saved():
        recs = json.loads(p.cli("recordings", "--json").stdout)
        return recs if recs and recs[0]["recording_status"] == "complete" else None

    rec = p.wait_for(saved, 15, "the recording")[0]
    path = Path(rec["recording_path"])
    assert path.exists() and path.parent.name == time.strftime("%Y-%m-%d")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    data, rate = sf.read(path, dtype="int16")
    assert rate == 8000 and data.ndim == 2 and data.shape[1] == 2
    duration = len(data) / rate
    assert abs(duration - r["talk_seconds"]) < 0.5, (duration, r["talk_seconds"])
    mid = data[len(data) // 4 : 3 * len(data) // 4]
    left, right = mid[:, 0], mid[:, 1]
    assert np.sqrt(np.mean(left.astype(float) ** 2)) > 300  # non-silent
    assert np.sqrt(np.mean(right.astype(float) ** 2)) > 300
    assert abs(dominant_freq(left, rate) - 440) < 15  # the caller's tone, left
    assert abs(dominant_freq(right, rate) - 1000) < 15  # the callee's tone, right

    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["call_id"] == r["id"] and meta["disposition"] == "answered"
    assert meta["caller"] == {"number": "1001", "name": "", "channel": "left"}
    assert meta["callee"]["number"] == "1002" and meta["callee"]["channel"] == "right"
    assert meta["recording"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["recording"]["sample_rate"] == 8000
    assert abs(meta["recording"]["seconds"] - duration) < 0.01
    # only the stereo file and its sidecar are left, no per-party files
    assert sorted(x.name for x in path.parent.iterdir()) == sorted([path.name, path.with_suffix(".json").name])
    # the callee heard the caller's tone through the bridge
    heard, hr = sf.read(tmp_path / "heard_by_1002.wav", dtype="int16")
    assert abs(dominant_freq(heard[len(heard) // 4 : 3 * len(heard) // 4], hr) - 440) < 15

    show = json.loads(p.cli("calls", "show", r["id"], "--json").stdout)
    kinds = [e["kind"] for e in show["events"]]
    assert kinds[0] == "offered" and "answered" in kinds and "recording_saved" in kinds
    assert kinds.index("answered") < kinds.index("ended")
    report = json.loads(p.cli("calls", "report", "--json").stdout)
    assert report["offered"] == 1 and report["answered"] == 1 and report["balanced"]


def test_unanswered_calls_get_the_right_dispositions(pbx, tmp_path):
    p = pbx(calls={"ring_time": 3})
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    # 1. unknown number
    c1 = a.cmd("call", uri=f"sip:1999@127.0.0.1:{p.port}")["call"]
    ev = _state(a, c1, "DISCONNECTED")
    assert ev["code"] == 404
    # 2. known extension, nobody registered
    c2 = a.cmd("call", uri=f"sip:1003@127.0.0.1:{p.port}")["call"]
    assert _state(a, c2, "DISCONNECTED")["code"] == 480
    # 3. busy
    c3 = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "ring")
    b.cmd("answer", call=inc["call"], code=486)
    assert _state(a, c3, "DISCONNECTED")["code"] == 486
    # 4. the caller gives up while it rings
    c4 = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc = b.wait_event(lambda e: e.get("event") == "incoming" and e["call"] != inc["call"], 15, "ring")
    time.sleep(0.5)
    a.cmd("hangup", call=c4)
    _state(b, inc["call"], "DISCONNECTED")
    # 5. nobody answers within calls.ring_time
    c5 = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc5 = b.wait_event(lambda e: e.get("event") == "incoming" and e["call"] not in (inc["call"],), 15, "ring")
    assert _state(a, c5, "DISCONNECTED", 15)["code"] == 480
    _state(b, inc5["call"], "DISCONNECTED")

    def closed():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        return rows if len(rows) == 5 and all(r["disposition"] != "in_progress" for r in rows) else None

    rows = sorted(p.wait_for(closed, 15, "five closed records"), key=lambda r: r["offered_at"])
    assert [r["disposition"] for r in rows] == ["not_found", "unavailable", "busy", "abandoned_ringing", "no_answer"]
    assert [r["callee_number"] for r in rows] == ["1999", "1003", "1002", "1002", "1002"]
    assert all(r["talk_seconds"] is None for r in rows)
    assert 2.5 < rows[4]["ring_seconds"] < 6
    report = json.loads(p.cli("calls", "report", "--json").stdout)
    assert report["offered"] == 5 and report["answered"] == 0 and report["abandoned"] == 1
    assert report["balanced"]
    # nothing was recorded for calls that were never answered
    assert json.loads(p.cli("recordings", "--json").stdout) == []


def test_sipp_phones_with_audio_are_recorded(pbx, tmp_path):
    """sipp as both phones (PCMA speech from sipp's own pcap both ways), digest proxy-auth."""
    from tests.integration.test_proxy_calls import Phone

    p = pbx()
    phone = Phone(p, "1002", "call_uas_audio.xml", tmp_path / "uas")
    res = run_sipp(
        "call_uac_audio.xml",
        f"127.0.0.1:{p.port}",
        users=auth_users(["1001"], PASSWORD),
        workdir=tmp_path / "uac",
        extra=["-s", "1002"],
        timeout=40,
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-2000:]
    assert phone.wait() == 0, phone.errors()
    r = _wait_record(p)[0]
    assert r["disposition"] == "answered" and r["hangup_side"] == "caller"
    rec = p.wait_for(
        lambda: [x for x in json.loads(p.cli("recordings", "--json").stdout) if x["recording_status"] == "complete"],
        15,
        "recording",
    )[0]
    data, rate = sf.read(rec["recording_path"], dtype="int16")
    assert abs(len(data) / rate - r["talk_seconds"]) < 0.5
    for ch in (0, 1):
        assert np.count_nonzero(np.abs(data[:, ch]) > 200) > rate  # both parties' speech


def test_dtmf_from_phones_reaches_the_core(pbx, tmp_path):
    """RFC 2833 (telephone-event, PT 101 as negotiated) and SIP INFO digits from sipp phones
    become call events on the caller's leg."""
    from tests.integration.test_proxy_calls import Phone

    p = pbx()
    for scenario in ("call_uac_rfc2833.xml", "call_uac_info_dtmf.xml"):
        phone = Phone(p, "1002", "call_uas.xml", tmp_path / f"uas-{scenario}")
        res = run_sipp(
            scenario,
            f"127.0.0.1:{p.port}",
            users=auth_users(["1003"], PASSWORD),
            workdir=tmp_path / f"uac-{scenario}",
            extra=["-s", "1002"],
            timeout=30,
        )
        assert res.returncode == 0, res.errors or res.stdout[-2000:]
        assert phone.wait() == 0, phone.errors()
    rows = sorted(_wait_record(p), key=lambda r: r["offered_at"])
    assert len(rows) == 2 and all(r["disposition"] == "answered" for r in rows)

    def digits(call_id: str) -> list[tuple[str, str]]:
        events = json.loads(p.cli("calls", "show", call_id, "--json").stdout)["events"]
        return [
            (json.loads(e["detail"])["leg"], json.loads(e["detail"])["digit"]) for e in events if e["kind"] == "dtmf"
        ]

    assert digits(rows[0]["id"]) == [("caller", "1"), ("caller", "5"), ("caller", "#")]
    assert digits(rows[1]["id"]) == [("caller", "5"), ("caller", "#")]


def test_baresip_callee_with_audio_is_recorded(pbx, tmp_path):
    """baresip (Debian's softphone) as 1002 auto-answers and sends a 1000 Hz tone from a
    WAV (aufile source); a sipp caller streams PCMA speech. Both channels are recorded."""
    from tests.integration.harness import Baresip

    p = pbx()
    tone(tmp_path / "1000.wav", 1000, seconds=30)
    phone = Baresip(tmp_path / "baresip", f"1002@127.0.0.1:{p.port}", PASSWORD)
    cfg = phone.dir / "config"
    cfg.write_text(
        cfg.read_text().replace("audio_source nil", f"audio_source aufile,{tmp_path / '1000.wav'}")
        + "module aufile.so\n"
    )
    accounts = phone.dir / "accounts"
    accounts.write_text(accounts.read_text().strip() + ";answermode=auto;audio_codecs=PCMA,PCMU\n")
    phone.start(seconds=40)
    try:
        p.wait_for(lambda: p.api("registrations", aor="1002"), timeout=15, what="baresip to register")
        res = run_sipp(
            "call_uac_audio.xml",
            f"127.0.0.1:{p.port}",
            users=auth_users(["1001"], PASSWORD),
            workdir=tmp_path / "uac",
            extra=["-s", "1002"],
            timeout=40,
        )
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-2000:] + phone.log()
    finally:
        phone.stop()
    r = _wait_record(p)[0]
    assert r["disposition"] == "answered" and r["callee_number"] == "1002"
    rec = p.wait_for(
        lambda: [x for x in json.loads(p.cli("recordings", "--json").stdout) if x["recording_status"] == "complete"],
        15,
        "recording",
    )[0]
    data, rate = sf.read(rec["recording_path"], dtype="int16")
    assert abs(len(data) / rate - r["talk_seconds"]) < 0.5
    assert np.count_nonzero(np.abs(data[:, 0]) > 200) > rate  # the caller's speech, left
    right = data[len(data) // 4 : 3 * len(data) // 4, 1]
    assert np.sqrt(np.mean(right.astype(float) ** 2)) > 300
    assert abs(dominant_freq(right, rate) - 1000) < 15  # baresip's tone, right


def test_pbx_crash_mid_call_is_booked_and_its_recording_repaired(pbx, tmp_path):
    """kill -9 of the whole PBX during a recorded call: at the next start the call is closed
    as interrupted and the recording it left is a valid WAV marked interrupted."""
    import signal as _signal

    p = pbx()
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    c = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    a.cmd("play", call=c, file=str(tone(tmp_path / "440.wav", 440)))
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "ring")
    b.cmd("answer", call=inc["call"])
    b.cmd("play", call=inc["call"], file=str(tone(tmp_path / "1000.wav", 1000)))
    _state(a, c, "CONFIRMED")
    p.wait_for(lambda: list((p.cfg.data_dir / "recordings").glob("*/*-callee.wav")), 10, "recording to start")
    time.sleep(2.0)
    p.proc.send_signal(_signal.SIGKILL)
    p.proc.wait(10)
    time.sleep(1.0)  # its workers notice and exit
    p.start()
    rows = json.loads(p.cli("calls", "list", "--json").stdout)
    assert len(rows) == 1 and rows[0]["disposition"] == "interrupted"
    assert rows[0]["hangup_cause"] == "pbx restarted"
    recs = json.loads(p.cli("recordings", "--json").stdout)
    assert recs[0]["recording_status"] == "interrupted"
    path = Path(recs[0]["recording_path"])
    data, rate = sf.read(path, dtype="int16")  # a valid WAV
    assert data.shape[1] == 2 and len(data) / rate > 1.0
    assert abs(dominant_freq(data[rate // 2 : rate * 3 // 2, 0], rate) - 440) < 15
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["recording"]["status"] == "interrupted" and "interrupted" in meta["flags"]
    assert not list(path.parent.glob("*-*.wav"))  # party files merged away
    report = json.loads(p.cli("calls", "report", "--json").stdout)
    assert report["balanced"] and report["dispositions"]["interrupted"] == 1


def test_full_disk_skips_the_recording_never_the_call(pbx, tmp_path):
    """With less free space than calls.min_free_mb the call is answered and bridged as
    usual; it is flagged and its events say why nothing was recorded."""
    p = pbx(calls={"min_free_mb": 10_000_000})  # 10 TB: never available here
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    c = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    a.cmd("play", call=c, file=str(tone(tmp_path / "440.wav", 440)))
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "ring")
    b.cmd("answer", call=inc["call"])
    b.cmd("record", call=inc["call"], file=str(tmp_path / "heard.wav"))
    _state(a, c, "CONFIRMED")
    time.sleep(2.0)
    a.cmd("hangup", call=c)
    _state(b, inc["call"], "DISCONNECTED")
    r = _wait_record(p)[0]
    assert r["disposition"] == "answered" and "disk_full" in r["flags"]
    events = json.loads(p.cli("calls", "show", r["id"], "--json").stdout)["events"]
    skipped = [json.loads(e["detail"]) for e in events if e["kind"] == "recording_skipped"]
    assert skipped and skipped[0]["reason"] == "disk full"
    assert json.loads(p.cli("recordings", "--json").stdout) == []
    heard, hr = sf.read(tmp_path / "heard.wav", dtype="int16")  # the call itself carried audio
    assert abs(dominant_freq(heard[len(heard) // 4 : 3 * len(heard) // 4], hr) - 440) < 15


def test_calls_beyond_the_warm_workers_start_a_worker_on_demand(pbx, tmp_path):
    """With no warm worker the call is not refused: a worker starts for it and the
    INVITE's retransmission reaches it."""
    from tests.integration.test_proxy_calls import Phone

    p = pbx(media={"workers_warm": 0})
    phone = Phone(p, "1002", "call_uas.xml", tmp_path / "uas")
    res = run_sipp(
        "call_uac.xml",
        f"127.0.0.1:{p.port}",
        users=auth_users(["1001"], PASSWORD),
        workdir=tmp_path / "uac",
        extra=["-s", "1002"],
        timeout=30,
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-2000:]
    assert phone.wait() == 0, phone.errors()
    assert _wait_record(p)[0]["disposition"] == "answered"
