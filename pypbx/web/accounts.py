"""The web desk's accounts: users (argon2 password hashes, roles, lockout), API tokens and
the audit log. The library behind ``pypbx user`` / ``token`` / ``audit`` and the web server:
the CLI and the HTTP handlers call the same functions.

Failed logins are logged in the SIP side's fail2ban-ready format (:mod:`sip.guard`)::

    SECURITY auth-failed ip=<ip> user="<name>" method=HTTP

so the filter in sip/guard.py's docstring bans web password guessers too.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import TypedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pypbx import acdstore
from pypbx.db import Database
from pypbx.db.errors import IntegrityError
from pypbx.db.web import AuditRow, WebTokenRow, WebUserRow
from pypbx.errors import PbxError, PbxUsageError

log = logging.getLogger(__name__)

__all__ = [
    "AccountError",
    "LoginRefused",
    "Principal",
    "Role",
    "add_token",
    "add_user",
    "audit",
    "authenticate",
    "check_token",
    "list_audit",
    "list_tokens",
    "list_users",
    "remove_token",
    "remove_user",
    "set_locale",
    "set_password",
]

MIN_PASSWORD = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()
#: verified against when the user does not exist: the same time as a wrong password


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist (same time as a real check);
    made on first use, not at import: an argon2 hash costs ~150 ms, every CLI command imports this."""
    return _HASHER.hash("pypbx: no such user")


TOKEN_PREFIX = "pbx_"


class Role(str, enum.Enum):
    """Who may do what (pypbx.web.routes has the one table of which role reaches which route)."""

    ADMIN = "admin"  # everything, and edits
    SUPERVISOR = "supervisor"  # sees everything, acts on agents
    AGENT = "agent"  # their own things
    WALLBOARD = "wallboard"  # the board only

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise AccountError(f"unknown role {text!r} (choose from {', '.join(r.value for r in cls)})") from None


class AccountError(PbxUsageError):
    """Bad input to a user/token command (one line, exit status 2)."""


class LoginRefused(PbxError):
    """A login that did not succeed; the message is safe to show (it never says which part was wrong)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user (``via`` "session") or an API token (``via`` "token")."""

    name: str
    role: Role
    agent_id: str | None = None
    via: str = "session"
    user_id: int | None = None


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    agent_id: str | None
    locale: str
    locked_until: float | None
    failed_logins: int
    created_at: float

    @classmethod
    def from_row(cls, r: WebUserRow) -> UserRecord:
        return cls(
            name=r["name"],
            role=Role(r["role"]),
            agent_id=r["agent_id"],
            locale=r["locale"],
            locked_until=r["locked_until"],
            failed_logins=r["failed_logins"],
            created_at=r["created_at"],
        )

    def to_dict(self, now: float | None = None) -> dict[str, object]:
        now = time.time() if now is None else now
        locked = self.locked_until is not None and self.locked_until > now
        return {
            "name": self.name,
            "role": self.role.value,
            "agent": self.agent_id,
            "locale": self.locale,
            "locked": locked,
            "locked_until": self.locked_until if locked else None,
            "failed_logins": self.failed_logins,
            "created_at": self.created_at,
        }


class TokenDict(TypedDict):
    id: int
    name: str
    role: str
    agent: str | None
    created_at: float
    last_used_at: float | None


class AuditDict(TypedDict):
    id: int
    at: float
    who: str
    action: str
    target: str | None
    detail: str | None
    ip: str | None
    ok: bool


def _token_dict(r: WebTokenRow) -> TokenDict:
    return {
        "id": r["id"],
        "name": r["name"],
        "role": r["role"],
        "agent": r["agent_id"],
        "created_at": r["created_at"],
        "last_used_at": r["last_used_at"],
    }


# --------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise AccountError(f"invalid user name {name!r} (letters, digits and . _ @ -, at most 64)")
    return name


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short (at least {MIN_PASSWORD} characters)")
    if any(c in password for c in "\r\n\0"):
        raise AccountError("the password must be one line")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(12)


async def _check_agent(db: Database, role: Role, agent_id: str | None) -> str | None:
    if role is Role.AGENT and not agent_id:
        raise AccountError("an agent login needs --agent ID (the ACD agent it is)")
    if agent_id is None:
        return None
    try:
        await acdstore.get_agent(db, agent_id)
    except PbxError:
        raise AccountError(f"agent {agent_id} not found (pypbx agent list)") from None
    return agent_id


# --------------------------------------------------------------------------- users


async def add_user(
    db: Database,
    name: str,
    role: Role | str,
    *,
    agent_id: str | None = None,
    password: str | None = None,
    locale: str = "en",
    by: str = "cli",
) -> tuple[UserRecord, str]:
    """A new web user. Returns (the user, the password: the one given or a generated one)."""
    name = _check_name(name)
    r = role if isinstance(role, Role) else Role.parse(role)
    agent = await _check_agent(db, r, agent_id)
    lang = _check_locale(locale)
    pw = _check_password(password) if password is not None else generate_password()
    hashed = await asyncio.to_thread(hash_password, pw)
    try:
        await db.insert_web_user_row(name, r.value, agent, hashed, lang, time.time())
    except IntegrityError:
        raise AccountError(f"user {name} already exists") from None
    await audit(db, by, "user.add", name, f"role={r.value}" + (f" agent={agent}" if agent else ""))
    row = await db.web_user_row(name)
    assert row is not None
    return UserRecord.from_row(row), pw


async def get_user(db: Database, name: str) -> UserRecord:
    row = await db.web_user_row(name)
    if row is None:
        raise PbxError(f"user {name} not found")
    return UserRecord.from_row(row)


async def list_users(db: Database) -> list[UserRecord]:
    return [UserRecord.from_row(r) for r in await db.web_user_rows()]


