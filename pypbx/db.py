"""The database: SQLite through aiosqlite. The only module that talks SQL.

Everything else goes through :class:`Database` methods, so that PostgreSQL can replace
SQLite by replacing this module.

* WAL mode, ``foreign_keys=ON``, ``busy_timeout=5000``, autocommit connection with explicit
  ``BEGIN IMMEDIATE ... COMMIT`` transactions (:meth:`Database.transaction`).
* Versioned schema: :data:`MIGRATIONS` is a list of SQL scripts; script *i* takes the
  schema from version *i* to *i+1*. ``PRAGMA user_version`` holds the version. Pending
  scripts are applied in order when the database is opened, each in its own transaction;
  two processes opening at once are safe (the version is re-read under the write lock).
  A database newer than the code raises :class:`SchemaTooNewError`.
  To change the schema, APPEND a script; never edit a released one.
* Times (``created_at``, ``expires_at`` ...) are wall-clock UNIX seconds (``time.time()``).

Usage::

    async with open_db(cfg.db_path) as db:
        rows = await db.list_extension_rows()
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Sequence

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: extensions, registrations, security events, meta
    """
    CREATE TABLE extensions (
        number      TEXT PRIMARY KEY,
        name        TEXT NOT NULL DEFAULT '',
        realm       TEXT NOT NULL,
        ha1_md5     TEXT NOT NULL,
        ha1_sha256  TEXT NOT NULL,
        enabled     INTEGER NOT NULL DEFAULT 1,
        created_at  REAL,
        updated_at  REAL
    );
    CREATE TABLE registrations (
        aor              TEXT,
        contact          TEXT,
        instance         TEXT,
        reg_id           INTEGER,
        call_id          TEXT,
        cseq             INTEGER,
        expires_at       REAL,
        q                REAL,
        source_transport TEXT,
        source_host      TEXT,
        source_port      INTEGER,
        local            TEXT,
        user_agent       TEXT,
        registered_at    REAL,
        PRIMARY KEY (aor, contact)
    );
    CREATE INDEX registrations_expires_at ON registrations(expires_at);
    CREATE TABLE security_events (
        ts     REAL,
        kind   TEXT,
        ip     TEXT,
        detail TEXT
    );
    CREATE INDEX security_events_ts ON security_events(ts);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT
    );
    """,
    # 2: call records (CDR), the append-only call-event log, recordings' metadata
    """
    CREATE TABLE calls (
        id              TEXT PRIMARY KEY,
        sip_call_id     TEXT,
        direction       TEXT NOT NULL,
        caller_number   TEXT,
        caller_name     TEXT,
        callee_number   TEXT,
        callee_name     TEXT,
        did             TEXT,
        service_line    TEXT,
        extension       TEXT,
        queue           TEXT,
        agent           TEXT,
        offered_at      REAL NOT NULL,
        answered_at     REAL,
        ended_at        REAL,
        ring_seconds    REAL,
        talk_seconds    REAL,
        hangup_side     TEXT,
        hangup_cause    TEXT,
        disposition     TEXT NOT NULL DEFAULT 'in_progress',
        flags           TEXT NOT NULL DEFAULT '',
        worker          TEXT
    );
    CREATE INDEX calls_offered_at ON calls(offered_at);
    CREATE INDEX calls_caller ON calls(caller_number);
    CREATE INDEX calls_callee ON calls(callee_number);
    CREATE INDEX calls_disposition ON calls(disposition);
    CREATE TABLE call_events (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id  TEXT NOT NULL,
        ts       REAL NOT NULL,
        kind     TEXT NOT NULL,
        detail   TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX call_events_call ON call_events(call_id, seq);
    CREATE TRIGGER call_events_append_only_u BEFORE UPDATE ON call_events
        BEGIN SELECT RAISE(ABORT, 'call_events is append-only'); END;
    CREATE TRIGGER call_events_append_only_d BEFORE DELETE ON call_events
        BEGIN SELECT RAISE(ABORT, 'call_events is append-only'); END;
    CREATE TABLE recordings (
        call_id      TEXT PRIMARY KEY REFERENCES calls(id),
        path         TEXT NOT NULL,
        status       TEXT NOT NULL,
        seconds      REAL,
        sample_rate  INTEGER,
        channels     INTEGER,
        sha256       TEXT,
        bytes        INTEGER,
        created_at   REAL NOT NULL,
        detail       TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 3: the ACD's configuration and history: queues, agents, agent events, queue events
    # (queue_log style), callbacks (one open request per number and queue), engine state
    """
    CREATE TABLE queues (
        name        TEXT PRIMARY KEY,
        config      TEXT NOT NULL,
        created_at  REAL,
        updated_at  REAL
    );
    CREATE TABLE agents (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL DEFAULT '',
        skills        TEXT NOT NULL DEFAULT '{}',
        wrap_up       REAL,
        extension     TEXT,
        state         TEXT NOT NULL DEFAULT 'logged_out',
        pause_reason  TEXT,
        state_since   REAL,
        created_at    REAL,
        updated_at    REAL
    );
    CREATE UNIQUE INDEX agents_extension ON agents(extension) WHERE extension IS NOT NULL;
    CREATE TABLE agent_events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        ts      REAL NOT NULL,
        agent   TEXT NOT NULL,
        kind    TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX agent_events_agent ON agent_events(agent, seq);
    CREATE INDEX agent_events_ts ON agent_events(ts);
    CREATE TRIGGER agent_events_append_only_u BEFORE UPDATE ON agent_events
        BEGIN SELECT RAISE(ABORT, 'agent_events is append-only'); END;
    CREATE TRIGGER agent_events_append_only_d BEFORE DELETE ON agent_events
        BEGIN SELECT RAISE(ABORT, 'agent_events is append-only'); END;
    CREATE TABLE queue_events (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        ts       REAL NOT NULL,
        queue    TEXT,
        call_id  TEXT,
        agent    TEXT,
        kind     TEXT NOT NULL,
        data     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX queue_events_ts ON queue_events(ts);
    CREATE INDEX queue_events_queue ON queue_events(queue, ts);
    CREATE INDEX queue_events_call ON queue_events(call_id, seq);
    CREATE TRIGGER queue_events_append_only_u BEFORE UPDATE ON queue_events
        BEGIN SELECT RAISE(ABORT, 'queue_events is append-only'); END;
    CREATE TRIGGER queue_events_append_only_d BEFORE DELETE ON queue_events
        BEGIN SELECT RAISE(ABORT, 'queue_events is append-only'); END;
    CREATE TABLE callbacks (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        number           TEXT NOT NULL,
        queue            TEXT NOT NULL,
        requested_at     REAL NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'dialing', 'done', 'failed')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_attempt_at  REAL,
        call_id          TEXT,
        agent            TEXT,
        result           TEXT,
        merged_count     INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX callbacks_open ON callbacks(number, queue) WHERE status IN ('pending', 'dialing');
    CREATE INDEX callbacks_status ON callbacks(status, requested_at);
    CREATE TABLE acd_state (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_at  REAL
    );
    """,
    # 4: a queue can be dialled by a number from any extension (pypbx.acdlive)
    """
    ALTER TABLE queues ADD COLUMN number TEXT;
    CREATE UNIQUE INDEX queues_number ON queues(number) WHERE number IS NOT NULL;
    """,
    # 5: the front line (issue 5): opening hours, IVR menus, callers, voicemail, surveys
    """
    CREATE TABLE schedules (
        name        TEXT PRIMARY KEY,
        tz          TEXT NOT NULL,
        week        TEXT NOT NULL DEFAULT '{}',
        holidays    TEXT NOT NULL DEFAULT '[]',
        updated_at  REAL
    );
    CREATE TABLE ivr_menus (
        name        TEXT PRIMARY KEY,
        number      TEXT,
        config      TEXT NOT NULL,
        updated_at  REAL
    );
    CREATE UNIQUE INDEX ivr_menus_number ON ivr_menus(number) WHERE number IS NOT NULL;
    CREATE TABLE callers (
        number        TEXT PRIMARY KEY,
        name          TEXT,
        patient_id    TEXT,
        first_seen    REAL,
        last_seen     REAL,
        calls         INTEGER NOT NULL DEFAULT 0,
        last_outcome  TEXT,
        last_agent    TEXT,
        last_call_id  TEXT,
        imported_at   REAL
    );
    CREATE TABLE voicemail_boxes (
        box           TEXT PRIMARY KEY,
        number        TEXT,
        on_no_answer  INTEGER NOT NULL DEFAULT 0,
        max_seconds   REAL NOT NULL DEFAULT 120,
        created_at    REAL
    );
    CREATE UNIQUE INDEX voicemail_boxes_number ON voicemail_boxes(number) WHERE number IS NOT NULL;
    CREATE TABLE voicemail (
        id           TEXT PRIMARY KEY,
        box          TEXT NOT NULL,
        caller       TEXT,
        did          TEXT,
        call_id      TEXT,
        received_at  REAL NOT NULL,
        seconds      REAL,
        path         TEXT NOT NULL,
        heard        INTEGER NOT NULL DEFAULT 0,
        deleted_at   REAL
    );
    CREATE INDEX voicemail_box ON voicemail(box, received_at);
    CREATE TABLE surveys (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id  TEXT NOT NULL,
        agent    TEXT,
        queue    TEXT,
        score    INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
        ts       REAL NOT NULL
    );
    CREATE INDEX surveys_agent ON surveys(agent, ts);
    """,
    # 6: SIP trunks, DIDs (numbers patients dial), extensions' outbound permissions (pypbx.trunks)
    """
    CREATE TABLE trunks (
        name            TEXT PRIMARY KEY,
        host            TEXT NOT NULL,
        port            INTEGER NOT NULL DEFAULT 5060,
        transport       TEXT NOT NULL DEFAULT 'udp',
        username        TEXT,
        password        TEXT,
        auth_username   TEXT,
        domain          TEXT,
        register        INTEGER NOT NULL DEFAULT 0,
        expires         INTEGER NOT NULL DEFAULT 3600,
        priority        INTEGER NOT NULL DEFAULT 10,
        caller_id       TEXT,
        number_format   TEXT NOT NULL DEFAULT 'e164',
        strip_prefix    TEXT NOT NULL DEFAULT '',
        add_prefix      TEXT NOT NULL DEFAULT '',
        max_channels    INTEGER NOT NULL DEFAULT 0,
        inbound_ips     TEXT NOT NULL DEFAULT '[]',
        enabled         INTEGER NOT NULL DEFAULT 1,
        created_at      REAL,
        updated_at      REAL
    );
    CREATE TABLE dids (
        number        TEXT PRIMARY KEY,
        destination   TEXT NOT NULL,
        service_line  TEXT NOT NULL DEFAULT '',
        trunk         TEXT,
        created_at    REAL
    );
    CREATE TABLE extension_permissions (
        number        TEXT PRIMARY KEY,
        classes       TEXT NOT NULL,
        max_outbound  INTEGER,
        updated_at    REAL
    );
    """,
    # 7: ring groups (pypbx.groups); a DID's smart routing: known / new callers (pypbx.trunks)
    """
    CREATE TABLE ring_groups (
        name        TEXT PRIMARY KEY,
        members     TEXT NOT NULL DEFAULT '[]',
        strategy    TEXT NOT NULL DEFAULT 'all',
        ring_time   REAL NOT NULL DEFAULT 20,
        then_dest   TEXT NOT NULL DEFAULT '',
        created_at  REAL
    );
    ALTER TABLE dids ADD COLUMN known_dest TEXT;
    ALTER TABLE dids ADD COLUMN new_dest TEXT;
    """,
    # 8: voicemail notifications (pypbx.notify): a mailbox's e-mail addresses; the durable outbox
    """
    ALTER TABLE voicemail_boxes ADD COLUMN email TEXT NOT NULL DEFAULT '';
    CREATE TABLE notifications (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        kind             TEXT NOT NULL,
        channel          TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
        target           TEXT NOT NULL,
        payload          TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
        created_at       REAL NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL NOT NULL,
        sent_at          REAL,
        last_error       TEXT
    );
    CREATE INDEX notifications_due ON notifications(status, next_attempt_at);
    """,
    # 9: routing rules (pypbx.routing): named routes, each an ordered list of rules
    """
    CREATE TABLE routes (
        name        TEXT PRIMARY KEY,
        tz          TEXT NOT NULL DEFAULT 'UTC',
        created_at  REAL
    );
    CREATE TABLE route_rules (
        route        TEXT NOT NULL REFERENCES routes(name) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        conditions   TEXT NOT NULL DEFAULT '[]',
        destination  TEXT NOT NULL,
        options      TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (route, position)
    );
    """,
    # 10: a TLS trunk may opt out of certificate verification (pypbx.trunks, sip.server.TlsPeer)
    """
    ALTER TABLE trunks ADD COLUMN tls_verify INTEGER NOT NULL DEFAULT 1;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

REGISTRATION_FIELDS: tuple[str, ...] = (
    "aor", "contact", "instance", "reg_id", "call_id", "cseq", "expires_at", "q",
    "source_transport", "source_host", "source_port", "local", "user_agent", "registered_at",
)
EXTENSION_FIELDS: tuple[str, ...] = (
    "number", "name", "realm", "ha1_md5", "ha1_sha256", "enabled", "created_at", "updated_at",
)


CALL_FIELDS: tuple[str, ...] = (
    "id", "sip_call_id", "direction", "caller_number", "caller_name", "callee_number", "callee_name",
    "did", "service_line", "extension", "queue", "agent", "offered_at", "answered_at", "ended_at",
    "ring_seconds", "talk_seconds", "hangup_side", "hangup_cause", "disposition", "flags", "worker",
)
RECORDING_FIELDS: tuple[str, ...] = (
    "call_id", "path", "status", "seconds", "sample_rate", "channels", "sha256", "bytes",
    "created_at", "detail",
)
AGENT_FIELDS: tuple[str, ...] = (
    "id", "name", "skills", "wrap_up", "extension", "state", "pause_reason", "state_since",
    "created_at", "updated_at",
)
CALLBACK_FIELDS: tuple[str, ...] = (
    "id", "number", "queue", "requested_at", "status", "attempts", "last_attempt_at", "call_id",
    "agent", "result", "merged_count",
)


class DBError(Exception):
    """A database problem worth one line to the user."""


class SchemaTooNewError(DBError):
    pass


class IntegrityError(DBError):
    """A constraint was violated (duplicate primary key, foreign key ...)."""


@contextmanager
def _sql_errors() -> Iterator[None]:
    """sqlite3 exceptions -> IntegrityError / DBError (one line), so callers need not know SQLite."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        raise IntegrityError(str(e)) from None
    except sqlite3.Error as e:
        raise DBError(f"database error: {e}") from None


def _split_sql(script: str) -> list[str]:
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


async def _user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0])


