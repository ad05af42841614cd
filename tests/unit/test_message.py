"""Unit tests for sip/message.py (RFC 3261 message layer)."""

from __future__ import annotations

import dataclasses

import pytest

from sip.message import (
    MAX_MESSAGE,
    URI,
    FramingError,
    Headers,
    Keepalive,
    Method,
    NameAddr,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    Via,
    is_keepalive,
    make_response,
    parse_message,
    reason_phrase,
    unsupported_extensions,
    validate_request,
)

CRLF = "\r\n"


def msg(*lines: str, body: str | bytes = b"", cl: bool = True) -> bytes:
    b = body.encode() if isinstance(body, str) else body
    hdrs = list(lines)
    if cl:
        hdrs.append(f"Content-Length: {len(b)}")
    return (CRLF.join(hdrs) + CRLF + CRLF).encode("utf-8", "surrogateescape") + b


def register(*extra: str, **kw) -> bytes:
    return msg(
        "REGISTER sip:pbx.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@pbx.example.com>",
        'From: "Bob" <sip:bob@pbx.example.com>;tag=456248',
        "Call-ID: 843817637684230@998sdasdh09",
        "CSeq: 1826 REGISTER",
        "Contact: <sip:bob@192.0.2.10:5060;transport=udp>;expires=600",
        "Expires: 7200",
        *extra,
        **kw,
    )


OPTIONS = [
    "OPTIONS sip:carol@chicago.example.com SIP/2.0",
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877",
    "Max-Forwards: 70",
    "To: <sip:carol@chicago.example.com>",
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710",
    "CSeq: 63104 OPTIONS",
]


def options(*extra, drop=(), **kw) -> bytes:
    lines = [ln for ln in OPTIONS if ln.split(":")[0] not in drop] + list(extra)
    return msg(*lines, **kw)


def perr(data: bytes) -> SipParseError:
    with pytest.raises(SipParseError) as ei:
        parse_message(data)
    return ei.value


# ---------------------------------------------------------------- Method


def test_method_enum_is_str():
    assert Method.INVITE == "INVITE" and Method.REGISTER == "REGISTER"
    assert str(Method.BYE) == "BYE"
    assert {m.value for m in Method} >= {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "REGISTER",
        "OPTIONS",
        "INFO",
        "PRACK",
        "UPDATE",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "PUBLISH",
    }


# ---------------------------------------------------------------- URI


def test_uri_basic():
    u = URI.parse("sip:Alice:secret@Atlanta.Example.COM:5061;Transport=TCP;lr?subject=hi&x=y")
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sip", "Alice", "secret", "atlanta.example.com", 5061)
    assert u.params == (("transport", "TCP"), ("lr", None))
    assert u.param("TRANSPORT") == "TCP" and u.param("lr") is None and u.has_param("lr")
    assert not u.has_param("maddr") and u.param("maddr") is None
    assert u.headers == (("subject", "hi"), ("x", "y"))
    assert str(u) == "sip:Alice:secret@atlanta.example.com:5061;transport=TCP;lr?subject=hi&x=y"
    assert u.hostport == "atlanta.example.com:5061" and u.is_sip


def test_uri_escapes_roundtrip():
    u = URI.parse("sip:sips%3Auser%40example.com@example.net;n%61me=v%61lue%25%34%31")
    assert u.user == "sips:user@example.com"
    assert u.param("name") == "value%41"
    again = URI.parse(str(u))
    assert again == u
    assert URI.parse("sip:%75ser@h") == URI.parse("sip:user@h")


def test_uri_null_escape_does_not_truncate():
    u = URI.parse("sip:a%00b@h")
    assert u.user == "a\x00b" and str(u) == "sip:a%00b@h"


def test_uri_invalid_escape_kept_literally():
    assert URI.parse("sip:100%zz@h").user == "100%zz"


