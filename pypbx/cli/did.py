"""``pypbx did``: the numbers patients dial, each to a destination and a service line."""

from __future__ import annotations

from dataclasses import asdict

import click

from pypbx import trunks as T
from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import done, echo_json, json_option, table
from pypbx.db import Database
from pypbx.destinations import require_destination
from pypbx.dids import add_did, did_priorities, edit_did
from pypbx.errors import PbxUsageError, UnknownNameError
from pypbx.trunks import Did


def _routing(d: T.Did) -> str:
    return f"known callers -> {d.route(True)}, new callers -> {d.route(False)}" if d.smart else d.destination


_PRIORITY_HELP = (
    "Urgent line: the queue priority 0-100 of this DID's callers (higher is answered first, "
    "ahead of callers already waiting; default 0)."
)


def _prio(priority: int) -> str:
    return f", priority {priority}" if priority else ""


async def _dids(db: Database) -> tuple[list[Did], dict[str, int]]:
    return await T.list_dids(db), await did_priorities(db)


@click.group("did")
@config_option
def did_group() -> None:
    """DIDs: the numbers patients dial, each to a destination and a service line."""


@did_group.command("add")
@config_option
@click.argument("number")
@click.option(
    "--to",
    "destination",
    default=None,
    help="extension:1001, queue:NAME, ivr:MENU, voicemail:BOX, group:NAME, external:NUMBER "
    "or route:NAME (routing rules: pypbx route)",
)
@click.option(
    "--known",
    default=None,
    metavar="DEST",
    help="Smart routing: returning patients (imported list, or called before) go here.",
)
@click.option("--new", default=None, metavar="DEST", help="Smart routing: new callers go here.")
@click.option("--name", "service_line", default="", help="Service line, e.g. 'Appointments line'.")
@click.option("--trunk", default=None, help="Only from this trunk (default: any trunk).")
@click.option("--priority", default=None, metavar="N", help=_PRIORITY_HELP)
@json_option
@click.pass_context
def did_add(
    ctx: click.Context,
    number: str,
    destination: str | None,
    known: str | None,
    new: str | None,
    service_line: str,
    trunk: str | None,
    priority: str | None,
    as_json: bool,
) -> None:
    """Add DID NUMBER (as the provider sends it; +33..., 0033... and 0... forms all match).
    Its destinations must exist."""
    on_db(ctx, _require_destinations, destination, known, new)
    d = on_db(ctx, add_did, number, destination, service_line, trunk, known=known, new=new, priority=priority)
    prio = on_db(ctx, did_priorities).get(d.number, 0)
    if as_json:
        echo_json({**asdict(d), "priority": prio})
        return
    click.echo(
        f"DID {d.number} -> {_routing(d)}" + (f" ({d.service_line})" if d.service_line else "") + _prio(prio) + "."
    )


@did_group.command("list")
@config_option
@json_option
@click.pass_context
def did_list(ctx: click.Context, as_json: bool) -> None:
    """List DIDs."""

    dids, prios = on_db(ctx, _dids)
    if as_json:
        echo_json([{**asdict(d), "priority": prios.get(d.number, 0)} for d in dids])
        return
    if not dids:
        click.echo("No DIDs. Add one with: pypbx did add +33123456789 --to extension:1001 --name 'Front desk'")
        return
    click.echo(
        table(
            ["NUMBER", "DESTINATION", "SERVICE LINE", "TRUNK", "PRIORITY"],
            [
                [
                    d.number,
                    f"known: {d.route(True)}; new: {d.route(False)}" if d.smart else d.destination,
                    d.service_line or "-",
                    d.trunk or "any",
                    str(prios.get(d.number, 0)),
                ]
                for d in dids
            ],
        )
    )


async def _require_destinations(db: Database, *dests: str | None) -> None:
    """Every destination given must point somewhere: a missing route, queue, menu ... is one
    line naming the closest, exit 2 (the shared validator, before the DID is written)."""
    for dest in dests:
        if dest:
            await require_destination(db, dest)


async def _require_did(db: Database, number: str) -> None:
    """DID ``number`` (typed in any form) must exist: else one line naming the closest, exit 2."""
    try:
        n = T.normalise_did(number, db.region)
    except T.TrunkError as e:
        raise PbxUsageError(str(e)) from None
    numbers = [r["number"] for r in await db.list_did_rows()]
    if n not in numbers:
        raise UnknownNameError("DID", number, numbers)


@did_group.command("remove")
@config_option
@click.argument("number")
@json_option
@click.pass_context
def did_remove(ctx: click.Context, number: str, as_json: bool) -> None:
    """Remove DID NUMBER."""
    on_db(ctx, _require_did, number)
    on_db(ctx, T.remove_did, number)
    done(as_json, {"did": number, "removed": True}, f"DID {number} removed.")


@did_group.command("edit")
@config_option
@click.argument("number")
@click.option(
    "--to",
    "destination",
    default=None,
    metavar="DEST",
    help="extension:1001, queue:NAME, ivr:MENU, voicemail:BOX, group:NAME, external:NUMBER or route:NAME",
)
@click.option("--known", default=None, metavar="DEST", help="Returning patients go here ('' = clear).")
@click.option("--new", default=None, metavar="DEST", help="New callers go here ('' = clear).")
@click.option("--name", "service_line", default=None, help="Service line, e.g. 'Appointments line'.")
@click.option("--trunk", default=None, help="Only from this trunk ('any' = any trunk).")
@click.option("--priority", default=None, metavar="N", help=_PRIORITY_HELP + " 0 = normal again.")
@json_option
@click.pass_context
def did_edit(
    ctx: click.Context,
    number: str,
    destination: str | None,
    known: str | None,
    new: str | None,
    service_line: str | None,
    trunk: str | None,
    priority: str | None,
    as_json: bool,
) -> None:
    """Change DID NUMBER (only the options given)."""
    on_db(ctx, _require_did, number)
    on_db(ctx, _require_destinations, destination, known, new)

    d: T.Did = on_db(
        ctx,
        edit_did,
        number,
        destination=destination,
        known=known,
        new=new,
        service_line=service_line,
        trunk=trunk,
        priority=priority,
    )
    prio = on_db(ctx, did_priorities).get(d.number, 0)
    if as_json:
        echo_json({**asdict(d), "priority": prio})
        return
    click.echo(
        f"DID {d.number} -> {_routing(d)}"
        + (f" ({d.service_line})" if d.service_line else "")
        + (f", from trunk {d.trunk}" if d.trunk else "")
        + _prio(prio)
        + "."
    )
