"""Sans-I/O client registration of a SIP trunk to its provider (RFC 3261 §10.2).

One :class:`TrunkRegistration` per trunk that registers. It takes responses, transaction
timeouts and ``now`` in and gives REGISTER requests out (:class:`SendRegister`); the glue
(``pypbx/trunks.py``) sends them as client transactions through the front door's socket
(``SipServer.send_own``) and calls :meth:`tick` when :meth:`next_deadline` is due.

States (:class:`RegState`): ``unregistered`` -> ``registering`` -> ``registered``; any
failure goes to ``failed`` with ``last_reason`` (e.g. ``"403 Forbidden"``,
``"timeout"``, ``"401 credentials rejected"``) and a retry after a backoff.

* Digest: a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) challenge is answered
  with :func:`sip.digest.build_authorization` (MD5 or SHA-256, qop=auth when offered).
  Later REGISTERs reuse the last challenge with a higher nonce-count (saves a round trip;
  a registrar that wants a fresh nonce answers 401 again, with or without ``stale=true``).
  A challenge to a request that already answered the same nonce, not marked stale, means
  the credentials are wrong: ``failed``.
* Expiry: the granted time is our Contact's ``expires`` parameter in the 2xx, else its
  Expires header, else what we asked for. The binding is refreshed at ``refresh_ratio``
  (80 %) of it. 423 Interval Too Brief: ask again at once with its Min-Expires.
* Backoff after a failure: ``backoff_base`` seconds, doubled after each consecutive
  failure, at most ``backoff_max`` (10 s, 20 s, 40 s ... 600 s by default).
* :meth:`stop` sends REGISTER with ``Expires: 0`` when registered.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sip.digest import build_authorization, parse_challenge
from sip.message import URI, Headers, Method, Request, Response, SipParseError
from sip.transaction import Addr

__all__ = ["BRANCH_PREFIX", "RegState", "SendRegister", "TrunkRegistration"]

BRANCH_PREFIX = "z9hG4bKtr"


class RegState(enum.StrEnum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendRegister:
    request: Request
    dest: Addr

    @property
    def branch(self) -> str:
        return self.request.top_via.branch or ""


class TrunkRegistration:
    """Registration of one trunk (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        registrar: Addr,
        domain: str,
        username: str,
        password: str,
        auth_username: str | None = None,
        expires: int = 3600,
        local_address: Callable[[str, str], tuple[str, int]] = lambda t, h: ("127.0.0.1", 5060),
        user_agent: str = "pypbx",
        refresh_ratio: float = 0.8,
        backoff_base: float = 10.0,
        backoff_max: float = 600.0,
    ) -> None:
        self.name = name
        self.registrar = registrar
        self.domain = domain
        self.username = username
        self.password = password
        self.auth_username = auth_username or username
        self.expires = int(expires)
        self.local_address = local_address
        self.user_agent = user_agent
        self.refresh_ratio = refresh_ratio
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.state = RegState.UNREGISTERED
        self.last_reason = ""
        self.failures = 0
        self.registered_at: float | None = None
        self.expires_at: float | None = None
        self.granted: int | None = None
        self.next_at: float | None = None  # when tick() sends the next REGISTER
        self.call_id = os.urandom(10).hex() + "@pypbx"
        self.from_tag = os.urandom(6).hex()
        self.cseq = 0
        self.pending: str | None = None  # branch of the REGISTER in flight
        self._stopping = False
        self._challenge: dict[str, str] | None = None  # last challenge (params) and its header kind
        self._challenge_hdr = "Authorization"
        self._nc = 0
        self._answered_nonce: str | None = None  # nonce the request in flight answered
        self._challenges_this_round = 0

    # ------------------------------------------------------------------ inputs
    def start(self, now: float) -> list[SendRegister]:
        self._stopping = False
        self.state = RegState.REGISTERING if self.state is not RegState.REGISTERED else self.state
        return [self._send(now)]

    def stop(self, now: float) -> list[SendRegister]:
        """Unregister (Expires: 0) if registered; no more refreshes either way."""
        self._stopping = True
        self.next_at = None
        was = self.state
        self.state = RegState.UNREGISTERED
        self.last_reason = "stopped"
        self.registered_at = self.expires_at = None
        if was is RegState.REGISTERED:
            return [self._send(now, expires=0)]
        self.pending = None
        return []

    def tick(self, now: float) -> list[SendRegister]:
        if self.next_at is None or now < self.next_at or self._stopping:
            return []
        self.next_at = None
        if self.state is not RegState.REGISTERED:
            self.state = RegState.REGISTERING
        return [self._send(now)]

    def next_deadline(self) -> float | None:
        return self.next_at

    def on_response(self, resp: Response, now: float) -> list[SendRegister]:
        try:
            branch = resp.top_via.branch
        except (SipParseError, AttributeError, IndexError):
            return []
        if branch != self.pending or resp.status < 200:
            return []
        self.pending = None
        if self._stopping:
            return []
        status = resp.status
        if status in (401, 407):
            return self._challenged(resp, now)
        self._challenges_this_round = 0
        if 200 <= status < 300:
            granted = self._granted(resp)
            if granted <= 0:
                return self._fail(now, f"{status} binding not kept (expires 0)")
            self.state = RegState.REGISTERED
            self.last_reason = f"{status} {resp.reason}".strip()
            self.failures = 0
            self.granted = granted
            self.registered_at = now
            self.expires_at = now + granted
            self.next_at = now + max(1.0, granted * self.refresh_ratio)
            return []
        if status == 423:
            try:
                self.expires = int(resp.headers.get("Min-Expires") or "")
            except ValueError:
                return self._fail(now, "423 without a usable Min-Expires")
            return [self._send(now)]
        return self._fail(now, f"{status} {resp.reason}".strip())

    def on_timeout(self, now: float, transport_error: bool = False) -> list[SendRegister]:
        if self.pending is None:
            return []
        self.pending = None
        if self._stopping:
            return []
        return self._fail(now, "transport error" if transport_error else "timeout (no answer)")

    # ------------------------------------------------------------------ status
    def status(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "last_reason": self.last_reason,
            "registrar": f"{self.registrar.transport.lower()}:{self.registrar.host}:{self.registrar.port}",
            "username": self.username,
            "granted": self.granted,
            "failures": self.failures,
            "expires_in": None if self.expires_at is None else round(self.expires_at - now, 1),
            "next_in": None if self.next_at is None else round(self.next_at - now, 1),
        }

    # ------------------------------------------------------------------ internals
    def _fail(self, now: float, reason: str) -> list[SendRegister]:
        self.state = RegState.FAILED
        self.last_reason = reason
        self.failures += 1
        self._challenges_this_round = 0
        if self.expires_at is not None and self.expires_at <= now:
            self.expires_at = self.registered_at = None
        delay = min(self.backoff_max, self.backoff_base * (2 ** (self.failures - 1)))
        self.next_at = now + delay
        return []

    def _challenged(self, resp: Response, now: float) -> list[SendRegister]:
        hdr = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        chosen = None
        for value in resp.headers.get_all(hdr):
            try:
                ch = parse_challenge(value)
            except ValueError:
                continue
            alg = (ch.get("algorithm") or "MD5").upper()
            if alg in ("MD5", "SHA-256") and (chosen is None or alg == "MD5"):
                chosen = ch  # prefer MD5 (the most widely expected), else SHA-256
        if chosen is None:
            return self._fail(now, f"{resp.status} without a usable digest challenge")
        stale = (chosen.get("stale") or "").lower() == "true"
        self._challenges_this_round += 1
        if (
            self._answered_nonce is not None and chosen.get("nonce") == self._answered_nonce and not stale
        ) or self._challenges_this_round > 2:
            self._challenge = None
            return self._fail(now, f"{resp.status} credentials rejected")
        self._challenge = chosen
        self._challenge_hdr = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        self._nc = 0
        return [self._send(now)]

    def _granted(self, resp: Response) -> int:
        mine = self._contact_uri()
        try:
            contacts = resp.contacts
        except SipParseError:
            contacts = []
        if isinstance(contacts, list):
            for c in contacts:
                try:
                    same = (
                        c.uri.user == self.username
                        and c.uri.host.strip("[]") == mine.host.strip("[]")
                        and (c.uri.port or 5060) == (mine.port or 5060)
                    )
                except AttributeError:
                    same = False
                if same:
                    exp = c.param("expires") if hasattr(c, "param") else None
                    if exp is not None:
                        try:
                            return int(exp)
                        except ValueError:
                            pass
        try:
            value = resp.headers.get("Expires")
            if value is not None:
                return int(value)
        except ValueError:
            pass
        return self.expires

    def _contact_uri(self) -> URI:
        t = self.registrar.transport
        host, port = self.local_address(t, self.registrar.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        tp = "" if t == "UDP" else f";transport={t.lower()}"
        return URI.parse(f"sip:{self.username}@{host}:{port}{tp}")

    def _send(self, now: float, expires: int | None = None) -> SendRegister:
        t = self.registrar.transport
        host, port = self.local_address(t, self.registrar.host)
        vhost = f"[{host}]" if ":" in host and not host.startswith("[") else host
        branch = BRANCH_PREFIX + os.urandom(10).hex()
        self.cseq += 1
        dom = self.domain
        default_port = 5061 if t == "TLS" else 5060
        if dom == self.registrar.host and self.registrar.port != default_port:
            ruri = f"sip:{dom}:{self.registrar.port}"
        else:
            ruri = f"sip:{dom}"
        aor = f"sip:{self.username}@{dom}"
        exp = self.expires if expires is None else expires
        lines = [
            ("Via", f"SIP/2.0/{t} {vhost}:{port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{aor}>;tag={self.from_tag}"),
            ("To", f"<{aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", f"<{self._contact_uri()}>"),
            ("Expires", str(exp)),
            ("User-Agent", self.user_agent),
        ]
        self._answered_nonce = None
        ch = self._challenge
        if ch is not None:
            self._nc += 1
            qops = [q.strip() for q in (ch.get("qop") or "").split(",") if q.strip()]
            value = build_authorization(
                self.auth_username,
                ch.get("realm", ""),
                Method.REGISTER,
                ruri,
                ch.get("nonce", ""),
                password=self.password,
                algorithm=ch.get("algorithm") or "MD5",
                qop="auth" if "auth" in qops else None,
                nc=self._nc,
                opaque=ch.get("opaque"),
            )
            lines.append((self._challenge_hdr, value))
            self._answered_nonce = ch.get("nonce")
        lines.append(("Content-Length", "0"))
        req = Request(Method.REGISTER, URI.parse(ruri), Headers(lines))
        self.pending = branch
        return SendRegister(req, self.registrar)
