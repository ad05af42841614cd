"""Digest authentication: published vectors, parsing, nonces (expiry, replay, source)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sip import digest
from sip.digest import (
    NonceManager,
    base_algorithm,
    build_authorization,
    challenge_headers,
    compute_response,
    ha1,
    parse_authorization,
    userhash,
    verify_response,
)


def _vectors_path() -> Path:
    d = os.environ.get("PYPBX_TORTURE_DIR")
    base = Path(d) if d else Path(__file__).resolve().parents[2].parent / "shared" / "sip-torture"
    return base / "digest_vectors.json"


def _load_vectors():
    p = _vectors_path()
    if not p.exists():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


VECTORS = _load_vectors()


def test_vector_file_present():
    if VECTORS is None:
        if os.environ.get("CI"):
            pytest.fail(f"digest vectors missing at {_vectors_path()}")
        pytest.skip(f"digest vectors not found at {_vectors_path()}")
    assert len(VECTORS) >= 9


def _vector_params():
    if VECTORS is None:
        return [pytest.param(None, marks=pytest.mark.skip("no vectors"), id="missing")]
    return [pytest.param(v, id=v["id"]) for v in VECTORS]


@pytest.mark.parametrize("v", _vector_params())
def test_vector_ha1(v):
    alg = v.get("algorithm", "MD5")
    got = ha1(v["username"], v["realm"], v["password"], alg, v["nonce"], v.get("cnonce"))
    assert got == v["computed_HA1"]


@pytest.mark.parametrize("v", _vector_params())
def test_vector_response(v):
    alg = v.get("algorithm", "MD5")
    stored = ha1(v["username"], v["realm"], v["password"], base_algorithm(alg))
    body = v.get("body", "").encode("utf-8")
    got = compute_response(
        stored, v["method"], v["uri"], v["nonce"], v.get("nc"), v.get("cnonce"), v.get("qop"), alg, body
    )
    assert got == v["computed_response"]
    if v.get("match"):
        assert got == v["published_response"]
    else:
        assert got != v["published_response"]


@pytest.mark.parametrize("v", _vector_params())
def test_vector_verify_via_parsed_header(v):
    """Round trip: build the header a client would send, parse it, verify it."""
    alg = v.get("algorithm", "MD5")
    stored = ha1(v["username"], v["realm"], v["password"], base_algorithm(alg))
    body = v.get("body", "").encode("utf-8")
    hdr = build_authorization(
        v["username"],
        v["realm"],
        v["method"],
        v["uri"],
        v["nonce"],
        ha1=stored,
        algorithm=alg,
        qop=v.get("qop"),
        nc=v.get("nc", 1),
        cnonce=v.get("cnonce"),
        opaque=v.get("opaque"),
        body=body,
    )
    p = parse_authorization(hdr)
    assert p["response"] == v["computed_response"]
    assert verify_response(p, v["method"], stored, body)
    assert not verify_response(p, v["method"], stored.replace(stored[0], "f" if stored[0] != "f" else "e", 1), body)


@pytest.mark.parametrize(
    "v", [p for p in _vector_params() if p.values[0] is None or "computed_userhash" in p.values[0]]
)
def test_vector_userhash(v):
    assert userhash(v["username"], v["realm"], v["algorithm"]) == v["computed_userhash"]
    # the RFC's printed values are SHA-512 truncated to 256 bits (see the note in the file)
    trunc = hashlib.sha512(f"{v['username']}:{v['realm']}".encode()).hexdigest()[:64]
    assert trunc == v["published_userhash"] == v["truncated_sha512_userhash"]


def test_ha1_sess_without_nonce_is_base():
    assert ha1("bob", "biloxi.com", "zanzibar", "MD5-sess") == ha1("bob", "biloxi.com", "zanzibar")


def test_unknown_algorithm_and_qop():
    with pytest.raises(ValueError):
        ha1("a", "b", "c", "SHA-1")
    with pytest.raises(ValueError):
        compute_response("00", "REGISTER", "sip:x", "n", 1, "c", "auth-conf", "MD5")
    assert not verify_response({"uri": "sip:x", "nonce": "n", "response": "x", "algorithm": "ROT13"}, "REGISTER", "00")
    assert not verify_response({"nonce": "n", "response": "x"}, "REGISTER", "00")


def test_algorithm_names_case_insensitive():
    h = ha1("bob", "biloxi.com", "zanzibar", "md5")
    assert compute_response(h, "INVITE", "sip:bob@biloxi.com", "n", 1, "c", "auth", "md5-SESS") == compute_response(
        h, "INVITE", "sip:bob@biloxi.com", "n", "00000001", "c", "auth", "MD5-sess"
    )


# ---------------------------------------------------------------------------- parsing


def test_parse_basic_and_case_insensitive_keys():
    p = parse_authorization(
        'digest USERNAME="1001", Realm="pbx", nonce="abc", uri="sip:pbx", '
        'response="0123", ALGORITHM=SHA-256, qop=auth, nc=00000002, cnonce="xyz"'
    )
    assert p["scheme"] == "digest"
    assert p["username"] == "1001" and p["realm"] == "pbx" and p["algorithm"] == "SHA-256"
    assert p["nc"] == "00000002" and p["qop"] == "auth"


def test_parse_commas_and_escapes_inside_quotes():
    p = parse_authorization(r'Digest username="a\"b, c", realm="x,y=z", nonce="n"')
    assert p["username"] == 'a"b, c'
    assert p["realm"] == "x,y=z"


def test_parse_tolerates_whitespace_and_empty_elements():
    p = parse_authorization('Digest   username = "u" ,, realm="r",\r\n\tnonce="n",')
    assert p == {"scheme": "Digest", "username": "u", "realm": "r", "nonce": "n"}


def test_parse_utf8_username():
    p = parse_authorization('Digest username="Jäsøn Doe", realm="r"')
    assert p["username"] == "Jäsøn Doe"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Basic dXNlcjpwYXNz",
        "Digest",
        "Digest   ",
        'Digest username="unterminated',
        "Digest username",
        "Digest =x",
        'Digest username="a" realm="b"',
        'Digest username="a", username="b"',
        'Digest username=a"b',
        "Digest a=b c=d",
        'Digestusername="a"',
    ],
)
def test_parse_malformed_raises(bad):
    with pytest.raises(ValueError):
        parse_authorization(bad)


def test_parse_not_a_string():
    with pytest.raises(ValueError):
        parse_authorization(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- challenges


def test_challenge_sha256_first_then_md5():
    hs = challenge_headers("pbx.local", "NONCE")
    assert len(hs) == 2
    assert "algorithm=SHA-256" in hs[0] and "algorithm=MD5" in hs[1]
    for h in hs:
        p = parse_authorization(h)
        assert p["realm"] == "pbx.local" and p["nonce"] == "NONCE" and p["qop"] == "auth"
        assert "stale" not in p and "opaque" not in p


def test_challenge_stale_and_opaque_and_quoting():
    hs = challenge_headers('we "quote"', "N", stale=True, opaque="op", algorithms=("MD5",))
    assert len(hs) == 1
    p = parse_authorization(hs[0])
    assert p["stale"] == "true" and p["opaque"] == "op" and p["realm"] == 'we "quote"'
    assert p["algorithm"] == "MD5"


def test_build_authorization_with_password_and_random_cnonce():
    hdr = build_authorization("1001", "pbx", "REGISTER", "sip:pbx", "N", password="pw", algorithm="SHA-256", nc=7)
    p = parse_authorization(hdr)
    assert p["nc"] == "00000007" and len(p["cnonce"]) == 16
    assert verify_response(p, "REGISTER", ha1("1001", "pbx", "pw", "SHA-256"))
    assert not verify_response(p, "INVITE", ha1("1001", "pbx", "pw", "SHA-256"))
    with pytest.raises(ValueError):
        build_authorization("1001", "pbx", "REGISTER", "sip:pbx", "N")


def test_response_compare_is_case_insensitive_hex():
    hdr = build_authorization("u", "r", "REGISTER", "sip:r", "N", password="p")
    p = parse_authorization(hdr)
    p["response"] = p["response"].upper()
    assert verify_response(p, "REGISTER", ha1("u", "r", "p"))


# ---------------------------------------------------------------------------- nonces


def test_nonce_roundtrip_ok():
    nm = NonceManager(b"k" * 32)
    n = nm.make(1000.0, "192.0.2.1")
    assert len(n) == 43 and '"' not in n and "," not in n
    assert nm.check(n, "00000001", 1001.0, "192.0.2.1") == "ok"


def test_nonces_are_unique():
    nm = NonceManager()
    assert len({nm.make(5.0, "1.1.1.1") for _ in range(200)}) == 200


def test_nonce_expiry_is_stale():
    nm = NonceManager(b"k", lifetime=300)
    n = nm.make(1000.0, "192.0.2.1")
    assert nm.check(n, 1, 1299.0, "192.0.2.1") == "ok"
    assert nm.check(n, 2, 1300.5, "192.0.2.1") == "stale"


def test_nonce_from_future_is_invalid():
    nm = NonceManager(b"k")
    n = nm.make(1000.0, "192.0.2.1")
    assert nm.check(n, 1, 900.0, "192.0.2.1") == "invalid"


def test_nonce_replay_same_or_lower_nc():
    nm = NonceManager(b"k")
    n = nm.make(10.0, "192.0.2.1")
    assert nm.check(n, "00000001", 11.0, "192.0.2.1") == "ok"
    assert nm.check(n, "00000001", 11.0, "192.0.2.1") == "replay"
    assert nm.check(n, "00000003", 12.0, "192.0.2.1") == "ok"
    assert nm.check(n, "00000002", 12.0, "192.0.2.1") == "replay"
    assert nm.check(n, "00000004", 12.0, "192.0.2.1") == "ok"


def test_nonce_no_qop_usable_once():
    nm = NonceManager(b"k")
    n = nm.make(10.0, "192.0.2.1")
    assert nm.check(n, None, 11.0, "192.0.2.1") == "ok"
    assert nm.check(n, None, 11.0, "192.0.2.1") == "replay"


def test_nonce_check_without_commit_then_record():
    nm = NonceManager(b"k")
    n = nm.make(10.0, "192.0.2.1")
    assert nm.check(n, 1, 11.0, "192.0.2.1", commit=False) == "ok"
    assert nm.check(n, 1, 11.0, "192.0.2.1", commit=False) == "ok"
    nm.record(n, 1)
    assert nm.check(n, 1, 11.0, "192.0.2.1") == "replay"
    nm.record(n, "00000005")
    assert nm.check(n, 5, 11.0, "192.0.2.1") == "replay"
    assert nm.check(n, 6, 11.0, "192.0.2.1") == "ok"


def test_nonce_wrong_source_ip_is_invalid():
    nm = NonceManager(b"k")
    n = nm.make(10.0, "192.0.2.1")
    assert nm.check(n, 1, 11.0, "192.0.2.2") == "invalid"
    assert nm.check(n, 1, 11.0, "192.0.2.1") == "ok"


def test_nonce_other_secret_or_garbage_is_invalid():
    a, b = NonceManager(b"a"), NonceManager(b"b")
    n = a.make(10.0, "192.0.2.1")
    assert b.check(n, 1, 11.0, "192.0.2.1") == "invalid"
    mid = n[:20] + ("A" if n[20] != "A" else "B") + n[21:]
    for junk in ["", "x", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "!" * 43, mid, "é" * 43]:
        assert a.check(junk, 1, 11.0, "192.0.2.1") == "invalid"


def test_nonce_bad_nc_is_invalid():
    nm = NonceManager(b"k")
    n = nm.make(10.0, "192.0.2.1")
    assert nm.check(n, "zz", 11.0, "192.0.2.1") == "invalid"
    assert nm.check(n, "1", 11.0, "192.0.2.1") == "invalid"
    assert nm.check(n, 0, 11.0, "192.0.2.1") == "invalid"


def test_nonce_table_bounded_and_eviction_never_reopens_replay():
    nm = NonceManager(b"k", max_tracked=32)
    nonces = [nm.make(10.0 + i * 0.01, "192.0.2.1") for i in range(100)]
    for n in nonces:
        assert nm.check(n, 1, 20.0, "192.0.2.1") == "ok"
    assert len(nm) <= 32
    # an evicted nonce must not be accepted again with the same nc
    assert nm.check(nonces[0], 1, 20.0, "192.0.2.1") in ("stale", "replay")
    assert nm.check(nonces[-1], 1, 20.0, "192.0.2.1") == "replay"
    # a fresh nonce still works
    assert nm.check(nm.make(21.0, "192.0.2.1"), 1, 21.0, "192.0.2.1") == "ok"


def test_nonce_purge():
    nm = NonceManager(b"k", lifetime=300)
    n1 = nm.make(0.0, "192.0.2.1")
    n2 = nm.make(200.0, "192.0.2.1")
    nm.check(n1, 1, 1.0, "192.0.2.1")
    nm.check(n2, 1, 201.0, "192.0.2.1")
    assert nm.purge(350.0) == 1
    assert len(nm) == 1
    assert nm.check(n2, 1, 360.0, "192.0.2.1") == "replay"


def test_ipv6_source():
    nm = NonceManager(b"k")
    n = nm.make(1.0, "2001:db8::1")
    assert nm.check(n, 1, 2.0, "2001:db8::1") == "ok"
    assert nm.check(n, 2, 2.0, "2001:db8::2") == "invalid"


def test_module_all_exports_exist():
    for name in digest.__all__:
        assert hasattr(digest, name)


def test_nonce_table_self_purges_without_purge_calls():
    nm = NonceManager(b"k", lifetime=10)
    for i in range(2000):
        t = i * 0.1  # 10 nonces/s, 10 s lifetime -> ~100 live
        assert nm.check(nm.make(t, "192.0.2.1"), 1, t, "192.0.2.1") == "ok"
    assert len(nm) <= 110


def test_nonce_non_canonical_base64_spelling_is_invalid():
    """The last base64 character carries 2 unused bits: other spellings decode to the same
    bytes but must not be accepted (the nonce string keys the replay table)."""
    import base64

    nm = NonceManager(b"k")
    n = nm.make(10.0, "192.0.2.1")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = alphabet.index(n[-1])
    variants = [n[:-1] + alphabet[(i & ~3) | k] for k in range(4) if (i & ~3) | k != i]
    assert len(variants) == 3
    for v in variants:
        assert base64.urlsafe_b64decode(v + "=") == base64.urlsafe_b64decode(n + "=")
        assert nm.check(v, 1, 11.0, "192.0.2.1") == "invalid"
    assert nm.check(n, 1, 11.0, "192.0.2.1") == "ok"
