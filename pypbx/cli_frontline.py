"""CLI groups of the clinic's front line (issue 5): ``pypbx hours``, ``callers``, ``ivr``,
``voicemail``, ``survey``.

Kept out of ``cli.py`` (which many hands edit) and registered there with one call:
:func:`register` receives the ``cli`` group and the ``cli`` module (for its shared
helpers: ``config_option``, ``_load``, ``_table``, ``_echo_json``, ``_ts``). Every command
works on the database only; the running PBX reads menus, schedules, mailboxes and the
survey setting from the database on each call, so changes apply to the next call.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

import click

from pypbx.db import DBError, IntegrityError, open_db


class _FrontGroup(click.Group):
    """Domain errors below -> one-line ClickException (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        from pypbx.config import ConfigError
        try:
            return super().invoke(ctx)
        except (ConfigError, DBError) as e:
            raise click.ClickException(str(e)) from None
        except ValueError as e:
            # HoursError, CallersError, IvrError, VoicemailError, SurveyError ...
            if type(e).__module__.startswith("pypbx."):
                raise click.ClickException(str(e)) from None
            raise


def register(cli: click.Group, H: Any) -> None:
    """Add the front-line groups to ``cli`` (``H``: the cli module, for its helpers)."""
    config_option = H.config_option

    def on_db(ctx: click.Context, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        cfg = H._load(ctx)

        async def go() -> Any:
            async with open_db(cfg.db_path) as db:
                return await fn(db, *args, **kw)
        return asyncio.run(go())

    json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")

    # ================================================================== hours
    @cli.group("hours", cls=_FrontGroup)
    @config_option
    def hours() -> None:
        """Opening hours: weekly schedules and holidays, in the clinic's time zone."""

    @hours.command("set")
    @config_option
    @click.argument("name")
    @click.option("--week", required=True, metavar="SPEC",
                  help="e.g. 'mon-fri 08:00-18:00, sat 09:00-12:00' (several ranges a day allowed).")
    @click.option("--tz", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Paris.")
    @click.pass_context
    def hours_set(ctx: click.Context, name: str, week: str, tz: str) -> None:
        """Create or replace schedule NAME's weekly hours (its holidays are kept)."""
        from pypbx import hours as Hr
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
        from pypbx import hours as Hr
        on_db(ctx, Hr.add_exception, name, " ".join((date,) + ranges), remove=remove)
        if remove:
            click.echo(f"{name}: exception on {date} removed.")
        else:
            click.echo(f"{name}: {date} " + (" ".join(ranges) if ranges else "closed") + ".")

    @hours.command("list")
    @config_option
    @json_opt
    @click.pass_context
    def hours_list(ctx: click.Context, as_json: bool) -> None:
        """List schedules (and whether each is open now)."""
        from pypbx import hours as Hr
        rows = on_db(ctx, Hr.list_schedules)
        if as_json:
            H._echo_json([{**s.to_dict(), "open_now": Hr.is_open(s)} for s in rows])
            return
        if not rows:
            click.echo("No schedules. Add one with: pypbx hours set clinic --week 'mon-fri 08:00-18:00' "
                       "--tz Europe/Paris")
            return
        click.echo(H._table(["NAME", "TZ", "WEEK", "EXCEPTIONS", "NOW"],
                            [[s.name, s.tz, Hr.format_week(s.week) or "-", len(s.exceptions),
                              "open" if Hr.is_open(s) else "closed"] for s in rows]))

    @hours.command("show")
    @config_option
    @click.argument("name")
    @json_opt
    @click.pass_context
    def hours_show(ctx: click.Context, name: str, as_json: bool) -> None:
        """Show schedule NAME."""
        from pypbx import hours as Hr
        s = on_db(ctx, Hr.get_schedule, name)
        d = {**s.to_dict(), "open_now": Hr.is_open(s), "local_now": Hr.local_time(s).isoformat()}
        if as_json:
            H._echo_json(d)
            return
        click.echo(f"Schedule {s.name}  ({s.tz}, now {d['local_now'][:16]}: "
                   f"{'open' if d['open_now'] else 'closed'})")
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
        from pypbx import hours as Hr
        on_db(ctx, Hr.remove_schedule, name)
        click.echo(f"Schedule {name} removed.")

    # ================================================================== callers
    @cli.group("callers", cls=_FrontGroup)
    @config_option
    def callers() -> None:
        """Every caller number seen, and the imported patient list."""

    @callers.command("import")
    @config_option
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @json_opt
    @click.pass_context
    def callers_import(ctx: click.Context, file: str, as_json: bool) -> None:
        """Import a patient list (CSV: number, name, patient_id); re-importing updates."""
        from pypbx import callers as C
        res = on_db(ctx, C.import_csv, Path(file).read_text(encoding="utf-8-sig"))
        if as_json:
            H._echo_json(res)
            return
        click.echo(f"Imported {res['imported']} numbers ({res['new']} new, {res['updated']} updated).")
        for p in res["problems"]:
            click.echo(f"  skipped {p}", err=True)

    @callers.command("list")
    @config_option
    @click.option("--limit", default=1000, show_default=True)
    @json_opt
    @click.pass_context
    def callers_list(ctx: click.Context, limit: int, as_json: bool) -> None:
        """Callers, most recent first."""
        from pypbx import callers as C
        rows = on_db(ctx, C.list_callers, limit)
        if as_json:
            H._echo_json(rows)
            return
        if not rows:
            click.echo("No callers yet.")
            return
        click.echo(H._table(["NUMBER", "NAME", "PATIENT", "CALLS", "FIRST SEEN", "LAST SEEN", "LAST OUTCOME",
                             "LAST AGENT"],
                            [[r["number"], r["name"] or "-", r["patient_id"] or "-", r["calls"],
                              H._ts(r["first_seen"]), H._ts(r["last_seen"]), r["last_outcome"] or "-",
                              r["last_agent"] or "-"] for r in rows]))

    @callers.command("show")
    @config_option
    @click.argument("number")
    @json_opt
    @click.pass_context
    def callers_show(ctx: click.Context, number: str, as_json: bool) -> None:
        """One caller."""
        from pypbx import callers as C
        row = on_db(ctx, C.get, number)
        if row is None:
            raise click.ClickException(f"unknown caller {number}")
        if as_json:
            H._echo_json(row)
            return
        for k in ("number", "name", "patient_id", "calls", "first_seen", "last_seen", "last_outcome",
                  "last_agent", "last_call_id"):
            v = row.get(k)
            if k in ("first_seen", "last_seen"):
                v = H._ts(v)
            click.echo(f"{k.replace('_', ' '):14} {v if v not in (None, '') else '-'}")

    for extra in _LATER:
        extra(cli, H, on_db, json_opt)


#: Groups defined further down (IVR, voicemail, survey), each ``fn(cli, H, on_db, json_opt)``.
_LATER: list[Callable[..., None]] = []
