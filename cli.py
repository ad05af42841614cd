"""pypbx — the admin's command-line tool.

Thin over the library: pypbx.config, pypbx.db, pypbx.extensions, pypbx.localapi_client.
Every command accepts ``--config PATH`` (before or after the command name; env PYPBX_CONFIG;
default ./pypbx.toml). Errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import socket
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click

from pypbx import config as _config
from pypbx.config import Config, ConfigError, config_path_from, load_config, render_config
from pypbx.db import DBError, open_db
from pypbx.extensions import ExtensionError
from pypbx.localapi_client import LocalAPIError, NotRunningError

DEMO_EXTENSIONS = [("1001", "Reception"), ("1002", "Nurse"), ("1003", "Doctor"), ("1004", "Office")]
_CONFIG_KEY = "pypbx.config"


# --------------------------------------------------------------------------- plumbing

class _Group(click.Group):
    """Turns domain errors anywhere below into one-line ClickExceptions (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, DBError, ExtensionError, LocalAPIError) as e:
            raise click.ClickException(str(e)) from None


def _remember_config(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.find_root().meta[_CONFIG_KEY] = value
    return value


def config_option(f: Callable) -> Callable:
    """``--config PATH`` accepted after any (sub)command; the last one given wins."""
    return click.option("--config", "config", metavar="PATH", default=None, expose_value=False,
                        callback=_remember_config,
                        help="Config file (env PYPBX_CONFIG; default ./pypbx.toml).")(f)


def _config_path(ctx: click.Context) -> Path:
    return config_path_from(ctx.find_root().meta.get(_CONFIG_KEY))


def _load(ctx: click.Context) -> Config:
    return load_config(_config_path(ctx))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    rows = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        lines.append(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def _ts(t: float | None) -> str:
    if not t:
        return "-"
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _local_ip(bind: str) -> str:
    """The address phones should use: the bind address, or the primary outbound one."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))     # TEST-NET-1: no packet is sent for a UDP connect
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def _reg_source(r: dict[str, Any]) -> str:
    if r.get("source"):
        return str(r["source"])
    host = r.get("source_host")
    if not host:
        return "-"
    port = r.get("source_port")
    return f"{r.get('source_transport') or ''} {host}{':' + str(port) if port else ''}".strip()


def _reg_expires_in(r: dict[str, Any], now: float) -> float | None:
    if r.get("expires_in") is not None:
        return float(r["expires_in"])
    if r.get("expires_at") is not None:
        return float(r["expires_at"]) - now
    return None


def _registrations_table(regs: list[dict[str, Any]], indent: str = "  ") -> str:
    now = time.time()
    return _table(["AOR", "CONTACT", "SOURCE", "EXPIRES IN", "USER AGENT"],
                  [[r.get("aor"), r.get("contact"), _reg_source(r), _duration(_reg_expires_in(r, now)),
                    r.get("user_agent") or "-"] for r in regs], indent=indent)


# --------------------------------------------------------------------------- top level

@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="PATH", default=None, envvar=_config.ENV_VAR, expose_value=False,
              callback=_remember_config, help="Config file (env PYPBX_CONFIG; default ./pypbx.toml).")
@click.version_option(package_name="pypbx", prog_name="pypbx")
def cli() -> None:
    """pypbx — a SIP PBX with an ACD for small clinics."""


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="pypbx")


# --------------------------------------------------------------------------- init

@cli.command()
@config_option
@click.option("--sip-port", type=click.IntRange(1, 65535), default=None,
              help="SIP port for UDP and TCP (default 5060).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Data directory (default ./var next to the config file).")
@click.option("--demo", is_flag=True, help="Also create extensions 1001-1004 and print their passwords.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file / reset demo passwords.")
@click.pass_context
def init(ctx: click.Context, sip_port: int | None, data_dir: str | None, demo: bool, force: bool) -> None:
    """Write a config file and create the data directory and database.

    Idempotent with --demo: if the config exists and its database has no extensions yet,
    the demo extensions are added; if it has extensions, this is an error (use --force to
    overwrite the config and reset the demo extensions' passwords)."""
    path = _config_path(ctx)
    exists = path.exists()
    if exists and not force and not demo:
        raise click.ClickException(f"{path} already exists (use --force to overwrite it)")
    if exists and not force:
        cfg = load_config(path)
        if _run(_count_extensions(cfg)):
            raise click.ClickException(
                f"{path} already exists and its database has extensions; nothing to do "
                f"(use --force to overwrite the config and reset the demo passwords)")
        click.echo(f"Using existing config {path}")
    else:
        overrides: dict[str, Any] = {}
        if sip_port is not None:
            overrides["sip_port"] = sip_port
        if data_dir is not None:
            d = Path(data_dir).expanduser().absolute()
            try:
                overrides["data_dir"] = "./" + str(d.relative_to(path.parent.absolute()))
            except ValueError:
                overrides["data_dir"] = str(d)
        text = render_config(**overrides)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            cfg = _config.load_config(tmp)          # validate before it replaces anything
            os.replace(tmp, path)
        except OSError as e:
            raise click.ClickException(f"cannot write {path}: {e.strerror or e}") from None
        cfg = load_config(path)
        click.echo(f"Wrote {path}")
    try:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"cannot create {cfg.data_dir}: {e.strerror or e}") from None
    created = _run(_init_db(cfg, demo))
    click.echo(f"Database {cfg.db_path} ready")
    if demo:
        _print_phone_table(cfg, created)
    click.echo(f"Start the PBX with: pypbx run{'' if path == config_path_from(None) else f' --config {path}'}")


async def _count_extensions(cfg: Config) -> int:
    async with open_db(cfg.db_path) as db:
        return await db.count_extensions()


async def _init_db(cfg: Config, demo: bool) -> list[tuple[str, str, str]]:
    from pypbx import extensions as ext
    created: list[tuple[str, str, str]] = []
    async with open_db(cfg.db_path) as db:
        await db.get_or_create_meta("nonce_secret", lambda: os.urandom(32).hex())
        if demo:
            for number, name in DEMO_EXTENSIONS:
                try:
                    _e, pw = await ext.add_extension(db, number, name, cfg.sip.realm)
                except ExtensionError:      # exists (only reachable with --force): reset it
                    pw = await ext.set_password(db, number, cfg.sip.realm)
                created.append((number, name, pw))
    return created


def _print_phone_table(cfg: Config, created: list[tuple[str, str, str]]) -> None:
    server = _local_ip(cfg.sip.bind)
    transports = [t for t, p in (("UDP", cfg.sip.udp_port), ("TCP", cfg.sip.tcp_port)) if p]
    port = cfg.sip.udp_port or cfg.sip.tcp_port
    click.echo("")
    click.echo("Demo extensions — the passwords are shown ONLY NOW; note them down.")
    click.echo(f"Phone settings: server {server}, port {port} ({'/'.join(transports)}), "
               f"realm {cfg.sip.realm}, auth user = username = extension")
    click.echo(_table(["EXTENSION", "NAME", "SERVER", "PORT", "USERNAME", "PASSWORD"],
                      [[n, name, server, port, n, pw] for n, name, pw in created], indent="  "))
    click.echo("")


# --------------------------------------------------------------------------- run

@cli.command()
@config_option
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the PBX in the foreground (Ctrl-C stops it gracefully)."""
    path = _config_path(ctx)
    load_config(path)                   # fail fast with a one-line config error
    try:
        from pypbx.app import run as app_run
    except ImportError as e:
        raise click.ClickException(f"cannot start the PBX: {e}") from None
    ctx.exit(int(app_run(path) or 0))


# --------------------------------------------------------------------------- status

@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running PBX: uptime, transports, registrations, bans, counters."""
    from pypbx.localapi_client import call
    cfg = _load(ctx)
    result = call(cfg.socket_path, "status")
    if as_json:
        _echo_json(result)
        return
    if not isinstance(result, dict):
        raise click.ClickException("pypbx sent an unexpected status reply")
    head = "pypbx"
    if result.get("version"):
        head += f" {result['version']}"
    head += " running"
    if result.get("pid"):
        head += f" (pid {result['pid']})"
    click.echo(f"{head}, up {_duration(result.get('uptime'))}")
    transports = result.get("transports") or []
    listening = ", ".join(
        f"{t.get('transport', '?')} {t.get('host', '?')}:{t.get('port', '?')}" if isinstance(t, dict) else str(t)
        for t in transports)
    click.echo(f"Listening: {listening or 'nothing'}")
    extra = []
    if result.get("extensions") is not None:
        extra.append(f"Extensions: {result['extensions']}")
    if result.get("connections") is not None:
        extra.append(f"TCP/TLS connections: {result['connections']}")
    if extra:
        click.echo(", ".join(extra))
    regs = result.get("registrations") or []
    click.echo(f"Registered contacts: {len(regs)}")
    if regs:
        click.echo(_registrations_table(regs))
    bans = result.get("bans") or []
    if bans:
        click.echo(f"Active bans: {len(bans)}")
        now = time.time()
        click.echo(_table(["IP", "REASON", "EXPIRES IN"],
                          [[b.get("ip"), b.get("reason") or "-",
                            _duration(b["expires_in"] if b.get("expires_in") is not None
                                      else (b["until"] - now if b.get("until") is not None else None))]
                           for b in bans], indent="  "))
    else:
        click.echo("Active bans: none")
    for t in result.get("trunks") or []:
        click.echo(f"Trunk {t.get('name')}: {t.get('state')}" + (f" ({t['last_reason']})" if t.get("last_reason") else ""))
    mwi = result.get("mwi")
    if isinstance(mwi, dict):
        subs = mwi.get("subscriptions") or []
        boxes = sorted({str(s.get("box")) for s in subs})
        click.echo(f"MWI subscriptions: {len(subs)}" + (f" (mailboxes {', '.join(boxes)})" if boxes else ""))
    counters = result.get("counters") or {}
    if counters:
        click.echo(textwrap.fill("Security counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())),
                                 width=100, subsequent_indent="  ", break_on_hyphens=False))


# --------------------------------------------------------------------------- ext

@cli.group(cls=click.Group)
@config_option
def ext() -> None:
    """Manage extensions (phones' accounts)."""


@ext.command("add")
@config_option
@click.argument("number")
@click.option("--name", default="", help="Display name, e.g. 'Reception'.")
@click.option("--password", default=None, help="At least 10 characters (default: generate a strong one).")
@click.pass_context
def ext_add(ctx: click.Context, number: str, name: str, password: str | None) -> None:
    """Add extension NUMBER (2-8 digits)."""
    from pypbx import extensions as E
    cfg = _load(ctx)

    async def go() -> tuple[Any, str]:
        async with open_db(cfg.db_path) as db:
            return await E.add_extension(db, number, name, cfg.sip.realm, password)
    e, pw = _run(go())
    click.echo(f"Extension {e.number} added" + (f" ({e.name})" if e.name else "") + ".")
    if password is None:
        click.echo(f"Password: {pw}")
        click.echo("(shown only once — enter it in the phone now or note it down)")


@ext.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ext_list(ctx: click.Context, as_json: bool) -> None:
    """List extensions."""
    from pypbx import extensions as E
    cfg = _load(ctx)

    async def go() -> list[Any]:
        async with open_db(cfg.db_path) as db:
            return await E.list_extensions(db)
    exts = _run(go())
    if as_json:
        _echo_json([e.to_dict() for e in exts])
        return
    if not exts:
        click.echo("No extensions. Add one with: pypbx ext add 1001 --name Reception")
        return
    click.echo(_table(["NUMBER", "NAME", "ENABLED", "CREATED", "UPDATED"],
                      [[e.number, e.name or "-", "yes" if e.enabled else "no", _ts(e.created_at),
                        _ts(e.updated_at)] for e in exts]))
    stale = [e.number for e in exts if e.realm != cfg.sip.realm]
    if stale:
        click.echo(f"Note: {', '.join(stale)} were created for another realm and cannot log in; "
                   f"give them new passwords with 'pypbx ext passwd NUMBER'.")


@ext.command("show")
@config_option
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ext_show(ctx: click.Context, number: str, as_json: bool) -> None:
    """Show extension NUMBER and its registrations (live when the PBX is running)."""
    from pypbx import extensions as E
    from pypbx import registrations as R
    from pypbx.localapi_client import call
    cfg = _load(ctx)

    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with open_db(cfg.db_path) as db:
            e = await E.get_extension(db, number)
            return e, await R.load_registrations(db, e.number)
    e, saved = _run(go())
    live, why = True, ""
    try:
        regs = call(cfg.socket_path, "registrations", aor=e.number)
        if isinstance(regs, dict):
            regs = regs.get("registrations") or []
        regs = list(regs or [])
    except LocalAPIError as err:
        live = False
        why = "pypbx is not running" if isinstance(err, NotRunningError) else f"live data unavailable: {err}"
        now = time.time()
        regs = [r for r in saved if r.get("expires_at") is None or r["expires_at"] > now]
    if as_json:
        _echo_json({**e.to_dict(), "registrations": regs, "live": live})
        return
    click.echo(f"Extension:  {e.number}")
    click.echo(f"Name:       {e.name or '-'}")
    click.echo(f"Enabled:    {'yes' if e.enabled else 'no'}")
    click.echo(f"Realm:      {e.realm}" + ("" if e.realm == cfg.sip.realm
                                          else f" (config realm is {cfg.sip.realm}: run 'pypbx ext passwd')"))
    click.echo(f"Created:    {_ts(e.created_at)}")
    click.echo(f"Updated:    {_ts(e.updated_at)}")
    note = "" if live else f" ({why}; as last saved)"
    click.echo(f"Registrations: {len(regs)}{note}")
    if regs:
        click.echo(_registrations_table(regs))


@ext.command("passwd")
@config_option
@click.argument("number")
@click.option("--password", default=None, help="At least 10 characters (default: generate a strong one).")
@click.pass_context
def ext_passwd(ctx: click.Context, number: str, password: str | None) -> None:
    """Set a new password for extension NUMBER."""
    from pypbx import extensions as E
    cfg = _load(ctx)

    async def go() -> str:
        async with open_db(cfg.db_path) as db:
            return await E.set_password(db, number, cfg.sip.realm, password)
    pw = _run(go())
    click.echo(f"Password of extension {number.strip()} changed.")
    if password is None:
        click.echo(f"Password: {pw}")
        click.echo("(shown only once — enter it in the phone now or note it down)")


@ext.command("remove")
@config_option
@click.argument("number")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def ext_remove(ctx: click.Context, number: str, yes: bool) -> None:
    """Remove extension NUMBER (its phones can no longer register or call)."""
    from pypbx import extensions as E
    cfg = _load(ctx)

    async def get() -> Any:
        async with open_db(cfg.db_path) as db:
            return await E.get_extension(db, number)
    e = _run(get())
    if not yes:
        click.confirm(f"Remove extension {e.number}" + (f" ({e.name})" if e.name else "") + "?", abort=True)

    async def go() -> None:
        async with open_db(cfg.db_path) as db:
            await E.remove_extension(db, e.number)
    _run(go())
    click.echo(f"Extension {e.number} removed.")



# --------------------------------------------------------------------------- calls
def _parse_when(value: str | None, name: str) -> float | None:
    """'2026-11-23', '2026-11-23 14:30', 'today', 'yesterday' (local time) -> UNIX seconds."""
    if value is None:
        return None
    v = value.strip().lower()
    today = _dt.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    if v == "today":
        return today.timestamp()
    if v == "yesterday":
        return (today - _dt.timedelta(days=1)).timestamp()
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(value.strip(), fmt).timestamp()
        except ValueError:
            pass
    raise click.BadParameter(f"expected YYYY-MM-DD [HH:MM], 'today' or 'yesterday', got {value!r}",
                             param_hint=name)


def _day_range(date: str | None, since: str | None, until: str | None) -> tuple[float | None, float | None]:
    if date is not None:
        start = _parse_when(date, "--date")
        assert start is not None
        return start, start + 86400
    return _parse_when(since, "--since"), _parse_when(until, "--until")


def _call_filters(f: Callable) -> Callable:
    for opt in reversed([
        click.option("--date", default=None, help="One day: YYYY-MM-DD, 'today' or 'yesterday'."),
        click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM])."),
        click.option("--until", default=None, help="Before this time (YYYY-MM-DD [HH:MM])."),
        click.option("--number", default=None, help="Caller or callee number."),
        click.option("--queue", default=None, help="Queue name."),
        click.option("--agent", default=None, help="Agent or extension that took the call."),
        click.option("--disposition", default=None, help="e.g. answered, abandoned_queue, busy."),
        click.option("--limit", default=100, show_default=True, help="At most this many rows."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]):
        f = opt(f)
    return f


async def _search_calls(cfg: Config, date, since, until, number, queue, agent, disposition, limit,
                        recorded_only=False) -> list[dict[str, Any]]:
    lo, hi = _day_range(date, since, until)
    async with open_db(cfg.db_path) as db:
        rows = await db.search_call_rows(since=lo, until=hi, number=number, queue=queue, agent=agent,
                                         disposition=disposition, limit=limit)
    if recorded_only:
        rows = [r for r in rows if r.get("recording_path")]
    return rows


def _calls_table(rows: list[dict[str, Any]]) -> str:
    return _table(["TIME", "ID", "FROM", "TO", "QUEUE", "AGENT", "DISPOSITION", "RING", "TALK", "RECORDING"],
                  [[_ts(r["offered_at"]), r["id"][:12], r["caller_number"], r["callee_number"], r["queue"] or "-",
                    r["agent"] or r["extension"] or "-", r["disposition"], _duration(r["ring_seconds"]),
                    _duration(r["talk_seconds"]), r.get("recording_path") or "-"] for r in rows])


@cli.group(cls=_Group)
@config_option
def calls() -> None:
    """Call records: every call, its outcome, timings and recording."""


@calls.command("list")
@config_option
@_call_filters
@click.pass_context
def calls_list(ctx: click.Context, date, since, until, number, queue, agent, disposition, limit,
               as_json: bool) -> None:
    """List calls, newest first (filters combine)."""
    rows = _run(_search_calls(_load(ctx), date, since, until, number, queue, agent, disposition, limit))
    if as_json:
        _echo_json(rows)
    elif not rows:
        click.echo("No calls match.")
    else:
        click.echo(_calls_table(rows))


@calls.command("show")
@config_option
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def calls_show(ctx: click.Context, call_id: str, as_json: bool) -> None:
    """One call with its event log and recording (CALL_ID or a unique prefix of it)."""
    cfg = _load(ctx)

    async def go() -> tuple[dict, list, dict | None]:
        async with open_db(cfg.db_path) as db:
            row = await db.get_call_row(call_id)
            if row is None:
                matches = await db.fetchall("SELECT id FROM calls WHERE id LIKE ? LIMIT 2", (call_id + "%",))
                if len(matches) != 1:
                    raise click.ClickException(f"no call {call_id!r}" if not matches
                                               else f"call id prefix {call_id!r} is ambiguous")
                row = await db.get_call_row(matches[0]["id"])
            assert row is not None
            return row, await db.call_event_rows(row["id"]), await db.get_recording_row(row["id"])
    row, events, rec = _run(go())
    if as_json:
        _echo_json({"call": row, "events": events, "recording": rec})
        return
    for k in ("id", "direction", "caller_number", "callee_number", "did", "service_line", "queue", "agent",
              "extension", "disposition", "hangup_side", "hangup_cause", "flags"):
        if row.get(k):
            click.echo(f"{k.replace('_', ' ').capitalize() + ':':16} {row[k]}")
    click.echo(f"{'Offered:':16} {_ts(row['offered_at'])}  ring {_duration(row['ring_seconds'])}, "
               f"talk {_duration(row['talk_seconds'])}")
    if rec:
        click.echo(f"{'Recording:':16} {rec['path']} ({rec['status']}, {rec['seconds']} s, sha256 {rec['sha256']})")
    click.echo("Events:")
    click.echo(_table(["TIME", "EVENT", "DETAIL"],
                      [[_dt.datetime.fromtimestamp(e["ts"]).strftime("%H:%M:%S.%f")[:-3], e["kind"], e["detail"]]
                       for e in events], indent="  "))


@calls.command("report")
@config_option
@click.option("--date", default=None, help="One day: YYYY-MM-DD, 'today' or 'yesterday'.")
@click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM]).")
@click.option("--until", default=None, help="Before this time (YYYY-MM-DD [HH:MM]).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def calls_report(ctx: click.Context, date, since, until, as_json: bool) -> None:
    """Offered / answered / abandoned, every disposition, and whether they add up."""
    from pypbx.calllog import CallLog
    cfg = _load(ctx)
    lo, hi = _day_range(date, since, until)

    async def go() -> dict:
        async with open_db(cfg.db_path) as db:
            acc = await CallLog(db).accounting(lo, hi)
            live: set[str] = set()
            try:
                from pypbx.localapi_client import request
                live = set(await request(cfg.socket_path, "active_calls"))
            except (LocalAPIError, Exception):
                pass
            acc["unaccounted"] = [c for c in acc["unaccounted"] if c not in live]
            acc["balanced"] = not acc["unaccounted"]
            missed = await db.search_call_rows(since=lo, until=hi, limit=1000)
            acc["missed_callers"] = sorted({r["caller_number"] for r in missed
                                            if r["disposition"] not in ("answered", "in_progress")
                                            and r["direction"] != "outbound"})
            return acc
    acc = _run(go())
    if as_json:
        _echo_json(acc)
        return
    click.echo(f"Offered {acc['offered']}, answered {acc['answered']}, abandoned {acc['abandoned']}, "
               f"in progress {acc['in_progress']}")
    click.echo(_table(["DISPOSITION", "CALLS"], [[d, n] for d, n in acc["dispositions"].items() if n], indent="  "))
    if acc["balanced"]:
        click.echo("Every offered call has exactly one outcome.")
    else:
        click.echo("Calls without an outcome (not live): " + ", ".join(acc["unaccounted"]))
    if acc["missed_callers"]:
        click.echo("Missed callers to call back: " + ", ".join(acc["missed_callers"]))


@cli.command("recordings")
@config_option
@_call_filters
@click.pass_context
def recordings(ctx: click.Context, date, since, until, number, queue, agent, disposition, limit,
               as_json: bool) -> None:
    """Find recordings by number, date, queue and agent."""
    rows = _run(_search_calls(_load(ctx), date, since, until, number, queue, agent, disposition, limit,
                              recorded_only=True))
    if as_json:
        _echo_json(rows)
    elif not rows:
        click.echo("No recordings match.")
    else:
        click.echo(_calls_table(rows))



# --------------------------------------------------------------------------- simulate
@cli.command("simulate")
@config_option
@click.option("--preset", default="mid_clinic", show_default=True,
              help="A built-in clinic day: small_gp, mid_clinic or large_centre.")
@click.option("--scenario", "scenario", type=click.Path(dir_okay=False), default=None,
              help="A day of your own: a TOML or JSON file with the simulator's settings (overrides --preset).")
@click.option("--seed", default=1, show_default=True, help="Random seed (the same seed gives the same day).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def simulate_cmd(preset: str, scenario: str | None, seed: int, as_json: bool) -> None:
    """Run a simulated clinic day through the real ACD code and report service level,
    waiting times, abandonment, occupancy and the wait-estimate error."""
    from acd.simulator import PRESETS, format_report, simulate
    if scenario is not None:
        path = Path(scenario)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise click.ClickException(f"cannot read {path}: {e.strerror or e}") from None
        try:
            if path.suffix.lower() == ".json":
                spec: Any = json.loads(text)
            else:
                import tomllib
                spec = tomllib.loads(text)
        except ValueError as e:
            raise click.ClickException(f"{path}: {e}") from None
    else:
        if preset not in PRESETS:
            raise click.ClickException(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        spec = preset
    try:
        report = simulate(spec, seed=seed)
    except (KeyError, TypeError, ValueError) as e:
        raise click.ClickException(f"bad simulation settings: {e}") from None
    if as_json:
        _echo_json(report.to_dict())
    else:
        click.echo(format_report(report))


# --------------------------------------------------------------------------- queues, agents, callbacks
# The admin side of the ACD (pypbx.acdstore). Live parts ask the running PBX's local API:
#
#   {"cmd": "queue_status", "queue": NAME} ->
#       {"waiting": [{"call_id", "number", "position", "wait" (s), "priority", "is_callback",
#                     "ringing": [agent ids]}, ...],
#        "agents": [{"id", "name", "state", "pause_reason", "extension", "since" (s in state),
#                    "calls_taken"}, ...],
#        "ewt": seconds or null}                         (every key optional)
#   {"cmd": "agent_state", "agent": ID} -> anything: "re-read this agent from the database"
#
# A PBX that is not running or does not know a command yet is not an error: the CLI shows
# the saved configuration and states (and the core re-reads the DB on PRAGMA data_version).

class _AcdGroup(_Group):
    """Like _Group, and pypbx.acdstore's AcdError is a one-line error too."""

    def invoke(self, ctx: click.Context) -> Any:
        from pypbx.acdstore import AcdError
        try:
            return super().invoke(ctx)
        except AcdError as e:
            raise click.ClickException(str(e)) from None


def _acd_db(ctx: click.Context, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run ``await fn(db, *args, **kw)`` on the configured database."""
    cfg = _load(ctx)

    async def go() -> Any:
        async with open_db(cfg.db_path) as db:
            return await fn(db, *args, **kw)
    return _run(go())


def _unknown_command(err: Exception) -> bool:
    return str(err).startswith("unknown command")


def _notify_agent(ctx: click.Context, agent_id: str) -> None:
    """Tell the running PBX that an agent changed; quiet when it is not running or does not
    know the command yet (it re-reads the database anyway)."""
    from pypbx.localapi_client import call
    cfg = _load(ctx)
    try:
        call(cfg.socket_path, "agent_state", timeout=3.0, agent=agent_id)
    except NotRunningError:
        pass
    except LocalAPIError as e:
        if not _unknown_command(e):
            click.echo(f"Note: the running PBX did not take the change now ({e}); "
                       f"it will pick it up from the database.", err=True)


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:g}s"


def _queue_options(f: Callable) -> Callable:
    for opt in reversed([
        click.option("--strategy", default=None, metavar="NAME",
                     help="ring_all, longest_idle, round_robin, fewest_calls, least_talk_time, "
                          "best_skill_then_longest_idle or random (default longest_idle)."),
        click.option("--skills", default=None, metavar="SKILL:LEVEL,...",
                     help="Required skills with minimum levels 1-10, e.g. new_patients:8,korean:5 ('' = none)."),
        click.option("--ring-timeout", default=None, metavar="N", help="Seconds to ring an agent (default 15)."),
        click.option("--wrap-up", default=None, metavar="N", help="Seconds after a call before the next (default 10)."),
        click.option("--max-wait", default=None, metavar="N",
                     help="Longest wait in seconds, then the fallback (0 = no limit, the default)."),
        click.option("--max-length", default=None, metavar="N", help="Most callers waiting (0 = no limit, the default)."),
        click.option("--when-empty", default=None, metavar="join|refuse",
                     help="Nobody logged in who could answer: queue anyway (join, default) or send to --fallback."),
        click.option("--fallback", default=None, metavar="TARGET",
                     help="Where refused / timed-out callers go: queue:NAME, extension:1001, ring_group:NAME, "
                          "external:+3312345, voicemail:BOX (or 'voicemail' = the box named like the queue; "
                          "'none' to clear)."),
        click.option("--overflow-after", default=None, metavar="N", help="Overflow after N seconds of waiting..."),
        click.option("--overflow-to", default=None, metavar="TARGET", help="...to this destination ('none' to clear)."),
        click.option("--relax", "relaxation", default=None, metavar="SECONDS:LEVEL,...",
                     help="Skill relaxation, e.g. 30:5,60:1 (after 30 s accept level 5 ...; 'none' to clear)."),
        click.option("--announce-every", "announce_interval", default=None, metavar="N",
                     help="Repeat position and wait every N seconds (0 = on entry only; default 60)."),
        click.option("--callback/--no-callback", "callback_allowed", default=None,
                     help="Offer 'press 1 to be called back' (default on)."),
        click.option("--language", default=None, metavar="en|ko|ru|zh", help="Prompt language (default en)."),
    ]):
        f = opt(f)
    return f


_QUEUE_OPTION_NAMES = ("strategy", "skills", "ring_timeout", "wrap_up", "max_wait", "max_length", "when_empty",
                       "fallback", "overflow_after", "overflow_to", "relaxation", "announce_interval",
                       "callback_allowed", "language")


def _qualified(q: Any, agents: list[Any]) -> list[Any]:
    req = q.required_skills
    return [a for a in agents if all(a.skills.get(s, 0) >= lv for s, lv in req.items())]


def _queue_lines(rec: Any) -> list[tuple[str, str]]:
    from pypbx import acdstore as S
    c = rec.config
    return [
        ("Queue", c.name),
        ("Strategy", c.strategy.value),
        ("Skills", S.format_skills(c.required_skills)),
        ("Ring timeout", _secs(c.ring_timeout)),
        ("Wrap-up", _secs(c.wrap_up)),
        ("Max wait", (_secs(c.max_wait) + (f", then {S.format_target(c.fallback)}" if c.fallback else ""))
         if c.max_wait else "no limit"),
        ("Max length", str(c.max_length) if c.max_length else "no limit"),
        ("When empty", c.join_empty.value + (f" (fallback {S.format_target(c.fallback)})" if c.fallback else "")),
        ("Overflow", S.format_overflow(c.overflow)),
        ("Relaxation", S.format_relaxation(c.relaxation)),
        ("Announce every", _secs(c.announce_interval) if c.announce_interval else "on entry only"),
        ("Callback", "offered" if c.callback_allowed else "off"),
        ("Language", c.language),
    ]


def _agent_since(a: Any, now: float) -> str:
    return _duration(now - a.state_since) if a.state_since else "-"


def _state_text(state: str | None, reason: str | None) -> str:
    return f"{state or '-'}" + (f" ({reason})" if reason else "")


@cli.group("queue", cls=_AcdGroup)
@config_option
def queue_group() -> None:
    """ACD queues: skills, strategy, timers, overflow, callbacks."""


@queue_group.command("add")
@config_option
@click.argument("name")
@_queue_options
@click.pass_context
@click.option("--number", default=None, metavar="DIGITS",
              help="A number any extension can dial to reach the queue, e.g. 600 (not an extension's).")
def queue_add(ctx: click.Context, name: str, number: str | None = None, **opts: Any) -> None:
    """Add queue NAME (lower-case letters, digits, _ or -)."""
    from pypbx import acdstore as S

    async def add(db: Any) -> Any:
        rec = await S.add_queue(db, name, **opts)
        if number is not None:
            try:
                await S.set_queue_number(db, rec.name, number)
            except S.AcdError:
                await S.remove_queue(db, rec.name)
                raise
        return rec
    rec = _acd_db(ctx, add)
    c = rec.config
    click.echo(f"Queue {c.name} added ({c.strategy.value}, skills {S.format_skills(c.required_skills)})"
               + (f", number {number}." if number else "."))


@queue_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def queue_list(ctx: click.Context, as_json: bool) -> None:
    """List queues."""
    from pypbx import acdstore as S

    async def both(db: Any) -> tuple[list[Any], list[Any]]:
        return await S.list_queues(db), await S.list_agents(db)
    queues, agents = _acd_db(ctx, both)
    if as_json:
        _echo_json([{**q.to_dict(), "agents_qualified": len(_qualified(q.config, agents)),
                     "agents_logged_in": sum(1 for a in _qualified(q.config, agents) if a.logged_in)}
                    for q in queues])
        return
    if not queues:
        click.echo("No queues. Add one with: pypbx queue add front_desk")
        return
    rows = []
    for q in queues:
        c = q.config
        quals = _qualified(c, agents)
        rows.append([c.name, c.strategy.value, S.format_skills(c.required_skills), _secs(c.ring_timeout),
                     _secs(c.wrap_up), S.format_overflow(c.overflow), c.join_empty.value,
                     "yes" if c.callback_allowed else "no", c.language,
                     f"{sum(1 for a in quals if a.logged_in)}/{len(quals)}"])
    click.echo(_table(["NAME", "STRATEGY", "SKILLS", "RING", "WRAP-UP", "OVERFLOW", "WHEN EMPTY", "CALLBACK",
                       "LANG", "AGENTS IN/ALL"], rows))


@queue_group.command("show")
@config_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def queue_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show queue NAME: its settings, and (live when the PBX is running) the callers waiting
    with their positions and waits, and the agents who can answer with their states."""
    from pypbx import acdstore as S
    from pypbx.localapi_client import call
    cfg = _load(ctx)

    async def both(db: Any) -> tuple[Any, list[Any]]:
        return await S.get_queue(db, name), await S.list_agents(db)
    rec, agents = _acd_db(ctx, both)
    quals = _qualified(rec.config, agents)
    now = time.time()
    live, note = False, ""
    waiting: list[dict[str, Any]] = []
    live_agents: list[dict[str, Any]] | None = None
    ewt = None
    try:
        res = call(cfg.socket_path, "queue_status", queue=rec.name)
        if not isinstance(res, dict):
            raise LocalAPIError("pypbx sent an unexpected queue_status reply")
        live = True
        waiting = list(res.get("waiting") or [])
        live_agents = list(res["agents"]) if res.get("agents") is not None else None
        ewt = res.get("ewt")
    except NotRunningError:
        note = "pypbx is not running"
    except LocalAPIError as e:
        note = ("the running pypbx does not report queue status yet" if _unknown_command(e)
                else f"live data unavailable: {e}")
    if live_agents is None:
        live_agents = [{"id": a.id, "name": a.name, "state": a.state, "pause_reason": a.pause_reason,
                        "extension": a.extension, "since": (now - a.state_since) if a.state_since else None}
                       for a in quals]
    if as_json:
        _echo_json({**rec.to_dict(), "live": live, "note": note or None, "waiting": waiting, "ewt": ewt,
                    "agents": live_agents})
        return
    for label, value in _queue_lines(rec):
        click.echo(f"{label + ':':16}{value}")
    if live:
        head = f"Waiting: {len(waiting)}" + (f" (estimated wait for a new caller {_duration(ewt)})"
                                              if ewt is not None else "")
        click.echo(head)
        if waiting:
            click.echo(_table(["POS", "CALLER", "LINE", "WAITING", "PRIORITY", "KIND", "RINGING"],
                              [[w.get("position", "-"), w.get("number") or w.get("call_id") or "-",
                                w.get("service_line") or "-",
                                _duration(w.get("wait")), w.get("priority", 0),
                                "callback" if w.get("is_callback") else "caller",
                                ",".join(w.get("ringing") or []) or "-"]
                               for w in sorted(waiting, key=lambda w: w.get("position") or 0)], indent="  "))
        click.echo(f"Agents: {len(live_agents)}")
    else:
        click.echo(f"Waiting: unknown ({note})")
        click.echo(f"Agents: {len(live_agents)} (saved states; {note})")
    if live_agents:
        click.echo(_table(["AGENT", "NAME", "STATE", "EXTENSION", "FOR"],
                          [[a.get("id"), a.get("name") or "-", _state_text(a.get("state"), a.get("pause_reason")),
                            a.get("extension") or "-", _duration(a.get("since"))] for a in live_agents],
                          indent="  "))


@queue_group.command("edit")
@config_option
@click.argument("name")
@_queue_options
@click.pass_context
@click.option("--number", default=None, metavar="DIGITS",
              help="The number extensions dial to reach the queue ('none' to clear).")
def queue_edit(ctx: click.Context, name: str, number: str | None = None, **opts: Any) -> None:
    """Change settings of queue NAME (options not given stay as they are)."""
    from pypbx import acdstore as S
    if all(opts.get(k) is None for k in _QUEUE_OPTION_NAMES) and number is None:
        raise click.ClickException("nothing to change: give at least one option (see pypbx queue edit --help)")

    async def edit(db: Any) -> Any:
        if number is not None:
            await S.set_queue_number(db, name, number)
        if all(opts.get(k) is None for k in _QUEUE_OPTION_NAMES):
            return await S.get_queue(db, name)
        return await S.edit_queue(db, name, **opts)
    rec = _acd_db(ctx, edit)
    click.echo(f"Queue {rec.name} updated.")
    for label, value in _queue_lines(rec)[1:]:
        click.echo(f"  {label + ':':16}{value}")


@queue_group.command("remove")
@config_option
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def queue_remove(ctx: click.Context, name: str, yes: bool) -> None:
    """Remove queue NAME."""
    from pypbx import acdstore as S
    rec = _acd_db(ctx, S.get_queue, name)
    if not yes:
        click.confirm(f"Remove queue {rec.name}?", abort=True)
    _acd_db(ctx, S.remove_queue, rec.name)
    click.echo(f"Queue {rec.name} removed.")


@cli.group("agent", cls=_AcdGroup)
@config_option
def agent_group() -> None:
    """ACD agents: people who take queue calls, their skills and states."""


@agent_group.command("add")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option("--name", required=True, help="The person's name, e.g. 'Alice Kim'.")
@click.option("--skills", default=None, metavar="SKILL:LEVEL,...", help="e.g. new_patients:8,korean:5 (levels 1-10).")
@click.option("--wrap-up", default=None, metavar="N", help="Wrap-up seconds for this agent (overrides the queue's).")
@click.pass_context
def agent_add(ctx: click.Context, agent_id: str, name: str, skills: str | None, wrap_up: str | None) -> None:
    """Add agent ID (their login: lower-case letters, digits, '.', '_' or '-')."""
    from pypbx import acdstore as S
    a = _acd_db(ctx, S.add_agent, agent_id, name, skills, wrap_up)
    click.echo(f"Agent {a.id} added ({a.name}), skills {S.format_skills(a.skills)}.")
    _notify_agent(ctx, a.id)


@agent_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def agent_list(ctx: click.Context, as_json: bool) -> None:
    """List agents with their saved states."""
    from pypbx import acdstore as S
    agents = _acd_db(ctx, S.list_agents)
    if as_json:
        _echo_json([a.to_dict() for a in agents])
        return
    if not agents:
        click.echo("No agents. Add one with: pypbx agent add alice --name 'Alice Kim' --skills new_patients:8")
        return
    now = time.time()
    click.echo(_table(["ID", "NAME", "STATE", "EXTENSION", "FOR", "SKILLS", "WRAP-UP"],
                      [[a.id, a.name, _state_text(a.state, a.pause_reason), a.extension or "-", _agent_since(a, now),
                        S.format_skills(a.skills), _secs(a.wrap_up)] for a in agents]))


@agent_group.command("show")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def agent_show(ctx: click.Context, agent_id: str, as_json: bool) -> None:
    """Show agent ID, the queues they can answer and their recent state changes."""
    from pypbx import acdstore as S

    async def go(db: Any) -> tuple[Any, list[Any], list[dict[str, Any]]]:
        a = await S.get_agent(db, agent_id)
        return a, await S.list_queues(db), await S.agent_events(db, a.id, limit=10)
    a, queues, events = _acd_db(ctx, go)
    qs = [q.name for q in queues if _qualified(q.config, [a])]
    if as_json:
        _echo_json({**a.to_dict(), "queues": qs, "events": events})
        return
    now = time.time()
    click.echo(f"{'Agent:':12}{a.id}")
    click.echo(f"{'Name:':12}{a.name}")
    click.echo(f"{'State:':12}{_state_text(a.state, a.pause_reason)} for {_agent_since(a, now)} (saved)")
    click.echo(f"{'Extension:':12}{a.extension or '-'}")
    click.echo(f"{'Skills:':12}{S.format_skills(a.skills)}")
    click.echo(f"{'Wrap-up:':12}{_secs(a.wrap_up) if a.wrap_up is not None else 'as the queue'}")
    click.echo(f"{'Queues:':12}{', '.join(qs) or '-'}")
    if events:
        click.echo("Recent events:")
        click.echo(_table(["TIME", "EVENT", "DETAIL"],
                          [[_dt.datetime.fromtimestamp(e["ts"]).strftime("%Y-%m-%d %H:%M:%S"), e["kind"],
                            " ".join(f"{k}={v}" for k, v in sorted(e["detail"].items())) or "-"] for e in events],
                          indent="  "))


@agent_group.command("skills")
@config_option
@click.argument("agent_id", metavar="ID")
@click.argument("skills", metavar="SKILL:LEVEL,...")
@click.pass_context
def agent_skills(ctx: click.Context, agent_id: str, skills: str) -> None:
    """Replace the skills of agent ID, e.g. new_patients:8,korean:5 ('' = none)."""
    from pypbx import acdstore as S
    a = _acd_db(ctx, S.set_skills, agent_id, skills)
    click.echo(f"Agent {a.id} skills: {S.format_skills(a.skills)}")
    _notify_agent(ctx, a.id)


@agent_group.command("login")
@config_option
@click.argument("agent_id", metavar="ID")
@click.argument("extension")
@click.pass_context
def agent_login(ctx: click.Context, agent_id: str, extension: str) -> None:
    """Log agent ID in at EXTENSION (or move them there from another desk)."""
    from pypbx import acdstore as S
    a, moved_from = _acd_db(ctx, S.login, agent_id, extension)
    if moved_from:
        click.echo(f"Agent {a.id} moved from {moved_from} to {a.extension} ({_state_text(a.state, a.pause_reason)}).")
    else:
        click.echo(f"Agent {a.id} logged in at {a.extension} (available).")
    _notify_agent(ctx, a.id)


@agent_group.command("logout")
@config_option
@click.argument("agent_id", metavar="ID")
@click.pass_context
def agent_logout(ctx: click.Context, agent_id: str) -> None:
    """Log agent ID out."""
    from pypbx import acdstore as S
    before = _acd_db(ctx, S.get_agent, agent_id)
    a = _acd_db(ctx, S.logout, agent_id)
    click.echo(f"Agent {a.id} logged out" + (f" (was at {before.extension})." if before.extension else "."))
    _notify_agent(ctx, a.id)


@agent_group.command("pause")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option("--reason", default="break", show_default=True, metavar="break|lunch|admin|other",
              help="Why: break, lunch, admin or other.")
@click.pass_context
def agent_pause(ctx: click.Context, agent_id: str, reason: str) -> None:
    """Pause agent ID: no queue calls until unpaused."""
    from pypbx import acdstore as S
    if reason.strip().lower() not in ("break", "lunch", "admin", "other"):
        raise click.ClickException(f"unknown pause reason {reason!r} (choose from break, lunch, admin, other)")
    a = _acd_db(ctx, S.pause, agent_id, reason)
    click.echo(f"Agent {a.id} paused ({a.pause_reason}).")
    _notify_agent(ctx, a.id)


@agent_group.command("unpause")
@config_option
@click.argument("agent_id", metavar="ID")
@click.pass_context
def agent_unpause(ctx: click.Context, agent_id: str) -> None:
    """Make paused agent ID available again."""
    from pypbx import acdstore as S
    a = _acd_db(ctx, S.unpause, agent_id)
    click.echo(f"Agent {a.id} available" + (f" at {a.extension}." if a.extension else "."))
    _notify_agent(ctx, a.id)


@agent_group.command("remove")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def agent_remove(ctx: click.Context, agent_id: str, yes: bool) -> None:
    """Remove agent ID (logged out first; their history stays)."""
    from pypbx import acdstore as S
    a = _acd_db(ctx, S.get_agent, agent_id)
    if not yes:
        click.confirm(f"Remove agent {a.id} ({a.name})?", abort=True)
    _acd_db(ctx, S.remove_agent, a.id)
    click.echo(f"Agent {a.id} removed.")
    _notify_agent(ctx, a.id)


@cli.command("callbacks")
@config_option
@click.option("--status", default="pending", show_default=True, metavar="pending|done|failed|all",
              help="pending (including those being dialled now), done, failed or all.")
@click.option("--queue", default=None, help="Only this queue.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def callbacks_cmd(ctx: click.Context, status: str, queue: str | None, as_json: bool) -> None:
    """Patients waiting to be called back (and those already called)."""
    from pypbx import acdstore as S
    try:
        cbs = _acd_db(ctx, S.list_callbacks, status, queue)
    except S.AcdError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        _echo_json([c.to_dict() for c in cbs])
        return
    if not cbs:
        click.echo(f"No {status.strip().lower()} callbacks." if status.strip().lower() != "all" else "No callbacks.")
        return
    click.echo(_table(["ID", "NUMBER", "QUEUE", "REQUESTED", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "AGENT",
                       "RESULT", "MERGED"],
                      [[c.id, c.number, c.queue, _ts(c.requested_at), c.status, c.attempts, _ts(c.last_attempt_at),
                        c.agent or "-", c.result or "-", c.merged_count] for c in cbs]))



# --------------------------------------------------------------------------- trunks, DIDs, permissions

class _TrunkGroup(_Group):
    """Like _Group, and pypbx.trunks' TrunkError is a one-line error too."""

    def invoke(self, ctx: click.Context) -> Any:
        from pypbx.trunks import TrunkError
        try:
            return super().invoke(ctx)
        except TrunkError as e:
            raise click.ClickException(str(e)) from None


def _trunk_db(ctx: click.Context, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    from pypbx.trunks import TrunkError
    cfg = _load(ctx)

    async def go() -> Any:
        async with open_db(cfg.db_path) as db:
            return await fn(db, *args, **kw)
    try:
        return _run(go())
    except TrunkError as e:
        raise click.ClickException(str(e)) from None


def _live_trunks(ctx: click.Context) -> dict[str, dict[str, Any]]:
    """Registration state from the running PBX ({} when it is not running)."""
    from pypbx.localapi_client import call
    try:
        rows = call(_load(ctx).socket_path, "trunks")
    except (LocalAPIError, NotRunningError, OSError):
        return {}
    return {r["name"]: r for r in rows or [] if isinstance(r, dict)}


def _split_host(host: str, port: int | None) -> tuple[str, int | None]:
    if host and host.count(":") == 1:
        h, _, p = host.partition(":")
        if p.isdigit():
            return h, int(p)
    return host, port


def _trunk_options(f: Callable) -> Callable:
    opts = [
        click.option("--host", default=None, help="Provider host or IP, optionally host:port."),
        click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default 5060."),
        click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default=None),
        click.option("--username", default=None, help="Registration / digest user name."),
        click.option("--password", default=None, help="Digest password (stored in the database: keep it 0600)."),
        click.option("--auth-username", default=None, help="Digest user name when it differs from --username."),
        click.option("--domain", default=None, help="SIP domain of the account (default: the host)."),
        click.option("--register/--no-register", "register", default=None,
                     help="Register to the provider (else an IP-authenticated trunk)."),
        click.option("--expires", type=click.IntRange(60, 86400), default=None, help="Registration expiry asked for."),
        click.option("--priority", type=int, default=None, help="Lower is tried first (default 10)."),
        click.option("--caller-id", default=None, help="Number presented on outside calls."),
        click.option("--format", "number_format",
                     type=click.Choice(["e164", "e164_no_plus", "national", "international", "as_dialled"]),
                     default=None, help="How dialled numbers are sent (default e164)."),
        click.option("--strip-prefix", default=None, help="Removed from the front of the formatted number."),
        click.option("--add-prefix", default=None, help="Put in front of the formatted number."),
        click.option("--max-channels", type=click.IntRange(0), default=None, help="Concurrent calls (0 = no limit)."),
        click.option("--inbound-ip", "inbound_ips", multiple=True,
                     help="Address or network the provider calls from (repeatable; its host always counts)."),
        click.option("--enable/--disable", "enabled", default=None),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _trunk_changes(kw: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in kw.items() if v is not None and k != "inbound_ips"}
    if kw.get("inbound_ips"):
        out["inbound_ips"] = [x for item in kw["inbound_ips"] for x in item.split(",") if x.strip()]
    if "host" in out:
        out["host"], port = _split_host(out["host"], out.get("port"))
        if port is not None:
            out["port"] = port
    return out


@cli.group("trunk", cls=_TrunkGroup)
@config_option
def trunk_group() -> None:
    """SIP trunks to the telephone network (registration or IP-authenticated)."""


@trunk_group.command("add")
@config_option
@click.argument("name")
@_trunk_options
@click.pass_context
def trunk_add(ctx: click.Context, name: str, **kw: Any) -> None:
    """Add trunk NAME (--host is required)."""
    from pypbx import trunks as T
    ch = _trunk_changes(kw)
    if not ch.get("host"):
        raise click.ClickException("--host is required")
    if ch.get("register") is None and ch.get("username") and ch.get("password"):
        ch["register"] = True
    t = _trunk_db(ctx, T.add_trunk, T.Trunk(name=name, **ch))
    kind = "registration" if t.register else "IP-authenticated"
    click.echo(f"Trunk {t.name} added ({kind}, {t.transport} {t.host}:{t.port}, priority {t.priority}).")


@trunk_group.command("edit")
@config_option
@click.argument("name")
@_trunk_options
@click.pass_context
def trunk_edit(ctx: click.Context, name: str, **kw: Any) -> None:
    """Change settings of trunk NAME."""
    from pypbx import trunks as T
    t = _trunk_db(ctx, T.edit_trunk, name, _trunk_changes(kw))
    click.echo(f"Trunk {t.name} updated.")


@trunk_group.command("remove")
@config_option
@click.argument("name")
@click.pass_context
def trunk_remove(ctx: click.Context, name: str) -> None:
    """Remove trunk NAME."""
    from pypbx import trunks as T
    _trunk_db(ctx, T.remove_trunk, name)
    click.echo(f"Trunk {name} removed.")


def _trunk_dict(t: Any, live: dict[str, Any]) -> dict[str, Any]:
    d = t.public()
    st = live.get(t.name)
    if st is not None:
        d.update(state=st.get("state"), last_reason=st.get("last_reason"), expires_in=st.get("expires_in"),
                 active_calls=st.get("active_calls"))
    else:
        d.update(state=None if t.register else "ip-auth", last_reason=None, expires_in=None, active_calls=None)
    return d


@trunk_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def trunk_list(ctx: click.Context, as_json: bool) -> None:
    """List trunks with their registration state (when pypbx is running)."""
    from pypbx import trunks as T
    trunks = _trunk_db(ctx, T.list_trunks)
    live = _live_trunks(ctx)
    rows = [_trunk_dict(t, live) for t in trunks]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No trunks. Add one with: pypbx trunk add NAME --host sip.provider.net --username U --password P")
        return
    click.echo(_table(["NAME", "HOST", "TRANSPORT", "PRIO", "TYPE", "STATE", "LAST REASON", "CALLER ID", "CHANNELS"],
                      [[r["name"], f"{r['host']}:{r['port']}", r["transport"], r["priority"],
                        "register" if r["register"] else "ip-auth",
                        (r["state"] or "(pypbx not running)") + ("" if r["enabled"] else ", disabled"),
                        r["last_reason"] or "-", r["caller_id"] or "-",
                        f"{r['active_calls'] if r['active_calls'] is not None else '-'}/"
                        f"{r['max_channels'] or 'any'}"] for r in rows]))


@trunk_group.command("show")
@config_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def trunk_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one trunk (the password is never shown)."""
    from pypbx import trunks as T
    t = _trunk_db(ctx, T.get_trunk, name)
    d = _trunk_dict(t, _live_trunks(ctx))
    if as_json:
        _echo_json(d)
        return
    for k, v in d.items():
        if k in ("created_at", "updated_at"):
            v = _ts(v)
        elif isinstance(v, list):
            v = ", ".join(v) or "-"
        click.echo(f"{k.replace('_', ' ')}: {'-' if v in (None, '') else v}")


@cli.group("did", cls=_TrunkGroup)
@config_option
def did_group() -> None:
    """DIDs: the numbers patients dial, each to a destination and a service line."""


@did_group.command("add")
@config_option
@click.argument("number")
@click.option("--to", "destination", default=None,
              help="extension:1001, queue:NAME, ivr:MENU, voicemail:BOX, group:NAME, external:NUMBER "
                   "or route:NAME (routing rules: pypbx route)")
@click.option("--known", default=None, metavar="DEST",
              help="Smart routing: returning patients (imported list, or called before) go here.")
@click.option("--new", default=None, metavar="DEST", help="Smart routing: new callers go here.")
@click.option("--name", "service_line", default="", help="Service line, e.g. 'Appointments line'.")
@click.option("--trunk", default=None, help="Only from this trunk (default: any trunk).")
@click.pass_context
def did_add(ctx: click.Context, number: str, destination: str | None, known: str | None, new: str | None,
            service_line: str, trunk: str | None) -> None:
    """Add DID NUMBER (as the provider sends it; +33..., 0033... and 0... forms all match)."""
    from pypbx import trunks as T
    d = _trunk_db(ctx, T.add_did, number, destination, service_line, trunk, known=known, new=new)
    route = f"known callers -> {d.route(True)}, new callers -> {d.route(False)}" if d.smart else d.destination
    click.echo(f"DID {d.number} -> {route}" + (f" ({d.service_line})" if d.service_line else "") + ".")


@did_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def did_list(ctx: click.Context, as_json: bool) -> None:
    """List DIDs."""
    from dataclasses import asdict
    from pypbx import trunks as T
    dids = _trunk_db(ctx, T.list_dids)
    if as_json:
        _echo_json([asdict(d) for d in dids])
        return
    if not dids:
        click.echo("No DIDs. Add one with: pypbx did add +33123456789 --to extension:1001 --name 'Front desk'")
        return
    click.echo(_table(["NUMBER", "DESTINATION", "SERVICE LINE", "TRUNK"],
                      [[d.number, f"known: {d.route(True)}; new: {d.route(False)}" if d.smart else d.destination,
                        d.service_line or "-", d.trunk or "any"] for d in dids]))


@did_group.command("remove")
@config_option
@click.argument("number")
@click.pass_context
def did_remove(ctx: click.Context, number: str) -> None:
    """Remove DID NUMBER."""
    from pypbx import trunks as T
    _trunk_db(ctx, T.remove_did, number)
    click.echo(f"DID {number} removed.")


@ext.command("perms")
@config_option
@click.argument("number")
@click.option("--allow", default=None,
              help="Number classes this extension may call, e.g. 'local,mobile,national' "
                   "(internal, local, mobile, national, premium, international; emergency is always allowed).")
@click.option("--max-calls", type=click.IntRange(0), default=None, help="Concurrent outside calls.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ext_perms(ctx: click.Context, number: str, allow: str | None, max_calls: int | None, as_json: bool) -> None:
    """Show or set which numbers extension NUMBER may call (toll-fraud guard)."""
    from pypbx import trunks as T
    cfg = _load(ctx)
    current = _trunk_db(ctx, T.permissions).get(number)
    if allow is not None or max_calls is not None:
        classes = allow if allow is not None else ",".join(current["classes"] if current
                                                          else cfg.numbers.default_allowed)
        limit = max_calls if max_calls is not None else (current or {}).get("max_outbound")
        _trunk_db(ctx, T.set_permissions, number, classes, limit)
        current = _trunk_db(ctx, T.permissions).get(number)
    classes = list(current["classes"]) if current else list(cfg.numbers.default_allowed)
    limit = (current or {}).get("max_outbound")
    if limit is None:
        limit = cfg.numbers.max_outbound_per_extension
    if as_json:
        _echo_json({"extension": number, "allowed": classes, "emergency": True, "max_outbound": limit,
                    "default": current is None})
        return
    click.echo(f"Extension {number} may call: {', '.join(classes)}, emergency (always)"
               + (" [site default]" if current is None else ""))
    click.echo(f"Concurrent outside calls: {limit}")


@cli.command("call")
@config_option
@click.argument("extension")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def call_cmd(ctx: click.Context, extension: str, number: str, as_json: bool) -> None:
    """Click-to-call: ring EXTENSION's phones, then dial NUMBER through a trunk."""
    from pypbx.localapi_client import call
    result = call(_load(ctx).socket_path, "call", extension=extension, number=number)
    if isinstance(result, dict) and result.get("error"):
        raise click.ClickException(f"call refused: {result['error']}")
    if as_json:
        _echo_json(result)
        return
    click.echo(f"Calling {extension}, then {number} ({result.get('class')}); call {result.get('call_id')}.")


# front line (issue 5): pypbx hours / callers / ivr / voicemail / survey live in pypbx.cli_frontline
from pypbx.cli_frontline import register as _register_frontline  # noqa: E402

_register_frontline(cli, sys.modules[__name__])

# routing rules: pypbx route ... and pypbx did edit live in pypbx.cli_route
from pypbx.cli_route import register as _register_route  # noqa: E402

_register_route(cli, sys.modules[__name__])

# voicemail notifications: pypbx notify list / test / retry live in pypbx.cli_notify
from pypbx.cli_notify import register as _register_notify  # noqa: E402

_register_notify(cli, sys.modules[__name__])

# reports: pypbx report summary / queues / hours / agents / lines / missed live in pypbx.cli_report
from pypbx.cli_report import register as _register_report  # noqa: E402

_register_report(cli, sys.modules[__name__])
from pypbx.cli_events import register as _register_events  # noqa: E402  (pypbx events)
_register_events(cli, sys.modules[__name__])



# --------------------------------------------------------------------------- prompts
@cli.group(cls=_Group)
@config_option
def prompts() -> None:
    """The prompts callers hear: replace any with the clinic's own recording."""


def _prompt_target(cfg: Config, pid: str | None, lang: str, moh: bool) -> Path:
    from pypbx import prompts as P
    if moh:
        return cfg.data_dir / "prompts" / "moh" / "default.wav"
    if not pid or not P.PROMPT_ID.match(pid):
        raise click.ClickException("--id must be a prompt id like 'welcome' (lower case, digits, _)")
    if lang not in P.LANGUAGES:
        raise click.ClickException(f"--lang must be one of {', '.join(P.LANGUAGES)}")
    return cfg.data_dir / "prompts" / lang / f"{pid}.wav"


@prompts.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id", "pid", default=None, help="Prompt id, e.g. welcome, after_hours, clinic_address.")
@click.option("--lang", default="en", show_default=True, help="en, ko, ru or zh.")
@click.option("--moh", is_flag=True, help="Replace the music on hold instead.")
@click.pass_context
def prompts_import(ctx: click.Context, file: str, pid: str | None, lang: str, moh: bool) -> None:
    """Convert FILE (WAV, FLAC or OGG, any rate) to the engine's format and use it."""
    from media.prompts import PromptError, convert_prompt
    from pypbx import prompts as P
    cfg = _load(ctx)
    dst = _prompt_target(cfg, pid, lang, moh)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = convert_prompt(file, dst, **({"max_seconds": 3600.0} if moh else {}))
    except PromptError as e:
        raise click.ClickException(str(e)) from None
    what = "music on hold" if moh else f"prompt {pid} ({lang})"
    click.echo(f"Imported {what}: {info.duration:.1f} s, from {info.source_rate} Hz "
               f"{info.source_channels}-channel {info.source_subtype} -> {dst}")
    if not moh and pid not in P.shipped_ids():
        click.echo(f"Note: {pid!r} is not one of the shipped prompts; IVR menus can play it by that id.")
    if info.clipped_samples:
        click.echo(f"Warning: {info.clipped_samples} samples were clipped; the recording is too loud.")


@prompts.command("list")
@config_option
@click.option("--lang", default=None, help="Only this language.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def prompts_list(ctx: click.Context, lang: str | None, as_json: bool) -> None:
    """Every prompt, per language, and whether the clinic replaced it."""
    from pypbx import prompts as P
    cfg = _load(ctx)
    over = cfg.data_dir / "prompts"
    rows = []
    ids = P.shipped_ids()
    custom = {(p.parent.name, p.stem) for p in over.glob("*/*.wav") if p.parent.name in P.LANGUAGES}
    for pid in sorted(set(ids) | {c[1] for c in custom}):
        for lg in P.LANGUAGES:
            if lang and lg != lang:
                continue
            shipped = lg in ids.get(pid, [])
            replaced = (lg, pid) in custom
            if shipped or replaced:
                rows.append({"id": pid, "lang": lg, "shipped": shipped, "replaced": replaced})
    moh = {"id": "moh", "lang": "-", "shipped": True, "replaced": (over / "moh" / "default.wav").exists()}
    rows.append(moh)
    if as_json:
        _echo_json(rows)
        return
    click.echo(_table(["ID", "LANG", "SOURCE"], [[r["id"], r["lang"], "clinic" if r["replaced"] else "shipped"]
                                                for r in rows]))


@prompts.command("remove")
@config_option
@click.option("--id", "pid", default=None, help="Prompt id.")
@click.option("--lang", default="en", show_default=True)
@click.option("--moh", is_flag=True, help="The music on hold.")
@click.pass_context
def prompts_remove(ctx: click.Context, pid: str | None, lang: str, moh: bool) -> None:
    """Go back to the shipped prompt (delete the clinic's recording)."""
    cfg = _load(ctx)
    dst = _prompt_target(cfg, pid, lang, moh)
    if not dst.exists():
        raise click.ClickException(f"no imported recording at {dst}")
    dst.unlink()
    click.echo(f"Removed {dst}; the shipped prompt plays again.")


if __name__ == "__main__":
    main()
