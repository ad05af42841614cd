"""Unit tests of the sans-I/O forking proxy core (sip/proxy.py): injected clock, no sockets."""

from __future__ import annotations

from sip import digest
from sip.auth import ProxyAuthenticator
from sip.location import Binding, LocationService
from sip.message import parse_message
from sip.proxy import (
    AuthFailed,
    AuthOk,
    ExtensionRouter,
    Proxy,
    Respond,
    RouteDecision,
    SendRequest,
    SendStateless,
    binding_addr,
)
from sip.transaction import Addr

REALM = "pypbx"
PW = "secret-pw"
CALLER = Addr("UDP", "192.0.2.10", 5070)
PHONE_A = Addr("UDP", "198.51.100.7", 40000)
PHONE_B = Addr("UDP", "198.51.100.8", 40002)
CREDS = {u: {"MD5": digest.ha1(u, REALM, PW, "MD5")} for u in ("1001", "1002", "1003")}


def invite(
    *,
    user="1001",
    to="1002",
    auth=None,
    extra="",
    method="INVITE",
    call_id="c1",
    branch="z9hG4bKcaller1",
    max_forwards=70,
    to_tag=None,
    route=None,
    uri=None,
):
    lines = [
        f"{method} {uri or f'sip:{to}@pbx.example'} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5070;branch={branch};received=192.0.2.10;rport=5070",
        f"Max-Forwards: {max_forwards}",
        f"From: <sip:{user}@pbx.example>;tag=ft1",
        f"To: <sip:{to}@pbx.example>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Contact: <sip:1001@10.0.0.5:5070>",
    ]
    if route:
        lines += [f"Route: {r}" for r in route]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    if extra:
        lines.append(extra)
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def response(req, status, *, to_tag="tt1", contact=None):
    lines = [f"SIP/2.0 {status} X"]
    lines += [f"Via: {v}" for v in req.headers.get_all("Via")]
    lines += [f"Record-Route: {v}" for v in req.headers.get_all("Record-Route")]
    lines += [
        f"From: {req.headers.get('From')}",
        f"To: {req.headers.get('To')}" + (f";tag={to_tag}" if status > 100 else ""),
        f"Call-ID: {req.call_id}",
        f"CSeq: {req.headers.get('CSeq')}",
    ]
    if contact:
        lines.append(f"Contact: <{contact}>")
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


class Policy:
    def __init__(self, decision):
        self.decision = decision
        self.calls = []

    def __call__(self, req, source, user):
        self.calls.append((req, source, user))
        return self.decision


def make_proxy(decision=None, *, auth=True, trusted=(), ring=60.0):
    nonces = digest.NonceManager(b"k" * 32, lifetime=300)
    authn = ProxyAuthenticator(REALM, nonces, CREDS.get) if auth else None
    policy = Policy(decision or RouteDecision.fork([("sip:1002@198.51.100.7:5060;ob", PHONE_A)]))
    p = Proxy(
        route=policy,
        local_address=lambda t, h: ("203.0.113.1", 5060),
        is_local=lambda h, port: h == "203.0.113.1" and (port or 5060) == 5060,
        secret=b"s" * 32,
        authenticator=authn,
        trusted=trusted,
        ring_timeout=ring,
    )
    return p, policy, nonces


def authed_invite(p, nonces, **kw):
    nonce = nonces.make(0.0, CALLER.host)
    user = kw.pop("auth_user", kw.get("user", "1001"))
    to = kw.get("to", "1002")
    uri = f"sip:{to}@pbx.example"
    value = digest.build_authorization(
        user, REALM, kw.get("method", "INVITE"), uri, nonce, password=kw.pop("password", PW)
    )
    return invite(auth=value, **kw)


def sends(actions):
    return [a for a in actions if isinstance(a, SendRequest)]


def responds(actions):
    return [a for a in actions if isinstance(a, Respond)]


def forward(p, nonces, now=0.0, **kw):
    req = authed_invite(p, nonces, **kw)
    acts = p.on_request("srv1", req, CALLER, now)
    return req, acts


# ----------------------------------------------------------------------------- auth


