"""Queries: the durable notifications outbox (pypbx.notify)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import NotificationRow


class _Due(TypedDict):
    t: float | None


class _StatusCount(TypedDict):
    status: str
    n: int


class NotifyQueries(DatabaseCore):
    # notifications' outbox (pypbx.notify)
    async def notification_status_counts(self) -> dict[str, int]:
        """{pending|sent|failed: how many} (the metrics' outbox depth)."""
        rows = await self.fetch_rows(_StatusCount, "SELECT status, count(*) AS n FROM notifications GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def insert_notification_rows(self, rows: Sequence[Mapping[str, object]]) -> list[int]:
        """All in one transaction; returns their ids."""
        ids = []
        async with self.transaction():
            for r in rows:
                ids.append(
                    await self.insert(
                        "INSERT INTO notifications(kind, channel, target, payload, created_at, next_attempt_at) "
                        "VALUES (:kind, :channel, :target, :payload, :created_at, :next_attempt_at)",
                        r,
                    )
                )
        return ids

    async def due_notification_rows(self, now: float, limit: int = 50) -> list[NotificationRow]:
        return await self.fetch_rows(
            NotificationRow,
            "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )

    async def next_notification_due(self) -> float | None:
        row = await self.fetch_row(_Due, "SELECT MIN(next_attempt_at) AS t FROM notifications WHERE status = 'pending'")
        return row["t"] if row else None

    async def get_notification_row(self, nid: int) -> NotificationRow | None:
        return await self.fetch_row(NotificationRow, "SELECT * FROM notifications WHERE id = ?", (nid,))

    async def list_notification_rows(self, status: str | None = None, limit: int = 1000) -> list[NotificationRow]:
        cond, params = ("WHERE status = ?", [status]) if status else ("", [])
        return await self.fetch_rows(
            NotificationRow, f"SELECT * FROM notifications {cond} ORDER BY id DESC LIMIT ?", (*params, limit)
        )

    async def update_notification_row(self, nid: int, **fields: object) -> bool:
        bad = set(fields) - {"status", "attempts", "next_attempt_at", "sent_at", "last_error", "target"}
        if bad:
            raise ValueError(f"cannot update notification fields {sorted(bad)}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            return await self.execute(f"UPDATE notifications SET {sets} WHERE id = :_id", {**fields, "_id": nid}) > 0
