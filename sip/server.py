"""The SIP front door: sockets → abuse guard → parser → transactions → registrar.

This is the asyncio glue around the sans-I/O pieces of ``sip/``. It owns no policy of
its own beyond dispatching by method: REGISTER goes to the registrar, OPTIONS is
answered 200 (phones' keep-alive pings), other methods go to handlers that later parts
of the PBX register (``SipServer.handlers``; the proxy with ``attach_proxy``, and
``claim`` takes a share of a method's requests, e.g. SUBSCRIBE message-summary for MWI),
and anything nobody handles gets 405 (known method) or 501 (unknown method), RFC 3261 §8.2.1.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sip.guard import AbuseGuard
from sip.location import Changes
from sip.message import (
    KNOWN_METHODS,
    Method,
    Request,
    Response,
    SipParseError,
    is_keepalive,
    make_response,
    parse_message,
    unsupported_extensions,
    validate_request,
)
from sip.proxy import (
    AckMissing,
    Action,
    AuthFailed,
    AuthOk,
    Proxy,
    Respond,
    SendRequest,
    SendStateless,
)
from sip.registrar import AuthOutcome, Registrar
from sip.transaction import (
    AckReceived,
    Addr,
    CancelReceived,
    ClientKey,
    Event,
    Key,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    Timeout,
    TransactionLayer,
    TransactionTerminated,
    Transmit,
    TransportError,
    response_destination,
)
from sip.transport import Listener, TransportLayer

log = logging.getLogger(__name__)

#: Methods the front door always handles itself; the handlers table adds more.
BASE_METHODS: tuple[str, ...] = (Method.REGISTER, Method.OPTIONS, Method.ACK, Method.CANCEL)
#: Methods ``attach_proxy`` routes to the proxy by default.
PROXIED_METHODS: tuple[str, ...] = (
    Method.INVITE,
    Method.BYE,
    Method.INFO,
    Method.UPDATE,
    Method.REFER,
    Method.MESSAGE,
    Method.SUBSCRIBE,
    Method.NOTIFY,
    Method.PRACK,
)
#: Option tags (RFC 3261 §19.2) this server really implements; a Require naming anything
#: else gets 420 Bad Extension with an Unsupported header (§8.2.2.3).
SUPPORTED: tuple[str, ...] = ()

#: A handler for a method: called with (server, key, request, source); it answers
#: through ``server.respond(key, response)`` now or later.
Handler = Callable[["SipServer", Key, Request, Addr], None]
#: What ``send_own`` reports for a client transaction of our own.
OwnEvent = ResponseReceived | Timeout | TransportError
OwnCallback = Callable[[OwnEvent], None]

_T = TypeVar("_T")


@dataclass(frozen=True)
class ListenSpec:
    transport: str  # UDP | TCP | TLS
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class TlsPeer:
    """How our client side checks a TLS peer it connects to (``SipServer.tls_policy``)."""

    #: the name the peer's certificate must carry (also sent as SNI): a trunk's host name
    server_name: str
    #: False: the certificate is not checked at all -- an explicit per-peer opt-out (a trunk's
    #: ``--tls-no-verify``), logged as a warning on every connection
    verify: bool = True
    #: who the peer is, for the log ("trunk acme")
    label: str = ""


#: Tells the TLS client side about a destination: None = an unknown peer, verified against
#: the system CA store with its address as the expected name.
TlsPolicy = Callable[[Addr], TlsPeer | None]


class SipServer:
    def __init__(
        self,
        *,
        registrar: Registrar,
        guard: AbuseGuard,
        user_agent: str = "pypbx",
        on_bindings: Callable[[Changes], None] | None = None,
        wallclock: Callable[[], float] = time.time,
        transactions: TransactionLayer | None = None,
        force_rport: bool = True,
        tls_policy: TlsPolicy | None = None,
    ) -> None:
        self.registrar = registrar
        self.guard = guard
        self.user_agent = user_agent
        self.on_bindings = on_bindings or (lambda changes: None)
        self.wallclock = wallclock
        self.txn = transactions or TransactionLayer()
        #: Answer UDP requests at the address and port they came from even without
        #: ``rport`` in their Via (RFC 3581 behaviour for everyone): phones behind NAT
        #: put unreachable addresses in Via; the source is the only address that works.
        self.force_rport = force_rport
        self.handlers: dict[str, Handler] = {}
        #: The stateful proxy core (sip/proxy.py), if attached: gets client-transaction
        #: events, ACKs for 2xx and CANCELs of the INVITEs it forwards.
        self.proxy: Proxy | None = None
        #: Told when a caller never ACKs a 2xx the proxy forwarded (Timer H): returns True
        #: when it ends the call itself; otherwise both sides get a BYE (Proxy.end_dialog).
        self.on_ack_missing: Callable[[AckMissing], bool] | None = None
        #: Sources never refused by the global admission limit besides registered contacts'
        #: and trusted addresses (the app: trunk providers' addresses).
        self.priority: Callable[[Addr], bool] | None = None
        #: Challenge requests without credentials with no transaction (False: through a
        #: server transaction as before -- kept for bench/flood to compare the two).
        self.stateless_challenges = True
        self._hosts: frozenset[str] = frozenset()
        #: method -> the ``wants`` of its claims: those requests are not the proxy's to challenge
        self._claims: dict[str, list[Callable[[Request], bool]]] = {}
        self._hosts_at: float | None = None
        #: Methods forwarded by the proxy: no UAS-only checks (Require, body types).
        self.proxied_methods: frozenset[str] = frozenset()
        #: Client transactions the server's own users started (trunk registrations,
        #: ``send_own``): ClientKey -> callback(event) for their responses / timeouts.
        self.own: dict[Key, OwnCallback] = {}
        #: Who our outbound TLS connections go to (see :class:`TlsPeer`); set by the trunks.
        self.tls_policy = tls_policy
        self._tls_verifying: ssl.SSLContext | None = None
        self._tls_unverified: ssl.SSLContext | None = None
        #: Every task the server starts (connection attempts): cancelled and awaited by stop().
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connecting: dict[tuple[str, str, int], asyncio.Task[Addr | None]] = {}
        self._src_cache: dict[str, str] = {}
        self._own_ips: set[str] = set()
        self.transport: TransportLayer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.started_at = 0.0
        self.counters = {
            "requests": 0,
            "responses": 0,
            "keepalives": 0,
            "parse_errors": 0,
            "dropped": 0,
            "registers": 0,
            "register_ok": 0,
            "auth_challenges": 0,
            "stateless_challenges": 0,
            "auth_failures": 0,
            "options": 0,
            "rejected": 0,
        }

    # -- lifecycle -------------------------------------------------------------
    async def start(self, specs: list[ListenSpec]) -> list[Listener]:
        self._loop = asyncio.get_running_loop()
        self.transport = TransportLayer(self._on_message)
        self.started_at = self.wallclock()
        out: list[Listener] = []
        try:
            for spec in specs:
                if spec.transport == "UDP":
                    out.append(await self.transport.listen_udp(spec.host, spec.port))
                else:
                    out.append(await self.transport.listen_stream(spec.host, spec.port, spec.ssl_context))
        except OSError:
            await self.transport.close()
            raise
        for lst in out:
            log.info("listening on %s %s:%d", lst.transport, lst.host, lst.port)
        return out

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop listening for new connections, let in-flight transactions finish; then
        cancel and await every task the server started and close the connections."""
        if self.transport is None:
            await self._cancel_tasks()
            return
        await self.transport.stop_listening()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        while self._pending_server_transactions() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._cancel_tasks()
        await self.transport.close()
        self.transport = None
        log.info("SIP front door stopped")

    def _pending_server_transactions(self) -> int:
        """Server transactions still waiting for the TU's final answer."""
        return self.txn.unanswered()

    # -- timers ----------------------------------------------------------------
    def _schedule(self) -> None:
        deadline = self.txn.next_deadline()
        if self.proxy is not None:
            pd = self.proxy.next_deadline()
            if pd is not None and (deadline is None or pd < deadline):
                deadline = pd
        if deadline is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        assert self._loop is not None
        now = self._loop.time()
        self._handle_events(self.txn.tick(now))
        if self.proxy is not None:
            self._run_actions(self.proxy.tick(now))
        self._schedule()

    # -- inbound ---------------------------------------------------------------
    def _on_message(self, data: bytes, source: Addr) -> None:
        assert self._loop is not None
        now = self._loop.time()
        ip = source.host
        reliable = source.transport != "UDP"
        if not reliable and is_keepalive(data):
            self.counters["keepalives"] += 1  # RFC 5626 §3.5.1 pings over UDP: drop silently
            return
        if not self.guard.allow_datagram(ip, len(data), now):
            self.counters["dropped"] += 1
            return
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self.counters["parse_errors"] += 1
            answered = self._reject_unparseable(exc, source, reliable)
            self.guard.malformed(ip, now, exc.reason, exc.status if answered else None)
            return
        if not isinstance(msg, Request):
            self.counters["responses"] += 1
            self._handle_events(self.txn.receive(msg, source, reliable, now))
            self._schedule()
            return
        self.counters["requests"] += 1
        if not self.guard.check_request(ip, msg.headers.get("User-Agent"), now).allowed:
            self.counters["dropped"] += 1
            return
        if msg.method in self.proxied_methods or msg.method == Method.ACK:
            # a proxy does not judge Require (RFC 3261 §16.3: only Proxy-Require); body types
            # are still checked: what we forward ends in a media worker's SDP stack
            problem = validate_request(msg, supported=msg.headers.get_all("Require"))
        else:
            problem = validate_request(msg, supported=SUPPORTED)
        if problem is not None:
            self.guard.malformed(
                ip, now, f"{problem[1]} ({msg.method})", None if msg.method == Method.ACK else problem[0]
            )
            if msg.method != Method.ACK:
                status, reason = problem
                self._send_stateless(
                    make_response(msg, status, reason, headers=self._problem_headers(status, msg)),
                    msg,
                    source,
                    reliable,
                )
            self.counters["rejected"] += 1
            return
        if self.force_rport and not reliable:
            msg = self._with_rport(msg)
        if msg.method != Method.ACK and not self._has_credentials(msg):
            # global admission control: a flood from many addresses cannot crowd out phones
            if not self.guard.admit_new(ip, now, self._is_priority(source, now)):
                self.counters["dropped"] += 1
                return
            stateless = self.stateless_challenges
            if stateless and msg.method == Method.REGISTER and self._challenge_register(msg, source, reliable):
                return
            proxy = self.proxy
            if (
                stateless
                and proxy is not None
                and msg.method in self.proxied_methods
                and not any(wants(msg) for wants in self._claims.get(msg.method, ()))
            ):
                challenge = proxy.stateless_challenge(msg, source, self.wallclock())
                if challenge is not None:
                    self.counters["stateless_challenges"] += 1
                    self._send_stateless(challenge, msg, source, reliable)
                    return
        self._handle_events(self.txn.receive(msg, source, reliable, now))
        self._schedule()

    def _challenge_register(self, req: Request, source: Addr, reliable: bool) -> bool:
        """A REGISTER without credentials: its 401 goes out statelessly (no transaction
        kept); True when it was answered so."""
        if req.to.tag is not None:
            return False
        result = self.registrar.handle(req, source.host, (source.transport, source.host, source.port), self.wallclock())
        if result.auth is not AuthOutcome.CHALLENGED or result.changes:
            return False
        self.counters["registers"] += 1
        self.counters["auth_challenges"] += 1
        self.counters["stateless_challenges"] += 1
        self._send_stateless(result.response, req, source, reliable)
        return True

    @staticmethod
    def _has_credentials(req: Request) -> bool:
        h = req.headers
        return h.get("Proxy-Authorization") is not None or h.get("Authorization") is not None

    def _is_priority(self, source: Addr, now: float) -> bool:
        """Known phones and peers, never refused by the global admission limit: a trusted
        address (media workers), an address a registered contact uses, or one the
        ``priority`` hook names (the app: trunk providers)."""
        if self.proxy is not None and self.proxy.is_trusted(source):
            return True
        if source.host in self._registered_hosts(now):
            return True
        return self.priority is not None and self.priority(source)

    def _registered_hosts(self, now: float) -> frozenset[str]:
        """The source addresses of the registered contacts, rebuilt at most once a second."""
        if self._hosts_at is None or now - self._hosts_at >= 1.0:
            location = self.registrar.location
            self._hosts = frozenset(b.source[1] for aor in location.aors() for b in location.all_bindings(aor))
            self._hosts_at = now
        return self._hosts

    @staticmethod
    def _with_rport(req: Request) -> Request:
        vias = req.vias
        top = vias[0]
        if top.rport is not None:
            return req
        values = [str(top.with_params(rport=""))] + [str(v) for v in vias[1:]]
        return req.replace(headers=req.headers.replace("Via", values))

    @property
    def allow(self) -> str:
        return ", ".join(BASE_METHODS + tuple(m for m in self.handlers if m not in BASE_METHODS))

    def _problem_headers(self, status: int, req: Request) -> list[tuple[str, str]]:
        if status == 420:
            return [("Unsupported", ", ".join(unsupported_extensions(req, SUPPORTED)))]
        if status in (405, 501):
            return [("Allow", self.allow)]
        if status == 415:
            return [("Accept", "application/sdp")]
        return []

    def _reject_unparseable(self, exc: SipParseError, source: Addr, reliable: bool) -> bool:
        """Answer an unparseable message if it can be answered; True when it was."""
        partial = getattr(exc, "partial", None)
        if getattr(exc, "drop", False) or partial is None or partial.method == Method.ACK:
            log.debug("dropped unparseable message from %s:%d: %s", source.host, source.port, exc.reason)
            return False
        try:
            resp = make_response(partial, exc.status, exc.reason)
            self._send_stateless(resp, partial, source, reliable)
        except Exception as err:  # a partial message too broken to answer
            log.debug("cannot answer bad message from %s: %s", source.host, err)
            return False
        return True

    def _send_stateless(self, resp: Response, req: Request, source: Addr, reliable: bool) -> None:
        assert self.transport is not None
        if reliable or self.force_rport:
            dest = source
        else:
            try:
                dest = response_destination(req.top_via, source, reliable)
            except Exception:
                dest = source
        self.transport.send(resp.to_bytes(), dest)

    # -- events from the transaction layer -------------------------------------
    def _handle_events(self, events: list[Event]) -> None:
        transport = self.transport
        for ev in events:
            if type(ev) is Transmit:
                if transport is not None:
                    transport.send(ev.data, ev.dest)
            elif type(ev) is RequestReceived:
                self._dispatch(ev.key, ev.request, ev.source)
            elif type(ev) is CancelReceived:
                proxy = self.proxy
                if proxy is not None and proxy.owns(ev.invite_key):
                    self._run_actions(proxy.on_cancel(ev.invite_key, ev.to_tag, self._now()))
                    continue
                req = self.txn.server_request(ev.invite_key)
                if req is not None:
                    self.respond(ev.invite_key, make_response(req, 487, to_tag=ev.to_tag))
            elif type(ev) is StrayResponse:
                if self.proxy is not None:
                    self._run_actions(self.proxy.on_stray_response(ev.response, self._now()))
            elif type(ev) is AckReceived:
                if self.proxy is not None:
                    self._run_actions(self.proxy.on_ack(ev.request, ev.source, self._now()))
            elif type(ev) is TransactionTerminated:
                if self.own and ev.key in self.own:
                    del self.own[ev.key]
                elif self.proxy is not None:
                    self.proxy.on_terminated(ev.key)
            elif type(ev) is ResponseReceived or type(ev) is Timeout or type(ev) is TransportError:
                own = self.own.get(ev.key) if self.own else None
                if own is not None:
                    own(ev)
                elif self.proxy is None:
                    continue
                elif type(ev) is ResponseReceived:
                    self._run_actions(self.proxy.on_response(ev.key, ev.response, self._now()))
                elif type(ev.key) is ClientKey:
                    transport_error = type(ev) is TransportError
                    self._run_actions(self.proxy.on_timeout(ev.key, self._now(), transport_error=transport_error))

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # -- the proxy's side: client transactions and stateless sends ----------------
    def attach_proxy(self, proxy: Proxy, methods: tuple[str, ...] = PROXIED_METHODS) -> None:
        """Route ``methods`` (and client-transaction events, ACK for 2xx, CANCEL of the
        INVITEs it forwards) to the sans-I/O proxy core of ``sip/proxy.py``."""
        self.proxy = proxy

        def handler(server: SipServer, key: Key, req: Request, source: Addr) -> None:
            server._run_actions(proxy.on_request(key, req, source, server._now(), wallclock=server.wallclock()))

        for m in methods:
            self.handlers[m] = handler
        self.proxied_methods = frozenset(methods)

    def claim(self, method: str, wants: Callable[[Request], bool], handler: Handler) -> None:
        """Requests of ``method`` for which ``wants(request)`` is true go to ``handler``; the
        others to whoever handled ``method`` before (the proxy), else 405. How the MWI
        notifier (``pypbx/mwi.py``) takes ``SUBSCRIBE`` / ``Event: message-summary`` from the
        proxy while other event packages are still forwarded."""
        previous = self.handlers.get(method)
        self._claims.setdefault(method, []).append(wants)

        def dispatch(server: SipServer, key: Key, req: Request, source: Addr) -> None:
            if wants(req):
                handler(server, key, req, source)
            elif previous is not None:
                previous(server, key, req, source)
            else:
                server.respond(key, make_response(req, 405, headers=[("Allow", server.allow)]))

        self.handlers[method] = dispatch

    def end_dialogs_with(self, host: str, port: int, reason: str = "media engine failure") -> int:
        """A party at ``host:port`` (a media worker) died: the proxy BYEs the other side of
        every dialog it was in (``Reason: Q.850;cause=41``) and ends INVITEs still ringing
        through it. Returns how many BYEs were sent."""
        if self.proxy is None or self._loop is None:
            return 0
        host = host.strip("[]").lower()
        port = int(port)
        actions = self.proxy.end_dialogs_with(
            lambda a: a.port == port and a.host.strip("[]").lower() == host, self._now(), reason
        )
        byes = sum(1 for a in actions if type(a) is SendRequest and a.request.method == Method.BYE)
        if actions:
            log.info("ending dialogs with %s:%d (%s): %d BYE(s)", host, port, reason, byes)
        self._run_actions(actions)
        return byes

    def _run_actions(self, actions: list[Action]) -> None:
        for act in actions:
            if type(act) is Respond:
                self.respond(act.key, act.response)
            elif type(act) is SendRequest:
                self.send_request(act.request, act.dest)
            elif type(act) is SendStateless:
                self.send_stateless(act.message, act.dest)
            elif type(act) is AuthFailed:
                self.counters["auth_failures"] += 1
                self.guard.auth_failed(act.ip, self._now(), act.user, act.method)
            elif type(act) is AuthOk:
                self.guard.auth_ok(act.ip, self._now())
            elif type(act) is AckMissing:
                self._ack_missing(act)
        self._schedule()

    def _ack_missing(self, act: AckMissing) -> None:
        log.warning(
            "no ACK from %s:%d for the 2xx of call %s within Timer H: ending it",
            act.caller.host,
            act.caller.port,
            act.call_id,
        )
        handler = self.on_ack_missing
        if handler is not None and handler(act):
            return
        if self.proxy is not None:
            self._run_actions(self.proxy.end_dialog(act.call_id, act.caller_tag, act.callee_tag, self._now()))

    # -- our own addresses (Via sent-by, Record-Route) -----------------------------
    def local_address(self, transport: str, dest_host: str) -> tuple[str, int]:
        """Our (host, port) on ``transport`` as seen from ``dest_host``: the listener's
        address, or for a wildcard bind the interface address the kernel would use."""
        listeners = self.transport.listeners if self.transport else []
        lst = next((x for x in listeners if x.transport == transport), None) or next(iter(listeners), None)
        if lst is None:
            return ("127.0.0.1", 5060)
        host = lst.host
        if host in ("0.0.0.0", "::", ""):
            host = self._source_ip_for(dest_host)
        return (host, lst.port)

    def _source_ip_for(self, dest_host: str) -> str:
        cache = self._src_cache
        ip = cache.get(dest_host)
        if ip is None:
            fam = socket.AF_INET6 if ":" in dest_host else socket.AF_INET
            try:
                with socket.socket(fam, socket.SOCK_DGRAM) as s:
                    s.connect((dest_host, 9))
                    ip = str(s.getsockname()[0])
            except OSError:
                ip = "127.0.0.1"
            if len(cache) > 1024:
                cache.clear()
            cache[dest_host] = ip
            self._own_ips.add(ip)
        return ip

    def is_local(self, host: str, port: int | None) -> bool:
        listeners = self.transport.listeners if self.transport else []
        ports = {x.port for x in listeners}
        if (port or 5060) not in ports and not (port is None and 5061 in ports):
            return False
        hosts = {x.host for x in listeners} | self._own_ips
        if hosts & {"0.0.0.0", "::"}:
            hosts |= {"127.0.0.1", "::1", "localhost"}
        return host.lower() in hosts

    # -- outbound: the one way to reach an address ---------------------------------
    def send_request(self, req: Request, dest: Addr) -> None:
        """Start a client transaction for ``req`` (top Via branch already set); over
        TCP/TLS a connection to ``dest`` is opened first when there is none. If it cannot
        be opened, the proxy hears of a transport error for the branch."""

        def failed() -> None:
            if self.proxy is not None:
                key = ClientKey(req.top_via.branch or "", req.method)
                self._run_actions(self.proxy.on_timeout(key, self._now(), transport_error=True))

        self._send_to(dest, lambda addr: self._start_client(req, addr), failed)

    def send_own(self, req: Request, dest: Addr, on_event: OwnCallback) -> None:
        """Start a client transaction of our own (e.g. a trunk's REGISTER, top Via branch
        set by the caller): its ResponseReceived / Timeout / TransportError events go to
        ``on_event`` instead of the proxy."""
        key = ClientKey(req.top_via.branch or "", req.method)
        self.own[key] = on_event

        def failed() -> None:
            cb = self.own.pop(key, None)
            if cb is not None:
                cb(TransportError(key))

        self._send_to(dest, lambda addr: self._start_client(req, addr), failed)

    def send_stateless(self, msg: Request | Response, dest: Addr) -> None:
        """Send ``msg`` outside any transaction (e.g. an ACK for a 2xx, a forwarded 2xx)."""

        def send(addr: Addr) -> None:
            if self.transport is not None:
                self.transport.send(msg.to_bytes(), addr)

        self._send_to(dest, send, lambda: None)

    def _send_to(self, dest: Addr, send: Callable[[Addr], None], failed: Callable[[], None]) -> None:
        """Reach ``dest`` and call ``send(addr)`` with the address to write to: at once over
        UDP or an open TCP/TLS connection (the one ``dest`` names, else any to its address);
        otherwise once a new connection is open (:meth:`_connection_to`, tracked task), or
        ``failed()`` if it cannot be opened."""
        tr = self.transport
        if dest.transport == "UDP" or (tr is not None and tr.has_connection(dest)):
            send(dest)
            return

        async def connect_then_send() -> None:
            addr = await self._connection_to(dest)
            if addr is None:
                failed()
            else:
                send(addr)

        self._spawn(connect_then_send(), f"sip-send-{dest.transport}-{dest.host}:{dest.port}")

    async def _connection_to(self, dest: Addr) -> Addr | None:
        """The address of a TCP/TLS connection to ``dest``, opened now unless one is already
        being opened (then it is shared); None if it cannot be opened."""
        peer = (dest.transport, dest.host, dest.port)
        opening = self._connecting.get(peer)
        if opening is None:
            opening = self._spawn(self._open(dest), f"sip-connect-{dest.transport}-{dest.host}:{dest.port}")
            self._connecting[peer] = opening

            def opened(task: asyncio.Task[Addr | None]) -> None:
                if self._connecting.get(peer) is task:
                    del self._connecting[peer]

            opening.add_done_callback(opened)
        return await asyncio.shield(opening)

    async def _open(self, dest: Addr) -> Addr | None:
        tr = self.transport
        if tr is None or dest.transport not in ("TCP", "TLS"):
            return None
        ctx: ssl.SSLContext | None = None
        server_name: str | None = None
        if dest.transport == "TLS":
            ctx, server_name = self._tls_client(dest)
        try:
            return await tr.connect(dest.transport, dest.host, dest.port, ssl_context=ctx, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            log.warning(
                "TLS connection to %s:%d refused: certificate not accepted for %r (%s)",
                dest.host,
                dest.port,
                server_name,
                exc.verify_message or exc,
            )
            return None
        except (OSError, TimeoutError, ValueError) as exc:  # refused, unreachable, TLS handshake, timeout
            log.info("cannot connect to %s %s:%d: %s", dest.transport, dest.host, dest.port, exc or "timeout")
            return None

    def _tls_client(self, dest: Addr) -> tuple[ssl.SSLContext, str]:
        """The client context and the name the certificate must carry for a TLS connection
        to ``dest``: verified (system CA store, hostname checked) unless ``tls_policy``
        says this peer opted out -- logged as a warning on every such connection."""
        peer = (self.tls_policy(dest) if self.tls_policy is not None else None) or TlsPeer(dest.host)
        if peer.verify:
            if self._tls_verifying is None:
                self._tls_verifying = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            return self._tls_verifying, peer.server_name
        log.warning(
            "TLS connection to %s%s:%d WITHOUT certificate verification (turned off for %s)",
            f"{peer.label} at " if peer.label else "",
            dest.host,
            dest.port,
            peer.label or "this peer",
        )
        if self._tls_unverified is None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._tls_unverified = ctx
        return self._tls_unverified, peer.server_name

    def _spawn(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Run ``coro`` as a task the server owns: cancelled and awaited by :meth:`stop`."""
        assert self._loop is not None
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._connecting.clear()

    def _start_client(self, req: Request, dest: Addr) -> None:
        try:
            key, events = self.txn.send_request(req, dest, dest.transport != "UDP", self._now())
        except ValueError as exc:
            log.warning("cannot send %s to %s:%d: %s", req.method, dest.host, dest.port, exc)
            return
        self._handle_events(events)
        if dest.transport == "UDP" or (self.transport is not None and self.transport.has_connection(dest)):
            self._schedule()
            return
        # the write failed (connection gone): tell the transaction layer
        self._handle_events(self.txn.transport_error(key, self._now()))
        self._schedule()

    def respond(self, key: Key, response: Response) -> None:
        assert self._loop is not None
        self._handle_events(self.txn.send_response(key, response, self._loop.time()))
        self._schedule()

    def _dispatch(self, key: Key, req: Request, source: Addr) -> None:
        method = req.method
        if method == Method.REGISTER:
            self._register(key, req, source)
        elif method == Method.OPTIONS:
            self.counters["options"] += 1
            self.respond(
                key,
                make_response(
                    req,
                    200,
                    headers=[("Allow", self.allow), ("Accept", "application/sdp"), ("Server", self.user_agent)],
                ),
            )
        elif method in self.handlers:
            self.handlers[method](self, key, req, source)
        elif method == Method.ACK:
            return
        elif method in KNOWN_METHODS:
            self.respond(key, make_response(req, 405, headers=[("Allow", self.allow)]))
        else:
            self.respond(key, make_response(req, 501))

    def _register(self, key: Key, req: Request, source: Addr) -> None:
        assert self._loop is not None
        self.counters["registers"] += 1
        ip = source.host
        local = f"{source.transport}:{source.conn_id}" if source.conn_id is not None else source.transport
        result = self.registrar.handle(
            req, ip, (source.transport, source.host, source.port), self.wallclock(), local=local
        )
        outcome = result.auth
        if outcome is AuthOutcome.OK:
            self.guard.auth_ok(ip, self._loop.time())
            if result.response.status == 200:
                self.counters["register_ok"] += 1
        elif outcome is AuthOutcome.FAILED or outcome is AuthOutcome.FORBIDDEN:
            self.counters["auth_failures"] += 1
            self.guard.auth_failed(ip, self._loop.time(), result.user, Method.REGISTER)
        elif outcome is not AuthOutcome.MALFORMED and outcome is not AuthOutcome.NOT_FOUND:
            self.counters["auth_challenges"] += 1
        self.respond(key, result.response)
        changes = result.changes
        if changes.added or changes.removed or changes.updated:
            self._log_changes(changes, source, result.algorithm)
            self.on_bindings(changes)

    def _log_changes(self, changes: Changes, source: Addr, algorithm: str | None = None) -> None:
        for b in changes.added:
            log.info(
                "registered %s contact=%s from %s:%s:%d expires=%ds ua=%r auth=%s",
                b.aor,
                b.contact,
                source.transport,
                source.host,
                source.port,
                b.expires_in(self.wallclock()),
                b.user_agent or "",
                algorithm or "-",
            )
        for b in changes.removed:
            log.info("unregistered %s contact=%s", b.aor, b.contact)
        if log.isEnabledFor(logging.DEBUG):
            for b in changes.updated:
                log.debug("refreshed %s contact=%s", b.aor, b.contact)

    # -- status ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self.wallclock()
        return {
            "uptime": round(now - self.started_at, 1),
            "listeners": [
                {"transport": lst.transport, "host": lst.host, "port": lst.port}
                for lst in (self.transport.listeners if self.transport else [])
            ],
            "connections": self.transport.connection_count() if self.transport else 0,
            "registered_contacts": self.registrar.location.count(),
            "counters": dict(self.counters),
            "transactions": self.txn.stats(),
        }
