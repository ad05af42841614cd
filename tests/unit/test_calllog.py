"""Call records: every call exactly one final disposition; crash recovery; accounting."""

from __future__ import annotations

import asyncio
import json

import pytest

from pypbx.calllog import CallLog, CallLogError, Direction, Disposition, disposition_for_status
from pypbx.db import open_db


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(coro):
    return asyncio.run(coro)


def test_answered_call_has_timings_and_events(tmp_path):
    async def go():
        clock = Clock()
        async with open_db(tmp_path / "db.sqlite") as db:
            log = CallLog(db, clock)
            rec = await log.offer(
                direction=Direction.INTERNAL, caller_number="1001", callee_number="1002", sip_call_id="abc@x"
            )
            clock.t += 4.5
            await log.answered(rec)
            clock.t += 60.25
            await log.end(rec, Disposition.ANSWERED, side="caller", cause="BYE")
            row = await db.get_call_row(rec.id)
            events = await db.call_event_rows(rec.id)
            acc = await log.accounting()
        return row, events, acc

    row, events, acc = run(go())
    assert row["disposition"] == "answered"
    assert row["ring_seconds"] == 4.5 and row["talk_seconds"] == 60.25
    assert row["hangup_side"] == "caller"
    assert [e["kind"] for e in events] == ["offered", "answered", "ended"]
    assert json.loads(events[-1]["detail"])["disposition"] == "answered"
    assert acc["offered"] == 1 and acc["answered"] == 1 and acc["balanced"]


def test_second_end_is_ignored_and_logged(tmp_path):
    async def go():
        async with open_db(tmp_path / "db.sqlite") as db:
            log = CallLog(db, Clock())
            rec = await log.offer(direction=Direction.INTERNAL, caller_number="1", callee_number="2")
            await log.end(rec, Disposition.BUSY, cause="486")
            await log.end(rec, Disposition.ANSWERED)
            with pytest.raises(CallLogError):
                await log.end(rec, Disposition.IN_PROGRESS)
            return await db.get_call_row(rec.id), await db.call_event_rows(rec.id)

    row, events = run(go())
    assert row["disposition"] == "busy"
    assert [e["kind"] for e in events] == ["offered", "ended", "late_end_ignored"]


def test_restart_closes_open_calls_as_interrupted(tmp_path):
    async def first():
        async with open_db(tmp_path / "db.sqlite") as db:
            log = CallLog(db, Clock())
            a = await log.offer(direction=Direction.INBOUND, caller_number="+3312345", callee_number="200")
            await log.answered(a)
            b = await log.offer(direction=Direction.INTERNAL, caller_number="1001", callee_number="1002")
            acc = await log.accounting()
            return a.id, b.id, acc

    async def second():
        async with open_db(tmp_path / "db.sqlite") as db:
            clock = Clock(1_700_000_100.0)
            log = CallLog(db, clock)
            before = await log.accounting()
            closed = await log.close_interrupted()
            after = await log.accounting()
            rows = [await db.get_call_row(i) for i in closed]
            return before, closed, after, rows

    a, b, acc1 = run(first())
    assert acc1["in_progress"] == 2 and acc1["balanced"]  # live calls are fine
    before, closed, after, rows = run(second())
    assert not before["balanced"] and set(before["unaccounted"]) == {a, b}  # nobody owns them now
    assert set(closed) == {a, b}
    assert after["balanced"] and after["dispositions"]["interrupted"] == 2 and after["offered"] == 2
    talk = {r["id"]: r["talk_seconds"] for r in rows}
    assert talk[a] == 100.0 and talk[b] is None


def test_event_log_is_append_only(tmp_path):
    async def go():
        async with open_db(tmp_path / "db.sqlite") as db:
            log = CallLog(db, Clock())
            rec = await log.offer(direction=Direction.INTERNAL, caller_number="1", callee_number="2")
            with pytest.raises(Exception, match="append-only"):
                await db.execute("DELETE FROM call_events WHERE call_id = ?", (rec.id,))
            with pytest.raises(Exception, match="append-only"):
                await db.execute("UPDATE call_events SET kind = 'x'")

    run(go())


@pytest.mark.parametrize(
    "status,disp",
    [
        (486, "busy"),
        (600, "busy"),
        (487, "abandoned_ringing"),
        (408, "no_answer"),
        (480, "unavailable"),
        (404, "not_found"),
        (403, "rejected"),
        (500, "failed"),
        (503, "failed"),
    ],
)
def test_disposition_for_status(status, disp):
    assert disposition_for_status(status).value == disp
