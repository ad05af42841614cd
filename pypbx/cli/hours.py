"""``pypbx hours``: opening hours: weekly schedules and holidays (pypbx.hours).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

import click

from pypbx import hours as Hr
from pypbx.cli.context import config_option, on_db
from pypbx.cli.filters import remove_unused
from pypbx.cli.output import echo_json, json_option, table


@click.group("hours")
@config_option
def hours() -> None:
    """Opening hours: weekly schedules and holidays, in the clinic's time zone."""


@hours.command("set")
@config_option
@click.argument("name")
@click.option(
    "--week",
    required=True,
    metavar="SPEC",
    help="e.g. 'mon-fri 08:00-18:00, sat 09:00-12:00' (several ranges a day allowed).",
)
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Paris.")
@click.pass_context
def hours_set(ctx: click.Context, name: str, week: str, tz: str) -> None:
    """Create or replace schedule NAME's weekly hours (its holidays are kept)."""

    s = on_db(ctx, Hr.set_schedule, name, week, tz)
    click.echo(f"Schedule {s.name} ({s.tz}): {Hr.format_week(s.week) or 'always closed'}.")


@hours.command("holiday")
@config_option
@click.argument("name")
@click.argument("date")
@click.argument("ranges", nargs=-1)
@click.option("--remove", is_flag=True, help="Remove the exception on DATE.")
@click.pass_context
def hours_holiday(ctx: click.Context, name: str, date: str, ranges: tuple[str, ...], remove: bool) -> None:
    """DATE (YYYY-MM-DD) closed all day, or open only during RANGES (HH:MM-HH:MM ...)."""

    on_db(ctx, Hr.add_exception, name, " ".join((date, *ranges)), remove=remove)
    if remove:
        click.echo(f"{name}: exception on {date} removed.")
    else:
        click.echo(f"{name}: {date} " + (" ".join(ranges) if ranges else "closed") + ".")


@hours.command("list")
@config_option
@json_option
@click.pass_context
def hours_list(ctx: click.Context, as_json: bool) -> None:
    """List schedules (and whether each is open now)."""

    rows = on_db(ctx, Hr.list_schedules)
    if as_json:
        echo_json([{**s.to_dict(), "open_now": Hr.is_open(s)} for s in rows])
        return
    if not rows:
        click.echo("No schedules. Add one with: pypbx hours set clinic --week 'mon-fri 08:00-18:00' --tz Europe/Paris")
        return
    click.echo(
        table(
            ["NAME", "TZ", "WEEK", "EXCEPTIONS", "NOW"],
            [
                [s.name, s.tz, Hr.format_week(s.week) or "-", len(s.exceptions), "open" if Hr.is_open(s) else "closed"]
                for s in rows
            ],
        )
    )


@hours.command("show")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def hours_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show schedule NAME."""

    s = on_db(ctx, Hr.get_schedule, name)
    d = {**s.to_dict(), "open_now": Hr.is_open(s), "local_now": Hr.local_time(s).isoformat()}
    if as_json:
        echo_json(d)
        return
    click.echo(f"Schedule {s.name}  ({s.tz}, now {d['local_now'][:16]}: {'open' if d['open_now'] else 'closed'})")
    for day in Hr.DAYS:
        click.echo(f"  {day}  " + (" ".join(d["days"].get(day, [])) or "closed"))
    for day, rs in d["exceptions"].items():
        click.echo(f"  {day}  " + (" ".join(rs) or "closed (holiday)"))


@hours.command("remove")
@config_option
@click.argument("name")
@click.pass_context
def hours_remove(ctx: click.Context, name: str) -> None:
    """Remove schedule NAME."""

    on_db(ctx, remove_unused, f"schedule:{name}", Hr.remove_schedule, name)
    click.echo(f"Schedule {name} removed.")