def test_invite_without_credentials_gets_407():
    p, policy, _ = make_proxy()
    acts = p.on_request("srv1", invite(), CALLER, 0.0)
    [r] = responds(acts)
    assert r.response.status == 407
    assert r.response.headers.get("Proxy-Authenticate").startswith('Digest realm="pypbx"')
    assert not policy.calls


def test_unknown_user_challenge_looks_the_same():
    p, _, _nonces = make_proxy()
    a = responds(p.on_request("k", invite(user="1001"), CALLER, 0.0))[0].response
    b = responds(p.on_request("k", invite(user="9999"), CALLER, 0.0))[0].response
    strip = lambda r: r.headers.get("Proxy-Authenticate").split("nonce=")[0]  # noqa: E731
    assert strip(a) == strip(b) and a.status == b.status == 407


def test_wrong_password_feeds_guard():
    p, policy, nonces = make_proxy()
    acts = p.on_request("k", authed_invite(p, nonces, password="nope"), CALLER, 0.0)
    assert any(isinstance(a, AuthFailed) and a.user == "1001" for a in acts)
    assert responds(acts)[0].response.status == 407
    assert not policy.calls


def test_from_must_be_authenticated_user():
    p, policy, nonces = make_proxy()
    acts = p.on_request("k", authed_invite(p, nonces, user="1003", auth_user="1001"), CALLER, 0.0)
    assert responds(acts)[0].response.status == 403
    assert not policy.calls


def test_trusted_source_skips_auth():
    p, policy, _ = make_proxy(trusted=[(CALLER.host, CALLER.port)])
    acts = p.on_request("k", invite(), CALLER, 0.0)
    assert len(sends(acts)) == 1
    assert policy.calls[0][2] is None


def test_authenticated_invite_is_forwarded():
    p, policy, nonces = make_proxy()
    req, acts = forward(p, nonces)
    assert any(isinstance(a, AuthOk) for a in acts)
    assert policy.calls[0][2] == "1001"
    [s] = sends(acts)
    out = s.request
    assert s.dest == PHONE_A
    assert str(out.uri) == "sip:1002@198.51.100.7:5060;ob"
    assert out.max_forwards == 69
    vias = out.vias
    assert len(vias) == 2 and vias[0].branch.startswith("z9hG4bKpx") and vias[0].host == "203.0.113.1"
    rr = out.headers.get_all("Record-Route")
    assert len(rr) == 1 and ";lr" in rr[0] and "pbx=" in rr[0]
    assert req.headers.get("Proxy-Authorization") is not None
    assert out.headers.get("Proxy-Authorization") is None  # our realm's credentials are consumed (§22.3)


# ----------------------------------------------------------------------------- policy


def test_rejection_from_policy():
    p, _, nonces = make_proxy(RouteDecision.reject(404))
    _, acts = forward(p, nonces)
    assert responds(acts)[-1].response.status == 404
    assert not sends(acts)


def test_extension_router():
    loc = LocationService()
    now = 1000.0
    loc.upsert(
        Binding(
            "1002",
            "sip:1002-0xab@10.1.1.1:5060;ob",
            None,
            None,
            "cid",
            1,
            now + 60,
            source=("TCP", "198.51.100.9", 33333),
            local="TCP:7",
        )
    )
    router = ExtensionRouter(loc, lambda n: n in ("1002", "1003"), clock=lambda: now)
    d = router(invite(to="1002"), CALLER, "1001")
    assert d.targets == (("sip:1002-0xab@10.1.1.1:5060;ob", Addr("TCP", "198.51.100.9", 33333, 7)),)
    assert router(invite(to="1003"), CALLER, "1001").status == 480
    assert router(invite(to="5555"), CALLER, "1001").status == 404
    assert binding_addr(loc.bindings("1002", now)[0]).conn_id == 7


def test_max_forwards_zero_is_483():
    p, _policy, _ = make_proxy()
    acts = p.on_request("k", invite(max_forwards=0), CALLER, 0.0)
    assert responds(acts)[0].response.status == 483


