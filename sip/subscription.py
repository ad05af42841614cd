"""Sans-I/O notifier for ``Event: message-summary`` subscriptions (MWI).

RFC 6665 (SIP-specific event notification, obsoletes RFC 3265) with the
message-summary event package of RFC 3842. Nothing here touches sockets, clocks or
the database: the caller (``pypbx/mwi.py``) authenticates the SUBSCRIBE, decides which
mailbox it names, counts the messages, and feeds this module requests and ``now``
(monotonic seconds); it gets back actions to perform and a deadline for ``tick``.

Entry points::

    Notifier.check_new(request)                        # pre-checks of an initial SUBSCRIBE
    Notifier.find(request)                             # the subscription an in-dialog request belongs to
    Notifier.accept(request, source, now, box=, summary=, local=)   # create the dialog
    Notifier.refresh(sub, request, source, now)        # in-dialog SUBSCRIBE (refresh / unsubscribe)
    Notifier.update(box, summary, now)                 # the mailbox's counts changed
    Notifier.on_notify_result(branch, status, now)     # final response / timeout (status None) of a NOTIFY
    Notifier.tick(now) / next_deadline()               # expiry

Actions (frozen dataclasses)::

    Respond(response)                 answer the SUBSCRIBE being handled
    SendNotify(sub_id, request, dest) start a non-INVITE client transaction for the NOTIFY
    Ended(sub_id, box, reason)        the subscription is gone (for logs / status)

Behaviour:

* Event package (RFC 6665 §8.2.1 / §4.2.1.1): anything but ``message-summary`` -> 489
  Bad Event with ``Allow-Events: message-summary`` (§8.2.2). The ``id`` parameter is
  echoed in every NOTIFY's Event header (§8.2.1, §4.4.1).
* Accept (RFC 6665 §4.2.1.1, RFC 3842 §4): an Accept header that does not admit
  ``application/simple-message-summary`` (nor ``application/*`` / ``*/*``) -> 406.
* Expires (RFC 6665 §4.2.1.1): absent -> ``default``; below ``minimum`` (and not 0) -> 423
  Interval Too Brief with Min-Expires (§4.2.1.1, §8.3.1); above ``maximum`` -> lowered;
  the 200 carries the granted value in Expires (§4.2.1.1).
* An initial SUBSCRIBE with ``Expires: 0`` is a fetch (§4.2.1.1, §4.4.3): 200, one NOTIFY
  with ``Subscription-State: terminated;reason=timeout``, nothing kept.
* Dialog (RFC 6665 §4.2.1, RFC 3261 §12.1.1): our To tag (random, 96 bits), the
  subscriber's From tag and Call-ID; remote target = the Contact of the SUBSCRIBE, route
  set = its Record-Route headers in order; our local CSeq starts at 1 and goes up by one
  per NOTIFY (§12.2.1.1); a request whose CSeq is not above the last one -> 500 (§12.2.2).
* NOTIFY (RFC 6665 §4.2.2, §8.2.3; RFC 3261 §12.2.1.1): Request-URI = remote target,
  Route = route set, From = the SUBSCRIBE's To with our tag, To = its From, Contact =
  ours, ``Event``, ``Subscription-State: active;expires=N`` (seconds left, §4.2.2 / §8.2.3),
  ``Content-Type: application/simple-message-summary`` and the RFC 3842 §5.2 body.
  It goes to ``dest``: the address the SUBSCRIBE really came from (NAT: the flow the
  phone opened; over TCP/TLS the connection), not the Contact host.
* A NOTIFY follows every accepted SUBSCRIBE, refreshes included (§4.2.1.2), and every
  change of the counts (§4.2.2). Unchanged counts send nothing.
* Refresh (§4.2.1.2): new expiry, remote target refreshed from Contact (§4.1.2.1),
  destination refreshed from the source. ``Expires: 0`` (§4.2.1.4) -> 200, a final NOTIFY
  ``Subscription-State: terminated`` and the subscription is removed.
* Expiry (§4.2.2, §4.4.3): when a subscription runs out, a final NOTIFY
  ``terminated;reason=timeout`` is sent and it is removed.
* NOTIFY failures (RFC 6665 §4.2.2; RFC 5057 §5.1): a 481, a transaction timeout /
  transport error, or another dialog-destroying status (404, 410, 416, 480-485, 489, 501,
  604) ends the subscription at once, without another NOTIFY. 401/407 and other errors
  leave it alone (the next change or refresh tries again).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sip.message import (
    URI,
    Headers,
    Method,
    NameAddr,
    Request,
    Response,
    SipParseError,
    make_response,
)
from sip.transaction import Addr, new_branch

__all__ = [
    "CONTENT_TYPE",
    "EVENT",
    "Ended",
    "ExpiresPolicy",
    "MessageSummary",
    "Notifier",
    "Respond",
    "SendNotify",
    "SubState",
    "Subscription",
    "event_package",
]

#: RFC 3842 §3: the event package name and its body type (§5).
EVENT = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
#: RFC 5057 §5.1 / RFC 6665 §4.2.2: NOTIFY responses that destroy the subscription.
DIALOG_DESTROYING = frozenset((404, 408, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604))


class SubState(enum.StrEnum):
    """RFC 6665 §4.1.3 / §8.2.3 Subscription-State values we send."""

    ACTIVE = "active"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class ExpiresPolicy:
    """Subscription durations in seconds (RFC 6665 §4.2.1.1)."""

    minimum: int = 60
    maximum: int = 3600
    default: int = 3600

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.default <= self.maximum:
            raise ValueError("need 1 <= minimum <= default <= maximum")


@dataclass(frozen=True)
class MessageSummary:
    """One mailbox's state as RFC 3842 §5.2 describes it (voice messages only)."""

    account: str  # sip:BOX@realm (Message-Account, §5.2)
    new: int = 0
    old: int = 0

    @property
    def waiting(self) -> bool:
        return self.new > 0

    def body(self) -> bytes:
        # RFC 3842 §5.2: msg-status-line, msg-account, then "Voice-Message: new/old
        # (urgent_new/urgent_old)"; we have no urgent messages.
        return (
            f"Messages-Waiting: {'yes' if self.waiting else 'no'}\r\n"
            f"Message-Account: {self.account}\r\n"
            f"Voice-Message: {self.new}/{self.old} (0/0)\r\n"
        ).encode()


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Respond:
    response: Response


