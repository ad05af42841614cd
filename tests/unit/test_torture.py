"""RFC 4475 (SIP torture messages) and RFC 5118 (IPv6 torture messages) through
parse_message + validate_request.

The expected outcome of every manifest row is spelled out in EXPECTED_4475 /
EXPECTED_5118 below (decided from the manifest's expected_handling_per_rfc column,
from the point of view of a registrar / B2BUA); test_every_manifest_row_is_covered
fails when a manifest row has no entry (or an entry has no manifest row).

Outcomes:
  Req(status)      parses as a Request; validate_request() returns `status` (None = accept)
  Resp()           parses as a Response (responses are never answered)
  Err(status)      parse_message raises SipParseError(status), answerable (drop=False,
                   with a partial request from which the error response can be built)
  Drop()           parse_message raises SipParseError with drop=True
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from sip.message import (
    Request,
    Response,
    SipParseError,
    make_response,
    parse_message,
    unsupported_extensions,
    validate_request,
)


def _torture_dir() -> Path | None:
    env = os.environ.get("PYPBX_TORTURE_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "sip-torture")
    for c in candidates:
        if (c / "rfc4475" / "manifest.csv").is_file():
            return c
    return None


TORTURE = _torture_dir()
if TORTURE is None:
    if os.environ.get("CI"):
        raise RuntimeError("SIP torture corpus not found (set PYPBX_TORTURE_DIR); required in CI")
    pytest.skip("SIP torture corpus not found", allow_module_level=True)


@dataclass(frozen=True)
class Req:
    status: int | None = None


@dataclass(frozen=True)
class Resp:
    pass


@dataclass(frozen=True)
class Err:
    status: int


@dataclass(frozen=True)
class Drop:
    pass


# RFC 4475 — file name -> outcome (+ why, where the RFC leaves a choice)
EXPECTED_4475: dict[str, object] = {
    # 3.1.1 valid messages
    "wsinv": Req(None),
    "intmeth": Req(501),  # unknown method: parses; UAS answers 501 (§8.2.1)
    "esc01": Req(None),
    "escnull": Req(None),
    "esc02": Req(501),  # RE%47IST%45R is not REGISTER -> unknown method -> 501
    "lwsdisp": Req(None),
    "longreq": Req(None),
    "dblreq": Req(None),  # REGISTER only, trailing INVITE ignored
    "semiuri": Req(None),
    "transports": Req(None),
    "mpart01": Req(None),
    "unreason": Resp(),
    "noreason": Resp(),
    # 3.1.2 invalid messages
    "badinv01": Err(400),
    "clerr": Err(400),  # datagram: Content-Length larger than the message
    "ncl": Err(400),  # negative Content-Length (stream: FramingError, see below)
    "scalar02": Err(400),  # CSeq > 2**32-1
    "scalarlg": Drop(),  # malformed response -> discard
    "quotbal": Err(400),
    "ltgtruri": Err(400),
    "lwsruri": Err(400),
    "lwsstart": Req(None),  # liberal: extra SP accepted, never re-emitted
    "trws": Req(None),  # liberal: trailing SP accepted, never re-emitted
    "escruri": Req(400),  # headers not allowed in a Request-URI (§19.1.1 Table 1)
    "baddate": Req(None),  # Date header ignored
    "regbadct": Req(400),  # Contact with ?headers must be in <> -> 400
    "badaspec": Err(400),
    "baddn": Err(400),
    "badvers": Err(505),
    "mismatch01": Err(400),
    "mismatch02": Err(501),  # unknown method + CSeq mismatch: 501 preferred
    "bigcode": Drop(),
    # 3.2 transaction layer
    "badbranch": Req(None),  # parses; transaction layer falls back to RFC 2543 matching
    # 3.3 application layer
    "insuf": Err(400),
    "unkscm": Req(416),
    "novelsc": Req(416),
    "unksm2": Req(400),  # registrar: To must be a SIP/SIPS AOR
    "bext01": Req(420),
    "invut": Req(415),
    "regaut01": Req(None),  # passes validation; the registrar then challenges (401)
    "multi01": Err(400),
    "mcl01": Err(400),
    "bcast": Resp(),  # parses; the proxy core must not forward to 255.255.255.255
    "zeromf": Req(None),  # UAS processes OPTIONS normally (483 is the proxy's job)
    "cparam01": Req(None),
    "cparam02": Req(None),
    "regescrt": Req(None),
    "sdp01": Req(406),
    # 3.4 backward compatibility
    "inv2543": Req(None),
}

EXPECTED_5118: dict[str, object] = {
    "ipv6-good": Req(None),
    "ipv6-bad": Err(400),
    "port-ambiguous": Req(None),
    "port-unambiguous": Req(None),
    "via-received-param-with-delim": Req(None),  # tolerated
    "via-received-param-no-delim": Req(None),
    "ipv6-in-sdp": Req(None),
    "mult-ip-in-header": Req(None),
    "mult-ip-in-sdp": Req(None),
    "ipv4-mapped-ipv6": Req(None),
    "ipv6-bug-abnf-3-colons": Req(None),  # tolerated (RFC 5118 §4.10)
    "ipv6-correct-abnf-2-colons": Req(None),
}


def _manifest(name: str) -> list[dict]:
    with open(TORTURE / name / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


MANIFEST_4475 = _manifest("rfc4475")
MANIFEST_5118 = _manifest("rfc5118")


def _load_4475(stem: str) -> bytes:
    return (TORTURE / "rfc4475" / "messages" / f"{stem}.dat").read_bytes()


def _load_5118(stem: str) -> bytes:
    return (TORTURE / "rfc5118" / "wire" / f"{stem}.sip").read_bytes()


CASES = [("rfc4475", Path(r["file"]).stem, r) for r in MANIFEST_4475] + [
    ("rfc5118", r["name"], r) for r in MANIFEST_5118
]


def test_every_manifest_row_is_covered():
    assert len(MANIFEST_4475) == 49
    assert len(MANIFEST_5118) == 12
    assert {Path(r["file"]).stem for r in MANIFEST_4475} == set(EXPECTED_4475)
    assert {r["name"] for r in MANIFEST_5118} == set(EXPECTED_5118)


@pytest.mark.parametrize("suite,stem,row", CASES, ids=[f"{s}:{n}" for s, n, _ in CASES])
def test_manifest_file_integrity(suite, stem, row):
    if suite == "rfc4475":
        data = _load_4475(stem)
        assert len(data) == int(row["bytes"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    else:
        data = _load_5118(stem)
        assert len(data) == int(row["wire_bytes"])
        assert hashlib.sha256(data).hexdigest() == row["wire_sha256"]


def _outcome(data: bytes):
    try:
        msg = parse_message(data)
    except SipParseError as e:
        return e, None
    return None, msg


@pytest.mark.parametrize("suite,stem,row", CASES, ids=[f"{s}:{n}" for s, n, _ in CASES])
def test_manifest_outcome(suite, stem, row):
    if suite == "rfc4475":
        data, expected = _load_4475(stem), EXPECTED_4475[stem]
    else:
        data, expected = _load_5118(stem), EXPECTED_5118[stem]
    err, msg = _outcome(data)
    if isinstance(expected, Req):
        assert err is None, f"{stem}: unexpected {err!r}"
        assert isinstance(msg, Request)
        res = validate_request(msg)
        if expected.status is None:
            assert res is None, f"{stem}: validate_request -> {res}"
        else:
            assert res is not None and res[0] == expected.status, f"{stem}: {res}"
            # the answer can always be built and serialised
            resp = make_response(msg, res[0], res[1], to_tag="t1")
            assert parse_message(resp.to_bytes()).status == expected.status
    elif isinstance(expected, Resp):
        assert err is None, f"{stem}: unexpected {err!r}"
        assert isinstance(msg, Response)
    elif isinstance(expected, Err):
        assert err is not None, f"{stem}: parsed but expected {expected.status}"
        assert err.status == expected.status, f"{stem}: {err!r}"
        assert not err.drop
        assert err.reason
        assert isinstance(err.partial, Request)
        resp = make_response(err.partial, err.status, to_tag="x")
        wire = resp.to_bytes()
        assert wire.startswith(b"SIP/2.0 %d " % expected.status)
        # the error response carries the request's Via headers verbatim (§8.2.6.2)
        assert resp.headers.get_raw_all("Via") == err.partial.headers.get_raw_all("Via")
        for name in ("From", "Call-ID", "CSeq"):
            assert resp.headers.get_raw_all(name) == err.partial.headers.get_raw_all(name)
    elif isinstance(expected, Drop):
        assert err is not None and err.drop, f"{stem}: expected drop, got {err!r} / {msg!r}"
    else:  # pragma: no cover
        raise AssertionError(expected)


# ---- round trip of everything that parses ----------------------------------------

PARSEABLE = [
    (s, n) for s, n, _ in CASES if isinstance((EXPECTED_4475 if s == "rfc4475" else EXPECTED_5118)[n], (Req, Resp))
]


@pytest.mark.parametrize("suite,stem", PARSEABLE, ids=[f"{s}:{n}" for s, n in PARSEABLE])
def test_roundtrip(suite, stem):
    data = _load_4475(stem) if suite == "rfc4475" else _load_5118(stem)
    m1 = parse_message(data)
    m2 = parse_message(m1.to_bytes())
    assert type(m1) is type(m2)
    assert m2.body == m1.body
    if isinstance(m1, Request):
        assert (m2.method, m2.uri) == (m1.method, m1.uri)
    else:
        assert (m2.status, m2.reason) == (m1.status, m1.reason)
    strip = lambda h: [x for x in h.items() if x[0] != "Content-Length"]  # noqa: E731
    assert strip(m2.headers) == strip(m1.headers)
    assert (m2.call_id, m2.cseq, m2.vias, m2.from_, m2.to) == (m1.call_id, m1.cseq, m1.vias, m1.from_, m1.to)
    try:
        contacts = m1.contacts
    except SipParseError:
        contacts = None  # regbadct: rejected by validate_request
    if contacts is not None:
        assert m2.contacts == contacts
    if m1.headers.get("Content-Length") is not None:
        assert m2 == m1
    m3 = parse_message(m2.to_bytes())
    assert m3 == m2
    assert m3.to_bytes() == m2.to_bytes()


# ---- specific values the RFCs call out -------------------------------------------


def p(stem: str):
    return parse_message(_load_4475(stem))


def p6(stem: str):
    return parse_message(_load_5118(stem))


def _parse_error(data: bytes) -> SipParseError:
    """The SipParseError that parse_message(data) raises (the test fails if it raises none)."""
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    return info.value


def test_wsinv():
    m = p("wsinv")
    assert m.method == "INVITE"
    assert m.uri.user == "vivekg" and m.uri.host == "chair-dnrc.example.com"
    assert m.uri.has_param("unknownparam")
    assert m.to.uri.user == "vivekg" and m.to.tag == "1918181833n"
    assert m.from_.display == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.cseq == (9, "INVITE")
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.top_via.protocol == "SIP/2.0"
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (c,) = m.contacts
    assert c.display == 'Quoted string ""'
    assert c.param("newparam") == "newvalue" and c.has_param("secondparam")
    assert c.param("q") == "0.33"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")
    assert m.routes[0].uri.has_param("lr") and m.routes[0].uri.param("unknownwith") == "value"


def test_intmeth():
    m = p("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq == (139122385, m.method)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.from_.param("fromParam''~+*_!.-%") == '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"'
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.max_forwards == 255


def test_esc01():
    m = p("esc01")
    assert m.uri.user == "sips:user@example.com" and m.uri.host == "example.net"
    assert m.to.uri.user == "user"
    assert m.from_.uri.user == "I have spaces"
    (c,) = m.contacts
    assert c.uri.user == "caller"
    assert c.uri.has_param("lr")
    assert c.uri.param("name") == "value%41"
    assert m.headers.get("Content-Type") == "application/sdp"
    # URI comparison is on unescaped values (§19.1.4)
    assert m.to.uri == parse_message(_load_4475("esc01").replace(b"To: sip:%75se%72@", b"To: sip:user@")).to.uri


def test_escnull():
    m = p("escnull")
    assert m.to.uri.user == "null-\x00-null"
    assert m.from_.uri.user == "null-\x00-null"
    c1, c2 = m.contacts
    assert c1.uri.user == "\x00" and c2.uri.user == "\x00\x00"
    assert c1 != c2
    assert m.content_length == 0
    assert str(c1.uri) == "sip:%00@host5.example.com"


def test_esc02():
    m = p("esc02")
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"
    assert m.to.display == "%Z%45"
    assert [c.uri.user for c in m.contacts] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp():
    m = p("lwsdisp")
    assert m.from_.display == "caller" and m.from_.uri.user == "caller"


def test_longreq():
    raw = _load_4475("longreq")
    m = parse_message(raw)
    assert len(m.vias) == 34
    assert m.vias[-1].host == "host.example.com" and len(m.vias[-1].branch) > 200
    assert m.to.display.startswith("I have a user name of extremeextreme")
    assert len(m.to.uri.params) == 3 and m.to.uri.port == 6000
    assert m.from_.uri.user == "amazinglylongcallername" * 5
    assert len(m.from_.tag) > 100
    assert m.call_id.startswith("longreq.onereally") and m.call_id.endswith("longcallid")
    long_name = [n for n, _ in m.headers.items() if n.startswith("Unknown-LongLong")]
    assert len(long_name) == 1 and len(long_name[0]) > 80
    assert m.contacts[0].uri.user == "amazinglylongcallername" * 5
    assert len(m.body) == 150


def test_dblreq():
    m = p("dblreq")
    assert m.method == "REGISTER" and m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert b"INVITE" not in m.to_bytes()


def test_semiuri():
    m = p("semiuri")
    assert m.uri.user == "user;par=u@example.net"
    assert m.uri.host == "example.com" and m.uri.params == ()
    assert m.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports():
    m = p("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_body_byte_exact():
    raw = _load_4475("mpart01")
    m = parse_message(raw)
    assert m.method == "MESSAGE"
    assert len(m.body) == 553 == int(m.headers.get("Content-Length"))
    assert m.body == raw[-553:]
    assert m.to_bytes().endswith(m.body)
    assert m.top_via.rport == "" and m.top_via.port == 5070


def test_unreason():
    m = p("unreason")
    assert m.status == 200
    assert m.reason.startswith("= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e")
    assert m.reason.endswith("\u043f\u0440\u043e\u0441\u0442\u043e\u0435")
    assert len(m.body) == 154


def test_noreason():
    m = p("noreason")
    assert m.status == 100 and m.reason == ""
    assert m.to_bytes().startswith(b"SIP/2.0 100 \r\n")


def test_badinv01_stream_and_errors():
    e = _parse_error(_load_4475("badinv01"))
    assert "Via" in e.reason


def test_clerr_reason():
    e = _parse_error(_load_4475("clerr"))
    assert "Content-Length" in e.reason


def test_scalar02_values():
    e = _parse_error(_load_4475("scalar02"))
    assert "CSeq" in e.reason
    req = e.partial
    assert req.max_forwards is None  # 300 > 255 is treated as absent
    assert req.expires is None  # oversize: the registrar applies its default
    assert int(req.contacts[0].param("expires")) == 280297596632815


def test_quotbal_ltgtruri_reasons():
    assert "To" in _parse_error(_load_4475("quotbal")).reason
    assert "Request-URI" in _parse_error(_load_4475("ltgtruri")).reason


def test_lwsstart_trws_not_reemitted():
    for stem, first in (
        ("lwsstart", b"INVITE sip:user@example.com SIP/2.0\r\n"),
        ("trws", b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n"),
    ):
        assert p(stem).to_bytes().startswith(first)


def test_escruri_headers_kept_not_real():
    m = p("escruri")
    assert m.uri.headers == (("Route", "<sip:example.com>"),)
    assert m.headers.get("Route") is None


def test_baddn_variants():
    for data in (_load_4475("baddn"), (TORTURE / "rfc4475" / "extra" / "baddn_with_final_crlf.dat").read_bytes()):
        e = _parse_error(data)
        assert e.status == 400 and "From" in e.reason and not e.drop


def test_badvers_partial():
    e = _parse_error(_load_4475("badvers"))
    assert e.status == 505 and e.partial.method == "OPTIONS"


def test_insuf_400_names_header():
    e = _parse_error(_load_4475("insuf"))
    assert e.status == 400 and "From" in e.reason
    resp = make_response(e.partial, 400)
    assert resp.headers.get("CSeq") == "193942 INVITE"


def test_unkscm_never_route_on_to():
    m = p("unkscm")
    assert m.uri.scheme == "nobodyknowsthisscheme" and m.uri.opaque == "totallyopaquecontent"
    assert str(m.uri) == "nobodyknowsthisscheme:totallyopaquecontent"


def test_novelsc():
    m = p("novelsc")
    assert m.uri.scheme == "soap.beep"


def test_unksm2_uris():
    m = p("unksm2")
    assert m.to.uri.scheme == "isbn" and m.from_.uri.scheme == "http"
    assert m.contacts[0].uri.scheme == "name"


def test_bext01_unsupported_lists():
    m = p("bext01")
    assert unsupported_extensions(m) == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert unsupported_extensions(m, proxy_require=True)[2:] == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert validate_request(m, supported=["nothingsupportsthis", "nothingsupportsthiseither"]) is None


def test_invut_content_type():
    assert p("invut").content_type == "application/unknownformat"


def test_regaut01_authorization_kept():
    m = p("regaut01")
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_multi01_names_header():
    e = _parse_error(_load_4475("multi01"))
    assert e.status == 400 and e.partial is not None


def test_bcast_hosts():
    m = p("bcast")
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf():
    assert p("zeromf").max_forwards == 0


def test_cparam01_contact_param():
    (c,) = p("cparam01").contacts
    assert c.uri.user == "+19725552222" and c.uri.params == ()
    assert c.has_param("unknownparam") and c.param("unknownparam") is None


def test_cparam02_uri_param():
    (c,) = p("cparam02").contacts
    assert c.uri.has_param("unknownparam") and c.params == ()


def test_regescrt_escaped_route_in_contact():
    (c,) = p("regescrt").contacts
    assert c.uri.headers == (("Route", "<sip:sip.example.com>"),)
    assert str(c.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_inv2543():
    raw = _load_4475("inv2543")
    m = parse_message(raw)
    assert m.top_via.branch is None and m.from_.tag is None and m.max_forwards is None
    assert m.headers.get("Content-Length") is None
    assert m.body == raw[raw.index(b"\r\n\r\n") + 4 :]
    assert m.from_.uri.param("user") == "phone"
    assert m.record_routes[0].uri.param("maddr") == "ss1.example.com"


def test_extra_test_dat_does_not_crash():
    data = (TORTURE / "rfc4475" / "extra" / "test.dat").read_bytes()
    with pytest.raises(SipParseError):
        parse_message(data)


# ---- RFC 5118 values ---------------------------------------------------------------


def test_ipv6_good():
    m = p6("ipv6-good")
    assert m.uri.host == "[2001:db8::10]" and m.uri.port is None and m.uri.user is None
    assert m.top_via.host == "[2001:db8::9:1]"
    assert m.contacts[0].uri.host == "[2001:db8::1]"


def test_ipv6_bad_reason():
    e = _parse_error(_load_5118("ipv6-bad"))
    assert "Request-URI" in e.reason


def test_port_ambiguous():
    m = p6("port-ambiguous")
    assert m.uri.host == "[2001:db8::10:5070]" and m.uri.port is None


def test_port_unambiguous():
    m = p6("port-unambiguous")
    assert m.uri.host == "[2001:db8::10]" and m.uri.port == 5070


def test_via_received_delims():
    assert p6("via-received-param-with-delim").top_via.received == "[2001:db8::9:255]"
    v = p6("via-received-param-no-delim").top_via
    assert v.received == "2001:db8::9:255" and v.branch == "z9hG4bKas3"


def test_ipv6_in_sdp():
    m = p6("ipv6-in-sdp")
    assert b"IN IP6 2001:db8::20" in m.body
    assert len(m.body) == int(m.headers.get("Content-Length"))


def test_mult_ip_in_header():
    m = p6("mult-ip-in-header")
    assert [(v.transport, v.host, v.port) for v in m.vias] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert m.vias[2].received == "192.0.2.200"


def test_mult_ip_in_sdp():
    m = p6("mult-ip-in-sdp")
    assert m.contacts[0].uri.host == "[2001:db8::9:1]"


def test_ipv4_mapped():
    m = p6("ipv4-mapped-ipv6")
    assert (m.top_via.host, m.top_via.port) == ("[::ffff:192.0.2.10]", 19823)
    assert m.contacts[0].display == "T. desk phone"
    assert m.contacts[0].uri.host == "[::ffff:192.0.2.2]"


def test_ipv6_abnf_colons():
    assert p6("ipv6-bug-abnf-3-colons").uri.host == "[2001:db8:::192.0.2.1]"
    assert p6("ipv6-correct-abnf-2-colons").uri.host == "[2001:db8::192.0.2.1]"


def test_archive_lf_copies_are_tolerated():
    """The RFC 5118 archive copies have bare-LF line ends: be liberal, never crash."""
    for r in MANIFEST_5118:
        data = (TORTURE / "rfc5118" / "archive" / f"{r['name']}.dat").read_bytes()
        try:
            m = parse_message(data)
        except SipParseError as e:
            assert e.status in (400, 505)
        else:
            assert m.call_id


# ---- stream framing of the torture messages -----------------------------------------


def test_stream_framing_of_torture_messages():
    from sip.message import FramingError, StreamFramer

    # clerr on a stream: wait for more data, no crash/hang
    f = StreamFramer()
    assert f.feed(_load_4475("clerr")) == []
    # ncl on a stream: unframeable -> close
    with pytest.raises(FramingError):
        StreamFramer().feed(_load_4475("ncl"))
    # inv2543 has no Content-Length: unframeable on a stream
    with pytest.raises(FramingError):
        StreamFramer().feed(_load_4475("inv2543"))
    # mcl01: conflicting Content-Length values -> close
    with pytest.raises(FramingError):
        StreamFramer().feed(_load_4475("mcl01"))
    # dblreq on a stream: two messages, then the INVITE's 5 surplus body bytes ("C\r\n\r\n",
    # its Content-Length is 150 for 155 bytes) cannot be framed -> close the connection
    with pytest.raises(FramingError) as ei:
        StreamFramer().feed(_load_4475("dblreq"))
    out = ei.value.messages
    assert len(out) == 2
    assert parse_message(out[0]).method == "REGISTER"
    assert parse_message(out[1]).method == "INVITE"
