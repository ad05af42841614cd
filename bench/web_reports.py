"""Benchmark: the web desk's reports page and API with 100,000 calls in the database.

Fills a temporary database (pypbx's own migrations) with ``--calls`` synthetic calls over
``--days`` days ending yesterday (clinic hours 8:00-18:00, inbound mostly, ~80 % answered,
~10 % abandoned; each queue call with its ENTER / CONNECT / ABANDON / COMPLETE queue events,
agents' LOGIN / PAUSE / UNPAUSE / LOGOUT, a reason on half the calls, caller kinds), then
serves the web desk in-process (aiohttp on a real socket, the same application ``pypbx
run`` serves) and times, as a logged-in supervisor over HTTP:

* ``GET /reports`` (every report, the charts, the page) for one day, one week, one month
  and the whole period (all ``--calls`` calls);
* ``GET /api/v1/reports/summary.csv`` and ``/api/v1/reports/charts`` for one day.

Each figure is the median of ``--repeats`` requests (after one warm-up): the wall time and
the CPU time of this process (server and client; on a loaded machine the CPU time is what
the request costs, the wall time includes waiting for a core). The issue's target: the
reports page answers in < 0.5 s with 100,000 calls in the database.

    .venv/bin/python bench/web_reports.py                  # 100k calls, ~1 min
    .venv/bin/python bench/web_reports.py --calls 20000 --days 60 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AGENTS = ("alice", "bob", "carol", "dave", "erin")
QUEUES = ("front", "nurses")
LINES = ("Appointments", "Results", "Urgent")
REASONS = ("appointment", "results", "prescription", "billing")
KINDS = ("patient", "known", "new")
#: a call's (disposition, weight) for inbound calls
OUTCOMES = (("answered", 80), ("abandoned_queue", 10), ("voicemail", 4), ("after_hours", 3), ("overflowed_out", 3))


def synthetic(n: int, first_day: dt.date, days: int, seed: int = 11) -> Iterator[dict[str, Any]]:
    """``n`` calls spread over ``days`` days from ``first_day`` (site = local time), oldest
    first: dicts with a ``call`` row, its ``events`` (queue events) and its ``reason`` (or None)."""
    rng = random.Random(seed)
    per_day = max(1, n // days)
    made = 0
    for d in range(days):
        day = first_day + dt.timedelta(days=d)
        start = dt.datetime(day.year, day.month, day.day, 8, 0).timestamp()
        count = per_day if d < days - 1 else n - made
        times = sorted(start + rng.random() * 10 * 3600 for _ in range(count))
        for i, t in enumerate(times):
            made += 1
            cid = f"b{d:04d}{i:05d}"
            q = rng.choice(QUEUES)
            outbound = rng.random() < 0.08
            disp = "answered" if outbound else rng.choices(*zip(*OUTCOMES, strict=True))[0]
            agent = rng.choice(AGENTS) if disp == "answered" else None
            wait = rng.expovariate(1 / 25.0)
            talk = rng.uniform(30, 400) if disp == "answered" else None
            call = {
                "id": cid,
                "direction": "outbound" if outbound else "inbound",
                "caller_number": f"+336{rng.randrange(10**8):08d}",
                "callee_number": "200",
                "did": "+33100000000",
                "service_line": rng.choice(LINES),
                "queue": None if outbound else q,
                "agent": agent,
                "offered_at": t,
                "answered_at": t + wait if talk else None,
                "ended_at": t + wait + (talk or 0.0),
                "talk_seconds": talk,
                "disposition": disp,
                "flags": "",
                "caller_kind": None if outbound else rng.choice(KINDS),
            }
            events: list[tuple[float, str | None, str | None, str | None, str, str]] = []
            if not outbound:
                events.append((t, q, cid, None, "ENTER", "{}"))
                if disp == "answered":
                    events.append((t + wait, q, cid, agent, "CONNECT", json.dumps({"wait": round(wait, 1)})))
                    events.append(
                        (
                            t + wait + (talk or 0),
                            q,
                            cid,
                            agent,
                            "COMPLETE_AGENT",
                            json.dumps({"talk": round(talk or 0, 1)}),
                        )
                    )
                elif disp == "abandoned_queue":
                    events.append((t + wait, q, cid, None, "ABANDON", json.dumps({"wait": round(wait, 1)})))
                elif disp == "overflowed_out":
                    events.append((t + 60, q, cid, None, "OVERFLOW", json.dumps({"wait": 60.0})))
                else:
                    events.append((t + wait, q, cid, None, "TIMEOUT", json.dumps({"wait": round(wait, 1)})))
            reason = (rng.choice(REASONS), agent) if agent and rng.random() < 0.5 else None
            yield {"call": call, "events": events, "reason": reason}
        # the agents' day: logged in 8:00-18:00 (one lunch pause each)
        for k, a in enumerate(AGENTS):
            lunch = start + (4 + 0.25 * k) * 3600
            yield {
                "call": None,
                "events": [
                    (start - 300 + 60 * k, None, None, a, "LOGIN", "{}"),
                    (lunch, None, None, a, "PAUSE", json.dumps({"reason": "lunch"})),
                    (lunch + 1800, None, None, a, "UNPAUSE", "{}"),
                    (start + 10 * 3600 + 60 * k, None, None, a, "LOGOUT", "{}"),
                ],
                "reason": None,
            }


async def fill(db: Any, items: Iterator[dict[str, Any]], batch: int = 5000) -> int:
    """Insert :func:`synthetic`'s calls, queue events and reasons into ``db`` (a
    pypbx.db.Database); returns the number of calls."""
    from pypbx.db.rows import CALL_FIELDS

    calls: list[dict[str, Any]] = []
    events: list[tuple[float, str | None, str | None, str | None, str, str]] = []
    reasons: list[tuple[str, str, str | None, str, float]] = []
    n = 0

    async def flush() -> None:
        async with db.transaction():
            if calls:
                await db.executemany(
                    f"INSERT INTO calls({', '.join(CALL_FIELDS)}) VALUES ({', '.join(':' + f for f in CALL_FIELDS)})",
                    [{f: c.get(f) for f in CALL_FIELDS} for c in calls],
                )
            if events:
                await db.executemany(
                    "INSERT INTO queue_events(ts, queue, call_id, agent, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
                    sorted(events),
                )
            if reasons:
                await db.executemany(
                    "INSERT INTO call_reasons(call_id, code, agent, extension, via, set_at) VALUES (?, ?, ?, NULL, ?, ?)",
                    reasons,
                )
        calls.clear()
        events.clear()
        reasons.clear()

    for it in items:
        c = it["call"]
        if c is not None:
            calls.append(c)
            n += 1
            if it["reason"] is not None:
                code, agent = it["reason"]
                reasons.append((c["id"], code, agent, "web", c["ended_at"]))
        events.extend(it["events"])
        if len(calls) >= batch:
            await flush()
    await flush()
    return n


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from aiohttp import ClientSession, CookieJar, web

    from pypbx import events as E
    from pypbx.config import load_config
    from pypbx.db import open_db
    from pypbx.web import accounts as A
    from pypbx.web.server import build_app, make_context
    from tests.conftest import free_port, render_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "pypbx.toml"
        port = free_port("tcp")
        cfg_path.write_text(
            render_config(
                sip={"bind": "127.0.0.1", "udp_port": free_port("both"), "tcp_port": free_port("tcp")},
                data_dir=str(Path(tmp) / "var"),
                web={"port": port},
            ),
            encoding="utf-8",
        )
        cfg = load_config(cfg_path)
        today = dt.date.today()
        first = today - dt.timedelta(days=args.days)
        async with open_db(cfg.db_path) as db:
            t0 = time.perf_counter()
            n = await fill(db, synthetic(args.calls, first, args.days))
            fill_s = time.perf_counter() - t0
            await A.add_user(db, "sup", "supervisor", password="bench password 1")
            app = build_app(make_context(cfg, db, E.EventBus()))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            base = f"http://127.0.0.1:{port}"
            try:
                async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as s:
                    page = await (await s.get(f"{base}/login")).text()
                    m = re.search(r'name="csrf" value="([^"]+)"', page)
                    assert m is not None
                    r = await s.post(
                        f"{base}/login",
                        data={"name": "sup", "password": "bench password 1", "csrf": m.group(1)},
                        allow_redirects=False,
                    )
                    assert r.status == 302, r.status
                    last = today - dt.timedelta(days=1)

                    async def timed(url: str) -> dict[str, float]:
                        """Median wall time and CPU time (this process: server + client) of a request."""
                        walls, cpus = [], []
                        for i in range(args.repeats + 1):
                            t, c = time.perf_counter(), time.process_time()
                            resp = await s.get(base + url)
                            await resp.read()
                            assert resp.status == 200, (url, resp.status)
                            if i:
                                walls.append(time.perf_counter() - t)
                                cpus.append(time.process_time() - c)
                        return {"wall": round(statistics.median(walls), 3), "cpu": round(statistics.median(cpus), 3)}

                    def span(days: int) -> str:
                        return f"from={(last - dt.timedelta(days=days - 1)).isoformat()}&to={last.isoformat()}"

                    one_day = f"since={last.isoformat()}&until={today.isoformat()}"
                    res: dict[str, Any] = {
                        "calls_in_db": n,
                        "days": args.days,
                        "fill_seconds": round(fill_s, 1),
                        "page_1_day": await timed(f"/reports?{span(1)}"),
                        "page_7_days": await timed(f"/reports?{span(7)}"),
                        "page_30_days": await timed(f"/reports?{span(30)}"),
                        "page_all": await timed(f"/reports?{span(args.days)}") if args.all else None,
                        "csv_summary_1_day": await timed(f"/api/v1/reports/summary.csv?{one_day}"),
                        "charts_1_day": await timed(f"/api/v1/reports/charts?{one_day}"),
                    }
            finally:
                await runner.cleanup()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-all", dest="all", action="store_false", help="skip the whole period (slow: every call)")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    res = asyncio.run(bench(args))
    text = json.dumps(res, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
