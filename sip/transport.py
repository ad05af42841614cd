"""The thin asyncio layer that owns the SIP sockets (RFC 3261 §18).

Everything above it is sans-I/O: this module turns datagrams and stream bytes into
``(bytes, Addr)`` deliveries and sends bytes to an ``Addr``. Stream transports (TCP,
TLS) are framed with :class:`sip.message.StreamFramer`; a CRLFCRLF keep-alive is
answered with a single CRLF (RFC 5626 §3.5.1) and an unframeable stream closes the
connection (RFC 3261 §18.3).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sip.message import FramingError, Keepalive, StreamFramer
from sip.transaction import Addr

log = logging.getLogger(__name__)

Deliver = Callable[[bytes, Addr], None]

#: Connections idle for this long (no bytes either way) are closed. Phones that keep a
#: TCP/TLS flow open send keep-alives or re-register well within it.
STREAM_IDLE_TIMEOUT = 900.0
#: A hard cap on simultaneous stream connections, so a flood cannot exhaust descriptors.
MAX_CONNECTIONS = 2048


@dataclass(frozen=True)
class Listener:
    transport: str
    host: str
    port: int


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: TransportLayer, transport_name: str) -> None:
        self.owner = owner
        self.name = transport_name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, int]) -> None:
        self.owner._deliver(data, Addr("UDP", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.
        log.debug("udp error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, owner: TransportLayer, transport_name: str) -> None:
        self.owner = owner
        self.name = transport_name
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.conn_id = 0
        self.peer: tuple[str, int] = ("", 0)
        self.last_activity = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (peer[0], peer[1])
        if len(self.owner._conns) >= MAX_CONNECTIONS:
            log.warning("connection cap reached; refusing %s:%s", *self.peer)
            self.transport.abort()
            return
        self.conn_id = self.owner._register(self)
        self.last_activity = self.owner._loop.time()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.owner._loop.time()
        error: FramingError | None = None
        try:
            items = self.framer.feed(data)
        except FramingError as exc:
            # Messages framed before the error are whole: deliver them, then close.
            error, items = exc, list(getattr(exc, "messages", ()) or ())
        addr = Addr(self.name, self.peer[0], self.peer[1], self.conn_id)
        for item in items:
            if isinstance(item, Keepalive):
                # RFC 5626 §3.5.1: answer a double-CRLF ping with a single CRLF pong.
                self.write(b"\r\n")
            else:
                self.owner._deliver(item, addr)
            if self.transport is None or self.transport.is_closing():
                break
        if error is not None:
            log.info(
                "closing %s connection from %s:%s: unframeable stream (%s)",
                self.name,
                self.peer[0],
                self.peer[1],
                error.reason,
            )
            self.owner.counters["framing_errors"] += 1
            self.close()

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        self.last_activity = self.owner._loop.time()
        return True

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._unregister(self)
        self.transport = None


class TransportLayer:
    """Owns the listening sockets and the stream connections."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver_cb = deliver
        self._loop = asyncio.get_running_loop()
        self._udp: _Udp | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: dict[int, _Stream] = {}
        self._by_peer: dict[tuple[str, str, int], int] = {}
        self._ids = itertools.count(1)
        self.listeners: list[Listener] = []
        self.counters = {"framing_errors": 0, "send_failures": 0}
        self._reaper: asyncio.TimerHandle | None = None

    # -- listening -------------------------------------------------------------
    async def listen_udp(self, host: str, port: int) -> Listener:
        transport, proto = await self._loop.create_datagram_endpoint(lambda: _Udp(self, "UDP"), local_addr=(host, port))
        self._udp = proto
        sock = transport.get_extra_info("sockname")
        listener = Listener("UDP", sock[0], sock[1])
        self.listeners.append(listener)
        return listener

    async def listen_stream(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> Listener:
        name = "TLS" if ssl_context else "TCP"
        server = await self._loop.create_server(
            lambda: _Stream(self, name), host, port, ssl=ssl_context, reuse_address=True, backlog=512
        )
        self._servers.append(server)
        sock = server.sockets[0].getsockname()
        listener = Listener(name, sock[0], sock[1])
        self.listeners.append(listener)
        if self._reaper is None:
            self._reaper = self._loop.call_later(60.0, self._reap_idle)
        return listener

    # -- connections -----------------------------------------------------------
    def _register(self, conn: _Stream) -> int:
        cid = next(self._ids)
        self._conns[cid] = conn
        self._by_peer[(conn.name, conn.peer[0], conn.peer[1])] = cid
        return cid

    def _unregister(self, conn: _Stream) -> None:
        self._conns.pop(conn.conn_id, None)
        key = (conn.name, conn.peer[0], conn.peer[1])
        if self._by_peer.get(key) == conn.conn_id:
            del self._by_peer[key]

    def _reap_idle(self) -> None:
        now = self._loop.time()
        for conn in list(self._conns.values()):
            if now - conn.last_activity > STREAM_IDLE_TIMEOUT:
                conn.close()
        self._reaper = self._loop.call_later(60.0, self._reap_idle)

    def connection_count(self) -> int:
        return len(self._conns)

    def has_connection(self, dest: Addr) -> bool:
        """Whether ``send(data, dest)`` has an open stream connection to use."""
        if dest.conn_id is not None and dest.conn_id in self._conns:
            return True
        return (dest.transport, dest.host, dest.port) in self._by_peer

    async def connect(
        self,
        transport: str,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 5.0,
    ) -> Addr:
        """Open an outbound TCP (or, with ``ssl_context``, TLS) connection to ``host:port``,
        registered like an accepted one; returns its address (with ``conn_id``) for ``send``.
        Raises OSError (refused, unreachable, TLS handshake or certificate failure) or
        TimeoutError."""
        _, conn = await asyncio.wait_for(
            self._loop.create_connection(
                lambda: _Stream(self, transport),
                host,
                port,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context is not None else None,
            ),
            timeout,
        )
        return Addr(transport, host, port, conn.conn_id or None)

    # -- I/O ---------------------------------------------------------------------
    def _deliver(self, data: bytes, addr: Addr) -> None:
        try:
            self._deliver_cb(data, addr)
        except Exception:  # one bad message must never take the server down
            log.exception("error handling message from %s:%s", addr.host, addr.port)

    def send(self, data: bytes, dest: Addr) -> bool:
        """Send bytes to ``dest``: over the connection it names, or UDP."""
        if dest.transport == "UDP":
            if self._udp is None or self._udp.transport is None:
                self.counters["send_failures"] += 1
                return False
            self._udp.transport.sendto(data, (dest.host, dest.port))
            return True
        cid = dest.conn_id
        if cid is None or cid not in self._conns:
            cid = self._by_peer.get((dest.transport, dest.host, dest.port))
        conn = self._conns.get(cid) if cid is not None else None
        if conn is None or not conn.write(data):
            # Responses over a stream go back over the connection the request came
            # on (RFC 3261 §18.2.2); if it is gone, the response is lost.
            self.counters["send_failures"] += 1
            return False
        return True

    async def stop_listening(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def close(self) -> None:
        await self.stop_listening()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for conn in list(self._conns.values()):
            conn.close()
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
            self._udp = None
        await asyncio.sleep(0)
