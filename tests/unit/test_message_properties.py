"""Property tests (hypothesis) for sip/message.py: robustness, round trip, framing."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.message import (
    URI,
    FramingError,
    Keepalive,
    Method,
    NameAddr,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    Via,
    make_response,
    parse_message,
    validate_request,
)

# PYPBX_FUZZ_SCALE=20 runs every property 20x longer (for a local fuzzing session)
_SCALE = max(1, int(os.environ.get("PYPBX_FUZZ_SCALE", "1")))
SETTINGS = settings(
    max_examples=300 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _torture_messages() -> list[bytes]:
    env = os.environ.get("PYPBX_TORTURE_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "sip-torture"
    files = sorted((base / "rfc4475" / "messages").glob("*.dat")) + sorted((base / "rfc5118" / "wire").glob("*.sip"))
    out = [f.read_bytes() for f in files]
    if not out:  # corpus absent (local run without /work/shared): a small built-in sample
        out = [
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"To: <sip:a@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\n"
            b"CSeq: 1 REGISTER\r\nContact: <sip:a@1.2.3.4>;expires=60\r\nContent-Length: 0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@x>;tag=2\r\n"
            b"From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nl: 3\r\n\r\nabc",
        ]
    return out


TORTURE = _torture_messages()


def _parse_ok_or_sip_error(data: bytes):
    try:
        m = parse_message(data)
    except SipParseError as e:
        assert isinstance(e.status, int) and 100 <= e.status <= 699
        assert isinstance(e.reason, str) and isinstance(e.drop, bool)
        if e.partial is not None:
            assert isinstance(e.partial, Request)
            # an answer can always be built and serialised from a partial request
            make_response(e.partial, e.status).to_bytes()
        return None
    assert isinstance(m, (Request, Response))
    # touching the lazily parsed fields may raise SipParseError, nothing else
    for attr in (
        "call_id",
        "cseq",
        "vias",
        "from_",
        "to",
        "contacts",
        "routes",
        "record_routes",
        "max_forwards",
        "expires",
        "content_type",
    ):
        try:
            getattr(m, attr)
        except SipParseError:
            pass
    m.to_bytes()
    if isinstance(m, Request):
        res = validate_request(m)
        assert res is None or (isinstance(res[0], int) and isinstance(res[1], str))
    return m


# ------------------------------------------------------------------ robustness


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes(data):
    _parse_ok_or_sip_error(data)


_HEADER_NAMES = [
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Contact",
    "m",
    "Max-Forwards",
    "Content-Length",
    "l",
    "Expires",
    "Route",
    "Require",
    "Record-Route",
    "Content-Type",
    "Accept",
    "X-Junk",
]
_JUNK = st.lists(
    st.sampled_from(
        [
            *' \t;,:<>"\\@=?%[]/.-0123456789abcdefsipSIPtagbranchz9hG4bK*\x00\u00e9',
            "\r\n",
            "\n",
            "\r\n ",
            "sip:",
            "<sip:a@b>",
            ";tag=",
            "SIP/2.0/UDP ",
            "[::1]",
            "INVITE",
        ]
    ),
    max_size=30,
).map("".join)


@st.composite
def sip_shaped(draw):
    start = draw(
        st.sampled_from(
            [
                "INVITE sip:a@b SIP/2.0",
                "REGISTER sip:example.com SIP/2.0",
                "SIP/2.0 200 OK",
                "OPTIONS sip:[::1]:5060 SIP/2.0",
                "SIP/2.0 180 ",
                "BYE sips:x@y;transport=tls SIP/2.0",
            ]
        )
    )
    start = start + draw(st.sampled_from(["", "", " ", "\t", " SIP/2.0"]))
    lines = [start]
    for _ in range(draw(st.integers(0, 12))):
        lines.append(draw(st.sampled_from(_HEADER_NAMES)) + draw(st.sampled_from([":", " :", ": ", ""])) + draw(_JUNK))
    sep = draw(st.sampled_from(["\r\n", "\n"]))
    body = draw(st.binary(max_size=40))
    return (sep.join(lines) + sep + sep).encode("utf-8", "surrogateescape") + body


@SETTINGS
@given(sip_shaped())
def test_sip_shaped_junk(data):
    _parse_ok_or_sip_error(data)


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(TORTURE)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.sampled_from(list(b'\r\n :;,<>"\\%@[]0-\x00\xff')))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 20))]
        else:
            j = min(len(data), i + draw(st.integers(1, 40)))
            data[i:i] = data[i:j]
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_real_messages(data):
    _parse_ok_or_sip_error(data)


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_framer_never_raises_anything_else(chunks):
    f = StreamFramer()
    try:
        for c in chunks:
            for frame in f.feed(c):
                if not isinstance(frame, Keepalive):
                    _parse_ok_or_sip_error(frame)
    except FramingError:
        pass


# ------------------------------------------------------------------ generators

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
lower_tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=10)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
hostnames = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "pbx.example.com",
            "192.0.2.1",
            "[2001:db8::10]",
            "[::ffff:192.0.2.2]",
            "[2001:db8:::192.0.2.1]",
            "localhost",
        ]
    ),
    st.lists(_label, min_size=1, max_size=3).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
)


@st.composite
def sip_uris(draw):
    user = draw(st.one_of(st.none(), any_text))
    password = draw(st.one_of(st.none(), any_text)) if user is not None else None
    params = tuple(draw(st.lists(st.tuples(lower_tokens, st.one_of(st.none(), any_text)), max_size=3)))
    headers = tuple(draw(st.lists(st.tuples(st.text(_TOKEN_CHARS, min_size=1, max_size=6), any_text), max_size=2)))
    return URI(
        draw(st.sampled_from(["sip", "sips"])),
        user,
        password,
        draw(hostnames),
        draw(st.one_of(st.none(), st.integers(0, 65535))),
        params,
        headers,
    )


gen_params = st.lists(
    st.tuples(
        lower_tokens,
        st.one_of(st.none(), tokens, line_text.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')),
    ),
    max_size=3,
)


@st.composite
def name_addrs(draw, tag=True):
    uri = draw(sip_uris())
    params = [p for p in draw(gen_params) if p[0] != "tag"]
    if tag:
        params.append(("tag", draw(tokens)))
    return NameAddr(draw(st.one_of(st.none(), line_text)), uri, tuple(params))


@st.composite
def vias(draw):
    params = [("branch", "z9hG4bK" + draw(tokens))] + [p for p in draw(gen_params) if p[0] != "branch"]
    return Via(
        "SIP/2.0",
        draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"])),
        draw(hostnames),
        draw(st.one_of(st.none(), st.integers(1, 65535))),
        tuple(params),
    )


@st.composite
def requests(draw):
    method = draw(st.one_of(st.sampled_from([m.value for m in Method]), tokens))
    uri = draw(sip_uris()).without_params()
    uri = URI(
        uri.scheme,
        uri.user,
        uri.password,
        uri.host,
        uri.port,
        tuple(draw(st.lists(st.tuples(lower_tokens, st.one_of(st.none(), any_text)), max_size=2))),
    )
    vs = draw(st.lists(vias(), min_size=1, max_size=3))
    frm = draw(name_addrs())
    to = draw(name_addrs(tag=False))
    call_id = draw(st.text(alphabet=_TOKEN_CHARS + '@()<>:\\"/[]?{}', min_size=1, max_size=30))
    cseq = draw(st.integers(0, 2**32 - 1))
    contacts = draw(st.lists(name_addrs(tag=False), max_size=3))
    extra = draw(
        st.lists(
            st.tuples(st.sampled_from(["Subject", "X-Foo", "User-Agent", "Allow", "Supported", "Expires"]), line_text),
            max_size=4,
        )
    )
    body = draw(st.binary(max_size=200))
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"Via: {v}" for v in vs]
    lines += [
        f"From: {frm}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Max-Forwards: {draw(st.integers(0, 255))}",
    ]
    if contacts:
        lines.append("Contact: " + ", ".join(str(c) for c in contacts))
    lines += [f"{n}: {v}" for n, v in extra]
    lines.append(f"Content-Length: {len(body)}")
    wire = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body
    return wire, {
        "method": method,
        "uri": uri,
        "vias": vs,
        "from_": frm,
        "to": to,
        "call_id": call_id,
        "cseq": (cseq, method),
        "contacts": contacts,
        "body": body,
    }


# ------------------------------------------------------------------ round trips


@SETTINGS
@given(sip_uris())
def test_uri_roundtrip(u):
    assert URI.parse(str(u)) == u


@SETTINGS
@given(name_addrs())
def test_nameaddr_roundtrip(na):
    assert NameAddr.parse(str(na)) == na


@SETTINGS
@given(vias())
def test_via_roundtrip(v):
    assert Via.parse(str(v)) == v


@settings(SETTINGS, max_examples=200 * _SCALE)
@given(requests())
def test_generated_request_roundtrip(case):
    wire, want = case
    m1 = parse_message(wire)
    for k, v in want.items():
        assert getattr(m1, k) == v, k
    m2 = parse_message(m1.to_bytes())
    assert m2 == m1
    for k in want:
        assert getattr(m2, k) == getattr(m1, k), k
    assert m2.to_bytes() == m1.to_bytes()


@settings(SETTINGS, max_examples=100 * _SCALE)
@given(requests(), st.integers(100, 699), line_text, tokens)
def test_generated_response_roundtrip(case, status, reason, tag):
    wire, _ = case
    req = parse_message(wire)
    resp = make_response(req, status, reason.strip(" \t") or None, to_tag=tag, body=b"x\r\n")
    r1 = parse_message(resp.to_bytes())
    assert isinstance(r1, Response) and r1.status == status
    assert r1.vias == req.vias and r1.cseq == req.cseq and r1.call_id == req.call_id
    assert r1.from_ == req.from_
    if status != 100:
        assert r1.to.tag == tag
    r2 = parse_message(r1.to_bytes())
    assert r2 == r1


# ------------------------------------------------------------------ stream framing


@settings(SETTINGS, max_examples=80 * _SCALE)
@given(
    st.lists(st.tuples(requests(), st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])), min_size=1, max_size=3),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_framer_split_anywhere(items, cuts):
    stream = b""
    expected: list = []
    for (wire, _), sep in items:
        stream += wire + sep
        expected.append(wire)
        if sep == b"\r\n\r\n":
            expected.append(Keepalive())
    whole = StreamFramer().feed(stream)
    assert whole == expected
    points = sorted({c % (len(stream) + 1) for c in cuts})
    f = StreamFramer()
    out: list = []
    prev = 0
    for p in [*points, len(stream)]:
        out += f.feed(stream[prev:p])
        prev = p
    assert out == expected
    for frame in out:
        if not isinstance(frame, Keepalive):
            assert isinstance(parse_message(frame), Request)
