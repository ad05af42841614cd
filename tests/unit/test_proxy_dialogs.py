"""Dialog tracking in the sans-I/O proxy and ending the dialogs of a dead party
(``Proxy.end_dialogs_with``): injected clock, no sockets.

The set-up mirrors the PBX: phone 1001 calls, the proxy forks its INVITE to a media worker
on 127.0.0.1 (dialog A: phone -> worker); the worker originates the callee leg back
through the proxy, which forks it to phone 1002 (dialog B: worker -> phone).
"""

from __future__ import annotations

from sip import digest
from sip.auth import ProxyAuthenticator
from sip.message import parse_message
from sip.proxy import AckMissing, Proxy, Respond, RouteDecision, SendRequest, SendStateless
from sip.transaction import Addr

REALM = "pypbx"
PW = "secret-pw"
PUBLIC = ("203.0.113.1", 5060)
LOOP = ("127.0.0.1", 5060)
PHONE_1001 = Addr("UDP", "192.0.2.10", 5070)  # the caller's NAT flow
PHONE_1002 = Addr("UDP", "198.51.100.8", 40002)  # the callee's NAT flow
WORKER = Addr("UDP", "127.0.0.1", 17000)
OTHER_WORKER = Addr("UDP", "127.0.0.1", 17001)
WORKERS = {WORKER.port, OTHER_WORKER.port}
CREDS = {u: {"MD5": digest.ha1(u, REALM, PW, "MD5")} for u in ("1001", "1002", "1003")}