def test_proxy_require_is_420():
    p, _, _ = make_proxy()
    acts = p.on_request("k", invite(extra="Proxy-Require: foo"), CALLER, 0.0)
    r = responds(acts)[0].response
    assert r.status == 420 and r.headers.get("Unsupported") == "foo"


# ----------------------------------------------------------------------------- responses


def two_way(**kw):
    p, _, nonces = make_proxy(
        RouteDecision.fork([("sip:1002@10.0.0.7", PHONE_A), ("sip:1002@10.0.0.8", PHONE_B)]), **kw
    )
    _req, acts = forward(p, nonces)
    a, b = sends(acts)
    return p, a, b


def test_fork_first_2xx_wins_and_other_is_cancelled():
    p, a, b = two_way()
    assert a.request.top_via.branch != b.request.top_via.branch
    # 100 is absorbed, 180 forwarded without our Via
    assert p.on_response(a.key, response(a.request, 100), 0.1) == []
    acts = p.on_response(a.key, response(a.request, 180), 0.2)
    [r] = responds(acts)
    assert r.response.status == 180 and len(r.response.vias) == 1
    p.on_response(b.key, response(b.request, 180, to_tag="tb"), 0.2)
    acts = p.on_response(a.key, response(a.request, 200, contact="sip:1002@10.0.0.7"), 1.0)
    [ok] = responds(acts)
    assert ok.response.status == 200 and len(ok.response.vias) == 1
    [cancel] = sends(acts)
    assert cancel.request.method == "CANCEL" and cancel.dest == PHONE_B
    assert cancel.request.top_via.branch == b.request.top_via.branch
    assert cancel.request.cseq == (1, "CANCEL")
    # the 487 of the cancelled branch goes nowhere
    assert p.on_response(b.key, response(b.request, 487, to_tag="tb"), 1.1) == []
    # a second 2xx (retransmission) is forwarded again
    acts = p.on_response(a.key, response(a.request, 200), 1.2)
    assert responds(acts)[0].response.status == 200


def test_cancel_waits_for_a_provisional():
    p, a, b = two_way()
    acts = p.on_response(a.key, response(a.request, 200), 1.0)
    assert not [s for s in sends(acts) if s.request.method == "CANCEL"]
    acts = p.on_response(b.key, response(b.request, 100), 1.1)
    [cancel] = sends(acts)
    assert cancel.request.method == "CANCEL"


def test_best_response_prefers_busy_over_unavailable():
    p, a, b = two_way()
    assert p.on_response(a.key, response(a.request, 480), 1.0) == []
    acts = p.on_response(b.key, response(b.request, 486), 1.1)
    [r] = responds(acts)
    assert r.response.status == 486 and len(r.response.vias) == 1


def test_lowest_class_wins_and_503_becomes_500():
    p, a, b = two_way()
    p.on_response(a.key, response(a.request, 503), 1.0)
    acts = p.on_response(b.key, response(b.request, 404), 1.1)
    assert responds(acts)[0].response.status == 404
    p, a, b = two_way()
    p.on_response(a.key, response(a.request, 503), 1.0)
    acts = p.on_response(b.key, response(b.request, 503), 1.1)
    assert responds(acts)[0].response.status == 500


def test_6xx_ends_the_fork():
    p, a, b = two_way()
    p.on_response(b.key, response(b.request, 180), 0.5)
    acts = p.on_response(a.key, response(a.request, 603), 1.0)
    assert responds(acts)[0].response.status == 603
    assert [s.request.method for s in sends(acts)] == ["CANCEL"]


def test_upstream_cancel():
    p, a, b = two_way()
    p.on_response(a.key, response(a.request, 180), 0.5)
    acts = p.on_cancel("srv1", "tagx", 1.0)
    [r] = responds(acts)
    assert r.response.status == 487 and r.response.to.tag == "tagx"
    assert [s.dest for s in sends(acts)] == [PHONE_A]  # B had no provisional yet
    acts = p.on_response(b.key, response(b.request, 180), 1.1)
    assert [s.request.method for s in sends(acts)] == ["CANCEL"] and not responds(acts)
    assert p.on_response(a.key, response(a.request, 487), 1.2) == []


