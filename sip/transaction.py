"""Sans-I/O RFC 3261 §17 transaction layer.

Nothing in here touches sockets, clocks or asyncio.  Every entry point takes
``now`` (monotonic seconds) and returns a list of events; the caller
(``sip/server.py``) performs the ``Transmit`` events, hands the other events
to the transaction user (TU: registrar / UA core / B2BUA) and calls
``tick(now)`` no later than ``next_deadline()``.

Who does what
=============

Server side (requests received):

* ``receive(request, source, reliable, now)``: a new request creates a server
  transaction and yields ``RequestReceived(key, request, source)``.  The
  request in the event already carries the RFC 3261 §18.2.1 / RFC 3581
  ``received``/``rport`` parameters in its top Via, so a response built with
  ``make_response(event.request, ...)`` carries them too.
* Retransmitted requests are absorbed: the layer re-sends the last response
  (Proceeding / Completed) and yields nothing.
* The TU answers with ``send_response(key, response, now)``; the layer picks
  the destination (reliable: the connection the request came on, i.e. the
  source ``Addr`` with its ``conn_id``; unreliable: §18.2.2 + RFC 3581 §4,
  i.e. ``received`` host and ``rport`` port) and runs the retransmission
  timers (G for non-2xx final responses to INVITE over UDP).
* INVITE: if the TU sends no provisional within 200 ms the layer sends
  ``100 Trying`` itself (§17.2.1).  Non-INVITE never gets an automatic 100.
* 2xx to INVITE moves the server transaction to the RFC 6026 "Accepted" state
  (Timer L = 64*T1).  The layer does **not** retransmit 2xx responses: that
  is the UAS core's job (§13.3.1.4).  While Accepted the TU may pass 2xx
  retransmissions through ``send_response`` (they are sent to the same
  destination), retransmitted INVITEs are absorbed, and ACKs are passed up as
  ``AckReceived``.  After the transaction is gone the TU can still compute
  the destination with :func:`response_destination`.
* ACK for a non-2xx final response is absorbed by the INVITE server
  transaction (Completed -> Confirmed).  Any other ACK (ACK for 2xx: new
  branch) is passed up as ``AckReceived(request, source)``.
* CANCEL (§9.2): the layer matches it to the INVITE server transaction and
  answers the CANCEL itself: ``200 OK`` if the INVITE transaction exists (To
  tag = the tag of the INVITE's responses, or a fresh tag, reported in
  ``CancelReceived.to_tag``), ``481`` if it does not.  If the INVITE has not
  yet had a final response (Proceeding) the layer yields
  ``CancelReceived(invite_key, cancel_request, source, to_tag)``; the **TU**
  must then send ``487 Request Terminated`` for the INVITE via
  ``send_response(invite_key, ...)`` (and stop ringing/forking).  If the
  INVITE already has a final response the CANCEL is answered 200 and nothing
  is reported.  CANCEL retransmissions are absorbed (200 re-sent).

Client side (requests sent):

* ``send_request(request, dest, reliable, now) -> (key, events)``.  The
  caller has already put a unique branch in the top Via (``new_branch()``).
  Responses are matched by (branch, CSeq method) and passed up as
  ``ResponseReceived(key, response)``; unmatched ones are ``StrayResponse``.
* INVITE: the layer generates and retransmits the ACK for 300-699 responses
  (§17.1.1.3).  ACK for 2xx is the TU's job (send it with ``Transmit`` /
  ``send_stateless``); the transaction stays "Accepted" for 64*T1 (RFC 6026)
  so that 2xx retransmissions and forked 2xx are still passed up.
* Timer B / F expiry yields ``Timeout(key)``; Timer H expiry (no ACK for a
  non-2xx final) yields ``Timeout(key)`` on the server side.
* ``transport_error(key, now)`` lets the transport report a failed send:
  ``TransportError(key)`` + ``TransactionTerminated(key)``.

Every transaction, client or server, ends with exactly one
``TransactionTerminated(key)`` event and is then forgotten.

Timers (T1=0.5, T2=4, T4=5 by default; all configurable)
========================================================

======  ==========================================  ===========  ==========
timer   meaning                                     UDP          TCP/TLS
======  ==========================================  ===========  ==========
A       INVITE request retransmit (doubling)        T1, 2T1 ...  --
B       INVITE transaction timeout (Calling only)   64*T1        64*T1
C       optional, ``timer_c=`` (proxy/safety net)   off          off
D       wait for final retransmissions (ICT)        32 s         0
E       non-INVITE retransmit (min(2x, T2); T2 in   T1 ...       --
        Proceeding)
F       non-INVITE transaction timeout              64*T1        64*T1
G       non-2xx final retransmit (IST)              T1 ... T2    --
H       wait for ACK (IST)                          64*T1        64*T1
I       absorb ACK retransmissions (IST)            T4           0
J       absorb request retransmissions (NIST)       64*T1        0
K       absorb response retransmissions (NICT)      T4           0
L / M   RFC 6026 Accepted state (IST / ICT)         64*T1        64*T1
T100    automatic 100 Trying (IST)                  0.2 s        0.2 s
======  ==========================================  ===========  ==========

"0" means the transition happens inside the call that caused it (the
``TransactionTerminated`` event is in the same returned list).

Keys are tuples (``ClientKey``, ``ServerKey``, ``LegacyServerKey``); timers
live in one heap of ``(deadline, seq, txn, name)`` with lazy cancellation
(compacted when dead entries dominate).  Nothing is kept after termination.
Note: INVITE server transactions in Proceeding and non-INVITE server
transactions in Trying/Proceeding have no timer: the TU must always answer.
INVITE client transactions in Proceeding have none either unless ``timer_c``
is set.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, cast

from sip.message import Method, Request, Response, Via, make_response

__all__ = [
    "MAGIC_COOKIE",
    "AckReceived",
    "Addr",
    "CancelReceived",
    "ClientKey",
    "Event",
    "LegacyServerKey",
    "RequestReceived",
    "ResponseReceived",
    "ServerKey",
    "State",
    "StrayResponse",
    "Terminated",
    "Timeout",
    "TransactionLayer",
    "TransactionTerminated",
    "Transmit",
    "TransportError",
    "fix_via",
    "new_branch",
    "new_tag",
    "response_destination",
]

MAGIC_COOKIE = "z9hG4bK"


# --------------------------------------------------------------------------
# Addresses, keys, events
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Addr:
    """Where a message came from / goes to.

    ``transport`` is upper-case ('UDP', 'TCP', 'TLS', 'WS', 'WSS');
    ``host`` is an IP address (IPv6 without brackets) or, for client
    destinations, whatever the transport layer accepts; ``conn_id`` identifies
    the stream connection (or the UDP socket) a message arrived on so that
    replies can go back over it.
    """

    transport: str
    host: str
    port: int
    conn_id: int | None = None


class ClientKey(NamedTuple):
    """§17.1.3: branch of the top Via + CSeq method."""

    branch: str
    method: str


class ServerKey(NamedTuple):
    """§17.2.3: branch + sent-by + method (ACK uses INVITE)."""

    branch: str
    host: str
    port: int | None
    method: str


class LegacyServerKey(NamedTuple):
    """§17.2.3 RFC 2543 fallback (no magic cookie in the branch)."""

    uri: str
    to_tag: str | None
    from_tag: str | None
    call_id: str
    cseq: int
    via: object  # the top Via (frozen dataclass, hashable)
    method: str


Key = ClientKey | ServerKey | LegacyServerKey


@dataclass(frozen=True, slots=True)
class Transmit:
    data: bytes
    dest: Addr


@dataclass(frozen=True, slots=True)
class RequestReceived:
    key: Key
    request: Request
    source: Addr


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    key: ClientKey
    response: Response


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK that belongs to no transaction (ACK for a 2xx), for the TU."""

    request: Request
    source: Addr


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched a server transaction still awaiting its final response.

    The layer has already answered the CANCEL with 200.  The TU must send
    487 on ``invite_key``; ``to_tag`` is the To tag the layer used in the 200
    (reuse it in the 487 if the TU has not chosen one yet).
    """

    invite_key: Key
    cancel_request: Request
    source: Addr
    to_tag: str | None = None


@dataclass(frozen=True, slots=True)
class Timeout:
    key: Key


@dataclass(frozen=True, slots=True)
class TransportError:
    key: Key


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    key: Key


Terminated = TransactionTerminated  # name used in sip/CONTRACT.md


@dataclass(frozen=True, slots=True)
class StrayResponse:
    response: Response


Event = (
    Transmit
    | RequestReceived
    | ResponseReceived
    | AckReceived
    | CancelReceived
    | Timeout
    | TransportError
    | TransactionTerminated
    | StrayResponse
)


class State(StrEnum):
    """Transaction states (a StrEnum: compares equal to the RFC state names)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026
    TERMINATED = "Terminated"


