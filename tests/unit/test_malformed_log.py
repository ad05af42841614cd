"""Malformed SIP leaves a trace: one rate-limited ``SECURITY malformed`` line per source.

sip/guard.py ``AbuseGuard.malformed`` (sans-I/O, clock injected) and sip/server.py over a
real UDP socket: an unparseable datagram and a request refused as invalid each produce a
line naming the source and the reason; a flood from one address gives one line per
``malformed_log_interval`` (the next one says how many were suppressed); another address
gets its own line.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from sip.digest import NonceManager
from sip.guard import AbuseGuard
from sip.location import LocationService
from sip.registrar import Registrar
from sip.server import ListenSpec, SipServer


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pypbx.security" and "malformed" in r.getMessage()]


def test_one_line_per_address_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pypbx.security")
    g = AbuseGuard(malformed_log_interval=60.0)
    assert g.malformed("192.0.2.1", 0.0, "bad start line", 400) is True
    for i in range(9):
        assert g.malformed("192.0.2.1", 1.0 + i, "bad start line", 400) is False
    assert g.malformed("192.0.2.2", 5.0, "no Via", None) is True
    assert g.malformed("192.0.2.1", 61.0, "bad CSeq", 400) is True
    assert lines(caplog) == [
        'SECURITY malformed ip=192.0.2.1 status=400 reason="bad start line" suppressed=0',
        'SECURITY malformed ip=192.0.2.2 status=drop reason="no Via" suppressed=0',
        'SECURITY malformed ip=192.0.2.1 status=400 reason="bad CSeq" suppressed=9',
    ]
    assert g.counters()["malformed"] == 12


def test_reason_is_sanitised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pypbx.security")
    AbuseGuard().malformed("192.0.2.9", 0.0, 'x"\r\nSECURITY banned ip=1.2.3.4', 400)
    (line,) = lines(caplog)
    assert "\r" not in line and "\n" not in line
    assert 'reason="x\\"\\x0d\\x0aSECURITY banned ip=1.2.3.4"' in line


def test_purge_keeps_pending_counts_bounded() -> None:
    g = AbuseGuard(malformed_log_interval=60.0)
    g.malformed("192.0.2.1", 0.0, "x", 400)
    g.malformed("192.0.2.2", 0.0, "x", 400)
    g.malformed("192.0.2.2", 1.0, "x", 400)
    before = g.tracked()
    g.purge(100.0)
    assert g.tracked() == before - 1  # the quiet address is forgotten, the suppressed count kept


GARBAGE = b"this is not SIP at all\r\n\r\n"
NO_VIA = (
    b"OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:pbx@127.0.0.1>\r\n"
    b"Call-ID: x1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
BAD_CSEQ = (
    b"OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKbad1\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:pbx@127.0.0.1>\r\nCall-ID: x2\r\nCSeq: abc OPTIONS\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def test_server_logs_malformed_datagrams_from_a_real_socket(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pypbx.security")

    async def go() -> tuple[list[bytes], dict[str, int]]:
        registrar = Registrar("test", LocationService(), NonceManager(), lambda user: None)
        server = SipServer(registrar=registrar, guard=AbuseGuard(malformed_log_interval=60.0))
        (lst,) = await server.start([ListenSpec("UDP", "127.0.0.1", 0)])
        got: list[bytes] = []
        socks = []
        try:
            for src in ("127.0.0.1", "127.0.0.2"):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((src, 0))
                s.setblocking(False)
                socks.append(s)
            a, b = socks
            for data in (GARBAGE, BAD_CSEQ, NO_VIA, BAD_CSEQ, GARBAGE):
                a.sendto(data, ("127.0.0.1", lst.port))
            b.sendto(BAD_CSEQ, ("127.0.0.1", lst.port))
            await asyncio.sleep(0.3)
            for s in socks:
                while True:
                    try:
                        got.append(s.recv(65536))
                    except BlockingIOError:
                        break
        finally:
            for s in socks:
                s.close()
            await server.stop(drain_timeout=0.1)
        return got, server.counters

    got, counters = asyncio.run(go())
    assert counters["parse_errors"] == 6
    assert sum(1 for g in got if g.startswith(b"SIP/2.0 400")) == 3  # the two addresses' bad CSeqs
    logged = lines(caplog)
    assert len(logged) == 2, logged
    assert logged[0].startswith("SECURITY malformed ip=127.0.0.1 status=drop reason=")
    assert logged[1].startswith("SECURITY malformed ip=127.0.0.2 status=400 reason=")
    assert "suppressed=0" in logged[1]
