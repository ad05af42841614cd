"""kill -9 of the PBX mid-call, then a restart (issue 12): the call is booked
``interrupted`` with the talk time the recording shows (the downtime is not talk), and its
WAV is repaired, merged and listed.

sipp plays both phones (as in test_proxy_calls.py): 1002 answers (call_uas_silent.xml),
1001 calls it (call_uac_silent.xml); neither hangs up: the PBX dies under them.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.integration.test_proxy_calls import Phone, call

pytestmark = pytest.mark.slow

DOWNTIME = 6.0


def test_pbx_killed_mid_call_books_the_talk_the_recording_shows(proxy_pbx, tmp_path):
    p = proxy_pbx()
    callee = Phone(p, "1002", "call_uas_silent.xml", tmp_path / "uas")
    caller = threading.Thread(target=lambda: call(p, "call_uac_silent.xml", tmp_path / "uac", timeout=20), daemon=True)
    caller.start()
    [c] = p.wait_for(
        lambda: [c for c in p.api("calls") if c["state"] == "talking"], timeout=20, what="the call to be answered"
    )
    time.sleep(3.0)  # ~3 s of talk recorded
    assert p.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(DOWNTIME)  # the PBX is down: this is not talk
    p.start()
    try:
        row = p.wait_for(
            lambda: [r for r in json.loads(p.cli("calls", "list", "--json").stdout) if r["id"] == c["id"]],
            timeout=10,
            what="the call in the books",
        )[0]
        assert row["disposition"] == "interrupted" and row["hangup_cause"] == "pbx restarted", row
        assert 2.0 <= row["talk_seconds"] <= 5.0, row  # what was recorded, not the downtime
        rec = p.wait_for(
            lambda: [r for r in json.loads(p.cli("recordings", "--json").stdout) if r["id"] == c["id"]],
            timeout=10,
            what="the repaired recording to be listed",
        )[0]
        assert rec["recording_status"] == "interrupted", rec
        wav = Path(rec["recording_path"])
        data, rate = sf.read(wav, dtype="int16")
        assert data.shape[1] == 2
        assert abs(len(data) / rate - row["talk_seconds"]) <= 0.5, (len(data) / rate, row)
        assert wav.with_suffix(".json").exists()
        assert not list(wav.parent.glob(f"{c['id']}-*.wav")), "party files left behind"
    finally:
        callee.proc.kill()
        callee.wait()
        caller.join(25)
