"""Queries: SIP trunks and DIDs (pypbx.trunks)."""

from __future__ import annotations

from collections.abc import Mapping

from pypbx.db.core import DatabaseCore
from pypbx.db.errors import DBError
from pypbx.db.rows import DidRow, TrunkRow


class TrunkQueries(DatabaseCore):
    # ------------------------------------------------------------------ trunks, DIDs (pypbx.trunks)
    async def insert_trunk_row(self, row: Mapping[str, object]) -> None:
        """Raises IntegrityError if the name exists."""
        cols = ", ".join(row)
        async with self.transaction():
            await self.execute(f"INSERT INTO trunks({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))

    async def update_trunk_row(self, name: str, fields: Mapping[str, object]) -> bool:
        if not fields:
            return await self.get_trunk_row(name) is not None
        sets = ", ".join(f"{k} = ?" for k in fields)
        async with self.transaction():
            n = await self.execute(f"UPDATE trunks SET {sets} WHERE name = ?", (*fields.values(), name))
        return n > 0

    async def delete_trunk_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM trunks WHERE name = ?", (name,)) > 0

    async def get_trunk_row(self, name: str) -> TrunkRow | None:
        return await self.fetch_row(TrunkRow, "SELECT * FROM trunks WHERE name = ?", (name,))

    async def list_trunk_rows(self) -> list[TrunkRow]:
        return await self.fetch_rows(TrunkRow, "SELECT * FROM trunks ORDER BY priority, name")

    async def insert_did_row(
        self, number: str, destination: str, service_line: str, trunk: str | None, now: float
    ) -> None:
        """Raises IntegrityError if the number exists."""
        async with self.transaction():
            await self.execute(
                "INSERT INTO dids(number, destination, service_line, trunk, created_at) VALUES (?, ?, ?, ?, ?)",
                (number, destination, service_line, trunk, now),
            )

    async def set_did_rule_row(self, number: str, known_dest: str | None, new_dest: str | None) -> None:
        async with self.transaction():
            await self.execute(
                "UPDATE dids SET known_dest = ?, new_dest = ? WHERE number = ?", (known_dest, new_dest, number)
            )

    async def delete_did_row(self, number: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM dids WHERE number = ?", (number,)) > 0

    async def list_did_rows(self) -> list[DidRow]:
        return await self.fetch_rows(DidRow, "SELECT * FROM dids ORDER BY number")

    async def update_did_row(self, number: str, fields: Mapping[str, object]) -> bool:
        """Change some of a DID's columns (destination, service_line, trunk, known_dest, new_dest)."""
        allowed = {"destination", "service_line", "trunk", "known_dest", "new_dest"}
        bad = set(fields) - allowed
        if bad:
            raise DBError(f"cannot change DID columns {sorted(bad)}")
        if not fields:
            return await self.fetchone("SELECT 1 FROM dids WHERE number = ?", (number,)) is not None
        sets = ", ".join(f"{k} = ?" for k in fields)
        async with self.transaction():
            return await self.execute(f"UPDATE dids SET {sets} WHERE number = ?", (*fields.values(), number)) > 0
