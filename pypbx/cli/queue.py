"""``pypbx queue``: ACD queues (pypbx.acdstore), live status from the running PBX.

Live parts ask the running PBX's local API::

  {"cmd": "queue_status", "queue": NAME} ->
      {"waiting": [{"call_id", "number", "position", "wait" (s), "priority", "is_callback",
                    "ringing": [agent ids]}, ...],
       "agents": [{"id", "name", "state", "pause_reason", "extension", "since" (s in state),
                   "calls_taken"}, ...],
       "ewt": seconds or null}                         (every key optional)

A PBX that is not running or does not know a command yet is not an error: the CLI shows
the saved configuration and states (and the core re-reads the DB on PRAGMA data_version).
"""

from __future__ import annotations

import time
from typing import Any

import click

from acd.model import QueueConfig
from pypbx import acdstore as S
from pypbx import prompts as P
from pypbx.acdstore import AcdError
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import remove_unused, require
from pypbx.cli.missed import (
    QUEUE_CALLBACK_OPTIONS,
    check_queue_callback,
    pop_queue_callback,
    queue_callback_options,
    set_queue_callback,
)
from pypbx.cli.output import (
    F,
    check_language,
    done,
    duration,
    echo_json,
    hms,
    json_option,
    languages_help,
    prompt_languages,
    table,
)
from pypbx.db import Database
from pypbx.errors import PbxUsageError, UnknownNameError
from pypbx.localapi_client import LocalAPIError, NotRunningError, call
from pypbx.missed import queue_callback_settings


def unknown_command(err: Exception) -> bool:
    """The running PBX does not know this local-API command (an older version)."""
    return str(err).startswith("unknown command")


def secs(v: float | None) -> str:
    return "-" if v is None else f"{v:g}s"


def state_text(state: str | None, reason: str | None) -> str:
    return f"{state or '-'}" + (f" ({reason})" if reason else "")


def _check_strategy(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """An unknown strategy is bad input (exit 2), like any bad option value."""
    if value is not None and value.strip().lower().replace("-", "_") not in S.strategy_names():
        raise UnknownNameError("strategy", value, S.strategy_names())
    return value


def _queue_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--strategy",
                default=None,
                metavar="NAME",
                callback=_check_strategy,
                help="ring_all, longest_idle, round_robin, fewest_calls, least_talk_time, "
                "best_skill_then_longest_idle or random (default longest_idle).",
            ),
            click.option(
                "--skills",
                default=None,
                metavar="SKILL:LEVEL,...",
                help="Required skills with minimum levels 1-10, e.g. new_patients:8,korean:5 ('' = none).",
            ),
            click.option("--ring-timeout", default=None, metavar="N", help="Seconds to ring an agent (default 15)."),
            click.option(
                "--wrap-up", default=None, metavar="N", help="Seconds after a call before the next (default 10)."
            ),
            click.option(
                "--max-wait",
                default=None,
                metavar="N",
                help="Longest wait in seconds, then the fallback (0 = no limit, the default).",
            ),
            click.option(
                "--max-length", default=None, metavar="N", help="Most callers waiting (0 = no limit, the default)."
            ),
            click.option(
                "--when-empty",
                default=None,
                metavar="join|refuse",
                help="Nobody logged in who could answer: queue anyway (join, default) or send to --fallback.",
            ),
            click.option(
                "--fallback",
                default=None,
                metavar="TARGET",
                help="Where refused / timed-out callers go: queue:NAME, extension:1001, ring_group:NAME, "
                "external:+3312345, voicemail:BOX (or 'voicemail' = the box named like the queue; "
                "'none' to clear).",
            ),
            click.option("--overflow-after", default=None, metavar="N", help="Overflow after N seconds of waiting..."),
            click.option(
                "--overflow-to", default=None, metavar="TARGET", help="...to this destination ('none' to clear)."
            ),
            click.option(
                "--relax",
                "relaxation",
                default=None,
                metavar="SECONDS:LEVEL,...",
                help="Skill relaxation, e.g. 30:5,60:1 (after 30 s accept level 5 ...; 'none' to clear).",
            ),
            click.option(
                "--announce-every",
                "announce_interval",
                default=None,
                metavar="N",
                help="Repeat position and wait every N seconds (0 = on entry only; default 60).",
            ),
            click.option(
                "--callback/--no-callback",
                "callback_allowed",
                default=None,
                help="Offer 'press 1 to be called back' (default on).",
            ),
            click.option("--language", default=None, metavar="|".join(prompt_languages()), help=languages_help()),
        ]
    ):
        f = opt(f)
    return f


