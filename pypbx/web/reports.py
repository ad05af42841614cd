"""The reports page (``/reports``) and its API (``/api/v1/reports/NAME``, ``NAME.csv``,
``/api/v1/reports/charts``): the reports of ``pypbx report … --json`` — summary, queues,
hours, agents, lines, missed, callers, reasons — for a chosen period, from the same
library functions (pypbx.reports), with charts (:func:`pypbx.reports.build_charts`).

Each report is turned into tables by :data:`TABLES`: a column is a key of the report's JSON
(a nested key as ``outer.inner``), so the CSV's figures are the JSON's figures, written as
JSON writes them (``null`` as an empty cell). The page shows the same tables.

Period: ``?date=YYYY-MM-DD|today|yesterday`` (one site day), or ``?since=`` / ``?until=``
(``YYYY-MM-DD [HH:MM]``, site time, ``until`` excluded) — ``pypbx report``'s options; the
page's form takes a first and a last day (both included).
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from pypbx import reports as R
from pypbx import sitetime
from pypbx.db import Database
from pypbx.jsontypes import JSON
from pypbx.web.pages import NAV, render
from pypbx.web.routes import SUPERVISORS, api_error, ctx_of, route

log = logging.getLogger(__name__)

V1 = "/api/v1"

#: the reports, in page order (the names of ``pypbx report NAME``)
NAMES = ("summary", "queues", "hours", "agents", "lines", "missed", "callers", "reasons")


class Shape(enum.Enum):
    """How a part of a report's JSON becomes rows."""

    RECORD = "record"  # one object: one row
    RECORDS = "records"  # a list of objects: a row each
    KEYED = "keyed"  # {key: object}: a row each, the key first
    COUNTS = "counts"  # {key: number}: (key, number) rows
    NESTED = "nested"  # {key: {key2: number}}: (key, key2, number) rows


@dataclass(frozen=True)
class TableSpec:
    key: str  # ?table= of the CSV
    title: str
    path: tuple[str, ...]  # where in the report's JSON
    shape: Shape
    names: tuple[str, ...] = ()  # the key column(s) and the value column of KEYED/COUNTS/NESTED


def _t(key: str, title: str, path: tuple[str, ...], shape: Shape, *names: str) -> TableSpec:
    return TableSpec(key, title, path, shape, names)


#: every report's tables; the first one is the CSV's default (``?table=`` picks another)
TABLES: dict[str, tuple[TableSpec, ...]] = {
    "summary": (
        _t("summary", "Calls", ("summary",), Shape.RECORD),
        _t("dispositions", "Calls by outcome", ("summary", "dispositions"), Shape.COUNTS, "disposition", "calls"),
        _t(
            "missed_by_reason",
            "Inbound callers not spoken to, by reason",
            ("summary", "missed_by_reason"),
            Shape.COUNTS,
            "reason",
            "calls",
        ),
    ),
    "queues": (_t("queues", "Queues", (), Shape.KEYED, "queue"),),
    "hours": (_t("hours", "Load and seats needed per hour", (), Shape.RECORDS),),
    "agents": (_t("agents", "Agents", (), Shape.KEYED, "agent"),),
    "lines": (_t("lines", "Service lines", (), Shape.KEYED, "line"),),
    "missed": (_t("missed", "Callers to call back", (), Shape.RECORDS),),
    "callers": (
        _t("total", "Inbound callers by kind", ("total",), Shape.RECORD),
        _t("days", "Per day", ("days",), Shape.KEYED, "day"),
        _t("lines", "Per service line", ("lines",), Shape.KEYED, "line"),
        _t("routing", "Returning callers and smart routing", ("routing",), Shape.RECORD),
    ),
    "reasons": (
        _t("reasons", "Why patients called", ("reasons",), Shape.RECORDS),
        _t("days", "Per day", ("days",), Shape.NESTED, "day", "reason", "calls"),
        _t("lines", "Per service line", ("lines",), Shape.NESTED, "line", "reason", "calls"),
        _t("agents", "Per agent", ("agents",), Shape.NESTED, "agent", "reason", "calls"),
    ),
}

#: the part of :func:`pypbx.reports.report` that ``pypbx report NAME --json`` prints (None: all of it)
REPORT_KEY: dict[str, str | None] = {
    "summary": None,
    "queues": "queues",
    "hours": "hours",
    "agents": "agents",
    "lines": "lines",
    "missed": "missed",
}


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[JSON]]


def _flat(obj: Mapping[str, JSON]) -> dict[str, JSON]:
    """One level of nesting flattened: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are left out)."""
    out: dict[str, JSON] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if not isinstance(v2, (dict, list)):
                    out[f"{k}.{k2}"] = v2
        elif not isinstance(v, list):
            out[k] = v
    return out


