"""``pypbx agent``: ACD agents, their skills and states (pypbx.acdstore).

After a change the running PBX is told ``{"cmd": "agent_state", "agent": ID}`` ("re-read
this agent from the database"); a PBX not running, or not knowing the command yet, is fine.
"""

from __future__ import annotations

import time
from typing import Any

import click

from pypbx import acdstore as S
from pypbx import sitetime
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import require
from pypbx.cli.output import done, echo_json, hms, json_option, table
from pypbx.cli.queue import secs, state_text, unknown_command
from pypbx.db import Database
from pypbx.errors import UnknownNameError
from pypbx.localapi_client import LocalAPIError, NotRunningError, call


def _notify_agent(ctx: click.Context, agent_id: str) -> None:
    """Tell the running PBX that an agent changed; quiet when it is not running or does not
    know the command yet (it re-reads the database anyway)."""

    cfg = load(ctx)
    try:
        call(cfg.socket_path, "agent_state", timeout=3.0, agent=agent_id)
    except NotRunningError:
        pass
    except LocalAPIError as e:
        if not unknown_command(e):
            click.echo(
                f"Note: the running PBX did not take the change now ({e}); it will pick it up from the database.",
                err=True,
            )


def _agent_since(a: S.AgentRecord, now: float) -> str:
    return hms(now - a.state_since) if a.state_since else "-"


@click.group("agent")
@config_option
def agent_group() -> None:
    """ACD agents: people who take queue calls, their skills and states."""


@agent_group.command("add")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option("--name", required=True, help="The person's name, e.g. 'Alice Kim'.")
@click.option("--skills", default=None, metavar="SKILL:LEVEL,...", help="e.g. new_patients:8,korean:5 (levels 1-10).")
@click.option("--wrap-up", default=None, metavar="N", help="Wrap-up seconds for this agent (overrides the queue's).")
@json_option
@click.pass_context
def agent_add(
    ctx: click.Context, agent_id: str, name: str, skills: str | None, wrap_up: str | None, as_json: bool
) -> None:
    """Add agent ID (their login: lower-case letters, digits, '.', '_' or '-')."""
    # acdstore parses the option's text (seconds) itself: its one-line error, not click's
    a = on_db(ctx, S.add_agent, agent_id, name, skills, wrap_up)  # type: ignore[arg-type]
    done(as_json, a.to_dict(), f"Agent {a.id} added ({a.name}), skills {S.format_skills(a.skills)}.")
    _notify_agent(ctx, a.id)


@agent_group.command("list")
@config_option
@json_option
@click.pass_context
def agent_list(ctx: click.Context, as_json: bool) -> None:
    """List agents with their saved states."""
    agents = on_db(ctx, S.list_agents)
    if as_json:
        echo_json([a.to_dict() for a in agents])
        return
    if not agents:
        click.echo("No agents. Add one with: pypbx agent add alice --name 'Alice Kim' --skills new_patients:8")
        return
    now = time.time()
    click.echo(
        table(
            ["ID", "NAME", "STATE", "EXTENSION", "FOR", "SKILLS", "WRAP-UP"],
            [
                [
                    a.id,
                    a.name,
                    state_text(a.state, a.pause_reason),
                    a.extension or "-",
                    _agent_since(a, now),
                    S.format_skills(a.skills),
                    secs(a.wrap_up),
                ]
                for a in agents
            ],
        )
    )


async def _agent_detail(db: Database, agent_id: str) -> tuple[S.AgentRecord, list[S.QueueRecord], list[dict[str, Any]]]:
    a = await S.get_agent(db, agent_id)
    return a, await S.list_queues(db), await S.agent_events(db, a.id, limit=10)


@agent_group.command("show")
@config_option
@click.argument("agent_id", metavar="ID")
@json_option
@click.pass_context
def agent_show(ctx: click.Context, agent_id: str, as_json: bool) -> None:
    """Show agent ID, the queues they can answer and their recent state changes."""
    require(ctx, "agent", agent_id)
    a, queues, events = on_db(ctx, _agent_detail, agent_id)
    qs = [q.name for q in queues if S.qualified_agents(q.config, [a])]
    if as_json:
        echo_json({**a.to_dict(), "queues": qs, "events": events})
        return
    now = time.time()
    click.echo(f"{'Agent:':12}{a.id}")
    click.echo(f"{'Name:':12}{a.name}")
    click.echo(f"{'State:':12}{state_text(a.state, a.pause_reason)} for {_agent_since(a, now)} (saved)")
    click.echo(f"{'Extension:':12}{a.extension or '-'}")
    click.echo(f"{'Skills:':12}{S.format_skills(a.skills)}")
    click.echo(f"{'Wrap-up:':12}{secs(a.wrap_up) if a.wrap_up is not None else 'as the queue'}")
    click.echo(f"{'Queues:':12}{', '.join(qs) or '-'}")
    if events:
        click.echo("Recent events:")
        click.echo(
            table(
                ["TIME", "EVENT", "DETAIL"],
                [
                    [
                        sitetime.local(e["ts"]).strftime("%Y-%m-%d %H:%M:%S"),
                        e["kind"],
                        " ".join(f"{k}={v}" for k, v in sorted(e["detail"].items())) or "-",
                    ]
                    for e in events
                ],
                indent="  ",
            )
        )