CALLING = State.CALLING
TRYING = State.TRYING
PROCEEDING = State.PROCEEDING
COMPLETED = State.COMPLETED
CONFIRMED = State.CONFIRMED
ACCEPTED = State.ACCEPTED
TERMINATED = State.TERMINATED

# transaction kinds
ICT = "invite_client"
NICT = "non_invite_client"
IST = "invite_server"
NIST = "non_invite_server"


def new_branch() -> str:
    """A fresh RFC 3261 branch: magic cookie + 96 random bits."""
    return MAGIC_COOKIE + os.urandom(12).hex()


def new_tag() -> str:
    return os.urandom(6).hex()


_DEFAULT_PORT = {"TLS": 5061, "WSS": 443, "WS": 80}


def _strip_brackets(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


# Request.vias is a caching non-data descriptor (instance __dict__ wins): _fix_via
# primes it on the Via-updated copy so the new top Via is not parsed again.
_vias_desc = getattr(Request, "vias", None)
_VIAS_CACHED = (
    _vias_desc is not None and not isinstance(_vias_desc, property) and not hasattr(type(_vias_desc), "__set__")
)
del _vias_desc


def _fix_via(request: Request, source: Addr) -> tuple[Request, Via]:
    """RFC 3261 §18.2.1 + RFC 3581 §4: add received / fill rport in the top Via.

    Returns ``(request, top_via)``: the (possibly new) request and its top Via.
    """
    via = request.top_via
    rport = via.rport
    params: dict[str, str] = {}
    if rport is not None or _strip_brackets(via.host).lower() != source.host.lower():
        params["received"] = source.host
    if rport == "":
        params["rport"] = str(source.port)
    if not params:
        return request, via
    new_via = via.with_params(**params)
    headers = request.headers
    vias = headers.get_all("Via")
    new = request.replace(headers=headers.replace("Via", [str(new_via), *vias[1:]]))
    # Prime the cached Via list of the copy so it is not parsed a second time.
    if _VIAS_CACHED:
        try:
            new.__dict__["vias"] = [new_via, *request.vias[1:]]
        except Exception:  # pragma: no cover - unparsable lower Via: parsed lazily later
            pass
    return new, new_via


def fix_via(request: Request, source: Addr) -> Request:
    """Public form of the §18.2.1 / RFC 3581 top-Via update (for stateless
    responses built outside a transaction): returns the request with
    ``received``/``rport`` set as a server transaction would set them."""
    return _fix_via(request, source)[0]


def response_destination(via: Via, source: Addr, reliable: bool) -> Addr:
    """Where responses to a request with top Via ``via`` from ``source`` go.

    Reliable transports: back over the connection the request arrived on
    (the source Addr, conn_id included).  Unreliable: §18.2.2 with RFC 3581:
    maddr if present, else the ``received`` host (or the sent-by host) and the
    ``rport`` port (or the sent-by port, or the transport default).
    ``via`` should be the top Via *after* ``_fix_via`` (as in
    ``RequestReceived.request.top_via``).
    """
    if reliable:
        return source
    transport = source.transport
    port = via.port or _DEFAULT_PORT.get(transport, 5060)
    maddr = None
    for name, value in via.params:
        if name == "maddr":
            maddr = value
            break
    if maddr:
        return Addr(transport, _strip_brackets(maddr), port, source.conn_id)
    rport = via.rport
    if rport:
        try:
            port = int(rport)
        except ValueError:
            pass
    host = via.received or _strip_brackets(via.host)
    return Addr(transport, host, port, source.conn_id)


# --------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------


class _Txn:
    __slots__ = (
        "ack_bytes",
        "dest",
        "interval",
        "key",
        "kind",
        "last_bytes",
        "last_status",
        "reliable",
        "request",
        "source",
        "state",
        "timers",
        "to_tag",
    )

    def __init__(self, key: Key, kind: str, state: State, request: Request, dest: Addr, reliable: bool) -> None:
        self.key = key
        self.kind = kind
        self.state = state
        #: None once a non-INVITE server transaction has answered (only bytes are kept)
        self.request: Request | None = request
        self.dest = dest
        self.reliable = reliable
        self.last_bytes: bytes | None = None  # server: last response sent; client: request bytes
        self.last_status = 0  # server: status of last response sent
        self.timers: dict[str, int] = {}  # timer name -> seq of the live heap entry
        self.interval = 0.0  # current retransmission interval (A/E/G)
        self.to_tag: str | None = None  # server: To tag of our responses
        self.ack_bytes: bytes | None = None  # client INVITE: ACK for the non-2xx final
        self.source: Addr | None = None  # server: where the request came from

    def resend(self, data: bytes | None) -> Transmit:
        """A retransmission of ``data`` (last_bytes / ack_bytes, set in every state that resends)."""
        assert data is not None
        return Transmit(data, self.dest)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<_Txn {self.kind} {self.state} {self.key}>"


class TransactionLayer:
    """All client and server transactions of one SIP endpoint."""

    def __init__(
        self,
        *,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        timer_d: float = 32.0,
        trying_delay: float = 0.2,
        rfc6026: bool = True,
        timer_c: float | None = None,
    ):
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.timer_d = timer_d  # §17.1.1.2: "at least 32 seconds" over UDP
        self.trying_delay = trying_delay  # §17.2.1: 100 Trying if TU silent for 200 ms
        self.rfc6026 = rfc6026  # Accepted state for 2xx to INVITE
        # Timer C (§16.6 step 11, > 3 min; off by default as for a UA).  When it
        # fires in Calling/Proceeding the TU gets Timeout(key) and should CANCEL;
        # the transaction then lives another 64*T1 to receive (and ACK) the 487,
        # and is dropped after that.  Bounds the life of an INVITE client
        # transaction whose UAS never sends a final response.
        self.timer_c = timer_c
        self._client: dict[Key, _Txn] = {}
        self._server: dict[Key, _Txn] = {}
        self._heap: list[tuple[float, int, _Txn, str]] = []
        self._seq = 0
        self._counts = {ICT: 0, NICT: 0, IST: 0, NIST: 0}

    # -- introspection ----------------------------------------------------

    def __len__(self) -> int:
        return len(self._client) + len(self._server)

    def stats(self) -> dict[str, int]:
        d = dict(self._counts)
        d["client"] = len(self._client)
        d["server"] = len(self._server)
        d["total"] = len(self._client) + len(self._server)
        d["timers_queued"] = len(self._heap)
        return d

    def state(self, key: Key) -> State | None:
        """State of the transaction ``key`` (None once it is gone)."""
        txn = self._client.get(key) if type(key) is ClientKey else self._server.get(key)
        return txn.state if txn is not None else None

    def unanswered(self) -> int:
        """Server transactions still waiting for the TU's final answer (Trying / Proceeding)."""
        return sum(1 for txn in self._server.values() if txn.state is TRYING or txn.state is PROCEEDING)

    def server_request(self, key: Key) -> Request | None:
        """The (Via-updated) request of a live server transaction, or None."""
        txn = self._server.get(key)
        return txn.request if txn is not None else None

    def server_to_tag(self, key: Key) -> str | None:
        """The To tag used so far in responses of server transaction ``key``."""
        txn = self._server.get(key)
        return txn.to_tag if txn is not None else None

    # -- timers -----------------------------------------------------------

    def _arm(self, txn: _Txn, name: str, delay: float, now: float) -> None:
        self._seq = seq = self._seq + 1
        txn.timers[name] = seq
        heapq.heappush(self._heap, (now + delay, seq, txn, name))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            _, seq, txn, name = heap[0]
            if txn.timers.get(name) == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def tick(self, now: float) -> list[Event]:
        events: list[Event] = []
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            _, seq, txn, name = pop(heap)
            timers = txn.timers
            if timers.get(name) != seq:
                continue
            del timers[name]
            self._fire(txn, name, now, events)
        # compact the heap when lazily-cancelled entries dominate
        if len(heap) > 1024 and len(heap) > 8 * (len(self._client) + len(self._server)):
            self._heap = heap = [e for e in heap if e[2].timers.get(e[3]) == e[1]]
            heapq.heapify(heap)
        return events

    def _terminate(self, txn: _Txn, events: list[Event]) -> None:
        txn.state = TERMINATED
        txn.timers.clear()
        if txn.kind is ICT or txn.kind is NICT:
            if self._client.pop(txn.key, None) is None:
                return
        else:
            if self._server.pop(txn.key, None) is None:
                return
        self._counts[txn.kind] -= 1
        events.append(TransactionTerminated(txn.key))

    def _fire(self, txn: _Txn, name: str, now: float, events: list[Event]) -> None:
        state = txn.state
        if name == "A":  # ICT retransmit (Calling)
            if state is CALLING:
                events.append(txn.resend(txn.last_bytes))
                txn.interval *= 2
                self._arm(txn, "A", txn.interval, now)
        elif name == "E":  # NICT retransmit
            if state is TRYING:
                events.append(txn.resend(txn.last_bytes))
                txn.interval = min(txn.interval * 2, self.t2)
                self._arm(txn, "E", txn.interval, now)
            elif state is PROCEEDING:
                events.append(txn.resend(txn.last_bytes))
                txn.interval = self.t2
                self._arm(txn, "E", self.t2, now)
        elif name == "B" or name == "F" or name == "H":  # transaction timeouts
            events.append(Timeout(txn.key))
            self._terminate(txn, events)
        elif name == "G":  # IST: retransmit non-2xx final
            if state is COMPLETED:
                events.append(txn.resend(txn.last_bytes))
                txn.interval = min(txn.interval * 2, self.t2)
                self._arm(txn, "G", txn.interval, now)
        elif name == "C":  # ICT: Timer C (proxy / safety net)
            if state is CALLING or state is PROCEEDING:
                events.append(Timeout(txn.key))
                timers = txn.timers
                timers.pop("A", None)
                timers.pop("B", None)
                self._arm(txn, "C2", 64 * self.t1, now)
        elif name == "T100":  # IST: automatic 100 Trying
            if state is PROCEEDING and txn.last_bytes is None and txn.request is not None:
                resp = make_response(txn.request, 100)
                data = resp.to_bytes()
                txn.last_bytes = data
                txn.last_status = 100
                events.append(Transmit(data, txn.dest))
        else:  # D, I, J, K, L, M: wait timers
            self._terminate(txn, events)

    # -- entry points -----------------------------------------------------

    def receive(self, msg: Request | Response, source: Addr, reliable: bool, now: float) -> list[Event]:
        """Feed one parsed message (Request or Response) from the network."""
        # told apart by shape, not class: the tests feed stand-in messages
        if getattr(msg, "method", None) is None:
            return self._receive_response(cast(Response, msg), now)
        return self._receive_request(cast(Request, msg), source, reliable, now)

    def transport_error(self, key: Key, now: float) -> list[Event]:
        """§17.1.4 / §17.2.4: the transport failed to send for ``key``."""
        txn = self._client.get(key) if type(key) is ClientKey else self._server.get(key)
        if txn is None:
            return []
        events: list[Event] = [TransportError(key)]
        self._terminate(txn, events)
        return events

    @staticmethod
    def send_stateless(msg: Request | Response, dest: Addr) -> list[Event]:
        """Send outside any transaction (ACK for 2xx, 2xx retransmissions)."""
        return [Transmit(msg.to_bytes(), dest)]

    # -- client side ------------------------------------------------------

    def send_request(self, request: Request, dest: Addr, reliable: bool, now: float) -> tuple[ClientKey, list[Event]]:
        """Start a client transaction; returns ``(key, events)``.

        The top Via branch must already be set (``new_branch()``).  ACK is not
        a transaction: use ``send_stateless``.
        """
        method = request.method
        if method == Method.ACK:
            raise ValueError("ACK is not sent in a client transaction; use send_stateless")
        branch = request.top_via.branch
        if not branch:
            raise ValueError("request has no branch in its top Via")
        key = ClientKey(branch, method)
        if key in self._client:
            raise ValueError(f"client transaction {key} already exists")
        data = request.to_bytes()
        if method == Method.INVITE:
            txn = _Txn(key, ICT, CALLING, request, dest, reliable)
            if not reliable:
                txn.interval = self.t1
                self._arm(txn, "A", self.t1, now)
            self._arm(txn, "B", 64 * self.t1, now)
            if self.timer_c is not None:
                self._arm(txn, "C", self.timer_c, now)
        else:
            txn = _Txn(key, NICT, TRYING, request, dest, reliable)
            if not reliable:
                txn.interval = self.t1
                self._arm(txn, "E", self.t1, now)
            self._arm(txn, "F", 64 * self.t1, now)
        txn.last_bytes = data
        self._client[key] = txn
        self._counts[txn.kind] += 1
        return key, [Transmit(data, dest)]

    def _receive_response(self, resp: Response, now: float) -> list[Event]:
        try:
            via = resp.top_via
            key = ClientKey(via.branch or "", resp.cseq[1])
        except Exception:
            return [StrayResponse(resp)]
        txn = self._client.get(key)
        if txn is None:
            return [StrayResponse(resp)]
        status = resp.status
        state = txn.state
        events: list[Event] = []
        timers = txn.timers
        if txn.kind is ICT:
            if state is CALLING or state is PROCEEDING:
                if status < 200:
                    if state is CALLING:
                        txn.state = PROCEEDING
                        timers.pop("A", None)
                        timers.pop("B", None)
                    if self.timer_c is not None and "C2" not in timers:
                        self._arm(txn, "C", self.timer_c, now)  # reset on provisional
                    events.append(ResponseReceived(key, resp))
                elif status < 300:
                    events.append(ResponseReceived(key, resp))
                    if self.rfc6026:
                        txn.state = ACCEPTED
                        timers.clear()
                        self._arm(txn, "M", 64 * self.t1, now)
                    else:
                        self._terminate(txn, events)
                else:
                    events.append(ResponseReceived(key, resp))
                    assert txn.request is not None  # client transactions keep their request
                    txn.ack_bytes = ack = _build_ack(txn.request, resp)
                    events.append(Transmit(ack, txn.dest))
                    txn.state = COMPLETED
                    timers.clear()
                    if txn.reliable:
                        self._terminate(txn, events)
                    else:
                        self._arm(txn, "D", self.timer_d, now)
            elif state is COMPLETED and status >= 300:
                events.append(txn.resend(txn.ack_bytes))
            elif state is ACCEPTED and 200 <= status < 300:
                events.append(ResponseReceived(key, resp))
        else:  # NICT
            if state is TRYING or state is PROCEEDING:
                events.append(ResponseReceived(key, resp))
                if status < 200:
                    txn.state = PROCEEDING
                else:
                    txn.state = COMPLETED
                    timers.clear()
                    if txn.reliable:
                        self._terminate(txn, events)
                    else:
                        self._arm(txn, "K", self.t4, now)
            # Completed: absorb retransmitted finals
        return events

    # -- server side ------------------------------------------------------

    def _server_key(self, request: Request, method: str) -> ServerKey | LegacyServerKey:
        """Key of the server transaction ``request`` belongs to, as if its
        method were ``method`` (INVITE for ACK/CANCEL matching)."""
        via = request.top_via
        branch = via.branch
        if branch and branch.startswith(MAGIC_COOKIE):
            return ServerKey(branch, via.host.lower(), via.port, method)
        return LegacyServerKey(
            str(request.uri), request.to.tag, request.from_.tag, request.call_id, request.cseq[0], via, method
        )

    def _receive_request(self, req: Request, source: Addr, reliable: bool, now: float) -> list[Event]:
        method = req.method
        try:
            if method == Method.ACK:
                return self._receive_ack(req, source, now)
            key = self._server_key(req, method)
        except Exception:
            return []  # no usable Via / CSeq: cannot be matched or answered
        txn = self._server.get(key)
        if txn is not None:
            return self._retransmitted_request(txn)
        if method == Method.CANCEL:
            return self._receive_cancel(req, key, source, reliable, now)
        req, via = _fix_via(req, source)
        dest = response_destination(via, source, reliable)
        if method == Method.INVITE:
            txn = _Txn(key, IST, PROCEEDING, req, dest, reliable)
            self._arm(txn, "T100", self.trying_delay, now)
        else:
            txn = _Txn(key, NIST, TRYING, req, dest, reliable)
        txn.source = source
        self._server[key] = txn
        self._counts[txn.kind] += 1
        return [RequestReceived(key, req, source)]

    def _retransmitted_request(self, txn: _Txn) -> list[Event]:
        state = txn.state
        if txn.kind is IST:
            if (state is PROCEEDING or state is COMPLETED) and txn.last_bytes is not None:
                return [txn.resend(txn.last_bytes)]
            # Accepted / Confirmed: absorb
            return []
        if state is PROCEEDING or state is COMPLETED:
            return [txn.resend(txn.last_bytes)]
        return []  # Trying: discard

    def _receive_ack(self, req: Request, source: Addr, now: float) -> list[Event]:
        via = req.top_via
        branch = via.branch
        if branch and branch.startswith(MAGIC_COOKIE):
            txn = self._server.get(ServerKey(branch, via.host.lower(), via.port, Method.INVITE))
        else:
            uri = str(req.uri)
            ack_to_tag = req.to.tag
            from_tag = req.from_.tag
            call_id = req.call_id
            cseq = req.cseq[0]
            txn = self._server.get(LegacyServerKey(uri, None, from_tag, call_id, cseq, via, Method.INVITE))
            if txn is not None and txn.to_tag is not None and ack_to_tag != txn.to_tag:
                txn = None  # ACK for another UAS's response
            if txn is None and ack_to_tag is not None:
                txn = self._server.get(LegacyServerKey(uri, ack_to_tag, from_tag, call_id, cseq, via, Method.INVITE))
        if txn is None or txn.kind is not IST:
            return [AckReceived(req, source)]
        state = txn.state
        if state is COMPLETED:
            events: list[Event] = []
            txn.state = CONFIRMED
            txn.timers.clear()
            if txn.reliable:
                self._terminate(txn, events)
            else:
                self._arm(txn, "I", self.t4, now)
            return events
        if state is ACCEPTED:
            return [AckReceived(req, source)]
        return []  # Confirmed: absorb; Proceeding: stray ACK, drop

    def _receive_cancel(
        self, req: Request, key: ServerKey | LegacyServerKey, source: Addr, reliable: bool, now: float
    ) -> list[Event]:
        invite = self._server.get(key._replace(method=Method.INVITE))
        req, via = _fix_via(req, source)
        dest = response_destination(via, source, reliable)
        events: list[Event] = []
        txn = _Txn(key, NIST, TRYING, req, dest, reliable)
        txn.source = source
        self._server[key] = txn
        self._counts[NIST] += 1
        if invite is None:
            resp = make_response(req, 481, to_tag=new_tag())
            self._send_nist(txn, resp, events, now)
            return events
        if invite.to_tag is None:
            invite.to_tag = new_tag()
        to_tag = invite.to_tag
        self._send_nist(txn, make_response(req, 200, to_tag=to_tag), events, now)
        if invite.state is PROCEEDING or invite.state is TRYING:
            events.append(CancelReceived(invite.key, req, source, to_tag))
        return events

    def send_response(self, key: Key, response: Response, now: float) -> list[Event]:
        """The TU answers server transaction ``key``.

        Returns [] if the transaction no longer exists or the response is not
        allowed in its state (e.g. a second final response).
        """
        txn = self._server.get(key)
        if txn is None:
            return []
        events: list[Event] = []
        status = response.status
        if txn.to_tag is None and status > 100:
            try:
                txn.to_tag = response.to.tag
            except Exception:
                pass
        state = txn.state
        if txn.kind is IST:
            if state is PROCEEDING:
                txn.timers.pop("T100", None)
                data = response.to_bytes()
                txn.last_bytes = data
                txn.last_status = status
                events.append(Transmit(data, txn.dest))
                if status < 200:
                    pass
                elif status < 300:
                    if self.rfc6026:
                        txn.state = ACCEPTED
                        txn.timers.clear()
                        self._arm(txn, "L", 64 * self.t1, now)
                    else:
                        self._terminate(txn, events)
                else:
                    txn.state = COMPLETED
                    txn.timers.clear()
                    if not txn.reliable:
                        txn.interval = self.t1
                        self._arm(txn, "G", self.t1, now)
                    self._arm(txn, "H", 64 * self.t1, now)
            elif state is ACCEPTED and 200 <= status < 300:
                data = response.to_bytes()
                txn.last_bytes = data
                events.append(Transmit(data, txn.dest))
            return events
        if state is TRYING or state is PROCEEDING:
            self._send_nist(txn, response, events, now)
        return events

    def _send_nist(self, txn: _Txn, response: Response, events: list[Event], now: float) -> None:
        data = response.to_bytes()
        txn.last_bytes = data
        status = txn.last_status = response.status
        events.append(Transmit(data, txn.dest))
        if status < 200:
            txn.state = PROCEEDING
        else:
            txn.state = COMPLETED
            if txn.reliable:
                self._terminate(txn, events)
            else:
                # Completed only absorbs retransmissions with last_bytes for Timer J
                # (32 s): drop the parsed request so a busy registrar's memory stays
                # proportional to bytes on the wire, not to parsed messages.
                txn.request = None
                self._arm(txn, "J", 64 * self.t1, now)


def _build_ack(invite: Request, resp: Response) -> bytes:
    """§17.1.1.3: ACK for a non-2xx final response, as wire bytes."""
    h = invite.headers
    lines = [f"ACK {invite.uri} SIP/2.0", f"Via: {h.get_all('Via')[0]}"]
    for route in h.get_all("Route"):
        lines.append(f"Route: {route}")
    lines.append(f"From: {h.get('From')}")
    lines.append(f"To: {resp.headers.get('To')}")
    lines.append(f"Call-ID: {invite.call_id}")
    lines.append(f"CSeq: {invite.cseq[0]} ACK")
    lines.append("Max-Forwards: 70")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
