"""Queries: voicemail boxes and messages (pypbx.voicemail)."""

from __future__ import annotations

from collections.abc import Mapping

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import SQLValue, VoicemailBoxRow, VoicemailRow


class VoicemailQueries(DatabaseCore):
    # voicemail (pypbx.voicemail)
    async def upsert_voicemail_box_row(
        self, box: str, number: str | None, on_no_answer: bool, max_seconds: float, now: float
    ) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO voicemail_boxes(box, number, on_no_answer, max_seconds, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(box) DO UPDATE SET number = excluded.number, "
                "on_no_answer = excluded.on_no_answer, max_seconds = excluded.max_seconds",
                (box, number, int(on_no_answer), max_seconds, now),
            )

    async def get_voicemail_box_row(self, box: str) -> VoicemailBoxRow | None:
        return await self.fetch_row(VoicemailBoxRow, "SELECT * FROM voicemail_boxes WHERE box = ?", (box,))

    async def list_voicemail_box_rows(self) -> list[VoicemailBoxRow]:
        return await self.fetch_rows(VoicemailBoxRow, "SELECT * FROM voicemail_boxes ORDER BY box")

    async def delete_voicemail_box_row(self, box: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM voicemail_boxes WHERE box = ?", (box,)) > 0

    async def insert_voicemail_row(self, row: Mapping[str, object]) -> None:
        cols = ", ".join(row)
        async with self.transaction():
            await self.execute(f"INSERT INTO voicemail({cols}) VALUES ({', '.join(':' + k for k in row)})", row)

    async def list_voicemail_rows(
        self, box: str | None = None, include_deleted: bool = False, unheard_only: bool = False
    ) -> list[VoicemailRow]:
        where: list[str] = []
        params: list[SQLValue] = []
        if box is not None:
            where.append("box = ?")
            params.append(box)
        if not include_deleted:
            where.append("deleted_at IS NULL")
        if unheard_only:
            where.append("heard = 0")
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetch_rows(VoicemailRow, f"SELECT * FROM voicemail {cond} ORDER BY received_at, id", params)

    async def get_voicemail_row(self, msg_id: str) -> VoicemailRow | None:
        return await self.fetch_row(VoicemailRow, "SELECT * FROM voicemail WHERE id = ?", (msg_id,))

    async def update_voicemail_row(self, msg_id: str, **fields: object) -> bool:
        bad = set(fields) - {"heard", "deleted_at", "seconds", "path"}
        if bad:
            raise ValueError(f"cannot update voicemail fields {sorted(bad)}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            return await self.execute(f"UPDATE voicemail SET {sets} WHERE id = :_id", {**fields, "_id": msg_id}) > 0

    async def set_voicemail_box_email_row(self, box: str, email: str) -> bool:
        """The mailbox's notification addresses (comma-separated; '' = none)."""
        async with self.transaction():
            return await self.execute("UPDATE voicemail_boxes SET email = ? WHERE box = ?", (email, box)) > 0