def test_uri_ipv6():
    u = URI.parse("sips:[2001:DB8::10]:5071;maddr=[2001:db8::1]")
    assert u.host == "[2001:db8::10]" and u.port == 5071 and u.user is None
    assert u.param("maddr") == "[2001:db8::1]"
    assert str(u) == "sips:[2001:db8::10]:5071;maddr=[2001:db8::1]"
    assert URI.parse("sip:[2001:db8::10:5070]").port is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sip:",
        "sip:user@",
        "<sip:a@b>",
        "sip:a b@c",
        "sip:2001:db8::10",
        "sip:h:99999",
        "sip:h:5x",
        "1sip:h",
        "sip:h;;x",
        "sip:h;=x",
        'sip:"a"@h',
        "sip:h?=x",
        "nocolon",
    ],
)
def test_uri_invalid(bad):
    with pytest.raises(SipParseError):
        URI.parse(bad)


def test_uri_tel_and_opaque():
    t = URI.parse("tel:+1-201-555-0123;phone-context=example.com")
    assert t.scheme == "tel" and t.user == "+1-201-555-0123"
    assert t.param("phone-context") == "example.com"
    assert URI.parse(str(t)) == t
    o = URI.parse("urn:service:sos")
    assert o.scheme == "urn" and o.opaque == "service:sos" and str(o) == "urn:service:sos"
    assert URI.parse("urn:a") != URI.parse("urn:b")


def test_uri_user_with_semicolon():
    u = URI.parse("sip:user;par=u%40example.net@example.com")
    assert u.user == "user;par=u@example.net" and u.params == ()
    assert URI.parse(str(u)) == u


def test_uri_with_params():
    u = URI.parse("sip:a@b;transport=tcp")
    assert str(u.with_params(transport="udp", lr=True)) == "sip:a@b;transport=udp;lr"
    assert str(u.without_params("transport")) == "sip:a@b"


# ---------------------------------------------------------------- NameAddr


def test_nameaddr_forms():
    na = NameAddr.parse('"A. \\"Q\\" Bell" <sip:bell@example.com;transport=tcp>;tag=abc;expires=60')
    assert na.display == 'A. "Q" Bell'
    assert na.uri.param("transport") == "tcp"
    assert na.tag == "abc" and na.param("EXPIRES") == "60"
    assert NameAddr.parse(str(na)) == na
    na2 = NameAddr.parse("sip:bob@example.com;tag=9")
    assert na2.display is None and na2.tag == "9" and na2.uri.params == ()
    na3 = NameAddr.parse("Bob Smith<sip:bob@example.com>")
    assert na3.display == "Bob Smith"
    assert NameAddr.parse("  <sip:x@y>  ").params == ()


def test_nameaddr_quoted_param_value_kept():
    na = NameAddr.parse('<sip:a@b>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1')
    assert na.param("+sip.instance") == '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'
    assert na.param("reg-id") == "1"
    assert NameAddr.parse(str(na)) == na


def test_nameaddr_with_tag():
    na = NameAddr.parse("<sip:a@b>")
    assert str(na.with_tag("xyz")) == "<sip:a@b>;tag=xyz"


@pytest.mark.parametrize(
    "bad",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b >",
        "<sip:a@b",
        "sip:a@b?Route=x",
        "<sip:a@b>;;",
        "<sip:a@b>;tag=",
        "<sip:a@b> junk",
        "",
        '"x" sip:a@b',
        "<sip:a@b>;a b=c",
    ],
)
def test_nameaddr_invalid(bad):
    with pytest.raises(SipParseError):
        NameAddr.parse(bad)


# ---------------------------------------------------------------- Via


def test_via_parse_and_params():
    v = Via.parse("SIP / 2.0 / udp  Host.Example.com : 5062 ; branch = z9hG4bKx ;rport;received=1.2.3.4")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "host.example.com", 5062)
    assert v.branch == "z9hG4bKx" and v.rport == "" and v.received == "1.2.3.4"
    assert v.sent_by == "host.example.com:5062"
    v2 = v.with_params(received="192.0.2.1", rport=40000)
    assert v2.received == "192.0.2.1" and v2.rport == "40000" and v.rport == ""
    assert str(v2) == "SIP/2.0/UDP host.example.com:5062;branch=z9hG4bKx;rport=40000;received=192.0.2.1"
    assert Via.parse(str(v2)) == v2
    assert Via.parse("SIP/2.0/TCP h").rport is None


