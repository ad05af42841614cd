"""``pypbx token``: bearer tokens for the web desk's JSON API (pypbx.web.accounts). Only a
hash is stored: the token is printed once."""

from __future__ import annotations

import click

from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.errors import PbxUsageError, UnknownNameError
from pypbx.web import accounts as A

ROLES = [r.value for r in A.Role]


@click.group("token")
@config_option
def token() -> None:
    """API tokens (Authorization: Bearer …; a wallboard token also opens /board?token=…)."""


@token.command("add")
@config_option
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may see and do.")
@click.option("--name", default="", help="A label (e.g. 'waiting room TV').")
@click.option("--agent", "agent_id", default=None, help="The ACD agent (required for --role agent).")
@json_option
@click.pass_context
def token_add(ctx: click.Context, role: str, name: str, agent_id: str | None, as_json: bool) -> None:
    """Create an API token; it is printed once."""
    rec, tok = on_db(ctx, A.add_token, role, name=name, agent_id=agent_id)
    if as_json:  # the token itself is in it: shown once, as in the text output
        echo_json({**rec, "token": tok})
        return
    click.echo(f"Token {rec['id']} ({rec['role']}, {rec['name']}) created. Shown once:")
    click.echo(tok)


@token.command("list")
@config_option
@json_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """The API tokens (never the tokens themselves)."""
    toks = on_db(ctx, A.list_tokens)
    if as_json:
        echo_json(toks)
        return
    if not toks:
        click.echo("No API tokens (pypbx token add --role R).")
        return
    rows = [
        [t["id"], t["name"], t["role"], t["agent"] or "-", ts(t["created_at"]), ts(t["last_used_at"])] for t in toks
    ]
    click.echo(table(["ID", "NAME", "ROLE", "AGENT", "CREATED", "LAST USED"], rows))


@token.command("remove")
@config_option
@click.argument("token_id")
@json_option
@click.pass_context
def token_remove(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke token TOKEN_ID (see token list)."""
    if not token_id.isdigit():
        raise PbxUsageError(f"expected a token id (a number from pypbx token list), got {token_id!r}")
    ids = [str(t["id"]) for t in on_db(ctx, A.list_tokens)]
    if token_id not in ids:
        raise UnknownNameError("token", token_id, ids)
    on_db(ctx, A.remove_token, int(token_id))
    done(as_json, {"id": int(token_id), "removed": True}, f"Token {token_id} removed.")
