"""``pypbx group``: ring groups (pypbx.groups).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

import click

from pypbx import groups as G
from pypbx.cli.context import config_option, on_db
from pypbx.cli.filters import remove_unused, require
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.db import Database
from pypbx.destinations import require_destination


@click.group("group")
@config_option
def group() -> None:
    """Ring groups: several extensions rung at once (all) or one after another (order)."""


@group.command("add")
@config_option
@click.argument("name")
@click.option("--members", required=True, metavar="EXT,EXT,...", help="Extensions, e.g. 1001,1002,1003.")
@click.option(
    "--strategy",
    type=click.Choice(["all", "order"]),
    default="all",
    show_default=True,
    help="all: every member's phones at once; order: one member after another.",
)
@click.option(
    "--ring-time",
    type=click.FloatRange(1, 600),
    default=20.0,
    show_default=True,
    help="Seconds: the whole ring (all), or each member's turn (order).",
)
@click.option(
    "--then",
    "then",
    default="",
    metavar="TARGET",
    help="No answer: voicemail:BOX, queue:NAME or extension:NUMBER (default: 480 / goodbye).",
)
@click.pass_context
@json_option
def group_add(
    ctx: click.Context, name: str, members: str, strategy: str, ring_time: float, then: str, as_json: bool
) -> None:
    """Add ring group NAME (a DID destination group:NAME, an IVR action group:NAME, a
    queue's --overflow-to group:NAME). Members and --then must exist.

    Example: pypbx group add nurses --members 1001,1002 --strategy order --then voicemail:1001
    """

    async def go(db: Database) -> G.RingGroup:
        new = G.RingGroup(
            name=name, members=G.parse_members(members), strategy=strategy, ring_time=ring_time, then=then
        )
        new.validate()
        for m in new.members:
            await require_destination(db, f"extension:{m}")
        if new.then:
            await require_destination(db, new.then)
        return await G.add_group(db, new)

    g = on_db(ctx, go)
    done(
        as_json,
        g.to_dict(),
        f"Ring group {g.name}: {', '.join(g.members)} ({g.strategy}, {g.ring_time:g} s)"
        + (f", then {g.then}" if g.then else "")
        + ".",
    )


@group.command("list")
@config_option
@json_option
@click.pass_context
def group_list(ctx: click.Context, as_json: bool) -> None:
    """List ring groups."""

    gs = on_db(ctx, G.list_groups)
    if as_json:
        echo_json([g.to_dict() for g in gs])
        return
    if not gs:
        click.echo("No ring groups. Add one with: pypbx group add front_desk --members 1001,1002")
        return
    click.echo(
        table(
            ["NAME", "MEMBERS", "STRATEGY", "RING TIME", "THEN"],
            [[g.name, ",".join(g.members), g.strategy, f"{g.ring_time:g} s", g.then or "-"] for g in gs],
        )
    )


@group.command("show")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def group_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show ring group NAME."""
    require(ctx, "ring group", name)

    g = on_db(ctx, G.get_group, name)
    if as_json:
        echo_json(g.to_dict())
        return
    click.echo(
        f"name: {g.name}\nmembers: {', '.join(g.members)}\nstrategy: {g.strategy}\n"
        f"ring time: {g.ring_time:g} s\nthen: {g.then or '- (480 / goodbye)'}\n"
        f"created: {ts(g.created_at)}"
    )


@group.command("remove")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def group_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove ring group NAME."""
    require(ctx, "ring group", name)

    on_db(ctx, remove_unused, f"group:{name}", G.remove_group, name)
    done(as_json, {"group": name, "removed": True}, f"Ring group {name} removed.")
