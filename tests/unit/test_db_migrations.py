"""pypbx.db's numbered migrations: every earlier schema version upgrades to the schema of a fresh
database and keeps its rows; the files are numbered without gaps; a newer database is refused."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiosqlite
import pytest

from pypbx.db import SCHEMA_VERSION, DBError, SchemaTooNewError, open_db
from pypbx.db import migrate as M

Value = str | int | float | None
TableRow = tuple[str, dict[str, Value]]

# Representative rows, by the schema version that introduced their table (or the column they use).
# A database at version k gets every row of versions <= k before it is upgraded.
ROWS: dict[int, list[TableRow]] = {
    1: [
        (
            "extensions",
            {
                "number": "1001",
                "name": "Reception",
                "realm": "pypbx",
                "ha1_md5": "a" * 32,
                "ha1_sha256": "b" * 64,
                "enabled": 1,
                "created_at": 1.0,
                "updated_at": 2.0,
            },
        ),
        (
            "registrations",
            {
                "aor": "1001",
                "contact": "sip:1001@192.0.2.10:5060",
                "call_id": "c1",
                "cseq": 3,
                "expires_at": 100.5,
                "source_transport": "UDP",
                "source_host": "192.0.2.10",
                "source_port": 5060,
                "user_agent": "Yealink",
            },
        ),
        ("security_events", {"ts": 5.0, "kind": "ban", "ip": "192.0.2.66", "detail": "5 auth failures"}),
        ("meta", {"key": "nonce_secret", "value": "s3cret"}),
    ],
    2: [
        (
            "calls",
            {
                "id": "call-1",
                "sip_call_id": "abc@x",
                "direction": "inbound",
                "caller_number": "+4930123",
                "offered_at": 10.0,
                "answered_at": 12.0,
                "disposition": "answered",
                "flags": "recorded",
            },
        ),
        ("call_events", {"call_id": "call-1", "ts": 10.0, "kind": "offered", "detail": '{"did": "+4930999"}'}),
        (
            "recordings",
            {"call_id": "call-1", "path": "/rec/call-1.wav", "status": "done", "seconds": 42.5, "created_at": 11.0},
        ),
    ],
    3: [
        ("queues", {"name": "front", "config": '{"strategy": "longest_idle"}', "created_at": 1.0}),
        (
            "agents",
            {
                "id": "alice",
                "name": "Alice",
                "skills": '{"de": 5}',
                "extension": "1001",
                "state": "ready",
                "state_since": 3.0,
            },
        ),
        ("agent_events", {"ts": 3.0, "agent": "alice", "kind": "login", "detail": "{}"}),
        ("queue_events", {"ts": 10.5, "queue": "front", "call_id": "call-1", "kind": "enter", "data": "{}"}),
        ("callbacks", {"number": "+4930123", "queue": "front", "requested_at": 20.0, "status": "pending"}),
        ("acd_state", {"key": "engine", "value": "{}", "updated_at": 4.0}),
    ],
    4: [("queues", {"name": "lab", "config": "{}", "number": "700"})],
    5: [
        ("schedules", {"name": "office", "tz": "Europe/Berlin", "week": '{"mon": ["08:00-18:00"]}'}),
        ("ivr_menus", {"name": "main", "number": "800", "config": "{}"}),
        (
            "callers",
            {"number": "+4930123", "name": "Pat", "patient_id": "P-17", "calls": 2, "last_outcome": "answered"},
        ),
        ("voicemail_boxes", {"box": "front", "number": "850", "on_no_answer": 1, "max_seconds": 90.0}),
        (
            "voicemail",
            {
                "id": "vm-1",
                "box": "front",
                "caller": "+4930123",
                "received_at": 30.0,
                "path": "/vm/vm-1.wav",
                "heard": 0,
            },
        ),
        ("surveys", {"call_id": "call-1", "agent": "alice", "queue": "front", "score": 5, "ts": 40.0}),
    ],
    6: [
        (
            "trunks",
            {
                "name": "carrier",
                "host": "sip.example.net",
                "port": 5061,
                "transport": "tls",
                "username": "u",
                "password": "p",
                "register": 1,
            },
        ),
        (
            "dids",
            {"number": "+4930999", "destination": "queue:front", "service_line": "appointments", "trunk": "carrier"},
        ),
        ("extension_permissions", {"number": "1001", "classes": "local,national", "max_outbound": 2}),
    ],
    7: [
        ("ring_groups", {"name": "doctors", "members": '["1001", "1002"]', "strategy": "all"}),
        (
            "dids",
            {"number": "+4930888", "destination": "ivr:main", "known_dest": "queue:front", "new_dest": "ivr:main"},
        ),
    ],
    8: [
        ("voicemail_boxes", {"box": "lab", "email": "lab@example.org"}),
        (
            "notifications",
            {
                "kind": "voicemail",
                "channel": "email",
                "target": "lab@example.org",
                "payload": "{}",
                "created_at": 50.0,
                "next_attempt_at": 50.0,
            },
        ),
    ],
    9: [
        ("routes", {"name": "daytime", "tz": "Europe/Berlin", "created_at": 1.0}),
        (
            "route_rules",
            {"route": "daytime", "position": 1, "conditions": '[{"hours": "office"}]', "destination": "queue:front"},
        ),
    ],
}

# Columns added to an existing table later: (table, key column, key, column, value after upgrading,
# version that added it). Rows written before that version get the column's default.
ADDED: list[tuple[str, str, str, str, Value, int]] = [
    ("queues", "name", "front", "number", None, 4),
    ("dids", "number", "+4930999", "known_dest", None, 7),
    ("dids", "number", "+4930999", "new_dest", None, 7),
    ("voicemail_boxes", "box", "front", "email", "", 8),
    ("dids", "number", "+4930999", "priority", 0, 14),
]


#: Rows a data migration rewrites on purpose: (table, row as written) -> the row after upgrading.
#: 0011 (numbers in E.164, issue 10): the old class names local/national are expanded.
REWRITTEN: dict[str, Callable[[dict[str, Value]], dict[str, Value]]] = {
    "extension_permissions": lambda r: {**r, "classes": "fixed_line,toll_free,shared_cost,voip,uan,short"},
}


def _expected(table: str, row: dict[str, Value], version: int) -> dict[str, Value]:
    return REWRITTEN[table](row) if table in REWRITTEN and version < 11 else row


def run(coro):
    return asyncio.run(coro)


async def _build(path: Path, version: int) -> None:
    """A database at ``version``: migrations 1..version, then ROWS valid at that version."""
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await conn.execute("PRAGMA foreign_keys = ON")
        assert await M.migrate(conn, path, M.MIGRATIONS[:version]) == version
        await conn.execute("BEGIN")
        for v in range(1, version + 1):
            for table, row in ROWS.get(v, []):
                await conn.execute(
                    f"INSERT INTO {table}({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
        await conn.execute("COMMIT")
    finally:
        await conn.close()


def _norm(sql: str | None) -> str:
    return re.sub(r"\s+", " ", sql or "").strip()


def schema(path: Path) -> dict[str, object]:
    """Tables (columns with type/notnull/default/pk, foreign keys), indexes (columns, unique,
    partial WHERE), triggers: everything but the text's whitespace."""
    con = sqlite3.connect(path)
    try:
        out: dict[str, object] = {}
        for kind, name, tbl, sql in con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"):
            if kind == "table":
                out[f"table {name}"] = {
                    "columns": con.execute(f"PRAGMA table_xinfo({name})").fetchall(),
                    "foreign_keys": con.execute(f"PRAGMA foreign_key_list({name})").fetchall(),
                }
            elif kind == "index":
                where = _norm(sql).partition(" WHERE ")[2] if sql else ""
                unique = [r[2] for r in con.execute(f"PRAGMA index_list({tbl})") if r[1] == name]
                out[f"index {name}"] = {
                    "table": tbl,
                    "unique": unique,
                    "where": where,
                    "columns": con.execute(f"PRAGMA index_xinfo({name})").fetchall(),
                }
            else:
                out[f"{kind} {name}"] = {"table": tbl, "sql": _norm(sql)}
        return out
    finally:
        con.close()