@dataclass(frozen=True, slots=True)
class SendNotify:
    sub_id: int
    request: Request
    dest: Addr

    @property
    def branch(self) -> str:
        return self.request.top_via.branch or ""


@dataclass(frozen=True, slots=True)
class Ended:
    sub_id: int
    box: str
    reason: str


Action = Respond | SendNotify | Ended


# --------------------------------------------------------------------------- state


class Subscription:
    """One subscription dialog (RFC 6665 §4.1.2 / RFC 3261 §12). Mutable, owned by the
    :class:`Notifier`."""

    __slots__ = (
        "box",
        "call_id",
        "dest",
        "event_id",
        "expires_at",
        "id",
        "local",
        "local_cseq",
        "local_tag",
        "local_uri",
        "remote_cseq",
        "remote_tag",
        "remote_target",
        "remote_uri",
        "route_set",
        "sent",
        "state",
        "summary",
        "user",
    )

    def __init__(
        self,
        sub_id: int,
        box: str,
        user: str | None,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        remote_target: URI,
        route_set: list[str],
        dest: Addr,
        local: tuple[str, int],
        event_id: str | None,
        expires_at: float,
        remote_cseq: int,
        summary: MessageSummary,
    ) -> None:
        self.id = sub_id
        self.box = box
        self.user = user  # the authenticated subscriber
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri  # the SUBSCRIBE's To (without tag): our From
        self.remote_uri = remote_uri  # the SUBSCRIBE's From (without tag): our To
        self.remote_target = remote_target
        self.route_set = route_set
        self.dest = dest
        self.local = local  # our (host, port) as the subscriber sees it
        self.event_id = event_id
        self.expires_at = expires_at
        self.local_cseq = 0
        self.remote_cseq = remote_cseq
        self.summary = summary  # what the subscriber should know
        self.sent: MessageSummary | None = None  # what the last NOTIFY said
        self.state = SubState.ACTIVE

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Subscription {self.id} box={self.box} {self.state.value} call-id={self.call_id}>"


def event_package(req: Request) -> tuple[str | None, str | None]:
    """(package, id parameter) of the Event header (RFC 6665 §8.2.1; ``o`` is its compact
    form, handled by the parser); (None, None) when absent."""
    v = req.headers.get("Event")
    if v is None:
        return None, None
    parts = [p.strip() for p in v.split(";")]
    ev_id = None
    for p in parts[1:]:
        name, _, val = p.partition("=")
        if name.strip().lower() == "id":
            ev_id = val.strip().strip('"')
    return parts[0].lower() or None, ev_id


