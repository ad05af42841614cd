"""The JSON API, ``/api/v1/``: thin handlers over the same library functions the CLI uses
(pypbx.acdstore, pypbx.missed's worklist, pypbx.reports, the call books). Who may call
what is in each route's ``roles`` (pypbx.web.routes); acting on an agent also needs
:func:`~pypbx.web.routes.may_act_on_agent`. Every action is audited.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import time

from aiohttp import web

from pypbx import acdstore
from pypbx import events as E
from pypbx import missed as M
from pypbx import reasons as R
from pypbx.db.rows import CallRow
from pypbx.errors import PbxError
from pypbx.web import accounts as A
from pypbx.web import board
from pypbx.web import desk as D
from pypbx.web.openapi import spec as openapi_spec
from pypbx.web.routes import (
    EVERYONE,
    STAFF,
    api_error,
    client_ip,
    ctx_of,
    json_body,
    json_reply,
    may_act_on_agent,
    principal,
    route,
)

log = logging.getLogger(__name__)

V1 = "/api/v1"
#: events a live SSE client may have queued before it is dropped (it then reconnects with Last-Event-ID)
SSE_QUEUE = 1000
#: a write to an SSE client that takes longer than this drops the client
SSE_WRITE_TIMEOUT = 5.0
SSE_HEARTBEAT = 15.0


async def _audited(request: web.Request, action: str, target: str, detail: str | None = None) -> None:
    await A.audit(ctx_of(request).db, principal(request).name, action, target, detail, client_ip(request))


# --------------------------------------------------------------------------- who am I


@route("GET", f"{V1}/me", roles=EVERYONE, summary="The logged-in user or token: name, role, agent.")
async def me(request: web.Request) -> web.Response:
    p = principal(request)
    return json_reply({"name": p.name, "role": p.role.value, "agent": p.agent_id, "via": p.via})


# --------------------------------------------------------------------------- wallboard


@route("GET", f"{V1}/board", roles=EVERYONE, query_token=True, summary="The wallboard's snapshot, per queue.")
async def board_snapshot(request: web.Request) -> web.Response:
    return json_reply(await board.snapshot(ctx_of(request)))


# --------------------------------------------------------------------------- queues and agents


@route(
    "GET",
    f"{V1}/queues",
    roles=STAFF,
    summary="Every queue's live status: callers waiting, agents (pypbx queue status).",
)
async def queues(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    if ctx.acd is None:
        return json_reply(
            [{"queue": q.name, "waiting": [], "agents": [], "ewt": None} for q in await acdstore.list_queues(ctx.db)]
        )
    return json_reply([ctx.acd.queue_status(q) for q in sorted(ctx.acd.engine.queues)])


@route("GET", f"{V1}/agents", roles=STAFF, summary="The agents and their state (an agent login: only themself).")
async def agents(request: web.Request) -> web.Response:
    p = principal(request)
    rows = await acdstore.list_agents(ctx_of(request).db)
    out = [
        {
            "id": a.id,
            "name": a.name,
            "extension": a.extension,
            "state": a.state,
            "pause_reason": a.pause_reason,
        }
        for a in rows
        if may_act_on_agent(p, a.id)
    ]
    return json_reply(out)


async def _agent_action(request: web.Request, action: str) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    agent_id = request.match_info["agent"]
    if not may_act_on_agent(p, agent_id):
        await A.audit(ctx.db, p.name, f"agent.{action}", agent_id, "refused", client_ip(request), ok=False)
        raise api_error(403, f"a {p.role.value} login may not act on agent {agent_id}")
    body = await json_body(request)
    try:
        if action == "pause":
            rec = await acdstore.pause(ctx.db, agent_id, str(body.get("reason") or "break"))
        elif action == "unpause":
            rec = await acdstore.unpause(ctx.db, agent_id)
        elif action == "login":
            ext = str(body.get("extension") or "")
            if not ext:
                raise api_error(400, "login needs an extension")
            rec, _moved = await acdstore.login(ctx.db, agent_id, ext)
        else:
            rec = await acdstore.logout(ctx.db, agent_id)
    except PbxError as exc:
        raise api_error(400 if "not found" not in str(exc) else 404, str(exc)) from None
    if ctx.acd is not None:
        await ctx.acd.sync()  # the live ACD takes the change now (the CLI's is seen by polling)
    await _audited(request, f"agent.{action}", agent_id, str(body.get("reason") or "") or None)
    return json_reply({"id": rec.id, "state": rec.state, "pause_reason": rec.pause_reason})


@route("POST", f"{V1}/agents/{{agent}}/pause", roles=STAFF, summary="Pause an agent (body: {reason}).")
async def agent_pause(request: web.Request) -> web.Response:
    return await _agent_action(request, "pause")


@route("POST", f"{V1}/agents/{{agent}}/unpause", roles=STAFF, summary="Make a paused agent available.")
async def agent_unpause(request: web.Request) -> web.Response:
    return await _agent_action(request, "unpause")


@route(
    "POST", f"{V1}/agents/{{agent}}/login", roles=STAFF, summary="Log an agent in at an extension (body: {extension})."
)
async def agent_login(request: web.Request) -> web.Response:
    return await _agent_action(request, "login")


@route("POST", f"{V1}/agents/{{agent}}/logout", roles=STAFF, summary="Log an agent out of the queues.")
async def agent_logout(request: web.Request) -> web.Response:
    return await _agent_action(request, "logout")


# --------------------------------------------------------------------------- missed callers


@route(
    "GET",
    f"{V1}/missed",
    roles=STAFF,
    summary="Open missed-caller tasks, the longest waiting first (pypbx missed list).",
)
async def missed_list(request: web.Request) -> web.Response:
    now = time.time()
    show_all = request.query.get("all") in ("1", "true")
    tasks = await M.list_tasks(ctx_of(request).db, include_closed=show_all, queue=request.query.get("queue"))
    return json_reply([t.to_dict(now) for t in tasks])


def _worklist(request: web.Request) -> M.Worklist:
    wl = ctx_of(request).worklist
    if wl is None:
        raise api_error(409, "the PBX is not running")
    return wl


def _me_as(request: web.Request) -> str:
    p = principal(request)
    return p.agent_id or p.name


@route("POST", f"{V1}/missed/{{task}}/claim", roles=STAFF, summary="Claim a missed-caller task.")
async def missed_claim(request: web.Request) -> web.Response:
    task = request.match_info["task"]
    try:
        t = await _worklist(request).claim(task, _me_as(request))
    except PbxError as exc:
        raise api_error(409, str(exc)) from None
    await _audited(request, "missed.claim", task)
    return json_reply(t)


@route("POST", f"{V1}/missed/{{task}}/close", roles=STAFF, summary="Close a task with an outcome (body: {outcome}).")
async def missed_close(request: web.Request) -> web.Response:
    task = request.match_info["task"]
    outcome = str((await json_body(request)).get("outcome") or "")
    try:
        t = await _worklist(request).close(task, outcome, _me_as(request))
    except PbxError as exc:
        raise api_error(409, str(exc)) from None
    await _audited(request, "missed.close", task, outcome)
    return json_reply(t)


@route(
    "POST",
    f"{V1}/missed/{{task}}/call",
    roles=STAFF,
    summary="Call the caller back: the extension rings first (body: {extension}).",
)
async def missed_call(request: web.Request) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    task = request.match_info["task"]
    ext = str((await json_body(request)).get("extension") or "")
    if not ext and p.agent_id:
        rec = await acdstore.get_agent(ctx.db, p.agent_id)
        ext = rec.extension or ""
    if not ext:
        raise api_error(400, "call needs an extension to ring first")
    if ctx.missed_call is None:
        raise api_error(409, "the PBX is not running")
    try:
        res = await ctx.missed_call(task, ext)
    except PbxError as exc:
        raise api_error(409, str(exc)) from None
    await _audited(request, "missed.call", task, f"extension={ext}")
    return json_reply(res)


# --------------------------------------------------------------------------- calls and reports


@route("GET", f"{V1}/calls", roles=STAFF, summary="Today's calls (or ?date=YYYY-MM-DD); an agent login sees its own.")
async def calls(request: web.Request) -> web.Response:
    p = principal(request)
    lo, hi = _day(request)
    rows = await ctx_of(request).db.call_rows_between(lo, hi)
    out = [dict(r) for r in rows if p.role is not A.Role.AGENT or (r.get("agent") and r.get("agent") == p.agent_id)]
    return json_reply(out)


def _day(request: web.Request) -> tuple[float, float]:
    date = request.query.get("date")
    if not date or date == "today":
        return board.today_range()
    try:
        start = dt.datetime.strptime(date, "%Y-%m-%d").timestamp()
    except ValueError:
        raise api_error(400, f"expected ?date=YYYY-MM-DD, got {date!r}") from None
    return start, start + 86400


# /api/v1/reports/NAME (summary and the others), .csv and the charts: pypbx.web.reports


# --------------------------------------------------------------------------- the event stream


@route(
    "GET",
    f"{V1}/events",
    roles=EVERYONE,
    query_token=True,
    summary="The live event stream (Server-Sent Events; resume with Last-Event-ID).",
)
async def events(request: web.Request) -> web.StreamResponse:
    """Each event as ``id: <run>:<seq>``, ``event: <name>``, ``data: <json>``. A client resuming
    with ``Last-Event-ID`` (or ``?since=<seq>``) gets what it missed (a ``gap`` event if it is no
    longer buffered); a client too slow to keep up is dropped (a ``dropped`` event), never waited for."""
    ctx = ctx_of(request)
    last = request.headers.get("Last-Event-ID") or request.query.get("since") or ""
    run, _, seq = last.rpartition(":")
    since = int(seq) if seq.isdigit() else None
    sub = ctx.bus.subscribe(since, maxsize=SSE_QUEUE, run=run or None)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    ctx.streams.add(sub)
    try:
        await _send(resp, f"retry: 1000\n: run {ctx.bus.run}\n\n")
        while True:
            try:
                async with asyncio.timeout(SSE_HEARTBEAT):  # no task per event (wait_for makes one)
                    item = await sub.get()
            except TimeoutError:
                await _send(resp, ": keep-alive\n\n")
                continue
            if item is None:
                break
            # what is queued goes out in one write; an event's frame is encoded once for every client
            frames: list[str] = []
            while item is not None and isinstance(item, E.Event):
                frames.append(_frame(ctx.bus.run, item))
                item = sub.get_nowait()
            if frames:
                await _send(resp, "".join(frames))
            if item is None:
                continue
            if isinstance(item, E.Gap):
                await _send(resp, f"event: gap\ndata: {json.dumps(item.to_dict())}\n\n")
            else:
                await _send(resp, f"event: dropped\ndata: {json.dumps(item.to_dict())}\n\n")
                break
    except (ConnectionResetError, TimeoutError, asyncio.CancelledError):
        pass
    finally:
        sub.close()
        ctx.streams.discard(sub)
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


async def _send(resp: web.StreamResponse, text: str) -> None:
    async with asyncio.timeout(SSE_WRITE_TIMEOUT):
        await resp.write(text.encode())


#: the SSE frames of the latest events, (run, seq) -> frame: 50 boards encode each event once
_FRAMES: collections.OrderedDict[tuple[str, int], str] = collections.OrderedDict()
_FRAMES_MAX = 4096


def _frame(run: str, ev: E.Event) -> str:
    key = (run, ev.seq)
    frame = _FRAMES.get(key)
    if frame is None:
        frame = f"id: {run}:{ev.seq}\nevent: {ev.name}\ndata: {ev.to_json()}\n\n"
        _FRAMES[key] = frame
        if len(_FRAMES) > _FRAMES_MAX:
            _FRAMES.popitem(last=False)
    return frame


@route("GET", f"{V1}/openapi.json", roles=EVERYONE, summary="This API's OpenAPI 3 description.")
async def openapi(request: web.Request) -> web.Response:
    return json_reply(openapi_spec())


# --------------------------------------------------------------------------- the agent desk


async def _acting_on(request: web.Request, action: str) -> str:
    """The agent of the route, once the login may act on them (else 403, audited)."""
    ctx, p = ctx_of(request), principal(request)
    agent_id = request.match_info["agent"]
    if not may_act_on_agent(p, agent_id):
        await A.audit(ctx.db, p.name, action, agent_id, "refused", client_ip(request), ok=False)
        raise api_error(403, f"a {p.role.value} login may not act on agent {agent_id}")
    return agent_id


@route(
    "GET",
    f"{V1}/agents/{{agent}}/call",
    roles=STAFF,
    summary="The agent desk: the agent's state, the call ringing or up (or just ended), the caller's last calls.",
)
async def agent_call(request: web.Request) -> web.Response:
    agent_id = await _acting_on(request, "agent.call")
    try:
        return json_reply(await D.desk_view(ctx_of(request), agent_id))
    except PbxError as exc:
        raise api_error(404 if "not found" in str(exc) else 400, str(exc)) from None


@route(
    "POST",
    f"{V1}/agents/{{agent}}/call",
    roles=STAFF,
    summary="Click-to-call: the agent's phone rings first, then the number is dialled (body: {number}).",
)
async def agent_originate(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    agent_id = await _acting_on(request, "agent.originate")
    body = await json_body(request)
    try:
        number = D.check_number(body.get("number"))
        st = await D.agent_state(ctx, agent_id)
    except PbxError as exc:
        raise api_error(404 if "not found" in str(exc) else 400, str(exc)) from None
    ext = st["extension"]
    if not isinstance(ext, str) or not ext:
        raise api_error(400, f"agent {agent_id} is not logged in at an extension")
    if ctx.originate is None:
        raise api_error(409, "the PBX is not running")
    res = await ctx.originate(ext, number)
    if res.get("error"):
        raise api_error(409, f"call refused: {res['error']}")
    await _audited(request, "agent.originate", agent_id, f"extension={ext} number={number}")
    return json_reply(res)


async def _agents_call(request: web.Request, action: str) -> tuple[CallRow, str | None]:
    """The route's call, once the login may act on it: a supervisor on any call, an agent
    on their own (else 403, audited). Returns (call row, the agent it is set for)."""
    ctx, p = ctx_of(request), principal(request)
    try:
        row = await R.find_call(ctx.db, request.match_info["call"])
    except PbxError as exc:
        raise api_error(404, str(exc)) from None
    if p.role is A.Role.AGENT:
        if not p.agent_id or not await D.call_is_agents(ctx, p.agent_id, row):
            await A.audit(ctx.db, p.name, action, row["id"], "refused", client_ip(request), ok=False)
            raise api_error(403, f"call {row['id']} is not one of agent {p.agent_id or '-'}'s calls")
        return row, p.agent_id
    return row, row["agent"]


@route(
    "POST",
    f"{V1}/calls/{{call}}/reason",
    roles=STAFF,
    summary="Set the reason code of a call, during the call or after (body: {code}).",
)
async def call_reason(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await json_body(request)
    code = str(body.get("code") or "")
    if not code:
        raise api_error(400, "give a reason code")
    row, agent = await _agents_call(request, "call.reason")
    try:
        res = await R.set_call_reason(ctx.db, ctx.bus, row["id"], code=code, agent=agent)
    except PbxError as exc:
        raise api_error(400, str(exc)) from None
    await _audited(request, "call.reason", row["id"], str(res["code"]))
    return json_reply(res)


@route(
    "POST",
    f"{V1}/calls/{{call}}/note",
    roles=STAFF,
    summary="Add a note to a call, during the call or after (body: {text}).",
)
async def call_note(request: web.Request) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    body = await json_body(request)
    try:
        text = D.check_note(body.get("text"))
    except PbxError as exc:
        raise api_error(400, str(exc)) from None
    row, agent = await _agents_call(request, "call.note")
    res = await D.add_note(ctx, row["id"], text, by=p.name, agent=agent)
    await _audited(request, "call.note", row["id"], text[:80])
    return json_reply(res)
