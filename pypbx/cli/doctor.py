"""``pypbx doctor``: the PBX's health in OK / WARN / FAIL lines (pypbx.doctor); exit code by
the worst: 0 OK, 1 WARN, 2 FAIL."""

from __future__ import annotations

import asyncio

import click

from pypbx import doctor as D
from pypbx.cli.context import config_option, load
from pypbx.cli.output import echo_json, json_option
from pypbx.db import open_db
from pypbx.errors import PbxError
from pypbx.localapi_client import LocalAPIError, request


@click.command("doctor")
@config_option
@json_option
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check the PBX's health: running, ports, disk (days left), database integrity, trunks,
    media workers, clock, certificates, webhooks, open alerts. Exit 0 OK, 1 WARN, 2 FAIL.

    Example: pypbx doctor --json
    """
    cfg = load(ctx)

    async def go() -> list[D.Check]:
        status, error = None, ""
        try:
            reply = await request(cfg.socket_path, "status", timeout=3.0)
            status = reply if isinstance(reply, dict) else None
        except LocalAPIError as exc:
            error = str(exc)
        synced = D.ntp_synchronised()
        try:
            async with open_db(cfg.db_path, cfg.numbers.region) as db:
                return await D.run(cfg, db, status, status_error=error, synced=synced)
        except PbxError as exc:  # e.g. a full disk: "cannot open database ...: disk I/O error"
            return await D.run(cfg, None, status, status_error=error, db_error=str(exc), synced=synced)

    checks = asyncio.run(go())
    level = D.worst(checks)
    if as_json:
        echo_json({"level": level.name, "checks": [D.as_dict(c) for c in checks]})
    else:
        for c in checks:
            click.echo(f"{c.level.name:<4} {c.name}: {c.detail}")
    raise click.exceptions.Exit(int(level))
