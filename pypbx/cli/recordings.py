"""``pypbx recordings``: find call recordings."""

from __future__ import annotations

import click

from pypbx.cli.calls import call_filters, calls_table, search_calls
from pypbx.cli.context import config_option, load, run
from pypbx.cli.output import echo_json


@click.command("recordings")
@config_option
@call_filters
@click.pass_context
def recordings(
    ctx: click.Context,
    date: str | None,
    since: str | None,
    until: str | None,
    number: str | None,
    queue: str | None,
    agent: str | None,
    disposition: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Find recordings by number, date, queue and agent."""
    rows = run(
        search_calls(load(ctx), date, since, until, number, queue, agent, disposition, limit, recorded_only=True)
    )
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No recordings match.")
    else:
        click.echo(calls_table(rows))
