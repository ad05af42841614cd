"""The connection: opening (WAL, pragmas, migrations), transactions, the generic statement
helpers every query module uses, ``data_version`` and the ``meta`` key/value table.

* WAL mode, ``foreign_keys=ON``, ``busy_timeout=5000``, autocommit connection with explicit
  ``BEGIN IMMEDIATE ... COMMIT`` transactions (:meth:`DatabaseCore.transaction`).
* Times (``created_at``, ``expires_at`` ...) are wall-clock UNIX seconds (``time.time()``).

Query modules (``pypbx.db.extensions`` ...) subclass :class:`DatabaseCore` and use only
:meth:`~DatabaseCore.execute`, :meth:`~DatabaseCore.executemany`, :meth:`~DatabaseCore.insert`,
:meth:`~DatabaseCore.fetchone`, :meth:`~DatabaseCore.fetchall` and
:meth:`~DatabaseCore.transaction`, never the driver, so that a second backend only has to
provide this class.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Self, TypeVar, cast

import aiosqlite

from pypbx.db.errors import DBError, sql_errors
from pypbx.db.migrate import MigrationContext, migrate
from pypbx.db.rows import Params, Row
from pypbx.numbers import DEFAULT_REGION

RowT = TypeVar("RowT")


@asynccontextmanager
async def connect(
    path: str | Path, region: str = DEFAULT_REGION
) -> AsyncIterator[tuple[aiosqlite.Connection, Path, int]]:
    """Open (creating the file and its directory if needed) and migrate; close on exit.
    Yields (connection, path, schema version). ``region``: the site's (``[numbers] region``),
    for the data migrations that convert numbers."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DBError(f"cannot create {p.parent}: {e.strerror or e}") from None
    try:
        conn = await aiosqlite.connect(str(p), isolation_level=None)
    except sqlite3.Error as e:
        raise DBError(f"cannot open database {p}: {e}") from None
    try:
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute("PRAGMA foreign_keys = ON")
            async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                await cur.fetchone()
            await conn.execute("PRAGMA synchronous = NORMAL")
            version = await migrate(conn, p, context=MigrationContext(region=region))
        except sqlite3.DatabaseError as e:
            raise DBError(f"cannot open database {p}: {e}") from None
        yield conn, p, version
    finally:
        await conn.close()


class DatabaseCore:
    """One connection. Safe to share between tasks of one event loop (writes are serialised)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, schema_version: int, region: str = DEFAULT_REGION):
        self._conn = conn
        #: the site's region (``[numbers] region``): numbers given to the store are made E.164 with it
        self.region = region
        self.path = path
        self.schema_version = schema_version
        self._write_lock = asyncio.Lock()

    # ------------------------------------------------------------------ generic
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Self]:
        """``async with db.transaction():`` — BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        async with self._write_lock:
            with sql_errors():
                await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
                with sql_errors():
                    await self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns rowcount."""
        with sql_errors():
            async with self._conn.execute(sql, params) as cur:
                return cur.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT; returns the new row's rowid (an INTEGER PRIMARY KEY)."""
        with sql_errors():
            async with self._conn.execute(sql, params) as cur:
                rowid = cur.lastrowid
        if rowid is None:
            raise DBError("database error: no row inserted")
        return int(rowid)

    async def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        with sql_errors():
            await self._conn.executemany(sql, seq)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with sql_errors():
            async with self._conn.execute(sql, params) as cur:
                return [dict(r) for r in await cur.fetchall()]

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with sql_errors():
            async with self._conn.execute(sql, params) as cur:
                r = await cur.fetchone()
        return dict(r) if r is not None else None

    async def fetch_row(self, kind: type[RowT], sql: str, params: Params = ()) -> RowT | None:
        """:meth:`fetchone`, typed as ``kind`` (a row TypedDict of :mod:`pypbx.db.rows`)."""
        return cast("RowT | None", await self.fetchone(sql, params))

    async def fetch_rows(self, kind: type[RowT], sql: str, params: Params = ()) -> list[RowT]:
        """:meth:`fetchall`, typed as ``kind`` (a row TypedDict of :mod:`pypbx.db.rows`)."""
        return cast("list[RowT]", await self.fetchall(sql, params))

    def exists_sync(self, sql: str, params: Params = ()) -> bool:
        """Does the query return a row? A blocking read-only look on a separate short-lived
        connection (for synchronous code); False if the database cannot be read."""
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=0.5)
            try:
                hit = con.execute(sql, params).fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return False
        return hit is not None

    async def data_version(self) -> int:
        """``PRAGMA data_version``: changes whenever ANOTHER connection commits."""
        async with self._conn.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row is not None else 0

    async def journal_mode(self) -> str:
        async with self._conn.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        return str(row[0]).lower() if row is not None else ""

    # ------------------------------------------------------------------ meta
    async def get_meta(self, key: str) -> str | None:
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None or row["value"] is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def get_or_create_meta(self, key: str, factory: Callable[[], str]) -> str:
        """The value of ``key``; created once with ``factory()`` if absent (first writer wins)."""
        value = await self.get_meta(key)
        if value is not None:
            return value
        async with self.transaction():
            await self.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, factory()))
        value = await self.get_meta(key)
        assert value is not None
        return value
