"""Changing a DID (``pypbx did edit``): a DID may point to a route, so this checks the
route through :mod:`pypbx.routing`. It lives apart from both stores because
:mod:`pypbx.trunks` (DIDs) imports the live routing, which imports :mod:`pypbx.routing`.

The urgent line (issue 10): a DID's **priority** (``pypbx did add/edit --priority N``, the
``dids.priority`` column; 0 = normal) is the queue priority of its callers: in whatever
queue the call reaches (directly, through a route or an IVR) the caller waits ahead of
callers of lower priority (:class:`acd.model.Caller`); the highest of the DID's, the route
rule's, the IVR option's and the queue's own priority wins (:meth:`pypbx.acdlive.AcdLive.enter_queue`).
"""

from __future__ import annotations

from pypbx import destinations as D
from pypbx import trunks as T
from pypbx.acdstore import AcdError, parse_priority
from pypbx.db import Database
from pypbx.errors import PbxUsageError, UnknownNameError
from pypbx.routing import RoutingError, check_destination
from pypbx.trunks import Did


async def edit_did(
    db: Database,
    number: str,
    *,
    destination: str | None = None,
    known: str | None = None,
    new: str | None = None,
    service_line: str | None = None,
    trunk: str | None = None,
    priority: int | str | None = None,
) -> Did:
    """Change a DID (``None`` = keep; ``known`` / ``new`` ``""`` = clear; ``trunk`` ``""``
    or ``any`` = from any trunk; ``priority`` 0..100). Returns the :class:`pypbx.trunks.Did`."""
    n = T.normalise_did(number, db.region)
    prio = _priority(priority) if priority is not None else None
    current = {d.number: d for d in await T.list_dids(db)}.get(n)
    if current is None:
        raise T.TrunkError(f"no DID {number}")
    fields: dict[str, str | None] = {}

    async def dest(text: str) -> str:
        d = T.parse_destination(text)
        await _require(db, d)
        if d.startswith("route:"):
            try:
                await check_destination(db, d)
            except RoutingError as e:
                raise T.TrunkError(str(e)) from None
        return d

    if destination is not None:
        fields["destination"] = await dest(destination)
    if known is not None:
        fields["known_dest"] = await dest(known) if known else None
    if new is not None:
        fields["new_dest"] = await dest(new) if new else None
    if service_line is not None:
        fields["service_line"] = service_line
    if trunk is not None:
        if trunk in ("", "any"):
            fields["trunk"] = None
        elif await db.get_trunk_row(trunk) is None:
            raise UnknownNameError("trunk", trunk, [r["name"] for r in await db.list_trunk_rows()])
        else:
            fields["trunk"] = trunk
    if not fields and prio is None:
        raise PbxUsageError("nothing to change: give --to, --known, --new, --name, --trunk or --priority")
    if fields:
        await db.update_did_row(n, fields)
    if prio is not None:
        await db.set_did_priority_row(n, prio)
    return {d.number: d for d in await T.list_dids(db)}[n]


async def _require(db: Database, text: str) -> None:
    """A destination that parses must point at something (a missing route: exit 1, as before)."""
    try:
        d = D.parse_destination(text)
    except D.DestinationError:
        return  # trunks says what is wrong with it
    if d.startswith("route:"):
        if await db.get_route_row(d[6:]) is None:
            raise T.TrunkError(f"destination {d}: no route {d[6:]!r} (pypbx route add {d[6:]})")
    else:
        await D.require_destination(db, d)


def _priority(value: int | str) -> int:
    try:
        return parse_priority(value)
    except AcdError as e:
        raise T.TrunkError(str(e)) from None


async def add_did(
    db: Database,
    number: str,
    destination: str | None,
    service_line: str = "",
    trunk: str | None = None,
    *,
    known: str | None = None,
    new: str | None = None,
    priority: int | str | None = None,
) -> Did:
    """``pypbx did add``: :func:`pypbx.trunks.add_did`, then the DID's ``priority``
    (checked first: a bad one adds nothing)."""
    prio = _priority(priority) if priority is not None else 0
    texts = [t for t in (destination, known, new) if t]
    for text in sorted(texts, key=lambda t: not t.strip().startswith("route:")):  # routes' own message first
        await _require(db, text)
    d = await T.add_did(db, number, destination, service_line, trunk, known=known, new=new)
    if prio:
        await db.set_did_priority_row(d.number, prio)
    return d


async def did_priority(db: Database, number: str) -> int:
    """The priority DID ``number`` gives its callers (0: normal, or no such DID)."""
    return await db.get_did_priority_row(number) or 0


async def did_priorities(db: Database) -> dict[str, int]:
    """DID number -> priority, the DIDs that have one (not 0)."""
    return await db.list_did_priority_rows()
