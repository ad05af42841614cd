"""``pypbx survey``: the post-call satisfaction survey (pypbx.survey).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

from typing import Any

import click

from pypbx import survey as Sv
from pypbx.cli.context import config_option, on_db
from pypbx.cli.filters import require
from pypbx.cli.output import echo_json, json_option, table
from pypbx.db import Database


@click.group("survey")
@config_option
def survey() -> None:
    """The post-call satisfaction survey (1-5 after the agent hangs up)."""


@survey.command("enable")
@config_option
@click.option("--queue", default=None, help="Only calls of this queue (default: every call).")
@json_option
@click.pass_context
def survey_enable(ctx: click.Context, queue: str | None, as_json: bool) -> None:
    """Ask callers for a score when the callee hangs up first."""

    if queue is not None:
        require(ctx, "queue", queue)
    d = on_db(ctx, Sv.set_enabled, True, queue)
    if as_json:
        echo_json(d)
        return
    click.echo("Survey on for " + ("every call." if d["all"] else f"queues {', '.join(d['queues'])}."))


@survey.command("disable")
@config_option
@click.option("--queue", default=None, help="Only this queue (default: off everywhere).")
@json_option
@click.pass_context
def survey_disable(ctx: click.Context, queue: str | None, as_json: bool) -> None:
    """Stop asking."""

    if queue is not None:
        require(ctx, "queue", queue)
    d = on_db(ctx, Sv.set_enabled, False, queue)
    if as_json:
        echo_json(d)
        return
    click.echo(
        "Survey "
        + ("on for every call." if d["all"] else f"on for queues {', '.join(d['queues'])}." if d["queues"] else "off.")
    )


@survey.command("report")
@config_option
@json_option
@click.pass_context
def survey_report(ctx: click.Context, as_json: bool) -> None:
    """Answers and average score per agent."""

    async def go(db: Database) -> dict[str, Any]:
        return {**await Sv.report(db), "settings": await Sv.get_settings(db)}

    r = on_db(ctx, go)
    if as_json:
        echo_json(r)
        return
    st = r["settings"]
    click.echo(
        "Survey: "
        + ("on for every call" if st["all"] else f"on for queues {', '.join(st['queues'])}" if st["queues"] else "off")
        + f"; {r['answers']} answers"
        + (f", average {r['average']:.2f}" if r["answers"] else "")
        + "."
    )
    if r["agents"]:
        click.echo(
            table(
                ["AGENT", "ANSWERS", "AVERAGE", "1", "2", "3", "4", "5"],
                [
                    [a["agent"], a["answers"], f"{a['average']:.2f}"] + [a["distribution"][str(k)] for k in range(1, 6)]
                    for a in r["agents"]
                ],
            )
        )


@survey.command("list")
@config_option
@click.option("--unhappy", is_flag=True, help="Only the unhappy scores (1-2), with the caller's recorded comment.")
@json_option
@click.pass_context
def survey_list(ctx: click.Context, unhappy: bool, as_json: bool) -> None:
    """The answers, oldest first: time, caller, agent, queue, score, comment file."""

    rows = on_db(ctx, Sv.answers, unhappy=unhappy)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No unhappy answers." if unhappy else "No answers.")
        return
    click.echo(
        table(
            ["TIME", "CALLER", "AGENT", "QUEUE", "SCORE", "COMMENT"],
            [
                [
                    r["time"],
                    r["caller"] or "-",
                    r["agent"] or "-",
                    r["queue"] or "-",
                    r["score"],
                    f"{r['comment']} ({r['comment_seconds'] or 0:.0f} s)" if r["comment"] else "-",
                ]
                for r in rows
            ],
        )
    )
