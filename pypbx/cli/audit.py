"""``pypbx audit``: the web desk's audit log — who did what, when, from where."""

from __future__ import annotations

import click

from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import echo_json, json_option, table, ts
from pypbx.cli.period import parse_when
from pypbx.web import accounts as A


@click.command("audit")
@config_option
@click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM], 'today', 'yesterday').")
@click.option(
    "--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000), help="At most this many lines."
)
@json_option
@click.pass_context
def audit_cmd(ctx: click.Context, since: str | None, limit: int, as_json: bool) -> None:
    """The audit log of the web desk and the user/token commands, oldest first."""
    lines = on_db(ctx, A.list_audit, parse_when(since, "--since"), limit)
    if as_json:
        echo_json(lines)
        return
    if not lines:
        click.echo("The audit log is empty.")
        return
    rows = [
        [
            ts(a["at"]),
            a["who"],
            a["action"],
            a["target"] or "-",
            a["detail"] or "-",
            a["ip"] or "-",
            "ok" if a["ok"] else "REFUSED",
        ]
        for a in lines
    ]
    click.echo(table(["WHEN", "WHO", "ACTION", "TARGET", "DETAIL", "FROM", "RESULT"], rows))
