"""`pypbx calls list|show|report` and `pypbx recordings` over a real database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from pypbx.calllog import CallLog, Direction, Disposition
from pypbx.config import load_config
from pypbx.db import open_db


def _populate(cfg_path):
    cfg = load_config(cfg_path)
    day = dt.datetime(2026, 11, 23, 9, 0).timestamp()

    class Clock:
        t = day

        def __call__(self):
            return self.t

    clock = Clock()

    async def go():
        async with open_db(cfg.db_path) as db:
            log = CallLog(db, clock)
            a = await log.offer(
                direction=Direction.INBOUND,
                caller_number="+821012345678",
                callee_number="200",
                queue="new_patients",
                agent="1002",
            )
            clock.t += 10
            await log.answered(a)
            clock.t += 120
            await log.end(a, Disposition.ANSWERED, side="agent")
            await db.upsert_recording(
                {
                    "call_id": a.id,
                    "path": "/var/rec/2026-11-23/a.wav",
                    "status": "complete",
                    "seconds": 120.0,
                    "sample_rate": 8000,
                    "channels": 2,
                    "sha256": "ab" * 32,
                    "bytes": 3840044,
                    "created_at": clock.t,
                    "detail": "{}",
                }
            )
            b = await log.offer(
                direction=Direction.INBOUND, caller_number="+79161234567", callee_number="200", queue="new_patients"
            )
            clock.t += 45
            await log.end(b, Disposition.ABANDONED_QUEUE, side="caller")
            c = await log.offer(direction=Direction.INTERNAL, caller_number="1001", callee_number="1003")
            return a.id, b.id, c.id

    return asyncio.run(go())


def test_calls_list_filters_and_json(invoke_cli, tmp_config):
    a, b, c = _populate(tmp_config)
    r = invoke_cli("calls", "list", "--date", "2026-11-23", "--json", "--config", str(tmp_config))
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert [x["id"] for x in rows] == [c, b, a]
    r = invoke_cli("calls", "list", "--number", "+79161234567", "--json", "--config", str(tmp_config))
    assert [x["id"] for x in json.loads(r.output)] == [b]
    r = invoke_cli("calls", "list", "--agent", "1002", "--config", str(tmp_config))
    # the table shows numbers of other countries internationally (E.164 stays in --json)
    assert "answered" in r.output and "+82 10-1234-5678" in r.output and "abandoned" not in r.output
    r = invoke_cli("calls", "list", "--date", "2026-11-22", "--config", str(tmp_config))
    assert r.output.strip() == "No calls match."
    r = invoke_cli("calls", "list", "--date", "23/11/2026", "--config", str(tmp_config))
    assert r.exit_code != 0 and "YYYY-MM-DD" in r.output


def test_calls_show_and_recordings(invoke_cli, tmp_config):
    a, _b, _c = _populate(tmp_config)
    r = invoke_cli("calls", "show", a[:8], "--json", "--config", str(tmp_config))
    data = json.loads(r.output)
    assert data["call"]["talk_seconds"] == 120.0 and data["call"]["ring_seconds"] == 10.0
    assert [e["kind"] for e in data["events"]] == ["offered", "answered", "ended"]
    assert data["recording"]["path"].endswith("a.wav")
    r = invoke_cli("calls", "show", "nope", "--config", str(tmp_config))
    assert r.exit_code == 2 and "no call 'nope'" in r.output  # issue 12: no such object = bad input
    r = invoke_cli("recordings", "--queue", "new_patients", "--json", "--config", str(tmp_config))
    assert [x["id"] for x in json.loads(r.output)] == [a]


def test_calls_report_counts_and_missed_callers(invoke_cli, tmp_config):
    _populate(tmp_config)
    r = invoke_cli("calls", "report", "--date", "2026-11-23", "--json", "--config", str(tmp_config))
    acc = json.loads(r.output)
    assert acc["offered"] == 3 and acc["answered"] == 1 and acc["abandoned"] == 1 and acc["in_progress"] == 1
    # the internal call is open and no PBX is running: it is flagged, not hidden
    assert not acc["balanced"] and len(acc["unaccounted"]) == 1
    assert acc["missed_callers"] == ["+79161234567"]
    r = invoke_cli("calls", "report", "--date", "2026-11-23", "--config", str(tmp_config))
    assert "Offered 3, answered 1, abandoned 1" in r.output and "Missed callers to call back: +79161234567" in r.output