def test_via_ipv6():
    v = Via.parse("SIP/2.0/TLS [2001:db8::9:1]:5061;received=2001:db8::9:255;branch=z9hG4bK1")
    assert v.host == "[2001:db8::9:1]" and v.port == 5061 and v.received == "2001:db8::9:255"


@pytest.mark.parametrize(
    "bad",
    [
        "SIP/2.0 host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP h:70000",
        "SIP/2.0/UDP h;branch=",
        "garbage",
    ],
)
def test_via_invalid(bad):
    with pytest.raises(SipParseError):
        Via.parse(bad)


# ---------------------------------------------------------------- Headers


def test_headers_compact_forms_and_case():
    m = parse_message(
        msg(
            "INVITE sip:b@h SIP/2.0",
            "v: SIP/2.0/UDP h;branch=z9hG4bK1",
            "f: <sip:a@h>;tag=1",
            "t: <sip:b@h>",
            "i: cid",
            "CSEQ: 1 INVITE",
            "m: <sip:a@h2>",
            "c: application/sdp",
            "k: 100rel",
            "e: gzip",
            "s: hi",
            "o: presence",
            "r: <sip:x@h>",
            "b: <sip:y@h>",
            "x: 1800",
            "u: talk",
            body="v=0\r\n",
            cl=False,
        )
    )
    names = [n for n, _ in m.headers.items()]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Type",
        "Supported",
        "Content-Encoding",
        "Subject",
        "Event",
        "Refer-To",
        "Referred-By",
        "Session-Expires",
        "Allow-Events",
    ]
    assert m.headers.get("call-id") == "cid" == m.headers.get("i")
    assert m.headers.get("Nope") is None and m.headers.get("Nope", "d") == "d"
    assert "VIA" in m.headers and "Route" not in m.headers
    assert m.body == b"v=0\r\n"


def test_headers_folding_and_lists():
    m = parse_message(
        msg(
            *OPTIONS,
            "Route: <sip:p1.example.com;lr>,",
            "  <sip:p2.example.com;lr>",
            "Route: <sip:p3.example.com;lr>",
            'Contact: "Smith, John" <sip:js@h;a=1,2>, <sip:x@h>',
            "Allow: INVITE,ACK ,\tBYE",
            'Warning: 301 isi.edu "Incompatible, network"',
            "Subject: lunch, maybe",
            "X-Custom:   a  ",
            "\tb",
        )
    )
    assert m.headers.get_all("Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]
    assert m.headers.get("Route") == "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"
    assert [c.display for c in m.contacts] == ["Smith, John", None]
    assert m.contacts[0].uri.param("a") == "1,2"
    assert m.headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert m.headers.get_all("Warning") == ['301 isi.edu "Incompatible, network"']
    assert m.headers.get_all("Subject") == ["lunch, maybe"]  # not a list header
    assert m.headers.get("X-Custom") == "a b"
    assert [r.uri.host for r in m.routes] == ["p1.example.com", "p2.example.com", "p3.example.com"]


def test_headers_replace_add_remove():
    h = Headers([("via", "SIP/2.0/UDP a"), ("To", "<sip:x@y>"), ("Via", "SIP/2.0/UDP b"), ("X-Foo", "1")])
    assert [n for n, _ in h.items()] == ["Via", "To", "Via", "X-Foo"]
    h2 = h.replace("v", ["SIP/2.0/UDP c"])
    assert h2.items() == [("Via", "SIP/2.0/UDP c"), ("To", "<sip:x@y>"), ("X-Foo", "1")]
    assert h.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]  # immutable
    h3 = h.add("Via", "SIP/2.0/UDP z", first=True)
    assert h3.get_all("Via")[0] == "SIP/2.0/UDP z" and h3.items()[0][0] == "Via"
    assert h.add("Route", "<sip:r>").items()[-1] == ("Route", "<sip:r>")
    assert h.add("Route", "<sip:r>", first=True).items()[-1] == ("Route", "<sip:r>")
    assert "X-Foo" not in h.remove("x-foo") and len(h.remove("via")) == 2
    assert h.replace("Max-Forwards", ["69"]).get("Max-Forwards") == "69"
    assert h == Headers(h.items()) and hash(h) == hash(Headers(h.items()))


