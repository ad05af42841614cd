"""The supervisor page (``/supervisor``) and its API: every agent (state, pause reason, the
queues it serves, its current call) and every live call (caller, queue, agent, duration),
with the supervisor's actions — force pause / unpause / logout (the agents API,
pypbx.web.api) and queue open / close (``POST /api/v1/queues/NAME/close`` and ``/open``,
:func:`pypbx.acdstore.set_queue_closed`: a closed queue sends new callers to its overflow
destination, else its fallback). Live through the event stream: the page refetches
``GET /api/v1/supervisor`` when an event comes.

Listen / whisper / barge (issue 15) will sit in the calls table's last column, shown
disabled until then.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, TypedDict

from aiohttp import web

from pypbx import acdstore
from pypbx.errors import PbxError
from pypbx.web import accounts as A
from pypbx.web.pages import NAV, render
from pypbx.web.routes import SUPERVISORS, api_error, client_ip, ctx_of, principal, route

if TYPE_CHECKING:
    from pypbx.acdlive import QueueAgentStatus
    from pypbx.web.server import WebContext

log = logging.getLogger(__name__)

V1 = "/api/v1"
PAUSE_REASONS = ("break", "lunch", "admin", "other")


class QueueView(TypedDict):
    queue: str
    closed: bool
    closed_to: str | None  # where a new caller goes while closed
    waiting: int
    agents: int


class CallView(TypedDict):
    id: str
    caller: str
    callee: str
    state: str
    since: float
    duration: float
    queue: str | None
    agent: str | None


class AgentView(TypedDict):
    id: str
    name: str
    extension: str | None
    state: str
    pause_reason: str | None
    since: float | None  # seconds in this state
    queues: list[str]
    call: CallView | None
    external_busy: bool


class Snapshot(TypedDict):
    at: float
    live: bool
    queues: list[QueueView]
    agents: list[AgentView]
    calls: list[CallView]


async def snapshot(ctx: WebContext) -> Snapshot:
    now = time.time()
    records = await acdstore.list_queues(ctx.db)
    configs = {r.name: r.config for r in records}
    acd = ctx.acd
    queues: list[QueueView] = []
    members: dict[str, list[str]] = {}
    live_agents: dict[str, QueueAgentStatus] = {}
    waiting_in: dict[str, str] = {}
    for name in sorted(configs):
        cfg = configs[name]
        waiting = 0
        n_agents = 0
        if acd is not None and name in acd.engine.queues:
            st = acd.queue_status(name)
            waiting = sum(1 for w in st["waiting"] if not w["is_callback"])
            n_agents = len(st["agents"])
            for w in st["waiting"]:
                waiting_in[w["call_id"]] = name
            for a in st["agents"]:
                members.setdefault(a["id"], []).append(name)
                live_agents[a["id"]] = a
        dest = acdstore.closed_destination(cfg)
        queues.append(
            {
                "queue": name,
                "closed": cfg.closed,
                "closed_to": acdstore.format_target(dest) if dest is not None else None,
                "waiting": waiting,
                "agents": n_agents,
            }
        )
    calls: list[CallView] = []
    on_call: dict[str, CallView] = {}
    if ctx.live_calls is not None:
        conn_agent = acd.engine.connected_calls() if acd is not None else {}
        conn_queue = acd.engine.connected_queues() if acd is not None else {}
        for c in ctx.live_calls():
            cid = c["id"]
            view: CallView = {
                "id": cid,
                "caller": c["caller"],
                "callee": c["callee"],
                "state": c["state"],
                "since": c["since"],
                "duration": round(max(0.0, now - c["since"]), 1),
                "queue": conn_queue.get(cid) or waiting_in.get(cid),
                "agent": conn_agent.get(cid),
            }
            calls.append(view)
            if view["agent"]:
                on_call[view["agent"]] = view
        calls.sort(key=lambda c: c["since"])
    agents: list[AgentView] = []
    for rec in await acdstore.list_agents(ctx.db):
        live = live_agents.get(rec.id)
        eng_agent = acd.engine.agents.get(rec.id) if acd is not None else None
        since = now - rec.state_since if rec.state_since else None
        agents.append(
            {
                "id": rec.id,
                "name": rec.name,
                "extension": rec.extension,
                "state": eng_agent.state.value if eng_agent is not None else rec.state,
                "pause_reason": (
                    (eng_agent.pause_reason.value if eng_agent.pause_reason else None)
                    if eng_agent is not None
                    else rec.pause_reason
                ),
                "since": live["since"] if live is not None else (round(since, 1) if since else None),
                "queues": members.get(rec.id, []),
                "call": on_call.get(rec.id),
                "external_busy": bool(eng_agent.external_busy) if eng_agent is not None else False,
            }
        )
    return {"at": now, "live": acd is not None, "queues": queues, "agents": agents, "calls": calls}


# --------------------------------------------------------------------------- routes

NAV.append(("/supervisor", "Supervisor", SUPERVISORS))


@route(
    "GET",
    f"{V1}/supervisor",
    roles=SUPERVISORS,
    summary="The supervisor's view: every agent (state, queues, current call), live call and queue (open/closed).",
)
async def supervisor_snapshot(request: web.Request) -> web.Response:
    return web.json_response(await snapshot(ctx_of(request)))


async def _open_close(request: web.Request, closed: bool) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    name = request.match_info["queue"]
    action = "queue.close" if closed else "queue.open"
    try:
        rec = await acdstore.set_queue_closed(ctx.db, name, closed)
    except PbxError as exc:
        await A.audit(ctx.db, p.name, action, name, str(exc), client_ip(request), ok=False)
        raise api_error(404 if "not found" in str(exc) else 409, str(exc)) from None
    if ctx.acd is not None:
        await ctx.acd.sync()  # the live ACD takes it now: the next caller sees it
    await A.audit(ctx.db, p.name, action, rec.name, None, client_ip(request))
    dest = acdstore.closed_destination(rec.config)
    return web.json_response(
        {
            "queue": rec.name,
            "closed": rec.config.closed,
            "closed_to": acdstore.format_target(dest) if dest is not None else None,
        }
    )


@route(
    "POST",
    f"{V1}/queues/{{queue}}/close",
    roles=SUPERVISORS,
    summary="Close a queue: new callers go to its overflow destination, else its fallback (pypbx queue close).",
)
async def queue_close(request: web.Request) -> web.Response:
    return await _open_close(request, True)


@route("POST", f"{V1}/queues/{{queue}}/open", roles=SUPERVISORS, summary="Open a closed queue (pypbx queue open).")
async def queue_open(request: web.Request) -> web.Response:
    return await _open_close(request, False)


@route("GET", "/supervisor", roles=SUPERVISORS, page=True, summary="The supervisor page: agents, live calls, queues.")
async def supervisor_page(request: web.Request) -> web.Response:
    return render(request, "supervisor.html", reasons=PAUSE_REASONS)
