"""Queries: the durable notifications outbox (pypbx.notify)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import NotificationRow, WebhookRow


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
            "SELECT * FROM notifications WHERE status = 'pending' AND channel != 'hook' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )

    async def next_notification_due(self) -> float | None:
        """When the next delivery is due (a webhook's deliveries after its oldest pending one
        are not: they wait for it)."""
        row = await self.fetch_row(
            _Due,
            "SELECT MIN(t) AS t FROM ("
            "  SELECT next_attempt_at AS t FROM notifications WHERE status = 'pending' AND channel != 'hook'"
            "  UNION ALL SELECT n.next_attempt_at FROM notifications n JOIN ("
            "    SELECT MIN(id) AS id FROM notifications WHERE channel = 'hook' AND status = 'pending'"
            "    GROUP BY target) h ON n.id = h.id)",
        )
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

    # call-event webhooks (pypbx.webhooks)
    async def insert_webhook_row(self, url: str, events: str, secret: str, now: float) -> int:
        return await self.insert(
            "INSERT INTO webhooks(url, events, secret, created_at) VALUES (?, ?, ?, ?)", (url, events, secret, now)
        )

    async def webhook_rows(self) -> list[WebhookRow]:
        return await self.fetch_rows(WebhookRow, "SELECT * FROM webhooks ORDER BY id")

    async def get_webhook_row(self, hook_id: int) -> WebhookRow | None:
        return await self.fetch_row(WebhookRow, "SELECT * FROM webhooks WHERE id = ?", (hook_id,))

    async def delete_webhook_row(self, hook_id: int) -> bool:
        """The endpoint and its deliveries still pending (nothing left to send them to)."""
        async with self.transaction():
            n = await self.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))
            await self.execute(
                "DELETE FROM notifications WHERE channel = 'hook' AND target = ? AND status = 'pending'",
                (str(hook_id),),
            )
        return n > 0

    async def mark_webhook_row(self, hook_id: int, *, ok: bool, now: float, error: str | None = None) -> bool:
        """Record a delivery's outcome; True when this failure starts a failing episode."""
        if ok:
            await self.execute(
                "UPDATE webhooks SET failing_since = NULL, last_error = NULL, last_ok_at = ? WHERE id = ?",
                (now, hook_id),
            )
            return False
        n = await self.execute(
            "UPDATE webhooks SET failing_since = ?, last_error = ? WHERE id = ? AND failing_since IS NULL",
            (now, error, hook_id),
        )
        if n == 0:
            await self.execute("UPDATE webhooks SET last_error = ? WHERE id = ?", (error, hook_id))
        return n > 0

    async def next_hook_rows(self, now: float) -> list[NotificationRow]:
        """Per webhook, its oldest pending delivery if it is due: deliveries to one endpoint
        go in order, a failing one holds back the ones after it."""
        return await self.fetch_rows(
            NotificationRow,
            "SELECT n.* FROM notifications n JOIN ("
            "  SELECT target, MIN(id) AS id FROM notifications WHERE channel = 'hook' AND status = 'pending'"
            "  GROUP BY target) h ON n.id = h.id WHERE n.next_attempt_at <= ? ORDER BY n.id",
            (now,),
        )

    async def hook_notification_rows(self, hook_id: int, limit: int = 50) -> list[NotificationRow]:
        return await self.fetch_rows(
            NotificationRow,
            "SELECT * FROM notifications WHERE channel = 'hook' AND target = ? ORDER BY id DESC LIMIT ?",
            (str(hook_id), limit),
        )

    async def integrity_check(self) -> list[str]:
        """``PRAGMA quick_check``: ["ok"] for a sound database, else the problems found."""
        return [str(next(iter(r.values()))) for r in await self.fetchall("PRAGMA quick_check")]

    async def recording_bytes_since(self, since: float) -> int:
        """Bytes of the recordings made since ``since`` (pypbx doctor: the disk's daily rate)."""
        rows = await self.fetchall(
            "SELECT COALESCE(SUM(bytes), 0) AS b FROM recordings WHERE created_at >= ?", (since,)
        )
        return int(rows[0]["b"] or 0)
