"""Queries: callers: who called, how often, with what outcome; imported patients (pypbx.callers)."""

from __future__ import annotations

from collections.abc import Sequence

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import CallerRow


class CallerQueries(DatabaseCore):
    # callers (pypbx.callers)
    async def caller_seen_row(
        self, number: str, now: float, outcome: str, agent: str | None, call_id: str | None
    ) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO callers(number, first_seen, last_seen, calls, last_outcome, last_agent, last_call_id) "
                "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT(number) DO UPDATE SET "
                "first_seen = COALESCE(callers.first_seen, excluded.first_seen), last_seen = excluded.last_seen, "
                "calls = callers.calls + 1, last_outcome = excluded.last_outcome, "
                "last_agent = COALESCE(excluded.last_agent, callers.last_agent), "
                "last_call_id = excluded.last_call_id",
                (number, now, now, outcome, agent, call_id),
            )

    async def upsert_patient_rows(self, rows: Sequence[tuple[str, str, str]], now: float) -> int:
        """(number, name, patient_id) rows: new numbers inserted, known ones updated."""
        async with self.transaction():
            await self.executemany(
                "INSERT INTO callers(number, name, patient_id, imported_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET name = excluded.name, patient_id = excluded.patient_id, "
                "imported_at = excluded.imported_at",
                [(n, nm, pid, now) for n, nm, pid in rows],
            )
        return len(rows)

    async def remember_crm_row(self, number: str, name: str, patient_id: str, now: float) -> None:
        """A patient the clinic's system knows (pypbx.crm): on the list from now on, its name
        and patient id replaced by the CRM's when it gives them."""
        await self.execute(
            "INSERT INTO callers(number, name, patient_id, imported_at) VALUES (?, NULLIF(?, ''), NULLIF(?, ''), ?) "
            "ON CONFLICT(number) DO UPDATE SET name = COALESCE(excluded.name, name), "
            "patient_id = COALESCE(excluded.patient_id, patient_id), "
            "imported_at = COALESCE(imported_at, excluded.imported_at)",
            (number, name, patient_id, now),
        )

    async def get_caller_row(self, number: str) -> CallerRow | None:
        return await self.fetch_row(CallerRow, "SELECT * FROM callers WHERE number = ?", (number,))

    async def list_caller_rows(self, limit: int = 1000, known_only: bool = False) -> list[CallerRow]:
        cond = "WHERE patient_id IS NOT NULL OR calls > 0" if known_only else ""
        return await self.fetch_rows(
            CallerRow,
            f"SELECT * FROM callers {cond} ORDER BY COALESCE(last_seen, imported_at) DESC, number LIMIT ?",
            (limit,),
        )
