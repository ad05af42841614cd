"""``pypbx hours``: opening hours: weekly schedules and holidays (pypbx.hours).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

import click

from pypbx import hours as Hr
from pypbx import sitetime
from pypbx.cli.context import config_option, on_db
from pypbx.cli.filters import remove_unused, require
from pypbx.cli.output import done, echo_json, json_option, table
from pypbx.errors import PbxUsageError


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
@click.option(
    "--tz",
    default=None,
    help="IANA time zone, e.g. Europe/Paris (default: the schedule's own, or [site] timezone for a new one).",
)
@json_option
@click.pass_context
def hours_set(ctx: click.Context, name: str, week: str, tz: str | None, as_json: bool) -> None:
    """Create or replace schedule NAME's weekly hours (its holidays and zone are kept).

    Ranges of one day must not overlap. Example:

        pypbx hours set clinic --week 'mon-fri 08:00-12:00 13:30-18:00, sat 09:00-12:00'
    """

    s = on_db(ctx, Hr.set_schedule, name, week, tz)
    done(as_json, s.to_dict(), f"Schedule {s.name} ({s.tz}): {Hr.format_week(s.week) or 'always closed'}.")


@hours.command("holiday")
@config_option
@click.argument("name")
@click.argument("date", required=False)
@click.argument("ranges", nargs=-1)
@click.option("--remove", is_flag=True, help="Remove the exception on DATE.")
@click.option("--country", default=None, metavar="CC", help="Import CC's public holidays (ISO 3166, e.g. FR).")
@click.option("--year", type=int, default=None, help="With --country: the year (default: this year).")
@click.option("--subdiv", default=None, help="With --country: a region with its own holidays (e.g. 6AE for Alsace).")
@json_option
@click.pass_context
def hours_holiday(
    ctx: click.Context,
    name: str,
    date: str | None,
    ranges: tuple[str, ...],
    remove: bool,
    country: str | None,
    year: int | None,
    subdiv: str | None,
    as_json: bool,
) -> None:
    """DATE (YYYY-MM-DD) closed all day, or open only during RANGES (HH:MM-HH:MM ...);
    or, with --country, closed on every public holiday of a year (idempotent).

    Examples:

        pypbx hours holiday clinic 2026-12-24 08:00-12:00

        pypbx hours holiday clinic --country FR --year 2027
    """
    require(ctx, "schedule", name)
    if country is not None:
        if date is not None or remove:
            raise PbxUsageError("give either DATE or --country, not both (--remove works on one DATE)")
        y = year if year is not None else sitetime.today().year
        added, kept = on_db(ctx, Hr.import_holidays, name, country, y, subdiv)
        if as_json:
            echo_json(
                {
                    "schedule": name,
                    "country": country.upper(),
                    "year": y,
                    "added": [{"date": d, "name": n} for d, n in added],
                    "already_there": [{"date": d, "name": n} for d, n in kept],
                }
            )
            return
        click.echo(f"{name}: {len(added)} public holiday(s) of {country.upper()} {y} added, {len(kept)} already there.")
        for d, n in added:
            click.echo(f"  {d}  closed  {n}")
        return
    if year is not None or subdiv is not None:
        raise PbxUsageError("--year and --subdiv go with --country")
    if date is None:
        raise PbxUsageError("give a DATE (YYYY-MM-DD) or --country CC")
    on_db(ctx, Hr.add_exception, name, " ".join((date, *ranges)), remove=remove)
    if as_json:
        echo_json({"schedule": name, "date": date, "ranges": list(ranges), "removed": remove})
        return
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
    require(ctx, "schedule", name)

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
@json_option
@click.pass_context
def hours_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove schedule NAME."""
    require(ctx, "schedule", name)

    on_db(ctx, remove_unused, f"schedule:{name}", Hr.remove_schedule, name)
    done(as_json, {"schedule": name, "removed": True}, f"Schedule {name} removed.")
