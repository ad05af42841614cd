"""``pypbx missed``: the missed-caller worklist (pypbx.missed).

``list`` and ``show`` read the database. ``claim`` and ``close`` go through the running
PBX's local API (so the event stream shows them) and work on the database when it is not
running. ``call`` needs the running PBX (the agent's phone rings first, then the patient).
"""

from __future__ import annotations

import time

import click

from pypbx import hours as H
from pypbx import missed as M
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import check_filters, found
from pypbx.cli.output import F, duration, echo_json, hms, json_option, table, ts
from pypbx.errors import PbxError
from pypbx.localapi_client import NotRunningError, call
from pypbx.numbers import display


def _task_rows(tasks: list[M.TaskDict], region: str) -> list[list[object]]:
    return [
        [
            t["id"],
            display(t["number"], region),
            ts(t["first_missed_at"]),
            hms(t["waiting"]),
            t["missed_count"],
            t["attempts"],
            ",".join(t["reasons"]) or "-",
            t["queue"] or "-",
            t["service_line"] or "-",
            t["claimed_by"] or "-",
        ]
        + ([t["outcome"] or "-"] if t["state"] == M.TaskState.CLOSED.value else [])
        for t in tasks
    ]


@click.group("missed")
@config_option
def missed() -> None:
    """Missed callers: callback tasks to work (one per number; they close when it is reached)."""


@missed.command("list")
@config_option
@click.option("--queue", default=None, help="Only tasks with a missed call in this queue.")
@click.option("--all", "show_all", is_flag=True, help="Closed tasks too.")
@json_option
@click.pass_context
def missed_list(ctx: click.Context, queue: str | None, show_all: bool, as_json: bool) -> None:
    """Open callback tasks, the longest waiting first."""
    if queue is not None:
        on_db(ctx, check_filters, queue=queue)
    now = time.time()
    tasks = [t.to_dict(now) for t in on_db(ctx, M.list_tasks, include_closed=show_all, queue=queue)]
    if as_json:
        echo_json(tasks)
        return
    if not tasks:
        click.echo("No missed callers to call back." if not show_all else "No callback tasks.")
        return
    heads = ["TASK", "NUMBER", "MISSED AT", "WAITING", "CALLS", "ATTEMPTS", "REASONS", "QUEUE", "LINE", "CLAIMED"]
    closed = [t for t in tasks if t["state"] == M.TaskState.CLOSED.value]
    opened = [t for t in tasks if t["state"] == M.TaskState.OPEN.value]
    if opened:
        click.echo(table(heads, _task_rows(opened, load(ctx).numbers.region)))
    if closed:
        if opened:
            click.echo("")
        click.echo("Closed:")
        click.echo(table([*heads, "OUTCOME"], _task_rows(closed, load(ctx).numbers.region)))


@missed.command("show")
@config_option
@click.argument("task")
@json_option
@click.pass_context
def missed_show(ctx: click.Context, task: str, as_json: bool) -> None:
    """One task: its missed calls and callback attempts."""
    d = on_db(ctx, found, M.task_detail, task)  # no such task: exit 2
    if as_json:
        echo_json(d)
        return
    t = d["task"]
    lines = [
        ("Task", str(t["id"])),
        ("Number", display(t["number"], load(ctx).numbers.region)),
        ("State", t["state"] + (f" ({t['outcome']}, by {t['closed_by'] or '-'})" if t["outcome"] else "")),
        ("Reasons", ", ".join(t["reasons"]) or "-"),
        ("Queue", t["queue"] or "-"),
        ("Service line", t["service_line"] or "-"),
        ("First missed", ts(t["first_missed_at"])),
        ("Waiting" if t["state"] == M.TaskState.OPEN.value else "Time to close", duration(t["waiting"])),
        ("Attempts", str(t["attempts"])),
        ("Claimed by", t["claimed_by"] or "-"),
    ]
    w = max(len(k) for k, _ in lines)
    for k, v in lines:
        click.echo(f"{k + ':':<{w + 1}} {v}")
    click.echo("\nMissed calls:")
    click.echo(
        table(
            ["AT", "REASON", "QUEUE", "LINE", "CALL"],
            [
                [ts(c["at"]), c["reason"], c["queue"] or "-", c["service_line"] or "-", c["call_id"][:12]]
                for c in d["calls"]
            ],
            indent="  ",
        )
    )
    if d["attempts"]:
        click.echo("\nAttempts:")
        click.echo(
            table(
                ["#", "AT", "BY", "OUTCOME", "CALL"],
                [
                    [a["id"], ts(a["started_at"]), a["by"], a["outcome"] or "in progress", (a["call_id"] or "-")[:12]]
                    for a in d["attempts"]
                ],
                indent="  ",
            )
        )


