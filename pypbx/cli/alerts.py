"""``pypbx alerts``: the alert episodes (disk, trunks, workers, recordings, backups)."""

from __future__ import annotations

import click

from pypbx.alerts import list_alerts
from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import echo_json, json_option, table, ts


@click.group("alerts")
def alerts() -> None:
    """Alerts raised by `pypbx run` (sent to [alerts] email / webhook_url)."""


@alerts.command("list")
@config_option
@click.option("--open", "open_only", is_flag=True, help="Only the alerts not resolved yet.")
@click.option("--limit", default=100, show_default=True, help="At most this many rows (newest first).")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, open_only: bool, limit: int, as_json: bool) -> None:
    """The alerts, newest first: what, since when, resolved when.

    Example: pypbx alerts list --open
    """
    rows = on_db(ctx, list_alerts, open_only=open_only, limit=limit)
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No open alerts." if open_only else "No alerts.")
    else:
        click.echo(
            table(
                ["RAISED", "RESOLVED", "ALERT", "SUBJECT", "MESSAGE"],
                [
                    (
                        ts(r["raised_at"]),
                        ts(r["resolved_at"]) if r["resolved_at"] else "OPEN",
                        r["kind"],
                        r["subject"] or "-",
                        r["message"],
                    )
                    for r in rows
                ],
            )
        )
