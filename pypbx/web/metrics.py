"""``GET /metrics``: the PBX in the Prometheus text format (version 0.0.4), for clinics and
integrators who already watch their machines with Prometheus/Grafana/Zabbix.

Scraped with a bearer token (``pypbx token add prometheus --role wallboard``; Prometheus'
``authorization: {credentials: …}``) or a supervisor/admin session. The figures come from the
same places as the wallboard (pypbx.web.board: the ACD's live snapshot, today's report) and
the running PBX's status (calls up, registrations, media workers, trunks, SIP transactions),
plus two counts from the books (calls by disposition, the notification outbox). Nothing here
touches a call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from pypbx.web import board
from pypbx.web.accounts import Role
from pypbx.web.routes import SUPERVISORS, ctx_of, route

if TYPE_CHECKING:
    from pypbx.web.server import WebContext

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Metric:
    """One metric family: its samples as (labels, value)."""

    name: str
    kind: str  # gauge | counter
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float | None, **labels: str) -> Metric:
        if value is not None:
            self.samples.append((labels, float(value)))
        return self


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def render(metrics: Iterable[Metric]) -> str:
    """The text exposition format: ``# HELP``, ``# TYPE``, then one line per sample."""
    out: list[str] = []
    for m in metrics:
        out.append(f"# HELP {m.name} {m.help}")
        out.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            out.append(f"{m.name}{{{lab}}} {_number(value)}" if lab else f"{m.name} {_number(value)}")
    return "\n".join(out) + "\n"


def _num(d: Mapping[str, object], key: str) -> float | None:
    v = d.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


async def collect(ctx: WebContext) -> list[Metric]:
    snap = await board.snapshot(ctx)
    ms: list[Metric] = []
    waiting = Metric("pypbx_queue_waiting", "gauge", "Callers waiting in the queue now.")
    longest = Metric("pypbx_queue_longest_wait_seconds", "gauge", "The longest current wait in the queue.")
    agents = Metric("pypbx_queue_agents", "gauge", "The queue's agents by state.")
    today = Metric("pypbx_queue_calls_today", "gauge", "The queue's calls today (site day) by outcome.")
    sl = Metric("pypbx_queue_service_level_ratio", "gauge", "Today's service level (0-1).")
    missed = Metric("pypbx_queue_missed_open", "gauge", "Missed callers of the queue still to call back.")
    queues = snap.get("queues")
    for q in queues if isinstance(queues, list) else []:
        name = str(q["queue"])
        waiting.add(q["waiting"], queue=name)
        longest.add(q["longest_wait"], queue=name)
        for state, n in q["agents"].items():
            agents.add(n, queue=name, state=str(state))
        for outcome in ("offered", "answered", "abandoned"):
            today.add(q["today"][outcome], queue=name, outcome=outcome)
        sl.add(q["today"]["service_level"], queue=name)  # None (nothing ended today): no sample
        missed.add(q["missed_open"], queue=name)
    ms += [waiting, longest, agents, today, sl, missed]
    tot = snap.get("today")
    if isinstance(tot, Mapping):
        t = Metric("pypbx_calls_today", "gauge", "Calls of today (site day) by outcome.")
        for outcome in ("offered", "answered", "abandoned", "in_progress"):
            t.add(_num(tot, outcome), outcome=outcome)
        ms.append(t)
    books = await ctx.db.disposition_counts(None, None)
    ms.append(_family("pypbx_calls_total", "counter", "Calls in the books by disposition.", books, "disposition"))
    outbox = await ctx.db.notification_status_counts()
    ms.append(
        _family(
            "pypbx_outbox_notifications",
            "gauge",
            "Notifications (voicemail e-mails, webhooks) by status.",
            {s: outbox.get(s, 0) for s in ("pending", "sent", "failed")},
            "status",
        )
    )
    if ctx.pbx_status is not None:
        ms += _pbx(ctx.pbx_status())
    return ms


def _family(name: str, kind: str, text: str, values: Mapping[str, int], label: str) -> Metric:
    m = Metric(name, kind, text)
    for k in sorted(values):
        m.add(values[k], **{label: k})
    return m


def _pbx(st: Mapping[str, object]) -> list[Metric]:
    ms = [
        Metric("pypbx_up", "gauge", "1 while the PBX runs.").add(1),
        Metric("pypbx_uptime_seconds", "gauge", "Seconds since the PBX started.").add(_num(st, "uptime")),
        Metric("pypbx_calls_active", "gauge", "Calls up now.").add(_num(st, "calls_active")),
        Metric("pypbx_registrations", "gauge", "Registered phone contacts.").add(_num(st, "registrations")),
        Metric("pypbx_sip_transactions", "gauge", "Live SIP transactions.").add(_num(st, "transactions")),
        Metric("pypbx_sip_banned_addresses", "gauge", "Addresses banned now.").add(_num(st, "bans")),
    ]
    pool = st.get("workers")
    if isinstance(pool, Mapping):
        w = Metric("pypbx_media_workers", "gauge", "Media worker processes by state.")
        for state in ("idle", "busy", "starting"):
            w.add(_num(pool, state), state=state)
        ms.append(w)
        ms.append(Metric("pypbx_media_workers_max", "gauge", "The worker pool's limit.").add(_num(pool, "max")))
    trunks = st.get("trunks")
    if isinstance(trunks, list):
        up = Metric("pypbx_trunk_up", "gauge", "1 when the trunk is registered (or IP-authenticated) and enabled.")
        act = Metric("pypbx_trunk_calls_active", "gauge", "Calls up on the trunk.")
        for t in trunks:
            name = str(t.get("name"))
            up.add(1 if t.get("enabled") and t.get("state") in ("registered", "ip-auth") else 0, trunk=name)
            act.add(_num(t, "active_calls"), trunk=name)
        ms += [up, act]
    return ms


@route(
    "GET",
    "/metrics",
    roles=SUPERVISORS | {Role.WALLBOARD},
    summary="The PBX in the Prometheus text format (bearer token of any role but agent).",
)
async def metrics(request: web.Request) -> web.Response:
    text = render(await collect(ctx_of(request)))
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})
