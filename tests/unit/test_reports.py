"""pypbx.reports (pure build) and `pypbx report ...` over a real database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from acd import erlang
from acd.model import EventKind, QueueEvent
from pypbx import reports
from pypbx.acdstore import append_queue_events
from pypbx.calllog import CallLog, Direction, Disposition
from pypbx.config import load_config
from pypbx.db import open_db

DAY = dt.datetime(2026, 11, 23, 0, 0).timestamp()


def at(h: int, m: int = 0, s: float = 0) -> float:
    return DAY + h * 3600 + m * 60 + s


def call(
    i: int,
    ts: float,
    disp: str,
    *,
    caller: str = "+33600000000",
    direction: str = "inbound",
    queue: str | None = "front",
    line: str | None = "Appointments",
    callee: str = "200",
    talk: float | None = None,
) -> dict:
    return {
        "id": f"c{i}",
        "direction": direction,
        "caller_number": caller,
        "callee_number": callee,
        "did": "+33100000000",
        "service_line": line,
        "queue": queue,
        "offered_at": ts,
        "disposition": disp,
        "talk_seconds": talk,
    }


def ev(
    ts: float, kind: str, queue: str | None = "front", call_id: str | None = None, agent: str | None = None, **data
) -> dict:
    return {"ts": ts, "kind": kind, "queue": queue, "call_id": call_id, "agent": agent, "data": data}


def sample() -> tuple[list[dict], list[dict], list[dict]]:
    calls = [
        call(1, at(9, 0), "answered", caller="+33611111111", talk=100),
        call(2, at(9, 5), "answered", caller="+33622222222", talk=200),
        call(3, at(9, 10), "abandoned_queue", caller="+33633333333"),
        call(4, at(9, 20), "abandoned_queue", caller="+33644444444"),  # a short abandon (3 s)
        call(5, at(10, 0), "voicemail", caller="+33655555555", line="Results", queue=None),
        call(6, at(10, 30), "answered", caller="+33633333333", talk=60),  # 3 called again: reached
        call(7, at(11, 0), "abandoned_ringing", caller="+33677777777", queue=None, line=None),
        call(
            8,
            at(11, 30),
            "answered",
            direction="outbound",
            caller="1001",
            callee="+33655555555",
            queue=None,
            line=None,
            talk=30,
        ),  # 5 called back
        call(9, at(12, 0), "after_hours", caller="+33699999999", queue=None, line="Results"),
        call(10, at(12, 1), "after_hours", caller="+33699999999", queue=None, line="Results"),
        call(11, at(12, 2), "in_progress", caller="+33688888888"),
    ]
    events = [
        ev(at(8, 0), "LOGIN", queue=None, agent="alice"),
        ev(at(9, 0), "ENTER", call_id="c1"),
        ev(at(9, 0, 10), "CONNECT", call_id="c1", agent="alice", wait=10),
        ev(at(9, 1, 50), "COMPLETE_AGENT", call_id="c1", agent="alice", wait=10, talk=100),
        ev(at(9, 5), "ENTER", call_id="c2"),
        ev(at(9, 5, 30), "CONNECT", call_id="c2", agent="bob", wait=30),
        ev(at(9, 8, 50), "COMPLETE_CALLER", call_id="c2", agent="bob", wait=30, talk=200),
        ev(at(9, 10), "ENTER", call_id="c3"),
        ev(at(9, 11, 30), "ABANDON", call_id="c3", wait=90),
        ev(at(9, 10, 5), "RINGNOANSWER", call_id="c3", agent="bob"),
        ev(at(9, 10, 6), "PAUSE", queue=None, agent="bob", reason="rna"),
        ev(at(9, 40, 6), "UNPAUSE", queue=None, agent="bob"),
        ev(at(9, 20), "ENTER", call_id="c4"),
        ev(at(9, 20, 3), "ABANDON", call_id="c4", wait=3),
        ev(at(10, 30), "ENTER", call_id="c6"),
        ev(at(10, 30, 25), "CONNECT", call_id="c6", agent="alice", wait=25),
        ev(at(10, 31, 25), "COMPLETE_AGENT", call_id="c6", agent="alice", wait=25, talk=60),
        ev(at(11, 45), "PAUSE", queue=None, agent="alice", reason="break"),  # still on break at the end
    ]
    surveys = [
        {"agent": "alice", "queue": "front", "score": 5},
        {"agent": "alice", "queue": "front", "score": 4},
        {"agent": "bob", "queue": "front", "score": 2},
    ]
    return calls, events, surveys


def test_summary_counts_and_why_callers_were_missed():
    calls, events, surveys = sample()
    r = reports.build(calls, events, surveys, since=DAY, until=DAY + 86400)
    s = r["summary"]
    assert (s["offered"], s["inbound"], s["answered"], s["abandoned"], s["in_progress"]) == (10, 9, 4, 3, 1)
    assert s["answer_rate"] == round(3 / 9, 3)
    assert s["missed_by_reason"] == {"abandoned_queue": 2, "after_hours": 2, "voicemail": 1, "abandoned_ringing": 1}
    assert sum(s["dispositions"].values()) == s["offered"]


def test_queue_service_level_waits_and_abandons():
    calls, events, surveys = sample()
    q = reports.build(calls, events, surveys, target=20)["queues"]["front"]
    assert (q["entered"], q["answered"], q["answered_within"]) == (5, 3, 1)
    assert (q["abandoned"], q["short_abandons"]) == (1, 1)
    # ended visits = 3 answered + 1 abandoned after 5 s; the 3 s abandon is shown apart
    assert q["service_level"] == 0.25
    assert q["asa"] == round((10 + 30 + 25) / 3, 1)
    assert q["max_wait"] == 90
    assert q["mean_abandon_wait"] == 90 and q["abandon_waits"] == {"60-180 s": 1}
    assert q["aht"] == 120.0
    # a longer target: every answered call within it
    assert reports.build(calls, events, target=30)["queues"]["front"]["service_level"] == 0.75


def test_agents_calls_talk_pauses_and_survey():
    calls, events, surveys = sample()
    a = reports.build(calls, events, surveys, since=DAY, until=at(12))["agents"]
    assert a["alice"]["answered"] == 2 and a["alice"]["talk_seconds"] == 160 and a["alice"]["mean_talk"] == 80
    assert a["alice"]["pauses"] == 1 and a["alice"]["paused_seconds"] == 15 * 60  # on break 11:45 -> 12:00
    assert a["alice"]["survey_mean"] == 4.5 and a["alice"]["surveys"] == 2
    assert a["bob"]["ring_no_answer"] == 1 and a["bob"]["paused_seconds"] == 30 * 60
    assert a["bob"]["answered"] == 1 and a["bob"]["survey_mean"] == 2.0


def test_hours_load_and_seats_needed_from_erlang_c():
    calls, events, surveys = sample()
    r = reports.build(calls, events, surveys, since=DAY, until=DAY + 2 * 86400, target=20, goal=0.8)
    hours = {h["hour"]: h for h in r["hours"]}
    assert sorted(hours) == [9, 10, 11, 12]  # outbound and in-progress calls left out
    assert (hours[9]["offered"], hours[9]["answered"], hours[9]["abandoned"]) == (4, 2, 2)
    assert hours[9]["per_day"] == 2.0  # two days in the period
    aht = r["settings"]["handle_time"]
    assert aht == 120.0 and r["settings"]["handle_time_measured"]
    assert hours[9]["seats_needed"] == erlang.agents_needed(2.0, 120.0, 0.8, 20)
    assert hours[9]["asa"] == 20.0  # waits 10 and 30 answered in the 9 o'clock hour
    # wrap-up counts in the handle time
    r2 = reports.build(calls, events, since=DAY, until=DAY + 86400, wrap_up=30)
    assert r2["settings"]["handle_time"] == 150.0
    # heavy load needs more seats than light load
    many = [call(100 + i, at(14, 0, i * 10), "answered", talk=300) for i in range(120)]
    h14 = {h["hour"]: h for h in reports.build(many, [], since=DAY, until=DAY + 86400)["hours"]}[14]
    assert h14["seats_needed"] == erlang.agents_needed(120, 300.0, 0.8, 20) and h14["seats_needed"] >= 11


def test_no_measured_call_assumes_a_handle_time():
    r = reports.build([call(1, at(9), "abandoned_ringing", queue=None)], [], since=DAY, until=DAY + 86400)
    assert r["settings"]["handle_time"] == reports.DEFAULT_AHT and not r["settings"]["handle_time_measured"]


def test_service_lines():
    calls, events, _surveys = sample()
    lines = reports.build(calls, events)["lines"]
    assert lines["Appointments"] == {
        "offered": 5,
        "answered": 3,
        "abandoned": 2,
        "voicemail": 0,
        "callback_requested": 0,
        "other": 0,
    }
    assert lines["Results"] == {
        "offered": 3,
        "answered": 0,
        "abandoned": 0,
        "voicemail": 1,
        "callback_requested": 0,
        "other": 2,
    }
    assert lines["+33100000000"]["offered"] == 1  # no service line: the DID


def test_missed_callers_to_call_back():
    calls, events, _surveys = sample()
    missed = reports.build(calls, events)["missed"]
    # 3 called again and was answered; 5 was called back (answered outbound call); 9 called twice
    assert [(m["number"], m["attempts"], m["reason"]) for m in missed] == [
        ("+33644444444", 1, "abandoned_queue"),
        ("+33677777777", 1, "abandoned_ringing"),
        ("+33699999999", 2, "after_hours"),
    ]
    assert missed[-1]["service_line"] == "Results" and missed[-1]["call_id"] == "c10"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="goal"):
        reports.build([], [], goal=80)
    with pytest.raises(ValueError, match="target"):
        reports.build([], [], target=0)


# ----------------------------------------------------------------------------- CLI


def _populate(cfg_path) -> None:
    cfg = load_config(cfg_path)

    class Clock:
        t = at(9)

        def __call__(self):
            return self.t

    clock = Clock()

    async def go():
        async with open_db(cfg.db_path) as db:
            log = CallLog(db, clock)
            a = await log.offer(
                direction=Direction.INBOUND,
                caller_number="+33611111111",
                callee_number="200",
                queue="front",
                agent="alice",
                service_line="Appointments",
            )
            await append_queue_events(db, [QueueEvent(clock.t, EventKind.ENTER, "front", a.id)])
            clock.t += 12
            await log.answered(a)
            await append_queue_events(
                db, [QueueEvent(clock.t, EventKind.CONNECT, "front", a.id, "alice", {"wait": 12.0})]
            )
            clock.t += 90
            await log.end(a, Disposition.ANSWERED, side="agent")
            await append_queue_events(
                db,
                [QueueEvent(clock.t, EventKind.COMPLETE_AGENT, "front", a.id, "alice", {"wait": 12.0, "talk": 90.0})],
            )
            b = await log.offer(
                direction=Direction.INBOUND,
                caller_number="+33622222222",
                callee_number="200",
                queue="front",
                service_line="Appointments",
            )
            await append_queue_events(db, [QueueEvent(clock.t, EventKind.ENTER, "front", b.id)])
            clock.t += 40
            await append_queue_events(db, [QueueEvent(clock.t, EventKind.ABANDON, "front", b.id, None, {"wait": 40.0})])
            await log.end(b, Disposition.ABANDONED_QUEUE, side="caller")

    asyncio.run(go())


def test_cli_report_commands(invoke_cli, tmp_config):
    _populate(tmp_config)
    c = ("--config", str(tmp_config), "--date", "2026-11-23")
    r = invoke_cli("report", "summary", *c)
    assert r.exit_code == 0, r.output
    assert "Calls offered 2 (inbound 2), answered 1, abandoned 1" in r.output
    assert "06 22 22 22 22" in r.output and "abandoned_queue" in r.output
    q = json.loads(invoke_cli("report", "queues", "--json", *c).output)["front"]
    assert (q["entered"], q["answered"], q["abandoned"], q["service_level"], q["asa"]) == (2, 1, 1, 0.5, 12.0)
    h = json.loads(invoke_cli("report", "hours", "--json", *c).output)
    assert [(x["hour"], x["offered"], x["seats_needed"]) for x in h] == [(9, 2, erlang.agents_needed(2, 90.0))]
    a = json.loads(invoke_cli("report", "agents", "--json", *c).output)
    assert a["alice"]["answered"] == 1 and a["alice"]["talk_seconds"] == 90
    lines = invoke_cli("report", "lines", *c).output
    assert "Appointments" in lines
    m = json.loads(invoke_cli("report", "missed", "--json", *c).output)
    assert [x["number"] for x in m] == ["+33622222222"]
    # another day: nothing; bad goal: one line
    assert (
        "No caller left" in invoke_cli("report", "missed", "--config", str(tmp_config), "--date", "2026-11-22").output
    )
    r = invoke_cli("report", "hours", "--goal", "0", *c)
    assert r.exit_code != 0 and "percentage" in r.output
    # issue 12: a queue that neither exists nor appears in the records is bad input, not "no calls"
    r = invoke_cli("report", "queues", "--json", "--queue", "other", *c)
    assert r.exit_code == 2 and r.stderr == "Error: unknown queue 'other' (valid: front)\n"
    assert json.loads(invoke_cli("report", "queues", "--json", "--queue", "front", *c).output)["front"]["entered"] == 2
