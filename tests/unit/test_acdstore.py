"""pypbx.acdstore: queues, agents, agent states, callbacks, queue events, engine state."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from acd.engine import AcdEngine
from acd.model import (
    AgentState,
    Caller,
    EventKind,
    JoinEmpty,
    OverflowRule,
    PauseReason,
    QueueConfig,
    QueueEvent,
    Relaxation,
    Strategy,
    Target,
    TargetKind,
)
from pypbx import acdstore as S
from pypbx import extensions as E
from pypbx.db import SCHEMA_VERSION, DBError, open_db


def with_db(tmp_path: Path, fn: Callable[[Any], Awaitable[Any]], exts: tuple[str, ...] = ("1001", "1002")) -> Any:
    async def go() -> Any:
        async with open_db(tmp_path / "db.sqlite") as db:
            for n in exts:
                if await db.get_extension_row(n) is None:
                    await E.add_extension(db, n)
            return await fn(db)

    return asyncio.run(go())


def err(tmp_path: Path, fn: Callable[[Any], Awaitable[Any]]) -> str:
    with pytest.raises(S.AcdError) as e:
        with_db(tmp_path, fn)
    return str(e.value)


# --------------------------------------------------------------------------- schema


def test_migration_creates_acd_tables(tmp_path: Path) -> None:
    with_db(tmp_path, lambda db: asyncio.sleep(0), exts=())
    con = sqlite3.connect(tmp_path / "db.sqlite")
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"queues", "agents", "agent_events", "queue_events", "callbacks", "acd_state"} <= tables
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
        cols = {r[1] for r in con.execute("PRAGMA table_info(callbacks)")}
        assert cols == {
            "id",
            "number",
            "queue",
            "requested_at",
            "status",
            "attempts",
            "last_attempt_at",
            "call_id",
            "agent",
            "result",
            "merged_count",
        }
    finally:
        con.close()


# --------------------------------------------------------------------------- text forms


def test_parse_skills() -> None:
    assert S.parse_skills("new_patients:8, korean:5") == {"new_patients": 8, "korean": 5}
    assert S.parse_skills("") == {} and S.parse_skills(None) == {}
    assert S.parse_skills("Korean:3") == {"korean": 3}
    assert S.format_skills({"b": 2, "a": 1}) == "a:1,b:2" and S.format_skills({}) == "-"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("korean", "bad skill 'korean': expected NAME:LEVEL, e.g. new_patients:8"),
        ("korean:11", "bad level 11 for skill korean: expected 1-10"),
        ("korean:0", "bad level 0 for skill korean: expected 1-10"),
        ("korean:x", "bad level 'x' for skill korean: expected a whole number 1-10"),
        ("1st:3", "bad skill name '1st': lower-case letters, digits and _ (starting with a letter)"),
        ("a:1,a:2", "skill a given twice"),
    ],
)
def test_parse_skills_errors(spec: str, message: str) -> None:
    with pytest.raises(S.AcdError) as e:
        S.parse_skills(spec)
    assert str(e.value) == message


def test_parse_targets_overflow_relaxation() -> None:
    assert S.parse_target("queue:front_desk") == Target(TargetKind.QUEUE, "front_desk")
    assert S.parse_target("ext:1001") == Target(TargetKind.EXTENSION, "1001")
    assert S.parse_target("external:+3312345") == Target(TargetKind.EXTERNAL, "+3312345")
    assert S.parse_target("group:nurses") == Target(TargetKind.RING_GROUP, "nurses")
    assert S.parse_target("voicemail:front") == S.parse_target("vm:front") == Target(TargetKind.VOICEMAIL, "front")
    assert S.parse_overflow("after=20,queue:front_desk") == OverflowRule(20.0, Target(TargetKind.QUEUE, "front_desk"))
    assert S.parse_overflow("none") is None
    assert S.format_overflow(S.parse_overflow("after=20,extension:1001")) == "after=20,extension:1001"
    assert S.parse_relaxation("60:1,30:5") == (Relaxation(30.0, 5), Relaxation(60.0, 1))
    assert S.format_relaxation(S.parse_relaxation("30:5,60:1")) == "30:5,60:1"
    assert S.parse_strategy("ring-all") is Strategy.RING_ALL


@pytest.mark.parametrize(
    "fn, spec, message",
    [
        (
            S.parse_target,
            "1001",
            "bad destination '1001': expected KIND:TARGET with KIND one of queue, extension, "
            "ring_group, external, voicemail (e.g. extension:1001)",
        ),
        (
            S.parse_target,
            "phone:1001",
            "bad destination 'phone:1001': unknown kind 'phone' "
            "(choose from queue, extension, ring_group, external, voicemail)",
        ),
        (S.parse_target, "extension:1", "bad destination extension:1: expected 2-8 digits"),
        (
            S.parse_target,
            "external:call-me",
            "bad destination external:call-me: expected a phone number (digits, optional +)",
        ),
        (
            S.parse_overflow,
            "20,queue:x",
            "bad overflow '20,queue:x': expected after=SECONDS,KIND:TARGET (e.g. after=20,queue:front_desk)",
        ),
        (S.parse_overflow, "after=0,queue:x", "bad overflow after 0: expected 1-86400 seconds"),
        (S.parse_relaxation, "30", "bad relaxation step '30': expected SECONDS:LEVEL, e.g. 30:5"),
        (S.parse_relaxation, "30:5,60:7", "relaxation: the level must go down as the wait grows (30:5 then 60:7)"),
        (S.parse_relaxation, "30:11", "bad relaxation step 30:11: level must be 1-10"),
        (
            S.parse_strategy,
            "fastest",
            "unknown strategy 'fastest' (choose from ring_all, longest_idle, round_robin, "
            "fewest_calls, least_talk_time, best_skill_then_longest_idle, random)",
        ),
    ],
)
def test_parse_errors(fn: Callable, spec: str, message: str) -> None:
    with pytest.raises(S.AcdError) as e:
        fn(spec)
    assert str(e.value) == message


# --------------------------------------------------------------------------- queues


def test_queue_round_trip_through_db(tmp_path: Path) -> None:
    async def go(db):
        await S.add_queue(db, "front_desk", when_empty="refuse", fallback="extension:1001")
        added = await S.add_queue(
            db,
            "new_patients",
            strategy="best_skill_then_longest_idle",
            skills="new_patients:8,korean:5",
            ring_timeout="12",
            wrap_up=30,
            max_wait=600,
            max_length=20,
            overflow_after=20,
            overflow_to="queue:front_desk",
            relaxation="30:5,60:1",
            announce_interval=45,
            callback_allowed=False,
            language="ko",
        )
        got = await S.get_queue(db, "new_patients")
        raw = await db.get_queue_row("new_patients")
        return added, got, raw, await S.list_queues(db)

    added, got, raw, all_ = with_db(tmp_path, go)
    want = QueueConfig(
        "new_patients",
        {"new_patients": 8, "korean": 5},
        Strategy.BEST_SKILL_THEN_LONGEST_IDLE,
        ring_timeout=12.0,
        wrap_up=30.0,
        max_wait=600.0,
        max_length=20,
        overflow=OverflowRule(20.0, Target(TargetKind.QUEUE, "front_desk")),
        relaxation=(Relaxation(30, 5), Relaxation(60, 1)),
        announce_interval=45.0,
        callback_allowed=False,
        language="ko",
    )
    assert added.config == got.config == want
    assert json.loads(raw["config"]) == want.to_dict()
    assert QueueConfig.from_dict(json.loads(raw["config"])) == want
    assert [q.name for q in all_] == ["front_desk", "new_patients"]
    assert all_[0].config.join_empty is JoinEmpty.REFUSE
    assert all_[0].config.fallback == Target(TargetKind.EXTENSION, "1001")
    assert got.created_at and got.updated_at


def test_queue_edit_keeps_what_is_not_given(tmp_path: Path) -> None:
    async def go(db):
        await S.add_queue(db, "front_desk")
        await S.add_queue(db, "np", skills="new_patients:8", overflow_after=20, overflow_to="queue:front_desk")
        a = await S.edit_queue(db, "np", ring_timeout=25, overflow_after=40)
        b = await S.edit_queue(db, "np", overflow_to="extension:1002", max_wait=0, skills="")
        c = await S.edit_queue(db, "np", overflow_to="none", relaxation="none")
        return a.config, b.config, c.config, (await S.get_queue(db, "np")).config

    a, b, c, stored = with_db(tmp_path, go)
    assert a.ring_timeout == 25 and a.required_skills == {"new_patients": 8}
    assert a.overflow == OverflowRule(40.0, Target(TargetKind.QUEUE, "front_desk"))
    assert b.overflow == OverflowRule(40.0, Target(TargetKind.EXTENSION, "1002"))
    assert b.max_wait is None and b.required_skills == {}
    assert c.overflow is None and c.ring_timeout == 25
    assert stored == c


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"name": "Front Desk"},
            "bad queue name 'Front Desk': expected 1-32 lower-case letters, digits, _ or - (starting with a letter)",
        ),
        ({"name": "front_desk"}, "queue front_desk already exists"),
        ({"when_empty": "refuse"}, "queue q: when empty 'refuse' needs a fallback destination (e.g. extension:1001)"),
        ({"when_empty": "maybe"}, "bad when-empty 'maybe': choose join or refuse"),
        ({"language": "de"}, "unknown language 'de' (choose from en, ko, ru, zh, fr)"),
        ({"ring_timeout": "0"}, "bad ring timeout 0: expected 1-600 seconds"),
        ({"ring_timeout": "soon"}, "bad ring timeout 'soon': expected seconds"),
        ({"wrap_up": -1}, "bad wrap-up -1: expected 0-3600 seconds"),
        ({"max_length": "x"}, "bad max length 'x': expected a whole number"),
        (
            {"overflow_after": 20},
            "overflow needs both a time and a destination (--overflow-after N --overflow-to TARGET)",
        ),
        ({"overflow_after": 20, "overflow_to": "queue:q"}, "queue q cannot overflow to itself"),
        (
            {"overflow_after": 20, "overflow_to": "queue:nowhere"},
            "overflow destination queue nowhere does not exist (add it first)",
        ),
        ({"fallback": "extension:1999"}, "fallback destination extension 1999 does not exist"),
    ],
)
def test_queue_add_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    kwargs = dict(kwargs)
    name = kwargs.pop("name", "q")

    async def go(db):
        await S.add_queue(db, "front_desk")
        await S.add_queue(db, name, **kwargs)

    assert err(tmp_path, go) == message


def test_queue_not_found_and_remove_rules(tmp_path: Path) -> None:
    assert err(tmp_path, lambda db: S.get_queue(db, "nope")) == "queue nope not found"
    assert err(tmp_path, lambda db: S.edit_queue(db, "nope", ring_timeout=5)) == "queue nope not found"
    assert err(tmp_path, lambda db: S.remove_queue(db, "nope")) == "queue nope not found"

    async def setup(db):
        await S.add_queue(db, "front_desk")
        await S.add_queue(db, "np", overflow_after=20, overflow_to="queue:front_desk")
        await S.request_callback(db, "+3312345", "np")

    with_db(tmp_path, setup)
    assert (
        err(tmp_path, lambda db: S.remove_queue(db, "front_desk"))
        == "queue front_desk is in use: queue np overflows to it"
    )
    assert (
        err(tmp_path, lambda db: S.remove_queue(db, "np"))
        == "queue np has 1 open callback(s); wait until they are done or failed"
    )

    async def finish(db):
        cb = (await S.list_callbacks(db))[0]
        await S.update_callback(db, cb.id, "done", result="connected")
        await S.remove_queue(db, "np")
        await S.remove_queue(db, "front_desk")
        return await S.list_queues(db)

    assert with_db(tmp_path, finish) == []


# --------------------------------------------------------------------------- agents


def test_agent_add_list_skills_remove(tmp_path: Path) -> None:
    async def go(db):
        a = await S.add_agent(db, "alice", "Alice Kim", "new_patients:8,korean:5", wrap_up=20)
        await S.add_agent(db, "bob", "Bob")
        b = await S.set_skills(db, "bob", {"results": 3})
        lst = await S.list_agents(db)
        await S.remove_agent(db, "bob")
        return a, b, lst, await S.list_agents(db), await S.agent_events(db, "bob")

    a, b, lst, after, bob_events = with_db(tmp_path, go)
    assert (a.id, a.name, a.skills, a.wrap_up, a.state, a.extension) == (
        "alice",
        "Alice Kim",
        {"new_patients": 8, "korean": 5},
        20.0,
        "logged_out",
        None,
    )
    assert b.skills == {"results": 3}
    assert [x.id for x in lst] == ["alice", "bob"]
    assert [x.id for x in after] == ["alice"]
    assert [(e["kind"], e["detail"]) for e in bob_events] == [("REMOVED", {}), ("SKILLS", {"skills": {"results": 3}})]


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda db: S.add_agent(db, "alice", "Again"), "agent alice already exists"),
        (
            lambda db: S.add_agent(db, "Alice Kim", "x"),
            "bad agent id 'Alice Kim': expected 1-32 lower-case letters, digits, '.', '_' or '-'",
        ),
        (lambda db: S.add_agent(db, "carol", ""), "an agent needs a name (--name)"),
        (lambda db: S.add_agent(db, "carol", "Carol", "x:99"), "bad level 99 for skill x: expected 1-10"),
        (lambda db: S.get_agent(db, "zed"), "agent zed not found"),
        (lambda db: S.set_skills(db, "zed", "a:1"), "agent zed not found"),
        (lambda db: S.remove_agent(db, "zed"), "agent zed not found"),
        (lambda db: S.login(db, "alice", "1999"), "extension 1999 not found"),
        (lambda db: S.login(db, "alice", "x1"), "bad extension number 'x1': expected 2-8 digits"),
        (lambda db: S.logout(db, "alice"), "agent alice is not logged in"),
        (lambda db: S.pause(db, "alice"), "agent alice is not logged in"),
        (lambda db: S.unpause(db, "alice"), "agent alice is not paused"),
        (
            lambda db: S.pause(db, "alice", "nap"),
            "unknown pause reason 'nap' (choose from break, lunch, admin, ring_no_answer, other)",
        ),
    ],
)
def test_agent_errors(tmp_path: Path, fn: Callable, message: str) -> None:
    async def go(db):
        await S.add_agent(db, "alice", "Alice Kim")
        await fn(db)

    assert err(tmp_path, go) == message


def test_login_move_pause_unpause_logout_write_state_and_events(tmp_path: Path) -> None:
    async def go(db):
        await S.add_agent(db, "alice", "Alice Kim")
        await S.add_agent(db, "bob", "Bob")
        states = []
        a, moved = await S.login(db, "alice", "1001")
        states.append((a.state, a.extension, a.pause_reason, moved))
        a = await S.pause(db, "alice", "lunch")
        states.append((a.state, a.extension, a.pause_reason, None))
        a, moved = await S.login(db, "alice", "1002")  # moves desks, stays paused
        states.append((a.state, a.extension, a.pause_reason, moved))
        b, _ = await S.login(db, "bob", "1001")  # 1001 is free again
        a = await S.unpause(db, "alice")
        states.append((a.state, a.extension, a.pause_reason, None))
        a = await S.logout(db, "alice")
        states.append((a.state, a.extension, a.pause_reason, None))
        return states, await S.agent_events(db, "alice"), b

    states, events, bob = with_db(tmp_path, go)
    assert states == [
        ("available", "1001", None, None),
        ("paused", "1001", "lunch", None),
        ("paused", "1002", "lunch", "1001"),
        ("available", "1002", None, None),
        ("logged_out", None, None, None),
    ]
    assert bob.extension == "1001" and bob.state == "available"
    assert [(e["kind"], e["detail"]) for e in reversed(events)] == [
        ("LOGIN", {"extension": "1001"}),
        ("PAUSE", {"extension": "1001", "reason": "lunch"}),
        ("LOGIN", {"extension": "1002", "moved_from": "1001"}),
        ("UNPAUSE", {"extension": "1002"}),
        ("LOGOUT", {"extension": "1002"}),
    ]
    ts = [e["ts"] for e in reversed(events)]
    assert ts == sorted(ts)


def test_one_agent_per_extension_and_double_login(tmp_path: Path) -> None:
    async def go(db):
        await S.add_agent(db, "alice", "Alice Kim")
        await S.add_agent(db, "bob", "Bob")
        await S.login(db, "alice", "1001")
        await S.login(db, "bob", "1001")

    assert err(tmp_path, go) == "extension 1001 is in use by agent alice (log them out first)"
    assert err(tmp_path, lambda db: S.login(db, "alice", "1001")) == "agent alice is already logged in at 1001"
    assert with_db(tmp_path, lambda db: S.pause(db, "alice", "break")).pause_reason == "break"
    assert err(tmp_path, lambda db: S.pause(db, "alice", "break")) == "agent alice is already paused (break)"


def test_remove_logged_in_agent_logs_out_first(tmp_path: Path) -> None:
    async def go(db):
        await S.add_agent(db, "alice", "Alice Kim")
        await S.login(db, "alice", "1001")
        await S.remove_agent(db, "alice")
        await S.add_agent(db, "bob", "Bob")
        b, _ = await S.login(db, "bob", "1001")
        return b, await S.agent_events(db, "alice")

    b, events = with_db(tmp_path, go)
    assert b.extension == "1001"
    assert [(e["kind"], e["detail"]) for e in events][:2] == [
        ("REMOVED", {}),
        ("LOGOUT", {"extension": "1001", "reason": "removed"}),
    ]


def test_agent_events_are_append_only(tmp_path: Path) -> None:
    async def go(db):
        await S.add_agent(db, "alice", "Alice Kim")
        await S.login(db, "alice", "1001")
        with pytest.raises(DBError, match="agent_events is append-only"):
            await db.execute("UPDATE agent_events SET kind = 'X'")
        with pytest.raises(DBError, match="agent_events is append-only"):
            await db.execute("DELETE FROM agent_events")
        return await S.agent_events(db)

    assert [e["kind"] for e in with_db(tmp_path, go)] == ["LOGIN"]


def test_save_agent_state_for_the_core(tmp_path: Path) -> None:
    async def go(db):
        await S.add_agent(db, "alice", "Alice Kim")
        await S.login(db, "alice", "1001")
        a = await S.save_agent_state(
            db, "alice", AgentState.PAUSED, PauseReason.RING_NO_ANSWER, now=123.0, kind="PAUSE", reason="ring_no_answer"
        )
        b = await S.save_agent_state(db, "alice", "logged_out", now=124.0, kind="LOGOUT")
        return a, b, await S.agent_events(db, "alice", limit=2)

    a, b, events = with_db(tmp_path, go)
    assert (a.state, a.pause_reason, a.state_since, a.extension) == ("paused", "ring_no_answer", 123.0, "1001")
    assert (b.state, b.pause_reason, b.extension) == ("logged_out", None, None)
    assert [(e["ts"], e["kind"]) for e in events] == [(124.0, "LOGOUT"), (123.0, "PAUSE")]


# --------------------------------------------------------------------------- engine config


def test_load_engine_config_feeds_the_engine(tmp_path: Path) -> None:
    async def go(db):
        await S.add_queue(db, "front_desk")
        await S.add_queue(db, "np", strategy="longest_idle", skills="new_patients:5")
        await S.add_agent(db, "alice", "Alice Kim", "new_patients:8", wrap_up=5)
        await S.add_agent(db, "bob", "Bob", "new_patients:3")
        await S.add_agent(db, "carol", "Carol", "new_patients:9")
        await S.login(db, "alice", "1001")
        await S.login(db, "carol", "1002")
        await S.pause(db, "carol", "admin")
        return await S.load_engine_config(db), await S.agent_extensions(db)

    (queues, agents), where = with_db(tmp_path, go)
    assert [q.name for q in queues] == ["front_desk", "np"]
    by = {a.id: a for a in agents}
    assert by["alice"].state is AgentState.AVAILABLE and by["alice"].wrap_up == 5.0
    assert by["alice"].skills == {"new_patients": 8} and by["alice"].name == "Alice Kim"
    assert by["bob"].state is AgentState.LOGGED_OUT
    assert by["carol"].state is AgentState.PAUSED and by["carol"].pause_reason is PauseReason.ADMIN
    assert where == {"alice": "1001", "carol": "1002"}

    eng = AcdEngine(queues, agents)
    t = by["alice"].state_since + 1
    actions = eng.call_arrived(Caller("c1", "+3312345"), "np", t)
    rings = [a for a in actions if type(a).__name__ == "RingAgents"]
    assert rings and rings[0].agent_ids == ("alice",)


# --------------------------------------------------------------------------- queue events


def test_queue_events_append_and_list(tmp_path: Path) -> None:
    async def go(db):
        await S.add_queue(db, "np")
        (queues, agents) = await S.load_engine_config(db)
        eng = AcdEngine(queues, agents)
        eng.call_arrived(Caller("c1", "+3312345"), "np", 100.0)
        eng.caller_abandoned("c1", 130.0)
        drained = eng.drain_events()
        n = await S.append_queue_events(db, drained)
        await S.append_queue_events(
            db,
            [
                QueueEvent(140.0, EventKind.LOGIN, agent_id="alice"),
                {
                    "time": 150.0,
                    "kind": "CALLBACK_REQUESTED",
                    "queue": "np",
                    "call_id": "c2",
                    "data": {"number": "+331"},
                },
            ],
        )
        with pytest.raises(DBError, match="queue_events is append-only"):
            await db.execute("UPDATE queue_events SET kind = 'X'")
        with pytest.raises(DBError, match="queue_events is append-only"):
            await db.execute("DELETE FROM queue_events")
        return (
            drained,
            n,
            await S.list_queue_events(db),
            await S.list_queue_events(db, call_id="c1"),
            await S.list_queue_events(db, queue="np", since=145.0),
            await S.list_queue_events(db, limit=1),
        )

    drained, n, all_, c1, late, last = with_db(tmp_path, go)
    assert n == len(drained) and next(e.kind for e in drained) is EventKind.ENTER
    assert [e["kind"] for e in c1] == [e.kind.value for e in drained]
    abandon = next(e for e in c1 if e["kind"] == "ABANDON")
    assert abandon["queue"] == "np" and abandon["ts"] == 130.0 and abandon["data"]["wait"] == 30.0
    assert [e["kind"] for e in all_][-2:] == ["LOGIN", "CALLBACK_REQUESTED"]
    assert all_[-2]["agent"] == "alice"
    assert [(e["kind"], e["data"]) for e in late] == [("CALLBACK_REQUESTED", {"number": "+331"})]
    assert [e["kind"] for e in last] == ["CALLBACK_REQUESTED"]


# --------------------------------------------------------------------------- callbacks


def test_request_callback_merges_duplicates(tmp_path: Path) -> None:
    async def go(db):
        await S.add_queue(db, "np")
        await S.add_queue(db, "front_desk")
        first, m1 = await S.request_callback(db, "+33 1 23 45", "np", call_id="c1", now=100.0)
        again, m2 = await S.request_callback(db, "+3312345", "np", call_id="c2", now=200.0)
        other_q, m3 = await S.request_callback(db, "+3312345", "front_desk", now=210.0)
        await S.update_callback(db, first.id, "dialing", agent="alice", now=300.0)
        while_dialing, m4 = await S.request_callback(db, "+3312345", "np", now=310.0)
        done = await S.update_callback(db, first.id, "done", result="connected")
        after_done, m5 = await S.request_callback(db, "+3312345", "np", now=400.0)
        return (
            first,
            m1,
            again,
            m2,
            other_q,
            m3,
            while_dialing,
            m4,
            done,
            after_done,
            m5,
            await S.list_callbacks(db),
            await S.list_callbacks(db, "done"),
            await S.list_callbacks(db, "all"),
            await S.list_callbacks(db, "pending", queue="front_desk"),
        )

    (first, m1, again, m2, other_q, m3, while_dialing, m4, done, after_done, m5, pending, dones, all_, fd) = with_db(
        tmp_path, go
    )
    assert (first.number, first.queue, first.status, first.merged_count, first.call_id, m1) == (
        "+3312345",
        "np",
        "pending",
        0,
        "c1",
        False,
    )
    assert again.id == first.id and again.merged_count == 1 and m2 is True
    assert again.requested_at == 100.0  # keeps its place in line
    # one open callback per number, whatever the queue (issue 10: a request in a second queue
    # used to leave a second pending row that nothing ever closed)
    assert other_q.id == first.id and other_q.queue == "np" and other_q.merged_count == 2 and m3 is True
    assert while_dialing.id == first.id and while_dialing.merged_count == 3 and m4 is True
    assert while_dialing.status == "dialing" and while_dialing.attempts == 1 and while_dialing.agent == "alice"
    assert while_dialing.last_attempt_at == 300.0
    assert done.status == "done" and done.result == "connected"
    assert after_done.id != first.id and m5 is False
    assert [c.id for c in pending] == [after_done.id]
    assert [c.id for c in dones] == [first.id]
    assert len(all_) == 2 and fd == []


def test_callback_errors(tmp_path: Path) -> None:
    assert err(tmp_path, lambda db: S.request_callback(db, "+33123", "nope")) == "queue nope not found"
    assert (
        err(tmp_path, lambda db: S.request_callback(db, "call me", "np"))
        == "bad phone number 'call me': expected digits with an optional leading +"
    )
    assert (
        err(tmp_path, lambda db: S.list_callbacks(db, "lost"))
        == "unknown callback status 'lost' (choose from pending, dialing, done, failed, all)"
    )
    assert err(tmp_path, lambda db: S.update_callback(db, 99, "done")) == "callback 99 not found"

    async def reopen(db):
        await S.add_queue(db, "np")
        a, _ = await S.request_callback(db, "+33123", "np")
        await S.update_callback(db, a.id, "failed", result="no answer")
        await S.request_callback(db, "+33123", "np")
        await S.update_callback(db, a.id, "pending")

    assert err(tmp_path, reopen) == "callback 1: another request for +33123 is open in np"


# --------------------------------------------------------------------------- engine state


def test_acd_state_save_load_with_engine_snapshot(tmp_path: Path) -> None:
    async def go(db):
        await S.add_queue(db, "np")
        queues, agents = await S.load_engine_config(db)
        eng = AcdEngine(queues, agents)
        eng.call_arrived(Caller("c1", "+3312345"), "np", 100.0)
        eng.callback_requested("c1", "+3312345", 110.0)
        snap = eng.snapshot()
        assert await S.load_acd_state(db) is None
        await S.save_acd_state(db, snap)
        await S.save_acd_state(db, {"other": 1}, key="misc")
        loaded = await S.load_acd_state(db)
        fresh = AcdEngine(queues, agents)
        fresh.restore(loaded)
        return snap, loaded, fresh.waiting("np"), await S.load_acd_state(db, "misc")

    snap, loaded, waiting, misc = with_db(tmp_path, go)
    assert loaded == json.loads(json.dumps(snap))
    assert [(w.call_id, w.is_callback, w.number) for w in waiting] == [("c1", True, "+3312345")]
    assert misc == {"other": 1}


def test_request_callback_stores_e164_so_any_form_merges(tmp_path: Path) -> None:
    """A request typed by staff in the national form and one from the trunk in E.164 are one
    number, so one open request (the site region, FR by default, decides the form)."""

    async def go(db):
        await S.add_queue(db, "np")
        first, m1 = await S.request_callback(db, "06 12 34 56 79", "np", now=100.0)
        again, m2 = await S.request_callback(db, "+33612345679", "np", now=200.0)
        return first, m1, again, m2, await S.list_callbacks(db)

    first, m1, again, m2, pending = with_db(tmp_path, go)
    assert (first.number, m1, again.id, m2) == ("+33612345679", False, first.id, True)
    assert [c.number for c in pending] == ["+33612345679"]
