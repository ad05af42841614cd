"""Queries: recordings over years (pypbx.retention: holds, deletions in the books, the stored
format after compression) and alert episodes (pypbx.alerts)."""

from __future__ import annotations

import json
from typing import TypedDict

from pypbx.db.core import DatabaseCore


class StoredRecordingRow(TypedDict):
    """A recording with what retention needs of its call."""

    call_id: str
    path: str
    status: str
    format: str
    seconds: float | None
    sha256: str | None
    bytes: int | None
    created_at: float
    offered_at: float | None
    queue: str | None
    held_at: float | None
    hold_reason: str
    deleted_at: float | None
    deleted_reason: str


class AlertRow(TypedDict):
    id: int
    kind: str
    subject: str
    message: str
    raised_at: float
    notified_at: float | None
    resolved_at: float | None


_STORED = (
    "SELECT r.call_id, r.path, r.status, r.format, r.seconds, r.sha256, r.bytes, r.created_at,"
    " c.offered_at, c.queue, r.held_at, r.hold_reason, r.deleted_at, r.deleted_reason"
    " FROM recordings r LEFT JOIN calls c ON c.id = r.call_id"
)
_ALERT = "SELECT id, kind, subject, message, raised_at, notified_at, resolved_at FROM alerts"


class RetentionQueries(DatabaseCore):
    # ------------------------------------------------------------------ recordings
    async def stored_recording_rows(self, *, include_deleted: bool = False) -> list[StoredRecordingRow]:
        """Every recording, oldest first (by its call's start, else when it was filed)."""
        where = "" if include_deleted else " WHERE r.deleted_at IS NULL"
        return await self.fetch_rows(
            StoredRecordingRow, _STORED + where + " ORDER BY COALESCE(c.offered_at, r.created_at), r.call_id"
        )

    async def compressible_recording_rows(
        self, statuses: tuple[str, ...], filed_before: float, limit: int
    ) -> list[StoredRecordingRow]:
        """Finished WAV recordings, not held nor deleted, filed before ``filed_before``, oldest first."""
        marks = ", ".join("?" * len(statuses))
        return await self.fetch_rows(
            StoredRecordingRow,
            _STORED + f" WHERE r.format = 'wav' AND r.deleted_at IS NULL AND r.held_at IS NULL"
            f" AND r.status IN ({marks}) AND r.created_at <= ? ORDER BY r.created_at LIMIT ?",
            (*statuses, filed_before, limit),
        )

    async def stored_recording_row(self, call_id: str) -> StoredRecordingRow | None:
        return await self.fetch_row(StoredRecordingRow, _STORED + " WHERE r.call_id = ?", (call_id,))

    async def set_recording_hold(self, call_id: str, held_at: float | None, reason: str, ts: float) -> None:
        async with self.transaction():
            await self.execute(
                "UPDATE recordings SET held_at = ?, hold_reason = ? WHERE call_id = ?", (held_at, reason, call_id)
            )
            await self.execute(
                "INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                (call_id, ts, "recording_held" if held_at is not None else "recording_unheld", _json_reason(reason)),
            )

    async def mark_recording_deleted(self, call_id: str, ts: float, reason: str) -> None:
        """The books keep the deletion: the recording row says when and why, the call's event log too."""
        async with self.transaction():
            await self.execute(
                "UPDATE recordings SET status = 'deleted', deleted_at = ?, deleted_reason = ? WHERE call_id = ?",
                (ts, reason, call_id),
            )
            await self.execute(
                "INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, 'recording_deleted', ?)",
                (call_id, ts, _json_reason(reason)),
            )

    async def set_recording_stored(self, call_id: str, path: str, fmt: str, sha256: str, size: int) -> None:
        """After compression: the file the recording now lives in."""
        async with self.transaction():
            await self.execute(
                "UPDATE recordings SET path = ?, format = ?, sha256 = ?, bytes = ? WHERE call_id = ?",
                (path, fmt, sha256, size, call_id),
            )

    # ------------------------------------------------------------------ alerts
    async def open_alert_row(self, kind: str, subject: str) -> AlertRow | None:
        return await self.fetch_row(
            AlertRow, _ALERT + " WHERE kind = ? AND subject = ? AND resolved_at IS NULL", (kind, subject)
        )

    async def insert_alert(self, kind: str, subject: str, message: str, ts: float) -> int:
        async with self.transaction():
            return await self.insert(
                "INSERT INTO alerts(kind, subject, message, raised_at) VALUES (?, ?, ?, ?)",
                (kind, subject, message, ts),
            )

    async def set_alert_notified(self, alert_id: int, ts: float) -> None:
        async with self.transaction():
            await self.execute("UPDATE alerts SET notified_at = ? WHERE id = ?", (ts, alert_id))

    async def resolve_alert(self, alert_id: int, ts: float) -> None:
        async with self.transaction():
            await self.execute("UPDATE alerts SET resolved_at = ? WHERE id = ?", (ts, alert_id))

    async def alert_rows(self, *, open_only: bool = False, limit: int = 100) -> list[AlertRow]:
        where = " WHERE resolved_at IS NULL" if open_only else ""
        return await self.fetch_rows(AlertRow, _ALERT + where + " ORDER BY raised_at DESC, id DESC LIMIT ?", (limit,))


def _json_reason(reason: str) -> str:
    return json.dumps({"reason": reason})