def user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


async def _open_close(path: Path) -> None:
    async with open_db(path):
        pass


@pytest.fixture(scope="module")
def fresh_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("fresh") / "pypbx.db"
    run(_open_close(path))
    return schema(path)


def test_rows_cover_known_versions_only() -> None:
    assert set(ROWS) <= set(range(1, SCHEMA_VERSION + 1))
    assert all(v <= SCHEMA_VERSION for *_, v in ADDED)


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_every_earlier_version_upgrades_to_the_fresh_schema_and_keeps_its_rows(
    tmp_path: Path, version: int, fresh_schema: dict[str, object]
) -> None:
    path = tmp_path / "pypbx.db"
    run(_build(path, version))
    assert user_version(path) == version

    async def go() -> list[tuple[TableRow, list[dict[str, object]]]]:
        async with open_db(path) as db:
            assert db.schema_version == SCHEMA_VERSION
            found = []
            for v in range(1, version + 1):
                for table, row in ROWS.get(v, []):
                    row = _expected(table, row, version)
                    cond = " AND ".join(f"{k} IS ?" for k in row)
                    found.append(
                        ((table, row), await db.fetchall(f"SELECT * FROM {table} WHERE {cond}", tuple(row.values())))
                    )
            # the current queries read the old rows
            assert [r["number"] for r in await db.list_extension_rows()] == (["1001"] if version >= 1 else [])
            call = await db.get_call_row("call-1")
            assert (call or {}).get("disposition") == ("answered" if version >= 2 else None)
            return found

    found = run(go())
    assert user_version(path) == SCHEMA_VERSION
    assert schema(path) == fresh_schema
    assert len(found) == sum(len(ROWS.get(v, [])) for v in range(1, version + 1))
    for (table, row), hits in found:
        assert len(hits) == 1, (table, row, hits)
    # columns added after a row was written hold their default
    older = [a for a in ADDED if _written_in(a[0], a[1], a[2]) <= version < a[5]]
    con = sqlite3.connect(path)
    try:
        got = [
            con.execute(f"SELECT {col} FROM {table} WHERE {key_col} = ?", (key,)).fetchall()
            for table, key_col, key, col, _value, _added in older
        ]
    finally:
        con.close()
    assert got == [[(value,)] for *_, value, _added in older]