def _urgent_options(f: F) -> F:
    """Issue 10's settings: entry priority, the urgent guidance prompt, the ring-no-answer
    miss count, overflow when every agent is busy."""
    for opt in reversed(
        [
            click.option(
                "--priority",
                default=None,
                metavar="N",
                help="Entry priority 0-100 of every caller in this queue (higher is answered first; "
                "a DID's, route rule's or IVR option's higher priority wins; default 0).",
            ),
            click.option(
                "--urgent-prompt",
                default=None,
                metavar="PROMPT",
                help="Prompt id played to a waiting caller with priority above 0, after the greeting "
                "and with each announcement (see pypbx prompts list; 'none' to clear).",
            ),
            click.option(
                "--rona-misses",
                "rna_misses_before_pause",
                default=None,
                metavar="N",
                help="Rings an agent may miss in a row before being paused (default 1; 0 = never pause).",
            ),
            click.option(
                "--overflow-when-busy/--no-overflow-when-busy",
                "overflow_when_busy",
                default=None,
                help="When every logged-in agent is busy (on a call or in wrap-up; none free or ringing), "
                "a new caller goes to --overflow-to at once (default off).",
            ),
        ]
    ):
        f = opt(f)
    return f


_URGENT_OPTION_NAMES = ("priority", "urgent_prompt", "rna_misses_before_pause", "overflow_when_busy")


def _check_prompt(ctx: click.Context, opts: dict[str, QueueOption]) -> None:
    """An --urgent-prompt must exist (shipped, or imported into <data_dir>/prompts) and a
    --language be one prompts are made in: else one line naming the closest, exit 2."""
    lang = opts.get("language")
    check_language(lang if isinstance(lang, str) else None)
    pid = opts.get("urgent_prompt")
    if isinstance(pid, str):
        prompts_dir = load(ctx).data_dir / "prompts"
        try:
            opts["urgent_prompt"] = S.check_prompt_id(pid, prompts_dir)
        except AcdError as e:
            if not P.PROMPT_ID.match(pid.strip()):
                raise PbxUsageError(str(e)) from None
            known = set(P.shipped_ids()) | {f.stem for f in prompts_dir.glob("*/*.wav")}
            raise UnknownNameError("prompt", pid.strip(), known) from None


def _urgent_lines(c: QueueConfig) -> list[tuple[str, str]]:
    """``queue show`` lines of issue 10's settings that differ from the defaults."""
    lines = []
    if c.priority:
        lines.append(("Priority", str(c.priority)))
    if c.urgent_prompt:
        lines.append(("Urgent prompt", c.urgent_prompt))
    if c.rna_misses_before_pause != 1:
        n = c.rna_misses_before_pause
        lines.append(("Pause after", f"{n} missed rings in a row" if n else "never (missed rings)"))
    if c.overflow_when_busy:
        lines.append(
            ("When all busy", "overflow at once" + (f" to {S.format_target(c.overflow.target)}" if c.overflow else ""))
        )
    return lines


_QUEUE_OPTION_NAMES = (
    "strategy",
    "skills",
    "ring_timeout",
    "wrap_up",
    "max_wait",
    "max_length",
    "when_empty",
    "fallback",
    "overflow_after",
    "overflow_to",
    "relaxation",
    "announce_interval",
    "callback_allowed",
    "language",
    *QUEUE_CALLBACK_OPTIONS,
)

#: A queue option's value as click hands it over (text, or the --callback flag).
QueueOption = str | bool | None


def _queue_lines(rec: S.QueueRecord) -> list[tuple[str, str]]:
    c = rec.config
    return [
        ("Queue", c.name),
        ("Strategy", c.strategy.value),
        ("Skills", S.format_skills(c.required_skills)),
        ("Ring timeout", secs(c.ring_timeout)),
        ("Wrap-up", secs(c.wrap_up)),
        (
            "Max wait",
            (secs(c.max_wait) + (f", then {S.format_target(c.fallback)}" if c.fallback else ""))
            if c.max_wait
            else "no limit",
        ),
        ("Max length", str(c.max_length) if c.max_length else "no limit"),
        ("When empty", c.join_empty.value + (f" (fallback {S.format_target(c.fallback)})" if c.fallback else "")),
        ("Overflow", S.format_overflow(c.overflow)),
        ("Relaxation", S.format_relaxation(c.relaxation)),
        ("Announce every", secs(c.announce_interval) if c.announce_interval else "on entry only"),
        ("Callback", "offered" if c.callback_allowed else "off"),
        ("Language", c.language),
        *_urgent_lines(c),
        *([("Status", f"closed: new callers go to {S.format_target(S.closed_destination(c))}")] if c.closed else []),
    ]


@click.group("queue")
@config_option
def queue_group() -> None:
    """ACD queues: skills, strategy, timers, overflow, callbacks."""


