"""Queries: extensions and their outbound permissions (pypbx.extensions, pypbx.trunks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import (
    EXTENSION_FIELDS,
    ExtensionPermissionRow,
    ExtensionRow,
)


class _Count(TypedDict):
    n: int


class ExtensionQueries(DatabaseCore):
    # ------------------------------------------------------------------ extensions
    async def insert_extension(self, row: Mapping[str, object]) -> None:
        """Raises IntegrityError if the number exists."""
        row = {"name": "", "enabled": 1, **{k: v for k, v in row.items() if v is not None}}
        async with self.transaction():
            await self.execute(
                f"INSERT INTO extensions({', '.join(EXTENSION_FIELDS)}) "
                f"VALUES ({', '.join(':' + f for f in EXTENSION_FIELDS)})",
                {f: row.get(f) for f in EXTENSION_FIELDS},
            )

    async def update_extension_secret(self, number: str, realm: str, ha1_md5: str, ha1_sha256: str, now: float) -> bool:
        async with self.transaction():
            n = await self.execute(
                "UPDATE extensions SET realm = ?, ha1_md5 = ?, ha1_sha256 = ?, updated_at = ? WHERE number = ?",
                (realm, ha1_md5, ha1_sha256, now, number),
            )
        return n > 0

    async def update_extension_fields(self, number: str, now: float, **fields: object) -> bool:
        """Set ``name`` and/or ``enabled``."""
        allowed = {"name", "enabled"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if not fields:
            return await self.get_extension_row(number) is not None
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            n = await self.execute(
                f"UPDATE extensions SET {sets}, updated_at = :now WHERE number = :number",
                {**fields, "now": now, "number": number},
            )
        return n > 0

    async def delete_extension(self, number: str) -> bool:
        """Delete the extension and its saved registrations. False if it did not exist."""
        async with self.transaction():
            n = await self.execute("DELETE FROM extensions WHERE number = ?", (number,))
            if n:
                await self.execute("DELETE FROM registrations WHERE aor = ?", (number,))
        return n > 0

    async def get_extension_row(self, number: str) -> ExtensionRow | None:
        return await self.fetch_row(
            ExtensionRow, f"SELECT {', '.join(EXTENSION_FIELDS)} FROM extensions WHERE number = ?", (number,)
        )

    async def list_extension_rows(self) -> list[ExtensionRow]:
        return await self.fetch_rows(
            ExtensionRow, f"SELECT {', '.join(EXTENSION_FIELDS)} FROM extensions ORDER BY length(number), number"
        )

    async def count_extensions(self) -> int:
        row = await self.fetch_row(_Count, "SELECT count(*) AS n FROM extensions")
        return int(row["n"]) if row else 0

    async def set_extension_permissions_row(
        self, number: str, classes: str, max_outbound: int | None, now: float
    ) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO extension_permissions(number, classes, max_outbound, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET classes = excluded.classes, "
                "max_outbound = excluded.max_outbound, updated_at = excluded.updated_at",
                (number, classes, max_outbound, now),
            )

    async def list_extension_permission_rows(self) -> list[ExtensionPermissionRow]:
        return await self.fetch_rows(ExtensionPermissionRow, "SELECT * FROM extension_permissions ORDER BY number")