def test_late_2xx_after_cancel_is_acked_and_hung_up():
    p, a, _b = two_way()
    p.on_response(a.key, response(a.request, 180), 0.5)
    p.on_cancel("srv1", None, 1.0)
    acts = p.on_response(a.key, response(a.request, 200, contact="sip:1002@10.0.0.7"), 1.1)
    assert not responds(acts)
    kinds = [(type(x).__name__, x.request.method if hasattr(x, "request") else x.message.method) for x in acts]
    assert kinds == [("SendStateless", "ACK"), ("SendRequest", "BYE")]
    assert all((x.dest == PHONE_A) for x in acts)


def test_ring_timeout_cancels_and_answers_408():
    p, a, b = two_way(ring=20.0)
    p.on_response(a.key, response(a.request, 180), 0.5)
    p.on_response(b.key, response(b.request, 180), 0.5)
    assert p.next_deadline() == 20.0
    assert p.tick(19.9) == []
    acts = p.tick(20.0)
    assert sorted(s.dest.host for s in sends(acts)) == sorted([PHONE_A.host, PHONE_B.host])
    assert all(s.request.method == "CANCEL" for s in sends(acts))
    [r] = responds(acts)
    assert r.response.status == 408
    assert p.next_deadline() is None


def test_ring_timeout_keeps_a_real_answer():
    p, a, _b = two_way(ring=20.0)
    p.on_response(a.key, response(a.request, 486), 0.5)
    acts = p.tick(20.0)
    assert responds(acts)[0].response.status == 486


def test_transaction_timeout_and_transport_error():
    p, a, b = two_way()
    assert p.on_timeout(a.key, 32.0) == []
    acts = p.on_timeout(b.key, 32.0, transport_error=True)
    assert responds(acts)[0].response.status == 408


# ----------------------------------------------------------------------------- dialogs


def established():
    p, _, nonces = make_proxy()
    _req, acts = forward(p, nonces)
    [s] = sends(acts)
    ok = response(s.request, 200, contact="sip:1002@10.0.0.7:5060")
    p.on_response(s.key, ok, 1.0)
    rr = s.request.headers.get_all("Record-Route")
    return p, s, rr


def test_bye_from_caller_follows_route_to_callee_flow():
    p, _s, rr = established()
    bye = invite(method="BYE", to_tag="tt1", uri="sip:1002@10.0.0.7:5060", route=rr, branch="z9hG4bKbye1")
    acts = p.on_request("srv-bye", bye, CALLER, 5.0)
    [fwd] = sends(acts)
    assert fwd.dest == PHONE_A  # the callee's NAT flow, not 10.0.0.7
    assert fwd.request.headers.get("Route") is None
    assert str(fwd.request.uri) == "sip:1002@10.0.0.7:5060"
    acts = p.on_response(fwd.key, response(fwd.request, 200), 5.1)
    assert responds(acts)[0].key == "srv-bye"


def test_bye_from_callee_reaches_caller_flow():
    p, _s, rr = established()
    lines = [
        "BYE sip:1001@10.0.0.5:5070 SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKcalleebye;received=198.51.100.7;rport=40000",
        "Max-Forwards: 70",
        "From: <sip:1002@pbx.example>;tag=tt1",
        "To: <sip:1001@pbx.example>;tag=ft1",
        "Call-ID: c1",
        "CSeq: 1 BYE",
    ] + [f"Route: {r}" for r in reversed(rr)]
    bye = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    acts = p.on_request("srv-bye2", bye, PHONE_A, 6.0)
    [fwd] = sends(acts)
    assert fwd.dest == CALLER


def test_in_dialog_without_our_token_is_refused():
    p, _s, _rr = established()
    forged = ["<sip:203.0.113.1;lr;pbx=0000000000000000>"]
    bye = invite(method="BYE", to_tag="tt1", uri="sip:evil@192.0.2.99", route=forged)
    acts = p.on_request("k", bye, CALLER, 5.0)
    assert responds(acts)[0].response.status == 403
    bye = invite(method="BYE", to_tag="tt1", uri="sip:evil@192.0.2.99")
    assert responds(p.on_request("k2", bye, CALLER, 5.0))[0].response.status == 403


