"""``pypbx route``: routing rules (pypbx.routing). Everything works on the database; the
running PBX reads routes per call, so changes apply to the next call."""

from __future__ import annotations

import datetime as dt

import click

from pypbx import routing as R
from pypbx.cli.context import config_option, on_db
from pypbx.cli.filters import found, require
from pypbx.cli.output import done, echo_json, json_option, table
from pypbx.errors import PbxError


def _parse_at(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.strip().replace("T", " "))
    except ValueError:
        raise PbxError(f"bad --at {text!r} (want 'YYYY-MM-DD HH:MM')") from None


def _parse_ivr(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        menu, sep, digits = v.partition(":")
        if not sep or not menu or not digits:
            raise PbxError(f"bad --ivr {v!r} (want MENU:DIGITS, e.g. main:2)")
        out.append((menu, digits))
    return out


def show_route(r: R.Route) -> None:
    click.echo(f"Route {r.name} (time zone {r.tz}):")
    if not r.rules:
        click.echo(f"  no rules yet: pypbx route rule {r.name} --if known --to queue:NAME")
    for i, rule in enumerate(r.rules, start=1):
        click.echo(f"  {i}. {rule.describe()}")


@click.group("route")
@config_option
def route() -> None:
    """Routing rules: a named, ordered list of 'conditions -> destination' rules that a
    DID (--to route:NAME), an IVR option (route:NAME) or a ring group's --then uses.
    Conditions: known, new, sticky, time=DAYS/HH:MM-HH:MM, open=SCHEDULE,
    closed=SCHEDULE, ivr=MENU:DIGITS, caller=PREFIX; no condition = the default rule."""


@route.command("add")
@config_option
@click.argument("name")
@click.option(
    "--tz",
    default=None,
    help="Time zone of the route's time= conditions (default: [site] timezone; e.g. Europe/Paris).",
)
@json_option
@click.pass_context
def route_add(ctx: click.Context, name: str, tz: str | None, as_json: bool) -> None:
    """Create route NAME (then add rules with: pypbx route rule NAME ...)."""
    r = on_db(ctx, R.add_route, name, tz)
    done(
        as_json,
        r.to_dict(),
        f"Route {r.name} created (time zone {r.tz}). Add rules: pypbx route rule {r.name} --if known --to queue:NAME",
    )


@route.command("tz")
@config_option
@click.argument("name")
@click.argument("tz")
@json_option
@click.pass_context
def route_tz(ctx: click.Context, name: str, tz: str, as_json: bool) -> None:
    """Set route NAME's time zone (for its time= conditions)."""
    require(ctx, "route", name)
    r = on_db(ctx, found, R.set_tz, name, tz)  # not a time zone: exit 2
    done(as_json, r.to_dict(), f"Route {r.name}: time zone {r.tz}.")


@route.command("rule")
@config_option
@click.argument("name")
@click.option(
    "--if",
    "conditions",
    multiple=True,
    metavar="COND",
    help="A condition (all must hold; none = the default rule): known, new, sticky, "
    "time=mon-fri/08:00-12:00, open=SCHEDULE, closed=SCHEDULE, ivr=MENU:DIGITS, "
    "caller=PREFIX.",
)
@click.option(
    "--to",
    "destination",
    required=True,
    metavar="DEST",
    help="extension:N, queue:NAME, ivr:MENU, voicemail:BOX, group:NAME, external:NUMBER, route:NAME or agent:last.",
)
@click.option(
    "--prefer-last",
    type=float,
    default=None,
    metavar="SECONDS",
    help="queue: destinations: offer the call to the caller's last agent only, for this long.",
)
@click.option(
    "--position", type=click.IntRange(1), default=None, help="Insert at this position (1 = first; default: last)."
)
@click.option(
    "--priority",
    default=None,
    metavar="N",
    help="Urgent line: queue priority 0-100 of the calls this rule sends on (queue:, ivr: or route: "
    "destinations; higher is answered first).",
)
@json_option
@click.pass_context
def route_rule(
    ctx: click.Context,
    name: str,
    conditions: tuple[str, ...],
    destination: str,
    prefer_last: float | None,
    position: int | None,
    priority: str | None,
    as_json: bool,
) -> None:
    """Add a rule to route NAME."""
    require(ctx, "route", name)
    # every refusal here is bad input (exit 2): a destination, menu or schedule that does not exist, a bad condition
    r = on_db(ctx, found, R.add_rule, name, list(conditions), destination, prefer_last, position, priority)
    if as_json:
        echo_json(r.to_dict())
        return
    show_route(r)


@route.command("unrule")
@config_option
@click.argument("name")
@click.argument("position", type=int)
@json_option
@click.pass_context
def route_unrule(ctx: click.Context, name: str, position: int, as_json: bool) -> None:
    """Remove rule POSITION (as `pypbx route show` numbers them) from route NAME."""
    require(ctx, "route", name)
    r = on_db(ctx, found, R.remove_rule, name, position)  # no rule POSITION: exit 2
    if as_json:
        echo_json(r.to_dict())
        return
    show_route(r)


@route.command("list")
@config_option
@json_option
@click.pass_context
def route_list(ctx: click.Context, as_json: bool) -> None:
    """List routes."""
    routes = on_db(ctx, R.list_routes)
    if as_json:
        echo_json([r.to_dict() for r in routes])
        return
    if not routes:
        click.echo("No routes. Create one with: pypbx route add NAME")
        return
    click.echo(
        table(
            ["NAME", "TZ", "RULES", "DEFAULT"],
            [[r.name, r.tz, len(r.rules), next((x.destination for x in r.rules if x.is_default), "-")] for r in routes],
        )
    )


@route.command("show")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def route_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show route NAME's rules, in order."""
    require(ctx, "route", name)
    r = on_db(ctx, R.get_route, name)
    if as_json:
        echo_json(r.to_dict())
        return
    show_route(r)


@route.command("remove")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def route_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove route NAME and its rules."""
    require(ctx, "route", name)
    refs = on_db(ctx, R.remove_route, name)
    done(as_json, {"route": name, "removed": True, "still_pointing": refs}, f"Route {name} removed.")
    if refs:
        click.echo(
            f"Warning: still pointing to route:{name} (calls there get their fallback): " + ", ".join(refs), err=True
        )


@route.command("test")
@config_option
@click.argument("name")
@click.option("--caller", required=True, metavar="NUMBER", help="The caller's number.")
@click.option(
    "--at",
    "at",
    default=None,
    metavar="'YYYY-MM-DD HH:MM'",
    help="The time of the call, in the route's time zone (default: now).",
)
@click.option("--ivr", "ivr", multiple=True, metavar="MENU:DIGITS", help="A choice made in an IVR menu.")
@json_option
@click.pass_context
def route_test(ctx: click.Context, name: str, caller: str, at: str | None, ivr: tuple[str, ...], as_json: bool) -> None:
    """Dry run: which rule of route NAME a call from --caller would match (agents' states
    as the database has them)."""
    require(ctx, "route", name)
    res = on_db(ctx, R.dry_run, name, caller, at=_parse_at(at), ivr_choices=_parse_ivr(ivr))
    if as_json:
        echo_json(res)
        return
    for st in res["steps"]:
        facts = f"known={'yes' if st['known'] else 'no'}, last agent={st['last_agent'] or '-'}, at {st['now']}"
        click.echo(f"Route {st['route']} ({facts}):")
        for line in st["trace"]:
            click.echo(f"  {line}")
    dest = res["destination"]
    click.echo(f"=> {dest}" if dest else "=> no rule matched (a DID falls back to its own destination, else 480)")
