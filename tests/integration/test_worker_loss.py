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
from pathlib import Path

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


def test_killed_worker_spares_the_other_call_and_its_recording_is_merged(pbx, tmp_path):
    """Two calls up (1001->1002 long and silent, 1001->1003 with speech both ways); the
    first call's worker is killed: the second call keeps its audio and ends normally; both
    are in the books; the killed call's two party files (and only those) are repaired and
    merged into its stereo WAV with a sidecar, listed by ``pypbx recordings``, also after a
    restart; no party file is left behind."""
    import numpy as np
    import soundfile as sf

    p = pbx()
    callee_a = Phone(p, "1002", "call_uas_long.xml", tmp_path / "uas_a")
    result_a: dict = {}
    caller_a = threading.Thread(
        target=lambda: result_a.setdefault("res", call(p, "call_uac_long.xml", tmp_path / "uac_a", timeout=40)),
        daemon=True,
    )
    caller_a.start()
    [a] = p.wait_for(
        lambda: [c for c in p.api("calls") if c["state"] == "talking"], timeout=20, what="call A to be answered"
    )
    callee_b = Phone(p, "1003", "call_uas_audio.xml", tmp_path / "uas_b")
    result_b: dict = {}
    caller_b = threading.Thread(
        target=lambda: result_b.setdefault(
            "res", call(p, "call_uac_audio.xml", tmp_path / "uac_b", to="1003", timeout=40)
        ),
        daemon=True,
    )
    caller_b.start()
    [b] = p.wait_for(
        lambda: [c for c in p.api("calls") if c["state"] == "talking" and c["id"] != a["id"]],
        timeout=20,
        what="call B to be answered",
    )
    assert a["worker"] != b["worker"]
    time.sleep(1.0)
    os.kill(int(a["worker"]), signal.SIGKILL)

    for th in (caller_a, caller_b):
        th.join(45)
        assert not th.is_alive(), "a caller never finished"
    for res in (result_a["res"], result_b["res"]):
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert callee_a.wait() == 0, callee_a.errors()
    assert callee_b.wait() == 0, callee_b.errors()

    def rows():
        got = {r["id"]: r for r in _calls_rows(p) if r["id"] in (a["id"], b["id"]) and r.get("ended_at")}
        return got if len(got) == 2 else None

    books = p.wait_for(rows, timeout=15, what="both calls in the books")
    assert books[a["id"]]["disposition"] == "interrupted", books[a["id"]]
    assert "worker_lost" in str(books[a["id"]]["flags"])
    assert books[b["id"]]["disposition"] == "answered" and books[b["id"]]["hangup_side"] == "caller", books[b["id"]]

    def listed():
        recs = {r["id"]: r for r in json.loads(p.cli("recordings", "--json").stdout)}
        return recs if a["id"] in recs and b["id"] in recs else None

    recs = p.wait_for(listed, timeout=15, what="both recordings listed")
    ra, rb = recs[a["id"]], recs[b["id"]]
    assert ra["recording_status"] == "interrupted", ra
    wav_a = Path(ra["recording_path"])
    data_a, rate = sf.read(wav_a, dtype="int16")
    assert data_a.shape[1] == 2 and len(data_a) / rate > 0.5
    meta = json.loads(wav_a.with_suffix(".json").read_text())
    assert meta["call_id"] == a["id"] and meta["recording"]["status"] == "interrupted"
    # the repair touched exactly call A's two party files (not call B's, still being written)
    events = json.loads(p.cli("calls", "show", a["id"], "--json").stdout)["events"]
    [repaired] = [json.loads(e["detail"]) for e in events if e["kind"] == "recording_repaired"]
    assert len(repaired["files"]) == 2 and all(a["id"] in f for f in repaired["files"]), repaired
    # the other call kept its audio: both parties' speech, to its end
    assert rb["recording_status"] == "complete", rb
    data_b, rate = sf.read(rb["recording_path"], dtype="int16")
    assert abs(len(data_b) / rate - books[b["id"]]["talk_seconds"]) <= 0.1
    for ch in (0, 1):
        assert np.count_nonzero(np.abs(data_b[:, ch]) > 200) > rate
    parts = [f for f in wav_a.parent.glob("*.wav") if f.stem not in (a["id"], b["id"])]
    assert not parts, parts

    # after a restart the killed call's recording is still listed, unchanged
    p.stop()
    p.start()
    again = {r["id"]: r for r in json.loads(p.cli("recordings", "--json").stdout)}
    assert again[a["id"]]["recording_path"] == str(wav_a)
    assert again[a["id"]]["recording_status"] == "interrupted"
    assert "Traceback" not in p.log(), p.log()[-4000:]
