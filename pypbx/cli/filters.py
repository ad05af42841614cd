"""Filters of listings and reports checked against what exists: an unknown queue, agent,
extension, disposition or service line is one line naming it and the closest valid ones,
exit 2 (an empty but valid result still exits 0)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec

from pypbx.check import schedule_users
from pypbx.db import Database
from pypbx.destinations import refuse_if_used
from pypbx.errors import InUseError, UnknownNameError
from pypbx.events import Disposition

P = ParamSpec("P")


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
