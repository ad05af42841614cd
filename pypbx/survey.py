"""The post-call satisfaction survey.

Optional, globally or per queue (``pypbx survey enable [--queue Q]`` / ``disable``; stored
as JSON under the ``survey`` key of the ``meta`` table: ``{"all": bool, "queues": [...]}``).

When the callee (the agent, or the extension that was dialled) hangs up first in an
answered call, CallManager (through :meth:`pypbx.frontline.FrontLine.callee_left`) closes
the call's record as usual — answered, hung up by the callee, recording saved, agent
freed — and instead of hanging up the caller hands the caller's leg to
:class:`pypbx.flows.survey.SurveyCall`: the caller hears ``survey_question`` (in the queue's language) and presses 1-5; the score is
stored with the call (call event ``survey``) and in the ``surveys`` table (call id, agent,
queue, score, time), then ``survey_thanks`` and goodbye. No key within the timeout, or any
other key twice: the caller is released without a score.

An unhappy score (1-2, :data:`UNHAPPY`) offers the caller a short recorded comment (up to
:data:`COMMENT_SECONDS`, ``#`` ends it; see :mod:`pypbx.flows.survey`), kept next to the
call's recording with its path on the survey row.

``pypbx survey report [--json]``: the number of answers and the average score per agent.
``pypbx survey list [--unhappy] [--json]``: the answers (with the comment's file).
"""

from __future__ import annotations

import json
import logging
from typing import TypedDict

from pypbx import sitetime
from pypbx.db import Database
from pypbx.errors import PbxError

log = logging.getLogger(__name__)

META_KEY = "survey"
#: Seconds the caller has to press a key after the question.
ANSWER_TIMEOUT = 8.0
#: Scores up to this one are unhappy: the caller is offered to leave a comment.
UNHAPPY = 2
#: The longest comment recorded, in seconds.
COMMENT_SECONDS = 30.0


class SurveyError(PbxError, ValueError):
    pass


class SurveySettings(TypedDict):
    """Where the survey is on (stored as JSON in the meta table)."""

    all: bool
    queues: list[str]


class AgentScores(TypedDict):
    agent: str
    answers: int
    average: float
    distribution: dict[str, int]


class SurveyReport(TypedDict):
    answers: int
    average: float | None
    agents: list[AgentScores]


async def get_settings(db: Database) -> SurveySettings:
    raw = await db.get_meta(META_KEY)
    d = json.loads(raw) if raw else {}
    return {"all": bool(d.get("all", False)), "queues": sorted(d.get("queues", []))}


async def set_enabled(db: Database, enabled: bool, queue: str | None = None) -> SurveySettings:
    d = await get_settings(db)
    if queue is None:
        d["all"] = enabled
        if not enabled:
            d["queues"] = []
    else:
        qs = set(d["queues"])
        (qs.add if enabled else qs.discard)(queue)
        d["queues"] = sorted(qs)
    await db.set_meta(META_KEY, json.dumps(d))
    return d


async def enabled_for(db: Database, queue: str | None) -> bool:
    d = await get_settings(db)
    return d["all"] or (queue is not None and queue in d["queues"])


async def record_score(db: Database, call_id: str, agent: str | None, queue: str | None, score: int, ts: float) -> None:
    if not 1 <= score <= 5:
        raise SurveyError(f"score {score} out of 1..5")
    await db.insert_survey_row(call_id, agent, queue, score, ts)


async def report(db: Database, since: float | None = None, until: float | None = None) -> SurveyReport:
    rows = await db.survey_rows(since, until)
    per: dict[str, list[int]] = {}
    for r in rows:
        per.setdefault(r["agent"] or "-", []).append(r["score"])
    agents: list[AgentScores] = [
        {
            "agent": a,
            "answers": len(v),
            "average": round(sum(v) / len(v), 2),
            "distribution": {str(k): v.count(k) for k in range(1, 6)},
        }
        for a, v in sorted(per.items())
    ]
    allv = [r["score"] for r in rows]
    return {"answers": len(allv), "average": round(sum(allv) / len(allv), 2) if allv else None, "agents": agents}


async def record_comment(db: Database, call_id: str, path: str, seconds: float | None) -> None:
    """The unhappy caller's recorded comment: its file on the call's survey row."""
    await db.set_survey_comment(call_id, path, seconds)


class SurveyAnswer(TypedDict):
    """One answer of ``pypbx survey list`` (``comment``: the recorded comment's file, or None)."""

    call_id: str
    time: str
    ts: float
    caller: str | None
    agent: str | None
    queue: str | None
    score: int
    comment: str | None
    comment_seconds: float | None


async def answers(
    db: Database, since: float | None = None, until: float | None = None, *, unhappy: bool = False
) -> list[SurveyAnswer]:
    """The survey's answers, oldest first; ``unhappy``: scores 1-2 only."""
    rows = await db.commented_survey_rows(since, until, UNHAPPY if unhappy else 5)
    return [
        {
            "call_id": r["call_id"],
            "time": sitetime.local(r["ts"]).strftime("%Y-%m-%d %H:%M:%S"),  # the site's clock
            "ts": r["ts"],
            "caller": r["caller_number"],
            "agent": r["agent"],
            "queue": r["queue"],
            "score": r["score"],
            "comment": r["comment_path"],
            "comment_seconds": r["comment_seconds"],
        }
        for r in rows
    ]
