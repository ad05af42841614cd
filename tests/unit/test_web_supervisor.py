"""The supervisor page and its API (pypbx.web.supervisor) and the queue open/closed
facility under it: a closed queue sends a new caller at once to its overflow destination
(else its fallback) while callers already waiting stay; ``pypbx queue close/open``; closing
a queue with nowhere to send callers is refused; the API's open/close is for supervisors
and admins only, needs the CSRF token and is audited; the snapshot lists every agent with
its queues and current call, and every live call with its queue and agent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from acd.engine import AcdEngine
from acd.model import (
    Agent,
    Caller,
    EventKind,
    ExitEmpty,
    OverflowRule,
    QueueConfig,
    RingAgents,
    Target,
    TargetKind,
)
from pypbx import acdstore
from pypbx.errors import PbxError
from pypbx.web import accounts as A
from tests.unit.test_web import cheap_hashes, csrf_of, login, run  # noqa: F401 - cheap_hashes: an autouse fixture

TO_DESK = Target(TargetKind.EXTENSION, "201")


# --------------------------------------------------------------------------- the engine


def test_a_closed_queue_sends_new_callers_to_its_overflow_destination_waiting_ones_stay() -> None:
    q = QueueConfig("q", wrap_up=0, overflow=OverflowRule(60, Target(TargetKind.QUEUE, "other")))
    eng = AcdEngine([q, QueueConfig("other")], [])
    eng.call_arrived(Caller("c1", number="+33611111111"), "q", 1.0)  # nobody staffed: waits
    eng.drain_events()
    eng.add_queue(QueueConfig("q", wrap_up=0, overflow=q.overflow, closed=True))
    out = eng.call_arrived(Caller("c2", number="+33622222222"), "q", 2.0)
    assert out == [ExitEmpty("c2", "q", Target(TargetKind.QUEUE, "other"))]
    evs = eng.drain_events()
    assert [(e.kind, e.call_id, e.data.get("closed")) for e in evs] == [(EventKind.EXITEMPTY, "c2", True)]
    assert [w.call_id for w in eng.waiting(now=3.0)] == ["c1"]  # the caller already waiting stays
    # open again: the next caller waits, and an agent logging in gets the first one
    eng.add_queue(QueueConfig("q", wrap_up=0, overflow=q.overflow))
    eng.call_arrived(Caller("c3"), "q", 4.0)
    assert [w.call_id for w in eng.waiting(now=5.0)] == ["c1", "c3"]
    eng.add_agent(Agent("a"))
    out = eng.agent_login("a", 6.0)
    assert [r.call_id for r in out if isinstance(r, RingAgents)] == ["c1"]


def test_a_closed_queue_without_overflow_uses_its_fallback() -> None:
    eng = AcdEngine([QueueConfig("q", fallback=TO_DESK, closed=True)], [Agent("a")])
    eng.agent_login("a", 0.0)  # even with an agent free
    assert eng.call_arrived(Caller("c1"), "q", 1.0) == [ExitEmpty("c1", "q", TO_DESK)]
    assert QueueConfig.from_dict(QueueConfig("q", fallback=TO_DESK, closed=True).to_dict()).closed is True
    assert QueueConfig.from_dict({"name": "old"}).closed is False  # a queue saved before the facility


# --------------------------------------------------------------------------- store and CLI


def test_cli_queue_close_and_open(tmp_config: Path, invoke_cli: Any) -> None:
    c = ("--config", str(tmp_config))
    assert invoke_cli("ext", "add", "201", "--name", "Desk", "--password", "secret201-long", *c).exit_code == 0
    assert invoke_cli("queue", "add", "front", *c).exit_code == 0
    r = invoke_cli("queue", "close", "front", *c)
    assert r.exit_code == 1
    assert "a closed queue sends new callers to its overflow or fallback destination; set one first" in r.output
    assert (
        invoke_cli("queue", "edit", "front", "--overflow-after", "60", "--overflow-to", "extension:201", *c).exit_code
        == 0
    )
    r = invoke_cli("queue", "close", "front", *c)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "Queue front closed: new callers go to extension:201."
    shown = invoke_cli("queue", "show", "front", *c).output
    assert "closed: new callers go to extension:201" in shown
    assert json.loads(invoke_cli("queue", "show", "front", "--json", *c).output)["closed"] is True
    r = invoke_cli("queue", "open", "front", "--json", *c)
    assert r.exit_code == 0 and json.loads(r.output)["closed"] is False
    assert invoke_cli("queue", "open", "front", *c).output.strip() == "Queue front open."
    r = invoke_cli("queue", "close", "nosuch", *c)
    assert r.exit_code == 2 and "unknown queue 'nosuch'" in r.output  # issue 12: an unknown name is bad input


# --------------------------------------------------------------------------- the API and the page


async def _queue(ctx: Any, **opts: object) -> None:
    await acdstore.add_queue(ctx.db, "front", **opts)


def test_supervisor_closes_and_opens_a_queue_audited_with_csrf(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await _queue(ctx, overflow_after=30, overflow_to="extension:201")
        await acdstore.add_queue(ctx.db, "bare")
        assert (await login(client, "sup")).status == 302
        csrf = await csrf_of(client)
        # without the CSRF token: refused
        assert (await client.post("/api/v1/queues/front/close")).status == 403
        r = await client.post("/api/v1/queues/front/close", headers={"X-CSRF-Token": csrf})
        assert r.status == 200
        assert await r.json() == {"queue": "front", "closed": True, "closed_to": "extension:201"}
        assert (await acdstore.get_queue(ctx.db, "front")).config.closed is True
        snap = await (await client.get("/api/v1/supervisor")).json()
        assert [(q["queue"], q["closed"], q["closed_to"]) for q in snap["queues"]] == [
            ("bare", False, None),
            ("front", True, "extension:201"),
        ]
        r = await client.post("/api/v1/queues/bare/close", headers={"X-CSRF-Token": csrf})
        assert r.status == 409 and "set one first" in (await r.json())["error"]
        r = await client.post("/api/v1/queues/nosuch/close", headers={"X-CSRF-Token": csrf})
        assert r.status == 404
        r = await client.post("/api/v1/queues/front/open", headers={"X-CSRF-Token": csrf})
        assert r.status == 200 and (await r.json())["closed"] is False
        audit = [(a["who"], a["action"], a["target"], a["ok"]) for a in await A.list_audit(ctx.db)]
        assert ("sup", "queue.close", "front", True) in audit
        assert ("sup", "queue.close", "bare", False) in audit
        assert ("sup", "queue.open", "front", True) in audit
        assert ("sup", "csrf.refused", "/api/v1/queues/front/close", False) in audit

    run(make_config, body)


@pytest.mark.parametrize("who", ["alice", "tv"])
def test_agents_and_wallboards_cannot_supervise(make_config: Callable[..., Path], who: str) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await _queue(ctx, overflow_after=30, overflow_to="extension:201")
        assert (await login(client, who)).status == 302
        csrf = await csrf_of(client)
        assert (await client.get("/api/v1/supervisor")).status == 403
        assert (await client.get("/supervisor", allow_redirects=False)).status == 403
        assert (await client.post("/api/v1/queues/front/close", headers={"X-CSRF-Token": csrf})).status == 403
        assert (await acdstore.get_queue(ctx.db, "front")).config.closed is False
        if who == "alice":  # an agent may pause itself, not bob
            r = await client.post("/api/v1/agents/bob/pause", headers={"X-CSRF-Token": csrf}, json={"reason": "lunch"})
            assert r.status == 403

    run(make_config, body)


def test_anonymous_gets_the_login_page_or_401(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        r = await client.get("/supervisor", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/login")
        assert (await client.get("/api/v1/supervisor")).status == 401
        assert (await client.post("/api/v1/queues/front/open")).status == 401

    run(make_config, body)


def test_snapshot_agents_and_live_calls_and_forced_pause(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await _queue(ctx, overflow_after=30, overflow_to="extension:201")
        ctx.live_calls = lambda: [
            {"id": "c1", "caller": "+33611111111", "callee": "200", "state": "up", "since": 100.0, "worker": 1},
        ]
        assert (await login(client, "sup")).status == 302
        csrf = await csrf_of(client)
        # a supervisor forces bob into pause, then logs alice out
        r = await client.post("/api/v1/agents/bob/pause", headers={"X-CSRF-Token": csrf}, json={"reason": "admin"})
        assert r.status == 200 and (await r.json())["state"] == "paused"
        r = await client.post("/api/v1/agents/alice/logout", headers={"X-CSRF-Token": csrf})
        assert r.status == 200 and (await r.json())["state"] == "logged_out"
        snap = await (await client.get("/api/v1/supervisor")).json()
        assert snap["live"] is False
        agents = {a["id"]: a for a in snap["agents"]}
        assert (agents["bob"]["state"], agents["bob"]["pause_reason"], agents["bob"]["extension"]) == (
            "paused",
            "admin",
            "202",
        )
        assert agents["alice"]["state"] == "logged_out" and agents["alice"]["call"] is None
        assert [(c["id"], c["caller"], c["queue"], c["agent"]) for c in snap["calls"]] == [
            ("c1", "+33611111111", None, None)
        ]
        assert snap["calls"][0]["duration"] > 0
        audit = [(a["who"], a["action"], a["target"]) for a in await A.list_audit(ctx.db)]
        assert ("sup", "agent.pause", "bob") in audit and ("sup", "agent.logout", "alice") in audit
        # the page: the tables, the pause reasons, room for listen / whisper / barge
        html = await (await client.get("/supervisor")).text()
        for needle in ('id="agents-table"', 'id="calls-table"', 'id="queues-table"', "Listen / whisper / barge"):
            assert needle in html
        assert json.loads(html.split('<script id="sup-reasons" type="application/json">')[1].split("</script>")[0]) == [
            "break",
            "lunch",
            "admin",
            "other",
        ]
        assert 'src="/static/supervisor.js"' in html

    run(make_config, body)


def test_set_queue_closed_refuses_nowhere_to_send(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await acdstore.add_queue(ctx.db, "front", fallback="extension:201")
        rec = await acdstore.set_queue_closed(ctx.db, "front", True)
        assert rec.config.closed and acdstore.closed_destination(rec.config) == TO_DESK
        await acdstore.add_queue(ctx.db, "bare")
        with pytest.raises(PbxError, match="set one first"):
            await acdstore.set_queue_closed(ctx.db, "bare", True)
        # clearing the destination of a closed queue is refused too
        with pytest.raises(PbxError, match="set one first"):
            await acdstore.edit_queue(ctx.db, "front", fallback="none")

    run(make_config, body)
