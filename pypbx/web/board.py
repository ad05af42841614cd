"""The wallboard's snapshot (``GET /api/v1/board``): per queue, the callers waiting now and
the longest wait, the agents by state (paused with their reason), today's offered / answered /
abandoned / service level — the very figures of ``pypbx report summary --json`` for today —
and the missed-caller tasks still open with the oldest's age.

Read from the ACD's live snapshot (in memory, no call waits for it), the database and the
report; the report is computed at most once per event-stream position (cached on the bus's
sequence number, and at most ``REPORT_MAX_AGE`` old), so a room full of boards costs one
report per change.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pypbx import acdstore, reports, sitetime
from pypbx import missed as M

if TYPE_CHECKING:
    from pypbx.web.server import WebContext

STATES = ("available", "ringing", "on_call", "wrap_up", "paused", "logged_out")


def today_range(now: float | None = None) -> tuple[float, float]:
    """The site's midnight .. the next one (``pypbx report --date today``, ``[site] timezone``;
    23 or 25 hours on a DST change)."""
    return sitetime.day_bounds(sitetime.local(time.time() if now is None else now).date())


#: the books are written by the stream's subscribers, a moment after the event: a cached
#: report is recomputed after this many seconds even when no new event came
REPORT_MAX_AGE = 2.0


class BoardCache:
    def __init__(self) -> None:
        self.key: tuple[str, int, float] | None = None
        self.report: reports.Report | None = None
        self.made_at = 0.0


async def today_report(ctx: WebContext) -> reports.Report:
    lo, hi = today_range()
    key = (ctx.bus.run, ctx.bus.seq, lo)
    cache = ctx.board_cache
    now = time.monotonic()
    if cache.report is None or cache.key != key or now - cache.made_at > REPORT_MAX_AGE:
        cache.report = await reports.report(ctx.db, lo, hi)
        cache.key = key
        cache.made_at = now
    return cache.report


async def snapshot(ctx: WebContext) -> dict[str, object]:
    now = time.time()
    acd = ctx.acd
    names = sorted(acd.engine.queues) if acd is not None else [q.name for q in await acdstore.list_queues(ctx.db)]
    rep = await today_report(ctx)
    tasks = await M.list_tasks(ctx.db)
    queues: list[dict[str, object]] = []
    for name in names:
        waiting: list[float] = []
        agents = dict.fromkeys(STATES, 0)
        paused: list[dict[str, object]] = []
        if acd is not None:
            st = acd.queue_status(name)
            waiting = [float(w["wait"]) for w in st["waiting"] if not w["is_callback"]]
            for a in st["agents"]:
                agents[a["state"]] = agents.get(a["state"], 0) + 1
                if a["state"] == "paused":
                    paused.append({"agent": a["id"], "name": a["name"], "reason": a["pause_reason"]})
        q = rep["queues"].get(name)
        open_tasks = [t for t in tasks if t.queue == name]
        queues.append(
            {
                "queue": name,
                "waiting": len(waiting),
                "longest_wait": max(waiting) if waiting else 0.0,
                "agents": agents,
                "paused": paused,
                "today": {
                    "offered": q["entered"] if q else 0,
                    "answered": q["answered"] if q else 0,
                    "abandoned": q["abandoned"] if q else 0,
                    "service_level": q["service_level"] if q else None,
                },
                "missed_open": len(open_tasks),
                "missed_oldest": max((t.waiting(now) for t in open_tasks), default=None),
            }
        )
    s = rep["summary"]
    return {
        "at": now,
        "seq": ctx.bus.seq,
        "run": ctx.bus.run,
        "live": acd is not None,
        "thresholds": {"warn": ctx.cfg.web.board_wait_warn, "alarm": ctx.cfg.web.board_wait_alarm},
        "queues": queues,
        "today": {
            "offered": s["offered"],  # calls that ended today (the report's "offered")
            "answered": s["answered"],
            "abandoned": s["abandoned"],
            "in_progress": s["in_progress"],
        },
        "missed_open": len(tasks),
        "missed_oldest": max((t.waiting(now) for t in tasks), default=None),
    }
