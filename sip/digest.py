"""HTTP/SIP digest authentication, server side (RFC 2617, RFC 7616, RFC 8760).

Sans-I/O: no clock, no sockets. Time comes in as ``now`` (float seconds); use the
same clock for :meth:`NonceManager.make` and :meth:`NonceManager.check`.

Algorithms: ``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``, ``SHA-512-256``,
``SHA-512-256-sess`` (names are case-insensitive). ``qop=auth`` and ``qop=auth-int``
are computed; whether the legacy no-qop form (RFC 2069) is *accepted* is the
caller's policy (the registrar requires ``qop=auth`` by default).

Stored credentials are HA1 values (``H(username:realm:password)``) per base algorithm;
the ``-sess`` variants derive the session HA1 from the stored one.

Public API::

    ha1(username, realm, password, algorithm='MD5', nonce=None, cnonce=None) -> str
    userhash(username, realm, algorithm='SHA-256') -> str
    compute_response(ha1, method, uri, nonce, nc=None, cnonce=None, qop=None,
                     algorithm='MD5', body=b'') -> str
    verify_response(params: dict, method, ha1, body=b'') -> bool
    parse_authorization(value) -> dict          # also parses WWW-Authenticate values
    challenge_headers(realm, nonce, stale=False, algorithms=('SHA-256', 'MD5'),
                      opaque=None, qop='auth') -> list[str]
    build_authorization(username, realm, method, uri, nonce, *, password=None, ha1=None,
                        algorithm='MD5', qop='auth', nc=1, cnonce=None, opaque=None,
                        body=b'') -> str
    NonceManager(secret=None, lifetime=300.0, max_tracked=200_000)
        .make(now, source_ip) -> str
        .check(nonce, nc, now, source_ip, commit=True) -> 'ok'|'stale'|'invalid'|'replay'
        .record(nonce, nc)
        .purge(now) -> int
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "ALGORITHMS",
    "NonceManager",
    "base_algorithm",
    "build_authorization",
    "challenge_headers",
    "compute_response",
    "ha1",
    "normalize_algorithm",
    "parse_authorization",
    "parse_challenge",
    "session_ha1",
    "userhash",
    "verify_response",
]


class _Hash(Protocol):
    def hexdigest(self) -> str: ...


_HASHES: dict[str, Callable[[bytes], _Hash]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data),
}

#: canonical algorithm names accepted by this module
ALGORITHMS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess")
_CANON = {a.upper(): a for a in ALGORITHMS}


def normalize_algorithm(algorithm: str | None) -> str:
    """Canonical spelling of an algorithm name; a missing one means MD5 (RFC 2617).

    Raises ValueError for an unknown algorithm."""
    if algorithm is None or algorithm == "":
        return "MD5"
    try:
        return _CANON[algorithm.upper()]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None


def base_algorithm(algorithm: str | None) -> str:
    """'SHA-256-sess' -> 'SHA-256' (the key under which the stored HA1 lives)."""
    a = normalize_algorithm(algorithm)
    return a[:-5] if a.endswith("-sess") else a


def _h(algorithm: str, data: str) -> str:
    return _HASHES[algorithm](data.encode("utf-8")).hexdigest()


def ha1(
    username: str,
    realm: str,
    password: str,
    algorithm: str = "MD5",
    nonce: str | None = None,
    cnonce: str | None = None,
) -> str:
    """H(username:realm:password). For a ``-sess`` algorithm, when nonce and cnonce are
    given, returns the session HA1 H(H(user:realm:pw):nonce:cnonce) instead."""
    alg = normalize_algorithm(algorithm)
    base = base_algorithm(alg)
    h = _h(base, f"{username}:{realm}:{password}")
    if alg.endswith("-sess") and nonce is not None and cnonce is not None:
        return session_ha1(h, nonce, cnonce, alg)
    return h


def userhash(username: str, realm: str, algorithm: str = "SHA-256") -> str:
    """RFC 7616 §3.4.4: H(username:realm)."""
    return _h(base_algorithm(algorithm), f"{username}:{realm}")


def session_ha1(ha1hex: str, nonce: str, cnonce: str, algorithm: str) -> str:
    return _h(base_algorithm(algorithm), f"{ha1hex}:{nonce}:{cnonce}")


def compute_response(
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | int | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
    algorithm: str | None = "MD5",
    body: bytes | str = b"",
) -> str:
    """The request-digest. ``ha1`` is the *stored* (non-session) HA1; for ``-sess``
    algorithms the session HA1 is derived here. ``nc`` may be an int or the 8-hex string."""
    alg = normalize_algorithm(algorithm)
    base = alg[:-5] if alg.endswith("-sess") else alg
    hf = _HASHES[base]
    if alg != base:
        if cnonce is None:
            raise ValueError("-sess algorithm needs a cnonce")
        ha1 = hf(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest()
    if qop == "auth-int":
        if isinstance(body, str):
            body = body.encode("utf-8")
        a2 = f"{method}:{uri}:{hf(body).hexdigest()}"
    elif qop is None or qop == "auth":
        a2 = f"{method}:{uri}"
    else:
        raise ValueError(f"unsupported qop {qop!r}")
    ha2 = hf(a2.encode("utf-8")).hexdigest()
    if qop is None:
        return hf(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    if isinstance(nc, int):
        nc = f"{nc:08x}"
    if nc is None or cnonce is None:
        raise ValueError("qop requires nc and cnonce")
    return hf(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()


def verify_response(params: dict[str, str], method: str, ha1: str, body: bytes = b"") -> bool:
    """Check the ``response`` of parsed Authorization ``params`` against the stored HA1
    (constant-time comparison). Returns False (never raises) on incomplete params."""
    try:
        expected = compute_response(
            ha1,
            method,
            params["uri"],
            params["nonce"],
            params.get("nc"),
            params.get("cnonce"),
            params.get("qop"),
            params.get("algorithm"),
            body,
        )
    except (KeyError, ValueError, TypeError):
        return False
    got = params.get("response", "")
    return hmac.compare_digest(expected.encode("ascii"), got.lower().encode("ascii", "replace"))


# ---------------------------------------------------------------------------- parsing

_SCHEME_RE = re.compile(r"\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)(?:\s+|$)")
_PARAM_RE = re.compile(
    r"[\s,]*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*"
    r'(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)',
    re.S,
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.S)
_TAIL_RE = re.compile(r"[\s,]*")


def parse_authorization(value: str) -> dict[str, str]:
    """Parse a ``Digest`` credentials/challenge value into a dict.

    Keys are lower-cased; quoted values are unescaped; commas inside quotes are kept.
    The scheme is returned under the key ``'scheme'`` (as sent). Raises ValueError for
    anything malformed: not Digest, unterminated quotes, garbage, duplicate keys."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    m = _SCHEME_RE.match(value)
    if not m or m.group(1).lower() != "digest":
        raise ValueError("not a Digest credential")
    out: dict[str, str] = {"scheme": m.group(1)}
    pos = m.end()
    n = len(value)
    match = _PARAM_RE.match
    while pos < n:
        pm = match(value, pos)
        if pm is None:
            tail = _TAIL_RE.match(value, pos)
            assert tail is not None  # [\s,]* matches anywhere
            pos = tail.end()
            if pos >= n:
                break
            raise ValueError(f"malformed digest parameter at {pos}: {value[pos : pos + 20]!r}")
        key, q, v = pm.groups()
        key = key.lower()
        if key in out:
            raise ValueError(f"duplicate digest parameter {key!r}")
        if q is not None:
            v = _UNESCAPE_RE.sub(r"\1", q) if "\\" in q else q
        out[key] = v
        pos = pm.end()
    if len(out) == 1:
        raise ValueError("empty digest credential")
    return out


