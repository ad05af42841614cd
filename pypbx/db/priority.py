"""Queries: the urgent line (issue 10): a DID's queue priority (``dids.priority``,
:mod:`pypbx.dids`). The other queue settings of issue 10 live in ``queues.config``."""

from __future__ import annotations

from pypbx.db.core import DatabaseCore


class PriorityQueries(DatabaseCore):
    async def get_did_priority_row(self, number: str) -> int | None:
        """The priority of DID ``number`` (None: no such DID)."""
        row = await self.fetchone("SELECT priority FROM dids WHERE number = ?", (number,))
        return None if row is None else int(row["priority"] or 0)

    async def set_did_priority_row(self, number: str, priority: int) -> bool:
        async with self.transaction():
            return await self.execute("UPDATE dids SET priority = ? WHERE number = ?", (priority, number)) > 0

    async def list_did_priority_rows(self) -> dict[str, int]:
        """DID number -> priority, for the DIDs whose priority is not 0."""
        rows = await self.fetchall("SELECT number, priority FROM dids WHERE priority != 0")
        return {str(r["number"]): int(r["priority"] or 0) for r in rows}
