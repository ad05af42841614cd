"""The agent desk's API (pypbx.web.desk and its /api/v1 routes): the agent's current call
with the caller's name, patient id, kind and last calls with reasons; setting a reason and a
note on a call; click-to-call with the agent's phone first; the /desk page. Roles (an agent
acts on themself only), CSRF, the audit log, and bad input answered 400 with one message.
In-process: aiohttp's test server on a real socket (the same harness as test_web.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pypbx import events as E
from pypbx import reasons as R
from pypbx.web import accounts as A
from pypbx.web import security as S
from tests.unit.test_web import csrf_of, desk, login

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr(A, "_HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


def call_row(call_id: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": call_id,
        "direction": "inbound",
        "caller_number": "+33612345678",
        "callee_number": "600",
        "offered_at": 1000.0,
        "disposition": "in_progress",
        "flags": "",
    }
    row.update(kw)
    return row


async def seed(ctx: Any) -> None:
    """A returning patient's earlier call (reason: results) and their call now, answered by alice."""
    db = ctx.db
    await R.add_reason(db, "results", "Test results", digit="2")
    await R.add_reason(db, "appointment", "Appointment", digit="1")
    await db.upsert_patient_rows([("+33612345678", "Marie Dupont", "P-0042")], 500.0)
    old = call_row("old-call", offered_at=900.0, answered_at=905.0, ended_at=960.0, disposition="answered")
    await db.insert_call({**old, "queue": "front", "agent": "bob", "extension": "202"}, (900.0, "offered", "{}"))
    await R.set_call_reason(db, None, "old-call", code="results", agent="bob")
    now = call_row(
        "call-now",
        queue="front",
        agent="alice",
        extension="201",
        service_line="Appointments",
        caller_kind="patient",
        answered_at=1005.0,
    )
    await db.insert_call(now, (1000.0, "offered", "{}"))


async def as_user(client: TestClient, name: str) -> dict[str, str]:
    assert (await login(client, name)).status == 302
    return {S.CSRF_HEADER: await csrf_of(client)}


def run(make_config: Callable[..., Path], body: Callable[[TestClient, Any], Awaitable[None]]) -> None:
    async def go() -> None:
        async with desk(make_config()) as (client, ctx):
            await seed(ctx)
            await body(client, ctx)

    asyncio.run(go())


async def audit(ctx: Any) -> list[tuple[str, str, str | None, str | None, bool]]:
    return [(a["who"], a["action"], a["target"], a["detail"], a["ok"]) for a in await A.list_audit(ctx.db)]


async def error(r: Any, status: int) -> str:
    assert r.status == status, await r.text()
    body = await r.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    return str(body["error"])


# --------------------------------------------------------------------------- the current call


