"""``pypbx report``: the clinic's reports (pypbx.reports) for a day or a period.

``summary`` (everything), ``queues``, ``hours`` (load and seats needed per hour), ``agents``,
``lines`` (service lines) and ``missed`` (callers to call back); ``--json`` on each.
``callers`` (new-patient rate, routing hit rate) and ``reasons`` (reason codes per day, line
and agent) have their own builders (pypbx.reports.callers_report / reasons_report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Concatenate, Literal, ParamSpec, TypeVar

import click

from pypbx import quality, reports, sitetime
from pypbx.cli.context import config_option, load, run, shown
from pypbx.cli.filters import check_filters
from pypbx.cli.output import echo_json, hms, json_option, table
from pypbx.cli.period import day_range
from pypbx.db import open_db
from pypbx.errors import PbxError
from pypbx.reports import Report

P = ParamSpec("P")
R = TypeVar("R")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def _s(x: float | None) -> str:
    """A duration in a sentence (tables use :func:`pypbx.cli.output.hms`, h:mm:ss)."""
    return "-" if x is None else f"{x:.0f} s"


def _when(ts: float) -> str:
    return sitetime.local(ts).strftime("%Y-%m-%d %H:%M")


def options(f: Callable[Concatenate[click.Context, P], R]) -> Callable[P, R]:
    """The period, settings and ``--json`` options of every report command (which gets the context)."""
    decorators: list[Callable[[Callable[P, R]], Callable[P, R]]] = [
        config_option,
        click.option("--date", default=None, help="One day: YYYY-MM-DD, 'today' or 'yesterday' (default: today)."),
        click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM])."),
        click.option("--until", default=None, help="Before this time (YYYY-MM-DD [HH:MM])."),
        click.option("--queue", default=None, help="Only this queue's calls."),
        click.option(
            "--target",
            default=20.0,
            show_default=True,
            type=float,
            help="Service level target: answered within this many seconds.",
        ),
        click.option(
            "--goal", default=80.0, show_default=True, type=float, help="Service level goal in %, for the seats needed."
        ),
        click.option(
            "--wrap-up",
            default=0.0,
            show_default=True,
            type=float,
            help="Seconds of wrap-up added to the handle time for the seats needed.",
        ),
        json_option,
    ]
    cmd = click.pass_context(f)
    for opt in reversed(decorators):
        cmd = opt(cmd)
    return cmd


def build(
    ctx: click.Context,
    date: str | None,
    since: str | None,
    until: str | None,
    queue: str | None,
    target: float,
    goal: float,
    wrap_up: float,
) -> Report:
    cfg = load(ctx)
    if date is None and since is None and until is None:
        date = "today"
    lo, hi = day_range(date, since, until)
    if not 0 < goal < 100:
        raise PbxError("--goal is a percentage between 0 and 100, e.g. 80")

    async def go() -> Report:
        async with open_db(cfg.db_path, cfg.numbers.region) as db:
            await check_filters(db, queue=queue)
            return await reports.report(
                db, lo, hi, queue=queue, target=target, goal=goal / 100, wrap_up=wrap_up, now=time.time()
            )

    try:
        return run(go())
    except ValueError as e:
        raise PbxError(str(e)) from None


def show_summary(r: Report) -> None:
    s = r["summary"]
    click.echo(
        f"Calls offered {s['offered']} (inbound {s['inbound']}), answered {s['answered']}, "
        f"abandoned {s['abandoned']}, in progress {s['in_progress']}; "
        f"inbound answer rate {_pct(s['answer_rate'])}"
    )
    if s["missed_by_reason"]:
        click.echo("Inbound callers not spoken to, by reason:")
        click.echo(table(["REASON", "CALLS"], list(s["missed_by_reason"].items()), indent="  "))


def show_queues(r: Report) -> None:
    t = r["settings"]["target"]
    if not r["queues"]:
        click.echo("No queue calls in this period.")
        return
    click.echo(f"Queues (service level = answered within {t:.0f} s / ended visits):")
    click.echo(
        table(
            [
                "QUEUE",
                "ENTERED",
                "ANSWERED",
                "SL",
                "ASA",
                "MAX WAIT",
                "ABANDONED",
                "<5 s",
                "AVG ABANDON",
                "TIMEOUT",
                "OVERFLOW",
                "CALLBACK",
                "AHT",
            ],
            [
                [
                    n,
                    q["entered"],
                    q["answered"],
                    _pct(q["service_level"]),
                    hms(q["asa"]),
                    hms(q["max_wait"]),
                    q["abandoned"],
                    q["short_abandons"],
                    hms(q["mean_abandon_wait"]),
                    q["timeouts"],
                    q["overflows"],
                    q["callbacks_requested"],
                    hms(q["aht"]),
                ]
                for n, q in r["queues"].items()
            ],
            indent="  ",
        )
    )
    waits = {n: q["abandon_waits"] for n, q in r["queues"].items() if q["abandon_waits"]}
    for n, w in waits.items():
        click.echo(f"  {n}: abandoned after " + ", ".join(f"{k}: {v}" for k, v in w.items()))


def show_hours(r: Report) -> None:
    st = r["settings"]
    if not r["hours"]:
        click.echo("No inbound calls in this period.")
        return
    ht = f"{st['handle_time']:.0f} s" + ("" if st["handle_time_measured"] else " (assumed: no call measured)")
    click.echo(
        f"Load per hour over {r['period']['days']} day(s); seats needed for {st['goal'] * 100:.0f} % "
        f"within {st['target']:.0f} s at a handle time of {ht}:"
    )
    click.echo(
        table(
            ["HOUR", "OFFERED", "PER DAY", "ANSWERED", "ABANDONED", "ASA", "SEATS NEEDED"],
            [
                [
                    f"{h['hour']:02d}:00",
                    h["offered"],
                    h["per_day"],
                    h["answered"],
                    h["abandoned"],
                    hms(h["asa"]),
                    h["seats_needed"],
                ]
                for h in r["hours"]
            ],
            indent="  ",
        )
    )


def show_agents(r: Report) -> None:
    if not r["agents"]:
        click.echo("No agent activity in this period.")
        return
    click.echo("Agents:")
    click.echo(
        table(
            [
                "AGENT",
                "ANSWERED",
                "TALK",
                "AVG TALK",
                "RING NO ANSWER",
                "TRANSFERS",
                "PAUSES",
                "PAUSED",
                "CALLBACKS",
                "SURVEY",
            ],
            [
                [
                    n,
                    a["answered"],
                    hms(a["talk_seconds"]),
                    hms(a["mean_talk"]),
                    a["ring_no_answer"],
                    a["transfers"],
                    a["pauses"],
                    hms(a["paused_seconds"]),
                    a["callbacks"],
                    "-" if a["survey_mean"] is None else f"{a['survey_mean']:.1f} ({a['surveys']})",
                ]
                for n, a in r["agents"].items()
            ],
            indent="  ",
        )
    )


def show_lines(r: Report) -> None:
    if not r["lines"]:
        click.echo("No inbound calls in this period.")
        return
    click.echo("Service lines:")
    click.echo(
        table(
            ["LINE", "OFFERED", "ANSWERED", "ABANDONED", "VOICEMAIL", "CALLBACK", "OTHER"],
            [
                [n, x["offered"], x["answered"], x["abandoned"], x["voicemail"], x["callback_requested"], x["other"]]
                for n, x in r["lines"].items()
            ],
            indent="  ",
        )
    )


def show_callbacks(r: Report) -> None:
    cb = r.get("callbacks")
    if cb is None or not cb["total"]["opened"]:
        click.echo("No callback tasks opened in the period.")
        return
    t = cb["total"]
    click.echo(
        f"Callback tasks (pypbx missed): {t['opened']} opened, {t['reached']} reached "
        f"({_pct(t['callback_rate'])}), {t['still_open']} still open; time to callback "
        f"median {_s(t['median_to_callback'])}, 90th percentile {_s(t['p90_to_callback'])}"
    )
    for title, rows in (("DAY", cb["by_day"]), ("QUEUE", cb["by_queue"]), ("LINE", cb["by_service_line"])):
        click.echo(
            table(
                [title, "OPENED", "REACHED", "RATE", "OPEN", "MEDIAN", "P90"],
                [
                    [
                        g["key"],
                        g["opened"],
                        g["reached"],
                        _pct(g["callback_rate"]),
                        g["still_open"],
                        hms(g["median_to_callback"]),
                        hms(g["p90_to_callback"]),
                    ]
                    for g in rows
                ],
                indent="  ",
            )
        )


def show_missed(r: Report) -> None:
    show_callbacks(r)
    if not r["missed"]:
        click.echo("No caller left to call back.")
        return
    click.echo(f"Callers to call back ({len(r['missed'])}): not spoken to since their last call")
    click.echo(
        table(
            ["NUMBER", "CALLS", "LAST CALL", "WHY", "QUEUE", "LINE"],
            [
                [
                    shown(m["number"]),
                    m["attempts"],
                    _when(m["last"]),
                    m["reason"],
                    m["queue"] or "-",
                    m["service_line"] or "-",
                ]
                for m in r["missed"]
            ],
            indent="  ",
        )
    )


@click.group("report")
@config_option
def report() -> None:
    """Reports: service level, waits, abandoned calls and why, load and seats per hour,
    agents, service lines, callers to call back (default period: today)."""


def sub(
    name: str,
    key: Literal["queues", "hours", "agents", "lines", "missed", "callbacks"] | None,
    show: Callable[[Report], None],
    doc: str,
) -> None:
    @options
    def cmd(
        ctx: click.Context,
        date: str | None,
        since: str | None,
        until: str | None,
        queue: str | None,
        target: float,
        goal: float,
        wrap_up: float,
        as_json: bool,
    ) -> None:
        r = build(ctx, date, since, until, queue, target, goal, wrap_up)
        if as_json:
            echo_json(r if key is None else r[key])
        else:
            show(r)

    cmd.__doc__ = doc
    report.command(name)(cmd)


def show_all(r: Report) -> None:
    for f in (show_summary, show_queues, show_hours, show_agents, show_lines, show_missed):
        f(r)
        click.echo("")


sub("summary", None, show_all, "Everything below, in one report.")
sub("queues", "queues", show_queues, "Per queue: service level, ASA, waits, abandons, overflows, AHT.")
sub("hours", "hours", show_hours, "Load per hour of the day and the seats needed (Erlang C).")
sub("agents", "agents", show_agents, "Per agent: calls, talk, ring-no-answer, pauses, survey score.")
sub("lines", "lines", show_lines, "Per service line (the DID's name): offered, answered, abandoned...")
sub(
    "missed",
    "missed",
    show_missed,
    "Callback figures (rate, time to callback, still open; per day, queue, line) and the callers "
    "not spoken to since their last call. --json: the callers (report callbacks --json: the figures).",
)
sub(
    "callbacks", "callbacks", show_callbacks, "Callback tasks: rate, time to callback, still open (per day/queue/line)."
)


# --------------------------------------------------------------------------- callers and reasons


def _period_options(f: Callable[Concatenate[click.Context, P], R]) -> Callable[P, R]:
    """The period and ``--json`` options of ``report callers`` / ``report reasons``."""
    decorators: list[Callable[[Callable[P, R]], Callable[P, R]]] = [
        config_option,
        click.option("--date", default=None, help="One day: YYYY-MM-DD, 'today' or 'yesterday' (default: today)."),
        click.option("--since", default=None, help="From this time (YYYY-MM-DD [HH:MM])."),
        click.option("--until", default=None, help="Before this time (YYYY-MM-DD [HH:MM])."),
        json_option,
    ]
    cmd = click.pass_context(f)
    for opt in reversed(decorators):
        cmd = opt(cmd)
    return cmd


def _range(date: str | None, since: str | None, until: str | None) -> tuple[float | None, float | None]:
    if date is None and since is None and until is None:
        date = "today"
    return day_range(date, since, until)


CALLERS_HEADER = (
    "Inbound callers by kind at arrival: patient (imported list, with a patient id), known (on the list\n"
    "without an id, or called before), new. New-patient rate = new / inbound calls (10-20 % is usual).\n"
    "Routing hit rate = returning callers (patient + known) that smart routing routed as returning\n"
    "and that were answered / all returning callers."
)


@report.command("callers")
@_period_options
def report_callers(ctx: click.Context, date: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """New-patient rate per day and service line; the returning callers' routing hit rate."""
    cfg = load(ctx)
    lo, hi = _range(date, since, until)

    async def go() -> reports.CallersReport:
        async with open_db(cfg.db_path) as db:
            return await reports.callers_report(db, lo, hi)

    r = run(go())
    if as_json:
        echo_json(r)
        return
    click.echo(CALLERS_HEADER)
    t = r["total"]
    if not t["calls"]:
        click.echo("No inbound calls in this period.")
        return

    def rows(d: dict[str, reports.KindCounts]) -> list[list[object]]:
        return [[k, v["calls"], v["patient"], v["known"], v["new"], _pct(v["new_rate"])] for k, v in d.items()]

    click.echo(
        f"Inbound calls {t['calls']}: patients {t['patient']}, known numbers {t['known']}, new {t['new']}; "
        f"new-patient rate {_pct(t['new_rate'])}"
    )
    click.echo("Per day:")
    click.echo(table(["DAY", "CALLS", "PATIENT", "KNOWN", "NEW", "NEW RATE"], rows(r["days"]), indent="  "))
    click.echo("Per service line:")
    click.echo(table(["LINE", "CALLS", "PATIENT", "KNOWN", "NEW", "NEW RATE"], rows(r["lines"]), indent="  "))
    g = r["routing"]
    click.echo(
        f"Returning callers {g['returning']}: routed as returning {g['recognised']}, answered {g['answered']}, "
        f"both {g['hits']}; routing hit rate {_pct(g['hit_rate'])}"
    )