@queue_group.command("add")
@config_option
@click.argument("name")
@_queue_options
@_urgent_options
@queue_callback_options
@click.pass_context
@click.option(
    "--number",
    default=None,
    metavar="DIGITS",
    help="A number any extension can dial to reach the queue, e.g. 600 (not an extension's).",
)
@json_option
def queue_add(
    ctx: click.Context, /, name: str, number: str | None = None, as_json: bool = False, **opts: QueueOption
) -> None:
    """Add queue NAME (lower-case letters, digits, _ or -)."""
    _check_prompt(ctx, opts)
    auto_callback, callback_hours = pop_queue_callback(opts)
    check_queue_callback(ctx, callback_hours)
    rec = on_db(ctx, S.add_queue_numbered, name, number, **opts)
    set_queue_callback(ctx, rec.name, auto_callback, callback_hours)
    c = rec.config
    done(
        as_json,
        {**rec.to_dict(), "number": number},
        f"Queue {c.name} added ({c.strategy.value}, skills {S.format_skills(c.required_skills)})"
        + (f", number {number}." if number else "."),
    )


async def _queues_and_agents(db: Database) -> tuple[list[S.QueueRecord], list[S.AgentRecord]]:
    return await S.list_queues(db), await S.list_agents(db)


@queue_group.command("list")
@config_option
@json_option
@click.pass_context
def queue_list(ctx: click.Context, as_json: bool) -> None:
    """List queues."""
    queues, agents = on_db(ctx, _queues_and_agents)
    if as_json:
        echo_json(
            [
                {
                    **q.to_dict(),
                    "agents_qualified": len(S.qualified_agents(q.config, agents)),
                    "agents_logged_in": sum(1 for a in S.qualified_agents(q.config, agents) if a.logged_in),
                }
                for q in queues
            ]
        )
        return
    if not queues:
        click.echo("No queues. Add one with: pypbx queue add front_desk")
        return
    rows = []
    for q in queues:
        c = q.config
        quals = S.qualified_agents(c, agents)
        rows.append(
            [
                c.name,
                c.strategy.value,
                S.format_skills(c.required_skills),
                secs(c.ring_timeout),
                secs(c.wrap_up),
                S.format_overflow(c.overflow),
                c.join_empty.value,
                "yes" if c.callback_allowed else "no",
                c.language,
                f"{sum(1 for a in quals if a.logged_in)}/{len(quals)}",
            ]
        )
    click.echo(
        table(
            [
                "NAME",
                "STRATEGY",
                "SKILLS",
                "RING",
                "WRAP-UP",
                "OVERFLOW",
                "WHEN EMPTY",
                "CALLBACK",
                "LANG",
                "AGENTS IN/ALL",
            ],
            rows,
        )
    )


async def _queue_and_agents(db: Database, name: str) -> tuple[S.QueueRecord, list[S.AgentRecord]]:
    return await S.get_queue(db, name), await S.list_agents(db)