def _written_in(table: str, key_col: str, key: str) -> int:
    """The version whose ROWS write this row."""
    return min(v for v, rows in ROWS.items() for t, r in rows if t == table and r.get(key_col) == key)


def test_added_columns_are_checked_for_some_version() -> None:
    """Every ADDED row is written before its column exists, so the upgrade test checks its default."""
    assert all(_written_in(table, key_col, key) < added_in for table, key_col, key, _c, _v, added_in in ADDED)


def test_fresh_database_is_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"
    run(_open_close(path))
    assert user_version(path) == SCHEMA_VERSION == len(M.MIGRATIONS)


def test_newer_database_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"
    run(_build(path, SCHEMA_VERSION))
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNewError) as ei:
        run(_open_close(path))
    assert isinstance(ei.value, DBError)
    assert "\n" not in str(ei.value)
    assert str(ei.value) == (
        f"database {path} has schema version {SCHEMA_VERSION + 3}, newer than this pypbx "
        f"supports ({SCHEMA_VERSION}); upgrade pypbx"
    )
    assert user_version(path) == SCHEMA_VERSION + 3  # left alone


def test_migration_files_are_numbered_without_gaps() -> None:
    names = sorted(p.name for p in M.MIGRATIONS_DIR.iterdir() if not p.name.startswith(("_", ".")))
    numbers = [int(n[:4]) for n in names]
    assert numbers == list(range(1, len(names) + 1))
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.(sql|py)", n) for n in names), names
    assert [m.version for m in M.MIGRATIONS] == numbers
    assert [f"{m.version:04d}_{m.name}" for m in M.MIGRATIONS] == [n.rsplit(".", 1)[0] for n in names]
    assert len(names) == SCHEMA_VERSION


def test_migration_files_are_package_data() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'pypbx = ["db/migrations/*.sql", "db/migrations/*.py"]' in text


@pytest.mark.parametrize(
    "files, error",
    [
        (["0001_a.sql", "0003_c.sql"], "are not numbered 1..2: 0002 is missing"),
        (["0002_b.sql"], "are not numbered 1..1: 0001 is missing"),
        (["0001_a.sql", "0001_b.sql"], "two migrations numbered 0001"),
    ],
)
def test_gaps_and_duplicates_are_refused(tmp_path: Path, files: list[str], error: str) -> None:
    for f in files:
        (tmp_path / f).write_text("CREATE TABLE t (x);")
    with pytest.raises(DBError, match=re.escape(error)):
        M.load_migrations(tmp_path)


def test_python_migration_converts_data(tmp_path: Path) -> None:
    """A ``NNNN_name.py`` migration runs its ``migrate(conn)`` in the same transaction as the SQL ones."""
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "0001_people.sql").write_text(
        "CREATE TABLE people (name TEXT);\nINSERT INTO people VALUES ('ada lovelace'), ('alan turing');"
    )
    (mdir / "0002_title_case.py").write_text(
        "async def migrate(conn):\n"
        "    async with conn.execute('SELECT rowid, name FROM people') as cur:\n"
        "        rows = await cur.fetchall()\n"
        "    for rowid, name in rows:\n"
        "        await conn.execute('UPDATE people SET name = ? WHERE rowid = ?', (name.title(), rowid))\n"
    )
    steps = M.load_migrations(mdir)
    assert [(m.version, m.name, m.sql is None) for m in steps] == [(1, "people", False), (2, "title_case", True)]
    path = tmp_path / "t.db"

    async def go() -> int:
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            return await M.migrate(conn, path, steps)
        finally:
            await conn.close()

    assert run(go()) == 2
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT name FROM people ORDER BY name").fetchall() == [("Ada Lovelace",), ("Alan Turing",)]
        assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        con.close()


def test_python_migration_without_migrate_function_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_x.py").write_text("X = 1\n")
    with pytest.raises(DBError, match=r"^migration 0001_x.py has no migrate\(conn\) function$"):
        M.load_migrations(tmp_path)