async def _migrate(conn: aiosqlite.Connection, path: Path) -> int:
    while True:
        version = await _user_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"database {path} has schema version {version}, newer than this pypbx supports "
                f"({SCHEMA_VERSION}); upgrade pypbx")
        if version == SCHEMA_VERSION:
            return version
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if await _user_version(conn) != version:   # someone else migrated meanwhile
                await conn.execute("ROLLBACK")
                continue
            for stmt in _split_sql(MIGRATIONS[version]):
                await conn.execute(stmt)
            await conn.execute(f"PRAGMA user_version = {version + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise


@asynccontextmanager
async def open_db(path: str | Path) -> AsyncIterator["Database"]:
    """Open (creating the file and its directory if needed) and migrate; close on exit."""
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
            version = await _migrate(conn, p)
        except sqlite3.DatabaseError as e:
            raise DBError(f"cannot open database {p}: {e}") from None
        yield Database(conn, p, version)
    finally:
        await conn.close()


async def data_version(db: "Database") -> int:
    """``PRAGMA data_version``: changes whenever ANOTHER connection commits to the database.

    The running PBX polls this (cheap) to notice changes made by the CLI and reload."""
    return await db.data_version()


class Database:
    """One connection. Safe to share between tasks of one event loop (writes are serialised)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, schema_version: int):
        self._conn = conn
        self.path = path
        self.schema_version = schema_version
        self._write_lock = asyncio.Lock()

    # ------------------------------------------------------------------ generic
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Database"]:
        """``async with db.transaction():`` — BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        async with self._write_lock:
            with _sql_errors():
                await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
                with _sql_errors():
                    await self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; returns rowcount. For new tables' code that lives in this module."""
        with _sql_errors():
            async with self._conn.execute(sql, params) as cur:
                return cur.rowcount

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any] | dict[str, Any]]) -> None:
        with _sql_errors():
            await self._conn.executemany(sql, seq)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with _sql_errors():
            async with self._conn.execute(sql, params) as cur:
                return [dict(r) for r in await cur.fetchall()]

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        with _sql_errors():
            async with self._conn.execute(sql, params) as cur:
                r = await cur.fetchone()
        return dict(r) if r is not None else None

    async def data_version(self) -> int:
        async with self._conn.execute("PRAGMA data_version") as cur:
            return int((await cur.fetchone())[0])

    async def journal_mode(self) -> str:
        async with self._conn.execute("PRAGMA journal_mode") as cur:
            return str((await cur.fetchone())[0]).lower()

    # ------------------------------------------------------------------ meta
    async def get_meta(self, key: str) -> str | None:
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction():
            await self.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

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

    # ------------------------------------------------------------------ extensions
    async def insert_extension(self, row: dict[str, Any]) -> None:
        """Raises IntegrityError if the number exists."""
        row = {"name": "", "enabled": 1, **{k: v for k, v in row.items() if v is not None}}
        async with self.transaction():
            await self.execute(
                f"INSERT INTO extensions({', '.join(EXTENSION_FIELDS)}) "
                f"VALUES ({', '.join(':' + f for f in EXTENSION_FIELDS)})",
                {f: row.get(f) for f in EXTENSION_FIELDS})

    async def update_extension_secret(self, number: str, realm: str, ha1_md5: str, ha1_sha256: str,
                                      now: float) -> bool:
        async with self.transaction():
            n = await self.execute(
                "UPDATE extensions SET realm = ?, ha1_md5 = ?, ha1_sha256 = ?, updated_at = ? WHERE number = ?",
                (realm, ha1_md5, ha1_sha256, now, number))
        return n > 0

    async def update_extension_fields(self, number: str, now: float, **fields: Any) -> bool:
        """Set ``name`` and/or ``enabled``."""
        allowed = {"name", "enabled"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if not fields:
            return await self.get_extension_row(number) is not None
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            n = await self.execute(f"UPDATE extensions SET {sets}, updated_at = :now WHERE number = :number",
                                   {**fields, "now": now, "number": number})
        return n > 0

    async def delete_extension(self, number: str) -> bool:
        """Delete the extension and its saved registrations. False if it did not exist."""
        async with self.transaction():
            n = await self.execute("DELETE FROM extensions WHERE number = ?", (number,))
            if n:
                await self.execute("DELETE FROM registrations WHERE aor = ?", (number,))
        return n > 0

    async def get_extension_row(self, number: str) -> dict[str, Any] | None:
        return await self.fetchone(f"SELECT {', '.join(EXTENSION_FIELDS)} FROM extensions WHERE number = ?",
                                   (number,))

    async def list_extension_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall(
            f"SELECT {', '.join(EXTENSION_FIELDS)} FROM extensions ORDER BY length(number), number")

    async def count_extensions(self) -> int:
        row = await self.fetchone("SELECT count(*) AS n FROM extensions")
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------------ registrations
    async def load_registration_rows(self, aor: str | None = None) -> list[dict[str, Any]]:
        cols = ", ".join(REGISTRATION_FIELDS)
        if aor is None:
            return await self.fetchall(f"SELECT {cols} FROM registrations ORDER BY aor, contact")
        return await self.fetchall(f"SELECT {cols} FROM registrations WHERE aor = ? ORDER BY contact", (aor,))

    async def save_registration_rows(self, upserts: Sequence[dict[str, Any]],
                                     deletes: Sequence[tuple[str, str]]) -> None:
        """Apply a batch in one transaction: deletes first, then upserts (insert or replace by (aor, contact))."""
        if not upserts and not deletes:
            return
        cols = ", ".join(REGISTRATION_FIELDS)
        vals = ", ".join(":" + f for f in REGISTRATION_FIELDS)
        sets = ", ".join(f"{f} = excluded.{f}" for f in REGISTRATION_FIELDS if f not in ("aor", "contact"))
        async with self.transaction():
            if deletes:
                await self.executemany("DELETE FROM registrations WHERE aor = ? AND contact = ?",
                                       [(a, c) for a, c in deletes])
            if upserts:
                await self.executemany(
                    f"INSERT INTO registrations({cols}) VALUES ({vals}) "
                    f"ON CONFLICT(aor, contact) DO UPDATE SET {sets}",
                    [{f: u.get(f) for f in REGISTRATION_FIELDS} for u in upserts])

    async def purge_expired_registrations(self, now: float) -> int:
        async with self.transaction():
            return await self.execute("DELETE FROM registrations WHERE expires_at <= ?", (now,))

    # ------------------------------------------------------------------ security events
    async def add_security_events(self, events: Sequence[tuple[float, str, str, str]]) -> None:
        """Append (ts, kind, ip, detail) rows in one transaction."""
        if not events:
            return
        async with self.transaction():
            await self.executemany("INSERT INTO security_events(ts, kind, ip, detail) VALUES (?, ?, ?, ?)",
                                   list(events))

    async def recent_security_events(self, limit: int = 100, since: float | None = None) -> list[dict[str, Any]]:
        if since is None:
            return await self.fetchall("SELECT ts, kind, ip, detail FROM security_events "
                                       "ORDER BY ts DESC LIMIT ?", (limit,))
        return await self.fetchall("SELECT ts, kind, ip, detail FROM security_events WHERE ts >= ? "
                                   "ORDER BY ts DESC LIMIT ?", (since, limit))

    # ------------------------------------------------------------------ calls (CDR)
    async def insert_call(self, row: dict[str, Any], event: tuple[float, str, str]) -> None:
        """A new call record and its first event, in one transaction."""
        async with self.transaction():
            await self.execute(
                f"INSERT INTO calls({', '.join(CALL_FIELDS)}) VALUES ({', '.join(':' + f for f in CALL_FIELDS)})",
                {f: row.get(f) for f in CALL_FIELDS})
            await self.execute("INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                               (row["id"], *event))

    async def update_call(self, call_id: str, fields: dict[str, Any],
                          events: Sequence[tuple[float, str, str]] = ()) -> bool:
        bad = set(fields) - set(CALL_FIELDS) | ({"id"} & set(fields))
        if bad:
            raise ValueError(f"cannot update call fields {sorted(bad)}")
        async with self.transaction():
            n = 1
            if fields:
                sets = ", ".join(f"{k} = :{k}" for k in fields)
                n = await self.execute(f"UPDATE calls SET {sets} WHERE id = :_id", {**fields, "_id": call_id})
            if events:
                await self.executemany("INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                                       [(call_id, *e) for e in events])
        return n > 0

    async def add_call_events(self, events: Sequence[tuple[str, float, str, str]]) -> None:
        if events:
            async with self.transaction():
                await self.executemany("INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                                       list(events))

    async def get_call_row(self, call_id: str) -> dict[str, Any] | None:
        return await self.fetchone(f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE id = ?", (call_id,))

    async def call_event_rows(self, call_id: str) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT seq, ts, kind, detail FROM call_events WHERE call_id = ? ORDER BY seq",
                                   (call_id,))

    async def search_call_rows(self, *, since: float | None = None, until: float | None = None,
                               number: str | None = None, queue: str | None = None, agent: str | None = None,
                               disposition: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = [], []
        if since is not None:
            where.append("offered_at >= ?"); params.append(since)
        if until is not None:
            where.append("offered_at < ?"); params.append(until)
        if number:
            where.append("(caller_number = ? OR callee_number = ?)"); params += [number, number]
        if queue:
            where.append("queue = ?"); params.append(queue)
        if agent:
            where.append("(agent = ? OR extension = ?)"); params += [agent, agent]
        if disposition:
            where.append("disposition = ?"); params.append(disposition)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        cols = ", ".join("c." + f for f in CALL_FIELDS)
        return await self.fetchall(
            f"SELECT {cols}, r.path AS recording_path, r.status AS recording_status, r.seconds AS recording_seconds "
            f"FROM calls c LEFT JOIN recordings r ON r.call_id = c.id {cond.replace('offered_at', 'c.offered_at')} "
            f"ORDER BY c.offered_at DESC LIMIT ?", (*params, limit))

    async def open_call_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall(f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE disposition = 'in_progress'")

    async def call_rows_between(self, since: float | None, until: float | None) -> list[dict[str, Any]]:
        """Every call offered in [since, until), oldest first (pypbx.reports)."""
        return await self.fetchall(
            f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE offered_at >= ? AND offered_at < ? ORDER BY offered_at",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")))

    async def disposition_counts(self, since: float | None, until: float | None) -> dict[str, int]:
        rows = await self.fetchall(
            "SELECT disposition, count(*) AS n FROM calls WHERE offered_at >= ? AND offered_at < ? GROUP BY disposition",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")))
        return {r["disposition"]: int(r["n"]) for r in rows}

    # ------------------------------------------------------------------ recordings
    async def upsert_recording(self, row: dict[str, Any]) -> None:
        cols = ", ".join(RECORDING_FIELDS)
        vals = ", ".join(":" + f for f in RECORDING_FIELDS)
        sets = ", ".join(f"{f} = excluded.{f}" for f in RECORDING_FIELDS if f != "call_id")
        async with self.transaction():
            await self.execute(f"INSERT INTO recordings({cols}) VALUES ({vals}) "
                               f"ON CONFLICT(call_id) DO UPDATE SET {sets}",
                               {f: row.get(f) for f in RECORDING_FIELDS})

    async def get_recording_row(self, call_id: str) -> dict[str, Any] | None:
        return await self.fetchone(f"SELECT {', '.join(RECORDING_FIELDS)} FROM recordings WHERE call_id = ?",
                                   (call_id,))

    async def recording_rows_with_status(self, status: str) -> list[dict[str, Any]]:
        return await self.fetchall(f"SELECT {', '.join(RECORDING_FIELDS)} FROM recordings WHERE status = ?",
                                   (status,))

    # ------------------------------------------------------------------ ACD: queues
    async def insert_queue_row(self, name: str, config: str, now: float) -> None:
        """``config``: QueueConfig.to_dict() as JSON. Raises IntegrityError if the name exists."""
        async with self.transaction():
            await self.execute("INSERT INTO queues(name, config, created_at, updated_at) VALUES (?, ?, ?, ?)",
                               (name, config, now, now))

    async def update_queue_row(self, name: str, config: str, now: float) -> bool:
        async with self.transaction():
            n = await self.execute("UPDATE queues SET config = ?, updated_at = ? WHERE name = ?",
                                   (config, now, name))
        return n > 0

    async def delete_queue_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM queues WHERE name = ?", (name,)) > 0

    async def get_queue_row(self, name: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT name, config, created_at, updated_at FROM queues WHERE name = ?",
                                   (name,))

    async def list_queue_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT name, config, created_at, updated_at FROM queues ORDER BY name")

    # ------------------------------------------------------------------ ACD: agents
    async def insert_agent_row(self, row: dict[str, Any]) -> None:
        """Raises IntegrityError if the id exists."""
        async with self.transaction():
            await self.execute(
                f"INSERT INTO agents({', '.join(AGENT_FIELDS)}) VALUES ({', '.join(':' + f for f in AGENT_FIELDS)})",
                {f: row.get(f) for f in AGENT_FIELDS})

    async def get_agent_row(self, agent_id: str) -> dict[str, Any] | None:
        return await self.fetchone(f"SELECT {', '.join(AGENT_FIELDS)} FROM agents WHERE id = ?", (agent_id,))

    async def get_agent_row_at_extension(self, extension: str) -> dict[str, Any] | None:
        return await self.fetchone(f"SELECT {', '.join(AGENT_FIELDS)} FROM agents WHERE extension = ?",
                                   (extension,))

    async def list_agent_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall(f"SELECT {', '.join(AGENT_FIELDS)} FROM agents ORDER BY id")

    async def update_agent_row(self, agent_id: str, fields: dict[str, Any], now: float,
                               event: tuple[float, str, str] | None = None) -> bool:
        """Set some of name, skills, wrap_up, extension, state, pause_reason, state_since and,
        in the same transaction, append ``event`` = (ts, kind, detail JSON) to agent_events."""
        bad = set(fields) - (set(AGENT_FIELDS) - {"id", "created_at", "updated_at"})
        if bad:
            raise ValueError(f"cannot update agent fields {sorted(bad)}")
        async with self.transaction():
            sets = ", ".join([f"{k} = :{k}" for k in fields] + ["updated_at = :_now"])
            n = await self.execute(f"UPDATE agents SET {sets} WHERE id = :_id", {**fields, "_now": now, "_id": agent_id})
            if n and event is not None:
                await self.execute("INSERT INTO agent_events(ts, agent, kind, detail) VALUES (?, ?, ?, ?)",
                                   (event[0], agent_id, event[1], event[2]))
        return n > 0

    async def delete_agent_row(self, agent_id: str, event: tuple[float, str, str] | None = None) -> bool:
        """Delete the agent (its events stay); ``event`` is appended in the same transaction."""
        async with self.transaction():
            n = await self.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            if n and event is not None:
                await self.execute("INSERT INTO agent_events(ts, agent, kind, detail) VALUES (?, ?, ?, ?)",
                                   (event[0], agent_id, event[1], event[2]))
        return n > 0

    async def add_agent_events(self, events: Sequence[tuple[float, str, str, str]]) -> None:
        """Append (ts, agent, kind, detail JSON) rows."""
        if events:
            async with self.transaction():
                await self.executemany("INSERT INTO agent_events(ts, agent, kind, detail) VALUES (?, ?, ?, ?)",
                                       list(events))

    async def agent_event_rows(self, agent: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        if agent is None:
            return await self.fetchall("SELECT seq, ts, agent, kind, detail FROM agent_events "
                                       "ORDER BY seq DESC LIMIT ?", (limit,))
        return await self.fetchall("SELECT seq, ts, agent, kind, detail FROM agent_events WHERE agent = ? "
                                   "ORDER BY seq DESC LIMIT ?", (agent, limit))

    # ------------------------------------------------------------------ ACD: queue events
    async def add_queue_events(self, events: Sequence[tuple[float, str | None, str | None, str | None, str, str]]
                               ) -> None:
        """Append (ts, queue, call_id, agent, kind, data JSON) rows in one transaction."""
        if events:
            async with self.transaction():
                await self.executemany(
                    "INSERT INTO queue_events(ts, queue, call_id, agent, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
                    list(events))

    async def queue_event_rows(self, *, queue: str | None = None, call_id: str | None = None,
                               agent: str | None = None, kind: str | None = None, since: float | None = None,
                               until: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Oldest first (in the order they were written), at most ``limit`` rows: the newest ones."""
        where, params = [], []
        for col, val in (("queue", queue), ("call_id", call_id), ("agent", agent), ("kind", kind)):
            if val is not None:
                where.append(f"{col} = ?"); params.append(val)
        if since is not None:
            where.append("ts >= ?"); params.append(since)
        if until is not None:
            where.append("ts < ?"); params.append(until)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetchall(
            f"SELECT * FROM (SELECT seq, ts, queue, call_id, agent, kind, data FROM queue_events {cond} "
            f"ORDER BY seq DESC LIMIT ?) ORDER BY seq", (*params, limit))

    # ------------------------------------------------------------------ ACD: callbacks
    async def request_callback_row(self, number: str, queue: str, now: float,
                                   call_id: str | None = None) -> tuple[dict[str, Any], bool]:
        """A callback for (number, queue): the open one (pending or dialing) gets merged_count + 1,
        else a new pending row. Returns (row, merged)."""
        async with self.transaction():
            row = await self.fetchone(
                f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks "
                f"WHERE number = ? AND queue = ? AND status IN ('pending', 'dialing')", (number, queue))
            if row is not None:
                await self.execute("UPDATE callbacks SET merged_count = merged_count + 1 WHERE id = ?", (row["id"],))
                merged = True
                cb_id = row["id"]
            else:
                await self.execute("INSERT INTO callbacks(number, queue, requested_at, status, call_id) "
                                   "VALUES (?, ?, ?, 'pending', ?)", (number, queue, now, call_id))
                merged = False
                got = await self.fetchone("SELECT last_insert_rowid() AS id")
                cb_id = got["id"] if got else None
            new = await self.fetchone(f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks WHERE id = ?", (cb_id,))
        assert new is not None
        return new, merged

    async def update_callback_row(self, cb_id: int, fields: dict[str, Any]) -> bool:
        bad = set(fields) - (set(CALLBACK_FIELDS) - {"id"})
        if bad:
            raise ValueError(f"cannot update callback fields {sorted(bad)}")
        if not fields:
            return await self.get_callback_row(cb_id) is not None
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            return await self.execute(f"UPDATE callbacks SET {sets} WHERE id = :_id", {**fields, "_id": cb_id}) > 0

    async def get_callback_row(self, cb_id: int) -> dict[str, Any] | None:
        return await self.fetchone(f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks WHERE id = ?", (cb_id,))

    async def list_callback_rows(self, statuses: Sequence[str] | None = None, queue: str | None = None,
                                 limit: int = 1000) -> list[dict[str, Any]]:
        """Oldest request first. ``statuses`` None = all."""
        where, params = [], []
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})"); params += list(statuses)
        if queue is not None:
            where.append("queue = ?"); params.append(queue)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetchall(f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks {cond} "
                                   f"ORDER BY requested_at, id LIMIT ?", (*params, limit))

    # ------------------------------------------------------------------ ACD: engine state
    async def save_acd_state_row(self, key: str, value: str, now: float) -> None:
        async with self.transaction():
            await self.execute("INSERT INTO acd_state(key, value, updated_at) VALUES (?, ?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                               "updated_at = excluded.updated_at", (key, value, now))

    async def load_acd_state_row(self, key: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT key, value, updated_at FROM acd_state WHERE key = ?", (key,))

    # ------------------------------------------------------------------ ACD: queue numbers
    async def set_queue_number_row(self, name: str, number: str | None, now: float) -> bool:
        """Raises IntegrityError if another queue has the number."""
        async with self.transaction():
            return await self.execute("UPDATE queues SET number = ?, updated_at = ? WHERE name = ?",
                                      (number, now, name)) > 0

    async def queue_number_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT name, number FROM queues WHERE number IS NOT NULL ORDER BY name")

    # ------------------------------------------------------------------ front line (issue 5)
    # opening hours (pypbx.hours)
    async def upsert_schedule_row(self, name: str, tz: str, week: str, holidays: str, now: float) -> None:
        async with self.transaction():
            await self.execute("INSERT INTO schedules(name, tz, week, holidays, updated_at) VALUES (?, ?, ?, ?, ?) "
                               "ON CONFLICT(name) DO UPDATE SET tz = excluded.tz, week = excluded.week, "
                               "holidays = excluded.holidays, updated_at = excluded.updated_at",
                               (name, tz, week, holidays, now))

    async def get_schedule_row(self, name: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT name, tz, week, holidays, updated_at FROM schedules WHERE name = ?", (name,))

    async def list_schedule_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT name, tz, week, holidays, updated_at FROM schedules ORDER BY name")

    async def delete_schedule_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM schedules WHERE name = ?", (name,)) > 0

    # IVR menus (pypbx.ivr)
    async def upsert_ivr_menu_row(self, name: str, number: str | None, config: str, now: float) -> None:
        """Raises IntegrityError if another menu has the number."""
        async with self.transaction():
            await self.execute("INSERT INTO ivr_menus(name, number, config, updated_at) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT(name) DO UPDATE SET number = excluded.number, config = excluded.config, "
                               "updated_at = excluded.updated_at", (name, number, config, now))

    async def get_ivr_menu_row(self, name: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT name, number, config, updated_at FROM ivr_menus WHERE name = ?", (name,))

    async def list_ivr_menu_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT name, number, config, updated_at FROM ivr_menus ORDER BY name")

    async def delete_ivr_menu_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM ivr_menus WHERE name = ?", (name,)) > 0

    # callers (pypbx.callers)
    async def caller_seen_row(self, number: str, now: float, outcome: str, agent: str | None,
                              call_id: str | None) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO callers(number, first_seen, last_seen, calls, last_outcome, last_agent, last_call_id) "
                "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT(number) DO UPDATE SET "
                "first_seen = COALESCE(callers.first_seen, excluded.first_seen), last_seen = excluded.last_seen, "
                "calls = callers.calls + 1, last_outcome = excluded.last_outcome, "
                "last_agent = COALESCE(excluded.last_agent, callers.last_agent), "
                "last_call_id = excluded.last_call_id", (number, now, now, outcome, agent, call_id))

    async def upsert_patient_rows(self, rows: Sequence[tuple[str, str, str]], now: float) -> int:
        """(number, name, patient_id) rows: new numbers inserted, known ones updated."""
        async with self.transaction():
            await self.executemany(
                "INSERT INTO callers(number, name, patient_id, imported_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET name = excluded.name, patient_id = excluded.patient_id, "
                "imported_at = excluded.imported_at", [(n, nm, pid, now) for n, nm, pid in rows])
        return len(rows)

    async def get_caller_row(self, number: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM callers WHERE number = ?", (number,))

    async def list_caller_rows(self, limit: int = 1000, known_only: bool = False) -> list[dict[str, Any]]:
        cond = "WHERE patient_id IS NOT NULL OR calls > 0" if known_only else ""
        return await self.fetchall(f"SELECT * FROM callers {cond} "
                                   "ORDER BY COALESCE(last_seen, imported_at) DESC, number LIMIT ?", (limit,))

    # voicemail (pypbx.voicemail)
    async def upsert_voicemail_box_row(self, box: str, number: str | None, on_no_answer: bool,
                                       max_seconds: float, now: float) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO voicemail_boxes(box, number, on_no_answer, max_seconds, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(box) DO UPDATE SET number = excluded.number, "
                "on_no_answer = excluded.on_no_answer, max_seconds = excluded.max_seconds",
                (box, number, int(on_no_answer), max_seconds, now))

    async def get_voicemail_box_row(self, box: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM voicemail_boxes WHERE box = ?", (box,))

    async def list_voicemail_box_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM voicemail_boxes ORDER BY box")

    async def delete_voicemail_box_row(self, box: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM voicemail_boxes WHERE box = ?", (box,)) > 0

    async def insert_voicemail_row(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        async with self.transaction():
            await self.execute(f"INSERT INTO voicemail({cols}) VALUES ({', '.join(':' + k for k in row)})", row)

    async def list_voicemail_rows(self, box: str | None = None, include_deleted: bool = False,
                                  unheard_only: bool = False) -> list[dict[str, Any]]:
        where, params = [], []
        if box is not None:
            where.append("box = ?"); params.append(box)
        if not include_deleted:
            where.append("deleted_at IS NULL")
        if unheard_only:
            where.append("heard = 0")
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetchall(f"SELECT * FROM voicemail {cond} ORDER BY received_at, id", params)

    async def get_voicemail_row(self, msg_id: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM voicemail WHERE id = ?", (msg_id,))

    async def update_voicemail_row(self, msg_id: str, **fields: Any) -> bool:
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

    # notifications' outbox (pypbx.notify)
    async def insert_notification_rows(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """All in one transaction; returns their ids."""
        ids = []
        async with self.transaction():
            for r in rows:
                with _sql_errors():
                    async with self._conn.execute(
                            "INSERT INTO notifications(kind, channel, target, payload, created_at, next_attempt_at) "
                            "VALUES (:kind, :channel, :target, :payload, :created_at, :next_attempt_at)", r) as cur:
                        ids.append(int(cur.lastrowid))
        return ids

    async def due_notification_rows(self, now: float, limit: int = 50) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= ? "
                                   "ORDER BY next_attempt_at, id LIMIT ?", (now, limit))

    async def next_notification_due(self) -> float | None:
        row = await self.fetchone("SELECT MIN(next_attempt_at) AS t FROM notifications WHERE status = 'pending'")
        return row["t"] if row else None

    async def get_notification_row(self, nid: int) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM notifications WHERE id = ?", (nid,))

    async def list_notification_rows(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        cond, params = ("WHERE status = ?", [status]) if status else ("", [])
        return await self.fetchall(f"SELECT * FROM notifications {cond} ORDER BY id DESC LIMIT ?", (*params, limit))

    async def update_notification_row(self, nid: int, **fields: Any) -> bool:
        bad = set(fields) - {"status", "attempts", "next_attempt_at", "sent_at", "last_error", "target"}
        if bad:
            raise ValueError(f"cannot update notification fields {sorted(bad)}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            return await self.execute(f"UPDATE notifications SET {sets} WHERE id = :_id", {**fields, "_id": nid}) > 0

    # surveys (pypbx.survey)
    async def insert_survey_row(self, call_id: str, agent: str | None, queue: str | None, score: int,
                                ts: float) -> None:
        async with self.transaction():
            await self.execute("INSERT INTO surveys(call_id, agent, queue, score, ts) VALUES (?, ?, ?, ?, ?)",
                               (call_id, agent, queue, score, ts))

    async def survey_rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if since is not None:
            where.append("ts >= ?"); params.append(since)
        if until is not None:
            where.append("ts < ?"); params.append(until)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetchall(f"SELECT seq, call_id, agent, queue, score, ts FROM surveys {cond} ORDER BY seq",
                                   params)

    # ------------------------------------------------------------------ trunks, DIDs (pypbx.trunks)
    async def insert_trunk_row(self, row: dict[str, Any]) -> None:
        """Raises IntegrityError if the name exists."""
        cols = ", ".join(row)
        async with self.transaction():
            await self.execute(f"INSERT INTO trunks({cols}) VALUES ({', '.join('?' * len(row))})",
                               tuple(row.values()))

    async def update_trunk_row(self, name: str, fields: dict[str, Any]) -> bool:
        if not fields:
            return await self.get_trunk_row(name) is not None
        sets = ", ".join(f"{k} = ?" for k in fields)
        async with self.transaction():
            n = await self.execute(f"UPDATE trunks SET {sets} WHERE name = ?", (*fields.values(), name))
        return n > 0

    async def delete_trunk_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM trunks WHERE name = ?", (name,)) > 0

    async def get_trunk_row(self, name: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM trunks WHERE name = ?", (name,))

    async def list_trunk_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM trunks ORDER BY priority, name")

    async def insert_did_row(self, number: str, destination: str, service_line: str, trunk: str | None,
                             now: float) -> None:
        """Raises IntegrityError if the number exists."""
        async with self.transaction():
            await self.execute("INSERT INTO dids(number, destination, service_line, trunk, created_at) "
                               "VALUES (?, ?, ?, ?, ?)", (number, destination, service_line, trunk, now))

    async def set_did_rule_row(self, number: str, known_dest: str | None, new_dest: str | None) -> None:
        async with self.transaction():
            await self.execute("UPDATE dids SET known_dest = ?, new_dest = ? WHERE number = ?",
                               (known_dest, new_dest, number))

    async def delete_did_row(self, number: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM dids WHERE number = ?", (number,)) > 0

    async def list_did_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM dids ORDER BY number")

    async def set_extension_permissions_row(self, number: str, classes: str, max_outbound: int | None,
                                            now: float) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO extension_permissions(number, classes, max_outbound, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(number) DO UPDATE SET classes = excluded.classes, "
                "max_outbound = excluded.max_outbound, updated_at = excluded.updated_at",
                (number, classes, max_outbound, now))

    async def list_extension_permission_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM extension_permissions ORDER BY number")

    # ------------------------------------------------------------------ front line: the dialplan
    def is_front_line_number_sync(self, number: str) -> bool:
        """An IVR menu or mailbox number? A blocking read-only look (a separate connection),
        for the front door's synchronous routing of a number the CLI added a moment ago."""
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=0.5)
            try:
                hit = con.execute("SELECT 1 FROM ivr_menus WHERE number = ? UNION ALL "
                                  "SELECT 1 FROM voicemail_boxes WHERE number = ?", (number, number)).fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return False
        return hit is not None

    # ------------------------------------------------------------------ ring groups (pypbx.groups)
    async def insert_ring_group_row(self, name: str, members: str, strategy: str, ring_time: float,
                                    then_dest: str, now: float) -> None:
        """Raises IntegrityError if the group exists."""
        async with self.transaction():
            await self.execute("INSERT INTO ring_groups(name, members, strategy, ring_time, then_dest, created_at) "
                               "VALUES (?, ?, ?, ?, ?, ?)", (name, members, strategy, ring_time, then_dest, now))

    async def get_ring_group_row(self, name: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM ring_groups WHERE name = ?", (name,))

    async def list_ring_group_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM ring_groups ORDER BY name")

    async def delete_ring_group_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM ring_groups WHERE name = ?", (name,)) > 0

    # ------------------------------------------------------------------ routing rules (pypbx.routing)
    async def insert_route_row(self, name: str, tz: str, now: float) -> None:
        """Raises IntegrityError if the route exists."""
        async with self.transaction():
            await self.execute("INSERT INTO routes(name, tz, created_at) VALUES (?, ?, ?)", (name, tz, now))

    async def set_route_tz_row(self, name: str, tz: str) -> bool:
        async with self.transaction():
            return await self.execute("UPDATE routes SET tz = ? WHERE name = ?", (tz, name)) > 0

    async def get_route_row(self, name: str) -> dict[str, Any] | None:
        return await self.fetchone("SELECT * FROM routes WHERE name = ?", (name,))

    async def list_route_rows(self) -> list[dict[str, Any]]:
        return await self.fetchall("SELECT * FROM routes ORDER BY name")

    async def delete_route_row(self, name: str) -> bool:
        async with self.transaction():
            await self.execute("DELETE FROM route_rules WHERE route = ?", (name,))
            return await self.execute("DELETE FROM routes WHERE name = ?", (name,)) > 0

    async def list_route_rule_rows(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is None:
            return await self.fetchall("SELECT * FROM route_rules ORDER BY route, position")
        return await self.fetchall("SELECT * FROM route_rules WHERE route = ? ORDER BY position", (name,))

    async def replace_route_rule_rows(self, name: str, rules: Sequence[tuple[str, str, str]]) -> None:
        """The route's rules become ``rules`` ((conditions JSON, destination, options JSON),
        positions 1..n in this order), in one transaction."""
        async with self.transaction():
            await self.execute("DELETE FROM route_rules WHERE route = ?", (name,))
            for i, (conds, dest, opts) in enumerate(rules, start=1):
                await self.execute("INSERT INTO route_rules(route, position, conditions, destination, options) "
                                   "VALUES (?, ?, ?, ?, ?)", (name, i, conds, dest, opts))

    async def update_did_row(self, number: str, fields: dict[str, Any]) -> bool:
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