@queue_group.command("show")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def queue_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show queue NAME: its settings, and (live when the PBX is running) the callers waiting
    with their positions and waits, and the agents who can answer with their states."""
    require(ctx, "queue", name)

    cfg = load(ctx)
    rec, agents = on_db(ctx, _queue_and_agents, name)
    auto = on_db(ctx, queue_callback_settings).get(rec.name)
    quals = S.qualified_agents(rec.config, agents)
    now = time.time()
    live, note = False, ""
    waiting: list[dict[str, Any]] = []
    live_agents: list[dict[str, Any]] | None = None
    ewt = None
    try:
        res = call(cfg.socket_path, "queue_status", queue=rec.name)
        if not isinstance(res, dict):
            raise LocalAPIError("pypbx sent an unexpected queue_status reply")
        live = True
        waiting = list(res.get("waiting") or [])
        live_agents = list(res["agents"]) if res.get("agents") is not None else None
        ewt = res.get("ewt")
    except NotRunningError:
        note = "pypbx is not running"
    except LocalAPIError as e:
        note = (
            "the running pypbx does not report queue status yet"
            if unknown_command(e)
            else f"live data unavailable: {e}"
        )
    if live_agents is None:
        live_agents = [
            {
                "id": a.id,
                "name": a.name,
                "state": a.state,
                "pause_reason": a.pause_reason,
                "extension": a.extension,
                "since": (now - a.state_since) if a.state_since else None,
            }
            for a in quals
        ]
    if as_json:
        echo_json(
            {
                **rec.to_dict(),
                "auto_callback": bool(auto and auto["auto_callback"]),
                "callback_hours": auto["callback_hours"] if auto else None,
                "live": live,
                "note": note or None,
                "waiting": waiting,
                "ewt": ewt,
                "agents": live_agents,
            }
        )
        return
    for label, value in _queue_lines(rec):
        click.echo(f"{label + ':':16}{value}")
    if auto and auto["auto_callback"]:
        c = rec.config
        click.echo(
            f"{'Auto callback:':16}on, {c.callback_max_attempts} attempts {secs(c.callback_retry_delay)} apart"
            + (f", in hours {auto['callback_hours']}" if auto["callback_hours"] else ", any time")
        )
    if live:
        head = f"Waiting: {len(waiting)}" + (
            f" (estimated wait for a new caller {duration(ewt)})" if ewt is not None else ""
        )
        click.echo(head)
        if waiting:
            click.echo(
                table(
                    ["POS", "CALLER", "LINE", "WAITING", "PRIORITY", "KIND", "RINGING"],
                    [
                        [
                            w.get("position", "-"),
                            w.get("number") or w.get("call_id") or "-",
                            w.get("service_line") or "-",
                            hms(w.get("wait")),
                            w.get("priority", 0),
                            "callback" if w.get("is_callback") else "caller",
                            ",".join(w.get("ringing") or []) or "-",
                        ]
                        for w in sorted(waiting, key=lambda w: w.get("position") or 0)
                    ],
                    indent="  ",
                )
            )
        click.echo(f"Agents: {len(live_agents)}")
    else:
        click.echo(f"Waiting: unknown ({note})")
        click.echo(f"Agents: {len(live_agents)} (saved states; {note})")
    if live_agents:
        click.echo(
            table(
                ["AGENT", "NAME", "STATE", "EXTENSION", "FOR"],
                [
                    [
                        a.get("id"),
                        a.get("name") or "-",
                        state_text(a.get("state"), a.get("pause_reason")),
                        a.get("extension") or "-",
                        hms(a.get("since")),
                    ]
                    for a in live_agents
                ],
                indent="  ",
            )
        )


@queue_group.command("edit")
@config_option
@click.argument("name")
@_queue_options
@_urgent_options
@queue_callback_options
@click.pass_context
@click.option(
    "--number", default=None, metavar="DIGITS", help="The number extensions dial to reach the queue ('none' to clear)."
)
@json_option
def queue_edit(
    ctx: click.Context, /, name: str, number: str | None = None, as_json: bool = False, **opts: QueueOption
) -> None:
    """Change settings of queue NAME (options not given stay as they are)."""
    if all(opts.get(k) is None for k in _QUEUE_OPTION_NAMES + _URGENT_OPTION_NAMES) and number is None:
        raise PbxUsageError("nothing to change: give at least one option (see pypbx queue edit --help)")
    require(ctx, "queue", name)
    _check_prompt(ctx, opts)
    auto_callback, callback_hours = pop_queue_callback(opts)
    check_queue_callback(ctx, callback_hours)
    rec = on_db(ctx, S.change_queue, name, number, **opts)
    set_queue_callback(ctx, rec.name, auto_callback, callback_hours)
    if as_json:
        echo_json(rec.to_dict())
        return
    click.echo(f"Queue {rec.name} updated.")
    for label, value in _queue_lines(rec)[1:]:
        click.echo(f"  {label + ':':16}{value}")


@queue_group.command("remove")
@config_option
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def queue_remove(ctx: click.Context, name: str, yes: bool, as_json: bool) -> None:
    """Remove queue NAME."""
    require(ctx, "queue", name)
    rec = on_db(ctx, S.get_queue, name)
    if not yes:
        click.confirm(f"Remove queue {rec.name}?", abort=True)
    on_db(ctx, remove_unused, f"queue:{rec.name}", S.remove_queue, rec.name)
    done(as_json, {"queue": rec.name, "removed": True}, f"Queue {rec.name} removed.")


def _open_close(ctx: click.Context, name: str, closed: bool, as_json: bool) -> None:
    require(ctx, "queue", name)
    rec = on_db(ctx, S.set_queue_closed, name, closed)
    if as_json:
        echo_json(rec.to_dict())
    elif closed:
        click.echo(f"Queue {rec.name} closed: new callers go to {S.format_target(S.closed_destination(rec.config))}.")
    else:
        click.echo(f"Queue {rec.name} open.")


@queue_group.command("close")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def queue_close(ctx: click.Context, name: str, as_json: bool) -> None:
    """Close queue NAME: new callers go at once to its overflow destination (else its
    fallback); callers already waiting stay. A running PBX takes it within a second."""
    _open_close(ctx, name, True, as_json)


@queue_group.command("open")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def queue_open(ctx: click.Context, name: str, as_json: bool) -> None:
    """Open queue NAME again (new callers wait in it)."""
    _open_close(ctx, name, False, as_json)
