"""pypbx.db migrations/WAL/data_version, and the extensions and registrations stores."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from pypbx import db as dbmod
from pypbx import extensions as E
from pypbx import registrations as R
from pypbx.db import SCHEMA_VERSION, IntegrityError, SchemaTooNewError, data_version, open_db
from pypbx.db import migrate as migmod


def run(coro):
    return asyncio.run(coro)


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------- migrations


def test_fresh_db_is_migrated_to_latest_with_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "pypbx.db"  # parent directory is created

    async def go():
        async with open_db(path) as db:
            assert db.schema_version == SCHEMA_VERSION == len(dbmod.MIGRATIONS)
            assert await db.journal_mode() == "wal"
            fk = await db.fetchone("PRAGMA foreign_keys")
            bt = await db.fetchone("PRAGMA busy_timeout")
            return next(iter(fk.values())), next(iter(bt.values()))

    fk, busy = run(go())
    assert (fk, busy) == (1, 5000)
    assert user_version(path) == SCHEMA_VERSION
    assert {"extensions", "registrations", "security_events", "meta"} <= tables(path)
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(registrations)")]
    ext_cols = [r[1] for r in con.execute("PRAGMA table_info(extensions)")]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    con.close()
    assert cols == list(dbmod.REGISTRATION_FIELDS)
    assert ext_cols == ["number", "name", "realm", "ha1_md5", "ha1_sha256", "enabled", "created_at", "updated_at"]


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"

    async def go():
        async with open_db(path) as db:
            await E.add_extension(db, "1001", "A", "pypbx", "correct horse battery")
        async with open_db(path) as db:
            assert db.schema_version == SCHEMA_VERSION
            return [e.number for e in await E.list_extensions(db)]

    assert run(go()) == ["1001"]
    assert user_version(path) == SCHEMA_VERSION


def test_pending_migrations_applied_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pypbx.db"
    run(_open_close(path))
    extra = (
        migmod.Migration(SCHEMA_VERSION + 1, "t2", sql="CREATE TABLE t2 (x INTEGER); INSERT INTO t2 VALUES (2);"),
        migmod.Migration(
            SCHEMA_VERSION + 2, "t3", sql="CREATE TABLE t3 (y INTEGER); INSERT INTO t3 SELECT x + 1 FROM t2;"
        ),
    )
    monkeypatch.setattr(migmod, "MIGRATIONS", migmod.MIGRATIONS + extra)
    run(_open_close(path))
    assert user_version(path) == SCHEMA_VERSION + 2
    con = sqlite3.connect(path)
    assert con.execute("SELECT y FROM t3").fetchall() == [(3,)]
    con.close()


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pypbx.db"
    run(_open_close(path))
    bad = migmod.Migration(SCHEMA_VERSION + 1, "bad", sql="CREATE TABLE t2 (x); SELECT * FROM nope;")
    monkeypatch.setattr(migmod, "MIGRATIONS", (*migmod.MIGRATIONS, bad))
    with pytest.raises(dbmod.DBError, match="no such table: nope"):
        run(_open_close(path))
    assert user_version(path) == SCHEMA_VERSION
    assert "t2" not in tables(path)


def test_newer_db_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"
    run(_open_close(path))
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNewError) as ei:
        run(_open_close(path))
    assert str(ei.value) == (
        f"database {path} has schema version {SCHEMA_VERSION + 1}, newer than this "
        f"pypbx supports ({SCHEMA_VERSION}); upgrade pypbx"
    )


def test_split_sql_keeps_trigger_bodies() -> None:
    script = "CREATE TABLE a(x); CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO a VALUES (1); SELECT ';'; END; "
    assert migmod.split_sql(script) == [
        "CREATE TABLE a(x);",
        "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO a VALUES (1); SELECT ';'; END;",
    ]


async def _open_close(path: Path) -> None:
    async with open_db(path):
        pass


# --------------------------------------------------------------------------- data_version, meta


def test_data_version_changes_after_another_connection_writes(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"

    async def go():
        async with open_db(path) as pbx, open_db(path) as cli:
            v0 = await data_version(pbx)
            assert await data_version(pbx) == v0  # nothing changed
            await E.add_extension(pbx, "1001", "", "pypbx")  # own writes do not count
            assert await data_version(pbx) == v0
            await E.add_extension(cli, "1002", "", "pypbx")
            v1 = await data_version(pbx)
            assert v1 != v0
            assert set(await E.credentials_map(pbx, "pypbx")) == {"1001", "1002"}
            await E.remove_extension(cli, "1001")
            assert await data_version(pbx) != v1

    run(go())


def test_meta_get_or_create_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"

    async def go():
        async with open_db(path) as db:
            a = await db.get_or_create_meta("nonce_secret", lambda: "first")
            b = await db.get_or_create_meta("nonce_secret", lambda: "second")
            await db.set_meta("k", "v1")
            await db.set_meta("k", "v2")
            return a, b, await db.get_meta("k"), await db.get_meta("missing")

    assert run(go()) == ("first", "first", "v2", None)
    assert run(_meta(path)) == "first"


async def _meta(path: Path) -> str | None:
    async with open_db(path) as db:
        return await db.get_meta("nonce_secret")


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            with pytest.raises(RuntimeError):
                async with db.transaction():
                    await db.execute("INSERT INTO meta(key, value) VALUES ('a', 'b')")
                    raise RuntimeError("boom")
            assert await db.get_meta("a") is None
            await db.insert_extension({"number": "10", "realm": "r", "ha1_md5": "x", "ha1_sha256": "y"})
            with pytest.raises(IntegrityError):
                await db.insert_extension({"number": "10", "realm": "r", "ha1_md5": "x", "ha1_sha256": "y"})

    run(go())


def test_security_events(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await db.add_security_events(
                [(1.0, "ban", "192.0.2.1", "5 auth failures"), (2.0, "scanner", "192.0.2.2", "friendly-scanner")]
            )
            return await db.recent_security_events(), await db.recent_security_events(since=1.5)

    allev, recent = run(go())
    assert [e["kind"] for e in allev] == ["scanner", "ban"]
    assert recent == [{"ts": 2.0, "kind": "scanner", "ip": "192.0.2.2", "detail": "friendly-scanner"}]


# --------------------------------------------------------------------------- extensions


def test_ha1_matches_hand_computed_values() -> None:
    assert E.ha1("1001", "pypbx", "secret-pass-1") == hashlib.md5(b"1001:pypbx:secret-pass-1").hexdigest()
    assert E.ha1("1001", "pypbx", "secret-pass-1", "SHA-256") == hashlib.sha256(b"1001:pypbx:secret-pass-1").hexdigest()
    # RFC 2617 §3.5 example: Mufasa / testrealm@host.com / Circle Of Life
    assert E.ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"
    # RFC 7616 §3.9.1 example (SHA-256): Mufasa / http-auth@example.org / Circle of Life
    assert (
        E.ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
        == "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
    )
    with pytest.raises(ValueError):
        E.ha1("a", "b", "c", "SHA-512")


def test_add_extension_stores_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"

    async def go():
        async with open_db(path) as db:
            ext, pw = await E.add_extension(db, "1001", "Reception", "pypbx", "correct horse battery")
            creds = await E.credentials_map(db, "pypbx")
            return ext, pw, creds

    ext, pw, creds = run(go())
    assert pw == "correct horse battery"
    assert (ext.number, ext.name, ext.enabled, ext.realm) == ("1001", "Reception", True, "pypbx")
    assert ext.created_at == ext.updated_at and abs(ext.created_at - time.time()) < 60
    assert creds == {
        "1001": {
            "MD5": hashlib.md5(b"1001:pypbx:correct horse battery").hexdigest(),
            "SHA-256": hashlib.sha256(b"1001:pypbx:correct horse battery").hexdigest(),
        }
    }
    assert b"correct horse battery" not in path.read_bytes()
    assert "ha1" not in str(ext.to_dict())


def test_generated_passwords() -> None:
    pws = {E.generate_password() for _ in range(200)}
    assert len(pws) == 200
    for pw in pws:
        assert len(pw) >= 16
        assert set(pw) <= set(E.PASSWORD_ALPHABET)
        assert not set(pw) & set("0O1lI")
    assert len(E.generate_password(8)) == 16


@pytest.mark.parametrize("number", ["1", "123456789", "10a", "", "+1001", "10 01"])
def test_bad_numbers(tmp_path: Path, number: str) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await E.add_extension(db, number, "", "pypbx")

    with pytest.raises(E.ExtensionError, match=r"^bad extension number .*: expected 2-8 digits$"):
        run(go())


def test_extension_errors(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await E.add_extension(db, "10", "", "pypbx")
            await E.add_extension(db, "12345678", "", "pypbx")
            errors = []
            for coro in (
                E.add_extension(db, "10", "", "pypbx"),
                E.add_extension(db, "11", "", "pypbx", "short"),
                E.get_extension(db, "99"),
                E.set_password(db, "99", "pypbx"),
                E.set_password(db, "10", "pypbx", "123456789"),
                E.remove_extension(db, "99"),
            ):
                try:
                    await coro
                except E.ExtensionError as e:
                    errors.append(str(e))
            return errors, [e.number for e in await E.list_extensions(db)]

    errors, numbers = run(go())
    weak = "password too weak: at least 10 characters needed (omit --password to generate a strong one)"
    assert errors == [
        "extension 10 already exists",
        weak,
        "extension 99 not found",
        "extension 99 not found",
        weak,
        "extension 99 not found",
    ]
    assert numbers == ["10", "12345678"]


def test_set_password_changes_hashes_and_realm(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await E.add_extension(db, "1001", "", "old", "first-password")
            assert await E.credentials_map(db, "pypbx") == {}  # made for another realm
            pw = await E.set_password(db, "1001", "pypbx")
            return pw, await E.credentials_map(db, "pypbx"), await E.get_extension(db, "1001")

    pw, creds, ext = run(go())
    assert len(pw) >= 16
    assert creds["1001"]["MD5"] == hashlib.md5(f"1001:pypbx:{pw}".encode()).hexdigest()
    assert creds["1001"]["SHA-256"] == hashlib.sha256(f"1001:pypbx:{pw}".encode()).hexdigest()
    assert ext.realm == "pypbx" and ext.updated_at >= ext.created_at


def test_disabled_extensions_have_no_credentials(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await E.add_extension(db, "1001", "", "pypbx")
            ext = await E.set_enabled(db, "1001", False)
            renamed = await E.set_name(db, "1001", "Lab")
            return ext, renamed, await E.credentials_map(db, "pypbx")

    ext, renamed, creds = run(go())
    assert ext.enabled is False and renamed.name == "Lab" and creds == {}


def test_list_is_in_numeric_order(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            for n in ("200", "1001", "20", "1000"):
                await E.add_extension(db, n, "", "pypbx")
            return [e.number for e in await E.list_extensions(db)]

    assert run(go()) == ["20", "200", "1000", "1001"]


# --------------------------------------------------------------------------- registrations


def reg(aor: str, contact: str, expires_at: float, **kw) -> dict:
    return {
        "aor": aor,
        "contact": contact,
        "expires_at": expires_at,
        "call_id": "c1",
        "cseq": 1,
        "source_transport": "UDP",
        "source_host": "192.0.2.10",
        "source_port": 5060,
        **kw,
    }


def test_registrations_save_load_delete_purge(tmp_path: Path) -> None:
    now = 1_000_000.0

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await R.save_registrations(
                db,
                [
                    reg("1001", "sip:a@192.0.2.10", now + 60),
                    reg("1001", "sip:b@192.0.2.11", now - 1),
                    reg("1002", "sip:c@192.0.2.12", now + 600, user_agent="Yealink"),
                ],
                [],
            )
            # update one (same aor+contact), delete another, in one batch
            await R.save_registrations(
                db,
                [reg("1001", "sip:a@192.0.2.10", now + 3600, cseq=2)],
                [("1002", "sip:c@192.0.2.12"), ("9999", "sip:none@x")],
            )
            first = await R.load_registrations(db)
            only = await R.load_registrations(db, "1001")
            purged = await R.purge_expired(db, now)
            after = await R.load_registrations(db)
            return first, only, purged, after

    first, only, purged, after = run(go())
    assert [(r["aor"], r["contact"], r["cseq"], r["expires_at"]) for r in first] == [
        ("1001", "sip:a@192.0.2.10", 2, now + 3600),
        ("1001", "sip:b@192.0.2.11", 1, now - 1),
    ]
    assert set(first[0]) == set(dbmod.REGISTRATION_FIELDS)
    assert first[0]["instance"] is None and first[0]["source_port"] == 5060
    assert len(only) == 2
    assert purged == 1
    assert [r["contact"] for r in after] == ["sip:a@192.0.2.10"]


def test_registrations_reject_unknown_fields(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await R.save_registrations(db, [{"aor": "1", "contact": "sip:x", "expiry": 5}], [])

    with pytest.raises(ValueError, match="unknown registration field"):
        run(go())


def test_removing_an_extension_removes_its_saved_registrations(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await E.add_extension(db, "1001", "", "pypbx")
            await R.save_registrations(db, [reg("1001", "sip:a@x", 10.0), reg("1002", "sip:b@x", 10.0)], [])
            await E.remove_extension(db, "1001")
            return [r["aor"] for r in await R.load_registrations(db)]

    assert run(go()) == ["1002"]


def test_locked_database_is_a_one_line_db_error(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"
    run(_open_close(path))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def go():
        async with open_db(path) as db:
            await db.execute("PRAGMA busy_timeout = 50")
            with pytest.raises(dbmod.DBError) as ei:
                await E.add_extension(db, "1001", "", "pypbx")
            assert str(ei.value) == "database error: database is locked"
            other.execute("ROLLBACK")
            await E.add_extension(db, "1001", "", "pypbx")  # connection still usable
            return [e.number for e in await E.list_extensions(db)]

    try:
        assert run(go()) == ["1001"]
    finally:
        other.close()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(dbmod.DBError, match=r"^cannot open database .*: file is not a database$"):
        run(_open_close(path))
