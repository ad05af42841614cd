"""``pypbx reason``: reason codes (pypbx.reasons): why patients call.

``add CODE "label" [--digit N] [--notify EMAIL]``, ``list``, ``edit``, ``remove`` work on the
database (the running PBX reads it on every key press); ``set CALL CODE`` goes through the
running PBX's local API (the call's books, the event stream, the notification).
"""

from __future__ import annotations

import click

from pypbx import reasons as R
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import require
from pypbx.cli.output import echo_json, json_option, table
from pypbx.localapi_client import call


@click.group("reason")
@config_option
def reason() -> None:
    """Reason codes: the agent keys *7 then the reason's digit during the call (or dials *7N
    in wrap-up); `pypbx report reasons` counts them."""


@reason.command("add")
@config_option
@click.argument("code")
@click.argument("label")
@click.option("--digit", default=None, help="The key after *7 on the agent's phone (0-9).")
@click.option("--notify", default="", help="E-mail these addresses (comma-separated) when it is set.")
@json_option
@click.pass_context
def reason_add(ctx: click.Context, code: str, label: str, digit: str | None, notify: str, as_json: bool) -> None:
    """Add reason CODE ("label")."""

    r = on_db(ctx, R.add_reason, code, label, digit, notify)
    if as_json:
        echo_json(r.to_dict())
        return
    click.echo(
        f"Reason {r.code} ({r.label}) added"
        + (f", key *7{r.digit}" if r.digit else "")
        + (f", e-mails {r.notify}" if r.notify else "")
        + "."
    )


@reason.command("edit")
@config_option
@click.argument("code")
@click.option("--label", default=None, help="New label.")
@click.option("--digit", default=None, help="New key after *7 ('' = none).")
@click.option("--notify", default=None, help="New addresses to e-mail ('' = none).")
@json_option
@click.pass_context
def reason_edit(
    ctx: click.Context, code: str, label: str | None, digit: str | None, notify: str | None, as_json: bool
) -> None:
    """Change a reason's label, digit or addresses."""
    require(ctx, "reason", code)

    r = on_db(ctx, R.edit_reason, code, label=label, digit=digit, notify=notify)
    if as_json:
        echo_json(r.to_dict())
        return
    click.echo(f"Reason {r.code}: {r.label}, key {('*7' + r.digit) if r.digit else '-'}, e-mails {r.notify or '-'}.")


@reason.command("remove")
@config_option
@click.argument("code")
@json_option
@click.pass_context
def reason_remove(ctx: click.Context, code: str, as_json: bool) -> None:
    """Remove a reason: deleted if no call has it, else retired (history and reports keep it)."""
    require(ctx, "reason", code)

    outcome = on_db(ctx, R.remove_reason, code)
    if as_json:
        echo_json({"code": code, "outcome": outcome})
        return
    if outcome == "retired":
        click.echo(f"Reason {code} retired: calls have it, so the reports keep it; it cannot be set any more.")
    else:
        click.echo(f"Reason {code} deleted.")


@reason.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Also the retired reasons.")
@json_option
@click.pass_context
def reason_list(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """The reason codes."""

    rows = on_db(ctx, R.list_reasons, retired=show_all)
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo('No reason codes. Add one: pypbx reason add appointment "Appointment" --digit 1')
        return
    click.echo(
        table(
            ["CODE", "LABEL", "KEY", "NOTIFY"] + (["RETIRED"] if show_all else []),
            [
                [r.code, r.label, f"*7{r.digit}" if r.digit else "-", r.notify or "-"]
                + (["yes" if r.retired else ""] if show_all else [])
                for r in rows
            ],
        )
    )


@reason.command("set")
@config_option
@click.argument("call_id")
@click.argument("code")
@click.option("--agent", default=None, help="The agent it is set for (default: the call's agent).")
@json_option
@click.pass_context
def reason_set(ctx: click.Context, call_id: str, code: str, agent: str | None, as_json: bool) -> None:
    """Set the reason of call CALL_ID (or a prefix of it) through the running PBX."""

    result = call(load(ctx).socket_path, "set_reason", call_id=call_id, code=code, agent=agent)
    if as_json:
        echo_json(result)
        return
    if isinstance(result, dict):
        click.echo(f"Call {str(result.get('call_id'))[:12]}: reason {result.get('code')} ({result.get('label')}).")
