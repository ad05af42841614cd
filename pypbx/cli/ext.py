"""``pypbx ext``: extensions (phones' accounts), and their outside-call permissions."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import click

from pypbx import extensions as E
from pypbx import registrations as R
from pypbx import trunks as T
from pypbx.cli.context import config_option, db_call, load, on_db
from pypbx.cli.filters import remove_unused, require
from pypbx.cli.output import done, echo_json, json_option, registrations_table, table, ts
from pypbx.db import Database
from pypbx.errors import PbxError
from pypbx.localapi_client import LocalAPIError, NotRunningError, call
from pypbx.numbers import CLASSES, is_emergency


@click.group()
@config_option
def ext() -> None:
    """Manage extensions (phones' accounts)."""


@ext.command("add")
@config_option
@click.argument("number")
@click.option("--name", default="", help="Display name, e.g. 'Reception'.")
@click.option("--password", default=None, help="At least 10 characters (default: generate a strong one).")
@json_option
@click.pass_context
def ext_add(ctx: click.Context, number: str, name: str, password: str | None, as_json: bool) -> None:
    """Add extension NUMBER (2-8 digits; never an emergency number of the region).

    Example: pypbx ext add 1006 --name Reception --json
    """
    cfg = load(ctx)
    if is_emergency(number, cfg.numbers.region, cfg.numbers.emergency):
        raise PbxError(f"{number.strip()} is an emergency number in {cfg.numbers.region}: it cannot be an extension")
    e, pw = db_call(cfg, E.add_extension, number, name, cfg.sip.realm, password)
    if as_json:
        echo_json({"number": e.number, "name": e.name, "realm": cfg.sip.realm, "password": pw})
        return
    click.echo(f"Extension {e.number} added" + (f" ({e.name})" if e.name else "") + ".")
    if password is None:
        click.echo(f"Password: {pw}")
        click.echo("(shown only once — enter it in the phone now or note it down)")


@ext.command("list")
@config_option
@json_option
@click.pass_context
def ext_list(ctx: click.Context, as_json: bool) -> None:
    """List extensions."""
    cfg = load(ctx)
    exts = db_call(cfg, E.list_extensions)
    if as_json:
        echo_json([e.to_dict() for e in exts])
        return
    if not exts:
        click.echo("No extensions. Add one with: pypbx ext add 1001 --name Reception")
        return
    click.echo(
        table(
            ["NUMBER", "NAME", "ENABLED", "CREATED", "UPDATED"],
            [[e.number, e.name or "-", "yes" if e.enabled else "no", ts(e.created_at), ts(e.updated_at)] for e in exts],
        )
    )
    stale = [e.number for e in exts if e.realm != cfg.sip.realm]
    if stale:
        click.echo(
            f"Note: {', '.join(stale)} were created for another realm and cannot log in; "
            f"give them new passwords with 'pypbx ext passwd NUMBER'."
        )


def _unexpired(expires_at: object, now: float) -> bool:
    """A saved binding without an expiry, or expiring after ``now``."""
    if expires_at is None:
        return True
    if not isinstance(expires_at, (int, float)):
        raise TypeError(f"expires_at is not a time: {expires_at!r}")
    return expires_at > now


async def _with_registrations(db: Database, number: str) -> tuple[E.Extension, Sequence[Mapping[str, object]]]:

    e = await E.get_extension(db, number)
    return e, await R.load_registrations(db, e.number)


@ext.command("show")
@config_option
@click.argument("number")
@json_option
@click.pass_context
def ext_show(ctx: click.Context, number: str, as_json: bool) -> None:
    """Show extension NUMBER and its registrations (live when the PBX is running)."""
    require(ctx, "extension", number)

    cfg = load(ctx)
    e, saved = db_call(cfg, _with_registrations, number)
    live, why = True, ""
    regs: list[Mapping[str, object]]
    try:
        reply = call(cfg.socket_path, "registrations", aor=e.number)
        if isinstance(reply, dict):
            reply = reply.get("registrations") or []
        regs = list(reply or [])
    except LocalAPIError as err:
        live = False
        why = "pypbx is not running" if isinstance(err, NotRunningError) else f"live data unavailable: {err}"
        now = time.time()
        regs = [r for r in saved if _unexpired(r.get("expires_at"), now)]
    if as_json:
        echo_json({**e.to_dict(), "registrations": regs, "live": live})
        return
    click.echo(f"Extension:  {e.number}")
    click.echo(f"Name:       {e.name or '-'}")
    click.echo(f"Enabled:    {'yes' if e.enabled else 'no'}")
    click.echo(
        f"Realm:      {e.realm}"
        + ("" if e.realm == cfg.sip.realm else f" (config realm is {cfg.sip.realm}: run 'pypbx ext passwd')")
    )
    click.echo(f"Created:    {ts(e.created_at)}")
    click.echo(f"Updated:    {ts(e.updated_at)}")
    note = "" if live else f" ({why}; as last saved)"
    click.echo(f"Registrations: {len(regs)}{note}")
    if regs:
        click.echo(registrations_table(regs))


@ext.command("passwd")
@config_option
@click.argument("number")
@click.option("--password", default=None, help="At least 10 characters (default: generate a strong one).")
@json_option
@click.pass_context
def ext_passwd(ctx: click.Context, number: str, password: str | None, as_json: bool) -> None:
    """Set a new password for extension NUMBER.

    Example: pypbx ext passwd 1001 --json
    """
    require(ctx, "extension", number)
    cfg = load(ctx)
    pw = db_call(cfg, E.set_password, number, cfg.sip.realm, password)
    if as_json:
        echo_json({"number": number.strip(), "password": pw})
        return
    click.echo(f"Password of extension {number.strip()} changed.")
    if password is None:
        click.echo(f"Password: {pw}")
        click.echo("(shown only once — enter it in the phone now or note it down)")


@ext.command("remove")
@config_option
@click.argument("number")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def ext_remove(ctx: click.Context, number: str, yes: bool, as_json: bool) -> None:
    """Remove extension NUMBER (its phones can no longer register or call)."""
    require(ctx, "extension", number)
    cfg = load(ctx)
    e = db_call(cfg, E.get_extension, number)
    if not yes:
        click.confirm(f"Remove extension {e.number}" + (f" ({e.name})" if e.name else "") + "?", abort=True)
    db_call(cfg, remove_unused, f"extension:{e.number}", E.remove_extension, e.number)
    done(as_json, {"number": e.number, "removed": True}, f"Extension {e.number} removed.")


@ext.command("perms")
@config_option
@click.argument("number")
@click.option(
    "--allow",
    default=None,
    help="Number classes this extension may call, e.g. 'fixed_line,mobile,toll_free' "
    f"({', '.join(CLASSES)}; the old names national and local are accepted; emergency is always allowed).",
)
@click.option("--max-calls", type=click.IntRange(0), default=None, help="Concurrent outside calls.")
@json_option
@click.pass_context
def ext_perms(ctx: click.Context, number: str, allow: str | None, max_calls: int | None, as_json: bool) -> None:
    """Show or set which numbers extension NUMBER may call (toll-fraud guard)."""
    require(ctx, "extension", number)

    cfg = load(ctx)
    current = on_db(ctx, T.permissions).get(number)
    if allow is not None or max_calls is not None:
        classes = (
            allow if allow is not None else ",".join(current["classes"] if current else cfg.numbers.default_allowed)
        )
        limit = max_calls if max_calls is not None else (current["max_outbound"] if current else None)
        on_db(ctx, T.set_permissions, number, classes, limit)
        current = on_db(ctx, T.permissions).get(number)
    allowed = list(current["classes"]) if current else list(cfg.numbers.default_allowed)
    limit = current["max_outbound"] if current else None
    if limit is None:
        limit = cfg.numbers.max_outbound_per_extension
    if as_json:
        echo_json(
            {
                "extension": number,
                "allowed": allowed,
                "emergency": True,
                "max_outbound": limit,
                "default": current is None,
            }
        )
        return
    click.echo(
        f"Extension {number} may call: {', '.join(allowed)}, emergency (always)"
        + (" [site default]" if current is None else "")
    )
    click.echo(f"Concurrent outside calls: {limit}")
