"""Every RFC 4475 / RFC 5118 torture message sent to a running pypbx over UDP and TCP.

The expected outcome per message comes from the unit-level table (tests/unit/test_torture.py,
decided from the manifests); here we check what goes back on the wire, and that the server
keeps answering an OPTIONS ping after each message.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from sip.message import Request, parse_message
from tests.integration.harness import PbxProcess
from tests.unit.test_torture import (
    CASES,
    EXPECTED_4475,
    EXPECTED_5118,
    Drop,
    Err,
    Req,
    Resp,
    _load_4475,
    _load_5118,
)

pytestmark = pytest.mark.slow

QUIET = 0.4  # how long to listen when no answer is expected


@pytest.fixture(scope="module")
def pbx(tmp_path_factory):
    p = PbxProcess(tmp_path_factory.mktemp("torture"), security={"exempt": ["127.0.0.1"]})
    p.start()
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.log()


def _expected_status(stem: str, suite: str, data: bytes) -> int | None:
    """The final status the PBX must send for this message over UDP, None for silence."""
    exp = (EXPECTED_4475 if suite == "rfc4475" else EXPECTED_5118)[stem]
    if isinstance(exp, (Resp, Drop)):
        return None
    if isinstance(exp, Err):
        return exp.status
    assert isinstance(exp, Req)
    if exp.status is not None:
        return exp.status
    msg = parse_message(data)
    assert isinstance(msg, Request)
    if msg.method in PROXIED:
        # the call-routing proxy (sip/proxy.py): out of dialog -> 407 challenge; with a To
        # tag but no Record-Route token of ours -> 403 (no open relay)
        return 403 if msg.to.tag is not None else 407
    return {"REGISTER": 401, "OPTIONS": 200, "ACK": None}.get(msg.method, 405)


#: methods the PBX's proxy handles (SipServer.attach_proxy defaults)
PROXIED = frozenset(("INVITE", "BYE", "INFO", "UPDATE", "REFER", "MESSAGE", "SUBSCRIBE", "NOTIFY", "PRACK"))


def _options(port: int, n: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-alive-{n}-{time.monotonic_ns()};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: alive-{n}-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _final_statuses(chunks: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"SIP/2\.0 (\d{3}) ", chunks) if int(m) >= 200]


def _udp_collect(sock: socket.socket, want: bool) -> list[int]:
    got = b""
    sock.settimeout(2.0 if want else QUIET)
    while True:
        try:
            got += sock.recv(65536)
        except TimeoutError:
            break
        if want and _final_statuses(got):
            sock.settimeout(0.05)  # catch anything extra, briefly
    return _final_statuses(got)


def _alive_udp(port: int, n: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.sendto(_options(port, n), ("127.0.0.1", port))
    assert _udp_collect(s, True) == [200], "server stopped answering"
    s.close()


_SEQ = iter(range(1, 1_000_000))


def _data(suite: str, stem: str) -> bytes:
    """The message, with a unique suffix on its top Via branch.

    Many torture messages share a branch (z9hG4bKkdjuw appears in 22 of them): sent as is,
    RFC 3261 §17.2.3 rightly treats the later ones as retransmissions of the first and
    re-sends its answer to where it went. A suffix keeps each message its own transaction
    while leaving everything it tortures intact (a branch without the magic cookie stays so).
    """
    data = _load_4475(stem) if suite == "rfc4475" else _load_5118(stem)
    return re.sub(rb"(branch=[^;,\s]+)", lambda m: m.group(1) + b"x%d" % next(_SEQ), data, count=1)


@pytest.mark.parametrize("suite,stem", [(s, n) for s, n, _ in CASES], ids=[f"{s}:{n}" for s, n, _ in CASES])
def test_torture_over_udp(pbx, suite, stem):
    data = _data(suite, stem)
    want = _expected_status(stem, suite, data)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.sendto(data, ("127.0.0.1", pbx.port))
    got = _udp_collect(s, want is not None)
    s.close()
    assert got == ([want] if want is not None else []), f"{stem}: got {got}"
    _alive_udp(pbx.port, hash(stem) & 0xFFFF)


def _has_content_length(data: bytes) -> bool:
    head = data.split(b"\r\n\r\n", 1)[0]
    return re.search(rb"(?im)^(content-length|l)[ \t]*:", head) is not None


@pytest.mark.parametrize("suite,stem", [(s, n) for s, n, _ in CASES], ids=[f"{s}:{n}" for s, n, _ in CASES])
def test_torture_over_tcp(pbx, suite, stem):
    data = _data(suite, stem)
    c = socket.create_connection(("127.0.0.1", pbx.port), timeout=2.0)
    c.sendall(data)
    got = b""
    closed = False
    c.settimeout(QUIET if stem != "dblreq" else 1.0)
    while True:
        try:
            chunk = c.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            closed = True
            break
        got += chunk
    c.close()
    statuses = _final_statuses(got)
    if stem == "clerr":
        # Content-Length larger than what was sent: a stream waits for the rest.
        assert statuses == [] and not closed
    elif stem == "baddn":
        # The RFC's copy has no blank line ending its headers: on a stream the message
        # has not ended yet, so the server waits for more.
        assert statuses == [] and not closed
    elif stem in ("ncl", "mcl01") or not _has_content_length(data):
        # Negative, conflicting or missing Content-Length: the stream cannot be framed
        # any more; close the connection (RFC 3261 §18.3).
        assert statuses == [] and closed, f"{stem}: {statuses}, closed={closed}"
    elif stem == "dblreq":
        # On a stream the bytes after the REGISTER are a second message (an INVITE, 407 from the proxy
        # here) followed by bytes that cannot be framed: both answered, then closed.
        assert statuses == [401, 407] and closed
    else:
        want = _expected_status(stem, suite, data)
        assert statuses == ([want] if want is not None else []), f"{stem}: got {statuses}"
    # the server keeps answering, over TCP too
    c = socket.create_connection(("127.0.0.1", pbx.port), timeout=2.0)
    c.sendall(_options(pbx.port, 1).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = c.recv(65536)
        assert chunk, "connection closed before the OPTIONS answer"
        buf += chunk
    c.close()
    assert buf.startswith(b"SIP/2.0 200 ")


def test_tcp_keepalive_ping_gets_pong_and_next_message_is_intact(pbx):
    """RFC 5626 §3.5.1: CRLFCRLF ping -> CRLF pong; then a message on the same connection."""
    c = socket.create_connection(("127.0.0.1", pbx.port), timeout=2.0)
    c.sendall(b"\r\n\r\n")
    assert c.recv(16) == b"\r\n"
    c.sendall(b"\r\n" + _options(pbx.port, 7).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += c.recv(65536)
    assert buf.startswith(b"SIP/2.0 200 ")
    c.close()


def test_udp_keepalives_are_dropped_silently(pbx):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    for ping in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00"):
        s.sendto(ping, ("127.0.0.1", pbx.port))
    s.settimeout(QUIET)
    with pytest.raises(socket.timeout):
        s.recv(100)
    s.close()
    _alive_udp(pbx.port, 99)
    assert "parse" not in pbx.log().lower()
