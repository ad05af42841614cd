"""Filters of listings and reports checked against what exists: an unknown queue, agent,
extension, disposition or service line is one line naming it and the closest valid ones,
exit 2 (an empty but valid result still exits 0). The same for the object a single-object
command names (``ext show 1009``, ``queue edit frnt``): :func:`require_name`, :func:`found`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import click

from pypbx.check import schedule_users
from pypbx.cli.context import on_db
from pypbx.db import Database, DBError
from pypbx.destinations import refuse_if_used
from pypbx.errors import InUseError, PbxError, PbxUsageError, UnknownNameError
from pypbx.events import Disposition

P = ParamSpec("P")
T = TypeVar("T")


def check_disposition(value: str | None) -> None:
    if value is not None and value not in {d.value for d in Disposition}:
        raise UnknownNameError("disposition", value, [d.value for d in Disposition])


async def check_filters(
    db: Database,
    *,
    queue: str | None = None,
    agent: str | None = None,
    disposition: str | None = None,
    service_line: str | None = None,
    extension: str | None = None,
) -> None:
    """Raise :class:`~pypbx.errors.UnknownNameError` for the first filter naming nothing
    (valid: what exists now, or what the call records name -- a queue removed since)."""
    check_disposition(disposition)
    if queue is not None:
        names = [r["name"] for r in await db.list_queue_rows()] + await db.history_names("queue")
        if queue not in names:
            raise UnknownNameError("queue", queue, names)
    exts = [r["number"] for r in await db.list_extension_rows()] if agent or extension else []
    if agent is not None:
        names = [r["id"] for r in await db.list_agent_rows()] + exts + await db.history_names("agent")
        if agent not in names:
            raise UnknownNameError("agent", agent, names)
    if extension is not None and extension not in exts and extension not in await db.history_names("extension"):
        raise UnknownNameError("extension", extension, exts)
    if service_line is not None:
        lines = [r["service_line"] for r in await db.list_did_rows() if r["service_line"]]
        lines += await db.history_names("service_line")
        if service_line not in lines:
            raise UnknownNameError("service line", service_line, lines)


async def remove_unused(
    db: Database,
    dest: str,
    remove: Callable[Concatenate[Database, P], Awaitable[object]],
    *args: P.args,
    **kw: P.kwargs,
) -> None:
    """``remove(db, *args)`` unless something still points to ``dest`` (``queue:front``):
    then :class:`~pypbx.errors.InUseError` naming what does."""
    if dest.startswith("schedule:"):
        used = await schedule_users(db, dest.partition(":")[2])
        if used:
            raise InUseError(f"schedule {dest.partition(':')[2]} is in use by {', '.join(used)}: change them first")
    else:
        await refuse_if_used(db, dest)
    await remove(db, *args, **kw)


# --------------------------------------------------------------------------- single objects

#: The names each kind of object can be called by, for ``require_name``.
_NAMES: dict[str, Callable[[Database], Awaitable[list[str]]]] = {}


def _names(kind: str) -> Callable[[Callable[[Database], Awaitable[list[str]]]], None]:
    def register(f: Callable[[Database], Awaitable[list[str]]]) -> None:
        _NAMES[kind] = f

    return register


@_names("extension")
async def _extensions(db: Database) -> list[str]:
    return [r["number"] for r in await db.list_extension_rows()]


@_names("agent")
async def _agents(db: Database) -> list[str]:
    return [r["id"] for r in await db.list_agent_rows()]


@_names("queue")
async def _queues(db: Database) -> list[str]:
    return [r["name"] for r in await db.list_queue_rows()]


@_names("IVR menu")
async def _menus(db: Database) -> list[str]:
    return [r["name"] for r in await db.list_ivr_menu_rows()]


@_names("ring group")
async def _groups(db: Database) -> list[str]:
    return [r["name"] for r in await db.list_ring_group_rows()]


@_names("route")
async def _routes(db: Database) -> list[str]:
    return [r["name"] for r in await db.list_route_rows()]


@_names("trunk")
async def _trunks(db: Database) -> list[str]:
    return [r["name"] for r in await db.list_trunk_rows()]


@_names("schedule")
async def _schedules(db: Database) -> list[str]:
    return [r["name"] for r in await db.list_schedule_rows()]


@_names("reason")
async def _reasons(db: Database) -> list[str]:
    return [r["code"] for r in await db.list_reason_rows()]


@_names("mailbox")
async def _boxes(db: Database) -> list[str]:
    return [r["box"] for r in await db.list_voicemail_box_rows()]


async def require_name(db: Database, kind: str, name: str) -> None:
    """A single-object command naming something that does not exist: one line naming it and
    the closest valid names, exit 2 (:class:`~pypbx.errors.UnknownNameError`) -- before the
    command does anything."""
    names = await _NAMES[kind](db)
    if name.strip() not in names:
        raise UnknownNameError(kind, name, names)


async def found(
    db: Database, get: Callable[Concatenate[Database, P], Awaitable[T]], *args: P.args, **kw: P.kwargs
) -> T:
    """``await get(db, ...)``, where ``get``'s only domain error says the object does not
    exist or the input is wrong (a voicemail message, a call, a missed-caller task, a route
    rule's position or condition): that error is bad input, exit 2. A database failure
    stays exit 1."""
    try:
        return await get(db, *args, **kw)
    except DBError:
        raise
    except PbxError as e:
        raise PbxUsageError(str(e)) from None


def require(ctx: click.Context, kind: str, name: str) -> None:
    """:func:`require_name` on the command's database."""
    on_db(ctx, require_name, kind, name)