def _live_or_db(ctx: click.Context, cmd: str, **args: object) -> M.TaskDict:
    """Through the running PBX (its event stream shows the change), else on the database."""
    cfg = load(ctx)
    try:
        result: M.TaskDict = call(cfg.socket_path, cmd, 5.0, **args)
        return result
    except NotRunningError:
        pass
    if cmd == "missed_claim":
        return on_db(ctx, M.claim_task, args["task"], str(args["by"])).to_dict()
    by = args.get("by")
    return on_db(ctx, M.close_task, args["task"], str(args["outcome"]), by=str(by) if by else None).to_dict()


@missed.command("claim")
@config_option
@click.argument("task")
@click.option("--by", "by", required=True, metavar="EXT|AGENT", help="Who takes the task.")
@json_option
@click.pass_context
def missed_claim(ctx: click.Context, task: str, by: str, as_json: bool) -> None:
    """Take TASK (others see it is being handled)."""
    on_db(ctx, found, M.get_task, task)  # no such task: exit 2
    t = _live_or_db(ctx, "missed_claim", task=M.parse_task_id(task), by=by)
    if as_json:
        echo_json(t)
        return
    click.echo(f"Task {t['id']} ({t['number']}) claimed by {t['claimed_by']}.")


@missed.command("close")
@config_option
@click.argument("task")
@click.option(
    "--outcome",
    required=True,
    metavar="|".join(o.value for o in M.Outcome),
    help="reached, no-answer, wrong-number, message-left or not-needed.",
)
@click.option("--by", "by", default=None, metavar="EXT|AGENT", help="Who closes it (default: who claimed it).")
@json_option
@click.pass_context
def missed_close(ctx: click.Context, task: str, outcome: str, by: str | None, as_json: bool) -> None:
    """Close TASK with its outcome."""
    oc = M.parse_outcome(outcome)
    on_db(ctx, found, M.get_task, task)  # no such task: exit 2
    t = _live_or_db(ctx, "missed_close", task=M.parse_task_id(task), outcome=oc.value, by=by)
    if as_json:
        echo_json(t)
        return
    click.echo(f"Task {t['id']} ({t['number']}) closed: {t['outcome']} after {duration(t['waiting'])}.")


@missed.command("call")
@config_option
@click.argument("task")
@click.option("--from", "extension", required=True, metavar="EXT", help="The agent's extension (it rings first).")
@json_option
@click.pass_context
def missed_call(ctx: click.Context, task: str, extension: str, as_json: bool) -> None:
    """Call TASK's patient back: EXT rings first and hears who is called, then the patient."""
    tid = M.parse_task_id(task)
    on_db(ctx, found, M.get_task, task)  # no such task: exit 2
    try:
        result = call(load(ctx).socket_path, "missed_call", task=tid, extension=extension)
    except NotRunningError:
        raise PbxError("pypbx is not running: start it (pypbx run) to call back") from None
    if as_json:
        echo_json(result)
        return
    click.echo(f"Calling {extension}, then {result.get('number')} (task {tid}); call {result.get('call_id')}.")


# -- ``queue add/edit``: the queue's callback settings -------------------------------------------

#: The ``queue add/edit`` options below (callback_max_attempts / callback_retry_delay are the
#: queue's own settings, passed on to pypbx.acdstore; the others are popped by :func:`pop_queue_callback`).
QUEUE_CALLBACK_OPTIONS = ("auto_callback", "callback_max_attempts", "callback_retry_delay", "callback_hours")


def queue_callback_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--auto-callback/--no-auto-callback",
                "auto_callback",
                default=None,
                help="Call the queue's missed callers back automatically (ACD; default off).",
            ),
            click.option(
                "--callback-attempts",
                "callback_max_attempts",
                default=None,
                metavar="N",
                help="Attempts to call a patient back, 1-20 (default 3).",
            ),
            click.option(
                "--callback-spacing",
                "callback_retry_delay",
                default=None,
                metavar="SECONDS",
                help="Seconds between two attempts (default 120).",
            ),
            click.option(
                "--callback-hours",
                "callback_hours",
                default=None,
                metavar="SCHEDULE",
                help="Automatic callbacks only while this schedule (pypbx hours) is open ('' = always).",
            ),
        ]
    ):
        f = opt(f)
    return f


def pop_queue_callback(opts: dict[str, str | bool | None]) -> tuple[bool | None, str | None]:
    """Take the worklist's settings out of the queue options: (auto_callback, callback_hours)."""
    auto = opts.pop("auto_callback", None)
    hours = opts.pop("callback_hours", None)
    return (auto if isinstance(auto, bool) else None), (hours if isinstance(hours, str) else None)


def check_queue_callback(ctx: click.Context, hours: str | None) -> None:
    if hours:
        on_db(ctx, H.get_schedule, hours)


def set_queue_callback(ctx: click.Context, name: str, auto: bool | None, hours: str | None) -> None:
    if auto is not None or hours is not None:
        on_db(ctx, M.set_queue_callback, name, auto_callback=auto, callback_hours=hours)