def msg(lines, body=""):
    return parse_message(("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())


def make_proxy(**kw):
    nonces = digest.NonceManager(b"k" * 32, lifetime=300)

    def route(req, source, user):
        if source.host == "127.0.0.1" and source.port in WORKERS:  # worker's leg -> the phone
            return RouteDecision.fork([("sip:1002@10.0.0.8:5060", PHONE_1002)])
        return RouteDecision.fork([(f"sip:{req.uri.user}@127.0.0.1:{WORKER.port}", WORKER)])

    p = Proxy(
        route=route,
        local_address=lambda t, h: LOOP if h == "127.0.0.1" else PUBLIC,
        is_local=lambda h, port: (h, port or 5060) in (PUBLIC, LOOP),
        secret=b"s" * 32,
        authenticator=ProxyAuthenticator(REALM, nonces, CREDS.get),
        trusted=lambda a: a.host == "127.0.0.1" and a.port in WORKERS,
        **kw,
    )
    return p, nonces


def phone_invite(nonces, *, call_id="cA", from_tag="ft1", cseq=1, branch="z9hG4bKphone1"):
    nonce = nonces.make(0.0, PHONE_1001.host)
    uri = "sip:1002@pbx.example"
    auth = digest.build_authorization("1001", REALM, "INVITE", uri, nonce, password=PW)
    return msg(
        [
            f"INVITE {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 10.0.0.5:5070;branch={branch};received=192.0.2.10;rport=5070",
            "Max-Forwards: 70",
            f'From: "Reception" <sip:1001@pbx.example>;tag={from_tag}',
            "To: <sip:1002@pbx.example>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} INVITE",
            "Contact: <sip:1001@10.0.0.5:5070>",
            f"Proxy-Authorization: {auth}",
        ]
    )


def worker_invite(*, call_id="cB", from_tag="wB", cseq=7, port=WORKER.port):
    return msg(
        [
            "INVITE sip:1002@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKworker{call_id};rport",
            "Route: <sip:127.0.0.1:5060;lr>",
            "Max-Forwards: 70",
            f"From: <sip:1001@127.0.0.1>;tag={from_tag}",
            "To: <sip:1002@127.0.0.1:5060>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:pjsua@127.0.0.1:{port}>",
        ]
    )


def answer(req, status=200, *, to_tag, contact=None, extra_rr=()):
    lines = [f"SIP/2.0 {status} X"] + [f"Via: {v}" for v in req.headers.get_all("Via")]
    lines += [f"Record-Route: {v}" for v in list(extra_rr) + req.headers.get_all("Record-Route")]
    lines += [
        f"From: {req.headers.get('From')}",
        f"To: {req.headers.get('To')}" + (f";tag={to_tag}" if to_tag and ";tag=" not in req.headers.get("To") else ""),
        f"Call-ID: {req.call_id}",
        f"CSeq: {req.headers.get('CSeq')}",
    ]
    if contact:
        lines.append(f"Contact: <{contact}>")
    return msg(lines)


def sends(actions):
    return [a for a in actions if isinstance(a, SendRequest)]


def responds(actions):
    return [a for a in actions if isinstance(a, Respond)]


def dialog_a(p, nonces, now=1.0, **kw):
    """Phone 1001 -> worker, answered by the worker."""
    [fwd] = sends(p.on_request("srvA", phone_invite(nonces, **kw), PHONE_1001, now))
    assert fwd.dest == WORKER
    ok = answer(fwd.request, to_tag="wA", contact=f"sip:1002@127.0.0.1:{WORKER.port}")
    [up] = responds(p.on_response(fwd.key, ok, now + 0.5))
    assert up.response.status == 200
    return fwd, up.response


def dialog_b(p, now=2.0, source=WORKER, extra_rr=(), **kw):
    """Worker -> phone 1002, answered by the phone."""
    [fwd] = sends(p.on_request("srvB" + kw.get("call_id", ""), worker_invite(port=source.port, **kw), source, now))
    assert fwd.dest == PHONE_1002
    ok = answer(fwd.request, to_tag="pB", contact="sip:1002@10.0.0.8:5060", extra_rr=extra_rr)
    [up] = responds(p.on_response(fwd.key, ok, now + 0.5))
    assert up.response.status == 200
    return fwd, up.response


def in_dialog(method, uri, *, from_, to, call_id, cseq, routes, branch, contact=None):
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 10.9.9.9:5060;branch={branch};rport",
        "Max-Forwards: 70",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ] + [f"Route: {r}" for r in routes]
    if contact:
        lines.append(f"Contact: <{contact}>")
    return msg(lines)


# ----------------------------------------------------------------------------- tracking


def test_dialog_phone_to_worker_is_tracked():
    p, nonces = make_proxy()
    fwd, _ok = dialog_a(p, nonces)
    d = p.find_dialog("cA", "ft1", "wA")
    assert d is not None and p.find_dialog("cA", "wA", "ft1") is d
    rr = fwd.request.headers.get_all("Record-Route")
    assert len(rr) == 2  # public side and loopback side
    assert d.caller.addr == PHONE_1001 and not d.caller.trusted
    assert d.callee.addr == WORKER and d.callee.trusted
    assert str(d.caller.target) == "sip:1001@10.0.0.5:5070"
    assert str(d.callee.target) == f"sip:1002@127.0.0.1:{WORKER.port}"
    assert d.callee.route_set == rr and d.caller.route_set == list(reversed(rr))
    assert d.caller.cseq == 1 and d.callee.cseq == 0
    assert d.caller.name_addr.endswith("tag=ft1") and d.callee.name_addr.endswith("tag=wA")
    assert p.stats()["dialogs_tracked"] == 1


def test_dialog_worker_to_phone_is_tracked():
    p, _ = make_proxy()
    _fwd, _ok = dialog_b(p)
    d = p.find_dialog("cB", "wB", "pB")
    assert d is not None
    assert d.caller.addr == WORKER and d.caller.trusted
    assert d.callee.addr == PHONE_1002 and not d.callee.trusted
    assert d.caller.cseq == 7
    assert str(d.caller.target) == f"sip:pjsua@127.0.0.1:{WORKER.port}"
    assert str(d.callee.target) == "sip:1002@10.0.0.8:5060"


def test_no_dialog_before_2xx_nor_for_rejected_calls():
    p, nonces = make_proxy()
    [fwd] = sends(p.on_request("srvA", phone_invite(nonces), PHONE_1001, 1.0))
    p.on_response(fwd.key, answer(fwd.request, 180, to_tag="wA"), 1.1)
    assert not p.dialogs
    p.on_response(fwd.key, answer(fwd.request, 486, to_tag="wA"), 1.2)
    assert not p.dialogs


def test_in_dialog_requests_update_cseq_and_ack_touches():
    p, nonces = make_proxy()
    fwd, ok = dialog_a(p, nonces)
    routes = list(reversed(ok.headers.get_all("Record-Route")))
    ack = in_dialog(
        "ACK",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cA",
        cseq=1,
        routes=routes,
        branch="z9hG4bKack",
    )
    [a] = p.on_ack(ack, PHONE_1001, 100.0)
    assert isinstance(a, SendStateless) and a.dest == WORKER
    d = p.find_dialog("cA", "ft1", "wA")
    assert d.last_seen == 100.0
    # the phone sends INFO (CSeq 2), the worker a re-INVITE (CSeq 41) with a new Contact
    info = in_dialog(
        "INFO",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cA",
        cseq=2,
        routes=routes,
        branch="z9hG4bKinfo",
    )
    [_f1] = sends(p.on_request("srv-info", info, PHONE_1001, 101.0))
    assert d.caller.cseq == 2
    reinv = in_dialog(
        "INVITE",
        "sip:1001@10.0.0.5:5070",
        from_=ok.headers.get("To"),
        to=fwd.request.headers.get("From"),
        call_id="cA",
        cseq=41,
        routes=ok.headers.get_all("Record-Route"),
        branch="z9hG4bKre",
        contact=f"sip:moved@127.0.0.1:{WORKER.port}",
    )
    [f2] = sends(p.on_request("srv-re", reinv, WORKER, 102.0))
    assert f2.dest == PHONE_1001
    assert d.callee.cseq == 41 and str(d.callee.target) == f"sip:moved@127.0.0.1:{WORKER.port}"
    # the phone's 2xx to the re-INVITE refreshes its own target
    p.on_response(f2.key, answer(f2.request, to_tag=None, contact="sip:1001@10.0.0.99:5070"), 102.5)
    assert str(d.caller.target) == "sip:1001@10.0.0.99:5070"
    assert d.caller.addr == PHONE_1001


def test_bye_and_its_2xx_remove_the_dialog():
    p, nonces = make_proxy()
    fwd, ok = dialog_a(p, nonces)
    routes = list(reversed(ok.headers.get_all("Record-Route")))
    bye = in_dialog(
        "BYE",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cA",
        cseq=3,
        routes=routes,
        branch="z9hG4bKbye",
    )
    [f] = sends(p.on_request("srv-bye", bye, PHONE_1001, 10.0))
    assert f.dest == WORKER
    assert p.find_dialog("cA", "ft1", "wA") is not None  # until its answer
    [up] = responds(p.on_response(f.key, answer(f.request, to_tag=None), 10.1))
    assert up.key == "srv-bye"
    assert p.find_dialog("cA", "ft1", "wA") is None
    assert p.end_dialogs_with(lambda a: a == WORKER, 11.0, "x") == []


def test_unanswered_bye_forgets_the_dialog_after_a_timeout():
    p, nonces = make_proxy()
    fwd, ok = dialog_a(p, nonces)
    bye = in_dialog(
        "BYE",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cA",
        cseq=3,
        routes=list(reversed(ok.headers.get_all("Record-Route"))),
        branch="z9hG4bKbye",
    )
    p.on_request("srv-bye", bye, PHONE_1001, 10.0)
    p.tick(20.0)
    assert p.find_dialog("cA", "ft1", "wA") is not None
    p.tick(43.0)
    assert p.find_dialog("cA", "ft1", "wA") is None


def test_bye_transaction_timeout_forgets_the_dialog():
    p, _ = make_proxy()
    fwd, ok = dialog_b(p)
    bye = in_dialog(
        "BYE",
        "sip:1002@10.0.0.8:5060",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cB",
        cseq=8,
        routes=list(reversed(ok.headers.get_all("Record-Route"))),
        branch="z9hG4bKbyeB",
    )
    [f] = sends(p.on_request("srv-bye", bye, WORKER, 10.0))
    p.on_timeout(f.key, 42.0)
    assert not p.dialogs


def test_481_removes_the_dialog():
    p, _ = make_proxy()
    fwd, ok = dialog_b(p)
    info = in_dialog(
        "INFO",
        "sip:1002@10.0.0.8:5060",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cB",
        cseq=8,
        routes=list(reversed(ok.headers.get_all("Record-Route"))),
        branch="z9hG4bKinfoB",
    )
    [f] = sends(p.on_request("srv-info", info, WORKER, 10.0))
    assert p.find_dialog("cB", "wB", "pB").caller.cseq == 8
    p.on_response(f.key, answer(f.request, 481, to_tag=None), 10.1)
    assert not p.dialogs


# ----------------------------------------------------------------------------- ending them


def test_end_dialogs_with_dead_worker_byes_both_phones():
    p, nonces = make_proxy(user_agent="pypbx-test")
    fa, _oka = dialog_a(p, nonces)
    _fb, _okb = dialog_b(p)
    # an unrelated call on another worker stays up
    dialog_b(p, call_id="cC", source=OTHER_WORKER)
    acts = p.end_dialogs_with(lambda a: a == WORKER, 50.0, "media engine failure")
    byes = {a.dest: a for a in sends(acts)}
    assert set(byes) == {PHONE_1001, PHONE_1002} and len(acts) == 2

    # dialog A: the worker was the callee; the BYE reaches the caller as the worker's own
    a = byes[PHONE_1001].request
    assert a.method == "BYE"
    assert str(a.uri) == "sip:1001@10.0.0.5:5070"  # the caller's Contact
    assert a.headers.get("Route") is None  # nothing beyond us
    assert a.from_.tag == "wA" and a.to.tag == "ft1"
    assert a.from_.uri.user == "1002" and a.to.uri.user == "1001"
    assert a.headers.get("To") == fa.request.headers.get("From")
    assert a.call_id == "cA"
    assert a.cseq == (1, "BYE")  # the worker never sent one
    assert a.headers.get("Reason") == 'Q.850;cause=41;text="media engine failure"'
    assert a.top_via.branch.startswith("z9hG4bKpx")
    assert a.headers.get("User-Agent") == "pypbx-test"
    assert a.max_forwards == 70

    # dialog B: the worker was the caller (CSeq 7 INVITE); the phone gets CSeq 8
    b = byes[PHONE_1002].request
    assert str(b.uri) == "sip:1002@10.0.0.8:5060"
    assert b.headers.get("Route") is None
    assert b.from_.tag == "wB" and b.to.tag == "pB"
    assert b.call_id == "cB" and b.cseq == (8, "BYE")
    assert "cause=41" in b.headers.get("Reason")

    # forgotten; the other worker's dialog is untouched; answers to our BYEs are absorbed
    assert p.find_dialog("cA", "ft1", "wA") is None and p.find_dialog("cB", "wB", "pB") is None
    assert p.find_dialog("cC", "wB", "pB") is not None
    for bye in byes.values():
        assert p.on_response(bye.key, answer(bye.request, to_tag=None), 50.1) == []
    assert not p._own
    assert p.end_dialogs_with(lambda a: a == WORKER, 51.0, "again") == []
    assert p.stats()["dialogs_ended"] == 2


def test_cseq_of_the_bye_follows_the_dead_side():
    p, nonces = make_proxy()
    fa, oka = dialog_a(p, nonces)
    # the worker (callee of dialog A) sent a re-INVITE with CSeq 5 earlier
    reinv = in_dialog(
        "INVITE",
        "sip:1001@10.0.0.5:5070",
        from_=oka.headers.get("To"),
        to=fa.request.headers.get("From"),
        call_id="cA",
        cseq=5,
        routes=oka.headers.get_all("Record-Route"),
        branch="z9hG4bKre5",
    )
    sends(p.on_request("srv-re", reinv, WORKER, 5.0))
    [bye] = sends(p.end_dialogs_with(lambda a: a == WORKER, 6.0, "media engine failure"))
    assert bye.request.cseq == (6, "BYE") and bye.dest == PHONE_1001


def test_no_bye_for_unrelated_dialogs():
    p, nonces = make_proxy()
    dialog_a(p, nonces)
    dialog_b(p)
    assert p.end_dialogs_with(lambda a: a == OTHER_WORKER, 9.0, "x") == []
    assert p.end_dialogs_with(lambda a: a.host == "192.0.2.99", 9.0, "x") == []
    assert len(p.dialogs) == 2


def test_route_beyond_us_is_kept_and_used_as_next_hop():
    """The phone sits behind another record-routing proxy: the BYE keeps that hop."""
    p, _ = make_proxy()
    edge = "<sip:198.51.100.200:5060;lr>"
    dialog_b(p, extra_rr=[edge])
    [bye] = sends(p.end_dialogs_with(lambda a: a == WORKER, 9.0, "media engine failure"))
    assert bye.request.headers.get_all("Route") == [edge]
    assert bye.dest == Addr("UDP", "198.51.100.200", 5060)
    assert str(bye.request.uri) == "sip:1002@10.0.0.8:5060"


def test_reason_text_is_quoted():
    p, _ = make_proxy()
    dialog_b(p)
    [bye] = sends(p.end_dialogs_with(lambda a: a == WORKER, 9.0, 'say "hi"'))
    assert bye.request.headers.get("Reason") == 'Q.850;cause=41;text="say \\"hi\\""'


def test_ringing_calls_through_the_dead_worker_are_ended():
    p, nonces = make_proxy()
    # phone -> worker INVITE still ringing: the phone gets a final answer at once
    [fa] = sends(p.on_request("srvA", phone_invite(nonces), PHONE_1001, 1.0))
    p.on_response(fa.key, answer(fa.request, 180, to_tag="wA"), 1.1)
    # worker -> phone INVITE ringing: the phone's branch is cancelled
    [fb] = sends(p.on_request("srvB", worker_invite(), WORKER, 1.2))
    p.on_response(fb.key, answer(fb.request, 180, to_tag="pB"), 1.3)
    acts = p.end_dialogs_with(lambda a: a == WORKER, 2.0, "media engine failure")
    ups = {r.key: r.response.status for r in responds(acts)}
    assert ups == {"srvA": 500, "srvB": 487}
    [cancel] = sends(acts)
    assert cancel.request.method == "CANCEL" and cancel.dest == PHONE_1002
    # the phone's 487 afterwards goes nowhere
    assert responds(p.on_response(fb.key, answer(fb.request, 487, to_tag="pB"), 2.1)) == []


# ----------------------------------------------------------------------------- memory


def test_dialog_cap_evicts_least_recently_active():
    p, nonces = make_proxy(max_dialogs=2)
    dialog_a(p, nonces, now=1.0, call_id="c1", branch="z9hG4bKp1")
    dialog_a(p, nonces, now=2.0, call_id="c2", branch="z9hG4bKp2")
    dialog_a(p, nonces, now=3.0, call_id="c3", branch="z9hG4bKp3")
    assert [k[0] for k in p.dialogs] == ["c2", "c3"]
    assert p.stats()["dialogs_evicted"] == 1


def test_idle_dialogs_expire():
    p, nonces = make_proxy(dialog_idle=100.0)
    fa, oka = dialog_a(p, nonces, now=1.0)
    dialog_b(p, now=2.0)
    # traffic on dialog A at t=80 keeps it; dialog B has been idle since t=2.5
    ack = in_dialog(
        "ACK",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fa.request.headers.get("From"),
        to=oka.headers.get("To"),
        call_id="cA",
        cseq=1,
        routes=list(reversed(oka.headers.get_all("Record-Route"))),
        branch="z9hG4bKack",
    )
    p.on_ack(ack, PHONE_1001, 80.0)
    p.tick(150.0)
    assert p.find_dialog("cB", "wB", "pB") is None
    assert p.find_dialog("cA", "ft1", "wA") is not None
    p.tick(181.0)
    assert not p.dialogs
    assert p.stats()["dialogs_expired"] == 2


# ----------------------------------------------------------------------------- unknown dialogs


def _bye_after_restart(p, fwd, ok, *, branch):
    routes = list(reversed(ok.headers.get_all("Record-Route")))
    return in_dialog(
        "BYE",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cA",
        cseq=3,
        routes=routes,
        branch=branch,
    )


def test_bye_for_a_dialog_nobody_knows_gets_481():
    """A phone's BYE for a call the restarted PBX no longer has: the restarted proxy tracks
    no dialog and the worker it would go to has no such call -> 481 at once, nothing sent."""
    before, nonces = make_proxy()
    fwd, ok = dialog_a(before, nonces)
    asked = []

    def gone(req, dest):
        asked.append((req.call_id, dest))
        return True

    restarted, _ = make_proxy(dialog_gone=gone)  # same secret: the route token still checks
    actions = restarted.on_request(
        "srv-bye", _bye_after_restart(restarted, fwd, ok, branch="z9hG4bKb1"), PHONE_1001, 5.0
    )
    assert sends(actions) == []
    [r] = responds(actions)
    assert r.key == "srv-bye" and r.response.status == 481
    assert asked == [("cA", WORKER)]
    assert restarted.stats()["no_dialog"] == 1


def test_bye_for_a_tracked_dialog_is_forwarded_whatever_dialog_gone_says():
    p, nonces = make_proxy(dialog_gone=lambda req, dest: True)
    fwd, ok = dialog_a(p, nonces)
    [f] = sends(p.on_request("srv-bye", _bye_after_restart(p, fwd, ok, branch="z9hG4bKb2"), PHONE_1001, 5.0))
    assert f.dest == WORKER


def test_untracked_dialog_that_still_exists_is_forwarded():
    before, nonces = make_proxy()
    fwd, ok = dialog_a(before, nonces)
    restarted, _ = make_proxy(dialog_gone=lambda req, dest: False)
    [f] = sends(
        restarted.on_request("srv-bye", _bye_after_restart(restarted, fwd, ok, branch="z9hG4bKb3"), PHONE_1001, 5.0)
    )
    assert f.dest == WORKER


# ----------------------------------------------------------------------------- missing ACK


def _ack_for(fwd, ok):
    return in_dialog(
        "ACK",
        f"sip:1002@127.0.0.1:{WORKER.port}",
        from_=fwd.request.headers.get("From"),
        to=ok.headers.get("To"),
        call_id="cA",
        cseq=1,
        routes=list(reversed(ok.headers.get_all("Record-Route"))),
        branch="z9hG4bKack",
    )


def test_a_2xx_never_acked_gives_ack_missing_once():
    p, nonces = make_proxy()
    _fwd, _ok = dialog_a(p, nonces)  # the 2xx goes up at 1.5
    assert p.next_deadline() == 1.5 + 30.0
    assert [a for a in p.tick(31.0) if isinstance(a, AckMissing)] == []
    [miss] = [a for a in p.tick(31.5) if isinstance(a, AckMissing)]
    assert (miss.call_id, miss.caller_tag, miss.callee_tag) == ("cA", "ft1", "wA")
    assert miss.caller == PHONE_1001 and miss.callee == WORKER
    assert p.tick(40.0) == [] and p.next_deadline() is None
    assert p.stats()["no_ack"] == 1
    # ending it: a BYE to each side, as the other would send it; the dialog is forgotten
    byes = p.end_dialog("cA", "ft1", "wA", 40.0)
    assert {b.dest for b in sends(byes)} == {PHONE_1001, WORKER} and len(byes) == 2
    assert all(b.request.method == "BYE" for b in byes)
    assert all("cause=102" in b.request.headers.get("Reason") for b in byes)
    assert p.find_dialog("cA", "ft1", "wA") is None


def test_an_acked_2xx_is_not_reported():
    p, nonces = make_proxy()
    fwd, ok = dialog_a(p, nonces)
    p.on_ack(_ack_for(fwd, ok), PHONE_1001, 2.0)
    assert [a for a in p.tick(100.0) if isinstance(a, AckMissing)] == []
    assert p.next_deadline() is None
    assert p.stats()["no_ack"] == 0


def test_ack_watch_can_be_turned_off():
    p, nonces = make_proxy(ack_timeout=0)
    dialog_a(p, nonces)
    assert p.next_deadline() is None
    assert p.tick(100.0) == []
