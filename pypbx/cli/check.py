"""``pypbx check``: dangling references, unreachable objects and risky settings (pypbx.check)."""

from __future__ import annotations

import click

from pypbx import check as K
from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import echo_json, json_option


@click.command("check")
@config_option
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check the configuration and database: dangling references (errors), unreachable
    objects and risky settings (warnings). Exit 1 when there is an error.

    Example: pypbx check --json
    """
    found = on_db(ctx, K.check)
    errors = [f for f in found if f.level is K.Level.ERROR]
    if as_json:
        echo_json(
            {
                "errors": [f.to_dict() for f in errors],
                "warnings": [f.to_dict() for f in found if f.level is K.Level.WARNING],
            }
        )
    elif not found:
        click.echo("No problems found.")
    else:
        for level, title in ((K.Level.ERROR, "Errors"), (K.Level.WARNING, "Warnings")):
            these = [f for f in found if f.level is level]
            if these:
                click.echo(f"{title} ({len(these)}):")
                for f in these:
                    click.echo(f"  {f}")
    if errors:
        raise click.exceptions.Exit(1)
