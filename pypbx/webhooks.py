"""Call-event webhooks: the clinic's other systems (its MIS, CRM, a spreadsheet robot) are told
what happens, as it happens, with signed JSON POSTs.

``pypbx webhook add URL --events call.ringing,call.answered,call.ended,call.missed,
callback.closed,voicemail.left,survey.scored,agent.state --secret S`` registers an endpoint.
:class:`Webhooks` is a durable writer of the event stream (pypbx.events): for every event an
endpoint wants it writes one row to the notifications outbox (channel ``hook``, target the
webhook's id) — a database insert, nothing more, in the event's path. The outbox's sender
(:class:`pypbx.notify.Notifier`) POSTs them: per endpoint strictly in order (a delivery that
fails holds back the ones after it and is retried with backoff, 30 s doubling to at most 1 h,
for as long as it takes — across restarts: the rows are in the database), any 2xx = delivered.
The first failure of an episode is logged once as an error (``webhook N ... is failing``) and
shown by ``pypbx webhook list``; the next success ends the episode.

Every POST carries::

    Content-Type: application/json
    X-Pypbx-Event: call.ended
    X-Pypbx-Delivery: 1234                 (the outbox row: the same on a retry)
    X-Pypbx-Timestamp: 1796684725          (UNIX seconds of this attempt)
    X-Pypbx-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body, compares it
in constant time and refuses timestamps older than a few minutes (replays). The body:
``{"event", "delivery_id", "sent_at", "data": {...}}`` with ``data`` per event (README's
"Call-event webhooks" lists every field).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlsplit

from pypbx import events as E
from pypbx.db import Database
from pypbx.db.rows import WebhookRow
from pypbx.errors import PbxError, UnknownNameError
from pypbx.numbers import display

if TYPE_CHECKING:
    #: pypbx.notify.Notifier.enqueue_hooks: (kind, payload, webhook ids) -> outbox row ids
    Enqueue = Callable[[str, Mapping[str, object], list[int]], Awaitable[list[int]]]

log = logging.getLogger(__name__)

#: webhook event name -> the stream's event types it is made from
EVENTS: dict[str, tuple[type[E.Event], ...]] = {
    "call.ringing": (E.CallRinging, E.CallStep),  # the step "agent_ringing": a queue's agent
    "call.answered": (E.CallAnswered,),
    "call.ended": (E.CallEnded,),
    "call.missed": (E.MissedTaskOpened, E.MissedTaskMerged),
    "callback.closed": (E.MissedTaskClosed,),
    "voicemail.left": (E.VoicemailLeft,),
    "survey.scored": (E.CallStep,),  # the step "survey"
    "agent.state": (E.AgentStateChanged,),
}
TIMESTAMP_HEADER = "X-Pypbx-Timestamp"
SIGNATURE_HEADER = "X-Pypbx-Signature"
EVENT_HEADER = "X-Pypbx-Event"
DELIVERY_HEADER = "X-Pypbx-Delivery"


class WebhookError(PbxError, ValueError):
    """A bad URL or event list, or an unknown webhook; ``str(e)`` is one line."""


class WebhookDict(TypedDict):
    id: int
    url: str
    events: list[str]
    signed: bool
    created_at: float
    failing_since: float | None
    last_error: str | None
    last_ok_at: float | None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``timestamp.body`` with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (and the tests): the signature matches and is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    return abs(now - ts) <= tolerance and hmac.compare_digest(sign(secret, ts, body), signature)


def headers(event: str, delivery_id: int, body: bytes, secret: str, now: float) -> dict[str, str]:
    ts = int(now)
    h = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(ts),
    }
    if secret:
        h[SIGNATURE_HEADER] = sign(secret, ts, body)
    return h


def body(payload: Mapping[str, object], delivery_id: int, now: float) -> bytes:
    return json.dumps({**payload, "delivery_id": delivery_id, "sent_at": round(now, 3)}, sort_keys=True).encode()


def parse_events(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise WebhookError(f"--events: name at least one of {', '.join(EVENTS)}")
    if "all" in names:
        return list(EVENTS)
    for n in names:
        if n not in EVENTS:
            raise UnknownNameError("webhook event", n, list(EVENTS))
    return list(dict.fromkeys(names))


def _check_url(url: str) -> str:
    u = urlsplit(url.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise WebhookError(f"bad URL {url!r}: expected an http:// or https:// address")
    return url.strip()


def _dict(r: WebhookRow) -> WebhookDict:
    return {
        "id": r["id"],
        "url": r["url"],
        "events": r["events"].split(","),
        "signed": bool(r["secret"]),
        "created_at": r["created_at"],
        "failing_since": r["failing_since"],
        "last_error": r["last_error"],
        "last_ok_at": r["last_ok_at"],
    }


async def add(
    db: Database, url: str, events: str, secret: str = "", clock: Callable[[], float] = time.time
) -> WebhookDict:
    names = parse_events(events)
    hid = await db.insert_webhook_row(_check_url(url), ",".join(names), secret, clock())
    return await get(db, hid)


async def _unknown(db: Database, hook_id: int) -> UnknownNameError:
    return UnknownNameError("webhook", str(hook_id), [str(r["id"]) for r in await db.webhook_rows()])


async def get(db: Database, hook_id: int) -> WebhookDict:
    row = await db.get_webhook_row(hook_id)
    if row is None:
        raise await _unknown(db, hook_id)
    return _dict(row)


async def list_hooks(db: Database) -> list[WebhookDict]:
    return [_dict(r) for r in await db.webhook_rows()]


async def remove(db: Database, hook_id: int) -> None:
    if not await db.delete_webhook_row(hook_id):
        raise await _unknown(db, hook_id)


# ------------------------------------------------------------------ the events' bodies


class Webhooks:
    """The durable writer: each event an endpoint wants -> one outbox row for it.

    ``enqueue(kind, payload, targets)`` is :meth:`pypbx.notify.Notifier.enqueue`."""

    #: what the sink takes from the stream (call events: to know each call's record)
    TYPES: tuple[type[E.Event], ...] = (E.CallEvent, E.MissedTaskEvent, E.VoicemailLeft, E.AgentStateChanged)

    def __init__(self, db: Database, enqueue: Enqueue, region: str) -> None:
        self.db = db
        self.enqueue = enqueue
        self.region = region
        self._hooks: list[tuple[int, frozenset[str]]] | None = None
        self._calls: dict[str, Mapping[str, object]] = {}  # call id -> its record, while the call is up
        self._queue: deque[E.Event] = deque()
        self._wake = asyncio.Event()

    def on_published(self, ev: E.Event) -> None:
        """The stream's synchronous sink (every event, emitted or only published, in order):
        queued for :meth:`run`, never waiting — a webhook never holds up a call."""
        self._queue.append(ev)
        self._wake.set()

    async def drain(self) -> None:
        while self._queue:
            ev = self._queue.popleft()
            try:
                await self.on_event(ev)
            except Exception:
                log.exception("webhooks: queuing %s #%d failed", ev.name, ev.seq)

    async def run(self) -> None:
        """Until cancelled (the PBX stopping): the queued events into the outbox, in order;
        what is queued when it is cancelled still goes in."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.drain()
        except asyncio.CancelledError:
            await self.drain()
            raise

    async def changed(self, _change: object = None) -> None:
        """The database changed (the app's change watcher; ``pypbx webhook add/remove``):
        re-read the endpoints on the next event."""
        self._hooks = None

    async def _wanted(self, name: str) -> list[int]:
        if self._hooks is None:
            self._hooks = [(r["id"], frozenset(r["events"].split(","))) for r in await self.db.webhook_rows()]
        return [hid for hid, names in self._hooks if name in names]

    def _remember(self, ev: E.Event) -> Mapping[str, object] | None:
        if not isinstance(ev, E.CallEvent):
            return None
        if ev.record is not None:
            self._calls[ev.call_id] = ev.record
        rec = self._calls.get(ev.call_id)
        if isinstance(ev, E.CallEnded):
            self._calls.pop(ev.call_id, None)  # nothing kept per call after it ended
        return rec

    async def on_event(self, ev: E.Event) -> None:
        rec = self._remember(ev)
        name = self._name(ev)
        if name is None:
            return
        hooks = await self._wanted(name)
        if not hooks:
            return
        data = await self._data(name, ev, rec)
        await self.enqueue("webhook:" + name, {"event": name, "data": data}, hooks)

    @staticmethod
    def _name(ev: E.Event) -> str | None:
        if isinstance(ev, E.CallStep):
            if ev.step == "agent_ringing":  # a queue agent's phone rings (call.ringing's other source)
                return "call.ringing"
            return "survey.scored" if ev.step == "survey" else None
        for name, types in EVENTS.items():
            if isinstance(ev, types):
                return name
        return None

    def _number(self, number: object) -> dict[str, object]:
        n = str(number or "")
        return {"e164": n, "national": display(n, self.region) if n else ""}

    async def _call(self, rec: Mapping[str, object] | None, call_id: str) -> dict[str, object]:
        r = dict(rec or {})
        caller = r.get("caller_number")
        patient = None
        if caller:
            row = await self.db.get_caller_row(str(caller))
            patient = row["patient_id"] if row is not None else None
        return {
            "id": call_id,
            "direction": r.get("direction"),
            "caller": self._number(caller),
            "caller_name": r.get("caller_name") or "",
            "patient_id": patient,
            "caller_kind": r.get("caller_kind"),
            "callee": r.get("callee_number"),
            "did": self._number(r.get("did")) if r.get("did") else None,
            "service_line": r.get("service_line"),
            "queue": r.get("queue"),
            "agent": r.get("agent"),
            "extension": r.get("extension"),
            "offered_at": r.get("offered_at"),
            "answered_at": r.get("answered_at"),
            "ended_at": r.get("ended_at"),
            "disposition": r.get("disposition"),
            "wait_seconds": r.get("ring_seconds"),
            "talk_seconds": r.get("talk_seconds"),
        }

    async def _data(self, name: str, ev: E.Event, rec: Mapping[str, object] | None) -> dict[str, object]:
        if isinstance(ev, E.CallEvent):
            call = await self._call(rec, ev.call_id)
            if isinstance(ev, E.CallRinging):
                call["ringing"] = ev.callee
            elif name == "call.ringing":  # a queue's agents
                agents = ev.detail.get("agents")
                call["ringing_agents"] = list(agents) if isinstance(agents, (list, tuple)) else []
            if isinstance(ev, E.CallEnded):
                call["hangup_side"], call["hangup_cause"] = ev.side, ev.cause
                call["recording"] = ev.call_id if call.get("answered_at") else None  # pypbx recordings play ID
                call["reasons"] = [
                    {"code": r["code"], "agent": r["agent"], "set_at": r["set_at"]}
                    for r in await self.db.reasons_of_call(ev.call_id)
                ]
            if name == "survey.scored":
                call["score"] = ev.detail.get("score")
            return call
        if isinstance(ev, E.MissedTaskEvent):
            out: dict[str, object] = {
                "task": ev.task_id,
                "number": self._number(ev.number),
                "reasons": [r.value for r in ev.reasons],
                "queue": ev.queue,
                "call_id": ev.call_id,
            }
            if isinstance(ev, E.MissedTaskClosed):
                out.update(outcome=ev.outcome.value if ev.outcome else None, by=ev.by, wait_seconds=ev.wait)
            return out
        if isinstance(ev, E.VoicemailLeft):
            return {
                "box": ev.box,
                "message_id": ev.message_id,
                "caller": self._number(ev.caller),
                "seconds": ev.seconds,
                "call_id": ev.call_id,
            }
        if isinstance(ev, E.AgentStateChanged):
            return {"agent": ev.agent, "queue": ev.queue, "change": ev.change.value, "reason": ev.reason}
        return ev.to_dict()


class DeliveryDict(TypedDict):
    id: int
    event: str
    status: str
    created_at: float
    attempts: int
    next_attempt_at: float
    sent_at: float | None
    last_error: str | None


async def deliveries(db: Database, hook_id: int, limit: int = 50) -> list[DeliveryDict]:
    """The endpoint's latest deliveries, newest first (``pypbx webhook log``)."""
    await get(db, hook_id)
    return [
        {
            "id": r["id"],
            "event": r["kind"].removeprefix("webhook:"),
            "status": r["status"],
            "created_at": r["created_at"],
            "attempts": r["attempts"],
            "next_attempt_at": r["next_attempt_at"],
            "sent_at": r["sent_at"],
            "last_error": r["last_error"],
        }
        for r in await db.hook_notification_rows(hook_id, limit)
    ]
