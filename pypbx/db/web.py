"""Queries: the web desk's users, API tokens and audit log (pypbx.web.accounts)."""

from __future__ import annotations

from typing import TypedDict

from pypbx.db.core import DatabaseCore

_USER_COLS = (
    "id, name, role, agent_id, password_hash, locale, failed_logins, locked_until, created_at, password_changed_at"
)
_TOKEN_COLS = "id, name, role, agent_id, token_hash, created_at, last_used_at"
_AUDIT_COLS = "id, at, who, action, target, detail, ip, ok"


class WebUserRow(TypedDict):
    id: int
    name: str
    role: str
    agent_id: str | None
    password_hash: str
    locale: str
    failed_logins: int
    locked_until: float | None
    created_at: float
    password_changed_at: float


class WebTokenRow(TypedDict):
    id: int
    name: str
    role: str
    agent_id: str | None
    token_hash: str
    created_at: float
    last_used_at: float | None


class AuditRow(TypedDict):
    id: int
    at: float
    who: str
    action: str
    target: str | None
    detail: str | None
    ip: str | None
    ok: int


class WebQueries(DatabaseCore):
    # ------------------------------------------------------------------ users
    async def insert_web_user_row(
        self, name: str, role: str, agent_id: str | None, password_hash: str, locale: str, now: float
    ) -> int:
        """Raises IntegrityError if the name is taken."""
        async with self.transaction():
            return await self.insert(
                "INSERT INTO web_users(name, role, agent_id, password_hash, locale, created_at, password_changed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, role, agent_id, password_hash, locale, now, now),
            )

    async def web_user_row(self, name: str) -> WebUserRow | None:
        return await self.fetch_row(WebUserRow, f"SELECT {_USER_COLS} FROM web_users WHERE name = ?", (name,))

    async def web_user_row_by_id(self, user_id: int) -> WebUserRow | None:
        return await self.fetch_row(WebUserRow, f"SELECT {_USER_COLS} FROM web_users WHERE id = ?", (user_id,))

    async def web_user_rows(self) -> list[WebUserRow]:
        return await self.fetch_rows(WebUserRow, f"SELECT {_USER_COLS} FROM web_users ORDER BY name")

    async def set_web_password_row(self, name: str, password_hash: str, now: float) -> bool:
        async with self.transaction():
            n = await self.execute(
                "UPDATE web_users SET password_hash = ?, password_changed_at = ?, failed_logins = 0, "
                "locked_until = NULL WHERE name = ?",
                (password_hash, now, name),
            )
        return n > 0

    async def set_web_locale_row(self, name: str, locale: str) -> bool:
        async with self.transaction():
            return await self.execute("UPDATE web_users SET locale = ? WHERE name = ?", (locale, name)) > 0

    async def delete_web_user_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM web_users WHERE name = ?", (name,)) > 0

    async def web_login_failed_row(self, user_id: int, limit: int, lock_until: float) -> int:
        """One more failed login; at ``limit`` failures the account is locked until ``lock_until``
        (and the counter restarts). Returns the failures counted so far."""
        async with self.transaction():
            await self.execute("UPDATE web_users SET failed_logins = failed_logins + 1 WHERE id = ?", (user_id,))
            row = await self.fetch_row(WebUserRow, f"SELECT {_USER_COLS} FROM web_users WHERE id = ?", (user_id,))
            n = row["failed_logins"] if row is not None else 0
            if n >= limit:
                await self.execute(
                    "UPDATE web_users SET failed_logins = 0, locked_until = ? WHERE id = ?", (lock_until, user_id)
                )
        return n

    async def web_login_ok_row(self, user_id: int) -> None:
        async with self.transaction():
            await self.execute("UPDATE web_users SET failed_logins = 0, locked_until = NULL WHERE id = ?", (user_id,))

    # ------------------------------------------------------------------ tokens
    async def insert_web_token_row(
        self, name: str, role: str, agent_id: str | None, token_hash: str, now: float
    ) -> int:
        async with self.transaction():
            return await self.insert(
                "INSERT INTO web_tokens(name, role, agent_id, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, role, agent_id, token_hash, now),
            )

    async def web_token_row(self, token_hash: str) -> WebTokenRow | None:
        return await self.fetch_row(
            WebTokenRow, f"SELECT {_TOKEN_COLS} FROM web_tokens WHERE token_hash = ?", (token_hash,)
        )

    async def web_token_rows(self) -> list[WebTokenRow]:
        return await self.fetch_rows(WebTokenRow, f"SELECT {_TOKEN_COLS} FROM web_tokens ORDER BY id")

    async def delete_web_token_row(self, token_id: int) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM web_tokens WHERE id = ?", (token_id,)) > 0

    async def touch_web_token_row(self, token_id: int, now: float) -> None:
        async with self.transaction():
            await self.execute("UPDATE web_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))

    # ------------------------------------------------------------------ audit
    async def insert_audit_row(
        self, at: float, who: str, action: str, target: str | None, detail: str | None, ip: str | None, ok: bool
    ) -> int:
        async with self.transaction():
            return await self.insert(
                "INSERT INTO web_audit(at, who, action, target, detail, ip, ok) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (at, who, action, target, detail, ip, int(ok)),
            )

    async def audit_rows(self, since: float | None = None, limit: int = 1000) -> list[AuditRow]:
        return await self.fetch_rows(
            AuditRow,
            f"SELECT {_AUDIT_COLS} FROM web_audit WHERE at >= ? ORDER BY id DESC LIMIT ?",
            (since if since is not None else 0.0, limit),
        )