# ---------------------------------------------------------------- Request / Response


def test_register_properties():
    m = parse_message(register())
    assert isinstance(m, Request) and m.method == Method.REGISTER
    assert m.uri == URI.parse("sip:pbx.example.com")
    assert m.call_id == "843817637684230@998sdasdh09"
    assert m.cseq == (1826, "REGISTER")
    assert m.top_via.branch == "z9hG4bK776asdhds" and m.top_via.rport == ""
    assert m.from_.display == "Bob" and m.from_.tag == "456248"
    assert m.to.display == "Bob" and m.to.tag is None
    (c,) = m.contacts
    assert c.param("expires") == "600" and c.uri.port == 5060
    assert m.expires == 7200 and m.max_forwards == 70 and m.content_length == 0
    assert m.vias is m.vias  # cached


def test_contacts_star_and_absent():
    m = parse_message(
        register()
        .replace(b"Contact: <sip:bob@192.0.2.10:5060;transport=udp>;expires=600", b"Contact: *")
        .replace(b"Expires: 7200", b"Expires: 0")
    )
    assert m.contacts == "*" and m.expires == 0
    assert parse_message(options()).contacts == []


def test_expires_edge_values():
    assert parse_message(register().replace(b"Expires: 7200", b"Expires: soon")).expires is None
    assert parse_message(register().replace(b"Expires: 7200", b"Expires: 99999999999")).expires is None
    assert parse_message(register().replace(b"Expires: 7200", b"Expires: 4294967295")).expires == 2**32 - 1


