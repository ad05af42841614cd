"""Queries: saved SIP registrations (pypbx.registrations) and security events (pypbx.security)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import (
    REGISTRATION_FIELDS,
    RegistrationRow,
    SecurityEventRow,
)


class RegistrationQueries(DatabaseCore):
    # ------------------------------------------------------------------ registrations
    async def load_registration_rows(self, aor: str | None = None) -> list[RegistrationRow]:
        cols = ", ".join(REGISTRATION_FIELDS)
        if aor is None:
            return await self.fetch_rows(RegistrationRow, f"SELECT {cols} FROM registrations ORDER BY aor, contact")
        return await self.fetch_rows(
            RegistrationRow, f"SELECT {cols} FROM registrations WHERE aor = ? ORDER BY contact", (aor,)
        )

    async def save_registration_rows(
        self, upserts: Sequence[Mapping[str, object]], deletes: Sequence[tuple[str, str]]
    ) -> None:
        """Apply a batch in one transaction: deletes first, then upserts (insert or replace by (aor, contact))."""
        if not upserts and not deletes:
            return
        cols = ", ".join(REGISTRATION_FIELDS)
        vals = ", ".join(":" + f for f in REGISTRATION_FIELDS)
        sets = ", ".join(f"{f} = excluded.{f}" for f in REGISTRATION_FIELDS if f not in ("aor", "contact"))
        async with self.transaction():
            if deletes:
                await self.executemany(
                    "DELETE FROM registrations WHERE aor = ? AND contact = ?", [(a, c) for a, c in deletes]
                )
            if upserts:
                await self.executemany(
                    f"INSERT INTO registrations({cols}) VALUES ({vals}) ON CONFLICT(aor, contact) DO UPDATE SET {sets}",
                    [{f: u.get(f) for f in REGISTRATION_FIELDS} for u in upserts],
                )

    async def purge_expired_registrations(self, now: float) -> int:
        async with self.transaction():
            return await self.execute("DELETE FROM registrations WHERE expires_at <= ?", (now,))

    # ------------------------------------------------------------------ security events
    async def add_security_events(self, events: Sequence[tuple[float, str, str, str]]) -> None:
        """Append (ts, kind, ip, detail) rows in one transaction."""
        if not events:
            return
        async with self.transaction():
            await self.executemany(
                "INSERT INTO security_events(ts, kind, ip, detail) VALUES (?, ?, ?, ?)", list(events)
            )

    async def recent_security_events(self, limit: int = 100, since: float | None = None) -> list[SecurityEventRow]:
        if since is None:
            return await self.fetch_rows(
                SecurityEventRow, "SELECT ts, kind, ip, detail FROM security_events ORDER BY ts DESC LIMIT ?", (limit,)
            )
        return await self.fetch_rows(
            SecurityEventRow,
            "SELECT ts, kind, ip, detail FROM security_events WHERE ts >= ? ORDER BY ts DESC LIMIT ?",
            (since, limit),
        )
