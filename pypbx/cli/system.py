"""``pypbx init``, ``pypbx run``, ``pypbx status``: the PBX itself."""

from __future__ import annotations

import logging
import os
import socket
import textwrap
import time
from pathlib import Path

import click

from pypbx import check, runlock
from pypbx import config as _config
from pypbx import extensions as ext
from pypbx.cli.context import config_option, config_path, db_call, load
from pypbx.cli.context import run as run_async
from pypbx.cli.output import duration, echo_json, hms, json_option, registrations_table, table
from pypbx.config import Config, config_path_from, load_config, render_config
from pypbx.db import open_db
from pypbx.errors import PbxError
from pypbx.extensions import ExtensionError
from pypbx.localapi_client import LocalAPIError, call

DEMO_EXTENSIONS = [("1001", "Reception"), ("1002", "Nurse"), ("1003", "Doctor"), ("1004", "Office")]


def _local_ip(bind: str) -> str:
    """The address phones should use: the bind address, or the primary outbound one."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
        return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


# --------------------------------------------------------------------------- init


log = logging.getLogger(__name__)


@click.command()
@config_option
@click.option(
    "--sip-port", type=click.IntRange(1, 65535), default=None, help="SIP port for UDP and TCP (default 5060)."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory (default ./var next to the config file).",
)
@click.option("--demo", is_flag=True, help="Also create extensions 1001-1004 and print their passwords.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file / reset demo passwords.")
@json_option
@click.pass_context
def init(
    ctx: click.Context, sip_port: int | None, data_dir: str | None, demo: bool, force: bool, as_json: bool
) -> None:
    """Write a config file and create the data directory and database.

    Idempotent with --demo: if the config exists and its database has no extensions yet,
    the demo extensions are added; if it has extensions, this is an error (use --force to
    overwrite the config and reset the demo extensions' passwords)."""
    path = config_path(ctx)
    exists = path.exists()
    if exists and not force and not demo:
        raise PbxError(f"{path} already exists (use --force to overwrite it)")
    if exists and not force:
        cfg = load_config(path)
        if run_async(_count_extensions(cfg)):
            raise PbxError(
                f"{path} already exists and its database has extensions; nothing to do "
                f"(use --force to overwrite the config and reset the demo passwords)"
            )
        if not as_json:
            click.echo(f"Using existing config {path}")
    else:
        overrides: dict[str, int | str] = {}
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
            cfg = _config.load_config(tmp)  # validate before it replaces anything
            os.replace(tmp, path)
        except OSError as e:
            raise PbxError(f"cannot write {path}: {e.strerror or e}") from None
        cfg = load_config(path)
        if not as_json:
            click.echo(f"Wrote {path}")
    try:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PbxError(f"cannot create {cfg.data_dir}: {e.strerror or e}") from None
    created = run_async(_init_db(cfg, demo))
    if as_json:  # the demo extensions' generated passwords included (shown once, as in the text output)
        echo_json(
            {
                "config": str(path),
                "data_dir": str(cfg.data_dir),
                "database": str(cfg.db_path),
                "realm": cfg.sip.realm,
                "extensions": [{"number": n, "name": name, "password": pw} for n, name, pw in created],
            }
        )
        return
    click.echo(f"Database {cfg.db_path} ready")
    if demo:
        _print_phone_table(cfg, created)
    click.echo(f"Start the PBX with: pypbx run{'' if path == config_path_from(None) else f' --config {path}'}")


async def _count_extensions(cfg: Config) -> int:
    async with open_db(cfg.db_path, cfg.numbers.region) as db:
        return await db.count_extensions()


async def _init_db(cfg: Config, demo: bool) -> list[tuple[str, str, str]]:

    created: list[tuple[str, str, str]] = []
    async with open_db(cfg.db_path, cfg.numbers.region) as db:
        await db.get_or_create_meta("nonce_secret", lambda: os.urandom(32).hex())
        if demo:
            for number, name in DEMO_EXTENSIONS:
                try:
                    _e, pw = await ext.add_extension(db, number, name, cfg.sip.realm)
                except ExtensionError:  # exists (only reachable with --force): reset it
                    pw = await ext.set_password(db, number, cfg.sip.realm)
                created.append((number, name, pw))
    return created


def _print_phone_table(cfg: Config, created: list[tuple[str, str, str]]) -> None:
    server = _local_ip(cfg.sip.bind)
    transports = [t for t, p in (("UDP", cfg.sip.udp_port), ("TCP", cfg.sip.tcp_port)) if p]
    port = cfg.sip.udp_port or cfg.sip.tcp_port
    click.echo("")
    click.echo("Demo extensions — the passwords are shown ONLY NOW; note them down.")
    click.echo(
        f"Phone settings: server {server}, port {port} ({'/'.join(transports)}), "
        f"realm {cfg.sip.realm}, auth user = username = extension"
    )
    click.echo(
        table(
            ["EXTENSION", "NAME", "SERVER", "PORT", "USERNAME", "PASSWORD"],
            [[n, name, server, port, n, pw] for n, name, pw in created],
            indent="  ",
        )
    )
    click.echo("")


# --------------------------------------------------------------------------- run


@click.command()
@config_option
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the PBX in the foreground (Ctrl-C stops it gracefully)."""
    path = config_path(ctx)
    cfg = load_config(path)  # fail fast with a one-line config error
    runlock.acquire(cfg.data_dir)  # before anything starts: one PBX per data directory
    preflight(cfg)
    try:
        # function-level: the whole runtime (SIP stack, media pool) is needed only to run the
        # PBX, and a missing piece of it becomes a one-line error here
        from pypbx.app import run as app_run
    except ImportError as e:
        raise PbxError(f"cannot start the PBX: {e}") from None
    ctx.exit(int(app_run(path) or 0))


def preflight(cfg: Config) -> None:
    """``pypbx check`` before starting: warnings printed on stderr (``Warning: ...``, before
    the log is set up), an error refuses to start (one line)."""
    found = db_call(cfg, check.check)
    errors = [f for f in found if f.level is check.Level.ERROR]
    for f in found:
        if f.level is check.Level.WARNING:
            click.echo(f"Warning: {f}", err=True)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PbxError(f"not starting: {errors[0]}{more}; see pypbx check")


# --------------------------------------------------------------------------- status


@click.command()
@config_option
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running PBX: uptime, transports, registrations, bans, counters."""

    cfg = load(ctx)
    try:
        result = call(cfg.socket_path, "status")
    except LocalAPIError as e:
        if not as_json:
            raise
        # a monitor always gets a JSON object, even when the PBX is down
        echo_json({"running": False, "error": str(e), "socket": str(cfg.socket_path)})
        raise click.exceptions.Exit(1) from None
    if as_json:
        echo_json(result)
        return
    if not isinstance(result, dict):
        raise PbxError("pypbx sent an unexpected status reply")
    head = "pypbx"
    if result.get("version"):
        head += f" {result['version']}"
    head += " running"
    if result.get("pid"):
        head += f" (pid {result['pid']})"
    click.echo(f"{head}, up {duration(result.get('uptime'))}")
    transports = result.get("transports") or []
    listening = ", ".join(
        f"{t.get('transport', '?')} {t.get('host', '?')}:{t.get('port', '?')}" if isinstance(t, dict) else str(t)
        for t in transports
    )
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
        click.echo(registrations_table(regs))
    bans = result.get("bans") or []
    if bans:
        click.echo(f"Active bans: {len(bans)}")
        now = time.time()
        click.echo(
            table(
                ["IP", "REASON", "EXPIRES IN"],
                [
                    [
                        b.get("ip"),
                        b.get("reason") or "-",
                        hms(
                            b["expires_in"]
                            if b.get("expires_in") is not None
                            else (b["until"] - now if b.get("until") is not None else None)
                        ),
                    ]
                    for b in bans
                ],
                indent="  ",
            )
        )
    else:
        click.echo("Active bans: none")
    for t in result.get("trunks") or []:
        reason = f" ({t['last_reason']})" if t.get("last_reason") else ""
        click.echo(f"Trunk {t.get('name')}: {t.get('state')}{reason}")
    mwi = result.get("mwi")
    if isinstance(mwi, dict):
        subs = mwi.get("subscriptions") or []
        boxes = sorted({str(s.get("box")) for s in subs})
        click.echo(f"MWI subscriptions: {len(subs)}" + (f" (mailboxes {', '.join(boxes)})" if boxes else ""))
    counters = result.get("counters") or {}
    if counters:
        click.echo(
            textwrap.fill(
                "Security counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())),
                width=100,
                subsequent_indent="  ",
                break_on_hyphens=False,
            )
        )


COMMANDS = [init, run, status]
