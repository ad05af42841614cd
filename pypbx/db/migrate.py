"""Numbered schema migrations and the runner that applies them.

``migrations/NNNN_name.sql`` (or ``NNNN_name.py`` with ``async def migrate(conn)`` -- or
``migrate(conn, context)`` to get the :class:`MigrationContext`: the site's region -- for data
work SQL cannot do, such as converting stored numbers to E.164 with phonenumbers) takes the
schema from version NNNN-1 to NNNN. ``PRAGMA user_version`` holds the
version. Pending migrations are applied in order when the database is opened, each in its own
``BEGIN IMMEDIATE`` transaction together with the new ``user_version``; two processes opening at
once are safe (the version is re-read under the write lock). A database newer than the code
raises :class:`SchemaTooNewError`.

To change the schema, ADD the next numbered file; never edit a released one.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from pypbx.db.errors import DBError, SchemaTooNewError
from pypbx.numbers import DEFAULT_REGION

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sql|py)$")


@dataclass(frozen=True)
class MigrationContext:
    """What a Python migration may need to know about the site (from its config)."""

    region: str = DEFAULT_REGION  # [numbers] region: stored numbers are converted to E.164 with it


PyMigration = Callable[[aiosqlite.Connection, MigrationContext], Awaitable[None]]


@dataclass(frozen=True)
class Migration:
    """One step: ``version`` is the schema version it produces. Exactly one of ``sql``/``func``."""

    version: int
    name: str
    sql: str | None = None
    func: PyMigration | None = None

    async def apply(self, conn: aiosqlite.Connection, context: MigrationContext | None = None) -> None:
        if self.func is not None:
            await self.func(conn, context or MigrationContext())
        for stmt in split_sql(self.sql or ""):
            await conn.execute(stmt)


def _load_py(path: Path) -> PyMigration:
    spec = importlib.util.spec_from_file_location(f"pypbx.db.migrations._{path.stem}", path)
    if spec is None or spec.loader is None:
        raise DBError(f"cannot load migration {path.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    func = getattr(module, "migrate", None)
    if not callable(func):
        raise DBError(f"migration {path.name} has no migrate(conn) function")
    params = len(inspect.signature(func).parameters)
    if params == 1:  # migrate(conn): needs no context

        async def without_context(conn: aiosqlite.Connection, _ctx: MigrationContext) -> None:
            await func(conn)

        return without_context
    migrate_func: PyMigration = func
    return migrate_func


def load_migrations(directory: Path = MIGRATIONS_DIR) -> tuple[Migration, ...]:
    """The migrations in ``directory``, in order; numbered 1..n without gaps or duplicates."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        m = _NAME.match(path.name)
        if m is None:
            continue
        version, name, kind = int(m.group(1)), m.group(2), m.group(3)
        if version in found:
            raise DBError(f"two migrations numbered {version:04d} in {directory}")
        if kind == "sql":
            found[version] = Migration(version, name, sql=path.read_text(encoding="utf-8"))
        else:
            found[version] = Migration(version, name, func=_load_py(path))
    expected = list(range(1, len(found) + 1))
    if sorted(found) != expected:
        missing = min(set(expected) - set(found))
        raise DBError(f"migrations in {directory} are not numbered 1..{len(found)}: {missing:04d} is missing")
    return tuple(found[v] for v in expected)


MIGRATIONS: tuple[Migration, ...] = load_migrations()
SCHEMA_VERSION = len(MIGRATIONS)


def split_sql(script: str) -> list[str]:
    """Split a script into complete statements (semicolons inside triggers/strings are kept)."""
    out, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \t\r\n;"):
        out.append(buf.strip())
    return out


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(
    conn: aiosqlite.Connection,
    path: Path,
    migrations: Sequence[Migration] | None = None,
    *,
    context: MigrationContext | None = None,
) -> int:
    """Bring the database on ``conn`` (autocommit mode) to ``len(migrations)``; returns that version.
    ``migrations`` defaults to :data:`MIGRATIONS` (read at call time, so tests can replace it);
    ``context`` goes to the Python migrations (default: region FR)."""
    steps = MIGRATIONS if migrations is None else migrations
    latest = len(steps)
    while True:
        version = await user_version(conn)
        if version > latest:
            raise SchemaTooNewError(
                f"database {path} has schema version {version}, newer than this pypbx supports "
                f"({latest}); upgrade pypbx"
            )
        if version == latest:
            return version
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if await user_version(conn) != version:  # someone else migrated meanwhile
                await conn.execute("ROLLBACK")
                continue
            await steps[version].apply(conn, context)
            await conn.execute(f"PRAGMA user_version = {version + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