def _accepts_summary(req: Request) -> bool:
    accept = req.headers.get_all("Accept")
    if not accept:
        return True  # RFC 6665 §4.2.1.1: absent = the package's default
    for item in accept:
        t = item.split(";", 1)[0].strip().lower()
        if t in (CONTENT_TYPE, "application/*", "*/*"):
            return True
    return False


def _without_tag(na: NameAddr) -> str:
    return str(NameAddr(na.display, na.uri, tuple(p for p in na.params if p[0].lower() != "tag")))


# --------------------------------------------------------------------------- notifier


class Notifier:
    def __init__(
        self, *, policy: ExpiresPolicy = ExpiresPolicy(), user_agent: str = "pypbx", max_subscriptions: int = 10_000
    ) -> None:
        self.policy = policy
        self.user_agent = user_agent
        self.max_subscriptions = max_subscriptions
        self.subs: dict[tuple[str, str, str], Subscription] = {}
        self.by_id: dict[int, Subscription] = {}
        self._pending: dict[str, int] = {}  # NOTIFY branch -> subscription id
        self._next_id = 1
        self.counters = {
            "subscribes": 0,
            "refreshes": 0,
            "unsubscribes": 0,
            "fetches": 0,
            "expired": 0,
            "notifies": 0,
            "notify_failures": 0,
            "rejected": 0,
        }

    # ------------------------------------------------------------------ helpers
    def _reply(
        self,
        req: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Respond:
        hdrs = list(headers)
        if self.user_agent:
            hdrs.append(("Server", self.user_agent))
        if status >= 300:
            self.counters["rejected"] += 1
        return Respond(make_response(req, status, reason, to_tag=to_tag or os.urandom(6).hex(), headers=hdrs))

    def _granted(self, req: Request) -> int | None:
        """Granted duration; None when too brief (423). §4.2.1.1."""
        exp = req.expires
        p = self.policy
        if exp is None:
            return p.default
        if exp == 0:
            return 0
        if exp < p.minimum:
            return None
        return min(exp, p.maximum)

    @staticmethod
    def _contact(sub_or_box: str, local: tuple[str, int], transport: str) -> str:
        host, port = local
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        t = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{sub_or_box}@{host}:{port}{t}>"

    def find(self, req: Request) -> Subscription | None:
        """The subscription an in-dialog request (To tag = ours) belongs to."""
        try:
            to_tag, from_tag = req.to.tag, req.from_.tag
            call_id = req.call_id
        except SipParseError:
            return None
        if to_tag is None or from_tag is None:
            return None
        return self.subs.get((call_id, to_tag, from_tag))

    def wants(self, req: Request) -> bool:
        """Whether a SUBSCRIBE is ours: the message-summary package, or one of our dialogs."""
        pkg, _ = event_package(req)
        return pkg == EVENT or self.find(req) is not None

    # ------------------------------------------------------------------ initial SUBSCRIBE
    def check_new(self, req: Request) -> Respond | None:
        """Checks of an initial SUBSCRIBE that need no authentication and no mailbox:
        489 / 406 / 423 / 400 / 503, or None when it may go on."""
        pkg, _ = event_package(req)
        if pkg != EVENT:
            # RFC 6665 §4.2.1.1, §8.2.2: unknown package -> 489 with Allow-Events
            return self._reply(req, 489, "Bad Event", headers=[("Allow-Events", EVENT)])
        if not _accepts_summary(req):
            return self._reply(req, 406, "Not Acceptable", headers=[("Accept", CONTENT_TYPE)])
        if self._granted(req) is None:
            return self._reply(req, 423, "Interval Too Brief", headers=[("Min-Expires", str(self.policy.minimum))])
        try:
            contacts = req.contacts
            from_tag = req.from_.tag
        except SipParseError as exc:
            return self._reply(req, 400, exc.reason)
        if not isinstance(contacts, list) or len(contacts) != 1 or not contacts[0].uri.is_sip:
            # RFC 6665 §4.1.2.1 / RFC 3261 §12.1.2: the SUBSCRIBE's Contact is the remote target
            return self._reply(req, 400, "Bad Request - SUBSCRIBE needs one SIP Contact")
        if from_tag is None:
            return self._reply(req, 400, "Bad Request - From tag missing")
        if len(self.subs) >= self.max_subscriptions:
            return self._reply(
                req, 503, "Service Unavailable - too many subscriptions", headers=[("Retry-After", "60")]
            )
        return None

    def accept(
        self,
        req: Request,
        source: Addr,
        now: float,
        *,
        box: str,
        summary: MessageSummary,
        local: tuple[str, int],
        user: str | None = None,
    ) -> list[Action]:
        """Accept an initial SUBSCRIBE that passed :meth:`check_new`, authentication and the
        mailbox check: 200 with our To tag, Expires and Contact, then the first NOTIFY."""
        bad = self.check_new(req)
        if bad is not None:
            return [bad]
        granted = self._granted(req)
        assert granted is not None
        _, ev_id = event_package(req)
        tag = os.urandom(12).hex()  # our To tag: 96 random bits (also the dialog's guard)
        try:
            route_set = [str(r) for r in req.record_routes]  # RFC 3261 §12.1.1: in order
        except SipParseError:
            return [self._reply(req, 400, "Bad Request - bad Record-Route")]
        contacts = req.contacts
        assert isinstance(contacts, list)
        sub = Subscription(
            self._next_id,
            box,
            user,
            req.call_id,
            tag,
            req.from_.tag or "",
            _without_tag(req.to),
            _without_tag(req.from_),
            contacts[0].uri,
            route_set,
            source,
            local,
            ev_id,
            now + granted,
            req.cseq[0],
            summary,
        )
        self._next_id += 1
        contact = self._contact(box, local, source.transport)
        hdrs = [("Expires", str(granted)), ("Contact", contact)]
        hdrs += [("Record-Route", r) for r in req.headers.get_all("Record-Route")]
        ok = self._reply(req, 200, to_tag=tag, headers=hdrs)
        if granted == 0:
            # RFC 6665 §4.4.3: a fetch: the state once, then terminated
            self.counters["fetches"] += 1
            sub.state = SubState.TERMINATED
            return [ok, self._notify(sub, now, reason="timeout")]
        self.counters["subscribes"] += 1
        self.subs[sub.key] = sub
        self.by_id[sub.id] = sub
        return [ok, self._notify(sub, now)]

    # ------------------------------------------------------------------ in-dialog SUBSCRIBE
    def refresh(self, sub: Subscription, req: Request, source: Addr, now: float) -> list[Action]:
        """Refresh or (``Expires: 0``) end a subscription, RFC 6665 §4.2.1.2 / §4.2.1.4."""
        try:
            cseq = req.cseq[0]
            contacts = req.contacts
        except SipParseError as exc:
            return [self._reply(req, 400, exc.reason)]
        if cseq <= sub.remote_cseq:
            # RFC 3261 §12.2.2: lower CSeq than the last in-dialog request -> 500
            return [self._reply(req, 500, "Server Internal Error - CSeq out of order")]
        sub.remote_cseq = cseq
        pkg, _ = event_package(req)
        if pkg != EVENT:
            return [self._reply(req, 489, "Bad Event", headers=[("Allow-Events", EVENT)])]
        granted = self._granted(req)
        if granted is None:
            return [self._reply(req, 423, "Interval Too Brief", headers=[("Min-Expires", str(self.policy.minimum))])]
        if isinstance(contacts, list) and contacts and contacts[0].uri.is_sip:
            sub.remote_target = contacts[0].uri  # §4.1.2.1: SUBSCRIBE is a target refresh
        sub.dest = source
        ok = self._reply(
            req,
            200,
            headers=[("Expires", str(granted)), ("Contact", self._contact(sub.box, sub.local, source.transport))],
        )
        if granted == 0:
            self.counters["unsubscribes"] += 1
            actions: list[Action] = [ok, self._notify(sub, now, reason="")]
            actions += self._remove(sub, "unsubscribed")
            return actions
        self.counters["refreshes"] += 1
        sub.expires_at = now + granted
        return [ok, self._notify(sub, now)]

    # ------------------------------------------------------------------ NOTIFY
    def _notify(self, sub: Subscription, now: float, reason: str | None = None) -> SendNotify:
        """Build the next NOTIFY of ``sub`` (RFC 3261 §12.2.1.1, RFC 6665 §4.2.2 / §8.2.3).
        ``reason`` None: active; otherwise terminated (with ``;reason=`` when non-empty)."""
        sub.local_cseq += 1
        if reason is None:
            state = f"{SubState.ACTIVE.value};expires={sub.expires_in(now)}"
        else:
            sub.state = SubState.TERMINATED
            state = SubState.TERMINATED.value + (f";reason={reason}" if reason else "")
        host, port = sub.local
        vhost = f"[{host}]" if ":" in host and not host.startswith("[") else host
        branch = new_branch()
        event = EVENT + (f";id={sub.event_id}" if sub.event_id else "")
        uri = sub.remote_target
        hdrs: list[tuple[str, str]] = [
            ("Via", f"SIP/2.0/{sub.dest.transport} {vhost}:{port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{sub.local_uri};tag={sub.local_tag}"),
            ("To", f"{sub.remote_uri};tag={sub.remote_tag}"),
            ("Call-ID", sub.call_id),
            ("CSeq", f"{sub.local_cseq} NOTIFY"),
            ("Contact", self._contact(sub.box, sub.local, sub.dest.transport)),
        ]
        # RFC 3261 §12.2.1.1: loose routing (first route has lr) -> Route = route set and the
        # Request-URI stays the remote target; strict routing -> Request-URI = first route
        routes = list(sub.route_set)
        if routes:
            first = NameAddr.parse(routes[0]).uri
            if not first.has_param("lr"):
                routes = [*routes[1:], f"<{uri}>"]
                uri = first
        hdrs += [("Route", r) for r in routes]
        hdrs += [("Event", event), ("Subscription-State", state)]
        if self.user_agent:
            hdrs.append(("User-Agent", self.user_agent))
        hdrs.append(("Content-Type", CONTENT_TYPE))
        req = Request(Method.NOTIFY, uri, Headers(hdrs), sub.summary.body())
        sub.sent = sub.summary
        self._pending[branch] = sub.id
        self.counters["notifies"] += 1
        return SendNotify(sub.id, req, sub.dest)

    def update(self, box: str, summary: MessageSummary, now: float) -> list[Action]:
        """A mailbox's counts: a NOTIFY to each of its subscribers that was told otherwise."""
        out: list[Action] = []
        for sub in list(self.subs.values()):
            if sub.box != box:
                continue
            sub.summary = summary
            if sub.sent != summary and sub.state is SubState.ACTIVE and sub.expires_at > now:
                out.append(self._notify(sub, now))
        return out

    def on_notify_result(self, branch: str, status: int | None, now: float) -> list[Action]:
        """The final response (``status``) or timeout / transport error (``None``) of one of
        our NOTIFYs. RFC 6665 §4.2.2: a failure that destroys the dialog ends it."""
        sub_id = self._pending.pop(branch, None)
        if sub_id is None:
            return []
        sub = self.by_id.get(sub_id)
        if sub is None or (status is not None and status < 300):
            return []
        if status is None or status in DIALOG_DESTROYING:
            self.counters["notify_failures"] += 1
            return self._remove(sub, "no answer to NOTIFY" if status is None else f"NOTIFY answered {status}")
        return []

    def forget_pending(self, branch: str) -> None:
        self._pending.pop(branch, None)

    def _remove(self, sub: Subscription, reason: str) -> list[Action]:
        sub.state = SubState.TERMINATED
        self.subs.pop(sub.key, None)
        self.by_id.pop(sub.id, None)
        return [Ended(sub.id, sub.box, reason)]

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        return min((s.expires_at for s in self.subs.values()), default=None)

    def tick(self, now: float) -> list[Action]:
        """Expired subscriptions: final NOTIFY ``terminated;reason=timeout`` (§4.2.2, §4.4.3)."""
        out: list[Action] = []
        for sub in [s for s in self.subs.values() if s.expires_at <= now]:
            self.counters["expired"] += 1
            out.append(self._notify(sub, now, reason="timeout"))
            out += self._remove(sub, "expired")
        return out

    # ------------------------------------------------------------------ status
    def boxes(self) -> set[str]:
        return {s.box for s in self.subs.values()}

    def status(self, now: float) -> list[dict[str, Any]]:
        return [
            {
                "id": s.id,
                "box": s.box,
                "user": s.user,
                "expires_in": s.expires_in(now),
                "dest": f"{s.dest.transport}:{s.dest.host}:{s.dest.port}",
                "new": s.summary.new,
                "old": s.summary.old,
                "notifies": s.local_cseq,
            }
            for s in sorted(self.subs.values(), key=lambda s: s.id)
        ]
