"""Changing a DID (``pypbx did edit``): a DID may point to a route, so this checks the
route through :mod:`pypbx.routing`. It lives apart from both stores because
:mod:`pypbx.trunks` (DIDs) imports the live routing, which imports :mod:`pypbx.routing`."""

from __future__ import annotations

from pypbx import trunks as T
from pypbx.db import Database
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
) -> Did:
    """Change a DID (``None`` = keep; ``known`` / ``new`` ``""`` = clear; ``trunk`` ``""``
    or ``any`` = from any trunk). Returns the :class:`pypbx.trunks.Did`."""
    n = T.normalise_did(number, db.region)
    current = {d.number: d for d in await T.list_dids(db)}.get(n)
    if current is None:
        raise T.TrunkError(f"no DID {number}")
    fields: dict[str, str | None] = {}

    async def dest(text: str) -> str:
        d = T.parse_destination(text)
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
            raise T.TrunkError(f"no trunk named {trunk!r}")
        else:
            fields["trunk"] = trunk
    if not fields:
        raise T.TrunkError("nothing to change: give --to, --known, --new, --name or --trunk")
    await db.update_did_row(n, fields)
    return {d.number: d for d in await T.list_dids(db)}[n]
