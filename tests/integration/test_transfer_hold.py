"""Hold with music on hold, blind transfer and attended transfer from desk phones, end to end:
three pjsua2 test phones (tests/phone) registered to a real ``pypbx run`` process."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.integration.harness import PbxProcess

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"
RATE = 8000


def tone(path: Path, freq: float, seconds: float = 5.0) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16), RATE, subtype="PCM_16")
    return path


def read_wav(path: Path, timeout: float = 5.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        try:
            data, _ = sf.read(path, dtype="float64", always_2d=True)
            if len(data) > RATE // 2:
                return data[:, 0]
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no usable recording at {path}")
        time.sleep(0.2)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


def band_ratio(x: np.ndarray, freq: float) -> float:
    """Share of the signal's energy within ±40 Hz of ``freq``."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    total = spec.sum()
    return float(spec[(f > freq - 40) & (f < freq + 40)].sum() / total) if total > 0 else 0.0


class Phones:
    def __init__(self, p: PbxProcess, tmp: Path) -> None:
        from tests.phone.driver import PjPhone

        self.p = p
        self.tmp = tmp
        self.phones: dict[str, PjPhone] = {}
        for ext in ("1001", "1002", "1003"):
            ph = PjPhone(f"pj{ext}", tmp)
            self.phones[ext] = ph
            ph.cmd("register", server=f"127.0.0.1:{p.port}", user=ext, password=PASSWORD)
        for ph in self.phones.values():
            ev = ph.wait_event(lambda e: e.get("event") == "reg", 15, "registration")
            assert ev["code"] == 200, ev

    def __getitem__(self, ext: str):
        return self.phones[ext]

    def uri(self, ext: str) -> str:
        return f"sip:{ext}@127.0.0.1:{self.p.port}"

    def call(self, frm: str, to: str) -> tuple[int, int]:
        """``frm`` calls ``to``, ``to`` answers: (call number on frm, on to); both CONFIRMED."""
        a = self[frm].cmd("call", uri=self.uri(to))["call"]
        inc = self[to].wait_event(
            lambda e: (
                e.get("event") == "incoming" and not any(x.get("call") == e["call"] and x.get("answered") for x in [])
            ),
            15,
            "incoming",
        )
        seen = {e["call"] for e in self[to].seen if e.get("event") == "incoming"}
        b = max(seen)
        del inc
        self[to].cmd("answer", call=b)
        self.confirmed(frm, a)
        self.confirmed(to, b)
        return a, b

    def confirmed(self, ext: str, call: int, timeout: float = 15) -> None:
        self[ext].wait_event(
            lambda e: e.get("event") == "state" and e["call"] == call and e["state"] == "CONFIRMED",
            timeout,
            f"{ext} call {call} confirmed",
        )

    def disconnected(self, ext: str, call: int, timeout: float = 15) -> dict:
        return self[ext].wait_event(
            lambda e: e.get("event") == "state" and e["call"] == call and e["state"].startswith("DISCONN"),
            timeout,
            f"{ext} call {call} disconnected",
        )

    def is_up(self, ext: str, call: int) -> bool:
        states = [e["state"] for e in self[ext].seen if e.get("event") == "state" and e["call"] == call]
        return bool(states) and states[-1] == "CONFIRMED"

    def listen(self, ext: str, call: int, name: str, seconds: float = 2.0) -> np.ndarray:
        path = self.tmp / f"{name}.wav"
        self[ext].cmd("record", call=call, file=str(path))
        time.sleep(seconds)
        self[ext].cmd("stop_record", call=call)
        return read_wav(path)

    def close(self) -> None:
        for ph in self.phones.values():
            ph.close()


@pytest.fixture
def env(tmp_path: Path):
    p = PbxProcess(tmp_path / "pbx")
    p.add_extensions(["1001", "1002", "1003"], PASSWORD)
    p.start()
    phones = None
    try:
        phones = Phones(p, tmp_path)
        yield p, phones
    finally:
        if phones is not None:
            phones.close()
        if p.proc is not None and p.proc.poll() is None:
            p.stop()


