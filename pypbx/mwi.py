"""Message-waiting indication (MWI): phones subscribe to their mailbox and are told how
many new and old voicemail messages it holds (RFC 3842 over RFC 6665 SUBSCRIBE/NOTIFY).

:class:`MwiService` is the asyncio side of the sans-I/O notifier in
``sip/subscription.py``:

* **The front door**: it claims ``SUBSCRIBE`` requests with ``Event: message-summary``
  (and in-dialog SUBSCRIBEs of its own subscriptions) from the proxy
  (``SipServer.claim``); every other SUBSCRIBE still goes where it went before.
* **Who may subscribe**: an initial SUBSCRIBE is digest-authenticated like a REGISTER
  (401 ``WWW-Authenticate``, the registrar's nonces and passwords; failures feed the abuse
  guard); its From user must be the authenticated extension (403). The Request-URI user
  names the mailbox: a box name (``pypbx voicemail box 1001``), a box's number
  (``--number 801``), or ``*98`` (the voicemail code: the subscriber's own box). Unknown -> 404. An extension may only watch its own box: the box
  named like the extension or whose number is the extension (403 otherwise).
  In-dialog SUBSCRIBEs (refresh / unsubscribe) are recognised by Call-ID, the
  subscriber's tag and our 96-bit random To tag, and are not challenged again.
* **Counts**: new = not heard, old = heard; deleted messages do not count
  (:func:`mailbox_counts`). They are read when a phone subscribes and re-read for the
  subscribed boxes when (1) a message is filed by this PBX (the event stream's ``voicemail
  left``: :meth:`MwiService.voicemail_left`; or ``FrontLine.voicemail_listeners``),
  (2) the database changes (:class:`pypbx.changes.ChangeWatcher`, the PBX's one change
  watcher, with this process's own writes too): another process (the CLI: ``pypbx
  voicemail heard|delete``) moves ``PRAGMA data_version``, a change made by this process
  (``*98`` marking messages heard) moves the connection's ``total_changes``. Without a
  watcher of the app's, :meth:`MwiService.run` drives a private one every
  :data:`POLL_INTERVAL` seconds. A NOTIFY is sent only when a box's counts really changed.
* **NOTIFYs** are our own non-INVITE client transactions (``SipServer.send_own``), sent to
  the address and transport the SUBSCRIBE came from (NAT pinhole / TCP connection); a 481,
  a timeout or a transport error ends the subscription.
* Subscriptions live in memory only: after a restart the phones' refreshes get 481 and
  they subscribe again (RFC 6665 §4.1.2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from pypbx import voicemail as V
from pypbx.changes import ChangeWatcher, DbChanged
from pypbx.db import Database
from pypbx.db.rows import VoicemailBoxRow
from sip.auth import ProxyAuthenticator
from sip.message import Request, Response, make_response
from sip.registrar import AuthOutcome
from sip.server import Handler, OwnCallback, SipServer
from sip.subscription import Action as SubscriptionAction
from sip.subscription import (
    Ended,
    ExpiresPolicy,
    MessageSummary,
    Notifier,
    Respond,
    SendNotify,
    Subscription,
)
from sip.transaction import Addr, Key, ResponseReceived

if TYPE_CHECKING:
    from pypbx.events import VoicemailLeft
    from pypbx.frontline import FrontLine

log = logging.getLogger(__name__)

#: Seconds between looks at the database for changes (only while somebody subscribes).
POLL_INTERVAL = 0.5


class SipPort(Protocol):
    """What the MWI service uses of the SIP server (:class:`sip.server.SipServer`)."""

    def claim(self, method: str, wants: Callable[[Request], bool], handler: Handler) -> None: ...
    def respond(self, key: Key, response: Response) -> None: ...
    def local_address(self, transport: str, dest_host: str) -> tuple[str, int]: ...
    def send_own(self, req: Request, dest: Addr, on_event: OwnCallback) -> None: ...


async def mailbox_counts(db: Database, box: str) -> tuple[int, int]:
    """(new, old) voice messages of ``box``: unheard / heard, deleted ones left out."""
    msgs = await V.list_messages(db, box)
    new = sum(1 for m in msgs if not m["heard"] and m.get("deleted_at") is None)
    old = sum(1 for m in msgs if m["heard"] and m.get("deleted_at") is None)
    return new, old


async def mailbox_for(db: Database, target: str) -> VoicemailBoxRow | None:
    """The mailbox a Request-URI user names: a box name, else a box's number."""
    if not target:
        return None
    row = await db.get_voicemail_box_row(target)
    if row is not None:
        return row
    box = await V.box_for_number(db, target)
    return await db.get_voicemail_box_row(box) if box else None


