"""The reports page and its API (pypbx.web.reports) and the chart figures behind it
(pypbx.reports: service level per day, waiting-time distribution, staffing per hour):
every report's CSV — every table of it — holds the figures of ``pypbx report NAME --json``
for the same period; the JSON route equals the CLI's JSON; roles; the period's parsing;
the page shows the tables and the charts' data. In-process (aiohttp's test server)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bench.web_reports import fill, synthetic
from pypbx import reports as R
from pypbx import sitetime
from pypbx.config import load_config
from pypbx.db import open_db
from pypbx.web import reports as W
from tests.unit.test_web import cheap_hashes, desk, login  # noqa: F401 - cheap_hashes: an autouse fixture

FIRST = dt.date(2026, 11, 16)
DAYS = 7
SINCE, UNTIL = "2026-11-16", "2026-11-23"


def seed(config: Path, n: int = 600) -> None:
    cfg = load_config(config)

    async def go() -> None:
        async with open_db(cfg.db_path) as db:
            await fill(db, synthetic(n, FIRST, DAYS, seed=5))

    asyncio.run(go())


def run(make_config: Callable[..., Path], body: Callable[[TestClient, Any], Awaitable[None]], n: int = 600) -> Path:
    config = make_config()
    seed(config, n)

    async def go() -> None:
        async with desk(config) as (client, ctx):
            await body(client, ctx)

    asyncio.run(go())
    return config


def cell(v: Any) -> str:
    """A JSON value as a CSV cell (independent of pypbx.web.reports.cell)."""
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v)


def lookup(obj: dict[str, Any], col: str) -> Any:
    """``obj[col]``, ``obj[a][b]`` for ``a.b``; a key the JSON does not have is an empty cell."""
    if col in obj:
        return obj[col]
    head, _, tail = col.partition(".")
    inner = obj.get(head)
    return inner.get(tail) if isinstance(inner, dict) else None


def expected_rows(spec: W.TableSpec, data: Any, columns: list[str]) -> list[list[str]]:
    """The rows the CSV must hold, read from the CLI's JSON by the table's shape."""
    part = data
    for p in spec.path:
        part = part[p]
    if spec.shape is W.Shape.RECORD:
        return [[cell(lookup(part, c)) for c in columns]]
    if spec.shape is W.Shape.RECORDS:
        return [[cell(lookup(r, c)) for c in columns] for r in part]
    if spec.shape is W.Shape.KEYED:
        key = spec.names[0]
        return [[k if c == key else cell(lookup(v, c)) for c in columns] for k, v in part.items()]
    if spec.shape is W.Shape.COUNTS:
        return [[k, cell(v)] for k, v in part.items()]
    return [[k, k2, cell(v2)] for k, v in part.items() for k2, v2 in v.items()]


def test_every_reports_csv_equals_the_cli_json(make_config: Callable[..., Path], invoke_cli: Any) -> None:
    got: dict[tuple[str, str], str] = {}
    api_json: dict[str, Any] = {}

    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "sup")).status == 302
        for name in W.NAMES:
            r = await client.get(f"/api/v1/reports/{name}", params={"since": SINCE, "until": UNTIL})
            assert r.status == 200, await r.text()
            api_json[name] = await r.json()
            for spec in W.TABLES[name]:
                r = await client.get(
                    f"/api/v1/reports/{name}.csv", params={"since": SINCE, "until": UNTIL, "table": spec.key}
                )
                assert r.status == 200, await r.text()
                assert r.headers["Content-Type"].startswith("text/csv")
                assert "attachment" in r.headers["Content-Disposition"]
                got[(name, spec.key)] = await r.text()

    config = run(make_config, body)
    checked = 0
    for name in W.NAMES:
        res = invoke_cli("report", name, "--json", "--since", SINCE, "--until", UNTIL, "--config", str(config))
        assert res.exit_code == 0, res.output
        cli = json.loads(res.output)
        assert api_json[name] == cli, name
        for spec in W.TABLES[name]:
            rows = list(csv.reader(io.StringIO(got[(name, spec.key)])))
            columns, body_rows = rows[0], rows[1:]
            want = expected_rows(spec, cli, columns)
            if spec.shape is W.Shape.RECORDS:  # a JSON list: in its order
                assert body_rows == want, (name, spec.key)
            else:  # a JSON object: the CLI prints its keys sorted
                assert sorted(body_rows) == sorted(want), (name, spec.key)
            assert body_rows, (name, spec.key)  # real figures, not an empty table
            checked += len(body_rows)
    assert checked > 150


def test_csv_default_table_unknown_report_bad_period_and_roles(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await client.get("/api/v1/reports/queues.csv")).status == 401  # anonymous
        assert (await login(client, "alice")).status == 302  # an agent: no reports
        for url in ("/api/v1/reports/queues.csv", "/api/v1/reports/hours", "/api/v1/reports/charts"):
            assert (await client.get(url)).status == 403, url
        page = await client.get("/reports", allow_redirects=False)
        assert page.status == 403
        client.session.cookie_jar.clear()
        assert (await login(client, "sup")).status == 302
        r = await client.get("/api/v1/reports/queues.csv", params={"since": SINCE, "until": UNTIL})
        text = await r.text()
        assert text.splitlines()[0].startswith("queue,entered,answered,")
        assert {line.split(",")[0] for line in text.splitlines()[1:]} == {"front", "nurses"}
        assert (await client.get("/api/v1/reports/nosuch.csv")).status == 404
        r = await client.get("/api/v1/reports/summary.csv", params={"table": "nosuch"})
        assert r.status == 404 and "has no table" in (await r.json())["error"]
        r = await client.get("/api/v1/reports/summary", params={"since": "16/11/2026"})
        assert r.status == 400 and "expected YYYY-MM-DD" in (await r.json())["error"]
        r = await client.get("/api/v1/reports/summary.csv", params={"since": UNTIL, "until": SINCE})
        assert r.status == 400 and "swap them" in (await r.json())["error"]
        # the admin reads reports too
        client.session.cookie_jar.clear()
        assert (await login(client, "boss")).status == 302
        assert (await client.get("/api/v1/reports/lines.csv")).status == 200

    run(make_config, body, n=60)


def test_the_page_shows_every_report_the_charts_data_and_csv_links(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "sup")).status == 302
        r = await client.get("/reports", params={"from": SINCE, "to": "2026-11-22"})
        assert r.status == 200
        html = await r.text()
        for name in W.NAMES:
            assert f'id="report-{name}"' in html
            assert f'href="/api/v1/reports/{name}.csv?since={SINCE}&amp;until={UNTIL}"' in html
        assert 'src="/static/vendor/uplot/uPlot.iife.min.js"' in html and 'src="/static/reports.js"' in html
        data = json.loads(html.split('<script id="report-charts" type="application/json">')[1].split("</script>")[0])
        assert set(data) == {"hours", "service_level_by_day", "wait_distribution", "staffing"}
        assert [d["day"] for d in data["service_level_by_day"]] == [
            (FIRST + dt.timedelta(days=i)).isoformat() for i in range(DAYS)
        ]
        assert len(data["staffing"]) == 24
        # the page's figures are the report's
        rep = await (await client.get("/api/v1/reports/summary", params={"since": SINCE, "until": UNTIL})).json()
        assert f'<span class="num" id="s-offered">{rep["summary"]["offered"]}</span>' in html
        # nav: a supervisor sees Reports and Supervisor
        assert 'href="/reports"' in html and 'href="/supervisor"' in html
        # the vendored chart library and its licence are served
        js = await client.get("/static/vendor/uplot/uPlot.iife.min.js")
        assert js.status == 200 and "uPlot" in await js.text()
        lic = await client.get("/static/vendor/uplot/LICENSE")
        assert lic.status == 200 and "MIT" in await lic.text()
        # a bad period: one line on the page, today's reports below it
        r = await client.get("/reports", params={"from": "2026-11-22", "to": SINCE})
        assert r.status == 200 and "swap them" in await r.text()

    run(make_config, body, n=140)


# --------------------------------------------------------------------------- the chart figures


def ev(ts: float, kind: str, queue: str | None = "front", agent: str | None = None, seq: int = 0, **data: Any) -> Any:
    return {"seq": seq, "ts": ts, "queue": queue, "call_id": None, "agent": agent, "kind": kind, "data": data}


def at(day: int, h: float) -> float:
    return sitetime.day_start(FIRST + dt.timedelta(days=day)) + h * 3600


def test_service_level_by_day_uses_the_report_definition() -> None:
    events = [
        ev(at(0, 9), "CONNECT", wait=5),
        ev(at(0, 9.1), "CONNECT", wait=40),
        ev(at(0, 9.2), "ABANDON", wait=30),
        ev(at(0, 9.3), "ABANDON", wait=2),  # a short abandon: not in the denominator
        ev(at(1, 10), "CONNECT", queue="nurses", wait=1),
        ev(at(1, 10), "ENTER"),
    ]
    days = R.service_level_by_day(events, target=20, short_abandon=5)
    assert [(d["day"], d["answered"], d["answered_within"], d["ended"], d["service_level"]) for d in days] == [
        ("2026-11-16", 2, 1, 3, 0.333),
        ("2026-11-17", 1, 1, 1, 1.0),
    ]
    # one day's figure equals the queues report's over that day
    q = R._queues(events[:4], 20, 5)["front"]
    assert q["service_level"] == days[0]["service_level"]


def test_wait_distribution_bars() -> None:
    events = [
        ev(0, "CONNECT", wait=0),
        ev(0, "CONNECT", wait=9.9),
        ev(0, "CONNECT", wait=10),
        ev(0, "ABANDON", wait=3),  # short: left out
        ev(0, "ABANDON", wait=45),
        ev(0, "CONNECT", wait=400),
        ev(0, "CONNECT", queue=None, agent="x", wait=5),  # not a queue call
    ]
    bars = R.wait_distribution(events, short_abandon=5)
    assert [b["label"] for b in bars] == [
        "0-10 s",
        "10-20 s",
        "20-30 s",
        "30-60 s",
        "60-120 s",
        "120-180 s",
        "180-300 s",
        "300+ s",
    ]
    assert [(b["answered"], b["abandoned"]) for b in bars] == [
        (2, 0),
        (1, 0),
        (0, 0),
        (0, 1),
        (0, 0),
        (0, 0),
        (0, 0),
        (1, 0),
    ]


def test_staffing_logged_in_and_staffed_per_hour_against_seats_needed() -> None:
    day0 = sitetime.day_start(FIRST)
    events = [
        ev(at(0, 8), "LOGIN", queue=None, agent="a", seq=1),
        ev(at(0, 8.5), "LOGIN", queue=None, agent="b", seq=2),
        ev(at(0, 9), "PAUSE", queue=None, agent="a", seq=3),
        ev(at(0, 9.5), "UNPAUSE", queue=None, agent="a", seq=4),
        ev(at(0, 10), "LOGOUT", queue=None, agent="a", seq=5),
        ev(at(0, 9), "LOGOUT", queue=None, agent="c", seq=6),  # logged in before the period began
    ]
    hours: list[R.HourRow] = [
        {"hour": 9, "offered": 10, "answered": 9, "abandoned": 1, "per_day": 10, "asa": 5.0, "seats_needed": 3}
    ]
    st = R.staffing(events, hours, since=day0, until=day0 + 86400, days=1)
    by = {h["hour"]: h for h in st}
    assert len(st) == 24
    assert (by[8]["logged_in"], by[8]["staffed"]) == (1.5 + 1, 1.5 + 1)  # a all hour, b half, c all hour
    assert (by[9]["logged_in"], by[9]["staffed"], by[9]["seats_needed"]) == (2.0, 1.5, 3)
    assert (by[10]["logged_in"], by[10]["seats_needed"]) == (1.0, 0)  # b stays to the end of the day
    assert by[23]["logged_in"] == 1.0 and by[3]["logged_in"] == 1.0  # b to midnight, c from midnight
    # over two days the average halves
    st2 = R.staffing(events, hours, since=day0, until=day0 + 2 * 86400, days=2)
    assert {h["hour"]: h for h in st2}[9]["logged_in"] == 1.5  # (a + b on day 0, b on day 1) / 2 days


def test_report_and_charts_reads_once_and_matches_report(tmp_config: Path) -> None:
    cfg = load_config(tmp_config)

    async def go() -> None:
        async with open_db(cfg.db_path) as db:
            await fill(db, synthetic(300, FIRST, 3, seed=2))
            lo, hi = sitetime.day_start(FIRST), sitetime.day_start(FIRST + dt.timedelta(days=3))
            rep, charts = await R.report_and_charts(db, lo, hi, now=hi)
            assert charts is not None
            assert rep == await R.report(db, lo, hi, now=hi)
            sl = charts["service_level_by_day"]
            assert sum(d["answered"] for d in sl) == sum(q["answered"] for q in rep["queues"].values())
            assert sum(b["answered"] for b in charts["wait_distribution"]) == sum(
                q["answered"] for q in rep["queues"].values()
            )
            assert sum(b["abandoned"] for b in charts["wait_distribution"]) == sum(
                q["abandoned"] for q in rep["queues"].values()
            )
            seats = {h["hour"]: h["seats_needed"] for h in rep["hours"]}
            assert all(s["seats_needed"] == seats.get(s["hour"], 0) for s in charts["staffing"])
            # the synthetic agents: five logged in 8:00-18:00, each paused half an hour
            st = {s["hour"]: s for s in charts["staffing"]}
            assert st[12]["logged_in"] == 5.0 and st[12]["staffed"] < 5.0 and st[20]["logged_in"] == 0.0

    asyncio.run(go())


def test_period_parsing() -> None:
    d = sitetime.day_bounds
    assert W.period_of({"date": "2026-11-16"}) == d(FIRST)
    assert W.period_of({"from": "2026-11-16", "to": "2026-11-17"}) == (d(FIRST)[0], d(dt.date(2026, 11, 17))[1])
    assert W.period_of({"since": SINCE, "until": UNTIL}) == (d(FIRST)[0], d(dt.date(2026, 11, 23))[0])
    assert W.period_of({}) == d(sitetime.today())
    with pytest.raises(W.PeriodError, match="swap them"):
        W.period_of({"from": "2026-11-17", "to": "2026-11-16"})
    with pytest.raises(W.PeriodError, match="expected YYYY-MM-DD"):
        W.period_of({"date": "tomorrow"})


def test_csv_cells_are_the_json_values() -> None:
    t = W.Table("x", "X", ["a", "b", "c", "d"], [["text, with comma", 1, 0.5, None]])
    assert W.to_csv(t) == 'a,b,c,d\r\n"text, with comma",1,0.5,\r\n'