def calls_db(p: PbxProcess) -> tuple[list[dict], dict[str, list[tuple[str, dict]]]]:
    con = sqlite3.connect(f"file:{p.cfg.db_path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        calls = [dict(r) for r in con.execute("SELECT * FROM calls ORDER BY offered_at")]
        events: dict[str, list[tuple[str, dict]]] = {}
        for r in con.execute("SELECT call_id, kind, detail FROM call_events ORDER BY seq"):
            events.setdefault(r["call_id"], []).append((r["kind"], json.loads(r["detail"] or "{}")))
        return calls, events
    finally:
        con.close()


def wait_all_ended(p: PbxProcess, n: int, timeout: float = 30) -> tuple[list[dict], dict]:
    deadline = time.monotonic() + timeout
    while True:
        calls, events = calls_db(p)
        if (
            len(calls) >= n
            and all(c["disposition"] != "in_progress" for c in calls)
            and all(any(k == "recording_saved" for k, _ in events.get(c["id"], [])) for c in calls)
        ):
            return calls, events
        if time.monotonic() > deadline:
            raise AssertionError(
                "calls not closed: "
                + repr([(c["callee_number"], c["disposition"], [k for k, _ in events.get(c["id"], [])]) for c in calls])
            )
        time.sleep(0.2)


def test_hold_plays_music_to_the_held_party_and_unhold_restores_audio(env, tmp_path):
    p, ph = env
    a, b = ph.call("1001", "1002")
    quiet = ph.listen("1002", b, "before-hold", 1.0)
    assert rms(quiet) < 0.01, "1001 sends nothing yet: 1002 should hear silence"
    ph["1001"].cmd("hold", call=a)
    time.sleep(0.7)
    moh = ph.listen("1002", b, "on-hold", 2.0)
    assert rms(moh) > 0.02, f"1002 should hear music on hold (rms {rms(moh):.4f})"
    assert p.api("calls")[0]["state"] == "held"
    ph["1001"].cmd("unhold", call=a)
    time.sleep(0.7)
    after = ph.listen("1002", b, "after-unhold", 1.0)
    assert rms(after) < 0.01, f"music must stop on unhold (rms {rms(after):.4f})"
    ph["1001"].cmd("play", call=a, file=str(tone(tmp_path / "t1k.wav", 1000)))
    time.sleep(0.3)
    talk = ph.listen("1002", b, "talk", 1.5)
    assert rms(talk) > 0.02 and band_ratio(talk, 1000) > 0.5, "bridge restored after unhold"
    ph["1001"].cmd("hangup", call=a)
    ph.disconnected("1002", b)
    calls, events = wait_all_ended(p, 1)
    (c,) = calls
    assert c["disposition"] == "answered"
    kinds = [k for k, _ in events[c["id"]]]
    assert kinds.count("held") == 1 and kinds.count("unheld") == 1
    assert kinds.index("held") < kinds.index("unheld") < kinds.index("ended")
    held = dict(events[c["id"]])["held"]
    assert held["party"] == "1001" and held["recording"] is True
    rec, rate = sf.read(dict(events[c["id"]])["recording_saved"]["path"])
    # hold time is part of the recording: one file from answer to hang-up (>= 1+2+1+1.5 s of
    # listening), each party's own voice (the music is what 1002 hears, not what it says)
    assert rec.shape[1] == 2 and len(rec) / rate > 5.0
    assert band_ratio(rec[-rate:, 0], 1000) > 0.5


def test_blind_transfer_1002_transfers_1001_to_1003(env, tmp_path):
    p, ph = env
    a, b = ph.call("1001", "1002")
    ph["1002"].cmd("xfer", call=b, uri=ph.uri("1003"))
    inc = ph["1003"].wait_event(lambda e: e.get("event") == "incoming", 15, "1003 rings")
    assert "sip:1001@" in inc["from"], f"1003 sees who is being transferred: {inc['from']}"
    ph["1003"].cmd("answer", call=inc["call"])
    ph.confirmed("1003", inc["call"])
    ph["1002"].wait_event(lambda e: e.get("event") == "xfer_status" and e["final"], 15, "final NOTIFY")
    ph.disconnected("1002", b)
    time.sleep(0.5)
    assert ph.is_up("1001", a) and ph.is_up("1003", inc["call"])
    ph["1001"].cmd("play", call=a, file=str(tone(tmp_path / "t1k.wav", 1000)))
    ph["1003"].cmd("play", call=inc["call"], file=str(tone(tmp_path / "t600.wav", 600)))
    time.sleep(0.3)
    heard3 = ph.listen("1003", inc["call"], "heard-by-1003", 1.5)
    heard1 = ph.listen("1001", a, "heard-by-1001", 1.5)
    assert band_ratio(heard3, 1000) > 0.5, "1003 hears 1001's tone"
    assert band_ratio(heard1, 600) > 0.5, "1001 hears 1003's tone"
    ph["1003"].cmd("hangup", call=inc["call"])
    ph.disconnected("1001", a)
    calls, events = wait_all_ended(p, 1)
    (c,) = calls
    assert c["disposition"] == "answered" and c["extension"] == "1003"
    assert c["caller_number"] == "1001" and c["callee_number"] == "1002"
    ev = dict(events[c["id"]])
    assert ev["transferred"]["type"] == "blind"
    assert ev["transferred"]["from"] == "1002" and ev["transferred"]["to"] == "1003"
    rec, rate = sf.read(ev["recording_saved"]["path"])
    assert rec.shape[1] == 2
    tail = rec[-int(1.0 * rate) :]
    assert band_ratio(tail[:, 0], 1000) > 0.5 and band_ratio(tail[:, 1], 600) > 0.5, (
        "after the transfer the recording has 1001 left, 1003 right"
    )


def test_attended_transfer_1002_consults_1003_then_joins_1001(env, tmp_path):
    p, ph = env
    a, b = ph.call("1001", "1002")  # call 1
    ph["1002"].cmd("hold", call=b)
    time.sleep(0.5)
    moh = ph.listen("1001", a, "1001-on-hold", 1.0)
    assert rms(moh) > 0.02
    b2, c3 = ph.call("1002", "1003")  # consultation, another worker
    ph["1002"].cmd("xfer_replaces", call=b, other=b2)
    ph["1002"].wait_event(lambda e: e.get("event") == "xfer_status" and e["final"], 15, "final NOTIFY")
    ph.disconnected("1002", b)
    ph.disconnected("1002", b2)
    time.sleep(0.5)
    assert ph.is_up("1001", a) and ph.is_up("1003", c3)
    ph["1001"].cmd("play", call=a, file=str(tone(tmp_path / "t1k.wav", 1000)))
    ph["1003"].cmd("play", call=c3, file=str(tone(tmp_path / "t600.wav", 600)))
    time.sleep(0.3)
    heard3 = ph.listen("1003", c3, "heard-by-1003", 1.5)
    heard1 = ph.listen("1001", a, "heard-by-1001", 1.5)
    assert band_ratio(heard3, 1000) > 0.5, "1003 hears 1001 (through two workers)"
    assert band_ratio(heard1, 600) > 0.5, "1001 hears 1003"
    ph["1001"].cmd("hangup", call=a)
    ph.disconnected("1003", c3)
    calls, events = wait_all_ended(p, 2)
    first, consult = calls
    assert first["callee_number"] == "1002" and consult["caller_number"] == "1002"
    assert consult["callee_number"] == "1003"
    assert first["disposition"] == "answered" and first["extension"] == "1003"
    assert consult["disposition"] == "answered" and consult["hangup_cause"] == "attended transfer"
    e1, e2 = dict(events[first["id"]]), dict(events[consult["id"]])
    assert e1["transferred"]["type"] == "attended" and e1["transferred"]["joined_call"] == consult["id"]
    assert e1["transferred"]["to"] == "1003"
    assert e2["transferred"]["joined_call"] == first["id"]
    rec, rate = sf.read(e1["recording_saved"]["path"])
    tail = rec[-int(1.0 * rate) :]
    assert band_ratio(tail[:, 0], 1000) > 0.5 and band_ratio(tail[:, 1], 600) > 0.5
    assert p.api("calls") == []