@report.command("reasons")
@_period_options
def report_reasons(ctx: click.Context, date: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """Why patients called: reason codes per day, service line and agent (the last one set per call)."""
    cfg = load(ctx)
    lo, hi = _range(date, since, until)

    async def go() -> reports.ReasonsReport:
        async with open_db(cfg.db_path) as db:
            return await reports.reasons_report(db, lo, hi)

    r = run(go())
    if as_json:
        echo_json(r)
        return
    if not r["calls"]:
        click.echo("No call has a reason in this period.")
        return
    click.echo(f"Calls with a reason: {r['calls']} (set " + ", ".join(f"{k} {v}" for k, v in r["via"].items()) + ")")
    click.echo(
        table(
            ["REASON", "LABEL", "CALLS", "SHARE"],
            [[x["code"], x["label"], x["calls"], _pct(x["share"])] for x in r["reasons"]],
            indent="  ",
        )
    )
    for title, key in (("Per day", "days"), ("Per service line", "lines"), ("Per agent", "agents")):
        d: dict[str, dict[str, int]] = r[key]  # type: ignore[literal-required]
        click.echo(f"{title}:")
        click.echo(
            table(
                [key.upper()[:-1], "REASONS"],
                [[k, ", ".join(f"{c} {n}" for c, n in v.items())] for k, v in d.items()],
                indent="  ",
            )
        )


@report.command("quality")
@_period_options
def report_quality(ctx: click.Context, date: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """Call quality per agent: the reviews of the period's calls, mean score, yes rate per item
    (every call reviewed when no period is given)."""
    cfg = load(ctx)
    lo, hi = (None, None) if date is None and since is None and until is None else day_range(date, since, until)

    async def go() -> quality.QualityReport:
        async with open_db(cfg.db_path) as db:
            return await quality.quality_report(db, lo, hi)

    r = run(go())
    if as_json:
        echo_json(r)
        return
    if not r["reviews"]:
        click.echo("No reviewed calls in this period.")
        return
    click.echo(f"Reviewed calls {r['reviews']}, mean score {_pct(r['score'])}")
    click.echo(
        table(
            ["AGENT", "REVIEWS", "SCORE", "LAST REVIEW"],
            [[a["agent"], a["reviews"], _pct(a["score"]), _when(a["last_reviewed_at"] or 0)] for a in r["agents"]],
            indent="  ",
        )
    )
    for a in r["agents"]:
        click.echo(f"{a['agent']}:")
        click.echo(
            table(
                ["ITEM", "YES", "ASKED", "RATE"],
                [[i["item"], i["yes"], i["answered"], _pct(i["rate"])] for i in a["items"]],
                indent="  ",
            )
        )