def _columns(rows: Sequence[Mapping[str, JSON]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def _at(data: JSON, path: tuple[str, ...]) -> JSON:
    for p in path:
        data = data[p] if isinstance(data, dict) and p in data else None
    return data


def table(data: JSON, spec: TableSpec) -> Table:
    """The rows of ``spec`` in report JSON ``data``."""
    part = _at(data, spec.path)
    if spec.shape is Shape.RECORD:
        flat = [_flat(part)] if isinstance(part, dict) else []
        cols = _columns(flat)
        return Table(spec.key, spec.title, cols, [[r.get(c) for c in cols] for r in flat])
    if spec.shape is Shape.RECORDS:
        flat = [_flat(r) for r in part if isinstance(r, dict)] if isinstance(part, list) else []
        cols = _columns(flat)
        return Table(spec.key, spec.title, cols, [[r.get(c) for c in cols] for r in flat])
    items = list(part.items()) if isinstance(part, dict) else []
    if spec.shape is Shape.KEYED:
        flat = [{spec.names[0]: k, **_flat(v)} for k, v in items if isinstance(v, dict)]
        cols = _columns(flat) or [spec.names[0]]
        return Table(spec.key, spec.title, cols, [[r.get(c) for c in cols] for r in flat])
    if spec.shape is Shape.COUNTS:
        return Table(spec.key, spec.title, list(spec.names), [[k, v] for k, v in items])
    rows: list[list[JSON]] = [
        [k, k2, v2] for k, v in items if isinstance(v, dict) for k2, v2 in v.items()
    ]  # Shape.NESTED
    return Table(spec.key, spec.title, list(spec.names), rows)


def tables(name: str, data: JSON) -> list[Table]:
    return [table(data, spec) for spec in TABLES[name]]


def cell(v: JSON) -> str:
    """A CSV cell: the value as the JSON writes it (``null``: empty; text as it is)."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v)


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(t.columns)
    for r in t.rows:
        w.writerow([cell(v) for v in r])
    return buf.getvalue()


# --------------------------------------------------------------------------- the period


class PeriodError(ValueError):
    pass


def _parse_day(value: str) -> dt.date | None:
    v = value.strip().lower()
    if v == "today":
        return sitetime.today()
    if v == "yesterday":
        return sitetime.today() - dt.timedelta(days=1)
    try:
        return dt.datetime.strptime(v, "%Y-%m-%d").date()
    except ValueError:
        return None


def parse_when(value: str, name: str) -> float:
    """``pypbx report``'s ``--since`` / ``--until``: a site day's start, or a site time."""
    day = _parse_day(value)
    if day is not None:
        return sitetime.day_start(day)
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"):
        try:
            return dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=sitetime.zone()).timestamp()
        except ValueError:
            pass
    raise PeriodError(f"{name}: expected YYYY-MM-DD [HH:MM], 'today' or 'yesterday', got {value!r}")


def period_of(q: Mapping[str, str]) -> tuple[float, float]:
    """(since, until) of a query: ``date`` (one site day), ``since``/``until`` (until
    excluded), ``from``/``to`` (the page's days, both included); default today."""
    if q.get("date"):
        day = _parse_day(q["date"])
        if day is None:
            raise PeriodError(f"date: expected YYYY-MM-DD, 'today' or 'yesterday', got {q['date']!r}")
        return sitetime.day_bounds(day)
    if q.get("from") or q.get("to"):
        first = _parse_day(q.get("from") or q.get("to") or "")
        last = _parse_day(q.get("to") or q.get("from") or "")
        if first is None or last is None:
            raise PeriodError(f"expected days as YYYY-MM-DD, got {q.get('from')!r} .. {q.get('to')!r}")
        if last < first:
            raise PeriodError(f"the last day {last} is before the first {first}: swap them")
        return sitetime.day_bounds(first)[0], sitetime.day_bounds(last)[1]
    if q.get("since") or q.get("until"):
        today = sitetime.day_bounds(sitetime.today())
        lo = parse_when(q["since"], "since") if q.get("since") else today[0]
        hi = parse_when(q["until"], "until") if q.get("until") else today[1]
        if lo > hi:
            raise PeriodError(f"since {q.get('since')} is after until {q.get('until')}: swap them")
        return lo, hi
    return sitetime.day_bounds(sitetime.today())


# --------------------------------------------------------------------------- building


@dataclass
class Built:
    since: float
    until: float
    report: R.Report
    charts: R.Charts
    callers: R.CallersReport
    reasons: R.ReasonsReport

    def part(self, name: str) -> JSON:
        """What ``pypbx report NAME --json`` prints."""
        if name == "callers":
            return cast(JSON, self.callers)
        if name == "reasons":
            return cast(JSON, self.reasons)
        key = REPORT_KEY[name]
        whole = cast(dict[str, JSON], self.report)
        return cast(JSON, whole) if key is None else whole[key]


async def build(db: Database, since: float, until: float, *, queue: str | None = None) -> Built:
    """Every report of the period (``pypbx report``'s defaults: target 20 s, goal 80 %)."""
    calls = await db.call_rows_between(since, until)  # read once for the report and the callers' report
    rep, charts = await R.report_and_charts(db, since, until, queue=queue, calls=calls, now=time.time())
    assert charts is not None
    callers = await R.callers_report(db, since, until, calls=calls)
    return Built(since, until, rep, charts, callers, await R.reasons_report(db, since, until))


async def one(db: Database, name: str, since: float, until: float, queue: str | None = None) -> JSON:
    """Report ``name`` alone (reads only what it needs)."""
    if name == "callers":
        return cast(JSON, await R.callers_report(db, since, until))
    if name == "reasons":
        return cast(JSON, await R.reasons_report(db, since, until))
    rep = cast(dict[str, JSON], await R.report(db, since, until, queue=queue, now=time.time()))
    key = REPORT_KEY[name]
    return cast(JSON, rep) if key is None else rep[key]


def _period(request: web.Request) -> tuple[float, float]:
    try:
        return period_of(request.query)
    except PeriodError as exc:
        raise api_error(400, str(exc)) from None


# --------------------------------------------------------------------------- routes

NAV.append(("/reports", "Reports", SUPERVISORS))


@route(
    "GET",
    f"{V1}/reports/charts",
    roles=SUPERVISORS,
    summary="The reports page's charts: calls and abandons per hour, service level per day, waits, staffing.",
)
async def report_charts(request: web.Request) -> web.Response:
    lo, hi = _period(request)
    rep, charts = await R.report_and_charts(ctx_of(request).db, lo, hi, now=time.time())
    assert charts is not None
    return web.json_response({"period": rep["period"], "hours": rep["hours"], **charts})


async def report_csv(request: web.Request, name: str) -> web.Response:
    lo, hi = _period(request)
    which = request.query.get("table") or TABLES[name][0].key
    spec = next((s for s in TABLES[name] if s.key == which), None)
    if spec is None:
        raise api_error(404, f"report {name} has no table {which!r} ({', '.join(s.key for s in TABLES[name])})")
    data = await one(ctx_of(request).db, name, lo, hi, request.query.get("queue") or None)
    day = sitetime.local(lo).strftime("%Y-%m-%d")
    fname = f"{name}-{day}.csv" if spec.key == name else f"{name}-{spec.key}-{day}.csv"
    return web.Response(
        text=to_csv(table(data, spec)),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{fname}"'},
    )


async def report_json(request: web.Request, name: str) -> web.Response:
    lo, hi = _period(request)
    data = await one(ctx_of(request).db, name, lo, hi, request.query.get("queue") or None)
    return web.json_response(data)


def _register(name: str) -> None:
    """``/api/v1/reports/NAME`` and ``NAME.csv``: one route each (explicit paths: the route
    table and the OpenAPI document list every report)."""

    async def as_json(request: web.Request) -> web.Response:
        return await report_json(request, name)

    async def as_csv(request: web.Request) -> web.Response:
        return await report_csv(request, name)

    tables_ = ", ".join(s.key for s in TABLES[name])
    route(
        "GET",
        f"{V1}/reports/{name}",
        roles=SUPERVISORS,
        summary=f"pypbx report {name} --json (?date= or ?since=&until=, site days, until excluded).",
    )(as_json)
    route(
        "GET",
        f"{V1}/reports/{name}.csv",
        roles=SUPERVISORS,
        summary=f"A table of pypbx report {name} as CSV, its figures the JSON's (?table= {tables_}; period as the JSON).",
    )(as_csv)


for _n in NAMES:
    _register(_n)


PERCENT = ("service_level", "answer_rate", "new_rate", "hit_rate", "share")
WHEN = ("first", "last")


def shown(col: str, v: JSON) -> str:
    """A cell on the page: rates as %, times of day as HH:MM, the rest as in the CSV."""
    if v is None:
        return "–"
    if col in PERCENT and isinstance(v, (int, float)):
        return f"{100 * v:.0f} %"
    if col in WHEN and isinstance(v, (int, float)):
        return sitetime.local(float(v)).strftime("%Y-%m-%d %H:%M")
    return cell(v)


@route("GET", "/reports", roles=SUPERVISORS, page=True, summary="The reports page, with charts and CSV downloads.")
async def reports_page(request: web.Request) -> web.Response:
    try:
        lo, hi = period_of(request.query)
        error = None
    except PeriodError as exc:
        lo, hi = sitetime.day_bounds(sitetime.today())
        error = str(exc)
    started = time.perf_counter()
    b = await build(ctx_of(request).db, lo, hi)
    first = sitetime.local(lo).date()
    last = (sitetime.local(hi) - dt.timedelta(seconds=1)).date()
    since_s = first.isoformat()
    until_s = (last + dt.timedelta(days=1)).isoformat()
    sections = [(name, tables(name, b.part(name))) for name in NAMES]
    charts = {"hours": b.report["hours"], **b.charts}
    log.debug("reports page %s..%s built in %.3f s", since_s, until_s, time.perf_counter() - started)
    return render(
        request,
        "reports.html",
        first=since_s,
        last=last.isoformat(),
        since=since_s,
        until=until_s,
        sections=sections,
        summary=b.report["summary"],
        settings=b.report["settings"],
        charts=charts,
        shown=shown,
        error=error,
    )