def test_the_agents_current_call_with_the_caller_and_their_last_calls(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await as_user(client, "alice")
        r = await client.get("/api/v1/agents/alice/call")
        assert r.status == 200
        view = await r.json()
        assert view["agent"] == {
            "id": "alice",
            "name": "Alice",
            "state": "available",
            "pause_reason": None,
            "extension": "201",
        }
        c = view["call"]
        assert (c["id"], c["phase"], c["number"], c["name"], c["patient_id"], c["caller_kind"]) == (
            "call-now",
            "up",
            "+33612345678",
            "Marie Dupont",
            "P-0042",
            "patient",
        )
        assert (c["service_line"], c["queue"], c["reason"], c["notes"]) == ("Appointments", "front", None, [])
        assert [(h["id"], h["disposition"], h["reason"]) for h in view["history"]] == [
            ("old-call", "answered", {"code": "results", "label": "Test results"})
        ]
        # after the call: the last answered call, still there to set a reason on
        await ctx.db.update_call("call-now", {"disposition": "answered", "ended_at": 1100.0})
        c = (await (await client.get("/api/v1/agents/alice/call")).json())["call"]
        assert (c["id"], c["phase"]) == ("call-now", "last")
        # her click-to-call, ringing her phone: not a queue call, found by her extension
        c2c = call_row(
            "c2c", direction="outbound", caller_number="201", callee_number="+33698765432", offered_at=1200.0
        )
        await ctx.db.insert_call(c2c, (1200.0, "offered", "{}"))
        c = (await (await client.get("/api/v1/agents/alice/call")).json())["call"]
        assert (c["id"], c["phase"], c["number"], c["name"], c["caller_kind"]) == (
            "c2c",
            "ringing",
            "+33698765432",
            None,
            None,
        )

    run(make_config, body)


def test_an_agent_sees_only_their_own_desk(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await as_user(client, "alice")
        assert "a agent login may not act on agent bob" in await error(await client.get("/api/v1/agents/bob/call"), 403)
        await error(await client.post("/api/v1/agents/bob/call", json={"number": "0612345678"}, headers=h), 403)
        assert ("alice", "agent.call", "bob", "refused", False) in await audit(ctx)
        assert ("alice", "agent.originate", "bob", "refused", False) in await audit(ctx)
        page = await client.get("/desk?agent=bob")
        assert page.status == 403
        page = await client.get("/desk")
        assert page.status == 200 and 'data-agent="alice"' in await page.text()

    run(make_config, body)


def test_a_supervisor_opens_any_agents_desk_a_wallboard_none(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await as_user(client, "sup")
        page = await (await client.get("/desk")).text()
        assert 'id="pick-agent"' in page and 'data-agent="' not in page  # choose an agent first
        page = await (await client.get("/desk?agent=bob")).text()
        assert 'data-agent="bob"' in page and "Test results" in page  # the reason codes to pick from
        assert (await (await client.get("/api/v1/agents/bob/call")).json())["agent"]["id"] == "bob"
        await error(await client.get("/api/v1/agents/nobody/call"), 404)
        client.session.cookie_jar.clear()
        await as_user(client, "tv")
        await error(await client.get("/api/v1/agents/alice/call"), 403)
        assert (await client.get("/desk", allow_redirects=False)).status == 403

    run(make_config, body)


# --------------------------------------------------------------------------- reason and note


def test_reason_and_note_on_the_agents_call_audited_and_on_the_stream(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await as_user(client, "alice")
        r = await client.post("/api/v1/calls/call-now/reason", json={"code": "appointment"}, headers=h)
        assert r.status == 200
        assert await r.json() == {
            "call_id": "call-now",
            "code": "appointment",
            "label": "Appointment",
            "agent": "alice",
            "via": "api",
        }
        r = await client.post("/api/v1/calls/call-now/note", json={"text": "  wants a morning slot "}, headers=h)
        assert r.status == 200 and (await r.json())["text"] == "wants a morning slot"
        assert [(x["code"], x["agent"]) for x in await ctx.db.reasons_of_call("call-now")] == [("appointment", "alice")]
        evs = ctx.bus.replay(0)[1]
        assert [e.code for e in evs if isinstance(e, E.ReasonSet)] == ["appointment"]
        notes = [e for e in evs if isinstance(e, E.CallStep) and e.step == "note"]
        assert [(e.call_id, dict(e.detail)) for e in notes] == [
            ("call-now", {"text": "wants a morning slot", "by": "alice", "agent": "alice"})
        ]
        acts = await audit(ctx)
        assert ("alice", "call.reason", "call-now", "appointment", True) in acts
        assert ("alice", "call.note", "call-now", "wants a morning slot", True) in acts
        view = await (await client.get("/api/v1/agents/alice/call")).json()
        assert view["call"]["reason"] == {"code": "appointment", "label": "Appointment"}

    run(make_config, body)


def test_an_agent_cannot_touch_another_agents_call_a_supervisor_can(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await as_user(client, "alice")
        msg = await error(await client.post("/api/v1/calls/old-call/reason", json={"code": "results"}, headers=h), 403)
        assert msg == "call old-call is not one of agent alice's calls"
        await error(await client.post("/api/v1/calls/old-call/note", json={"text": "x"}, headers=h), 403)
        assert ("alice", "call.reason", "old-call", "refused", False) in await audit(ctx)
        client.session.cookie_jar.clear()
        h = await as_user(client, "sup")
        r = await client.post("/api/v1/calls/old-call/reason", json={"code": "appointment"}, headers=h)
        assert r.status == 200 and (await r.json())["agent"] == "bob"  # set for the call's agent

    run(make_config, body)


def test_bad_input_is_400_with_one_message(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await as_user(client, "alice")
        post = client.post
        assert await error(await post("/api/v1/calls/call-now/reason", json={}, headers=h), 400) == "give a reason code"
        msg = await error(await post("/api/v1/calls/call-now/reason", json={"code": "nope"}, headers=h), 400)
        assert msg == "no reason nope"
        msg = await error(await post("/api/v1/calls/call-now/note", json={"text": "   "}, headers=h), 400)
        assert msg == "a note is 1 to 500 characters"
        await error(await post("/api/v1/calls/call-now/note", json={"text": "x" * 501}, headers=h), 400)
        r = await post(
            "/api/v1/calls/call-now/note", data="not json", headers={**h, "Content-Type": "application/json"}
        )
        assert await error(r, 400) == "the body is not JSON"
        msg = await error(await post("/api/v1/agents/alice/call", json={"number": "call me"}, headers=h), 400)
        assert msg == "bad number 'call me': 2 to 20 digits, an optional leading +"
        assert await error(await post("/api/v1/calls/nope/reason", json={"code": "results"}, headers=h), 404)
        # no running PBX here to place the call
        r = await post("/api/v1/agents/alice/call", json={"number": "06 12 34 56 78"}, headers=h)
        assert await error(r, 409) == "the PBX is not running"
        assert not [a for a in await audit(ctx) if a[1] in ("call.reason", "call.note", "agent.originate")]

    run(make_config, body)


def test_desk_actions_need_the_csrf_token(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await as_user(client, "alice")
        for path, payload in (
            ("/api/v1/calls/call-now/reason", {"code": "results"}),
            ("/api/v1/calls/call-now/note", {"text": "hello"}),
            ("/api/v1/agents/alice/call", {"number": "0612345678"}),
        ):
            r = await client.post(path, json=payload)
            assert await error(r, 403) == "missing or wrong CSRF token (reload the page)"
            r = await client.post(path, json=payload, headers={S.CSRF_HEADER: "forged"})
            assert r.status == 403
        assert await ctx.db.reasons_of_call("call-now") == []
        refused = [a for a in await audit(ctx) if a[1] == "csrf.refused"]
        assert len(refused) == 6

    run(make_config, body)


# --------------------------------------------------------------------------- click-to-call


def test_click_to_call_rings_the_agents_extension_first(make_config: Callable[..., Path]) -> None:
    placed: list[tuple[str, str]] = []

    async def originate(extension: str, number: str) -> dict[str, object]:
        placed.append((extension, number))
        if number == "0999":
            return {"error": "403 no route"}
        return {"call_id": "c2c-1", "extension": extension, "number": number, "class": "national"}

    async def body(client: TestClient, ctx: Any) -> None:
        ctx.originate = originate
        h = await as_user(client, "alice")
        r = await client.post("/api/v1/agents/alice/call", json={"number": "06 12.34-56 78"}, headers=h)
        assert r.status == 200 and (await r.json())["call_id"] == "c2c-1"
        assert placed == [("201", "0612345678")]
        assert await error(await client.post("/api/v1/agents/alice/call", json={"number": "0999"}, headers=h), 409)
        acts = await audit(ctx)
        assert ("alice", "agent.originate", "alice", "extension=201 number=0612345678", True) in acts
        # logged out: no phone to ring first
        r = await client.post("/api/v1/agents/alice/logout", headers=h)
        assert r.status == 200
        msg = await error(await client.post("/api/v1/agents/alice/call", json={"number": "0612345678"}, headers=h), 400)
        assert msg == "agent alice is not logged in at an extension"
        assert len(placed) == 2

    run(make_config, body)


def test_the_openapi_document_describes_the_desk_routes(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await as_user(client, "alice")
        doc = await (await client.get("/api/v1/openapi.json")).json()
        assert set(doc["paths"]["/api/v1/agents/{agent}/call"]) == {"get", "post"}
        note = doc["paths"]["/api/v1/calls/{call}/note"]["post"]
        schema = note["requestBody"]["content"]["application/json"]["schema"]
        assert json.dumps(schema["properties"]["text"]) == '{"type": "string", "maxLength": 500}'
        assert doc["paths"]["/api/v1/calls/{call}/reason"]["post"]["x-roles"] == ["admin", "agent", "supervisor"]

    run(make_config, body)