@agent_group.command("skills")
@config_option
@click.argument("agent_id", metavar="ID")
@click.argument("skills", metavar="SKILL:LEVEL,...")
@json_option
@click.pass_context
def agent_skills(ctx: click.Context, agent_id: str, skills: str, as_json: bool = False) -> None:
    """Replace the skills of agent ID, e.g. new_patients:8,korean:5 ('' = none)."""
    require(ctx, "agent", agent_id)
    a = on_db(ctx, S.set_skills, agent_id, skills)
    done(as_json, a.to_dict(), f"Agent {a.id} skills: {S.format_skills(a.skills)}")
    _notify_agent(ctx, a.id)


@agent_group.command("login")
@config_option
@click.argument("agent_id", metavar="ID")
@click.argument("extension")
@json_option
@click.pass_context
def agent_login(ctx: click.Context, agent_id: str, extension: str, as_json: bool = False) -> None:
    """Log agent ID in at EXTENSION (or move them there from another desk)."""
    require(ctx, "agent", agent_id)
    require(ctx, "extension", extension)
    a, moved_from = on_db(ctx, S.login, agent_id, extension)
    if as_json:
        echo_json({**a.to_dict(), "moved_from": moved_from})
        _notify_agent(ctx, a.id)
        return
    if moved_from:
        click.echo(f"Agent {a.id} moved from {moved_from} to {a.extension} ({state_text(a.state, a.pause_reason)}).")
    else:
        click.echo(f"Agent {a.id} logged in at {a.extension} (available).")
    _notify_agent(ctx, a.id)


@agent_group.command("logout")
@config_option
@click.argument("agent_id", metavar="ID")
@json_option
@click.pass_context
def agent_logout(ctx: click.Context, agent_id: str, as_json: bool = False) -> None:
    """Log agent ID out."""
    require(ctx, "agent", agent_id)
    before = on_db(ctx, S.get_agent, agent_id)
    a = on_db(ctx, S.logout, agent_id)
    done(
        as_json,
        a.to_dict(),
        f"Agent {a.id} logged out" + (f" (was at {before.extension})." if before.extension else "."),
    )
    _notify_agent(ctx, a.id)


@agent_group.command("pause")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option(
    "--reason",
    default="break",
    show_default=True,
    metavar="break|lunch|admin|other",
    help="Why: break, lunch, admin or other.",
)
@json_option
@click.pass_context
def agent_pause(ctx: click.Context, agent_id: str, reason: str, as_json: bool = False) -> None:
    """Pause agent ID: no queue calls until unpaused."""
    require(ctx, "agent", agent_id)
    if reason.strip().lower() not in ("break", "lunch", "admin", "other"):
        raise UnknownNameError("pause reason", reason, ("break", "lunch", "admin", "other"))
    a = on_db(ctx, S.pause, agent_id, reason)
    done(as_json, a.to_dict(), f"Agent {a.id} paused ({a.pause_reason}).")
    _notify_agent(ctx, a.id)


@agent_group.command("unpause")
@config_option
@click.argument("agent_id", metavar="ID")
@json_option
@click.pass_context
def agent_unpause(ctx: click.Context, agent_id: str, as_json: bool = False) -> None:
    """Make paused agent ID available again."""
    require(ctx, "agent", agent_id)
    a = on_db(ctx, S.unpause, agent_id)
    done(as_json, a.to_dict(), f"Agent {a.id} available" + (f" at {a.extension}." if a.extension else "."))
    _notify_agent(ctx, a.id)


@agent_group.command("remove")
@config_option
@click.argument("agent_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def agent_remove(ctx: click.Context, agent_id: str, yes: bool, as_json: bool) -> None:
    """Remove agent ID (logged out first; their history stays)."""
    require(ctx, "agent", agent_id)
    a = on_db(ctx, S.get_agent, agent_id)
    if not yes:
        click.confirm(f"Remove agent {a.id} ({a.name})?", abort=True)
    on_db(ctx, S.remove_agent, a.id)
    done(as_json, {"agent": a.id, "removed": True}, f"Agent {a.id} removed.")
    _notify_agent(ctx, a.id)
