"""Registrar (RFC 3261 §10.3) with digest auth, and the location service it feeds.

The ``test_real_client_*`` tests are the Registration bullets of /work/shared/real-clients.md.
"""

from __future__ import annotations

import re

import pytest

from sip import digest
from sip.location import Binding, Changes, LocationService, contact_key
from sip.message import parse_message
from sip.registrar import AuthOutcome, Registrar

REALM = "pypbx"
T0 = 1_700_000_000.0
PHONE_IP = "192.0.2.10"
SRC = ("UDP", PHONE_IP, 5060)
PASSWORDS = {"1001": "secret1001", "1002": "secret1002"}


def creds(user):
    pw = PASSWORDS.get(user)
    if pw is None:
        return None
    return {"MD5": digest.ha1(user, REALM, pw, "MD5"), "SHA-256": digest.ha1(user, REALM, pw, "SHA-256")}


def make_registrar(**kw):
    loc = LocationService()
    nm = digest.NonceManager(b"test-secret", lifetime=300)
    return Registrar(REALM, loc, nm, creds, **kw)


def register(
    user="1001",
    *,
    contact="<sip:1001@192.0.2.10:5060>",
    contacts=None,
    call_id="cid-1@phone",
    cseq=1,
    expires=None,
    auth=None,
    extra=(),
    from_tag="ft1",
    ua="TestPhone/1.0",
    host="pbx.example",
):
    lines = [
        f"REGISTER sip:{host} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-" + str(cseq) + ";rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag={from_tag}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    for c in contacts if contacts is not None else ([contact] if contact is not None else []):
        lines.append(f"Contact: {c}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if ua:
        lines.append(f"User-Agent: {ua}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    lines += list(extra)
    lines.append("Content-Length: 0")
    return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())


def challenge_of(resp, alg="SHA-256"):
    for v in resp.headers.get_raw_all("WWW-Authenticate"):
        p = digest.parse_authorization(v)
        if p["algorithm"] == alg:
            return p
    raise AssertionError("no challenge for " + alg)


def auth_for(ch, user="1001", password=None, alg="SHA-256", nc=1, uri="sip:pbx.example", cnonce="cn0123"):
    if password is None:
        password = PASSWORDS.get(user, "whatever")
    return digest.build_authorization(
        user,
        ch["realm"],
        "REGISTER",
        uri,
        ch["nonce"],
        password=password,
        algorithm=alg,
        qop="auth",
        nc=nc,
        cnonce=cnonce,
    )


def do_register(reg, now=T0, user="1001", password=None, alg="SHA-256", source=SRC, local=None, **kw):
    """Full round trip: unauthenticated REGISTER -> 401 -> REGISTER with credentials."""
    r1 = reg.handle(register(user, **kw), source[1], source, now, local)
    assert r1.response.status == 401 and r1.auth is AuthOutcome.CHALLENGED
    ch = challenge_of(r1.response, alg)
    kw = dict(kw)
    kw["cseq"] = kw.get("cseq", 1) + 1
    r2 = reg.handle(register(user, auth=auth_for(ch, user, password, alg), **kw), source[1], source, now, local)
    return r2, ch


def contacts_of(resp):
    return resp.headers.get_all("Contact")


def expires_of(resp):
    return {
        re.match(r"<([^>]*)>", c).group(1): int(re.search(r";expires=(\d+)", c).group(1)) for c in contacts_of(resp)
    }


# ---------------------------------------------------------------------------- challenge


def test_unauthenticated_register_gets_401_sha256_then_md5():
    reg = make_registrar()
    r = reg.handle(register(), PHONE_IP, SRC, T0)
    assert r.response.status == 401 and r.auth is AuthOutcome.CHALLENGED
    assert r.changes == Changes() and not r.changes
    vals = r.response.headers.get_raw_all("WWW-Authenticate")
    assert len(vals) == 2
    a, b = (digest.parse_authorization(v) for v in vals)
    assert a["algorithm"] == "SHA-256" and b["algorithm"] == "MD5"
    assert a["realm"] == b["realm"] == REALM and a["qop"] == "auth" and "stale" not in a
    assert a["nonce"] == b["nonce"]
    assert r.response.to.tag  # §8.2.6.2
    assert reg.location.count() == 0


def _mask(resp, user):
    text = resp.to_bytes().decode()
    for v in resp.headers.get_raw_all("WWW-Authenticate"):
        text = text.replace(digest.parse_authorization(v)["nonce"], "NONCE")
    return text.replace(f"sip:{user}@", "sip:USER@")


def test_identical_challenge_for_unknown_and_known_user():
    reg = make_registrar()
    known = reg.handle(register("1001"), PHONE_IP, SRC, T0)
    unknown = reg.handle(register("9999"), PHONE_IP, SRC, T0)
    assert unknown.response.status == known.response.status == 401
    assert unknown.auth is known.auth is AuthOutcome.CHALLENGED
    assert _mask(known.response, "1001") == _mask(unknown.response, "9999")


def test_wrong_password_unknown_user_looks_like_wrong_password_known_user():
    reg = make_registrar()
    seen = []
    orig = reg.credentials

    def spy(u):
        seen.append(u)
        return orig(u)

    reg.credentials = spy
    outs = {}
    for user in ("1001", "9999"):
        r1 = reg.handle(register(user), PHONE_IP, SRC, T0)
        ch = challenge_of(r1.response)
        r2 = reg.handle(register(user, cseq=2, auth=auth_for(ch, user, "wrong-password")), PHONE_IP, SRC, T0)
        outs[user] = r2
    assert seen == ["1001", "9999"]  # both paths look the user up and hash
    k, u = outs["1001"], outs["9999"]
    assert k.auth is u.auth is AuthOutcome.FAILED
    assert k.response.status == u.response.status == 401
    assert k.user == "1001" and u.user == "9999"
    assert _mask(k.response, "1001") == _mask(u.response, "9999")
    assert reg.location.count() == 0


def test_registered_user_md5_and_sha256():
    for alg in ("SHA-256", "MD5"):
        reg = make_registrar()
        r, _ = do_register(reg, alg=alg)
        assert r.response.status == 200 and r.auth is AuthOutcome.OK and r.user == r.aor == "1001"


def test_md5_sess_accepted():
    reg = make_registrar()
    r1 = reg.handle(register(), PHONE_IP, SRC, T0)
    ch = challenge_of(r1.response, "MD5")
    a = digest.build_authorization(
        "1001",
        REALM,
        "REGISTER",
        "sip:pbx.example",
        ch["nonce"],
        password="secret1001",
        algorithm="MD5-sess",
        nc=1,
        cnonce="abc",
    )
    r2 = reg.handle(register(cseq=2, auth=a), PHONE_IP, SRC, T0)
    assert r2.response.status == 200


def test_successful_register_response_and_changes():
    reg = make_registrar()
    r, _ = do_register(reg, expires=600)
    resp = r.response
    assert resp.status == 200
    assert expires_of(resp) == {"sip:1001@192.0.2.10:5060": 600}
    assert resp.headers.get("Date", "").endswith("GMT")
    assert resp.to.tag and resp.call_id == "cid-1@phone" and resp.cseq == (2, "REGISTER")
    assert len(r.changes.added) == 1 and not r.changes.updated and not r.changes.removed
    b = r.changes.added[0]
    assert b.aor == "1001" and b.contact == "sip:1001@192.0.2.10:5060"
    assert b.call_id == "cid-1@phone" and b.cseq == 2
    assert b.expires_at == T0 + 600 and b.registered_at == T0
    assert b.user_agent == "TestPhone/1.0" and b.q == 1.0
    assert reg.location.bindings("1001", T0 + 1) == [b]


def test_wrong_password_is_failed():
    reg = make_registrar()
    r, _ = do_register(reg, password="nope")
    assert r.response.status == 401 and r.auth is AuthOutcome.FAILED
    assert "stale" not in challenge_of(r.response)
    assert reg.location.count() == 0


def test_403_when_auth_user_differs_from_aor():
    reg = make_registrar()
    r1 = reg.handle(register("1002"), PHONE_IP, SRC, T0)
    ch = challenge_of(r1.response)
    # correct credentials of 1001 used to register 1002
    r2 = reg.handle(register("1002", cseq=2, auth=auth_for(ch, "1001")), PHONE_IP, SRC, T0)
    assert r2.response.status == 403 and r2.auth is AuthOutcome.FORBIDDEN
    assert r2.user == "1001" and r2.aor == "1002"
    assert reg.location.count() == 0


def test_malformed_authorization_is_400():
    reg = make_registrar()
    r = reg.handle(register(auth='Digest username="1001", realm="pypbx'), PHONE_IP, SRC, T0)
    assert r.response.status == 400 and r.auth is AuthOutcome.MALFORMED


def test_incomplete_authorization_is_400():
    reg = make_registrar()
    r = reg.handle(register(auth='Digest username="1001", realm="pypbx", nonce="x"'), PHONE_IP, SRC, T0)
    assert r.response.status == 400 and r.auth is AuthOutcome.MALFORMED


def test_other_realm_credentials_get_challenge():
    reg = make_registrar()
    a = digest.build_authorization("1001", "elsewhere", "REGISTER", "sip:pbx.example", "N", password="x")
    r = reg.handle(register(auth=a), PHONE_IP, SRC, T0)
    assert r.response.status == 401 and r.auth is AuthOutcome.CHALLENGED


def test_multiple_authorization_headers_pick_our_realm():
    reg = make_registrar()
    ch = challenge_of(reg.handle(register(), PHONE_IP, SRC, T0).response)
    other = digest.build_authorization("1001", "elsewhere", "REGISTER", "sip:pbx.example", "N", password="x")
    r = reg.handle(register(cseq=2, auth=other, extra=[f"Authorization: {auth_for(ch)}"]), PHONE_IP, SRC, T0)
    assert r.response.status == 200


def test_no_qop_rejected_by_default_allowed_when_configured():
    for allow, status in ((False, 403), (True, 200)):
        reg = make_registrar(allow_no_qop=allow)
        ch = challenge_of(reg.handle(register(), PHONE_IP, SRC, T0).response, "MD5")
        a = digest.build_authorization(
            "1001", REALM, "REGISTER", "sip:pbx.example", ch["nonce"], password="secret1001", algorithm="MD5", qop=None
        )
        r = reg.handle(register(cseq=2, auth=a), PHONE_IP, SRC, T0)
        assert r.response.status == status
        if not allow:
            assert r.auth is AuthOutcome.MALFORMED


def test_unsupported_algorithm_is_400():
    reg = make_registrar(algorithms=("MD5",))
    assert len(reg.handle(register(), PHONE_IP, SRC, T0).response.headers.get_raw_all("WWW-Authenticate")) == 1
    a = digest.build_authorization("1001", REALM, "REGISTER", "sip:x", "N", password="p", algorithm="SHA-256")
    r = reg.handle(register(auth=a), PHONE_IP, SRC, T0)
    assert r.response.status == 400


def test_user_without_ha1_for_algorithm_fails():
    reg = make_registrar()
    reg.credentials = lambda u: {"MD5": digest.ha1(u, REALM, "secret1001")} if u == "1001" else None
    r, _ = do_register(reg, alg="SHA-256")
    assert r.auth is AuthOutcome.FAILED
    r, _ = do_register(reg, alg="MD5", call_id="other")
    assert r.auth is AuthOutcome.OK


def test_domain_check_404():
    reg = make_registrar(domain_check=lambda h: h == "pbx.example")
    r = reg.handle(register(host="evil.example"), PHONE_IP, SRC, T0)
    assert r.response.status == 404 and r.auth is AuthOutcome.NOT_FOUND
    assert reg.handle(register(), PHONE_IP, SRC, T0).response.status == 401


def test_bad_cseq_method_400():
    reg = make_registrar()
    r0 = register()
    req = r0.replace(headers=r0.headers.replace("CSeq", ["1 INVITE"]))  # the parser rejects it already
    assert reg.handle(req, PHONE_IP, SRC, T0).response.status == 400


# ---------------------------------------------------------------------------- nonces


def test_real_client_refresh_reusing_nonce_with_higher_nc_accepted():
    reg = make_registrar()
    r, ch = do_register(reg, expires=120)
    assert r.response.status == 200
    # refresh at ~60 % of the granted time, same nonce, nc=2, no 401 round trip
    t = T0 + 72
    r2 = reg.handle(register(cseq=3, expires=120, auth=auth_for(ch, nc=2, cnonce="cn2")), PHONE_IP, SRC, t)
    assert r2.response.status == 200 and r2.auth is AuthOutcome.OK
    assert expires_of(r2.response) == {"sip:1001@192.0.2.10:5060": 120}
    assert r2.changes.updated and not r2.changes.added
    assert reg.location.bindings("1001", t)[0].expires_at == t + 120


def test_real_client_refresh_with_stale_nonce_gets_stale_true():
    reg = make_registrar()
    _r, ch = do_register(reg, expires=3600)
    t = T0 + 301  # nonce lifetime is 300 s
    r2 = reg.handle(register(cseq=3, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, t)
    assert r2.response.status == 401 and r2.auth is AuthOutcome.STALE
    for v in r2.response.headers.get_raw_all("WWW-Authenticate"):
        p = digest.parse_authorization(v)
        assert p["stale"] == "true" and p["nonce"] != ch["nonce"]
    # and the phone retries with the new nonce without re-prompting
    ch2 = challenge_of(r2.response)
    r3 = reg.handle(register(cseq=4, auth=auth_for(ch2)), PHONE_IP, SRC, t)
    assert r3.response.status == 200


def test_stale_nonce_with_wrong_password_is_failed_not_stale():
    reg = make_registrar()
    _r, ch = do_register(reg)
    r2 = reg.handle(register(cseq=3, auth=auth_for(ch, password="bad", nc=2)), PHONE_IP, SRC, T0 + 400)
    assert r2.auth is AuthOutcome.FAILED
    assert "stale" not in challenge_of(r2.response)


def test_replayed_nonce_count_gets_fresh_challenge_not_stale():
    reg = make_registrar()
    r1 = reg.handle(register(), PHONE_IP, SRC, T0)
    ch = challenge_of(r1.response)
    a = auth_for(ch, nc=1)
    assert reg.handle(register(cseq=2, auth=a), PHONE_IP, SRC, T0).response.status == 200
    r = reg.handle(register(cseq=3, auth=a), PHONE_IP, SRC, T0 + 1)
    assert r.response.status == 401 and r.auth is AuthOutcome.REPLAY
    p = challenge_of(r.response)
    assert "stale" not in p and p["nonce"] != ch["nonce"]


def test_failed_attempt_does_not_burn_nonce_count():
    reg = make_registrar()
    ch = challenge_of(reg.handle(register(), PHONE_IP, SRC, T0).response)
    assert reg.handle(register(cseq=2, auth=auth_for(ch, password="bad")), PHONE_IP, SRC, T0).auth is AuthOutcome.FAILED
    assert reg.handle(register(cseq=3, auth=auth_for(ch)), PHONE_IP, SRC, T0).auth is AuthOutcome.OK


def test_nonce_from_other_source_ip_is_rechallenged():
    reg = make_registrar()
    ch = challenge_of(reg.handle(register(), PHONE_IP, SRC, T0).response)
    other = ("UDP", "198.51.100.1", 5060)
    r = reg.handle(register(cseq=2, auth=auth_for(ch)), other[1], other, T0)
    assert r.response.status == 401 and r.auth is AuthOutcome.CHALLENGED
    assert "stale" not in challenge_of(r.response)


def test_made_up_nonce_is_rechallenged():
    reg = make_registrar()
    a = digest.build_authorization(
        "1001",
        REALM,
        "REGISTER",
        "sip:pbx.example",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        password="secret1001",
        algorithm="MD5",
    )
    r = reg.handle(register(auth=a), PHONE_IP, SRC, T0)
    assert r.response.status == 401 and r.auth is AuthOutcome.CHALLENGED


# ---------------------------------------------------------------------------- expiry


def test_real_client_contact_expires_param_overrides_expires_header():
    reg = make_registrar()
    r, _ = do_register(reg, contact="<sip:1001@192.0.2.10:5060>;expires=300", expires=1800)
    assert r.response.status == 200
    assert expires_of(r.response) == {"sip:1001@192.0.2.10:5060": 300}
    assert r.changes.added[0].expires_at == T0 + 300


def test_expires_header_used_without_param_and_default_without_both():
    reg = make_registrar(default_expires=900)
    r, _ = do_register(reg, expires=1200)
    assert expires_of(r.response) == {"sip:1001@192.0.2.10:5060": 1200}
    reg = make_registrar(default_expires=900)
    r, _ = do_register(reg)
    assert expires_of(r.response) == {"sip:1001@192.0.2.10:5060": 900}


def test_423_interval_too_brief():
    reg = make_registrar(min_expires=60)
    r, _ = do_register(reg, expires=30)
    assert r.response.status == 423 and r.auth is AuthOutcome.OK
    assert r.response.headers.get("Min-Expires") == "60"
    assert reg.location.count() == 0 and not r.changes


def test_423_from_contact_param():
    reg = make_registrar(min_expires=60)
    r, _ = do_register(reg, contact="<sip:1001@192.0.2.10>;expires=10", expires=3600)
    assert r.response.status == 423


def test_expires_above_max_is_clamped():
    reg = make_registrar(max_expires=3600)
    r, _ = do_register(reg, expires=86400)
    assert r.response.status == 200
    assert expires_of(r.response) == {"sip:1001@192.0.2.10:5060": 3600}


def test_expires_zero_removes_binding():
    reg = make_registrar()
    _r, ch = do_register(reg, expires=600)
    assert reg.location.count() == 1
    r2 = reg.handle(register(cseq=3, expires=0, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0 + 5)
    assert r2.response.status == 200
    assert contacts_of(r2.response) == []
    assert [b.contact for b in r2.changes.removed] == ["sip:1001@192.0.2.10:5060"]
    assert reg.location.count() == 0


def test_expires_zero_via_param_removes_only_that_contact():
    reg = make_registrar()
    _r, ch = do_register(reg, contacts=["<sip:1001@192.0.2.10:5060>", "<sip:1001@192.0.2.10:5070>"], expires=600)
    assert reg.location.count() == 2
    r2 = reg.handle(
        register(cseq=3, contact="<sip:1001@192.0.2.10:5070>;expires=0", auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0 + 5
    )
    assert list(expires_of(r2.response)) == ["sip:1001@192.0.2.10:5060"]


def test_expiry_and_purge():
    reg = make_registrar()
    do_register(reg, expires=120)
    loc = reg.location
    assert len(loc.bindings("1001", T0 + 119)) == 1
    assert loc.bindings("1001", T0 + 120) == []
    assert loc.purge(T0 + 100) == []
    gone = loc.purge(T0 + 121)
    assert [b.aor for b in gone] == ["1001"] and loc.count() == 0


# ---------------------------------------------------------------------------- wildcard


def test_wildcard_with_expires_zero_removes_all():
    reg = make_registrar()
    _r, ch = do_register(reg, contacts=["<sip:1001@192.0.2.10:5060>", "<sip:1001@192.0.2.11:5060>"])
    assert reg.location.count() == 2
    r2 = reg.handle(
        register(contact="*", expires=0, call_id="other-cid", cseq=1, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0 + 1
    )
    assert r2.response.status == 200 and contacts_of(r2.response) == []
    assert len(r2.changes.removed) == 2 and reg.location.count() == 0


@pytest.mark.parametrize(
    "kw",
    [{"contact": "*", "expires": 3600}, {"contact": "*"}, {"contacts": ["*", "<sip:1001@192.0.2.10>"], "expires": 0}],
)
def test_wildcard_invalid_is_400(kw):
    reg = make_registrar()
    _r, _ = do_register(reg, contact="<sip:1001@192.0.2.10:5060>")
    assert reg.location.count() == 1
    r1 = reg.handle(register(**kw), PHONE_IP, SRC, T0)
    if r1.response.status == 401:
        ch = challenge_of(r1.response)
        r1 = reg.handle(register(cseq=5, auth=auth_for(ch), **kw), PHONE_IP, SRC, T0)
    assert r1.response.status == 400
    assert reg.location.count() == 1


def test_wildcard_same_callid_old_cseq_500():
    reg = make_registrar()
    _r, ch = do_register(reg, cseq=10)  # stored with CSeq 11
    r2 = reg.handle(register(contact="*", expires=0, cseq=11, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0)
    assert r2.response.status == 500 and reg.location.count() == 1


# ---------------------------------------------------------------------------- ordering / refresh


def test_same_callid_lower_or_equal_cseq_is_500_and_changes_nothing():
    reg = make_registrar()
    _r, ch = do_register(reg, cseq=10, expires=600)  # stored CSeq 11
    for n, cseq in ((2, 11), (3, 5)):
        r2 = reg.handle(register(cseq=cseq, expires=60, auth=auth_for(ch, nc=n)), PHONE_IP, SRC, T0 + 1)
        assert r2.response.status == 500 and not r2.changes
    assert reg.location.bindings("1001", T0 + 2)[0].expires_at == T0 + 600


def test_refresh_updates_binding():
    reg = make_registrar()
    _r, ch = do_register(reg, expires=600)
    r2 = reg.handle(register(cseq=3, expires=900, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0 + 100)
    assert r2.response.status == 200
    assert len(r2.changes.updated) == 1 and not r2.changes.added and not r2.changes.removed
    [b] = reg.location.bindings("1001", T0 + 100)
    assert b.cseq == 3 and b.expires_at == T0 + 1000
    assert expires_of(r2.response) == {"sip:1001@192.0.2.10:5060": 900}


def test_new_callid_same_contact_replaces_binding():
    reg = make_registrar()
    _r, ch = do_register(reg, cseq=50)
    r2 = reg.handle(register(call_id="new-cid", cseq=1, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0 + 1)
    assert r2.response.status == 200 and reg.location.count() == 1
    assert reg.location.bindings("1001", T0 + 1)[0].call_id == "new-cid"


def test_query_without_contact_returns_bindings():
    reg = make_registrar()
    _r, ch = do_register(reg, expires=600)
    q = reg.handle(register(contact=None, cseq=3, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0 + 100)
    assert q.response.status == 200 and not q.changes
    assert expires_of(q.response) == {"sip:1001@192.0.2.10:5060": 500}


def test_q_values_and_order():
    reg = make_registrar()
    r, _ = do_register(reg, contacts=["<sip:1001@192.0.2.10:5060>;q=0.5", "<sip:1001@192.0.2.11:5060>;q=0.9"])
    assert r.response.status == 200
    bs = reg.location.bindings("1001", T0)
    assert [b.q for b in bs] == [0.9, 0.5]
    assert "q=0.9" in contacts_of(r.response)[0]


def test_bad_q_is_400():
    reg = make_registrar()
    r, _ = do_register(reg, contact="<sip:1001@192.0.2.10>;q=1.5")
    assert r.response.status == 400 and reg.location.count() == 0


# ---------------------------------------------------------------------------- max contacts


def test_max_contacts_replaces_binding_expiring_soonest():
    reg = make_registrar(max_contacts=2)
    r, ch = do_register(reg, contact="<sip:1001@192.0.2.10:5001>", expires=600)
    r = reg.handle(
        register(cseq=3, contact="<sip:1001@192.0.2.10:5002>", expires=300, auth=auth_for(ch, nc=2)), PHONE_IP, SRC, T0
    )
    r = reg.handle(
        register(cseq=4, contact="<sip:1001@192.0.2.10:5003>", expires=900, auth=auth_for(ch, nc=3)), PHONE_IP, SRC, T0
    )
    assert r.response.status == 200
    assert sorted(expires_of(r.response)) == ["sip:1001@192.0.2.10:5001", "sip:1001@192.0.2.10:5003"]
    assert [b.contact for b in r.changes.removed] == ["sip:1001@192.0.2.10:5002"]
    assert reg.location.count() == 2


def test_too_many_contacts_in_one_request_is_403():
    reg = make_registrar(max_contacts=2)
    r, _ = do_register(reg, contacts=[f"<sip:1001@192.0.2.10:{5000 + i}>" for i in range(3)])
    assert r.response.status == 403 and reg.location.count() == 0


# ---------------------------------------------------------------------------- real clients


def test_real_client_reboot_new_callid_same_instance_replaces_binding():
    inst = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"
    reg = make_registrar()
    c1 = f'<sip:1001@192.168.1.50:5060;transport=udp>;+sip.instance="{inst}";reg-id=1'
    r, _ch = do_register(reg, contact=c1, call_id="before-reboot", cseq=100)
    assert r.response.status == 200
    assert r.changes.added[0].instance == inst and r.changes.added[0].reg_id == 1
    assert f'+sip.instance="{inst}"' in contacts_of(r.response)[0]
    # after the reboot: new Call-ID, CSeq starts again, new source port and contact port
    src2 = ("UDP", PHONE_IP, 40123)
    c2 = f'<sip:1001@192.168.1.50:40123;transport=udp>;+sip.instance="{inst}";reg-id=1'
    r2, _ = do_register(reg, contact=c2, call_id="after-reboot", cseq=1, source=src2)
    assert r2.response.status == 200
    live = reg.location.bindings("1001", T0 + 1)
    assert [b.contact for b in live] == ["sip:1001@192.168.1.50:40123;transport=udp"]
    assert [b.contact for b in r2.changes.removed] == ["sip:1001@192.168.1.50:5060;transport=udp"]
    assert list(expires_of(r2.response)) == ["sip:1001@192.168.1.50:40123;transport=udp"]


def test_without_instance_reboot_on_new_port_keeps_both_until_expiry():
    """The behaviour real-clients.md warns about, documented: no instance id -> two bindings."""
    reg = make_registrar()
    do_register(reg, contact="<sip:1001@192.168.1.50:5060>", call_id="a", expires=600)
    do_register(reg, contact="<sip:1001@192.168.1.50:40123>", call_id="b", expires=600)
    assert reg.location.count() == 2
    assert reg.location.purge(T0 + 601) and reg.location.count() == 0


def test_real_client_zoiper_contact_params_kept_exactly():
    reg = make_registrar()
    zc = "sip:1001@192.168.1.50:52341;rinstance=8a1b2c3d4e5f6a7b;transport=tcp"
    r, _ = do_register(reg, contact=f"<{zc}>", ua="Z 5.6.1 v2.10.19.9")
    assert r.response.status == 200
    [b] = reg.location.bindings("1001", T0)
    assert b.contact == zc
    assert contacts_of(r.response)[0].startswith(f"<{zc}>;expires=")
    # ;ob (RFC 5626 outbound flag) too
    reg = make_registrar()
    oc = "sip:1001@192.168.1.50:52341;transport=TCP;ob"
    r, _ = do_register(reg, contact=f'<{oc}>;reg-id=1;+sip.instance="<urn:uuid:1-2-3>"')
    assert reg.location.bindings("1001", T0)[0].contact == oc
    # Zoiper restarted: new rinstance on the same host:port replaces the old binding
    reg = make_registrar()
    do_register(reg, contact=f"<{zc}>", call_id="z1")
    zc2 = "sip:1001@192.168.1.50:52341;rinstance=ffffffffffffffff;transport=tcp"
    r, _ = do_register(reg, contact=f"<{zc2}>", call_id="z2")
    assert [b.contact for b in reg.location.bindings("1001", T0)] == [zc2]
    assert [b.contact for b in r.changes.removed] == [zc]


def test_real_client_baresip_contact_user_kept_exactly():
    reg = make_registrar()
    bc = "sip:1001-0x55d4e2a1c2b0@192.168.1.7:5060;transport=udp"
    r, _ = do_register(
        reg,
        contact=f'<{bc}>;expires=3600;+sip.instance="<urn:uuid:8d1c2e0a-1111-2222-3333-444455556666>"',
        ua="baresip v3.10.1 (x86_64/Linux)",
    )
    assert r.response.status == 200
    [b] = reg.location.bindings("1001", T0)
    assert b.contact == bc and b.aor == "1001"
    assert contacts_of(r.response)[0].startswith(f"<{bc}>")


def test_real_client_escaped_contact_not_rebuilt():
    reg = make_registrar()
    c = "sip:1001%2Dx@192.168.1.7:5060;Transport=UDP"
    do_register(reg, contact=f"<{c}>")
    assert reg.location.bindings("1001", T0)[0].contact == c


def test_real_client_nat_source_and_local_socket_recorded():
    reg = make_registrar()
    nat = ("UDP", "203.0.113.50", 61234)  # public address:port the REGISTER came from
    r, _ = do_register(reg, contact="<sip:1001@192.168.1.50:5060>", source=nat, local="udp:0.0.0.0:5060")
    assert r.response.status == 200
    [b] = reg.location.bindings("1001", T0)
    assert b.contact == "sip:1001@192.168.1.50:5060"  # private address kept as given
    assert b.source == nat and b.local == "udp:0.0.0.0:5060"
    row = b.to_row()
    assert (row["source_transport"], row["source_host"], row["source_port"]) == nat


# ---------------------------------------------------------------------------- location / persistence


def test_binding_row_roundtrip_and_db_fields():
    b = Binding(
        "1001",
        "sip:1001@h;ob",
        "<urn:uuid:x>",
        1,
        "cid",
        7,
        T0 + 60,
        0.5,
        ("TLS", "203.0.113.5", 5061),
        "tls:1",
        "UA",
        T0,
    )
    row = b.to_row()
    assert Binding.from_row(row) == b
    try:
        from pypbx.db import REGISTRATION_FIELDS
    except Exception:  # pragma: no cover - other engineer's module
        REGISTRATION_FIELDS = None
    if REGISTRATION_FIELDS is not None:
        assert set(row) == set(REGISTRATION_FIELDS)
    minimal = Binding.from_row({"aor": "1", "contact": "sip:1@h"})
    assert minimal.q == 1.0 and minimal.source == ("UDP", "", 0) and minimal.reg_id is None


def test_changes_upserts_and_deletes():
    reg = make_registrar()
    do_register(reg, contact="<sip:1001@192.168.1.50:5060;rinstance=a>", call_id="x")
    r, _ = do_register(reg, contact="<sip:1001@192.168.1.50:5060;rinstance=b>", call_id="y")
    assert r.changes.deletes() == [("1001", "sip:1001@192.168.1.50:5060;rinstance=a")]
    [row] = r.changes.upserts()
    assert row["contact"] == "sip:1001@192.168.1.50:5060;rinstance=b" and row["call_id"] == "y"


def test_location_load_restores():
    reg = make_registrar()
    do_register(reg, contacts=["<sip:1001@192.0.2.10:5060>", "<sip:1001@192.0.2.11:5060>"])
    rows = [b.to_row() for b in reg.location.bindings("1001", T0)]
    loc2 = LocationService()
    assert loc2.load(rows) == 2 and loc2.count() == 2
    assert loc2.bindings("1001", T0) == reg.location.bindings("1001", T0)
    assert loc2.load(rows) == 2 and loc2.count() == 2  # idempotent


def test_contact_key_loose_comparison():
    assert contact_key("sip:1001@Host.Example") == contact_key("<sip:1001@host.example:5060;rinstance=x>")
    assert contact_key("sip:1001@h;transport=TCP") == contact_key("sip:1001@h:5060;transport=tcp")
    assert contact_key("sip:1001@h;transport=tcp") != contact_key("sip:1001@h")
    assert contact_key("sip:1001@h") != contact_key("sip:1002@h")
    assert contact_key("sip:1001@h") != contact_key("sips:1001@h")
    assert contact_key("sip:1001@[2001:db8::1]:5070") == contact_key("sip:1001@[2001:DB8::1]:5070;ob")
    assert contact_key("sip:%31001@h") == contact_key("sip:1001@h")


def test_location_remove_all_and_count():
    loc = LocationService()
    b1 = Binding("1", "sip:1@a", None, None, "c", 1, T0 + 10)
    b2 = Binding("1", "sip:1@b", None, None, "c", 1, T0 + 10)
    assert loc.upsert(b1).added == [b1]
    assert loc.upsert(b2).added == [b2]
    assert loc.count() == 2 and len(loc) == 2 and loc.aors() == ["1"]
    ch = loc.remove_all("1")
    assert ch.removed == [b1, b2] and loc.count() == 0 and loc.bindings("1", T0) == []


def test_non_sip_contact_is_400():
    reg = make_registrar()
    r, _ = do_register(reg, contact="<tel:+15551234567>")
    assert r.response.status == 400 and reg.location.count() == 0


def test_changes_fold_and_response_contacts_for_multiple():
    reg = make_registrar()
    r, _ = do_register(reg, contacts=["<sip:1001@192.0.2.10:5060>;expires=600", "<sip:1001@192.0.2.10:5060>;expires=0"])
    assert r.response.status == 200
    assert reg.location.count() == 0 and not r.changes.added


def test_unknown_authorization_scheme_is_challenged():
    """RFC 4475 §3.3.3 regaut01: unknown scheme -> 401, not 400."""
    reg = make_registrar()
    r = reg.handle(register(auth="NoOneKnowsThisScheme opaque-data=here"), PHONE_IP, SRC, T0)
    assert r.response.status == 401 and r.auth is AuthOutcome.CHALLENGED


def test_result_names_the_algorithm_the_phone_used():
    """The registrar reports the digest algorithm of the credentials it accepted (the
    server logs it: ``registered ... auth=SHA-256``)."""
    for alg in ("SHA-256", "MD5"):
        r2, _ch = do_register(make_registrar(), alg=alg)
        assert r2.response.status == 200 and r2.auth is AuthOutcome.OK
        assert r2.algorithm == alg
