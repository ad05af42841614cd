"""``pypbx calls``: call records (every call, its outcome, timings and recording)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from pypbx import sitetime
from pypbx.calllog import accounting_report, call_detail
from pypbx.cli.context import config_option, load, on_db, run
from pypbx.cli.filters import check_filters, found
from pypbx.cli.output import F, duration, echo_json, hms, json_option, table, ts
from pypbx.cli.period import day_range
from pypbx.config import Config
from pypbx.db import open_db
from pypbx.db.rows import CallSearchRow
from pypbx.localapi_client import request
from pypbx.numbers import DEFAULT_REGION, display, e164


def call_filters(f: F) -> F:
    """The filters of ``calls list`` and ``recordings`` (and ``--json``)."""
    for opt in reversed(
        [
            click.option("--date", default=None, help="One day: YYYY-MM-DD, 'today' or 'yesterday'."),
            click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM])."),
            click.option("--until", default=None, help="Before this time (YYYY-MM-DD [HH:MM])."),
            click.option("--number", default=None, help="Caller or callee number."),
            click.option("--queue", default=None, help="Queue name."),
            click.option("--agent", default=None, help="Agent or extension that took the call."),
            click.option("--disposition", default=None, help="e.g. answered, abandoned_queue, busy."),
            click.option("--limit", default=100, show_default=True, help="At most this many rows."),
            json_option,
        ]
    ):
        f = opt(f)
    return f


async def search_calls(
    cfg: Config,
    date: str | None,
    since: str | None,
    until: str | None,
    number: str | None,
    queue: str | None,
    agent: str | None,
    disposition: str | None,
    limit: int,
    recorded_only: bool = False,
) -> Sequence[CallSearchRow]:
    lo, hi = day_range(date, since, until)
    async with open_db(cfg.db_path, cfg.numbers.region) as db:
        await check_filters(db, queue=queue, agent=agent, disposition=disposition)
        rows = await db.search_call_rows(
            since=lo,
            until=hi,
            number=e164(number, db.region) if number else None,
            queue=queue,
            agent=agent,
            disposition=disposition,
            limit=limit,
        )
    if recorded_only:
        rows = [r for r in rows if r.get("recording_path")]
    return rows


def calls_table(rows: Sequence[CallSearchRow], region: str = DEFAULT_REGION) -> str:
    """Numbers in the national format of ``region`` (``--json`` keeps E.164)."""
    return table(
        ["TIME", "ID", "FROM", "TO", "QUEUE", "AGENT", "DISPOSITION", "RING", "TALK", "RECORDING"],
        [
            [
                ts(r["offered_at"]),
                r["id"][:12],
                display(r["caller_number"], region),
                display(r["callee_number"], region),
                r["queue"] or "-",
                r["agent"] or r["extension"] or "-",
                r["disposition"],
                hms(r["ring_seconds"]),
                hms(r["talk_seconds"]),
                r.get("recording_path") or "-",
            ]
            for r in rows
        ],
    )


@click.group()
@config_option
def calls() -> None:
    """Call records: every call, its outcome, timings and recording."""


@calls.command("list")
@config_option
@call_filters
@click.pass_context
def calls_list(
    ctx: click.Context,
    date: str | None,
    since: str | None,
    until: str | None,
    number: str | None,
    queue: str | None,
    agent: str | None,
    disposition: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List calls, newest first (filters combine)."""
    rows = run(search_calls(load(ctx), date, since, until, number, queue, agent, disposition, limit))
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No calls match.")
    else:
        click.echo(calls_table(rows, load(ctx).numbers.region))


@calls.command("show")
@config_option
@click.argument("call_id")
@json_option
@click.pass_context
def calls_show(ctx: click.Context, call_id: str, as_json: bool) -> None:
    """One call with its event log and recording (CALL_ID or a unique prefix of it)."""

    row, events, rec = on_db(ctx, found, call_detail, call_id)  # no such call: exit 2
    if as_json:
        echo_json({"call": row, "events": events, "recording": rec})
        return
    for k in (
        "id",
        "direction",
        "caller_number",
        "caller_kind",
        "callee_number",
        "did",
        "service_line",
        "queue",
        "agent",
        "extension",
        "disposition",
        "hangup_side",
        "hangup_cause",
        "flags",
    ):
        if row.get(k):
            click.echo(f"{k.replace('_', ' ').capitalize() + ':':16} {row[k]}")
    click.echo(
        f"{'Offered:':16} {ts(row['offered_at'])}  ring {duration(row['ring_seconds'])}, "
        f"talk {duration(row['talk_seconds'])}"
    )
    if rec:
        click.echo(f"{'Recording:':16} {rec['path']} ({rec['status']}, {rec['seconds']} s, sha256 {rec['sha256']})")
    click.echo("Events:")
    click.echo(
        table(
            ["TIME", "EVENT", "DETAIL"],
            [[sitetime.local(e["ts"]).strftime("%H:%M:%S.%f")[:-3], e["kind"], e["detail"]] for e in events],
            indent="  ",
        )
    )


@calls.command("report")
@config_option
@click.option("--date", default=None, help="One day: YYYY-MM-DD, 'today' or 'yesterday'.")
@click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM]).")
@click.option("--until", default=None, help="Before this time (YYYY-MM-DD [HH:MM]).")
@json_option
@click.pass_context
def calls_report(ctx: click.Context, date: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """Offered / answered / abandoned, every disposition, and whether they add up."""

    cfg = load(ctx)
    lo, hi = day_range(date, since, until)

    async def live_calls() -> list[str]:
        """Calls the running PBX still has (none when it is not running)."""
        try:
            return list(await request(cfg.socket_path, "active_calls"))
        except Exception:
            return []

    acc = on_db(ctx, accounting_report, lo, hi, live_calls)
    if as_json:
        echo_json(acc)
        return
    click.echo(
        f"Offered {acc['offered']}, answered {acc['answered']}, abandoned {acc['abandoned']}, "
        f"in progress {acc['in_progress']}"
    )
    click.echo(table(["DISPOSITION", "CALLS"], [[d, n] for d, n in acc["dispositions"].items() if n], indent="  "))
    if acc["balanced"]:
        click.echo("Every offered call has exactly one outcome.")
    else:
        click.echo("Calls without an outcome (not live): " + ", ".join(acc["unaccounted"]))
    if acc["missed_callers"]:
        click.echo("Missed callers to call back: " + ", ".join(acc["missed_callers"]))
