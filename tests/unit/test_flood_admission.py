"""Distributed flood: stateless challenges and global admission control (issue 12).

* ``Proxy.stateless_challenge`` (sans-I/O): an out-of-dialog request with no credentials
  from an untrusted, non-trunk source gets its 407 with no state; anything else takes the
  stateful path.
* ``AbuseGuard.admit_new`` (sans-I/O): one global bucket for new requests without
  credentials from unknown sources; priority, exempt and recently authenticated sources
  are never refused by it.
* ``SipServer`` over a real UDP socket: a flood of unauthenticated INVITEs (and their
  retransmissions) from several addresses is challenged with no server transaction kept,
  and REGISTERs without credentials get their 401 the same way.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from sip import digest
from sip.auth import ProxyAuthenticator
from sip.guard import AbuseGuard
from sip.location import LocationService
from sip.message import Request, Response, parse_message
from sip.proxy import Proxy, RouteDecision
from sip.registrar import Registrar
from sip.server import ListenSpec, SipServer
from sip.transaction import Addr

REALM = "pypbx"
PW = "pw-1001"
CREDS = {"1001": {"MD5": digest.ha1("1001", REALM, PW, "MD5")}}
WORKER = Addr("UDP", "127.0.0.1", 17000)


def invite(n: int = 0, *, src: str = "192.0.2.10", to_tag: str | None = None, extra: str = "") -> bytes:
    return (
        f"INVITE sip:1002@pbx.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:5070;branch=z9hG4bKflood{n};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@pbx.example>;tag=f1\r\n"
        f"To: <sip:1002@pbx.example>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: flood-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{src}:5070>\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def register(n: int, src: str) -> bytes:
    return (
        f"REGISTER sip:pbx.example SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5070;branch=z9hG4bKreg{n};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@pbx.example>;tag=r1\r\nTo: <sip:1001@pbx.example>\r\n"
        f"Call-ID: reg-{n}\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@{src}:5070>\r\nExpires: 60\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def req(data: bytes) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    return m


def make_proxy(admit=None) -> Proxy:
    return Proxy(
        route=lambda r, s, u: RouteDecision.fork([(f"sip:{r.uri.user}@127.0.0.1:{WORKER.port}", WORKER)]),
        local_address=lambda t, h: ("203.0.113.1", 5060),
        is_local=lambda h, p: h == "203.0.113.1",
        secret=b"s" * 32,
        authenticator=ProxyAuthenticator(REALM, digest.NonceManager(b"k" * 32), CREDS.get),
        trusted=lambda a: a == WORKER,
        admit=admit,
    )


# ----------------------------------------------------------------------------- sans-I/O


def test_stateless_challenge_for_an_unauthenticated_invite() -> None:
    p = make_proxy()
    src = Addr("UDP", "192.0.2.10", 5070)
    resp = p.stateless_challenge(req(invite()), src, 1000.0)
    assert isinstance(resp, Response) and resp.status == 407
    assert resp.headers.get("Proxy-Authenticate", "").startswith("Digest ")
    # nothing kept: no context, no branch, no dialog
    assert p.stats()["contexts"] == 0 and p.stats()["branches"] == 0 and p.stats()["dialogs_tracked"] == 0
    assert p.stats()["stateless_challenges"] == 1
    # a retransmission is simply challenged again
    assert p.stateless_challenge(req(invite()), src, 1000.5).status == 407
    assert p.stats()["stateless_challenges"] == 2


def test_what_is_not_challenged_statelessly() -> None:
    p = make_proxy(admit=lambda r, s: True if s.host == "198.51.100.1" else None)
    src = Addr("UDP", "192.0.2.10", 5070)
    creds = 'Proxy-Authorization: Digest username="1001", realm="pypbx", nonce="x", uri="sip:1002@pbx.example", response="0"\r\n'
    assert p.stateless_challenge(req(invite(extra=creds)), src, 0.0) is None  # credentials: stateful check
    assert p.stateless_challenge(req(invite(to_tag="t1")), src, 0.0) is None  # in a dialog
    assert p.stateless_challenge(req(invite()), WORKER, 0.0) is None  # trusted
    assert p.stateless_challenge(req(invite()), Addr("UDP", "198.51.100.1", 5060), 0.0) is None  # a trunk
    refused = make_proxy(admit=lambda r, s: RouteDecision.reject(403))
    assert refused.stateless_challenge(req(invite()), src, 0.0) is None  # refused by the stateful path
    assert p.stats()["stateless_challenges"] == 0


def test_global_admission_spares_known_sources(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pypbx.security")
    g = AbuseGuard(max_new_per_second=10.0, exempt=["10.9.9.9"])
    admitted = sum(g.admit_new(f"192.0.2.{i % 100}", 0.0) for i in range(100))
    assert admitted == 20  # the burst (2 s worth), shared by every unknown source
    assert not g.admit_new("192.0.2.200", 0.0)
    assert g.admit_new("198.51.100.5", 0.0, priority=True)  # a registered phone's address
    assert g.admit_new("10.9.9.9", 0.0)  # exempt
    g.auth_ok("203.0.113.7", 0.0)
    assert g.admit_new("203.0.113.7", 0.0)  # authenticated recently
    assert g.admit_new("192.0.2.1", 1.0)  # refilled at the rate
    assert not g.is_known("203.0.113.7", g.known_ttl + 1.0)  # known for known_ttl only
    assert g.counters()["dropped_admission"] >= 81
    logged = [r.getMessage() for r in caplog.records if "admission-dropped" in r.getMessage()]
    assert len(logged) == 1 and "limit=10/s dropped=1" in logged[0]


def test_global_admission_off() -> None:
    g = AbuseGuard(max_new_per_second=0)
    assert all(g.admit_new(f"192.0.2.{i % 200}", 0.0) for i in range(5000))


# ----------------------------------------------------------------------------- real socket


def drain(socks: list[socket.socket], got: list[bytes]) -> None:
    for s in socks:
        while True:
            try:
                got.append(s.recv(65536))
            except BlockingIOError:
                break


def test_flood_is_challenged_without_transactions() -> None:
    async def go() -> tuple[list[bytes], SipServer, int]:
        nonces = digest.NonceManager(b"k" * 32)
        registrar = Registrar(REALM, LocationService(), nonces, CREDS.get)
        # no per-IP nor global limit here: this test counts what a challenge costs
        server = SipServer(registrar=registrar, guard=AbuseGuard(rate_limit=0, max_new_per_second=0))
        (lst,) = await server.start([ListenSpec("UDP", "127.0.0.1", 0)])
        server.attach_proxy(make_proxy())
        got: list[bytes] = []
        socks = []
        peak = 0
        try:
            for i in range(2, 7):  # five source addresses
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((f"127.0.0.{i}", 0))
                s.setblocking(False)
                socks.append(s)
            for n in range(200):
                s = socks[n % len(socks)]
                data = invite(n, src=s.getsockname()[0])
                s.sendto(data, ("127.0.0.1", lst.port))
                s.sendto(data, ("127.0.0.1", lst.port))  # and its retransmission
                if n % 40 == 0:
                    s.sendto(register(n, s.getsockname()[0]), ("127.0.0.1", lst.port))
                await asyncio.sleep(0.002)
                peak = max(peak, len(server.txn))
                drain(socks, got)
            await asyncio.sleep(0.3)
            peak = max(peak, len(server.txn))
            drain(socks, got)
        finally:
            for s in socks:
                s.close()
            await server.stop(drain_timeout=0.1)
        return got, server, peak

    got, server, peak = asyncio.run(go())
    assert peak == 0  # not one server transaction for a challenge
    assert sum(g.startswith(b"SIP/2.0 407") for g in got) == 400  # every INVITE and retransmission
    assert sum(g.startswith(b"SIP/2.0 401") for g in got) == 5
    assert not any(g.startswith(b"SIP/2.0 100") for g in got)
    assert server.counters["stateless_challenges"] == 405
