"""Reports for the clinic: service level, waiting times, abandoned calls and why, load per
hour and per agent, seats needed per hour, service lines and the missed callers to call back.

:func:`build` is pure (rows in, a dict out; no I/O, no clock) and :func:`report` reads the
period's rows from the database. Sources:

* ``calls`` (pypbx.calllog): one row per call with exactly one final disposition — the
  offered / answered / abandoned totals, the service lines, the hours and the missed callers;
* ``queue_events`` (acd.engine, queue_log style): waits, service level, abandons in queue,
  overflows, agents' answered calls, talk, ring-no-answer and pauses;
* ``surveys``: the post-call scores per agent;
* ``missed_tasks`` (pypbx.missed, the worklist; :func:`report` only): callback rate (tasks
  reached / tasks opened), median and 90th percentile (nearest rank) of the time from the
  first missed call to the number reached, tasks still open; per day, queue, service line.

Definitions (the same as the simulator's, ``acd.simulator``):

* service level = queue calls answered within ``target`` seconds / queue visits that ended
  (answered, abandoned after ``short_abandon`` seconds, timed out, overflowed, refused or
  left empty). Callbacks requested and visits cut by a restart are counted apart and are not
  in the denominator; abandons within ``short_abandon`` seconds (a wrong number, a caller who
  hung up during the greeting) are shown apart too.
* ASA = mean wait of the answered queue calls; AHT = mean talk time of the completed ones.
* seats needed in an hour = the fewest agents reaching ``goal`` of calls answered within
  ``target`` (Erlang C, :func:`acd.erlang.agents_needed`) for that hour's average number of
  inbound calls per day in the period and the period's handle time (talk + wrap-up).
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict, Unpack, cast

from acd import erlang
from pypbx import sitetime
from pypbx.acdstore import list_queue_events
from pypbx.db import Database
from pypbx.db.reasons import RoutingStepRow
from pypbx.db.rows import CallReasonRow, CallRow, SurveyRow
from pypbx.jsontypes import JSON
from pypbx.missed import MissedReport, missed_report

#: inbound dispositions that mean nobody spoke to the caller
MISSED = (
    "abandoned_ringing",
    "abandoned_ivr",
    "abandoned_queue",
    "no_answer",
    "busy",
    "unavailable",
    "after_hours",
    "voicemail",
    "callback_requested",
    "overflowed_out",
    "failed",
    "interrupted",
)
ABANDONED = ("abandoned_ringing", "abandoned_ivr", "abandoned_queue")
#: what a queue visit ended with, by queue event kind
QUEUE_OUTCOMES = ("CONNECT", "ABANDON", "TIMEOUT", "OVERFLOW", "EXITEMPTY", "FULL", "CALLBACK_REQUESTED", "INTERRUPTED")
WAIT_BUCKETS = ((0, 20), (20, 60), (60, 180), (180, None))
DEFAULT_AHT = 180.0  # seconds, when the period has no completed call to measure


class QueueLogEvent(TypedDict):
    """A ``queue_events`` row with ``data`` decoded (what :func:`pypbx.acdstore.list_queue_events` returns)."""

    seq: int
    ts: float
    queue: str | None
    call_id: str | None
    agent: str | None
    kind: str
    data: dict[str, JSON]


class Summary(TypedDict):
    offered: int
    inbound: int
    answered: int
    abandoned: int
    in_progress: int
    answer_rate: float | None
    dispositions: dict[str, int]
    missed_by_reason: dict[str, int]


class QueueStats(TypedDict):
    entered: int
    answered: int
    answered_within: int
    abandoned: int
    short_abandons: int
    timeouts: int
    overflows: int
    refused: int
    left_empty: int
    callbacks_requested: int
    interrupted: int
    abandon_waits: dict[str, int]
    service_level: float | None
    asa: float | None
    max_wait: float | None
    mean_abandon_wait: float | None
    aht: float | None


class AgentStats(TypedDict):
    answered: int
    talk_seconds: float
    ring_no_answer: int
    transfers: int
    pauses: int
    paused_seconds: float
    callbacks: int
    mean_talk: float | None
    survey_mean: float | None
    surveys: int


class HourCounts(TypedDict):
    offered: int
    answered: int
    abandoned: int


class HourRow(HourCounts):
    hour: int
    per_day: float
    asa: float | None
    seats_needed: int


class MissedCaller(TypedDict):
    number: str
    attempts: int
    first: float
    last: float
    reason: str
    queue: str | None
    service_line: str | None
    call_id: str


class Period(TypedDict):
    since: float | None
    until: float | None
    days: int


class Settings(TypedDict):
    target: float
    goal: float
    short_abandon: float
    handle_time: float
    handle_time_measured: bool


class Report(TypedDict):
    period: Period
    settings: Settings
    summary: Summary
    queues: dict[str, QueueStats]
    hours: list[HourRow]
    agents: dict[str, AgentStats]
    lines: dict[str, dict[str, int]]
    missed: list[MissedCaller]
    callbacks: NotRequired[MissedReport]  # the worklist's figures (report() only: a database table)


class BuildOptions(TypedDict, total=False):
    """The keyword settings of :func:`build` that :func:`report` passes on."""

    target: float
    goal: float
    short_abandon: float
    wrap_up: float
    now: float | None


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 1) if xs else None


@functools.lru_cache(maxsize=1 << 16)
def _quarter(q: int, zone: str) -> tuple[str, int]:
    """(site day, hour of day) of the quarter-hour ``q`` (UNIX time // 900) in ``zone``."""
    loc = sitetime.local(q * 900.0)
    return loc.strftime("%Y-%m-%d"), loc.hour


def _day_hour(ts: float) -> tuple[str, int]:
    """(site day, hour of day) of ``ts``: every zone's offset (and change) is a whole number
    of quarter hours, so both are the same over a UTC quarter hour -- cached per quarter
    (a report converts every call's time; the zone conversion is its slowest step)."""
    return _quarter(int(ts // 900), sitetime.zone_name())


def _hour(ts: float) -> int:
    """The hour of day in the site's zone (pypbx.sitetime)."""
    return _day_hour(ts)[1]


def _bucket(wait: float) -> str:
    for lo, hi in WAIT_BUCKETS:
        if hi is None or wait < hi:
            return f"{lo}-{hi} s" if hi is not None else f"{lo}+ s"
    return "?"  # pragma: no cover


def _number(d: Mapping[str, JSON], key: str) -> float:
    """``float(d[key] or 0.0)`` of a decoded queue event's ``data`` (a missing key is 0)."""
    v = d.get(key)
    if not v:
        return 0.0
    if isinstance(v, (int, float, str)):
        return float(v)
    raise TypeError(f"{key} is not a number: {v!r}")


def _inbound(c: CallRow) -> bool:
    return c.get("direction") != "outbound"


def _summary(calls: Sequence[CallRow]) -> Summary:
    final = [c for c in calls if c["disposition"] != "in_progress"]
    disp = Counter(c["disposition"] for c in final)
    inbound = [c for c in final if _inbound(c)]
    answered = sum(1 for c in inbound if c["disposition"] == "answered")
    return {
        "offered": len(final),
        "inbound": len(inbound),
        "answered": disp.get("answered", 0),
        "abandoned": sum(disp.get(d, 0) for d in ABANDONED),
        "in_progress": len(calls) - len(final),
        "answer_rate": round(answered / len(inbound), 3) if inbound else None,
        "dispositions": dict(sorted(disp.items())),
        # why inbound callers were not spoken to (the abandoned calls and the rest)
        "missed_by_reason": dict(
            Counter(c["disposition"] for c in inbound if c["disposition"] in MISSED).most_common()
        ),
    }


def _queues(events: Sequence[QueueLogEvent], target: float, short_abandon: float) -> dict[str, QueueStats]:
    out: dict[str, QueueStats] = {}
    waits: dict[str, list[float]] = defaultdict(list)
    ab_waits: dict[str, list[float]] = defaultdict(list)
    talks: dict[str, list[float]] = defaultdict(list)

    def q(name: str) -> QueueStats:
        return out.setdefault(
            name,
            {
                "entered": 0,
                "answered": 0,
                "answered_within": 0,
                "abandoned": 0,
                "short_abandons": 0,
                "timeouts": 0,
                "overflows": 0,
                "refused": 0,
                "left_empty": 0,
                "callbacks_requested": 0,
                "interrupted": 0,
                "abandon_waits": {},
                # set once every event is counted (below)
                "service_level": None,
                "asa": None,
                "max_wait": None,
                "mean_abandon_wait": None,
                "aht": None,
            },
        )

    for e in events:
        name, kind, d = e.get("queue"), e["kind"], e.get("data") or {}
        if not name:
            continue
        wait = _number(d, "wait")
        if kind == "ENTER":
            q(name)["entered"] += 1
        elif kind == "CONNECT":
            r = q(name)
            r["answered"] += 1
            r["answered_within"] += wait <= target
            waits[name].append(wait)
        elif kind == "ABANDON":
            r = q(name)
            if wait < short_abandon:
                r["short_abandons"] += 1
            else:
                r["abandoned"] += 1
                ab_waits[name].append(wait)
                b = _bucket(wait)
                r["abandon_waits"][b] = r["abandon_waits"].get(b, 0) + 1
        elif kind == "TIMEOUT":
            q(name)["timeouts"] += 1
        elif kind == "OVERFLOW":
            q(name)["overflows"] += 1
        elif kind == "FULL":
            q(name)["refused"] += 1
        elif kind == "EXITEMPTY":
            q(name)["left_empty"] += 1
        elif kind == "CALLBACK_REQUESTED":
            q(name)["callbacks_requested"] += 1
        elif kind == "INTERRUPTED":
            q(name)["interrupted"] += 1
        elif kind in ("COMPLETE_CALLER", "COMPLETE_AGENT") and not d.get("callback"):
            talks[name].append(_number(d, "talk"))
    for name, r in out.items():
        ended = r["answered"] + r["abandoned"] + r["timeouts"] + r["overflows"] + r["refused"] + r["left_empty"]
        r["service_level"] = round(r["answered_within"] / ended, 3) if ended else None
        r["asa"] = _mean(waits[name])
        r["max_wait"] = round(max(waits[name] + ab_waits[name]), 1) if waits[name] or ab_waits[name] else None
        r["mean_abandon_wait"] = _mean(ab_waits[name])
        r["aht"] = _mean(talks[name])
    return dict(sorted(out.items()))


def _agents(
    events: Sequence[QueueLogEvent], surveys: Sequence[SurveyRow], until: float | None
) -> dict[str, AgentStats]:
    out: dict[str, AgentStats] = {}
    paused_at: dict[str, float] = {}
    talks: dict[str, list[float]] = defaultdict(list)
    scores: dict[str, list[int]] = defaultdict(list)

    def a(aid: str) -> AgentStats:
        return out.setdefault(
            aid,
            {
                "answered": 0,
                "talk_seconds": 0.0,
                "ring_no_answer": 0,
                "transfers": 0,
                "pauses": 0,
                "paused_seconds": 0.0,
                "callbacks": 0,
                # set once every event is counted (below)
                "mean_talk": None,
                "survey_mean": None,
                "surveys": 0,
            },
        )

    last_ts: float | None = None
    for e in events:
        aid, kind, d = e.get("agent"), e["kind"], e.get("data") or {}
        last_ts = e["ts"]
        if not aid:
            continue
        if kind == "CONNECT":
            a(aid)["answered"] += 1
        elif kind == "CALLBACK_CONNECTED":
            a(aid)["callbacks"] += 1
        elif kind in ("COMPLETE_CALLER", "COMPLETE_AGENT"):
            talks[aid].append(_number(d, "talk"))
        elif kind == "RINGNOANSWER":
            a(aid)["ring_no_answer"] += 1
        elif kind == "TRANSFER":
            a(aid)["transfers"] += 1
        elif kind == "PAUSE":
            a(aid)["pauses"] += 1
            paused_at.setdefault(aid, e["ts"])
        elif kind in ("UNPAUSE", "LOGOUT") and aid in paused_at:
            a(aid)["paused_seconds"] += e["ts"] - paused_at.pop(aid)
    end = until if until is not None else last_ts
    for aid, since in paused_at.items():  # still paused at the end of the period
        if end is not None:
            a(aid)["paused_seconds"] += max(0.0, end - since)
    for s in surveys:
        agent = s.get("agent")
        if agent:
            scores[agent].append(int(s["score"]))
            a(agent)
    for aid, r in out.items():
        r["talk_seconds"] = round(sum(talks[aid]), 1)
        r["mean_talk"] = _mean(talks[aid])
        r["paused_seconds"] = round(r["paused_seconds"], 1)
        r["survey_mean"] = round(statistics.fmean(scores[aid]), 2) if scores[aid] else None
        r["surveys"] = len(scores[aid])
    return dict(sorted(out.items()))


def _days(calls: Sequence[CallRow], since: float | None, until: float | None) -> int:
    if since is not None and until is not None:
        return max(1, round((until - since) / 86400))  # rounds a 23- or 25-hour DST day to one
    return max(1, len({_local_day(c["offered_at"]) for c in calls}))


def _hours(
    calls: Sequence[CallRow], events: Sequence[QueueLogEvent], *, days: int, aht: float, target: float, goal: float
) -> list[HourRow]:
    rows: dict[int, HourCounts] = {}
    waits: dict[int, list[float]] = defaultdict(list)
    for c in calls:
        if not _inbound(c) or c["disposition"] == "in_progress":
            continue
        r = rows.setdefault(_hour(c["offered_at"]), {"offered": 0, "answered": 0, "abandoned": 0})
        r["offered"] += 1
        r["answered"] += c["disposition"] == "answered"
        r["abandoned"] += c["disposition"] in ABANDONED
    for e in events:
        if e["kind"] == "CONNECT":
            waits[_hour(e["ts"])].append(_number(e.get("data") or {}, "wait"))
    out: list[HourRow] = []
    for h in sorted(rows):
        r = rows[h]
        per_day = r["offered"] / days
        out.append(
            {
                "hour": h,
                "offered": r["offered"],
                "answered": r["answered"],
                "abandoned": r["abandoned"],
                "per_day": round(per_day, 2),
                "asa": _mean(waits[h]),
                "seats_needed": erlang.agents_needed(per_day, aht, goal, target),
            }
        )
    return out


def _lines(calls: Sequence[CallRow]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for c in calls:
        if not _inbound(c) or c["disposition"] == "in_progress":
            continue
        r = out.setdefault(
            c.get("service_line") or c.get("did") or "(internal)",
            {"offered": 0, "answered": 0, "abandoned": 0, "voicemail": 0, "callback_requested": 0, "other": 0},
        )
        r["offered"] += 1
        d = c["disposition"]
        if d == "answered":
            r["answered"] += 1
        elif d in ABANDONED:
            r["abandoned"] += 1
        elif d in ("voicemail", "callback_requested"):
            r[d] += 1
        else:
            r["other"] += 1
    return dict(sorted(out.items()))


def _missed(calls: Sequence[CallRow]) -> list[MissedCaller]:
    """Callers not spoken to since their last unanswered call: no later answered call from
    them, nor an answered call to them (called back)."""
    state: dict[str, MissedCaller] = {}
    for c in sorted(calls, key=lambda c: c["offered_at"]):
        if c["disposition"] == "in_progress":
            continue
        if c.get("direction") == "outbound":
            num = c.get("callee_number")
            if num is not None and num in state and c["disposition"] == "answered":
                del state[num]  # called back and reached
            continue
        num = c.get("caller_number")
        if not num:
            continue
        if c["disposition"] == "answered":
            state.pop(num, None)
        elif c["disposition"] in MISSED:
            r = state.get(num)
            if r is None:
                r = state[num] = {
                    "number": num,
                    "attempts": 0,
                    "first": c["offered_at"],
                    # set below, at every missed call
                    "last": c["offered_at"],
                    "reason": c["disposition"],
                    "queue": None,
                    "service_line": None,
                    "call_id": c["id"],
                }
            r["attempts"] += 1
            r["last"] = c["offered_at"]
            r["reason"] = c["disposition"]
            r["queue"] = c.get("queue")
            r["service_line"] = c.get("service_line")
            r["call_id"] = c["id"]
    return sorted(state.values(), key=lambda r: r["last"])


def build(
    calls: Sequence[CallRow],
    events: Sequence[QueueLogEvent],
    surveys: Sequence[SurveyRow] = (),
    *,
    since: float | None = None,
    until: float | None = None,
    target: float = 20.0,
    goal: float = 0.8,
    short_abandon: float = 5.0,
    wrap_up: float = 0.0,
    now: float | None = None,
) -> Report:
    """The whole report from the period's rows (``calls`` rows, ``queue_events`` rows with
    ``data`` decoded, ``surveys`` rows). ``now``: a pause still open is counted to now, not
    to the end of a period that has not ended yet (default: the period's end)."""
    if not 0 < goal < 1:
        raise ValueError("goal must be between 0 and 1 (e.g. 0.8)")
    if target <= 0:
        raise ValueError("target must be > 0 seconds")
    events = sorted(events, key=lambda e: (e["ts"], e.get("seq", 0)))
    talks = [_number(e.get("data") or {}, "talk") for e in events if e["kind"] in ("COMPLETE_CALLER", "COMPLETE_AGENT")]
    if not talks:
        talks = [float(t) for c in calls if c["disposition"] == "answered" and (t := c.get("talk_seconds"))]
    aht = (statistics.fmean(talks) if talks else DEFAULT_AHT) + wrap_up
    days = _days(calls, since, until)
    return {
        "period": {"since": since, "until": until, "days": days},
        "settings": {
            "target": target,
            "goal": goal,
            "short_abandon": short_abandon,
            "handle_time": round(aht, 1),
            "handle_time_measured": bool(talks),
        },
        "summary": _summary(calls),
        "queues": _queues(events, target, short_abandon),
        "hours": _hours(calls, events, days=days, aht=aht, target=target, goal=goal),
        "agents": _agents(events, list(surveys), until if now is None else min(until or now, now)),
        "lines": _lines(calls),
        "missed": _missed(calls),
    }


async def report(
    db: Database,
    since: float | None = None,
    until: float | None = None,
    *,
    queue: str | None = None,
    **kw: Unpack[BuildOptions],
) -> Report:
    """:func:`build` over the database's rows of [since, until); ``queue``: that queue's calls only."""
    return (await report_and_charts(db, since, until, queue=queue, charts=False, **kw))[0]


async def report_and_charts(
    db: Database,
    since: float | None = None,
    until: float | None = None,
    *,
    queue: str | None = None,
    charts: bool = True,
    calls: Sequence[CallRow] | None = None,
    **kw: Unpack[BuildOptions],
) -> tuple[Report, Charts | None]:
    """:func:`report` and (``charts``) :func:`build_charts` from one read of the rows
    (``calls``: the period's call rows, already read)."""
    if calls is None:
        calls = await db.call_rows_between(since, until)
    # list_queue_events returns the rows with ``data`` decoded, untyped: QueueLogEvent is their shape
    events = cast(list[QueueLogEvent], await list_queue_events(db, since=since, until=until, limit=10_000_000))
    surveys = await db.survey_rows(since, until)
    if queue is not None:
        ids = {e["call_id"] for e in events if e.get("queue") == queue}
        calls = [c for c in calls if c.get("queue") == queue or c["id"] in ids]
        events = [e for e in events if e.get("queue") == queue or (e.get("queue") is None and e.get("agent"))]
        surveys = [s for s in surveys if s.get("queue") == queue]
    r = build(calls, events, surveys, since=since, until=until, **kw)
    r["callbacks"] = await missed_report(db, since, until, _local_day, queue=queue)
    return r, (build_charts(events, r, now=kw.get("now")) if charts else None)


def _local_day(ts: float) -> str:
    """The site's calendar day of ``ts`` (``[site] timezone``)."""
    return _day_hour(ts)[0]


# =========================================================================== callers: new vs returning
#
# Kept apart from :func:`build` (its own command, ``pypbx report callers``).

#: The caller kinds of ``calls.caller_kind`` (pypbx.calllog.CallerKind), in report order.
CALLER_KINDS = ("patient", "known", "new")


class KindCounts(TypedDict):
    """Inbound calls by the caller's kind at arrival; ``new_rate`` = new / calls."""

    calls: int
    patient: int
    known: int
    new: int
    new_rate: float | None


class RoutingHits(TypedDict):
    """Returning callers (patient + known) and how smart routing served them:
    ``recognised`` = routed as returning (a DID's known/new rule, an IVR's known-caller
    shortcut or a routing rule on ``known`` saw them as known); ``hits`` = recognised and
    answered; ``hit_rate`` = hits / returning."""

    returning: int
    recognised: int
    answered: int
    hits: int
    hit_rate: float | None


class CallersReport(TypedDict):
    period: Period
    total: KindCounts
    days: dict[str, KindCounts]
    lines: dict[str, KindCounts]
    routing: RoutingHits


def _kinds() -> KindCounts:
    return {"calls": 0, "patient": 0, "known": 0, "new": 0, "new_rate": None}


def build_callers(
    calls: Sequence[CallRow],
    recognised: set[str],
    *,
    since: float | None = None,
    until: float | None = None,
) -> CallersReport:
    """New-patient rate per day and per service line, and the returning callers' routing
    hit rate, over the inbound calls whose caller kind was recorded (``recognised``: the ids
    of the calls smart routing routed as a returning caller)."""
    total = _kinds()
    days: dict[str, KindCounts] = {}
    lines: dict[str, KindCounts] = {}
    routing: RoutingHits = {"returning": 0, "recognised": 0, "answered": 0, "hits": 0, "hit_rate": None}
    counted = [
        c
        for c in calls
        if c.get("direction") == "inbound"
        and c.get("caller_kind") in CALLER_KINDS
        and c["disposition"] != "in_progress"
    ]
    for c in counted:
        kind = str(c.get("caller_kind"))
        line = c.get("service_line") or c.get("did") or "(no line)"
        for r in (total, days.setdefault(_local_day(c["offered_at"]), _kinds()), lines.setdefault(line, _kinds())):
            r["calls"] += 1
            r[kind] += 1  # type: ignore[literal-required]
        if kind != "new":
            routing["returning"] += 1
            seen = c["id"] in recognised
            answered = c["disposition"] == "answered"
            routing["recognised"] += seen
            routing["answered"] += answered
            routing["hits"] += seen and answered
    for r in (total, *days.values(), *lines.values()):
        r["new_rate"] = round(r["new"] / r["calls"], 3) if r["calls"] else None
    if routing["returning"]:
        routing["hit_rate"] = round(routing["hits"] / routing["returning"], 3)
    return {
        "period": {"since": since, "until": until, "days": max(1, len(days))},
        "total": total,
        "days": dict(sorted(days.items())),
        "lines": dict(sorted(lines.items())),
        "routing": routing,
    }


def recognised_calls(steps: Sequence[RoutingStepRow]) -> set[str]:
    """Ids of the calls that smart routing sent on as a returning caller: a ``caller_lookup``
    step (a DID's destination, an IVR's known-caller action) or a ``route`` step that chose a
    destination, with ``known`` true."""
    out: set[str] = set()
    for st in steps:
        try:
            d = json.loads(st["detail"] or "{}")
        except ValueError:
            continue
        if isinstance(d, dict) and d.get("known") is True and (d.get("destination") or d.get("action")):
            out.add(st["call_id"])
    return out


async def callers_report(
    db: Database, since: float | None = None, until: float | None = None, *, calls: Sequence[CallRow] | None = None
) -> CallersReport:
    """:func:`build_callers` over the database's calls of [since, until) (``calls``: already read)."""
    if calls is None:
        calls = await db.call_rows_between(since, until)
    steps = await db.routing_step_rows(since, until)
    return build_callers(calls, recognised_calls(steps), since=since, until=until)


# =========================================================================== reasons: why patients call


class ReasonCount(TypedDict):
    code: str
    label: str
    calls: int
    share: float


class ReasonsReport(TypedDict):
    """The last reason set for each call of the period, counted per reason, and per day,
    service line and agent (``{key: {code: calls}}``)."""

    period: Period
    calls: int
    reasons: list[ReasonCount]
    days: dict[str, dict[str, int]]
    lines: dict[str, dict[str, int]]
    agents: dict[str, dict[str, int]]
    via: dict[str, int]


def build_reasons(
    rows: Sequence[CallReasonRow],
    labels: Mapping[str, str],
    *,
    since: float | None = None,
    until: float | None = None,
) -> ReasonsReport:
    """``rows``: one per call (its last reason), with the call's line and agent."""
    per: Counter[str] = Counter()
    days: dict[str, Counter[str]] = defaultdict(Counter)
    lines: dict[str, Counter[str]] = defaultdict(Counter)
    agents: dict[str, Counter[str]] = defaultdict(Counter)
    via: Counter[str] = Counter()
    for r in rows:
        code = r["code"]
        per[code] += 1
        days[_local_day(r["offered_at"] if r["offered_at"] is not None else r["set_at"])][code] += 1
        lines[r["service_line"] or r["did"] or "(no line)"][code] += 1
        agents[r["agent"] or r["call_agent"] or r["extension"] or "-"][code] += 1
        via[r["via"]] += 1
    n = len(rows)

    def nested(d: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
        return {k: dict(sorted(v.items())) for k, v in sorted(d.items())}

    return {
        "period": {"since": since, "until": until, "days": max(1, len(days))},
        "calls": n,
        "reasons": [
            {"code": c, "label": labels.get(c, c), "calls": k, "share": round(k / n, 3)}
            for c, k in sorted(per.items(), key=lambda x: (-x[1], x[0]))
        ],
        "days": nested(days),
        "lines": nested(lines),
        "agents": nested(agents),
        "via": dict(sorted(via.items())),
    }


async def reasons_report(db: Database, since: float | None = None, until: float | None = None) -> ReasonsReport:
    """:func:`build_reasons` over the calls of [since, until) that have a reason."""
    rows = await db.call_reason_rows(since, until)
    labels = {r["code"]: r["label"] for r in await db.list_reason_rows(retired=True)}
    return build_reasons(rows, labels, since=since, until=until)


# =========================================================================== charts (the web desk's reports page)
#
# Figures the reports page draws, from the same rows as :func:`build`: service level per
# day, the waiting-time distribution and the agents logged in per hour of day (beside the
# seats needed of ``hours``). Kept apart from :class:`Report` so ``pypbx report … --json``
# stays as it is.

#: upper bounds (seconds) of the waiting-time distribution's bars; the last bar is open
WAIT_EDGES = (10, 20, 30, 60, 120, 180, 300)


class DaySL(TypedDict):
    """One site day of queue calls: ``service_level`` as in :class:`QueueStats`, over every queue."""

    day: str
    answered: int
    answered_within: int
    ended: int
    abandoned: int
    service_level: float | None


class WaitBar(TypedDict):
    """Queue calls that waited [lo, hi) seconds (``hi`` None: lo and more), answered or abandoned."""

    lo: float
    hi: float | None
    label: str
    answered: int
    abandoned: int


class StaffHour(TypedDict):
    """An hour of day: the seats needed (``hours``' Erlang C figure, 0 for an hour without
    calls) and the agents logged in on average over the period's days (paused time counts
    as not staffed: ``staffed``; logged in at all: ``logged_in``)."""

    hour: int
    seats_needed: int
    logged_in: float
    staffed: float


class Charts(TypedDict):
    service_level_by_day: list[DaySL]
    wait_distribution: list[WaitBar]
    staffing: list[StaffHour]


def service_level_by_day(
    events: Sequence[QueueLogEvent], target: float = 20.0, short_abandon: float = 5.0
) -> list[DaySL]:
    """Per site day, every queue together: :func:`_queues`' service level definition."""
    by_day: dict[str, list[QueueLogEvent]] = defaultdict(list)
    for e in events:
        if e.get("queue") and e["kind"] in QUEUE_OUTCOMES:
            by_day[_local_day(e["ts"])].append(e)
    out: list[DaySL] = []
    for day in sorted(by_day):
        qs = _queues(by_day[day], target, short_abandon).values()
        answered = sum(q["answered"] for q in qs)
        within = sum(q["answered_within"] for q in qs)
        abandoned = sum(q["abandoned"] for q in qs)
        ended = sum(
            q["answered"] + q["abandoned"] + q["timeouts"] + q["overflows"] + q["refused"] + q["left_empty"] for q in qs
        )
        out.append(
            {
                "day": day,
                "answered": answered,
                "answered_within": within,
                "ended": ended,
                "abandoned": abandoned,
                "service_level": round(within / ended, 3) if ended else None,
            }
        )
    return out


def wait_distribution(events: Sequence[QueueLogEvent], short_abandon: float = 5.0) -> list[WaitBar]:
    """How long queue callers waited: answered (CONNECT) and abandoned (ABANDON after
    ``short_abandon`` s, as the report counts them) per bar of :data:`WAIT_EDGES`."""
    bars: list[WaitBar] = []
    lo = 0.0
    for hi in (*WAIT_EDGES, None):
        label = f"{lo:.0f}-{hi} s" if hi is not None else f"{lo:.0f}+ s"
        bars.append({"lo": lo, "hi": None if hi is None else float(hi), "label": label, "answered": 0, "abandoned": 0})
        lo = float(hi) if hi is not None else lo
    for e in events:
        kind = e["kind"]
        if not e.get("queue") or kind not in ("CONNECT", "ABANDON"):
            continue
        wait = _number(e.get("data") or {}, "wait")
        if kind == "ABANDON" and wait < short_abandon:
            continue
        i = next((i for i, edge in enumerate(WAIT_EDGES) if wait < edge), len(WAIT_EDGES))
        bars[i]["answered" if kind == "CONNECT" else "abandoned"] += 1
    return bars


def _spread(start: float, end: float, into: list[float]) -> None:
    """Add the seconds of [start, end) to ``into[hour of day]`` (site time)."""
    t = start
    while t < end:
        loc = sitetime.local(t)
        next_hour = loc.replace(minute=0, second=0, microsecond=0).timestamp() + 3600
        stop = min(end, next_hour)
        into[loc.hour] += stop - t
        t = stop


def staffing(
    events: Sequence[QueueLogEvent],
    hours: Sequence[HourRow],
    *,
    since: float | None,
    until: float | None,
    days: int,
) -> list[StaffHour]:
    """Seats needed (from ``hours``) against the agents logged in, per hour of day, averaged
    over ``days``. Logged in from LOGIN to LOGOUT (queue events, agent rows), paused from
    PAUSE to UNPAUSE/LOGOUT; an agent whose first event of the period is not a LOGIN was
    logged in (and not paused, unless it is an UNPAUSE) since the period's start; an
    interval still open ends at ``until`` (or the last event)."""
    evs = sorted((e for e in events if e.get("agent") and e.get("queue") is None), key=lambda e: (e["ts"], e["seq"]))
    if not evs and not hours:
        return []
    first = evs[0]["ts"] if evs else 0.0
    start = since if since is not None else first
    end = until if until is not None else (evs[-1]["ts"] if evs else start)
    logged = [0.0] * 24
    paused = [0.0] * 24
    login_at: dict[str, float] = {}
    pause_at: dict[str, float] = {}
    seen: set[str] = set()
    for e in evs:
        aid, kind, ts = str(e["agent"]), e["kind"], e["ts"]
        if aid not in seen:
            seen.add(aid)
            if kind != "LOGIN":
                login_at[aid] = start
            if kind in ("UNPAUSE",):
                pause_at[aid] = start
        if kind == "LOGIN":
            login_at.setdefault(aid, ts)
        elif kind == "LOGOUT":
            if aid in login_at:
                _spread(login_at.pop(aid), ts, logged)
            if aid in pause_at:
                _spread(pause_at.pop(aid), ts, paused)
        elif kind == "PAUSE":
            pause_at.setdefault(aid, ts)
        elif kind == "UNPAUSE" and aid in pause_at:
            _spread(pause_at.pop(aid), ts, paused)
    for t0 in login_at.values():
        _spread(t0, max(t0, end), logged)
    for t0 in pause_at.values():
        _spread(t0, max(t0, end), paused)
    seats = {h["hour"]: h["seats_needed"] for h in hours}
    per = 3600.0 * max(1, days)
    return [
        {
            "hour": h,
            "seats_needed": seats.get(h, 0),
            "logged_in": round(logged[h] / per, 2),
            "staffed": round(max(0.0, logged[h] - paused[h]) / per, 2),
        }
        for h in range(24)
    ]


def build_charts(
    events: Sequence[QueueLogEvent],
    r: Report,
    *,
    now: float | None = None,
) -> Charts:
    """The charts of report ``r`` (built by :func:`build` from the same ``events``)."""
    st, p = r["settings"], r["period"]
    until = p["until"] if now is None or p["until"] is None else min(p["until"], now)
    return {  # (order-free figures; staffing sorts the agents' events itself)
        "service_level_by_day": service_level_by_day(events, st["target"], st["short_abandon"]),
        "wait_distribution": wait_distribution(events, st["short_abandon"]),
        "staffing": staffing(events, r["hours"], since=p["since"], until=until, days=p["days"]),
    }