def test_to_bytes_canonical_and_recomputes_content_length():
    m = parse_message(msg(*OPTIONS, "l: 3", body="abc", cl=False))
    m2 = m.replace(body=b"hello")
    wire = m2.to_bytes()
    assert wire.startswith(b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n")
    assert b"\r\nContent-Length: 5\r\n\r\nhello" in wire and b"l: 3" not in wire
    assert parse_message(wire).body == b"hello"
    # Content-Length added when absent
    m3 = parse_message(options(cl=False))
    assert m3.to_bytes().endswith(b"Content-Length: 0\r\n\r\n")


def test_response_parse_and_serialise():
    data = msg(
        "SIP/2.0 180 Ringing",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        "From: <sip:a@h>;tag=1",
        "To: <sip:b@h>;tag=2",
        "Call-ID: x",
        "CSeq: 1 INVITE",
    )
    r = parse_message(data)
    assert isinstance(r, Response) and (r.status, r.reason) == (180, "Ringing")
    assert r.to.tag == "2" and r.cseq == (1, "INVITE")
    assert parse_message(r.to_bytes()) == r
    assert parse_message(data.replace(b"180 Ringing", b"200 OK with  spaces")).reason == "OK with  spaces"


@pytest.mark.parametrize(
    "start", [b"SIP/2.0 99 x", b"SIP/2.0 700 x", b"SIP/2.0 2000 x", b"SIP/3.0 200 OK", b"SIP/2.0 abc OK", b"SIP/2.0"]
)
def test_bad_status_lines_dropped(start):
    data = msg(
        start.decode(),
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        "From: <sip:a@h>;tag=1",
        "To: <sip:b@h>",
        "Call-ID: x",
        "CSeq: 1 INVITE",
    )
    assert perr(data).drop


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_malformed_responses_dropped(missing):
    lines = [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        "From: <sip:a@h>;tag=1",
        "To: <sip:b@h>",
        "Call-ID: x",
        "CSeq: 1 INVITE",
    ]
    e = perr(msg(*[ln for ln in lines if not ln.startswith(missing + ":")]))
    assert e.drop


def test_version_505():
    e = perr(options().replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n", 1))
    assert e.status == 505 and not e.drop and e.partial.method == "OPTIONS"
    assert e.partial.call_id == "a84b4c76e66710"


@pytest.mark.parametrize(
    "start", [b"HELLO", b"GET / HTTP/1.1", b"\xff\xfe garbage", b"INVITE", b"<bad> sip:a@b SIP/2.0"]
)
def test_garbage_start_line_dropped(start):
    assert perr(start + b"\r\nVia: SIP/2.0/UDP h\r\n\r\n").drop


def test_mandatory_headers():
    for name in ("From", "To", "Call-ID", "CSeq"):
        e = perr(options(drop=(name,)))
        assert e.status == 400 and name in e.reason and not e.drop and e.partial is not None
    e = perr(options(drop=("Via",)))
    assert e.drop
    # missing Max-Forwards is accepted
    assert parse_message(options(drop=("Max-Forwards",))).max_forwards is None


@pytest.mark.parametrize(
    "cseq,ok",
    [
        ("4294967295 OPTIONS", True),
        ("4294967296 OPTIONS", False),
        ("0 OPTIONS", True),
        ("1 INVITE", False),
        ("x OPTIONS", False),
        ("1", False),
        ("1 OPTIONS extra", False),
        ("1" * 5000 + " OPTIONS", False),
        ("\u0661 OPTIONS", False),
    ],
)
def test_cseq_checks(cseq, ok):
    data = options(drop=("CSeq",)).replace(b"Call-ID:", f"CSeq: {cseq}\r\nCall-ID:".encode(), 1)
    if ok:
        assert parse_message(data).cseq[0] == int(cseq.split()[0])
    else:
        e = perr(data)
        assert e.status == 400 and "CSeq" in e.reason


def test_cseq_mismatch_unknown_method_501():
    data = options().replace(b"OPTIONS sip:", b"FOO sip:", 1)
    e = perr(data)
    assert e.status == 501


@pytest.mark.parametrize("mf,val", [("0", 0), ("070", 70), ("255", 255), ("256", None), ("9" * 50, None)])
def test_max_forwards(mf, val):
    data = options(
        drop=("Max-Forwards",),
    ).replace(b"Call-ID:", f"Max-Forwards: {mf}\r\nCall-ID:".encode())
    assert parse_message(data).max_forwards == val


def test_max_forwards_bad():
    e = perr(options(drop=("Max-Forwards",)).replace(b"Call-ID:", b"Max-Forwards: ten\r\nCall-ID:"))
    assert e.status == 400 and "Max-Forwards" in e.reason


def test_duplicate_single_headers():
    e = perr(options("Call-ID: other"))
    assert e.status == 400 and "Call-ID" in e.reason


def test_content_length_rules():
    # larger than the datagram -> 400
    e = perr(options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 10\r\n\r\nabc"))
    assert e.status == 400 and "Content-Length" in e.reason and e.partial is not None
    # trailing bytes beyond Content-Length ignored
    m = parse_message(options(body="abc") + b"GARBAGE")
    assert m.body == b"abc"
    # missing Content-Length on a datagram: rest of the datagram
    m = parse_message(options(cl=False) + b"rest of it")
    assert m.body == b"rest of it"
    # negative / non-numeric / conflicting
    for v in (b"-1", b"abc", b"1 2", b"99999999999999999999999999"):
        e = perr(options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: " + v + b"\r\n\r\n"))
        assert e.status == 400
    assert perr(options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 1\r\nl: 2\r\n\r\nab")).status == 400
    # identical duplicates are tolerated
    assert (
        parse_message(options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\nl: 2\r\n\r\nab")).body == b"ab"
    )


def test_max_message_513():
    big = options(body="x" * (MAX_MESSAGE + 1))
    e = perr(big)
    assert e.status == 513 and e.drop
    ok = options(body="x" * (MAX_MESSAGE - 600))
    assert len(parse_message(ok).body) == MAX_MESSAGE - 600


def test_bare_lf_is_accepted():
    data = options(body="v=0\n").replace(b"\r\n", b"\n")
    m = parse_message(data)
    assert m.call_id == "a84b4c76e66710" and m.body == b"v=0\n"
    # mixed line ends
    mixed = options().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert parse_message(mixed).max_forwards == 70
    # folding with bare LF
    folded = options("Subject: a", " b").replace(b"\r\n", b"\n")
    assert parse_message(folded).headers.get("Subject") == "a b"


def test_message_without_blank_line_parses_headers():
    data = options().rstrip(b"\r\n")
    assert parse_message(data).call_id == "a84b4c76e66710"


def test_leading_crlf_before_start_line_ignored():
    assert parse_message(b"\r\n\r\n" + options()).method == "OPTIONS"


@pytest.mark.parametrize("data", [b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00", b"\n", b"\x00", b"\r\n\x00"])
def test_keepalives(data):
    assert is_keepalive(data)
    e = perr(data)
    assert e.drop


def test_not_keepalive():
    assert not is_keepalive(options())
    assert not is_keepalive(b"\r\nx")
    assert not is_keepalive(b"  ")


def test_malformed_header_line_400_with_partial():
    e = perr(options("This line has no colon"))
    assert e.status == 400 and e.partial is not None and not e.drop
    e = perr(options("Bad Name: x"))
    assert e.status == 400


def test_utf8_and_binary_survive_roundtrip():
    data = options("Subject: caf\u00e9 \u2603", body=b"\x00\xff\r\n\n").replace(b"Alice", b'"Al\xffce"')
    m = parse_message(data)
    assert m.headers.get("Subject") == "caf\u00e9 \u2603"
    wire = m.to_bytes()
    assert b"Al\xffce" in wire and wire.endswith(b"\x00\xff\r\n\n")
    assert parse_message(wire) == m


def test_request_replace_and_equality():
    m = parse_message(options())
    m2 = m.replace(method="INFO")
    assert m2.method == "INFO" and m.method == "OPTIONS"
    assert parse_message(options()) == m
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.method = "X"


# ---------------------------------------------------------------- make_response


def test_make_response_copies_headers():
    req = parse_message(
        msg(*OPTIONS, "Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2", "Timestamp: 54", "Record-Route: <sip:p;lr>")
    )
    r = make_response(req, 200, to_tag="abc", headers=[("allow", "INVITE, ACK")], body=b"x")
    assert isinstance(r, Response) and r.status == 200 and r.reason == "OK"
    assert r.headers.get_all("Via") == req.headers.get_all("Via")
    assert r.headers.get("From") == req.headers.get("From")
    assert r.to.tag == "abc" and r.call_id == req.call_id and r.cseq == req.cseq
    assert r.headers.get("Allow") == "INVITE, ACK" and r.body == b"x"
    assert r.headers.get("Timestamp") is None
    wire = r.to_bytes()
    assert wire.startswith(b"SIP/2.0 200 OK\r\nVia: ") and wire.endswith(b"Content-Length: 1\r\n\r\nx")
    # 100 Trying: no tag, Timestamp copied (§8.2.6.1)
    t = make_response(req, 100, to_tag="abc")
    assert t.to.tag is None and t.headers.get("Timestamp") == "54" and t.reason == "Trying"
    # existing To tag is kept
    req2 = parse_message(
        options().replace(b"To: <sip:carol@chicago.example.com>", b"To: <sip:carol@chicago.example.com>;tag=old")
    )
    assert make_response(req2, 486, to_tag="new").to.tag == "old"
    assert make_response(req2, 486, "Busy Now").reason == "Busy Now"


def test_reason_phrase():
    assert reason_phrase(200) == "OK"
    assert reason_phrase(404) == "Not Found"
    assert reason_phrase(420) == "Bad Extension"
    assert reason_phrase(513) == "Message Too Large"
    assert reason_phrase(499) == "Client Error"
    assert reason_phrase(299) == "OK"


# ---------------------------------------------------------------- validate_request


def test_validate_request_ok_and_scheme():
    assert validate_request(parse_message(options())) is None
    m = parse_message(
        options().replace(b"OPTIONS sip:carol@chicago.example.com", b"OPTIONS mailto:carol@chicago.example.com")
    )
    assert validate_request(m) == (416, "Unsupported URI Scheme")
    assert validate_request(m, schemes=["sip", "mailto"]) is None


def test_validate_request_require():
    m = parse_message(options("Require: foo, 100rel", "Proxy-Require: bar"))
    assert validate_request(m)[0] == 420
    assert unsupported_extensions(m, ["100rel"]) == ["foo"]
    assert validate_request(m, supported=["foo", "100rel"]) is None
    assert validate_request(m, supported=["foo", "100rel"], proxy_require=True) is None
    assert unsupported_extensions(m, ["foo", "100rel"], proxy_require=True) == ["bar"]


def test_validate_request_methods():
    m = parse_message(options().replace(b"OPTIONS", b"FOO"))
    assert validate_request(m) == (501, "Not Implemented")
    assert validate_request(m, methods=["FOO"]) is None


def test_validate_request_constructed_request_missing_headers():
    base = parse_message(options())
    broken = base.replace(headers=base.headers.remove("Call-ID"))
    assert validate_request(broken)[0] == 400
    mism = base.replace(headers=base.headers.replace("CSeq", ["1 INVITE"]))
    assert validate_request(mism)[0] == 400


def test_validate_request_register_aor():
    m = parse_message(register().replace(b"To: Bob <sip:bob@pbx.example.com>", b"To: <tel:+15551234>"))
    assert validate_request(m)[0] == 400
    assert validate_request(parse_message(register())) is None


def test_validate_request_body_types():
    invite = [ln.replace("OPTIONS", "INVITE") for ln in OPTIONS]
    m = parse_message(msg(*invite, "Content-Type: application/sdp", body="v=0\r\n"))
    assert validate_request(m) is None
    m = parse_message(msg(*invite, "Content-Type: text/html", body="<b>"))
    assert validate_request(m)[0] == 415
    m = parse_message(msg(*invite, body="v=0\r\n"))
    assert validate_request(m)[0] == 415
    m = parse_message(msg(*invite, "Accept: text/plain"))
    assert validate_request(m)[0] == 406
    m = parse_message(msg(*invite, "Accept: application/sdp;level=1, text/plain"))
    assert validate_request(m) is None


# ---------------------------------------------------------------- StreamFramer


def test_framer_basic_and_byte_by_byte():
    stream = options(body="abc") + b"\r\n" + register() + b"\r\n\r\n" + options()
    expected = [options(body="abc"), register(), Keepalive(), options()]
    assert StreamFramer().feed(stream) == expected
    f = StreamFramer()
    out = []
    for i in range(len(stream)):
        out += f.feed(stream[i : i + 1])
    assert out == expected
    assert f.buffered == 0


def test_framer_keepalives():
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n") == [Keepalive()]
    assert f.feed(b"\r\n") == []  # single CRLF: nothing (yet)
    assert f.feed(b"\r\n") == [Keepalive()]  # ... completed to a ping
    assert f.feed(b"\r\n") == []
    assert f.feed(options()) == [options()]  # lone CRLF consumed, no corruption
    assert f.feed(b"\r\n\r\n\r\n\r\n") == [Keepalive(), Keepalive()]
    assert Keepalive() == Keepalive()


def test_framer_waits_for_body():
    data = options(body="0123456789")
    f = StreamFramer()
    assert f.feed(data[:-5]) == []
    assert f.feed(data[-5:-1]) == []
    assert f.feed(data[-1:] + data[:10]) == [data]
    assert f.feed(data[10:]) == [data]


def test_framer_body_with_blank_lines_not_misframed():
    body = "v=0\r\n\r\n\r\nx"
    data = options(body=body)
    f = StreamFramer()
    out = []
    for i in range(0, len(data), 7):
        out += f.feed(data[i : i + 7])
    assert out == [data]


@pytest.mark.parametrize(
    "bad",
    [
        options(cl=False),
        options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: -1\r\n\r\n"),
        options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: abc\r\n\r\n"),
        options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 1\r\nl: 2\r\n\r\n"),
        options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 99999999\r\n\r\n"),
        options(cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n"),
    ],
)
def test_framer_errors(bad):
    f = StreamFramer()
    with pytest.raises(FramingError) as ei:
        f.feed(bad)
    assert isinstance(ei.value, SipParseError) and ei.value.drop
    with pytest.raises(FramingError):
        f.feed(b"more")  # stays broken


def test_framer_header_section_too_large():
    f = StreamFramer()
    with pytest.raises(FramingError):
        for _ in range(100):
            f.feed(b"X-Filler: " + b"a" * 1000 + b"\r\n")


def test_framer_messages_before_error_are_kept():
    with pytest.raises(FramingError) as ei:
        StreamFramer().feed(options() + options(cl=False))
    assert ei.value.messages == [options()]


def test_framer_compact_content_length_and_bare_lf():
    data = options(cl=False).replace(b"\r\n\r\n", b"\r\nl:3\r\n\r\nabc")
    assert StreamFramer().feed(data) == [data]
    lf = options(body="abc").replace(b"\r\n", b"\n")
    assert StreamFramer().feed(lf + lf) == [lf, lf]


# ---------------------------------------------------------------- speed smoke


def test_parse_is_reasonably_fast():
    import time

    data = register()
    t0 = time.perf_counter()
    for _ in range(2000):
        m = parse_message(data)
        m.call_id, m.cseq, m.vias, m.from_, m.to, m.contacts  # noqa: B018
    per = (time.perf_counter() - t0) / 2000
    assert per < 500e-6  # generous: the real target (<30 µs) is in bench/parse_bench.py


def test_serialisation_cannot_inject_header_lines():
    m = parse_message(options())
    evil = m.replace(headers=m.headers.add("Subject", "hi\r\nVia: SIP/2.0/UDP evil"))
    wire = evil.to_bytes()
    again = parse_message(wire)
    assert len(again.vias) == 1 and again.headers.get("Subject") == "hi Via: SIP/2.0/UDP evil"
    r = make_response(m, 400, "Bad\r\nX-Evil: 1")
    again = parse_message(r.to_bytes())
    assert again.reason == "Bad X-Evil: 1" and again.headers.get("X-Evil") is None
    na = NameAddr("a\r\nb", URI.parse("sip:x@y"))
    assert "\r" not in str(
        parse_message(m.replace(headers=m.headers.replace("From", [str(na)])).to_bytes()).from_.display
    )


def test_partial_with_broken_via_params_is_routable():
    data = options().replace(b"branch=z9hG4bKhjhs8ass877", b"branch=z9hG4bKhjhs8ass877;;,;,,")
    e = perr(data)
    assert e.status == 400 and not e.drop
    assert e.partial.top_via.host == "pc33.atlanta.example.com"
    assert e.partial.top_via.branch == "z9hG4bKhjhs8ass877"
    assert perr(options().replace(b"Via: SIP/2.0/UDP pc33", b"Via: garbage")).drop


_N = 60000
_PATHOLOGICAL = {
    "display-spaces": "To: a" + " " * _N + "b",
    "display-a-space": "To: " + "a " * (_N // 2) + "x",
    "long-token": "To: " + "a" * _N + " x",
    "escaped-quotes": 'To: "' + '\\"' * (_N // 2),
    "many-params": "To: <sip:a@b>" + ";a" * (_N // 2),
    "lws-params": "To: <sip:a@b>" + " ; a = b" * (_N // 8),
    "fold-after-spaces": "To: <sip:a@b>\r\nX: y" + " " * _N + "z\r\n b",
    "via-long-host": "To: <sip:a@b>\r\nVia: SIP/2.0/UDP " + "a" * _N + " b",
    "contact-commas": "To: <sip:a@b>\r\nContact: " + '"a,' * (_N // 3),
    "uri-ats": "To: <sip:" + "@" * _N + ">",
    "uri-colons": "To: <sip:" + "a:" * (_N // 2) + ">",
    "many-headers": "To: <sip:a@b>\r\n" + "X: y\r\n" * (_N // 6) + "Y: z",
}


@pytest.mark.parametrize("name", list(_PATHOLOGICAL))
def test_pathological_inputs_are_linear(name):
    """No regex backtracking blow-ups (ReDoS) on 64 KiB adversarial datagrams."""
    import time

    base = (
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: x\r\n"
        "CSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\n"
    )
    data = (base + _PATHOLOGICAL[name] + "\r\n\r\n").encode()[:MAX_MESSAGE]
    t0 = time.perf_counter()
    try:
        m = parse_message(data)
        for attr in ("contacts", "vias", "to"):
            try:
                getattr(m, attr)
            except SipParseError:
                pass
    except SipParseError:
        pass
    assert time.perf_counter() - t0 < 1.0