def owns(user: str, box: VoicemailBoxRow) -> bool:
    """An extension's own mailbox: named like the extension, or whose number it is."""
    return bool(user) and (user == box["box"] or user == box.get("number"))


def _with_to_tag(resp: Response, req: Request) -> Response:
    """RFC 3261 §8.2.6.2: a UAS's final response carries a To tag (the authenticator's
    challenge, built for a proxy's 407, has none). Derived from the Call-ID, like the
    registrar's, so every challenge of one attempt looks alike."""
    if resp.to.tag is not None:
        return resp
    return resp.replace(headers=resp.headers.replace("To", [f"{resp.headers.get('To')};tag={_tag(req)}"]))


def _tag(req: Request) -> str:
    return hashlib.sha256(req.call_id.encode("utf-8", "replace")).hexdigest()[:12]


class MwiService:
    def __init__(
        self,
        db: Database,
        sip: SipPort,
        *,
        realm: str,
        authenticator: ProxyAuthenticator,
        policy: ExpiresPolicy = ExpiresPolicy(),
        user_agent: str = "pypbx",
        wallclock: Callable[[], float] = time.time,
        changes: ChangeWatcher | None = None,
    ) -> None:
        self.db = db
        self.sip = sip
        self.realm = realm
        self.auth = authenticator
        self.wallclock = wallclock
        self.notifier = Notifier(policy=policy, user_agent=user_agent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # the PBX's change watcher calls db_changed; without one, run() polls a private one
        self._own_watch: ChangeWatcher | None = None
        if changes is not None:
            changes.subscribe("MWI", self.db_changed, own_writes=True)
        else:
            self._own_watch = ChangeWatcher(db, POLL_INTERVAL)
            self._own_watch.subscribe("MWI", self.db_changed, own_writes=True)
        # one count-then-notify at a time: a count read before a change must not be
        # applied after a later count that saw it (no stale NOTIFY)
        self._lock = asyncio.Lock()

    # -- wiring --------------------------------------------------------------------
    def attach(self, frontline: FrontLine | None = None) -> None:
        """Take message-summary SUBSCRIBEs from the front door; listen for new messages."""
        self.sip.claim("SUBSCRIBE", self.notifier.wants, self._on_subscribe)
        if frontline is not None:
            frontline.voicemail_listeners.append(self.on_voicemail)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def summary(self, box: str, new: int, old: int) -> MessageSummary:
        return MessageSummary(f"sip:{box}@{self.realm}", new, old)

    # -- SUBSCRIBE -----------------------------------------------------------------
    def _on_subscribe(self, server: SipServer, key: Key, req: Request, source: Addr) -> None:
        now = self._now()
        n = self.notifier
        if req.to.tag is not None:
            sub = n.find(req)
            if sub is None:  # e.g. a refresh after our restart: subscribe again
                server.respond(key, make_response(req, 481, to_tag=_tag(req)))
                return
            self._run(key, n.refresh(sub, req, source, now))
            return
        bad = n.check_new(req)
        if bad is not None:
            server.respond(key, bad.response)
            return
        res = self.auth.check(req, source.host, self.wallclock())
        if res.outcome is not AuthOutcome.OK:
            resp = res.response
            assert resp is not None  # sip.auth: every outcome but OK carries its response
            if res.outcome is AuthOutcome.FAILED:
                server.counters["auth_failures"] += 1
                server.guard.auth_failed(source.host, now, res.user, "SUBSCRIBE")
            elif res.outcome is not AuthOutcome.MALFORMED:
                server.counters["auth_challenges"] += 1
            log.debug(
                "MWI: SUBSCRIBE %s from %s:%d: %s -> %d",
                req.uri,
                source.host,
                source.port,
                res.outcome.value,
                resp.status,
            )
            server.respond(key, _with_to_tag(resp, req))
            return
        user = res.user or ""
        if req.from_.uri.user != user:
            server.guard.auth_failed(source.host, now, user, "SUBSCRIBE")
            server.respond(
                key, make_response(req, 403, "Forbidden - From is not the authenticated user", to_tag=_tag(req))
            )
            return
        server.guard.auth_ok(source.host)
        self._spawn(self._accept(key, req, source, user))

    async def _accept(self, key: Key, req: Request, source: Addr, user: str) -> None:
        try:
            target = req.uri.user or ""
            if target == V.ACCESS_NUMBER:  # phones that subscribe to the voicemail code
                target = user
            box = await mailbox_for(self.db, target)
            if box is None:
                self.sip.respond(key, make_response(req, 404, "Not Found - no such mailbox", to_tag=_tag(req)))
                return
            if not owns(user, box):
                log.info("MWI: %s may not watch mailbox %s", user, box["box"])
                self.sip.respond(key, make_response(req, 403, "Forbidden - not your mailbox", to_tag=_tag(req)))
                return
            async with self._lock:
                new, old = await mailbox_counts(self.db, box["box"])
                local = self.sip.local_address(source.transport, source.host)
                actions = self.notifier.accept(
                    req,
                    source,
                    self._now(),
                    box=box["box"],
                    summary=self.summary(box["box"], new, old),
                    local=local,
                    user=user,
                )
        except Exception:
            log.exception("MWI: cannot read mailbox for %s", req.uri)
            self.sip.respond(key, make_response(req, 500, to_tag=_tag(req)))
            return
        self._run(key, actions)
        sub = next((a for a in actions if type(a) is SendNotify), None)
        if sub is not None and sub.sub_id in self.notifier.by_id:
            s: Subscription = self.notifier.by_id[sub.sub_id]
            log.info(
                "MWI: %s subscribed to mailbox %s from %s:%s:%d for %ds (new %d, old %d)",
                user,
                s.box,
                source.transport,
                source.host,
                source.port,
                s.expires_in(self._now()),
                new,
                old,
            )
        self._wake.set()

    # -- actions -------------------------------------------------------------------
    def _run(self, key: Key | None, actions: Sequence[SubscriptionAction]) -> None:
        for act in actions:
            if type(act) is Respond:
                if key is not None:  # a Respond answers a request: only from accept / refresh
                    self.sip.respond(key, act.response)
            elif type(act) is SendNotify:
                self._send(act)
            elif type(act) is Ended:
                log.info("MWI: subscription %d to mailbox %s ended (%s)", act.sub_id, act.box, act.reason)
        self._wake.set()

    def _send(self, act: SendNotify) -> None:
        branch = act.branch

        def on_event(ev: object) -> None:
            if type(ev) is ResponseReceived:
                status = ev.response.status
                if status < 200:
                    return
            else:  # Timeout / TransportError
                status = None
            self._run(None, self.notifier.on_notify_result(branch, status, self._now()))

        self.sip.send_own(act.request, act.dest, on_event)

    # -- changes -------------------------------------------------------------------
    async def on_voicemail(self, box: str, meta: Mapping[str, object]) -> None:
        """FrontLine listener: a message was filed in ``box``."""
        await self.recount(box)

    async def voicemail_left(self, ev: VoicemailLeft) -> None:
        """Durable subscriber of the event stream's ``voicemail left`` (pypbx.events)."""
        await self.recount(ev.box)

    async def recount(self, box: str) -> None:
        async with self._lock:
            if box not in self.notifier.boxes():
                return
            new, old = await mailbox_counts(self.db, box)
            actions = self.notifier.update(box, self.summary(box, new, old), self._now())
        self._run(None, actions)

    async def db_changed(self, change: DbChanged | None = None) -> None:
        """The database moved (the CLI, or this process): re-read the subscribed boxes."""
        if self.notifier.subs:
            for box in sorted(self.notifier.boxes()):
                await self.recount(box)

    async def run(self, stop: asyncio.Event) -> None:
        """Expiry of subscriptions and the database watch, until ``stop``."""
        next_poll = 0.0
        while not stop.is_set():
            now = self._now()
            self._run(None, self.notifier.tick(now))
            if self._own_watch is None:
                next_poll = now + 3600.0  # the app's change watcher calls db_changed
            elif now >= next_poll:
                next_poll = now + POLL_INTERVAL
                try:
                    await self._own_watch.check()
                except Exception:
                    log.exception("MWI: re-reading mailbox counts failed")
            self._wake.clear()
            wait = next_poll - self._now()
            deadline = self.notifier.next_deadline()
            if deadline is not None:
                wait = min(wait, deadline - self._now())
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    # -- status --------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        return {"subscriptions": self.notifier.status(self._now()), "counters": dict(self.notifier.counters)}
