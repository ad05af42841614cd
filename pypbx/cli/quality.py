"""``pypbx quality``: call quality review (pypbx.quality).

``checklist set ITEM…`` / ``checklist show`` (the clinic's yes/no questions), ``score CALL
--answers yes,no,… [--comment] [--reviewer]`` (what a supervisor does from the recordings
page), ``show CALL`` and ``list [--agent] [--since --until]``; ``--json`` on each. The per-agent
figures are ``pypbx report quality``.
"""

from __future__ import annotations

import getpass

import click

from pypbx import quality as Q
from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import echo_json, json_option, table, ts
from pypbx.cli.period import day_range
from pypbx.db import Database


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


@click.group("quality")
@config_option
def quality() -> None:
    """Call quality review: the checklist, scoring recorded calls, the reviews."""


@quality.group("checklist")
@config_option
def checklist() -> None:
    """The clinic's short yes/no checklist a supervisor scores recorded calls on."""


@checklist.command("set")
@config_option
@click.argument("items", nargs=-1)
@json_option
@click.pass_context
def checklist_set(ctx: click.Context, items: tuple[str, ...], as_json: bool) -> None:
    """Set the checklist to ITEMS, in order (reviews already made keep theirs)."""
    got = on_db(ctx, Q.set_checklist, list(items))
    if as_json:
        echo_json(got)
        return
    click.echo(f"Quality checklist ({len(got)} items):")
    for i, x in enumerate(got, 1):
        click.echo(f"  {i}. {x}")


@checklist.command("show")
@config_option
@json_option
@click.pass_context
def checklist_show(ctx: click.Context, as_json: bool) -> None:
    """The checklist in force."""
    got = on_db(ctx, Q.get_checklist)
    if as_json:
        echo_json(got)
    elif not got:
        click.echo('No quality checklist yet (pypbx quality checklist set "greeted" "polite" ...).')
    else:
        for i, x in enumerate(got, 1):
            click.echo(f"{i}. {x}")


def _show_review(r: Q.Review) -> None:
    click.echo(
        f"Call {r['call_id'][:12]} (agent {r['agent'] or '-'}): {r['yes']}/{r['items']} ({_pct(r['score'])}), "
        f"reviewed by {r['reviewer']} at {ts(r['reviewed_at'])}"
    )
    for a in r["answers"]:
        click.echo(f"  [{'x' if a['ok'] else ' '}] {a['item']}")
    if r["comment"]:
        click.echo(f"  Comment: {r['comment']}")


@quality.command("score")
@config_option
@click.argument("call_id")
@click.option("--answers", required=True, help="yes/no per checklist item, in order: yes,yes,no,yes.")
@click.option("--comment", default="", help="What the reviewer has to say.")
@click.option("--reviewer", default=None, help="Who reviews (default: the system user).")
@json_option
@click.pass_context
def quality_score(
    ctx: click.Context, call_id: str, answers: str, comment: str, reviewer: str | None, as_json: bool
) -> None:
    """Score recorded call CALL_ID (or a unique prefix) on the checklist."""
    given = [x.strip() for x in answers.split(",")]
    r = on_db(ctx, Q.score_call, call_id, given, reviewer or getpass.getuser(), comment)
    if as_json:
        echo_json(r)
    else:
        _show_review(r)


@quality.command("show")
@config_option
@click.argument("call_id")
@json_option
@click.pass_context
def quality_show(ctx: click.Context, call_id: str, as_json: bool) -> None:
    """The review of call CALL_ID (or a unique prefix)."""

    async def go(db: Database) -> Q.Review:
        cid = await Q.resolve_call(db, call_id)
        r = await Q.get_review(db, cid)
        if r is None:
            raise Q.QualityNotFound(f"call {cid[:12]} has not been reviewed")
        return r

    r = on_db(ctx, go)
    if as_json:
        echo_json(r)
    else:
        _show_review(r)


@quality.command("list")
@config_option
@click.option("--agent", default=None, help="Only this agent's calls.")
@click.option("--since", default=None, help="Calls from this time (YYYY-MM-DD [HH:MM]).")
@click.option("--until", default=None, help="Calls before this time (YYYY-MM-DD [HH:MM]).")
@json_option
@click.pass_context
def quality_list(ctx: click.Context, agent: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """The reviews, newest call first."""
    lo, hi = day_range(None, since, until)
    rows = on_db(ctx, Q.list_reviews, agent=agent, since=lo, until=hi)
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No reviews match.")
    else:
        click.echo(
            table(
                ["CALL", "AGENT", "SCORE", "REVIEWER", "REVIEWED", "COMMENT"],
                [
                    [
                        r["call_id"][:12],
                        r["agent"] or "-",
                        f"{r['yes']}/{r['items']} ({_pct(r['score'])})",
                        r["reviewer"],
                        ts(r["reviewed_at"]),
                        (r["comment"][:40] + "…") if len(r["comment"]) > 40 else (r["comment"] or "-"),
                    ]
                    for r in rows
                ],
            )
        )