parse_challenge = parse_authorization


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_headers(
    realm: str,
    nonce: str,
    stale: bool = False,
    algorithms: tuple[str, ...] | list[str] = ("SHA-256", "MD5"),
    opaque: str | None = None,
    qop: str | None = "auth",
) -> list[str]:
    """One WWW-Authenticate / Proxy-Authenticate value per algorithm, in the order given
    (default SHA-256 first, then MD5: RFC 8760 §2.4 — most preferred first)."""
    out = []
    tail = ""
    if opaque is not None:
        tail += f", opaque={_quote(opaque)}"
    head = f"Digest realm={_quote(realm)}, nonce={_quote(nonce)}{tail}"
    for alg in algorithms:
        v = f"{head}, algorithm={normalize_algorithm(alg)}"
        if qop:
            v += f', qop="{qop}"'
        if stale:
            v += ", stale=true"
        out.append(v)
    return out


def build_authorization(
    username: str,
    realm: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    password: str | None = None,
    ha1: str | None = None,
    algorithm: str = "MD5",
    qop: str | None = "auth",
    nc: int | str = 1,
    cnonce: str | None = None,
    opaque: str | None = None,
    body: bytes = b"",
) -> str:
    """Client side: an Authorization / Proxy-Authorization value (for tests and trunks)."""
    alg = normalize_algorithm(algorithm)
    if ha1 is None:
        if password is None:
            raise ValueError("need password or ha1")
        ha1 = globals()["ha1"](username, realm, password, base_algorithm(alg))
    if isinstance(nc, int):
        nc = f"{nc:08x}"
    if qop and cnonce is None:
        cnonce = os.urandom(8).hex()
    resp = compute_response(
        ha1, method, uri, nonce, nc if qop else None, cnonce if (qop or alg.endswith("-sess")) else None, qop, alg, body
    )
    parts = [
        f"Digest username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f'response="{resp}"',
        f"algorithm={alg}",
    ]
    if qop:
        assert cnonce is not None  # made above when missing
        parts += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
    elif cnonce is not None:
        parts.append(f"cnonce={_quote(cnonce)}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- nonces

_NONCE_HDR = struct.Struct(">Q8s")  # issue time (ms) + 8 random bytes
_MAC_LEN = 16
_NONCE_RAW = _NONCE_HDR.size + _MAC_LEN
_NONCE_LEN = 43  # base64url of 32 bytes without padding


class NonceManager:
    """Stateless HMAC nonces + a bounded nonce-count table for replay protection.

    A nonce is ``b64url(issue_ms(8) | random(8) | HMAC-SHA256(secret, issue|random|ip)[:16])``:
    it binds the issue time and the source IP of the challenged request. ``check``:

    - ``'invalid'``: not one of ours, tampered, or presented from another source IP;
    - ``'stale'``:   ours but older than ``lifetime`` (answer 401 with stale=true);
    - ``'replay'``:  the nonce-count is not higher than the highest one seen for this nonce
                     (answer with a fresh, non-stale challenge);
    - ``'ok'``.

    Seen nonce-counts live in an insertion-ordered dict capped at ``max_tracked``; when an
    entry must be evicted early, every untracked nonce issued at or before the evicted one
    counts as stale from then on, so eviction can never re-open a replay window.
    """

    __slots__ = ("_floor_ms", "_now_ms", "_secret", "_seen", "lifetime", "max_tracked", "skew")

    def __init__(
        self, secret: bytes | None = None, lifetime: float = 300.0, max_tracked: int = 200_000, skew: float = 5.0
    ) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        self.lifetime = float(lifetime)
        self.max_tracked = int(max_tracked)
        self.skew = skew
        self._seen: dict[str, tuple[int, int]] = {}  # nonce -> (highest nc, issue_ms)
        self._floor_ms = -1
        self._now_ms = 0

    def make(self, now: float, source_ip: str) -> str:
        head = _NONCE_HDR.pack(int(now * 1000), os.urandom(8))
        mac = hmac.digest(self._secret, head + source_ip.encode(), "sha256")[:_MAC_LEN]
        return base64.urlsafe_b64encode(head + mac).rstrip(b"=").decode("ascii")

    def _decode(self, nonce: str, source_ip: str) -> int | None:
        if not isinstance(nonce, str) or len(nonce) != _NONCE_LEN:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_RAW or base64.urlsafe_b64encode(raw)[:_NONCE_LEN] != nonce.encode("ascii", "replace"):
            return None  # only the canonical spelling (it keys the nc table)
        head = raw[: _NONCE_HDR.size]
        mac = hmac.digest(self._secret, head + source_ip.encode(), "sha256")[:_MAC_LEN]
        if not hmac.compare_digest(mac, raw[_NONCE_HDR.size :]):
            return None
        issued_ms: int = _NONCE_HDR.unpack(head)[0]
        return issued_ms

    @staticmethod
    def _nc(nc: str | int | None) -> int:
        if nc is None:
            return 1  # legacy no-qop: a nonce is usable once
        if isinstance(nc, int):
            return nc
        if len(nc) != 8:
            raise ValueError("nc must be 8 hex digits")
        return int(nc, 16)

    def check(self, nonce: str, nc: str | int | None, now: float, source_ip: str, commit: bool = True) -> str:
        issued = self._decode(nonce, source_ip)
        if issued is None:
            return "invalid"
        now_ms = int(now * 1000)
        self._now_ms = now_ms
        if issued > now_ms + self.skew * 1000:
            return "invalid"
        if now_ms - issued > self.lifetime * 1000:
            return "stale"
        try:
            n = self._nc(nc)
        except ValueError:
            return "invalid"
        if n < 1:
            return "invalid"
        seen = self._seen.get(nonce)
        if seen is None:
            if issued <= self._floor_ms:
                return "stale"
        elif n <= seen[0]:
            return "replay"
        if commit:
            self._store(nonce, n, issued)
        return "ok"

    def record(self, nonce: str, nc: str | int | None) -> None:
        """Commit a nonce-count after ``check(..., commit=False)`` returned 'ok' and the
        digest was verified."""
        n = self._nc(nc)
        seen = self._seen.get(nonce)
        if seen is not None:
            if n > seen[0]:
                self._seen[nonce] = (n, seen[1])
            return
        raw = base64.urlsafe_b64decode(nonce + "=")
        self._store(nonce, n, _NONCE_HDR.unpack(raw[: _NONCE_HDR.size])[0])

    def _store(self, nonce: str, n: int, issued: int) -> None:
        seen = self._seen
        old = seen.get(nonce)
        if old is not None:
            seen[nonce] = (n, old[1])
            return
        if len(seen) >= self.max_tracked:
            # evict the oldest-inserted entries (about 1/16 at a time, amortised)
            drop = max(1, self.max_tracked // 16)
            it = iter(seen)
            victims = [next(it) for _ in range(min(drop, len(seen)))]
            for v in victims:
                _, iss = seen.pop(v)
                if iss > self._floor_ms:
                    self._floor_ms = iss
        seen[nonce] = (n, issued)
        # incremental purge: drop up to two expired entries from the (oldest) front, so the
        # table stays near the number of nonces in use even if purge() is never called
        limit = self._now_ms - int(self.lifetime * 1000)
        for _ in range(2):
            if not seen:
                break
            first = next(iter(seen))
            if seen[first][1] >= limit:
                break
            del seen[first]

    def purge(self, now: float) -> int:
        """Forget nonce-counts of nonces that are stale anyway. Returns how many."""
        limit = int(now * 1000) - int(self.lifetime * 1000)
        dead = [k for k, (_, iss) in self._seen.items() if iss < limit]
        for k in dead:
            del self._seen[k]
        return len(dead)

    def __len__(self) -> int:
        return len(self._seen)
