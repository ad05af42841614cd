"""The call layer's own ends (issue 12) with media.fake: a leg's media_timeout ends the call
("rtp timeout"), a call reaching [calls] max_duration is ended ("max duration"), legs that
never report their end are booked after the grace; recordings' completeness; a crash's
party files tell the talk time; a worker's repair touches only its call's files."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import numpy as np

from media import protocol as P
from media.recording import recorded_seconds, repair_files, write_atomic
from pypbx.call import manager as manager_mod
from pypbx.recordings import COMPLETE_TOLERANCE, completeness, last_media
from tests.unit.test_calls_transfer import Env, run, settle


async def _row(env: Env, call_id: str) -> dict:
    row = await env.db.get_call_row(call_id)
    assert row is not None
    return dict(row)


def test_media_timeout_ends_an_answered_call_with_its_cause(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-A")
            w.inject(P.MediaTimeout(leg="in-1", seconds=60.0))
            await settle()
            assert s.ended and not w.legs
            row = await _row(env, s.rec.id)
            kinds = [k for k, _ in await env.events(s.rec.id)]
            return row, kinds, env.cm.sessions

    row, kinds, sessions = run(go())
    assert row["disposition"] == "answered"
    assert row["hangup_cause"] == "rtp timeout" and row["hangup_side"] == "system"
    assert "pbx_ending" in kinds
    assert not sessions  # the worker was released


def test_max_duration_ends_the_call(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            env.cm.max_duration = 0.3
            w, s = await env.call("1001", "1002", "call-B")
            await asyncio.sleep(0.6)
            await settle()
            return await _row(env, s.rec.id), w.legs

    row, legs = run(go())
    assert row["disposition"] == "answered" and row["hangup_cause"] == "max duration"
    assert not legs


def test_legs_that_never_report_their_end_are_booked_after_the_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_mod, "END_GRACE", 0.2)

    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-C")

            async def silent_hangup(leg, code=None):  # the vanished phones never confirm
                return None

            w.hangup = silent_hangup  # type: ignore[method-assign]
            w.inject(P.MediaTimeout(leg="callee", seconds=60.0))
            await settle()
            assert not s.ended  # waiting for the legs
            await asyncio.sleep(0.4)
            await settle()
            return s.ended, await _row(env, s.rec.id)

    ended, row = run(go())
    assert ended
    assert row["disposition"] == "answered" and row["hangup_cause"] == "rtp timeout"


def test_media_timeout_of_a_dropped_leg_is_ignored(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-D")
            s.dropped.add("gone-1")
            w.inject(P.MediaTimeout(leg="gone-1", seconds=60.0))
            await settle()
            ended = s.ended
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle()
            return ended, await _row(env, s.rec.id)

    ended, row = run(go())
    assert not ended
    assert row["hangup_cause"] == "BYE"


def test_completeness_within_a_tenth_of_a_second():
    assert completeness(10.05, 10.0) == ("complete", {})
    assert completeness(10.0, 10.0 + COMPLETE_TOLERANCE) == ("complete", {})
    status, detail = completeness(8.3, 12.7, reason="disk full")
    assert status == "incomplete"
    assert detail["missing_seconds"] == 4.4 and detail["reason"] == "disk full"
    assert detail["missing"] == "4.4 s of 12.7 s talk not recorded"
    status, detail = completeness(0.0, 0.004 + 0.2, status_if_short="interrupted")
    assert status == "interrupted" and detail["recorded_seconds"] == 0.0


def _unfinished_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    """A WAV as a killed recorder leaves it: header sizes never written (0)."""
    write_atomic(path, np.ones(int(seconds * rate), dtype=np.int16), rate)
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 0)
    raw[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))


def test_party_files_tell_the_talk_time_and_only_the_calls_files_are_repaired(tmp_path):
    day = tmp_path / "2026-12-07"
    day.mkdir()
    _unfinished_wav(day / "callA-in-1.wav", 3.0)
    _unfinished_wav(day / "callA-callee.wav", 2.5)
    _unfinished_wav(day / "callB-in-1.wav", 9.0)  # another live call's file
    assert abs(recorded_seconds(day / "callA-in-1.wav") - 3.0) < 0.01
    assert abs(last_media(tmp_path, "callA") - 3.0) < 0.01
    assert last_media(tmp_path, "nosuch") is None
    before = (day / "callB-in-1.wav").read_bytes()
    done = repair_files([day / "callA-in-1.wav", day / "callA-callee.wav", day / "missing.wav"])
    assert sorted(Path(r.path).name for r in done) == ["callA-callee.wav", "callA-in-1.wav"]
    assert all(r.repaired for r in done)
    assert (day / "callB-in-1.wav").read_bytes() == before  # untouched