async def set_password(db: Database, name: str, password: str | None = None, *, by: str = "cli") -> str:
    """A new password (the one given or a generated one); also unlocks the account and ends its sessions."""
    pw = _check_password(password) if password is not None else generate_password()
    hashed = await asyncio.to_thread(hash_password, pw)
    if not await db.set_web_password_row(name, hashed, time.time()):
        raise PbxError(f"user {name} not found")
    await audit(db, by, "user.passwd", name)
    return pw


def _check_locale(locale: str) -> str:
    from pypbx.web.i18n import check_locale  # Babel's import is the web desk's, not every CLI command's

    try:
        return check_locale(locale)
    except PbxError as exc:
        raise AccountError(str(exc)) from None


async def set_locale(db: Database, name: str, locale: str, *, by: str = "cli") -> str:
    """The language the web desk speaks to ``name`` (en, fr, ko, ru, zh)."""
    lang = _check_locale(locale)
    if not await db.set_web_locale_row(name, lang):
        raise PbxError(f"user {name} not found")
    await audit(db, by, "user.locale", name, lang)
    return lang


async def remove_user(db: Database, name: str, *, by: str = "cli") -> None:
    if not await db.delete_web_user_row(name):
        raise PbxError(f"user {name} not found")
    await audit(db, by, "user.remove", name)


async def authenticate(
    db: Database,
    name: str,
    password: str,
    *,
    ip: str,
    lock_after: int = 10,
    lock_seconds: float = 900.0,
    now: float | None = None,
) -> Principal:
    """The user ``name`` if ``password`` is theirs and the account is not locked; else
    :class:`LoginRefused`. Each failure is logged (fail2ban format) and audited; ``lock_after``
    wrong passwords in a row lock the account for ``lock_seconds``."""
    now = time.time() if now is None else now
    row = await db.web_user_row(name) if _NAME.match(name or "") else None
    hashed = row["password_hash"] if row is not None else _dummy_hash()
    ok = await asyncio.to_thread(verify_password, hashed, password)
    if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
        _log_failure(ip, name)
        await audit(db, name, "login", name, "locked", ip, ok=False)
        raise LoginRefused("this login is locked after too many wrong passwords; try again later")
    if row is None or not ok:
        _log_failure(ip, name)
        detail = "wrong password" if row is not None else "unknown user"
        if row is not None:
            n = await db.web_login_failed_row(row["id"], lock_after, now + lock_seconds)
            if n >= lock_after:
                detail = f"wrong password; locked for {lock_seconds / 60:.0f} min"
                log.warning('SECURITY web-login-locked ip=%s user="%s" failures=%d', ip, _safe(name), n)
        await audit(db, name or "-", "login", name, detail, ip, ok=False)
        raise LoginRefused("wrong user name or password")
    await db.web_login_ok_row(row["id"])
    await audit(db, name, "login", name, None, ip)
    return Principal(name=row["name"], role=Role(row["role"]), agent_id=row["agent_id"], user_id=row["id"])


def _safe(text: str) -> str:
    return "".join(c if c.isprintable() and c != '"' else "?" for c in text)[:64]


def _log_failure(ip: str, name: str) -> None:
    log.warning('SECURITY auth-failed ip=%s user="%s" method=HTTP', ip, _safe(name))


# --------------------------------------------------------------------------- tokens


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_token(
    db: Database, role: Role | str, *, name: str = "", agent_id: str | None = None, by: str = "cli"
) -> tuple[TokenDict, str]:
    """A new API token. Returns (its record, the token: shown once, only its hash is kept)."""
    r = role if isinstance(role, Role) else Role.parse(role)
    agent = await _check_agent(db, r, agent_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    label = name.strip() or r.value
    tid = await db.insert_web_token_row(label, r.value, agent, _token_hash(token), time.time())
    await audit(db, by, "token.add", str(tid), f"role={r.value} name={label}")
    row = next(t for t in await db.web_token_rows() if t["id"] == tid)
    return _token_dict(row), token


async def list_tokens(db: Database) -> list[TokenDict]:
    return [_token_dict(r) for r in await db.web_token_rows()]


async def remove_token(db: Database, token_id: int, *, by: str = "cli") -> None:
    if not await db.delete_web_token_row(token_id):
        raise PbxError(f"token {token_id} not found")
    await audit(db, by, "token.remove", str(token_id))


async def check_token(db: Database, token: str) -> Principal | None:
    """The principal of a valid API token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = await db.web_token_row(_token_hash(token))
    if row is None:
        return None
    now = time.time()
    if row["last_used_at"] is None or now - row["last_used_at"] > 60:  # not a write per request
        await db.touch_web_token_row(row["id"], now)
    return Principal(
        name=f"token:{row['id']}:{row['name']}", role=Role(row["role"]), agent_id=row["agent_id"], via="token"
    )


# --------------------------------------------------------------------------- audit


async def audit(
    db: Database,
    who: str,
    action: str,
    target: str | None = None,
    detail: str | None = None,
    ip: str | None = None,
    *,
    ok: bool = True,
) -> None:
    """One line in the audit log: who did what to what, when, from where, and whether it worked."""
    await db.insert_audit_row(time.time(), who, action, target, detail, ip, ok)


def audit_dict(r: AuditRow) -> AuditDict:
    return {
        "id": r["id"],
        "at": r["at"],
        "who": r["who"],
        "action": r["action"],
        "target": r["target"],
        "detail": r["detail"],
        "ip": r["ip"],
        "ok": bool(r["ok"]),
    }


async def list_audit(db: Database, since: float | None = None, limit: int = 1000) -> list[AuditDict]:
    """The newest ``limit`` audit lines since ``since``, oldest first."""
    return [audit_dict(r) for r in reversed(await db.audit_rows(since, limit))]
