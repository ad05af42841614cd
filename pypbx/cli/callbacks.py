"""``pypbx callbacks``: patients waiting to be called back (pypbx.acdstore)."""

from __future__ import annotations

import click

from pypbx import acdstore as S
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import check_filters
from pypbx.cli.output import echo_json, json_option, table, ts
from pypbx.numbers import display


@click.command("callbacks")
@config_option
@click.option(
    "--status",
    default="pending",
    show_default=True,
    metavar="pending|done|failed|all",
    help="pending (including those being dialled now), done, failed or all.",
)
@click.option("--queue", default=None, help="Only this queue.")
@json_option
@click.pass_context
def callbacks_cmd(ctx: click.Context, status: str, queue: str | None, as_json: bool) -> None:
    """Patients waiting to be called back (and those already called)."""
    if queue is not None:
        on_db(ctx, check_filters, queue=queue)
    cbs = on_db(ctx, S.list_callbacks, status, queue)
    region = load(ctx).numbers.region
    if as_json:
        echo_json([c.to_dict() for c in cbs])
        return
    if not cbs:
        click.echo(f"No {status.strip().lower()} callbacks." if status.strip().lower() != "all" else "No callbacks.")
        return
    click.echo(
        table(
            ["ID", "NUMBER", "QUEUE", "REQUESTED", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "AGENT", "RESULT", "MERGED"],
            [
                [
                    c.id,
                    display(c.number, region),
                    c.queue,
                    ts(c.requested_at),
                    c.status,
                    c.attempts,
                    ts(c.last_attempt_at),
                    c.agent or "-",
                    c.result or "-",
                    c.merged_count,
                ]
                for c in cbs
            ],
        )
    )
