"""``pypbx user``: the web desk's logins (pypbx.web.accounts). Passwords are stored as argon2
hashes; a generated password is printed once."""

from __future__ import annotations

import time

import click

from pypbx.cli.context import config_option, on_db
from pypbx.cli.filters import found
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.web import accounts as A

ROLES = [r.value for r in A.Role]


@click.group("user")
@config_option
def user() -> None:
    """Web desk logins: admin, supervisor, agent, wallboard."""


@user.command("add")
@config_option
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the login may see and do.")
@click.option("--agent", "agent_id", default=None, help="The ACD agent this login is (required for --role agent).")
@click.option("--password", default=None, help="The password (default: generated and printed once).")
@click.option("--locale", default="en", metavar="en|fr|ko|ru|zh", help="The web desk's language for NAME.")
@json_option
@click.pass_context
def user_add(
    ctx: click.Context, name: str, role: str, agent_id: str | None, password: str | None, locale: str, as_json: bool
) -> None:
    """Add web login NAME."""
    rec, pw = on_db(ctx, A.add_user, name, role, agent_id=agent_id, password=password, locale=locale)
    if as_json:  # the password too when it was generated (shown once, as in the text output)
        echo_json(
            {
                "name": rec.name,
                "role": rec.role.value,
                "agent": rec.agent_id,
                "password": pw if password is None else None,
            }
        )
        return
    click.echo(f"User {rec.name} added ({rec.role.value}{', agent ' + rec.agent_id if rec.agent_id else ''}).")
    if password is None:
        click.echo(f"Password: {pw}    (shown once: give it to {rec.name})")


@user.command("passwd")
@config_option
@click.argument("name")
@click.option("--password", default=None, help="The new password (default: generated and printed once).")
@json_option
@click.pass_context
def user_passwd(ctx: click.Context, name: str, password: str | None, as_json: bool) -> None:
    """Set NAME's password (also unlocks the login and ends its sessions)."""
    on_db(ctx, found, A.get_user, name)  # no such user: exit 2
    pw = on_db(ctx, A.set_password, name, password)
    if as_json:
        echo_json({"name": name, "password": pw if password is None else None})
        return
    click.echo(f"Password of {name} changed.")
    if password is None:
        click.echo(f"Password: {pw}    (shown once)")


@user.command("remove")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def user_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove web login NAME (its sessions end)."""
    on_db(ctx, found, A.get_user, name)  # no such user: exit 2
    on_db(ctx, A.remove_user, name)
    done(as_json, {"name": name, "removed": True}, f"User {name} removed.")


@user.command("list")
@config_option
@json_option
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """The web logins."""
    now = time.time()
    users = [u.to_dict(now) for u in on_db(ctx, A.list_users)]
    if as_json:
        echo_json(users)
        return
    if not users:
        click.echo("No web users (pypbx user add NAME --role R).")
        return
    rows = [
        [u["name"], u["role"], u["agent"] or "-", "locked" if u["locked"] else "-", ts(u["created_at"])]  # type: ignore[arg-type]
        for u in users
    ]
    click.echo(table(["NAME", "ROLE", "AGENT", "LOCKED", "CREATED"], rows))


@user.command("locale")
@config_option
@click.argument("name")
@click.argument("locale", metavar="en|fr|ko|ru|zh")
@json_option
@click.pass_context
def user_locale(ctx: click.Context, name: str, locale: str, as_json: bool) -> None:
    """Set the language the web desk speaks to NAME."""
    lang = on_db(ctx, A.set_locale, name, locale)
    done(as_json, {"name": name, "locale": lang}, f"User {name} now sees the web desk in {lang}.")
