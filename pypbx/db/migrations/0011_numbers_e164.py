"""11: every stored phone number in E.164 (issue 10), converted with the site's region.

Callers (two rows that turn out to be one number are merged: counters added, the patient
data and the latest call kept), call records (caller and callee numbers), callbacks (an
open request that would duplicate another for the same queue is closed as ``done``),
DIDs (and ``external:`` destinations of DIDs and route rules), voicemail (caller, DID),
and extension permissions (the old class names ``national`` / ``local`` expanded).
Strings that are not phone numbers (extensions, ``anonymous``) are left as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiosqlite

from pypbx.numbers import e164, expand_classes

if TYPE_CHECKING:
    from pypbx.db.migrate import MigrationContext


def _external(dest: str | None, region: str) -> str | None:
    if dest is None or not dest.startswith("external:"):
        return dest
    return "external:" + e164(dest[len("external:") :], region)


async def _rows(conn: aiosqlite.Connection, sql: str) -> list[aiosqlite.Row]:
    async with conn.execute(sql) as cur:
        return list(await cur.fetchall())


async def _callers(conn: aiosqlite.Connection, region: str) -> None:
    rows = await _rows(conn, "SELECT * FROM callers ORDER BY COALESCE(last_seen, 0), number")
    merged: dict[str, dict[str, object]] = {}
    for r in rows:
        d = dict(r)
        n = e164(str(d["number"]), region)
        d["number"] = n
        old = merged.get(n)
        if old is None:
            merged[n] = d
            continue
        # rows come oldest-first: the later row's "last" fields win, the counters add up
        old["calls"] = int(str(old["calls"] or 0)) + int(str(d["calls"] or 0))
        firsts = [x for x in (old["first_seen"], d["first_seen"]) if isinstance(x, (int, float))]
        old["first_seen"] = min(firsts) if firsts else None
        for k in ("last_seen", "last_outcome", "last_call_id"):
            if d[k] is not None:
                old[k] = d[k]
        for k in ("last_agent", "name", "patient_id", "imported_at"):
            if d[k]:
                old[k] = d[k]
    if len(merged) == len(rows) and all(r["number"] == e164(str(r["number"]), region) for r in rows):
        return
    cols = list(rows[0].keys())
    await conn.execute("DELETE FROM callers")
    await conn.executemany(
        f"INSERT INTO callers({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [tuple(d[c] for c in cols) for d in merged.values()],
    )


async def _callbacks(conn: aiosqlite.Connection, region: str) -> None:
    open_seen: set[tuple[str, str]] = set()
    renumber: list[tuple[str, int]] = []
    for r in await _rows(conn, "SELECT id, number, queue, status FROM callbacks ORDER BY requested_at, id"):
        n = e164(str(r["number"]), region)
        if r["status"] in ("pending", "dialing"):
            if (n, r["queue"]) in open_seen:  # a second open request for one number: merged
                await conn.execute("UPDATE callbacks SET status = 'done', result = 'merged' WHERE id = ?", (r["id"],))
            open_seen.add((n, r["queue"]))
        if n != r["number"]:
            renumber.append((n, r["id"]))
    await conn.executemany("UPDATE callbacks SET number = ? WHERE id = ?", renumber)


async def _dids(conn: aiosqlite.Connection, region: str) -> None:
    taken = {str(r["number"]) for r in await _rows(conn, "SELECT number FROM dids")}
    for r in await _rows(conn, "SELECT number, destination, known_dest, new_dest FROM dids"):
        n = e164(str(r["number"]), region)
        if n != r["number"] and n in taken:
            n = r["number"]  # two DIDs for one number: keep the second as it was
        taken.add(n)
        await conn.execute(
            "UPDATE dids SET number = ?, destination = ?, known_dest = ?, new_dest = ? WHERE number = ?",
            (
                n,
                _external(r["destination"], region),
                _external(r["known_dest"], region),
                _external(r["new_dest"], region),
                r["number"],
            ),
        )
    for r in await _rows(conn, "SELECT route, position, destination FROM route_rules"):
        await conn.execute(
            "UPDATE route_rules SET destination = ? WHERE route = ? AND position = ?",
            (_external(r["destination"], region), r["route"], r["position"]),
        )


async def migrate(conn: aiosqlite.Connection, context: MigrationContext) -> None:
    region = context.region
    await conn.create_function("pypbx_e164", 1, lambda n: e164(n, region) if isinstance(n, str) else n)
    await _callers(conn, region)
    await conn.execute(
        "UPDATE calls SET caller_number = pypbx_e164(caller_number), callee_number = pypbx_e164(callee_number)"
    )
    await _callbacks(conn, region)
    await _dids(conn, region)
    await conn.execute("UPDATE voicemail SET caller = pypbx_e164(caller), did = pypbx_e164(did)")
    for r in await _rows(conn, "SELECT number, classes FROM extension_permissions"):
        classes = ",".join(expand_classes([c for c in str(r["classes"]).split(",") if c]))
        await conn.execute("UPDATE extension_permissions SET classes = ? WHERE number = ?", (classes, r["number"]))
