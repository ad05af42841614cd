"""Migration 0011: numbers stored before issue 10 become E.164 with the configured region."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from pypbx.db import migrate as M
from pypbx.db import open_db

OLD = [
    # the same patient twice: imported nationally, then seen in calls as the provider sent it
    "INSERT INTO callers(number, name, patient_id, imported_at) VALUES ('06 12 34 56 79', 'Marie', NULL, 5)",
    "INSERT INTO callers(number, calls, first_seen, last_seen, last_outcome, last_agent)"
    " VALUES ('0033612345679', 2, 10, 20, 'answered', 'alice')",
    "INSERT INTO callers(number, calls, first_seen, last_seen, last_outcome)"
    " VALUES ('+33612345679', 1, 30, 40, 'abandoned_queue')",
    "INSERT INTO callers(number, calls, first_seen, last_seen) VALUES ('anonymous', 3, 1, 2)",
    "INSERT INTO callers(number, calls, first_seen, last_seen) VALUES ('1001', 1, 1, 2)",
    "INSERT INTO calls(id, direction, caller_number, callee_number, offered_at, disposition)"
    " VALUES ('c1', 'inbound', '0612345679', '0123456789', 1, 'answered')",
    "INSERT INTO calls(id, direction, caller_number, callee_number, offered_at, disposition)"
    " VALUES ('c2', 'internal', '1001', '1002', 2, 'answered')",
    "INSERT INTO callbacks(number, queue, requested_at, status) VALUES ('0612345679', 'front', 1, 'pending')",
    "INSERT INTO callbacks(number, queue, requested_at, status) VALUES ('+33612345679', 'front', 2, 'pending')",
    "INSERT INTO callbacks(number, queue, requested_at, status) VALUES ('0612345679', 'lab', 3, 'done')",
    "INSERT INTO dids(number, destination, service_line) VALUES ('0123456789', 'external:0612345679', 'Main')",
    "INSERT INTO routes(name) VALUES ('r')",
    "INSERT INTO route_rules(route, position, conditions, destination)"
    ' VALUES (\'r\', 1, \'[{"kind": "caller", "arg": "06"}]\', \'external:0033612345679\')',
    "INSERT INTO voicemail(id, box, caller, did, received_at, path) VALUES ('v1', '1001', '0612345679', '0123456789', 1, 'x')",
    "INSERT INTO extension_permissions(number, classes) VALUES ('1001', 'internal,local,mobile,national,premium')",
]


async def _old_db(path: Path) -> None:
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        assert await M.migrate(conn, path, M.MIGRATIONS[:10]) == 10
        for sql in OLD:
            await conn.execute(sql)
    finally:
        await conn.close()


def test_migration_0011_converts_and_merges(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"

    async def go() -> None:
        await _old_db(path)
        async with open_db(path, "FR") as db:
            callers = {r["number"]: r for r in await db.fetchall("SELECT * FROM callers")}
            assert set(callers) == {"+33612345679", "anonymous", "1001"}
            m = callers["+33612345679"]
            assert (m["name"], m["imported_at"], m["calls"], m["first_seen"], m["last_seen"]) == ("Marie", 5, 3, 10, 40)
            assert (m["last_outcome"], m["last_agent"]) == ("abandoned_queue", "alice")
            calls = {
                r["id"]: (r["caller_number"], r["callee_number"]) for r in await db.fetchall("SELECT * FROM calls")
            }
            assert calls == {"c1": ("+33612345679", "+33123456789"), "c2": ("1001", "1002")}
            cbs = [
                tuple(r.values()) for r in await db.fetchall("SELECT number, queue, status FROM callbacks ORDER BY id")
            ]
            assert cbs == [
                ("+33612345679", "front", "pending"),
                ("+33612345679", "front", "done"),  # merged into the first: nothing left pending twice
                ("+33612345679", "lab", "done"),
            ]
            [did] = await db.fetchall("SELECT number, destination FROM dids")
            assert tuple(did.values()) == ("+33123456789", "external:+33612345679")
            [rule] = await db.fetchall("SELECT destination FROM route_rules")
            assert rule["destination"] == "external:+33612345679"
            [vm] = await db.fetchall("SELECT caller, did FROM voicemail")
            assert tuple(vm.values()) == ("+33612345679", "+33123456789")
            [perm] = await db.fetchall("SELECT classes FROM extension_permissions")
            assert perm["classes"] == "internal,fixed_line,mobile,toll_free,shared_cost,voip,uan,short,premium"

    asyncio.run(go())


def test_migration_0011_uses_the_configured_region(tmp_path: Path) -> None:
    path = tmp_path / "pypbx.db"

    async def go() -> None:
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await M.migrate(conn, path, M.MIGRATIONS[:10])
            await conn.execute("INSERT INTO callers(number, name, imported_at) VALUES ('8 (912) 345-67-89', 'Ivan', 1)")
        finally:
            await conn.close()
        async with open_db(path, "RU") as db:
            assert [r["number"] for r in await db.fetchall("SELECT number FROM callers")] == ["+79123456789"]

    asyncio.run(go())
