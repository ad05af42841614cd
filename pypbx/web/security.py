"""Secrets, signed session cookies, CSRF tokens and the login rate limit.

The secret is a file in the data directory (``web_secret``, mode 0600), created on first use;
deleting it ends every session. A session cookie is ``<user id>.<issued, ms>.<nonce>.<HMAC>``;
it is valid while younger than ``[web] session_hours`` and issued after the user's last
password change. The CSRF token of a session (or, before login, of the ``pypbx_pre`` cookie)
is an HMAC of its nonce: every form carries it as ``csrf``, every non-GET API call made with
a session cookie as the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "web_secret"
SESSION_COOKIE = "pypbx_session"
PRE_COOKIE = "pypbx_pre"  # before login: the login form's CSRF nonce
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def load_secret(data_dir: Path) -> bytes:
    """The web desk's HMAC key (created, mode 0600, on first use)."""
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    os.chmod(path, 0o600)
    return bytes.fromhex(path.read_text().strip())


def _mac(secret: bytes, msg: str) -> str:
    d = hmac.new(secret, msg.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(d).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    user_id: int
    issued: float
    nonce: str


def sign_session(secret: bytes, user_id: int, now: float | None = None) -> tuple[str, Session]:
    ms = int((time.time() if now is None else now) * 1000)  # milliseconds: a password set just before counts
    s = Session(user_id, ms / 1000, secrets.token_urlsafe(16))
    payload = f"{s.user_id}.{ms}.{s.nonce}"
    return f"{payload}.{_mac(secret, 'session:' + payload)}", s


def read_session(secret: bytes, value: str, max_age: float, now: float | None = None) -> Session | None:
    """The session of a cookie value, or None (forged, malformed or too old)."""
    parts = value.split(".")
    if len(parts) != 4:
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _mac(secret, "session:" + payload)):
        return None
    try:
        uid, issued = int(parts[0]), int(parts[1]) / 1000
    except ValueError:
        return None
    now = time.time() if now is None else now
    if not 0 <= now - issued <= max_age:
        return None
    return Session(uid, issued, parts[2])


def csrf_token(secret: bytes, nonce: str) -> str:
    return _mac(secret, "csrf:" + nonce)


def csrf_ok(secret: bytes, nonce: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(secret, nonce), given or "")


class RateLimit:
    """At most ``count`` attempts per ``window`` seconds per key (an IP address)."""

    def __init__(self, count: int = 20, window: float = 60.0) -> None:
        self.count = count
        self.window = window
        self._hits: dict[str, list[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        hits = [t for t in self._hits.get(key, []) if now - t < self.window]
        if len(self._hits) > 10_000:  # a flood of addresses: forget the idle ones
            self._hits = {k: v for k, v in self._hits.items() if v and now - v[-1] < self.window}
        if len(hits) >= self.count:
            self._hits[key] = hits
            return False
        hits.append(now)
        self._hits[key] = hits
        return True