def test_ack_for_2xx_forwarded_statelessly():
    p, _s, rr = established()
    ack = invite(method="ACK", to_tag="tt1", uri="sip:1002@10.0.0.7:5060", route=rr, branch="z9hG4bKack")
    [fwd] = p.on_ack(ack, CALLER, 2.0)
    assert isinstance(fwd, SendStateless) and fwd.dest == PHONE_A
    assert len(fwd.message.vias) == 2 and fwd.message.headers.get("Route") is None
    assert p.on_ack(invite(method="ACK", to_tag="tt1"), CALLER, 2.0) == []


def test_reinvite_in_dialog_is_forwarded_with_flow():
    p, _s, rr = established()
    # the caller ACKs the 2xx (else the proxy's missing-ACK watch is a deadline of its own)
    p.on_ack(
        invite(method="ACK", to_tag="tt1", uri="sip:1002@10.0.0.7:5060", route=rr, branch="z9hG4bKack"), CALLER, 2.0
    )
    re = invite(to_tag="tt1", uri="sip:1002@10.0.0.7:5060", route=rr, branch="z9hG4bKre1", extra="Require: timer")
    acts = p.on_request("srv-re", re, CALLER, 30.0)
    [fwd] = sends(acts)
    assert fwd.dest == PHONE_A and fwd.request.method == "INVITE"
    assert p.next_deadline() is None  # no ring timeout inside a dialog


def test_strict_router_request_uri_is_undone():
    p, _s, rr = established()
    rr_uri = rr[0].strip("<>")
    lines = [
        f"BYE sip:{rr_uri.split(':', 1)[1]} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKstrict",
        "Max-Forwards: 70",
        "From: <sip:1001@pbx.example>;tag=ft1",
        "To: <sip:1002@pbx.example>;tag=tt1",
        "Call-ID: c1",
        "CSeq: 2 BYE",
        "Route: <sip:1002@10.0.0.7:5060>",
    ]
    bye = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    [fwd] = sends(p.on_request("k", bye, CALLER, 5.0))
    assert str(fwd.request.uri) == "sip:1002@10.0.0.7:5060" and fwd.dest == PHONE_A


def test_stray_2xx_is_forwarded_upstream():
    p, s, _rr = established()
    ok = response(s.request, 200)
    [fwd] = p.on_stray_response(ok, 40.0)
    assert fwd.dest == Addr("UDP", "192.0.2.10", 5070) and len(fwd.message.vias) == 1


def test_message_fork_non_invite():
    p, _, nonces = make_proxy(RouteDecision.fork([("sip:1002@10.0.0.7", PHONE_A), ("sip:1002@10.0.0.8", PHONE_B)]))
    _req, acts = forward(p, nonces, method="MESSAGE")
    a, b = sends(acts)
    assert a.request.headers.get("Record-Route") is None
    acts = p.on_response(a.key, response(a.request, 200), 1.0)
    assert responds(acts)[0].response.status == 200 and not sends(acts)
    assert p.on_response(b.key, response(b.request, 200), 1.1) == []


def test_double_record_route_when_transport_changes():
    p, _, nonces = make_proxy(
        RouteDecision.fork([("sip:1002@10.0.0.7;transport=tcp", Addr("TCP", "198.51.100.7", 40000, 3))])
    )
    _req, acts = forward(p, nonces)
    rr = sends(acts)[0].request.headers.get_all("Record-Route")
    assert len(rr) == 2 and "transport=tcp" in rr[0] and "transport" not in rr[1]


def test_cleanup_on_terminated():
    p, a, b = two_way()
    p.on_response(a.key, response(a.request, 486), 1.0)
    p.on_response(b.key, response(b.request, 486), 1.0)
    for k in (a.key, b.key, "srv1"):
        p.on_terminated(k)
    assert p.stats()["contexts"] == 0 and p.stats()["branches"] == 0
