"""The missed-caller worklist (pypbx.missed): which ended calls open a task and why, merging
across queues, the reach rule, claim/close rules, attempts, the figures (hand-computed), the
worklist's events, automatic-callback slots in the ACD, the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from acd.engine import AcdEngine
from acd.model import Agent, Caller, DialCallback, QueueConfig, RingAgents
from pypbx import acdstore as S
from pypbx import hours as H
from pypbx import missed as M
from pypbx.acdlive import MISSED_PREFIX, MISSED_PRIORITY, AcdLive
from pypbx.db import Database, open_db
from pypbx.events import (
    CallEnded,
    Disposition,
    EventBus,
    MissedTaskClaimed,
    MissedTaskClosed,
    MissedTaskMerged,
    MissedTaskOpened,
)
from pypbx.flows.callback import announcement


def with_db(tmp_path: Path, fn: Callable[[Database], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with open_db(tmp_path / "db.sqlite") as db:
            return await fn(db)

    return asyncio.run(go())


def call(
    n: int,
    disposition: str,
    *,
    number: str = "+33612345679",
    direction: str = "inbound",
    queue: str | None = "front",
    line: str | None = "Clinic",
    at: float = 1000.0,
    talk: float | None = None,
    callee: str = "+33140000000",
    agent: str | None = None,
) -> dict[str, object]:
    """A ``calls`` row as the books hold it when the call ended."""
    ended = at + 30 + (talk or 0)
    return {
        "id": f"call{n}",
        "direction": direction,
        "caller_number": number,
        "callee_number": callee,
        "queue": queue,
        "service_line": line,
        "agent": agent,
        "extension": None,
        "offered_at": at,
        "answered_at": at + 30 if talk is not None else None,
        "ended_at": ended,
        "talk_seconds": talk,
        "disposition": disposition,
    }


# --------------------------------------------------------------------------- which calls are missed callers


@pytest.mark.parametrize(
    ("disposition", "reason"),
    [
        ("abandoned_queue", M.MissedReason.ABANDONED),
        ("no_answer", M.MissedReason.NO_ANSWER),
        ("abandoned_ringing", M.MissedReason.NO_ANSWER),
        ("busy", M.MissedReason.BUSY),
        ("unavailable", M.MissedReason.UNAVAILABLE),
        ("failed", M.MissedReason.UNAVAILABLE),
        ("after_hours", M.MissedReason.AFTER_HOURS),
        ("abandoned_ivr", M.MissedReason.IVR_HANGUP),
        ("voicemail", M.MissedReason.VOICEMAIL),
        ("callback_requested", M.MissedReason.CALLBACK_REQUESTED),
        ("interrupted", M.MissedReason.INTERRUPTED),
    ],
)
def test_every_reason_opens_a_task(tmp_path: Path, disposition: str, reason: M.MissedReason) -> None:
    assert M.missed_reason(call(1, disposition)) is reason

    async def go(db: Database) -> list[tuple[M.Change, M.Task]]:
        return await M.record_call(db, call(1, disposition))

    [(change, task)] = with_db(tmp_path, go)
    assert change is M.Change.OPENED
    assert task.reasons == (reason,) and task.state is M.TaskState.OPEN and task.number == "+33612345679"
    assert (task.queue, task.service_line, task.first_missed_at, task.opened_at) == ("front", "Clinic", 1000.0, 1030.0)


@pytest.mark.parametrize(
    "row",
    [
        call(1, "answered", talk=60),  # reached a person
        call(1, "overflowed_out"),  # handed to the answering service
        call(1, "not_found"),
        call(1, "rejected"),
        call(1, "no_answer", direction="outbound"),  # the PBX called out
        call(1, "no_answer", direction="internal", queue=None),  # colleague to colleague
        call(1, "abandoned_queue", number="anonymous"),
        call(1, "abandoned_queue", number=""),
        call(1, "in_progress"),
    ],
)
def test_calls_that_open_no_task(row: dict[str, object]) -> None:
    assert M.missed_reason(row) is None


def test_internal_caller_of_a_queue_is_a_missed_caller() -> None:
    assert M.missed_reason(call(1, "abandoned_queue", direction="internal", number="1009")) is M.MissedReason.ABANDONED


# --------------------------------------------------------------------------- merge and reach


def test_repeats_merge_across_queues_and_the_reach_closes(tmp_path: Path) -> None:
    async def go(db: Database) -> tuple[Any, ...]:
        a = await M.record_call(db, call(1, "abandoned_queue", queue="front", at=1000))
        b = await M.record_call(db, call(2, "callback_requested", queue="results", line="Lab", at=1100))
        again = await M.record_call(db, call(2, "callback_requested", queue="results", at=1100))  # same call twice
        c = await M.record_call(db, call(3, "abandoned_queue", queue="front", at=1200))
        other = await M.record_call(db, call(4, "voicemail", number="+33699999999", at=1300))
        short = await M.record_call(
            db, call(5, "answered", direction="outbound", number="1001", callee="+33612345679", talk=4.9)
        )
        reached = await M.record_call(
            db,
            call(
                6,
                "answered",
                direction="outbound",
                number="1001",
                callee="+33612345679",
                talk=5.0,
                at=2000,
                agent="alice",
            ),
        )
        after = await M.record_call(db, call(7, "busy", at=3000))
        calls = await db.missed_call_rows(a[0][1].id)
        return a, b, again, c, other, short, reached, after, calls, await M.list_tasks(db, include_closed=True)

    a, b, again, c, other, short, reached, after, calls, all_tasks = with_db(tmp_path, go)
    first = a[0][1]
    [(kind_b, tb)] = b
    assert kind_b is M.Change.MERGED and tb.id == first.id
    assert tb.reasons == (M.MissedReason.ABANDONED, M.MissedReason.CALLBACK_REQUESTED)
    assert (tb.queue, tb.service_line, tb.missed_count) == ("results", "Lab", 2)  # the latest queue and line
    assert again == []  # the same call recorded twice: nothing new
    [(kind_c, tc)] = c
    assert kind_c is M.Change.MERGED and tc.missed_count == 3 and len(tc.reasons) == 2
    assert (tc.first_missed_at, tc.last_missed_at) == (1000.0, 1200.0)
    assert [r["call_id"] for r in calls] == ["call1", "call2", "call3"]
    assert [r["queue"] for r in calls] == ["front", "results", "front"]
    assert other[0][1].id != first.id
    assert short == []  # talk below [missed] reached_after: not reached
    [(kind_r, tr)] = reached
    assert kind_r is M.Change.CLOSED and tr.id == first.id and tr.outcome is M.Outcome.REACHED
    assert (tr.closed_by, tr.closing_call_id, tr.closed_at) == ("alice", "call6", 2035.0)
    assert tr.waiting(99999) == 1035.0  # first missed call to the reach
    [(kind_a, ta)] = after
    assert kind_a is M.Change.OPENED and ta.id not in (first.id, other[0][1].id)  # a new task once closed
    assert [t.id for t in all_tasks] == [first.id, other[0][1].id, ta.id]


def test_the_patient_calling_again_and_reaching_someone_closes_it(tmp_path: Path) -> None:
    async def go(db: Database) -> Any:
        await M.record_call(db, call(1, "after_hours", queue=None))
        return await M.record_call(db, call(2, "answered", talk=120, at=5000))

    [(kind, t)] = with_db(tmp_path, go)
    assert kind is M.Change.CLOSED and t.outcome is M.Outcome.REACHED and t.queue is None


# --------------------------------------------------------------------------- claim, close, attempts


def test_claim_close_and_attempts(tmp_path: Path) -> None:
    async def go(db: Database) -> Any:
        [(_, t)] = await M.record_call(db, call(1, "abandoned_queue"))
        claimed = await M.claim_task(db, f"#{t.id}", "1001", now=1100)
        again = await M.claim_task(db, t.id, "1001", now=1101)  # the same person: fine
        errors = []
        for fn in (
            lambda: M.claim_task(db, t.id, "1002"),
            lambda: M.claim_task(db, t.id, " "),
            lambda: M.close_task(db, t.id, "maybe"),
            lambda: M.get_task(db, "x"),
            lambda: M.get_task(db, 999),
        ):
            with pytest.raises(M.MissedError) as e:
                await fn()
            errors.append(str(e.value))
        a1 = await M.start_attempt(db, t, "1001", now=1200)
        await M.end_attempt(db, a1, M.AttemptOutcome.AGENT_NO_ANSWER, dialled=False, now=1230)
        a2 = await M.start_attempt(db, t, "1001", now=1300)
        await M.end_attempt(db, a2, M.AttemptOutcome.NO_ANSWER, dialled=True, now=1345)
        twice = await M.end_attempt(db, a2, M.AttemptOutcome.NO_ANSWER, dialled=True, now=1346)
        mid = await M.get_task(db, t.id)
        closed = await M.close_task(db, t.id, "message_left", now=1400)
        with pytest.raises(M.MissedError) as e:
            await M.close_task(db, t.id, "reached")
        with pytest.raises(M.MissedError) as e2:
            await M.claim_task(db, t.id, "1001")
        detail = await M.task_detail(db, t.id)
        return claimed, again, errors, mid, twice, closed, str(e.value), str(e2.value), detail

    claimed, again, errors, mid, twice, closed, close_again, claim_closed, detail = with_db(tmp_path, go)
    assert (claimed.claimed_by, claimed.claimed_at, again.claimed_at) == ("1001", 1100.0, 1101.0)
    assert errors == [
        f"task {claimed.id} is already claimed by 1001",
        "claim needs --by EXT or agent",
        "unknown outcome 'maybe' (choose from reached, no-answer, wrong-number, message-left, not-needed)",
        "bad task id 'x': expected a number, e.g. 12",
        "task 999 not found",
    ]
    assert (mid.attempts, mid.last_attempt_at) == (1, 1300.0)  # the agent's no-answer is no attempt
    assert twice is False
    assert (
        closed.outcome is M.Outcome.MESSAGE_LEFT and closed.closed_by == "1001" and closed.state is M.TaskState.CLOSED
    )
    assert close_again == f"task {claimed.id} is already closed (message-left)"
    assert claim_closed == f"task {claimed.id} is closed (message-left)"
    assert [(a["by"], a["outcome"], a["ended_at"]) for a in detail["attempts"]] == [
        ("1001", "agent-no-answer", 1230.0),
        ("1001", "no-answer", 1345.0),
    ]
    assert detail["task"]["waiting"] == 400.0 and detail["task"]["reasons"] == ["abandoned"]


# --------------------------------------------------------------------------- figures


def _task(i: int, first: float, closed: float | None, outcome: M.Outcome | None, queue: str, line: str) -> M.Task:
    return M.Task(
        id=i,
        number=f"+3361234567{i}",
        state=M.TaskState.CLOSED if closed is not None else M.TaskState.OPEN,
        reasons=(M.MissedReason.ABANDONED,),
        queue=queue,
        service_line=line,
        opened_at=first,
        first_missed_at=first,
        last_missed_at=first,
        missed_count=1,
        attempts=0,
        last_attempt_at=None,
        claimed_by=None,
        claimed_at=None,
        closed_at=closed,
        outcome=outcome,
        closed_by=None,
        closing_call_id=None,
    )


def test_figures_hand_computed() -> None:
    r = M.Outcome.REACHED
    tasks = [
        _task(1, 0, 60, r, "front", "A"),  # 60 s to callback
        _task(2, 0, 120, r, "front", "A"),  # 120
        _task(3, 0, 600, r, "lab", "B"),  # 600
        _task(4, 0, 1800, r, "lab", "B"),  # 1800
        _task(5, 0, 30, M.Outcome.WRONG_NUMBER, "front", "A"),  # closed, not reached
        _task(6, 0, None, None, "lab", "B"),  # still open
    ]
    f = M.figures(tasks)
    # rate 4/6; waits 60,120,600,1800: median (120+600)/2 = 360; p90 nearest rank ceil(0.9*4)=4th = 1800
    assert f == {
        "opened": 6,
        "reached": 4,
        "closed": 5,
        "still_open": 1,
        "callback_rate": 0.6667,
        "median_to_callback": 360.0,
        "p90_to_callback": 1800.0,
    }
    by_queue = M.grouped(tasks, lambda t: t.queue or "-")
    assert [(g["key"], g["opened"], g["reached"], g["still_open"], g["median_to_callback"]) for g in by_queue] == [
        ("front", 3, 2, 0, 90.0),
        ("lab", 3, 2, 1, 1200.0),
    ]
    assert M.percentile([5, 1, 3, 2, 4], 90) == 5 and M.percentile([5, 1, 3, 2, 4], 50) == 3
    assert M.percentile([], 90) is None
    assert M.figures([])["callback_rate"] is None


def test_missed_report_per_day_queue_and_line(tmp_path: Path) -> None:
    async def go(db: Database) -> Any:
        await M.record_call(db, call(1, "abandoned_queue", number="+331", queue="front", line="A", at=86400 * 2 + 10))
        await M.record_call(db, call(2, "voicemail", number="+332", queue="lab", line="B", at=86400 * 3 + 10))
        await M.record_call(db, call(3, "answered", number="+331", talk=10, at=86400 * 2 + 100))  # ends at +140: 130 s
        return (
            await M.missed_report(db, None, None, lambda ts: f"day{int(ts // 86400)}"),
            await M.missed_report(db, None, None, lambda ts: "d", queue="lab"),
        )

    rep, lab = with_db(tmp_path, go)
    assert rep["total"]["opened"] == 2 and rep["total"]["reached"] == 1 and rep["total"]["callback_rate"] == 0.5
    assert rep["total"]["median_to_callback"] == 130.0 and rep["total"]["p90_to_callback"] == 130.0
    assert [(g["key"], g["opened"], g["reached"]) for g in rep["by_day"]] == [("day2", 1, 1), ("day3", 1, 0)]
    assert [g["key"] for g in rep["by_queue"]] == ["front", "lab"]
    assert [(g["key"], g["still_open"]) for g in rep["by_service_line"]] == [("A", 0), ("B", 1)]
    assert lab["total"]["opened"] == 1 and lab["total"]["still_open"] == 1


# --------------------------------------------------------------------------- the live worklist


def test_worklist_records_ended_calls_from_the_stream_and_publishes(tmp_path: Path) -> None:
    async def go(db: Database) -> Any:
        bus = EventBus()
        wl = M.Worklist(db, bus, reached_after=5.0)
        seen: list[list[tuple[M.Change, M.Task]]] = []
        wl.listeners.append(seen.append)
        sub = bus.subscribe()
        runner = asyncio.create_task(wl.run())
        for row in (
            call(1, "abandoned_queue", queue="front"),
            call(2, "abandoned_queue", queue="lab"),
        ):
            bus.publish(CallEnded(call_id=str(row["id"]), disposition=Disposition(row["disposition"]), record=row))
        await asyncio.sleep(0)
        await wl.drained()
        tasks = await wl.tasks()
        claimed = await wl.claim(tasks[0]["id"], "1002")
        closed = await wl.close(tasks[0]["id"], "not-needed")
        runner.cancel()
        events = []
        while (item := sub.get_nowait()) is not None:
            events.append(item)
        return tasks, claimed, closed, events, seen

    tasks, claimed, closed, events, seen = with_db(tmp_path, go)
    assert len(tasks) == 1 and tasks[0]["missed_count"] == 2 and tasks[0]["queue"] == "lab"
    assert claimed["claimed_by"] == "1002" and closed["outcome"] == "not-needed" and closed["closed_by"] == "1002"
    missed = [e for e in events if e.name.startswith("missed.")]
    assert [type(e) for e in missed] == [MissedTaskOpened, MissedTaskMerged, MissedTaskClaimed, MissedTaskClosed]
    assert missed[0].call_id == "call1" and missed[1].call_id == "call2" and missed[1].reasons == ("abandoned",)
    assert missed[3].outcome == "not-needed" and missed[3].by == "1002"
    assert [c for batch in seen for c, _ in batch] == [M.Change.OPENED, M.Change.MERGED, M.Change.CLOSED]


# --------------------------------------------------------------------------- automatic callback in the ACD


def test_engine_auto_callback_slot_waits_behind_live_callers() -> None:
    eng = AcdEngine([QueueConfig("front", ring_timeout=10)], [Agent("alice")])
    eng.agent_login("alice", 0.0)
    eng.agent_busy("alice", 0.0)
    eng.call_arrived(Caller("live1", "+331"), "front", 5.0)
    assert eng.add_callback("missed-1-x", "+339", "front", 1.0, priority=MISSED_PRIORITY) == []
    eng.call_arrived(Caller("live2", "+332"), "front", 10.0)
    order = [(w.call_id, w.is_callback) for w in eng.waiting("front", 10.0)]
    assert order == [("live1", False), ("live2", False), ("missed-1-x", True)]  # older, yet behind both
    acts = eng.agent_free("alice", 11.0)
    assert [type(a) for a in acts] == [RingAgents] and acts[0].call_id == "live1"
    assert eng.drop_callback("missed-1-x", 12.0, "task closed") == []
    assert [w.call_id for w in eng.waiting("front", 12.0)] == ["live1", "live2"]
    kinds = [(e.kind.value, e.data.get("final")) for e in eng.drain_events() if e.call_id == "missed-1-x"]
    assert kinds == [("CALLBACK_REQUESTED", None), ("CALLBACK_FAILED", True)]


def test_engine_auto_callback_dialled_when_an_agent_is_idle() -> None:
    eng = AcdEngine([QueueConfig("front")], [Agent("alice")])
    eng.agent_login("alice", 0.0)
    acts = eng.add_callback("missed-7-a", "+339", "front", 1.0, priority=MISSED_PRIORITY, attempts=1)
    assert acts == [DialCallback("missed-7-a", "alice", "+339", 2, "front")]
    with pytest.raises(ValueError):
        eng.add_callback("missed-7-a", "+339", "front", 1.0)


def test_acdlive_keeps_one_slot_per_open_task_of_auto_callback_queues(tmp_path: Path) -> None:
    async def go(db: Database) -> Any:
        await S.add_queue(db, "front", callback_max_attempts=2, callback_retry_delay=300)
        await S.add_queue(db, "lab")
        await M.set_queue_callback(db, "front", auto_callback=True)
        live = AcdLive(db)
        await live.start(background=False)
        live.worklist = M.Worklist(db, EventBus())
        await M.record_call(db, call(1, "abandoned_queue", number="+331", queue="front"))
        await M.record_call(db, call(2, "abandoned_queue", number="+332", queue="lab"))  # auto off
        [(_, claimed)] = await M.record_call(db, call(3, "abandoned_queue", number="+333", queue="front"))
        await M.claim_task(db, claimed.id, "1001")  # staff handle it: not dialled automatically
        [(_, spent)] = await M.record_call(db, call(4, "abandoned_queue", number="+334", queue="front"))
        for _ in range(2):
            a = await M.start_attempt(db, spent, "acd", now=900)
            await M.end_attempt(db, a, M.AttemptOutcome.NO_ANSWER, dialled=True)
        [(_, once)] = await M.record_call(db, call(5, "abandoned_queue", number="+335", queue="front"))
        a = await M.start_attempt(db, once, "acd", now=1000)
        await M.end_attempt(db, a, M.AttemptOutcome.NO_ANSWER, dialled=True)
        await live.sync_missed()
        await live.sync_missed()  # idempotent
        first = [(w.number, w.priority, w.call_id.startswith(MISSED_PREFIX)) for w in live.engine.waiting()]
        snap = {c["number"]: c for c in live.engine.snapshot()["callbacks"]}
        # a task closed behind the running ACD's back (the CLI with the PBX stopped): withdrawn
        [t1] = [t for t in await M.list_tasks(db) if t.number == "+331"]
        await M.close_task(db, t1.id, "not-needed")
        await live.sync_missed()
        after_close = sorted(w.number for w in live.engine.waiting())
        # closed hours: the waiting slots are withdrawn
        await H.set_schedule(db, "never", "mon 00:00-00:01", "UTC")
        await M.set_queue_callback(db, "front", callback_hours="never")
        await live.sync_missed()
        closed_hours = [w.number for w in live.engine.waiting()]
        with pytest.raises(H.HoursError):
            await M.set_queue_callback(db, "front", callback_hours="nope")
        with pytest.raises(M.MissedError):
            await M.set_queue_callback(db, "nope", auto_callback=True)
        return first, snap, after_close, closed_hours

    first, snap, after_close, closed_hours = with_db(tmp_path, go)
    assert sorted(first) == [("+331", MISSED_PRIORITY, True), ("+335", MISSED_PRIORITY, True)]
    assert snap["+335"]["attempts"] == 1 and snap["+335"]["not_before"] == 1300.0  # spacing after the last attempt
    assert after_close == ["+335"]
    assert closed_hours == []


# --------------------------------------------------------------------------- the CLI (PBX not running)


def test_cli_missed_list_show_claim_close(tmp_config: Path, invoke_cli: Callable[..., Any]) -> None:
    from pypbx.config import load_config

    cfg = load_config(tmp_config)

    async def seed() -> None:
        async with open_db(cfg.db_path) as db:
            await S.add_queue(db, "front")
            await M.record_call(db, call(1, "abandoned_queue", number="+33612345679", at=1000))
            await M.record_call(db, call(2, "voicemail", number="+33612345679", queue="lab", at=1100))
            await M.record_call(db, call(3, "after_hours", number="+33198765432", queue=None, at=500))

    asyncio.run(seed())
    c = ("--config", str(tmp_config))
    out = invoke_cli("missed", "list", *c).output
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["TASK", "NUMBER", "MISSED"]
    assert "01 98 76 54 32" in lines[1] and "after-hours" in lines[1]  # the longest waiting first
    assert "06 12 34 56 79" in lines[2] and "abandoned,voicemail" in lines[2] and "lab" in lines[2]
    tasks = json.loads(invoke_cli("missed", "list", "--json", *c).output)
    assert [(t["number"], t["missed_count"]) for t in tasks] == [("+33198765432", 1), ("+33612345679", 2)]
    assert json.loads(invoke_cli("missed", "list", "--queue", "front", "--json", *c).output)[0]["id"] == tasks[1]["id"]
    tid = str(tasks[1]["id"])
    show = invoke_cli("missed", "show", tid, *c).output
    assert "Reasons:" in show and "abandoned, voicemail" in show and "Missed calls:" in show
    assert json.loads(invoke_cli("missed", "show", tid, "--json", *c).output)["calls"][1]["reason"] == "voicemail"
    assert invoke_cli("missed", "claim", tid, "--by", "alice", *c).output.strip() == (
        f"Task {tid} (+33612345679) claimed by alice."
    )
    r = invoke_cli("missed", "close", tid, "--outcome", "wrong-number", *c)
    assert r.exit_code == 0 and r.output.startswith(f"Task {tid} (+33612345679) closed: wrong-number after ")
    assert [t["number"] for t in json.loads(invoke_cli("missed", "list", "--json", *c).output)] == ["+33198765432"]
    everything = invoke_cli("missed", "list", "--all", *c).output
    assert "Closed:" in everything and "wrong-number" in everything
    bad = invoke_cli("missed", "close", tid, "--outcome", "reached", *c)
    assert bad.exit_code == 1 and bad.output.strip() == f"Error: task {tid} is already closed (wrong-number)"
    bad = invoke_cli("missed", "close", "abc", "--outcome", "reached", *c)
    assert bad.exit_code == 2 and bad.output.strip() == "Error: bad task id 'abc': expected a number, e.g. 12"
    bad = invoke_cli("missed", "close", tid, "--outcome", "gone", *c)
    assert bad.exit_code == 2 and "unknown outcome 'gone'" in bad.output
    bad = invoke_cli("missed", "call", tid, "--from", "1001", *c)
    assert bad.exit_code == 1 and bad.output.strip() == "Error: pypbx is not running: start it (pypbx run) to call back"


def test_cli_queue_callback_settings(tmp_config: Path, invoke_cli: Callable[..., Any]) -> None:
    c = ("--config", str(tmp_config))
    r = invoke_cli(
        "queue", "add", "front", "--auto-callback", "--callback-attempts", "4", "--callback-spacing", "600", *c
    )
    assert r.exit_code == 0, r.output
    q = json.loads(invoke_cli("queue", "show", "front", "--json", *c).output)
    cfg = q.get("config", q)
    assert (cfg["callback_max_attempts"], cfg["callback_retry_delay"]) == (4, 600.0)
    assert (q["auto_callback"], q["callback_hours"]) == (True, None)
    assert "Auto callback:  on, 4 attempts 600s apart, any time" in invoke_cli("queue", "show", "front", *c).output
    from pypbx.config import load_config

    async def settings() -> Any:
        async with open_db(load_config(tmp_config).db_path) as db:
            return await M.queue_callback_settings(db)

    assert asyncio.run(settings())["front"] == {"queue": "front", "auto_callback": True, "callback_hours": None}
    assert invoke_cli("queue", "edit", "front", "--no-auto-callback", *c).exit_code == 0
    assert asyncio.run(settings())["front"]["auto_callback"] is False
    assert "Auto callback" not in invoke_cli("queue", "show", "front", *c).output
    bad = invoke_cli("queue", "edit", "front", "--callback-hours", "nope", *c)
    assert bad.exit_code == 1 and bad.output.startswith("Error: ") and "nope" in bad.output
    bad = invoke_cli("queue", "add", "lab", "--callback-attempts", "99", *c)
    assert bad.exit_code == 2 and bad.output.strip() == "Error: bad callback attempts 99: expected 1-20"
    bad = invoke_cli("queue", "add", "lab2", "--callback-hours", "nope", *c)
    assert bad.exit_code == 1
    assert "lab2" not in invoke_cli("queue", "list", *c).output  # nothing half-created


def test_cli_report_missed_shows_the_figures(tmp_config: Path, invoke_cli: Callable[..., Any]) -> None:
    from pypbx.config import load_config

    async def seed() -> None:
        async with open_db(load_config(tmp_config).db_path) as db:
            await M.record_call(db, call(1, "abandoned_queue", number="+331", at=1_700_000_000))
            await M.record_call(db, call(2, "abandoned_queue", number="+332", at=1_700_000_100))
            await M.record_call(db, call(3, "answered", number="+331", talk=60, at=1_700_000_500))

    asyncio.run(seed())
    c = ("--config", str(tmp_config), "--since", "2000-01-01")
    out = invoke_cli("report", "missed", *c).output
    assert "Callback tasks (pypbx missed): 2 opened, 1 reached (50 %), 1 still open" in out
    # first missed at 1_700_000_000; the answered call: offered +500, answered +530, 60 s talk: ends +590
    assert "median 590 s, 90th percentile 590 s" in out
    fig = json.loads(invoke_cli("report", "callbacks", "--json", *c).output)
    assert fig["total"]["callback_rate"] == 0.5 and [g["key"] for g in fig["by_queue"]] == ["front"]
    assert isinstance(json.loads(invoke_cli("report", "missed", "--json", *c).output), list)  # unchanged


# --------------------------------------------------------------------------- the callback flow (media.fake)


def test_missed_call_rings_agent_announces_then_dials_and_books_attempts(tmp_path: Path) -> None:
    from media import protocol as P
    from pypbx.flows.callback import missed_call
    from tests.unit.test_acdlive import Env, originates, plays, settle

    async def go() -> None:
        async with Env(tmp_path, record=False) as env:
            wl = M.Worklist(env.db, env.cm.calllog.bus, reached_after=2.0, clock=env.clock)
            runner = asyncio.create_task(wl.run())
            [(_, t)] = await M.record_call(env.db, call(1, "abandoned_queue", number="1009", at=env.clock() - 600))
            with pytest.raises(M.MissedError, match="no extension 5555"):
                await missed_call(wl, env.cm, t.id, "5555")
            when = dt.datetime(2026, 12, 7, 10, 42)
            # 1. the patient is busy: an attempt
            res = await missed_call(wl, env.cm, t.id, "1001", when=when)
            await settle()
            cw = env.pool.busy[-1]
            assert [o.uri for o in originates(cw)] == ["sip:1001@127.0.0.1:5060"]
            cw.inject(P.Answered(leg="agent", call_id="a1"))
            await settle()
            files = announcement("en", "1009", when)
            assert [Path(f).stem for f in files] == [
                "calling_back",
                "num_1",
                "num_0",
                "num_0",
                "num_9",
                "missed_at",
                "num_10",
                "num_42",
            ]
            for _ in files:
                assert len(originates(cw)) == 1  # the patient only once the announcement is over
                cw.finish_playback("agent")
                await settle()
            assert plays(cw)[: len(files)] == files
            assert [o.uri for o in originates(cw)][1] == "sip:1009@127.0.0.1:5060"
            cw.inject(P.Ended(leg="patient", cause_code=486, reason="Busy Here"))
            await settle(20)
            rec = await env.cdr(str(res["call_id"]))
            assert (rec["disposition"], rec["direction"], rec["callee_number"]) == ("busy", "outbound", "1009")
            # 2. the agent does not answer: booked, no attempt counted
            await missed_call(wl, env.cm, t.id, "1001", when=when)
            await settle()
            cw2 = env.pool.busy[-1]
            cw2.inject(P.Ended(leg="agent", cause_code=480, reason="Unavailable"))
            await settle(20)
            await wl.drained()
            detail = await M.task_detail(env.db, t.id)
            assert [(a["by"], a["outcome"]) for a in detail["attempts"]] == [
                ("1001", "busy"),
                ("1001", "agent-no-answer"),
            ]
            assert detail["task"]["attempts"] == 1 and detail["task"]["state"] == "open"
            # 3. reached: the patient answers and talks
            await M.claim_task(env.db, t.id, "alice")
            await missed_call(wl, env.cm, t.id, "1001", when=when)
            await settle()
            cw3 = env.pool.busy[-1]
            cw3.inject(P.Answered(leg="agent", call_id="a3"))
            await settle()
            for _ in files:
                cw3.finish_playback("agent")
                await settle()
            cw3.inject(P.Answered(leg="patient", call_id="p3"))
            await settle()
            assert frozenset(("agent", "patient")) in cw3.bridges
            env.clock.t += 30
            cw3.inject(P.Ended(leg="patient", cause_code=200, reason="BYE"))
            await settle(20)
            await wl.drained()
            done = await M.get_task(env.db, t.id)
            assert done.outcome is M.Outcome.REACHED and done.attempts == 2
            last = (await M.task_detail(env.db, t.id))["attempts"][-1]
            assert (last["by"], last["outcome"]) == ("alice", "answered")
            with pytest.raises(M.MissedError, match="is closed"):
                await missed_call(wl, env.cm, t.id, "1001")
            runner.cancel()

    asyncio.run(go())


def test_announcement_reads_the_number_as_staff_dial_it() -> None:
    """An E.164 number of the site's region is read in its national form (0 6 1 2 ...), a
    foreign one with its country code, digit by digit."""
    when = dt.datetime(2026, 12, 7, 10, 42)
    fr = [Path(f).stem for f in announcement("en", "+33612345679", when, region="FR")]
    assert fr == ["calling_back", *[f"num_{d}" for d in "0612345679"], "missed_at", "num_10", "num_42"]
    ru = [Path(f).stem for f in announcement("en", "+79123456789", when, region="RU")]
    assert ru[1:12] == [f"num_{d}" for d in "89123456789"]
    uk = [Path(f).stem for f in announcement("en", "+442071234567", when, region="FR")]
    assert uk[1:13] == [f"num_{d}" for d in "442071234567"]
