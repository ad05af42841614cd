"""Sans-I/O registrar (RFC 3261 §10.3) with digest authentication.

``Registrar.handle(request, source_ip, source, now, local=None) -> RegisterResult``

``now`` is **wall-clock** time (``time.time()``): it is used for binding expiry (bindings are
persisted) and for nonces. The AoR is the user part of the To URI (the extension number).

Decisions (beyond the RFC's MUSTs):

- Authorization is always required. Without usable credentials for our realm the answer
  is 401 with one ``WWW-Authenticate`` per algorithm (SHA-256 first, then MD5, RFC 8760).
  The challenge does not depend on who asks: unknown users get exactly the same 401, and a
  wrong password for an unknown user is checked against a dummy HA1, so it costs the same
  and answers the same as a wrong password for a known user (``AuthOutcome.FAILED``).
- qop=auth (or auth-int) is required unless ``allow_no_qop=True``; a legacy (RFC 2069)
  response is answered 403 "qop=auth required" (``MALFORMED``) instead of looping on 401.
- Nonces (see :class:`sip.digest.NonceManager`) are bound to the source IP and live
  ``lifetime`` seconds; phones may reuse one with increasing nonce-count (one round trip
  per refresh). Stale nonce with a correct digest -> 401 ``stale=true`` (``STALE``);
  stale nonce with a wrong digest -> plain 401 (``FAILED``); nonce-count not increasing ->
  plain 401 with a fresh nonce (``REPLAY``); nonce not ours / from another IP -> plain 401
  (``CHALLENGED``).
- Authenticated user differs from the To user -> 403 (``FORBIDDEN``).
- Contact ``expires`` param beats the Expires header (§10.2.1.1); default
  ``default_expires``; 0 < expires < ``min_expires`` -> 423 + Min-Expires; above
  ``max_expires`` -> clamped.
- ``Contact: *`` needs ``Expires: 0`` and no other Contact, else 400.
- §10.3 step 7: a Contact whose existing binding has the same Call-ID and a CSeq >= the
  request's -> 500 and nothing changes.
- Binding identity: ``+sip.instance`` (+ ``reg-id``) when present (a rebooted phone with a
  new Call-ID replaces its old binding), else the Contact URI compared loosely (scheme,
  user, host, port, transport). The Contact URI is stored exactly as sent.
- ``max_contacts`` per AoR: more non-zero Contacts than that in one REGISTER -> 403; a new
  binding beyond the cap replaces the existing binding that expires soonest (a phone that
  lost its binding re-registers anyway; refusing would lock out a replaced phone).
- A REGISTER without Contact is a query: 200 with the current bindings.
- A successful answer carries a Contact per live binding with ``;expires=`` (and the
  ``+sip.instance`` it registered with) and a Date header.

``RegisterResult.auth`` tells the server what to feed the abuse guard: ``FAILED`` (wrong
password / unknown user) and ``FORBIDDEN`` (valid credentials used for another AoR) should
be reported with ``AbuseGuard.auth_failed(ip, now, user=result.user)``; ``OK`` means
authenticated (the response may still be 423/500/400/403-too-many-contacts) and should be
reported with ``auth_ok(ip)``. ``CHALLENGED``, ``STALE`` and ``REPLAY`` are normal protocol
round trips. The server should call ``nonces.purge(now)`` and ``location.purge(now)`` now
and then (and persist the purged bindings' removal).
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import overload

from sip import digest
from sip.location import Binding, Changes, LocationService, contact_key
from sip.message import (
    Method,
    NameAddr,
    Request,
    Response,
    SipParseError,
    make_response,
)

__all__ = ["AuthOutcome", "RegisterResult", "Registrar"]


class AuthOutcome(enum.Enum):
    OK = "ok"  # authenticated (response may still be 4xx/5xx for other reasons)
    CHALLENGED = "challenged"  # no / unusable credentials: 401 with a fresh nonce
    STALE = "stale"  # right digest, expired nonce: 401 stale=true
    FAILED = "failed"  # wrong digest (wrong password or unknown user): 401
    FORBIDDEN = "forbidden"  # authenticated as another user than the AoR: 403
    REPLAY = "replay"  # nonce-count not increasing: 401 with a fresh nonce
    MALFORMED = "malformed"  # 400 (bad request / bad credentials syntax) or 403 qop required
    NOT_FOUND = "not-found"  # domain_check refused the To domain / no user part: 404


@dataclass(slots=True)
class RegisterResult:
    response: Response
    changes: Changes = field(default_factory=Changes)
    auth: AuthOutcome = AuthOutcome.OK
    user: str | None = None  # username from the Authorization header, if any
    aor: str | None = None
    algorithm: str | None = None  # the digest algorithm the phone authenticated with (OK)


_DUMMY_HA1_LEN = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}


@overload
def _unquote(v: str) -> str: ...
@overload
def _unquote(v: None) -> None: ...
@overload
def _unquote(v: str | None) -> str | None: ...
def _unquote(v: str | None) -> str | None:
    if v is not None and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return v


class Registrar:
    def __init__(
        self,
        realm: str,
        location: LocationService,
        nonces: digest.NonceManager,
        credentials: Callable[[str], dict[str, str] | None],
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 5,
        domain_check: Callable[[str], bool] | None = None,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        allow_no_qop: bool = False,
        date_header: bool = True,
    ) -> None:
        self.realm = realm
        self.location = location
        self.nonces = nonces
        self.credentials = credentials
        self.min_expires = int(min_expires)
        self.max_expires = int(max_expires)
        self.default_expires = min(int(default_expires), self.max_expires)
        self.max_contacts = int(max_contacts)
        self.domain_check = domain_check
        self.algorithms = tuple(digest.normalize_algorithm(a) for a in algorithms)
        self.allow_no_qop = allow_no_qop
        self.date_header = date_header
        self._allowed_algs = frozenset(self.algorithms) | {a + "-sess" for a in self.algorithms}
        self._date_cache = (-1, "")
        rnd = os.urandom(32).hex()
        self._dummy = {alg: rnd[:n] for alg, n in _DUMMY_HA1_LEN.items()}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _to_tag(req: Request) -> str:
        """Deterministic To-tag: retransmissions and the challenge of any user look alike."""
        return hashlib.md5(
            (req.headers.get("Call-ID") or "").encode("utf-8", "replace"), usedforsecurity=False
        ).hexdigest()[:12]

    def _reply(
        self, req: Request, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        return make_response(req, status, reason, to_tag=self._to_tag(req), headers=headers)

    def _challenge(
        self,
        req: Request,
        source_ip: str,
        now: float,
        outcome: AuthOutcome,
        stale: bool = False,
        user: str | None = None,
        aor: str | None = None,
    ) -> RegisterResult:
        nonce = self.nonces.make(now, source_ip)
        hdrs = [("WWW-Authenticate", v) for v in digest.challenge_headers(self.realm, nonce, stale, self.algorithms)]
        return RegisterResult(self._reply(req, 401, None, hdrs), Changes(), outcome, user, aor)

    def _bad(
        self,
        req: Request,
        reason: str,
        status: int = 400,
        outcome: AuthOutcome = AuthOutcome.MALFORMED,
        user: str | None = None,
        aor: str | None = None,
    ) -> RegisterResult:
        return RegisterResult(self._reply(req, status, reason), Changes(), outcome, user, aor)

    def _pick_credentials(self, req: Request) -> dict[str, str] | None:
        """The parsed Digest Authorization for our realm; None when there is none (other
        schemes are ignored). Raises ValueError when the only one is a malformed Digest."""
        vals = req.headers.get_raw_all("Authorization")
        if not vals:
            return None
        err = None
        for v in vals:
            sv = v.lstrip()
            if sv[:6].lower() != "digest" or sv[6:7] not in (" ", "\t"):
                continue  # unknown scheme (RFC 4475 regaut01): ignore, challenge
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

    # ------------------------------------------------------------------ main
    def handle(
        self, request: Request, source_ip: str, source: tuple[str, str, int], now: float, local: str | None = None
    ) -> RegisterResult:
        req = request
        # ---- syntax (cheap, before authentication)
        try:
            to = req.to
            call_id = req.call_id
            cseq, cseq_method = req.cseq
            contacts = req.contacts
        except SipParseError as e:
            return self._bad(req, e.reason, e.status)
        if cseq_method != Method.REGISTER:
            return self._bad(req, "Bad Request - CSeq method does not match")
        aor = to.uri.user
        if not aor or not to.uri.is_sip:
            return self._bad(req, "Not Found", 404, AuthOutcome.NOT_FOUND)
        if self.domain_check is not None and not self.domain_check(to.uri.host):
            return self._bad(req, "Not Found", 404, AuthOutcome.NOT_FOUND, aor=aor)

        # ---- authentication
        try:
            cred = self._pick_credentials(req)
        except ValueError:
            return self._bad(req, "Bad Request - malformed Authorization", aor=aor)
        if cred is None:
            return self._challenge(req, source_ip, now, AuthOutcome.CHALLENGED, aor=aor)
        user = cred.get("username")
        nonce = cred.get("nonce")
        if user is None or nonce is None or "uri" not in cred or "response" not in cred:
            return self._bad(req, "Bad Request - incomplete Authorization", user=user, aor=aor)
        try:
            alg = digest.normalize_algorithm(cred.get("algorithm"))
        except ValueError:
            alg = None
        if alg not in self._allowed_algs:
            return self._bad(req, "Bad Request - unsupported digest algorithm", user=user, aor=aor)
        qop = cred.get("qop")
        nc = cred.get("nc")
        if qop is None:
            if not self.allow_no_qop:
                return self._bad(req, "qop=auth required", 403, user=user, aor=aor)
            nc = None
        elif qop not in ("auth", "auth-int") or nc is None or "cnonce" not in cred:
            return self._bad(req, "Bad Request - bad qop/nc/cnonce", user=user, aor=aor)
        state = self.nonces.check(nonce, nc, now, source_ip, commit=False)
        if state == "invalid":
            return self._challenge(req, source_ip, now, AuthOutcome.CHALLENGED, user=user, aor=aor)
        if state == "replay":
            return self._challenge(req, source_ip, now, AuthOutcome.REPLAY, user=user, aor=aor)
        base = alg[:-5] if alg.endswith("-sess") else alg
        creds = self.credentials(user)
        ha1 = creds.get(base) if creds else None
        good = digest.verify_response(cred, req.method, ha1 or self._dummy[base], req.body)
        if ha1 is None:
            good = False
        if not good:
            return self._challenge(req, source_ip, now, AuthOutcome.FAILED, user=user, aor=aor)
        if state == "stale":
            return self._challenge(req, source_ip, now, AuthOutcome.STALE, stale=True, user=user, aor=aor)
        self.nonces.record(nonce, nc)
        if user != aor:
            return self._bad(
                req, "Forbidden - authentication user does not match To", 403, AuthOutcome.FORBIDDEN, user=user, aor=aor
            )
        result = self._update(req, aor, user, contacts, call_id, cseq, source, now, local)
        result.algorithm = alg
        return result

    # ------------------------------------------------------------------ bindings
    def _update(
        self,
        req: Request,
        aor: str,
        user: str,
        contacts: list[NameAddr] | str,
        call_id: str,
        cseq: int,
        source: tuple[str, str, int],
        now: float,
        local: str | None,
    ) -> RegisterResult:
        loc = self.location
        OK = AuthOutcome.OK
        if isinstance(contacts, str):  # "*" (the only string form)
            if req.expires != 0:
                return RegisterResult(
                    self._reply(req, 400, "Bad Request - Contact: * needs Expires: 0"), Changes(), OK, user, aor
                )
            existing = loc.all_bindings(aor)
            for b in existing:
                if b.call_id == call_id and cseq <= b.cseq:
                    return RegisterResult(
                        self._reply(req, 500, "Server Internal Error - out of order"), Changes(), OK, user, aor
                    )
            ch = loc.remove_all(aor)
            return RegisterResult(self._ok(req, aor, now), ch, OK, user, aor)

        if not contacts:
            return RegisterResult(self._ok(req, aor, now), Changes(), OK, user, aor)

        hdr_exp = req.expires  # None when absent or malformed -> default
        plan: list[tuple[str, int, float, str | None, int | None]] = []
        too_short = False
        for na in contacts:
            if not na.uri.is_sip:
                return RegisterResult(
                    self._reply(req, 400, "Bad Request - Contact must be a SIP URI"), Changes(), OK, user, aor
                )
            raw = na.uri.raw or str(na.uri)
            e = na.param("expires")
            exp = None
            if e is not None:
                e = _unquote(e)
                if e.isascii() and e.isdigit():
                    exp = int(e)
            if exp is None:
                exp = hdr_exp if hdr_exp is not None else self.default_expires
            if exp != 0:
                if exp < self.min_expires:
                    too_short = True
                elif exp > self.max_expires:
                    exp = self.max_expires
            q = na.param("q")
            if q is not None:
                try:
                    qf = float(_unquote(q))
                except ValueError:
                    qf = -1.0
                if not 0.0 <= qf <= 1.0:
                    return RegisterResult(self._reply(req, 400, "Bad Request - bad q"), Changes(), OK, user, aor)
            else:
                qf = 1.0
            inst = _unquote(na.param("+sip.instance"))
            rid = na.param("reg-id")
            reg_id = None
            if rid is not None and inst is not None:
                rid = _unquote(rid)
                if not (rid.isascii() and rid.isdigit()):
                    return RegisterResult(self._reply(req, 400, "Bad Request - bad reg-id"), Changes(), OK, user, aor)
                reg_id = int(rid)
            plan.append((raw, exp, qf, inst, reg_id))
        if too_short:
            return RegisterResult(
                self._reply(req, 423, None, [("Min-Expires", str(self.min_expires))]), Changes(), OK, user, aor
            )
        if sum(1 for p in plan if p[1]) > self.max_contacts:
            return RegisterResult(self._reply(req, 403, "Forbidden - too many contacts"), Changes(), OK, user, aor)
        # §10.3 step 7: check every Contact against the bindings before changing anything
        keys = []
        for raw, _exp, _qf, inst, reg_id in plan:
            key = contact_key(raw)
            keys.append(key)
            for b in loc.find(aor, raw, inst, reg_id, key):
                if b.call_id == call_id and cseq <= b.cseq:
                    return RegisterResult(
                        self._reply(req, 500, "Server Internal Error - out of order"), Changes(), OK, user, aor
                    )
        ua = req.headers.get("User-Agent")
        ch = Changes()
        touched = []
        for (raw, exp, qf, inst, reg_id), key in zip(plan, keys, strict=True):
            old = loc.find(aor, raw, inst, reg_id, key)
            if exp == 0:
                if old:
                    ch.extend(loc.remove(old))
                continue
            b = Binding(aor, raw, inst, reg_id, call_id, cseq, now + exp, qf, source, local, ua, now)
            ch.extend(loc.upsert(b, old))
            touched.append(b)
        if touched:
            live = loc.bindings(aor, now)
            if len(live) > self.max_contacts:
                others = sorted((b for b in live if b not in touched), key=lambda b: b.expires_at)
                ch.extend(loc.remove(others[: len(live) - self.max_contacts]))
        # fold: a binding added then removed in the same request is no change at all
        if ch.removed and (ch.added or ch.updated):
            gone = {id(b) for b in ch.removed}
            ch.added = [b for b in ch.added if id(b) not in gone]
            ch.updated = [b for b in ch.updated if id(b) not in gone]
        return RegisterResult(self._ok(req, aor, now), ch, OK, user, aor)

    def _ok(self, req: Request, aor: str, now: float) -> Response:
        hdrs = []
        for b in self.location.bindings(aor, now):
            v = f"<{b.contact}>;expires={b.expires_in(now)}"
            if b.q != 1.0:
                v += f";q={b.q:g}"
            if b.instance is not None:
                v += f';+sip.instance="{b.instance}"'
            hdrs.append(("Contact", v))
        if self.date_header:
            sec = int(now)
            if sec != self._date_cache[0]:
                self._date_cache = (sec, formatdate(sec, usegmt=True))
            hdrs.append(("Date", self._date_cache[1]))
        return self._reply(req, 200, "OK", hdrs)
