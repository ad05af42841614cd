"""Sans-I/O stateful forking proxy (RFC 3261 §16) with digest proxy-authentication.

Nothing here touches sockets or clocks: the server (``sip/server.py``) feeds the proxy
what the transaction layer reports and performs the actions it returns.

Inputs (each returns a list of actions)::

    on_request(key, request, source, now, wallclock=None)  # RequestReceived for a proxied method
    on_response(client_key, response, now)                  # ResponseReceived
    on_timeout(client_key, now)                             # Timeout / TransportError of a client txn
    on_cancel(invite_key, to_tag, now)                      # CancelReceived (txn layer answered 200)
    on_ack(request, source, now)                            # AckReceived (ACK for 2xx, end-to-end)
    on_stray_response(response, now)                        # 2xx retransmission after our txn is gone
    on_terminated(key)                                      # TransactionTerminated (cleanup)
    tick(now) / next_deadline()                             # ring timeouts
    end_dialogs_with(addr_predicate, now, reason)           # a party died: BYE the others

Actions (frozen dataclasses)::

    Respond(key, response)         answer the server transaction ``key``
    SendRequest(request, dest)     start a client transaction (its key is
                                   ``ClientKey(request.top_via.branch, request.method)``)
    SendStateless(message, dest)   send outside any transaction (ACK for 2xx, stray 2xx)
    AuthFailed(ip, user, method)   feed the abuse guard
    AuthOk(ip)

Trunks: ``admit(request, source)`` screens out-of-dialog requests from untrusted sources
before authentication (True: a trunk peer, not challenged; a RouteDecision: rejected at
once). ``X-PBX-*`` headers from untrusted sources are removed; a forking RouteDecision's
``headers`` are added to the forwarded request, replacing those of the same name (how
the front door tells a media worker which trunk and DID a call came in on); an empty
value only removes the header (the PBX's own headers never reach a provider).

Routing is a seam: ``route(request, source, authenticated_user) -> RouteDecision`` decides,
for a request that is *not* inside a dialog, which targets to fork to (``(uri, Addr)``
pairs; the Request-URI of each branch becomes ``uri`` exactly) or which status to reject
it with. :class:`ExtensionRouter` is the PBX's default policy (extension number ->
all registered contacts; 404 unknown; 480 no registration). The B2BUA/media-worker
routing replaces it without touching the proxy.

Behaviour (RFC 3261 §16):

* Max-Forwards 0 -> 483; otherwise decremented (70 when absent). Proxy-Require -> 420.
* Route pre-processing (§16.4): a Request-URI we put in a Record-Route (strict-routing
  peer) is replaced by the last Route; every Route naming us at the top is removed.
* An in-dialog request for a dialog the proxy does not track and that ``dialog_gone``
  says no longer exists where it is going (the PBX restarted: its media workers have no
  such call) gets 481 Call/Transaction Does Not Exist, not silence.
* Requests with a To tag (in a dialog) must have come through a Record-Route we added:
  the Record-Route URI carries ``pbx=<HMAC(secret, Call-ID)>`` and only a request whose
  popped Route carries a valid token (or that comes from a trusted source) is forwarded
  along the remaining Route set / Request-URI; others get 403 (no open relay). They
  are not authenticated again (hop-by-hop trust in the route token).
* Out-of-dialog requests from untrusted sources without credentials are challenged
  statelessly (:meth:`Proxy.stateless_challenge`, called by the server before any
  transaction exists): no server transaction, no 407 retransmissions, nothing kept.
* Out-of-dialog requests from untrusted sources are authenticated with a 407 challenge
  (:class:`sip.auth.ProxyAuthenticator`, same nonces/credentials as the registrar); the
  From user must be the authenticated user (403). Leftover Route headers of
  out-of-dialog requests are dropped: only the policy decides where they go.
  ``Proxy-Authorization`` values for our realm are consumed; values for other realms
  (a provider's, on a media worker's trunk leg that answers its 407) pass untouched
  (§22.3), and the provider's 401/407 is relayed upstream like any final response.
* Each branch gets our Via (fresh branch ``z9hG4bKpx...``, ``rport``); dialog-creating
  requests (INVITE, SUBSCRIBE, REFER, NOTIFY) get a Record-Route ``;lr`` — two of them
  (RFC 5658) when the request leaves on another transport/address than it came in on.
* Responses: our Via removed; 100 absorbed; other provisionals forwarded while no final
  response has gone upstream; every 2xx to INVITE forwarded (first one wins, later ones
  too, §16.7 step 5); after a 2xx or a 6xx the other pending INVITE branches get CANCEL
  (sent once the branch has had a provisional response, §9.1); otherwise, once every
  branch is final, the best response is sent (§16.7 step 6: 6xx, else the lowest class,
  a specific status preferred over 408/480/487; 503 becomes 500).
* A 2xx arriving after a non-2xx final went upstream (a race with CANCEL or the ring
  timeout) is ACKed and the callee gets a BYE, so no half-call stays up.
* CANCEL from upstream: 487 upstream at once, CANCEL every pending branch.
* Ring timeout (per request; ``RouteDecision.ring_timeout`` or the proxy default) on
  INVITE: pending branches are cancelled and count as ``no_answer`` (408 by default).
* Transaction timeout / transport error of a branch counts as 408 / 503.
* ACK for 2xx: forwarded statelessly along the Route set (new Via). A 2xx to an initial
  INVITE whose ACK has not come through ``ack_timeout`` (30 s, just inside Timer H) after it was
  forwarded gives an :class:`AckMissing` action (the caller is gone or broken); the server
  lets the PBX end the call (or BYEs both sides with :meth:`Proxy.end_dialog`).
* Remote targets (Contact of requests and of 1xx/2xx responses) are remembered with the
  address they really came from / were sent to (``flows``), so in-dialog requests reach
  phones behind NAT through the pinhole their registration opened.

Dialogs (so the front door can end calls whose other party died, e.g. a media worker
killed mid-call):

* Every 2xx to an initial INVITE that is forwarded upstream creates a :class:`Dialog`
  (Call-ID, both tags, both parties' From/To values, remote targets, the flows they
  really use, each side's route set as that side sees it, the last CSeq each side sent,
  whether each side is a trusted address). In-dialog requests update the sender's CSeq
  (and remote target / flow on a target refresh); a 2xx to a re-INVITE updates the
  answerer's. A BYE's 2xx, a 481 to anything, or ``BYE_LINGER`` seconds after a BYE
  with no 2xx forget the dialog; so do ``dialog_idle`` seconds without any traffic, and
  the least recently active dialog goes when more than ``max_dialogs`` are tracked.
* :meth:`Proxy.end_dialogs_with` takes a predicate over a side's address: for every
  dialog one side of which matches, the other side gets an in-dialog BYE built as the
  dead side would have sent it (RFC 3261 §15.1.1: Request-URI = the live side's remote
  target, Route = what is left of the dead side's route set beyond our own entries,
  From/To with the dead / live tags, CSeq = dead side's last + 1) with a ``Reason:
  Q.850;cause=41`` header (RFC 3326), sent to the live side's flow; the dialog is
  forgotten and the responses to these BYEs are absorbed. INVITEs still ringing through
  the dead party are ended too: branches towards it count as a transport error (the
  caller gets the best final response, 500 if none), and INVITEs from it have their
  branches cancelled.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sip.auth import ProxyAuthenticator
from sip.location import Binding, ContactKey, LocationService, contact_key
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
from sip.registrar import AuthOutcome
from sip.transaction import Addr, ClientKey, Key

__all__ = [
    "BRANCH_PREFIX",
    "Action",
    "AuthFailed",
    "AuthOk",
    "Dialog",
    "DialogSide",
    "ExtensionRouter",
    "Proxy",
    "Respond",
    "RouteDecision",
    "RoutePolicy",
    "SendRequest",
    "SendStateless",
    "binding_addr",
]

BRANCH_PREFIX = "z9hG4bKpx"
#: Methods that create a dialog and therefore get a Record-Route.
DIALOG_CREATING = frozenset((Method.INVITE, Method.SUBSCRIBE, Method.REFER, Method.NOTIFY))
_FLOWS_MAX = 50_000
#: Dialog bookkeeping: forget a dialog this long after a BYE that got no 2xx (Timer F),
#: after this long without any traffic, and never keep more than this many.
BYE_LINGER = 32.0
DIALOG_IDLE = 12 * 3600.0
DIALOGS_MAX = 20_000
#: A 2xx to an INVITE forwarded to the caller and still not ACKed after this long means the
#: caller is gone (RFC 3261 §13.3.1.4: the UAS gives up at 64*T1 = 32 s, Timer H). The
#: proxy acts 2 s before the answering UA's own Timer H, so the PBX books the call itself
#: ("no ACK") before a media worker's BYE would end it as an ordinary hang-up.
ACK_TIMEOUT = 30.0


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Respond:
    key: Key
    response: Response


@dataclass(frozen=True, slots=True)
class SendRequest:
    request: Request
    dest: Addr

    @property
    def key(self) -> ClientKey:
        return ClientKey(self.request.top_via.branch or "", self.request.method)


@dataclass(frozen=True, slots=True)
class SendStateless:
    message: Request | Response
    dest: Addr


@dataclass(frozen=True, slots=True)
class AuthFailed:
    ip: str
    user: str | None
    method: str


@dataclass(frozen=True, slots=True)
class AuthOk:
    ip: str


@dataclass(frozen=True, slots=True)
class AckMissing:
    """The caller of a dialog never ACKed the 2xx forwarded to it (Timer H): the dialog
    stays tracked; whoever runs the actions ends the call (``Proxy.end_dialog`` BYEs both
    sides)."""

    call_id: str
    caller_tag: str
    callee_tag: str
    caller: Addr
    callee: Addr


Action = Respond | SendRequest | SendStateless | AuthFailed | AuthOk | AckMissing


# --------------------------------------------------------------------------- routing seam


@dataclass(frozen=True)
class RouteDecision:
    """Where an out-of-dialog request goes: fork to ``targets`` or reject with ``status``."""

    targets: tuple[tuple[str, Addr], ...] = ()
    status: int | None = None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    ring_timeout: float | None = None  # None: the proxy's default

    def __post_init__(self) -> None:
        if not self.targets and self.status is None:
            raise ValueError("RouteDecision needs targets or a status")

    @classmethod
    def fork(
        cls,
        targets: Iterable[tuple[str, Addr]],
        ring_timeout: float | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> RouteDecision:
        """Fork to ``targets``; ``headers`` are added to every forwarded branch (replacing
        headers of the same name), e.g. ``X-PBX-Trunk`` for a media worker."""
        return cls(targets=tuple(targets), ring_timeout=ring_timeout, headers=tuple(headers))

    @classmethod
    def reject(cls, status: int, reason: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> RouteDecision:
        return cls(status=status, reason=reason, headers=tuple(headers))


#: A tracked dialog: (Call-ID, one tag, the other tag).
DialogKey = tuple[str, str, str]

#: route(request, source, authenticated_user) -> RouteDecision
RoutePolicy = Callable[[Request, Addr, "str | None"], RouteDecision]


def binding_addr(binding: Binding) -> Addr:
    """Where requests to a registered contact go: the address and port the REGISTER came
    from (NAT), over the connection / socket it came in on (``Binding.local``)."""
    transport, host, port = binding.source
    conn_id = None
    local = binding.local or ""
    if ":" in local:
        try:
            conn_id = int(local.split(":", 1)[1])
        except ValueError:
            conn_id = None
    return Addr(transport.upper(), host, int(port), conn_id)


class ExtensionRouter:
    """Default PBX policy: Request-URI user = extension -> all its live registrations."""

    def __init__(
        self, location: LocationService, is_extension: Callable[[str], bool], clock: Callable[[], float] = time.time
    ) -> None:
        self.location = location
        self.is_extension = is_extension
        self.clock = clock

    def __call__(self, request: Request, source: Addr, user: str | None) -> RouteDecision:
        number = request.uri.user
        if not number or not self.is_extension(number):
            return RouteDecision.reject(404)
        bindings = self.location.bindings(number, self.clock())
        if not bindings:
            return RouteDecision.reject(480)
        return RouteDecision.fork((b.contact, binding_addr(b)) for b in bindings)


# --------------------------------------------------------------------------- state


class _Branch:
    __slots__ = (
        "cancel_sent",
        "cancel_wanted",
        "ctx",
        "dest",
        "done",
        "final",
        "key",
        "provisional",
        "request",
        "status",
    )

    def __init__(self, ctx: _Context, key: ClientKey, request: Request, dest: Addr) -> None:
        self.ctx = ctx
        self.key = key
        self.request = request
        self.dest = dest
        self.final = False  # counts as finished for the response context
        self.done = False  # a final response really arrived from downstream
        self.status = 0
        self.provisional = False
        self.cancel_wanted = False
        self.cancel_sent = False


class _Context:
    __slots__ = (
        "best",
        "branches",
        "dialog",
        "final_status",
        "method",
        "request",
        "responses",
        "ring_deadline",
        "server_key",
        "source",
    )

    def __init__(self, server_key: Key, request: Request, source: Addr) -> None:
        self.dialog: DialogKey | None = None  # key of the tracked dialog of an in-dialog request
        self.server_key = server_key
        self.request = request
        self.method = request.method
        self.source = source
        self.branches: list[_Branch] = []
        self.final_status = 0  # status of the final response sent upstream
        self.responses: list[tuple[int, Response | None]] = []  # (status, Response | None) of finished branches
        self.ring_deadline: float | None = None


class DialogSide:
    """One party of a dialog the proxy forwarded, as seen by the proxy."""

    __slots__ = ("addr", "cseq", "name_addr", "route_set", "tag", "target", "trusted")

    def __init__(
        self, name_addr: str, tag: str, target: URI | None, addr: Addr, route_set: list[str], cseq: int, trusted: bool
    ) -> None:
        self.name_addr = name_addr  # its From/To header value, with its tag
        self.tag = tag
        self.target = target  # its Contact: the other side's Request-URI for it
        self.addr = addr  # the flow it really uses (source / destination)
        self.route_set = route_set  # Route values of requests it sends (§12.1)
        self.cseq = cseq  # last CSeq of a request it sent (0: none yet)
        self.trusted = trusted  # a trusted address (a media worker)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (
            f"DialogSide(tag={self.tag!r}, target={self.target}, addr={self.addr}, "
            f"cseq={self.cseq}, trusted={self.trusted})"
        )


class Dialog:
    """A dialog established through the proxy: ``caller`` sent the INVITE, ``callee``
    answered it 2xx."""

    __slots__ = ("ack_deadline", "bye_deadline", "call_id", "callee", "caller", "created", "last_seen")

    def __init__(self, call_id: str, caller: DialogSide, callee: DialogSide, now: float) -> None:
        self.call_id = call_id
        self.caller = caller
        self.callee = callee
        self.created = now
        self.last_seen = now
        self.bye_deadline: float | None = None
        self.ack_deadline: float | None = None  # the 2xx not ACKed yet: when Timer H fires

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.caller.tag, self.callee.tag)

    def side(self, tag: str | None) -> DialogSide | None:
        if tag == self.caller.tag:
            return self.caller
        if tag == self.callee.tag:
            return self.callee
        return None

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Dialog({self.call_id!r}, caller={self.caller!r}, callee={self.callee!r})"


def _first_contact(msg: Request | Response) -> URI | None:
    try:
        contacts = msg.contacts
    except SipParseError:
        return None
    if isinstance(contacts, list) and contacts:
        return contacts[0].uri
    return None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _strip_top_via(resp: Response) -> Response:
    vias = resp.headers.get_all("Via")
    headers = resp.headers.replace("Via", vias[1:]) if len(vias) > 1 else resp.headers.remove("Via")
    return resp.replace(headers=headers)


_WEAK = {408: 3, 480: 2, 487: 4}  # less informative finals: used only when nothing better


def _rank(status: int) -> tuple[int, int]:
    cls = status // 100
    return (0 if cls == 6 else cls, _WEAK.get(status, 0))


class Proxy:
    """The stateful forking proxy core (see the module docstring)."""

    def __init__(
        self,
        *,
        route: RoutePolicy,
        local_address: Callable[[str, str], tuple[str, int]],
        is_local: Callable[[str, int | None], bool],
        secret: bytes,
        authenticator: ProxyAuthenticator | None = None,
        trusted: Callable[[Addr], bool] | Iterable[tuple[str, int]] = (),
        ring_timeout: float = 60.0,
        no_answer: tuple[int, str] = (408, "Request Timeout"),
        user_agent: str | None = None,
        dialog_idle: float = DIALOG_IDLE,
        max_dialogs: int = DIALOGS_MAX,
        admit: Callable[[Request, Addr], bool | RouteDecision | None] | None = None,
        dialog_gone: Callable[[Request, Addr], bool] | None = None,
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        self.route = route
        #: Asked about an in-dialog request (not ACK) whose dialog this proxy does not track
        #: (e.g. a phone's BYE after a restart): True = the dialog does not exist at ``dest``
        #: either (the PBX's own media worker has no such call), so it gets 481 at once
        #: instead of being sent to a party that would not answer (RFC 3261 §12.2.2).
        self.dialog_gone = dialog_gone
        #: Timer H for the ACK of a forwarded 2xx (0: not watched)
        self.ack_timeout = ack_timeout
        self._acks: list[tuple[float, int, DialogKey]] = []  # (deadline, seq, dialog key)
        #: Pre-authentication screen for out-of-dialog requests from untrusted sources:
        #: True = a peer that is not challenged (a SIP trunk; ``route`` gets user None),
        #: a RouteDecision = reject at once (e.g. 403 for a DID reached from elsewhere),
        #: False/None = authenticate as usual.
        self.admit = admit
        self.local_address = local_address  # (transport, dest host) -> our (host, port)
        self.is_local = is_local  # (host, port) -> is it one of our addresses?
        self.secret = secret
        self.authenticator = authenticator
        if callable(trusted):
            self._trusted = trusted
        else:
            tset = {(h, int(p)) for h, p in trusted}
            self._trusted = lambda addr: (addr.host, addr.port) in tset
        self.ring_timeout = ring_timeout
        self.no_answer = no_answer
        self.user_agent = user_agent
        self._contexts: dict[Key, _Context] = {}  # server key -> _Context
        self._branches: dict[Key, _Branch] = {}  # ClientKey -> _Branch
        self._heap: list[tuple[float, int, _Context]] = []  # (deadline, seq, ctx)
        self._seq = 0
        self.flows: OrderedDict[ContactKey, Addr] = OrderedDict()  # contact_key -> Addr
        #: (Call-ID, caller tag, callee tag) -> Dialog, least recently active first
        self.dialogs: OrderedDict[DialogKey, Dialog] = OrderedDict()
        self.dialog_idle = dialog_idle
        self.max_dialogs = max_dialogs
        self._closing: dict[DialogKey, float] = {}  # dialog key -> BYE linger deadline
        self._own: dict[Key, DialogKey] = {}  # ClientKey -> dialog key of BYEs we originated
        self.counters = {
            "forwarded": 0,
            "in_dialog": 0,
            "no_ack": 0,
            "no_dialog": 0,
            "auth_challenges": 0,
            "stateless_challenges": 0,
            "auth_failures": 0,
            "rejected": 0,
            "cancelled": 0,
            "no_answer": 0,
            "dialogs": 0,
            "dialogs_ended": 0,
            "dialogs_expired": 0,
            "dialogs_evicted": 0,
        }

    # ------------------------------------------------------------------ helpers
    def is_trusted(self, source: Addr) -> bool:
        return bool(self._trusted(source))

    def token(self, call_id: str) -> str:
        return hmac.new(self.secret, call_id.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:16]

    def _route_is_ours(self, uri: URI, call_id: str) -> tuple[bool, bool]:
        """(ours, token_ok) for a Route / Request-URI."""
        tok = uri.param("pbx")
        if tok is not None:
            ok = hmac.compare_digest(tok, self.token(call_id))
            if ok or self.is_local(uri.host.strip("[]"), uri.port):
                return True, ok
            return False, False
        if uri.is_sip and uri.user is None and self.is_local(uri.host.strip("[]"), uri.port):
            return True, False
        return False, False

    def remember_flow(self, uri_text: str, addr: Addr) -> None:
        key = contact_key(uri_text)
        flows = self.flows
        flows[key] = addr
        flows.move_to_end(key)
        if len(flows) > _FLOWS_MAX:
            flows.popitem(last=False)

    def resolve(self, uri: URI) -> Addr:
        """Next-hop address of a URI: a remembered flow, else the URI's own host/port."""
        addr = self.flows.get(contact_key(str(uri)))
        if addr is not None:
            return addr
        t = uri.param("transport")
        transport = (t or ("tls" if uri.scheme == "sips" else "udp")).upper()
        port = uri.port or (5061 if transport == "TLS" else 5060)
        maddr = uri.param("maddr")
        return Addr(transport, (maddr or uri.host).strip("[]"), port)

    def _via(self, dest: Addr) -> tuple[str, str]:
        host, port = self.local_address(dest.transport, dest.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        branch = BRANCH_PREFIX + os.urandom(10).hex()
        return f"SIP/2.0/{dest.transport} {host}:{port};branch={branch};rport", branch

    def _rr_uri(self, addr: Addr, call_id: str) -> str:
        host, port = self.local_address(addr.transport, addr.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        t = "" if addr.transport == "UDP" else f";transport={addr.transport.lower()}"
        return f"<sip:{host}:{port}{t};lr;pbx={self.token(call_id)}>"

    def _respond(
        self,
        ctx_or_key: Key,
        req: Request,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Respond:
        hdrs = list(headers)
        if self.user_agent and status >= 200:
            hdrs.append(("Server", self.user_agent))
        return Respond(ctx_or_key, make_response(req, status, reason, to_tag=_local_tag(req), headers=hdrs))

    def _remember_contacts(self, msg: Request | Response, addr: Addr) -> None:
        try:
            contacts = msg.contacts
        except SipParseError:
            return
        if isinstance(contacts, list):
            for c in contacts[:1]:
                self.remember_flow(str(c.uri), addr)

    # ------------------------------------------------------------------ requests
    def stateless_challenge(self, req: Request, source: Addr, now: float) -> Response | None:
        """The 407 for an out-of-dialog request that carries no credentials for us, from a
        source that would be challenged (not trusted, not a trunk peer): sent by the
        server without any transaction (as Kamailio does), so a flood of unauthenticated
        INVITEs costs no state; a retransmission is simply challenged again. None: the
        request takes the ordinary, stateful path (credentials to check, in a dialog,
        trusted, a trunk's, or refused for another reason). ``now`` is the wall clock of
        the nonces."""
        auth = self.authenticator
        if auth is None or req.method == Method.ACK or req.method == Method.CANCEL:
            return None
        if req.headers.get_raw_all(auth.header):
            return None
        mf = req.max_forwards
        if (mf is not None and mf <= 0) or req.headers.get("Proxy-Require") is not None:
            return None
        if req.to.tag is not None or self.is_trusted(source):
            return None
        if self.admit is not None:
            verdict = self.admit(req, source)
            if isinstance(verdict, RouteDecision) or verdict:
                return None  # refused at once (a RouteDecision) or a trunk's request (True)
        res = auth.check(req, source.host, now)
        if res.outcome is not AuthOutcome.CHALLENGED or res.response is None:
            return None
        self.counters["auth_challenges"] += 1
        self.counters["stateless_challenges"] += 1
        return res.response

    def on_request(
        self, key: Key, req: Request, source: Addr, now: float, wallclock: float | None = None
    ) -> list[Action]:
        method = req.method
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            return [self._respond(key, req, 483)]
        preq = req.headers.get_all("Proxy-Require")
        if preq:
            return [self._respond(key, req, 420, headers=[("Unsupported", ", ".join(preq))])]
        trusted = self.is_trusted(source)
        req, token_ok, _popped = self._preprocess_routes(req)
        in_dialog = req.to.tag is not None
        if self.dialogs:
            self._expire_dialogs(now)
        if in_dialog:
            if not (token_ok or trusted):
                self.counters["rejected"] += 1
                return [self._respond(key, req, 403, "Forbidden - not routed by this server")]
            return self._forward_in_dialog(key, req, source, now)
        # out of dialog: authenticate, then ask the routing policy
        actions: list[Action] = []
        user = None
        peer = False
        if not trusted:
            if any(n.lower().startswith("x-pbx-") for n, _ in req.headers._items):
                # X-PBX-* headers are the front door's own (trunk, DID ...): never believed
                # from outside
                req = req.replace(
                    headers=Headers([(n, v) for n, v in req.headers._items if not n.lower().startswith("x-pbx-")])
                )
            if self.admit is not None:
                verdict = self.admit(req, source)
                if isinstance(verdict, RouteDecision):
                    self.counters["rejected"] += 1
                    return [self._respond(key, req, verdict.status or 403, verdict.reason, verdict.headers)]
                peer = bool(verdict)
        if not trusted and not peer and self.authenticator is not None:
            res = self.authenticator.check(req, source.host, now if wallclock is None else wallclock)
            outcome = res.outcome
            if outcome is not AuthOutcome.OK:
                if outcome is AuthOutcome.FAILED:
                    self.counters["auth_failures"] += 1
                    actions.append(AuthFailed(source.host, res.user, method))
                elif outcome is not AuthOutcome.MALFORMED:
                    self.counters["auth_challenges"] += 1
                assert res.response is not None  # every outcome but OK comes with its answer
                actions.append(Respond(key, res.response))
                return actions
            user = res.user
            # §22.3: our realm's credentials end here; another realm's travel on
            req = self.authenticator.consume(req)
            if req.from_.uri.user != user:
                self.counters["rejected"] += 1
                actions.append(AuthFailed(source.host, user, method))
                actions.append(self._respond(key, req, 403, "Forbidden - From is not the authenticated user"))
                return actions
            actions.append(AuthOk(source.host))
        decision = self.route(req, source, user)
        if not decision.targets:
            self.counters["rejected"] += 1
            assert decision.status is not None  # RouteDecision: targets or a status
            actions.append(self._respond(key, req, decision.status, decision.reason, decision.headers))
            return actions
        if req.headers.get("Route") is not None:
            req = req.replace(headers=req.headers.remove("Route"))
        if decision.headers:
            # headers the policy adds to the forwarded request (same names replaced)
            h = req.headers
            for name, value in decision.headers:
                if h.get(name) is not None:
                    h = h.remove(name)
                if value:  # an empty value only removes the header
                    h = h.add(name, value)
            req = req.replace(headers=h)
        ctx = _Context(key, req, source)
        self._contexts[key] = ctx
        if method in DIALOG_CREATING:
            self._remember_contacts(req, source)
        for uri, dest in decision.targets:
            self.remember_flow(uri, dest)
            actions.append(self._add_branch(ctx, req.replace(uri=URI.parse(uri)), dest, record_route=True))
        if method == Method.INVITE:
            timeout = decision.ring_timeout if decision.ring_timeout is not None else self.ring_timeout
            if timeout:
                ctx.ring_deadline = now + timeout
                self._seq += 1
                heapq.heappush(self._heap, (ctx.ring_deadline, self._seq, ctx))
        self.counters["forwarded"] += 1
        return actions

    def _preprocess_routes(self, req: Request) -> tuple[Request, bool, bool]:
        """§16.4: undo strict routing, pop our own Route entries."""
        call_id = req.call_id
        token_ok = False
        popped = False
        routes = req.headers.get_all("Route")
        ours, ok = self._route_is_ours(req.uri, call_id)
        if ours and ok and routes:
            last = NameAddr.parse(routes[-1])
            req = req.replace(
                uri=last.uri,
                headers=req.headers.replace("Route", routes[:-1]) if len(routes) > 1 else req.headers.remove("Route"),
            )
            routes = routes[:-1]
            token_ok = True
        elif ours and ok:
            token_ok = True
        n = 0
        while n < len(routes):
            try:
                na = NameAddr.parse(routes[n])
            except SipParseError:
                break
            ours, ok = self._route_is_ours(na.uri, call_id)
            if not ours:
                break
            token_ok = token_ok or ok
            n += 1
        if n:
            popped = True
            rest = routes[n:]
            req = req.replace(headers=req.headers.replace("Route", rest) if rest else req.headers.remove("Route"))
        return req, token_ok, popped

    def _next_hop(self, req: Request) -> Addr:
        routes = req.headers.get_all("Route")
        if routes:
            return self.resolve(NameAddr.parse(routes[0]).uri)
        return self.resolve(req.uri)

    def _forward_in_dialog(self, key: Key, req: Request, source: Addr, now: float) -> list[Action]:
        try:
            dest = self._next_hop(req)
        except SipParseError:
            return [self._respond(key, req, 400, "Bad Request - bad Route")]
        if req.method in DIALOG_CREATING or req.method == Method.UPDATE:
            self._remember_contacts(req, source)  # target refresh
        d = self._find_dialog(req)
        if d is None and self.dialog_gone is not None and self.dialog_gone(req, dest):
            self.counters["no_dialog"] += 1
            return [self._respond(key, req, 481)]
        ctx = _Context(key, req, source)
        self._contexts[key] = ctx
        self.counters["in_dialog"] += 1
        if d is not None:
            ctx.dialog = d.key
            self._touch(d, now)
            side = d.side(req.from_.tag)
            if side is not None:
                side.cseq = max(side.cseq, req.cseq[0])
                if req.method in (Method.INVITE, Method.UPDATE):
                    target = _first_contact(req)
                    if target is not None:
                        side.target = target
                        side.addr = source
            if req.method == Method.BYE and d.bye_deadline is None:
                d.bye_deadline = now + BYE_LINGER
                self._closing[d.key] = d.bye_deadline
        return [self._add_branch(ctx, req, dest, record_route=False)]

    def _add_branch(self, ctx: _Context, req: Request, dest: Addr, record_route: bool) -> SendRequest:
        via, branch = self._via(dest)
        h = req.headers.add("Via", via, first=True)
        mf = req.max_forwards
        h = h.replace("Max-Forwards", [str((70 if mf is None else mf) - 1)])
        if record_route and req.method in DIALOG_CREATING:
            call_id = req.call_id
            out_rr = self._rr_uri(dest, call_id)
            in_rr = self._rr_uri(ctx.source, call_id)
            values = [out_rr] if out_rr == in_rr else [out_rr, in_rr]
            for v in reversed(values):
                h = h.add("Record-Route", v, first=True)
        out = req.replace(headers=h)
        key = ClientKey(branch, req.method)
        b = _Branch(ctx, key, out, dest)
        ctx.branches.append(b)
        self._branches[key] = b
        return SendRequest(out, dest)

    # ------------------------------------------------------------------ ACK / CANCEL
    def on_ack(self, req: Request, source: Addr, now: float) -> list[Action]:
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            return []
        req, token_ok, _ = self._preprocess_routes(req)
        if not (token_ok or self.is_trusted(source)):
            return []
        try:
            dest = self._next_hop(req)
        except SipParseError:
            return []
        if self.dialogs:
            d = self._find_dialog(req)
            if d is not None:
                self._touch(d, now)
                if req.from_.tag == d.caller.tag:
                    d.ack_deadline = None
        via, _ = self._via(dest)
        h = req.headers.add("Via", via, first=True)
        h = h.replace("Max-Forwards", [str((70 if mf is None else mf) - 1)])
        return [SendStateless(req.replace(headers=h), dest)]

    def on_cancel(self, invite_key: Key, to_tag: str | None, now: float) -> list[Action]:
        ctx = self._contexts.get(invite_key)
        if ctx is None:
            return []
        actions: list[Action] = []
        if ctx.final_status == 0:
            ctx.final_status = 487
            actions.append(
                Respond(invite_key, make_response(ctx.request, 487, to_tag=to_tag or _local_tag(ctx.request)))
            )
        self.counters["cancelled"] += 1
        for b in ctx.branches:
            actions += self._cancel_branch(b)
            b.final = True
        return actions

    def _cancel_branch(self, b: _Branch) -> list[Action]:
        if b.ctx.method != Method.INVITE or b.cancel_sent or b.done:
            return []
        b.cancel_wanted = True
        if not b.provisional:
            return []  # §9.1: wait for a provisional response
        b.cancel_sent = True
        r = b.request
        h = r.headers
        lines = [("Via", h.get_all("Via")[0])]
        lines += [("Route", v) for v in h.get_all("Route")]
        lines += [
            ("Max-Forwards", "70"),
            ("From", h.get("From") or ""),
            ("To", h.get("To") or ""),
            ("Call-ID", h.get("Call-ID") or ""),
            ("CSeq", f"{r.cseq[0]} CANCEL"),
        ]
        if self.user_agent:
            lines.append(("User-Agent", self.user_agent))
        return [SendRequest(Request(Method.CANCEL, r.uri, Headers(lines)), b.dest)]

    # ------------------------------------------------------------------ responses
    def on_response(self, key: ClientKey, resp: Response, now: float) -> list[Action]:
        b = self._branches.get(key)
        if b is None:
            if key in self._own and resp.status >= 200:
                self._own.pop(key, None)  # our own BYE's answer: absorbed
            return []
        ctx = b.ctx
        status = resp.status
        actions: list[Action] = []
        if status >= 200 and (ctx.dialog is not None or (status < 300 and ctx.method == Method.INVITE)):
            self._dialog_response(ctx, b, resp, now)
        if status < 200:
            first = not b.provisional
            b.provisional = True
            if first and b.cancel_wanted:
                actions += self._cancel_branch(b)
            if status == 100 or b.final:
                return actions
            if ctx.method in DIALOG_CREATING:
                self._remember_contacts(resp, b.dest)
            if ctx.final_status == 0 and not b.cancel_wanted:
                actions.append(Respond(ctx.server_key, _strip_top_via(resp)))
            return actions
        if status < 300:
            if ctx.method in DIALOG_CREATING:
                self._remember_contacts(resp, b.dest)
            if ctx.method == Method.INVITE and ctx.final_status >= 300:
                # a late 2xx: upstream already has its final answer; hang this leg up
                if b.done:
                    return []
                b.final = b.done = True
                return self._kill_late_2xx(b, resp)
            b.final = b.done = True
            b.status = status
            if ctx.method != Method.INVITE and ctx.final_status:
                return []
            if ctx.final_status == 0:
                ctx.final_status = status
                for other in ctx.branches:
                    if other is not b and not other.final:
                        actions += self._cancel_branch(other)
                        other.final = True
            actions.append(Respond(ctx.server_key, _strip_top_via(resp)))
            return actions
        # 3xx-6xx
        if b.done:
            return actions
        b.done = True
        if b.final:
            return actions
        b.final = True
        b.status = status
        ctx.responses.append((status, resp))
        if ctx.final_status:
            return actions
        if status >= 600 and ctx.method == Method.INVITE:
            for other in ctx.branches:
                actions += self._cancel_branch(other)
                other.final = True
            return actions + self._send_best(ctx)
        if all(x.final for x in ctx.branches):
            return actions + self._send_best(ctx)
        return actions

    def _send_best(self, ctx: _Context) -> list[Action]:
        if ctx.final_status:
            return []
        if not ctx.responses:
            status, resp = self.no_answer[0], None
        else:
            status, resp = min(ctx.responses, key=lambda sr: _rank(sr[0]))
        if status == 503:
            status, resp = 500, None
        ctx.final_status = status
        if resp is None:
            reason = self.no_answer[1] if status == self.no_answer[0] else None
            return [self._respond(ctx.server_key, ctx.request, status, reason)]
        return [Respond(ctx.server_key, _strip_top_via(resp))]

    def _kill_late_2xx(self, b: _Branch, resp: Response) -> list[Action]:
        """ACK and BYE a 2xx that lost the race against CANCEL / the ring timeout."""
        try:
            contacts = resp.contacts
            target = contacts[0].uri if isinstance(contacts, list) and contacts else b.request.uri
        except SipParseError:
            target = b.request.uri
        dest = b.dest
        rh = resp.headers
        out: list[Action] = []
        for method, cseq in ((Method.ACK, b.request.cseq[0]), (Method.BYE, b.request.cseq[0] + 1)):
            via, _ = self._via(dest)
            h = Headers(
                [
                    ("Via", via),
                    ("Max-Forwards", "70"),
                    ("From", rh.get("From") or ""),
                    ("To", rh.get("To") or ""),
                    ("Call-ID", rh.get("Call-ID") or ""),
                    ("CSeq", f"{cseq} {method}"),
                ]
            )
            req = Request(method, target, h)
            out.append(SendStateless(req, dest) if method == Method.ACK else SendRequest(req, dest))
        return out

    def on_timeout(self, key: ClientKey, now: float, transport_error: bool = False) -> list[Action]:
        self._own.pop(key, None)
        b = self._branches.get(key)
        if b is None or b.done:
            return []
        if b.ctx.dialog is not None and b.ctx.method == Method.BYE:
            self._forget_dialog(b.ctx.dialog)
        b.done = True
        if b.final:
            return []
        b.final = True
        status = 503 if transport_error else 408
        b.status = status
        ctx = b.ctx
        ctx.responses.append((status, None))
        if not ctx.final_status and all(x.final for x in ctx.branches):
            return self._send_best(ctx)
        return []

    def on_stray_response(self, resp: Response, now: float) -> list[Action]:
        """A 2xx retransmission after our client transaction is gone: forward statelessly."""
        try:
            vias = resp.vias
        except SipParseError:
            return []
        if len(vias) < 2 or not (vias[0].branch or "").startswith(BRANCH_PREFIX):
            return []
        if not 200 <= resp.status < 300 or resp.cseq[1] != Method.INVITE:
            return []
        nxt = vias[1]
        port = nxt.port or 5060
        if nxt.rport:
            try:
                port = int(nxt.rport)
            except ValueError:
                pass
        host = nxt.received or nxt.host.strip("[]")
        return [SendStateless(_strip_top_via(resp), Addr(nxt.transport, host, port))]

    def on_terminated(self, key: Key) -> None:
        if type(key) is ClientKey:
            self._branches.pop(key, None)
            self._own.pop(key, None)
        else:
            self._contexts.pop(key, None)

    def owns(self, server_key: Key) -> bool:
        return server_key in self._contexts

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].final_status:
            heapq.heappop(heap)
        acks = self._acks
        while acks and self._ack_settled(acks[0][2]):
            heapq.heappop(acks)
        deadlines = ([heap[0][0]] if heap else []) + ([acks[0][0]] if acks else [])
        return min(deadlines) if deadlines else None

    def _ack_settled(self, key: DialogKey) -> bool:
        d = self.dialogs.get(key)
        return d is None or d.ack_deadline is None

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.dialogs:
            self._expire_dialogs(now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, ctx = heapq.heappop(heap)
            if ctx.final_status:
                continue
            self.counters["no_answer"] += 1
            for b in ctx.branches:
                if not b.final:
                    actions += self._cancel_branch(b)
                    b.final = True
            actions += self._send_best(ctx)
        acks = self._acks
        while acks and acks[0][0] <= now:
            _, _, key = heapq.heappop(acks)
            d = self.dialogs.get(key)
            if d is None or d.ack_deadline is None or d.ack_deadline > now:
                continue
            d.ack_deadline = None
            self.counters["no_ack"] += 1
            actions.append(AckMissing(d.call_id, d.caller.tag, d.callee.tag, d.caller.addr, d.callee.addr))
        return actions

    def end_dialog(
        self, call_id: str, tag1: str, tag2: str, now: float, reason: str = "no ACK", cause: int = 102
    ) -> list[Action]:
        """BYE both sides of a tracked dialog (each as the other would have sent it) and
        forget it; Q.850 cause 102 = recovery on timer expiry."""
        d = self.find_dialog(call_id, tag1, tag2)
        if d is None:
            return []
        self._forget_dialog(d.key)
        self.counters["dialogs_ended"] += 1
        actions: list[Action] = []
        for dead, live in ((d.caller, d.callee), (d.callee, d.caller)):
            bye = self._bye_for(d, dead, live, reason, cause)
            self._own[bye.key] = d.key
            actions.append(bye)
        return actions

    def stats(self) -> dict[str, int]:
        return {
            "contexts": len(self._contexts),
            "branches": len(self._branches),
            "flows": len(self.flows),
            "dialogs_tracked": len(self.dialogs),
            **self.counters,
        }

    # ------------------------------------------------------------------ dialogs
    def _find_dialog(self, msg: Request | Response) -> Dialog | None:
        try:
            call_id = msg.call_id
            a, b = msg.from_.tag, msg.to.tag
        except SipParseError:
            return None
        if not a or not b:
            return None  # tracked dialogs have both tags
        dialogs = self.dialogs
        return dialogs.get((call_id, a, b)) or dialogs.get((call_id, b, a))

    def find_dialog(self, call_id: str, tag1: str, tag2: str) -> Dialog | None:
        """The tracked dialog with this Call-ID and these two tags (either order)."""
        return self.dialogs.get((call_id, tag1, tag2)) or self.dialogs.get((call_id, tag2, tag1))

    def _touch(self, d: Dialog, now: float) -> None:
        d.last_seen = now
        self.dialogs.move_to_end(d.key)

    def _forget_dialog(self, key: DialogKey) -> None:
        self.dialogs.pop(key, None)
        self._closing.pop(key, None)

    def _dialog_response(self, ctx: _Context, b: _Branch, resp: Response, now: float) -> None:
        """Dialog bookkeeping for a final response (called before it is forwarded)."""
        status = resp.status
        if ctx.dialog is None:
            # a 2xx to an initial INVITE: unless it lost the race, it goes upstream
            if ctx.final_status >= 300 or ctx.request.to.tag is not None:
                return
            self._track(ctx, b, resp, now)
            return
        d = self.dialogs.get(ctx.dialog)
        if d is None:
            return
        if status == 481 or (ctx.method == Method.BYE and status < 300):
            self._forget_dialog(ctx.dialog)
            return
        self._touch(d, now)
        if status < 300 and ctx.method in (Method.INVITE, Method.UPDATE):
            side = d.side(ctx.request.to.tag)  # the answerer of a target refresh
            target = _first_contact(resp)
            if side is not None and target is not None:
                side.target = target
                side.addr = b.dest

    def _track(self, ctx: _Context, b: _Branch, resp: Response, now: float) -> None:
        req = ctx.request
        try:
            call_id = req.call_id
            caller_tag = req.from_.tag
            callee_tag = resp.to.tag
            cseq = req.cseq[0]
        except SipParseError:
            return
        if not caller_tag or not callee_tag:
            return
        key = (call_id, caller_tag, callee_tag)
        d = self.dialogs.get(key)
        if d is not None:
            self._touch(d, now)  # a retransmitted 2xx
            return
        rr = resp.headers.get_all("Record-Route")
        caller = DialogSide(
            req.headers.get("From") or "",
            caller_tag,
            _first_contact(req),
            ctx.source,
            list(reversed(rr)),
            cseq,
            self.is_trusted(ctx.source),
        )
        callee = DialogSide(
            resp.headers.get("To") or "", callee_tag, _first_contact(resp), b.dest, list(rr), 0, self.is_trusted(b.dest)
        )
        d = Dialog(call_id, caller, callee, now)
        self.dialogs[key] = d
        self.counters["dialogs"] += 1
        if self.ack_timeout > 0:
            d.ack_deadline = now + self.ack_timeout
            self._seq += 1
            heapq.heappush(self._acks, (d.ack_deadline, self._seq, key))
        while len(self.dialogs) > self.max_dialogs:
            old, _ = self.dialogs.popitem(last=False)
            self._closing.pop(old, None)
            self.counters["dialogs_evicted"] += 1

    def _expire_dialogs(self, now: float) -> None:
        dialogs = self.dialogs
        limit = now - self.dialog_idle
        while dialogs:
            key, d = next(iter(dialogs.items()))
            if d.last_seen > limit:
                break
            dialogs.popitem(last=False)
            self._closing.pop(key, None)
            self.counters["dialogs_expired"] += 1
        if self._closing:
            for key, deadline in list(self._closing.items()):
                if deadline <= now:
                    self._forget_dialog(key)

    def _routes_beyond_us(self, route_set: list[str], call_id: str) -> list[str]:
        """What is left of a route set once it has passed us (our own entries and any
        before them removed): the Route of a request we send on behalf of its owner."""
        last = -1
        for i, value in enumerate(route_set):
            try:
                ours, _ = self._route_is_ours(NameAddr.parse(value).uri, call_id)
            except SipParseError:
                continue
            if ours:
                last = i
        return list(route_set[last + 1 :])

    def end_dialogs_with(
        self, addr_predicate: Callable[[Addr], bool], now: float, reason: str = "media engine failure", cause: int = 41
    ) -> list[Action]:
        """A party is gone (e.g. a media worker killed): BYE the other side of every dialog
        it was in, as it would have (with a Q.850 Reason), and forget those dialogs;
        INVITEs still ringing to or from it are ended as well."""
        actions: list[Action] = []
        if self.dialogs:
            self._expire_dialogs(now)
        for key, d in list(self.dialogs.items()):
            dead_caller = bool(addr_predicate(d.caller.addr))
            dead_callee = bool(addr_predicate(d.callee.addr))
            if not (dead_caller or dead_callee):
                continue
            self._forget_dialog(key)
            self.counters["dialogs_ended"] += 1
            if dead_caller and dead_callee:
                continue
            dead, live = (d.caller, d.callee) if dead_caller else (d.callee, d.caller)
            bye = self._bye_for(d, dead, live, reason, cause)
            self._own[bye.key] = key
            actions.append(bye)
        actions += self._end_pending_invites(addr_predicate)
        return actions

    def _bye_for(self, d: Dialog, dead: DialogSide, live: DialogSide, reason: str, cause: int) -> SendRequest:
        routes = self._routes_beyond_us(dead.route_set, d.call_id)
        if routes:
            dest = self.resolve(NameAddr.parse(routes[0]).uri)
        else:
            dest = live.addr
        target = live.target
        if target is None:
            target = NameAddr.parse(live.name_addr).uri
        via, _ = self._via(dest)
        dead.cseq += 1
        lines = [("Via", via), ("Max-Forwards", "70")]
        lines += [("Route", r) for r in routes]
        lines += [
            ("From", dead.name_addr),
            ("To", live.name_addr),
            ("Call-ID", d.call_id),
            ("CSeq", f"{dead.cseq} BYE"),
            ("Reason", f"Q.850;cause={int(cause)};text={_quoted(reason)}"),
        ]
        if self.user_agent:
            lines.append(("User-Agent", self.user_agent))
        return SendRequest(Request(Method.BYE, target, Headers(lines)), dest)

    def _end_pending_invites(self, pred: Callable[[Addr], bool]) -> list[Action]:
        actions: list[Action] = []
        for ctx in list(self._contexts.values()):
            if ctx.method != Method.INVITE or ctx.final_status or ctx.request.to.tag is not None:
                continue
            if pred(ctx.source):
                # its caller is gone: stop the phones ringing; the answer goes nowhere
                ctx.final_status = 487
                actions.append(self._respond(ctx.server_key, ctx.request, 487))
                for b in ctx.branches:
                    if not b.final:
                        actions += self._cancel_branch(b)
                        b.final = True
                continue
            hit = False
            for b in ctx.branches:
                if not b.final and pred(b.dest):
                    b.final = b.done = True
                    b.status = 503
                    ctx.responses.append((503, None))
                    hit = True
            if hit and all(x.final for x in ctx.branches):
                actions += self._send_best(ctx)
        return actions


def _local_tag(req: Request) -> str:
    """Deterministic To tag for responses the proxy itself generates (retransmission-safe)."""
    return hashlib.md5(
        ((req.headers.get("Call-ID") or "") + (req.headers.get("CSeq") or "")).encode("utf-8", "replace"),
        usedforsecurity=False,
    ).hexdigest()[:12]
