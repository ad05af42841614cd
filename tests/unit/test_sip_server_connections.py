"""sip/server.py, outbound side: the one way to reach an address over TCP/TLS.

* TLS client connections verify the peer's certificate (system CA store, hostname
  checked); a peer marked ``TlsPeer(verify=False)`` (a trunk's ``--tls-no-verify``) is
  connected without verification, and every such connection is logged as a warning.
* Sends waiting for the same address share one connection attempt.
* Every task the server starts is cancelled and awaited by ``stop()``: none is left pending.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest

from sip.digest import NonceManager
from sip.guard import AbuseGuard
from sip.location import LocationService
from sip.message import Request, StreamFramer, make_response, parse_message
from sip.registrar import Registrar
from sip.server import SipServer, TlsPeer
from sip.transaction import Addr, ResponseReceived, TransportError, new_branch
from tests.integration.harness import self_signed_cert


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (not in any CA store)."""
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def make_server(**kw: object) -> SipServer:
    registrar = Registrar("test", LocationService(), NonceManager(), lambda user: None)
    return SipServer(registrar=registrar, guard=AbuseGuard(), **kw)  # type: ignore[arg-type]


def options(port: int, transport: str = "TLS") -> Request:
    raw = (
        f"OPTIONS sip:provider@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:5061;branch={new_branch()}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=1\r\nTo: <sip:provider@127.0.0.1>\r\n"
        f"Call-ID: {new_branch()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    req = parse_message(raw)
    assert isinstance(req, Request)
    return req


class Provider:
    """A TLS (or plain TCP) SIP peer: answers every request 200 and counts connections."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[Request] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Provider:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                for item in framer.feed(data):
                    if isinstance(item, bytes):
                        req = parse_message(item)
                        assert isinstance(req, Request)
                        self.requests.append(req)
                        writer.write(make_response(req, 200).to_bytes())
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def send_and_wait(server: SipServer, port: int, transport: str = "TLS") -> object:
    done: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def on_event(ev: object) -> None:
        if not done.done():
            done.set_result(ev)

    server.send_own(options(port, transport), Addr(transport, "127.0.0.1", port), on_event)
    return await asyncio.wait_for(done, 10)


def test_tls_to_a_self_signed_peer_fails_verification_by_default(self_signed, caplog):
    async def go() -> None:
        async with Provider(server_context(*self_signed)) as provider:
            server = make_server()
            await server.start([])
            try:
                with caplog.at_level(logging.INFO, logger="sip.server"):
                    ev = await send_and_wait(server, provider.port)
            finally:
                await server.stop(drain_timeout=0)
            assert type(ev) is TransportError
            assert provider.requests == []
            [refused] = [r for r in caplog.records if "certificate not accepted" in r.getMessage()]
            assert refused.levelno == logging.WARNING and f"127.0.0.1:{provider.port}" in refused.getMessage()
            assert "WITHOUT certificate verification" not in caplog.text

    asyncio.run(go())


def test_tls_peer_that_opted_out_is_reached_unverified_and_logged(self_signed, caplog):
    async def go() -> None:
        async with Provider(server_context(*self_signed)) as provider:

            def policy(addr: Addr) -> TlsPeer | None:
                if addr.port == provider.port:
                    return TlsPeer("sip.provider.example", verify=False, label="trunk acme")
                return None

            server = make_server(tls_policy=policy)
            await server.start([])
            try:
                with caplog.at_level(logging.WARNING, logger="sip.server"):
                    first = await send_and_wait(server, provider.port)
                    second = await send_and_wait(server, provider.port)  # reuses the connection
            finally:
                await server.stop(drain_timeout=0)
            assert type(first) is ResponseReceived and first.response.status == 200
            assert type(second) is ResponseReceived and second.response.status == 200
            assert [r.method for r in provider.requests] == ["OPTIONS", "OPTIONS"]
            assert provider.connections == 1
            warnings = [r for r in caplog.records if "WITHOUT certificate verification" in r.getMessage()]
            assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
            assert "trunk acme" in warnings[0].getMessage()

    asyncio.run(go())


def test_tls_verification_checks_the_peer_name(self_signed):
    """With the certificate's issuer trusted, the name decides: 127.0.0.1 passes, another fails."""
    cert, key = self_signed

    async def go(name: str) -> object:
        async with Provider(server_context(cert, key)) as provider:
            server = make_server(tls_policy=lambda addr: TlsPeer(name))
            server._tls_verifying = ssl.create_default_context(cafile=str(cert))  # trust the test issuer
            await server.start([])
            try:
                return await send_and_wait(server, provider.port)
            finally:
                await server.stop(drain_timeout=0)

    ok = asyncio.run(go("127.0.0.1"))
    assert type(ok) is ResponseReceived and ok.response.status == 200
    assert type(asyncio.run(go("sip.other.example"))) is TransportError


def test_sends_waiting_for_one_address_share_one_connection():
    async def go() -> None:
        async with Provider(None) as provider:
            server = make_server()
            await server.start([])
            events: list[object] = []
            try:
                for _ in range(3):
                    server.send_own(
                        options(provider.port, "TCP"), Addr("TCP", "127.0.0.1", provider.port), events.append
                    )
                for _ in range(100):
                    if len(events) == 3:
                        break
                    await asyncio.sleep(0.02)
            finally:
                await server.stop(drain_timeout=0)
            assert [type(e) for e in events] == [ResponseReceived] * 3
            assert provider.connections == 1

    asyncio.run(go())


def test_stop_cancels_and_awaits_every_task():
    """A TLS handshake that never completes (the peer accepts and stays silent) leaves
    connection tasks running; stop() cancels and awaits them all."""

    async def go() -> None:
        silent: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            silent.append(writer)

        peer = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = peer.sockets[0].getsockname()[1]
        server = make_server()
        await server.start([])
        events: list[object] = []
        for _ in range(3):
            server.send_own(options(port), Addr("TLS", "127.0.0.1", port), events.append)
        await asyncio.sleep(0.1)
        started = set(server._tasks)
        assert len(started) == 4  # one shared TLS attempt, three sends waiting on it
        await server.stop(drain_timeout=0)
        assert all(t.done() for t in started)
        assert server._tasks == set()
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        for w in silent:
            w.close()
        peer.close()
        await peer.wait_closed()

    asyncio.run(go())
