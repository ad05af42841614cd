"""Digest authentication of requests other than REGISTER (proxy authentication).

Sans-I/O, the same rules as the registrar (``sip/registrar.py``), with the proxy's
headers (RFC 3261 §22.3): a request without usable credentials for our realm is
answered ``407 Proxy Authentication Required`` with one ``Proxy-Authenticate`` per
algorithm; credentials come in ``Proxy-Authorization``. Unknown users are checked
against a dummy HA1, so they cost and answer exactly like a wrong password.

``ProxyAuthenticator.check(request, source_ip, now) -> AuthResult``:

- ``outcome`` is a :class:`sip.registrar.AuthOutcome` (same meaning as for REGISTER:
  ``FAILED`` feeds the abuse guard, ``OK`` resets it);
- ``user`` is the authenticated user (``OK``) or the username the client claimed;
- ``response`` is the ready-made 407/400/403 to send when ``outcome`` is not ``OK``.

The caller checks that the authenticated user may act as the From user (403 otherwise).

``consume(request)``: the request without the credentials for our realm (RFC 3261 §22.3:
a proxy consumes only the ``Proxy-Authorization`` values whose realm is its own; those
for other realms -- e.g. a provider further on -- are forwarded untouched).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from sip import digest
from sip.message import Request, Response, make_response
from sip.registrar import AuthOutcome

__all__ = ["AuthOutcome", "AuthResult", "ProxyAuthenticator"]

_DUMMY_HA1_LEN = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}


@dataclass(frozen=True, slots=True)
class AuthResult:
    outcome: AuthOutcome
    user: str | None = None
    response: Response | None = None


class ProxyAuthenticator:
    def __init__(
        self,
        realm: str,
        nonces: digest.NonceManager,
        credentials: Callable[[str], dict[str, str] | None],
        *,
        algorithms: tuple[str, ...] = ("MD5",),
        allow_no_qop: bool = False,
        header: str = "Proxy-Authorization",
        status: int = 407,
    ) -> None:
        self.realm = realm
        self.nonces = nonces
        self.credentials = credentials
        self.algorithms = tuple(digest.normalize_algorithm(a) for a in algorithms)
        self.allow_no_qop = allow_no_qop
        self.header = header
        self.status = status
        self.challenge_header = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        self._allowed = frozenset(self.algorithms) | {a + "-sess" for a in self.algorithms}
        rnd = os.urandom(32).hex()
        self._dummy = {alg: rnd[:n] for alg, n in _DUMMY_HA1_LEN.items()}

    # ------------------------------------------------------------------ helpers
    def _challenge(
        self,
        req: Request,
        source_ip: str,
        now: float,
        outcome: AuthOutcome,
        user: str | None = None,
        stale: bool = False,
    ) -> AuthResult:
        nonce = self.nonces.make(now, source_ip)
        hdrs = [(self.challenge_header, v) for v in digest.challenge_headers(self.realm, nonce, stale, self.algorithms)]
        return AuthResult(outcome, user, make_response(req, self.status, headers=hdrs))

    @staticmethod
    def _bad(
        req: Request,
        reason: str,
        status: int = 400,
        outcome: AuthOutcome = AuthOutcome.MALFORMED,
        user: str | None = None,
    ) -> AuthResult:
        return AuthResult(outcome, user, make_response(req, status, reason))

    def _pick(self, req: Request) -> dict[str, str] | None:
        vals = req.headers.get_raw_all(self.header)
        err = None
        for v in vals:
            sv = v.lstrip()
            if sv[:6].lower() != "digest" or sv[6:7] not in (" ", "\t"):
                continue
            try:
                p = digest.parse_authorization(v)
            except ValueError as e:
                err = e
                continue
            if p.get("realm") == self.realm:
                return p
        if err is not None and len(vals) == 1:
            raise err
        return None

    def _ours(self, value: str) -> bool:
        sv = value.lstrip()
        if sv[:6].lower() != "digest":
            return False
        try:
            return digest.parse_authorization(value).get("realm") == self.realm
        except ValueError:
            return False

    def consume(self, req: Request) -> Request:
        """§22.3: ``req`` without the credentials meant for our realm; credentials for
        any other realm stay, in their order."""
        vals = req.headers.get_raw_all(self.header)
        keep = [v for v in vals if not self._ours(v)]
        if len(keep) == len(vals):
            return req
        h = req.headers.replace(self.header, keep) if keep else req.headers.remove(self.header)
        return req.replace(headers=h)

    # ------------------------------------------------------------------ main
    def check(self, req: Request, source_ip: str, now: float) -> AuthResult:
        try:
            cred = self._pick(req)
        except ValueError:
            return self._bad(req, f"Bad Request - malformed {self.header}")
        if cred is None:
            return self._challenge(req, source_ip, now, AuthOutcome.CHALLENGED)
        user = cred.get("username")
        nonce = cred.get("nonce")
        if user is None or nonce is None or "uri" not in cred or "response" not in cred:
            return self._bad(req, f"Bad Request - incomplete {self.header}", user=user)
        try:
            alg = digest.normalize_algorithm(cred.get("algorithm"))
        except ValueError:
            alg = None
        if alg not in self._allowed:
            return self._bad(req, "Bad Request - unsupported digest algorithm", user=user)
        qop = cred.get("qop")
        nc = cred.get("nc")
        if qop is None:
            if not self.allow_no_qop:
                return self._bad(req, "qop=auth required", 403, user=user)
            nc = None
        elif qop not in ("auth", "auth-int") or nc is None or "cnonce" not in cred:
            return self._bad(req, "Bad Request - bad qop/nc/cnonce", user=user)
        state = self.nonces.check(nonce, nc, now, source_ip, commit=False)
        if state == "invalid":
            return self._challenge(req, source_ip, now, AuthOutcome.CHALLENGED, user)
        if state == "replay":
            return self._challenge(req, source_ip, now, AuthOutcome.REPLAY, user)
        base = alg[:-5] if alg.endswith("-sess") else alg
        creds = self.credentials(user)
        ha1 = creds.get(base) if creds else None
        good = digest.verify_response(cred, req.method, ha1 or self._dummy[base], req.body)
        if ha1 is None or not good:
            return self._challenge(req, source_ip, now, AuthOutcome.FAILED, user)
        if state == "stale":
            return self._challenge(req, source_ip, now, AuthOutcome.STALE, user, stale=True)
        self.nonces.record(nonce, nc)
        return AuthResult(AuthOutcome.OK, user, None)
