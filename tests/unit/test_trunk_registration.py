"""sip.trunk: client registration state machine with an injected clock."""

from __future__ import annotations

from sip.digest import challenge_headers, ha1, parse_authorization, verify_response
from sip.message import make_response, parse_message
from sip.transaction import Addr
from sip.trunk import RegState, TrunkRegistration

REG = Addr("UDP", "192.0.2.10", 5060)


def _reg(**kw):
    kw.setdefault("expires", 600)
    return TrunkRegistration(
        "prov",
        registrar=REG,
        domain="sip.example.net",
        username="clinic",
        password="s3cret-pass",
        local_address=lambda t, h: ("198.51.100.7", 5070),
        **kw,
    )


def _answer(req, status, headers=(), reason=None):
    # through the wire, as the transaction layer would hand it over
    resp = make_response(req, status, reason, to_tag="srv1", headers=list(headers))
    return parse_message(resp.to_bytes())


def _challenge(req, nonce="n1", status=401, stale=False):
    hdr = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    values = challenge_headers("sip.example.net", nonce, stale=stale, algorithms=("MD5",))
    return _answer(req, status, [(hdr, v if isinstance(v, str) else v[1]) for v in values])


def test_register_challenge_then_ok_and_refresh_at_80_percent():
    r = _reg()
    [send] = r.start(1000.0)
    assert r.state is RegState.REGISTERING
    req = send.request
    assert req.method == "REGISTER" and send.dest == REG
    assert str(req.uri) == "sip:sip.example.net"
    assert req.headers.get("Authorization") is None
    assert "sip:clinic@198.51.100.7:5070" in req.headers.get("Contact")
    assert req.headers.get("Expires") == "600"
    # 401 -> answered with digest credentials computed from the password
    [send2] = r.on_response(_challenge(req), 1000.1)
    req2 = send2.request
    auth = parse_authorization(req2.headers.get("Authorization"))
    assert auth["username"] == "clinic" and auth["nonce"] == "n1" and auth["uri"] == "sip:sip.example.net"
    assert verify_response(auth, "REGISTER", ha1("clinic", "sip.example.net", "s3cret-pass"))
    assert req2.cseq[0] == req.cseq[0] + 1 and req2.call_id == req.call_id
    # 200 with a shorter grant in the Contact's expires parameter
    ok = _answer(req2, 200, [("Contact", "<sip:clinic@198.51.100.7:5070>;expires=300")])
    assert r.on_response(ok, 1000.2) == []
    assert r.state is RegState.REGISTERED and r.granted == 300
    assert r.next_deadline() == 1000.2 + 240  # 80 % of 300 s
    assert r.tick(1000.2 + 239) == []
    [refresh] = r.tick(1000.2 + 240)
    # the refresh reuses the challenge with a higher nonce-count
    a = parse_authorization(refresh.request.headers.get("Authorization"))
    assert a["nonce"] == "n1" and a["nc"] == "00000002"
    assert r.state is RegState.REGISTERED
    r.on_response(_answer(refresh.request, 200, [("Expires", "600")]), 1241.0)
    assert r.granted == 600 and r.next_deadline() == 1241.0 + 480


def test_407_answered_with_proxy_authorization():
    r = _reg()
    [s] = r.start(0.0)
    [s2] = r.on_response(_challenge(s.request, status=407), 0.1)
    assert s2.request.headers.get("Proxy-Authorization") is not None
    assert s2.request.headers.get("Authorization") is None


def test_wrong_credentials_fail_with_backoff():
    r = _reg(backoff_base=10, backoff_max=60)
    [s] = r.start(0.0)
    [s2] = r.on_response(_challenge(s.request, "n1"), 0.1)
    # the same nonce challenged again (not stale): the password is wrong
    assert r.on_response(_challenge(s2.request, "n1"), 0.2) == []
    assert r.state is RegState.FAILED and "credentials rejected" in r.last_reason
    assert r.next_deadline() == 0.2 + 10
    delays = []
    now = 0.2
    for _ in range(5):
        now = r.next_deadline()
        [s] = r.tick(now)
        assert r.state is RegState.REGISTERING
        r.on_response(_answer(s.request, 403), now)
        delays.append(round(r.next_deadline() - now, 6))
    assert r.last_reason == "403 Forbidden"
    assert delays == [20, 40, 60, 60, 60]  # doubled, capped at backoff_max


def test_stale_challenge_is_answered_again():
    r = _reg()
    [s] = r.start(0.0)
    [s2] = r.on_response(_challenge(s.request, "n1"), 0.1)
    [s3] = r.on_response(_challenge(s2.request, "n2", stale=True), 0.2)
    assert parse_authorization(s3.request.headers.get("Authorization"))["nonce"] == "n2"
    r.on_response(_answer(s3.request, 200), 0.3)
    assert r.state is RegState.REGISTERED and r.granted == 600


def test_timeout_then_success_resets_backoff():
    r = _reg(backoff_base=5)
    [s] = r.start(0.0)
    r.on_timeout(32.0)
    assert r.state is RegState.FAILED and r.last_reason.startswith("timeout")
    assert r.next_deadline() == 37.0
    [s] = r.tick(37.0)
    r.on_response(_answer(s.request, 200), 37.1)
    assert r.state is RegState.REGISTERED and r.failures == 0


def test_423_retries_with_min_expires_and_stale_responses_ignored():
    r = _reg(expires=30)
    [s] = r.start(0.0)
    old = s.request
    [s2] = r.on_response(_answer(s.request, 423, [("Min-Expires", "120")]), 0.1)
    assert s2.request.headers.get("Expires") == "120"
    assert r.on_response(_answer(old, 200), 0.2) == []  # answer to an old branch
    assert r.state is RegState.REGISTERING


def test_stop_unregisters():
    r = _reg()
    [s] = r.start(0.0)
    r.on_response(_answer(s.request, 200), 0.1)
    [bye] = r.stop(1.0)
    assert bye.request.headers.get("Expires") == "0"
    assert r.state is RegState.UNREGISTERED and r.next_deadline() is None
    assert r.status(1.0)["state"] == "unregistered"
