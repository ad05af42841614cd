"""Call quality review: the clinic's short checklist, a supervisor's review of a recorded call,
and the per-agent quality figures.

* The **checklist** (``pypbx quality checklist set "greeted" "identified the patient" …``):
  1..MAX_ITEMS short yes/no questions, in order. Changing it keeps the reviews already made as
  they were asked (each answer keeps its item's label).
* A **review** scores one recorded call: yes/no for every item of the checklist in force and a
  comment; the call's agent is the one reviewed. Reviewing a call again replaces its review.
  The score is the share of yes answers.
* :func:`quality_report`: per agent, the reviews of the calls of a period, their mean score and
  the share of yes per item (``pypbx report quality``, the reports page).

The CLI (pypbx.cli.quality) and the web desk (pypbx.web.recordings) call these functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict

from pypbx.db import Database
from pypbx.db.quality import QualityReviewRow
from pypbx.errors import PbxError, PbxUsageError

MAX_ITEMS = 20
MAX_LABEL = 80
MAX_COMMENT = 2000


class QualityError(PbxUsageError):
    """Bad checklist or review input (exit 2)."""


class QualityNotFound(PbxError):
    """No such call, recording or review (exit 1)."""


class Answer(TypedDict):
    item: str
    ok: bool


class Review(TypedDict):
    call_id: str
    agent: str | None
    reviewer: str
    comment: str
    reviewed_at: float
    yes: int
    items: int
    score: float | None  # yes / items
    answers: list[Answer]


class ItemFigures(TypedDict):
    item: str
    answered: int
    yes: int
    rate: float | None


class AgentQuality(TypedDict):
    agent: str
    reviews: int
    score: float | None  # the mean of the reviews' scores
    last_reviewed_at: float | None
    items: list[ItemFigures]


class QualityReport(TypedDict):
    since: float | None
    until: float | None
    checklist: list[str]
    reviews: int
    score: float | None
    agents: list[AgentQuality]


# ------------------------------------------------------------------ the checklist


def _clean_label(label: str) -> str:
    s = " ".join(str(label).split())
    if not s:
        raise QualityError("a checklist item cannot be empty")
    if len(s) > MAX_LABEL:
        raise QualityError(f"checklist item too long (at most {MAX_LABEL} characters): {s[:30]!r}…")
    return s


async def get_checklist(db: Database) -> list[str]:
    """The checklist in force, in order ([] when the clinic has none yet)."""
    return [r["label"] for r in await db.quality_item_rows()]


async def set_checklist(db: Database, labels: Sequence[str], clock: Callable[[], float] = time.time) -> list[str]:
    """Replace the checklist with ``labels`` (1..MAX_ITEMS distinct items, in order)."""
    items = [_clean_label(x) for x in labels]
    if not items:
        raise QualityError("give the checklist at least one item")
    if len(items) > MAX_ITEMS:
        raise QualityError(f"a checklist has at most {MAX_ITEMS} items (got {len(items)}): keep it short")
    seen: set[str] = set()
    for x in items:
        if x.casefold() in seen:
            raise QualityError(f"checklist item {x!r} given twice")
        seen.add(x.casefold())
    await db.replace_quality_items(items, clock())
    return await get_checklist(db)


# ------------------------------------------------------------------ reviews


def _score(yes: int, items: int) -> float | None:
    return round(yes / items, 4) if items else None


async def _reviews(db: Database, rows: Sequence[QualityReviewRow]) -> list[Review]:
    answers: dict[int, list[Answer]] = {}
    for a in await db.quality_answer_rows([r["id"] for r in rows]):
        answers.setdefault(a["review_id"], []).append({"item": a["item"], "ok": bool(a["ok"])})
    return [
        {
            "call_id": r["call_id"],
            "agent": r["agent"],
            "reviewer": r["reviewer"],
            "comment": r["comment"],
            "reviewed_at": r["reviewed_at"],
            "yes": r["yes"],
            "items": r["items"],
            "score": _score(r["yes"], r["items"]),
            "answers": answers.get(r["id"], []),
        }
        for r in rows
    ]


async def resolve_call(db: Database, call_id: str) -> str:
    """A call id, or a unique prefix of one (at least 6 characters)."""
    if await db.get_call_row(call_id) is not None:
        return call_id
    ids = await db.call_ids_with_prefix(call_id) if len(call_id) >= 6 else []
    if len(ids) == 1:
        return ids[0]
    if len(ids) > 1:
        raise QualityError(f"call id prefix {call_id!r} is ambiguous: give more of it")
    raise QualityNotFound(f"no call {call_id!r}")


def parse_answers(checklist: Sequence[str], given: Mapping[str, object] | Sequence[object]) -> list[tuple[str, bool]]:
    """The answers, one per checklist item in order: ``given`` maps each item's label to a
    yes/no (true/false, "yes"/"no", 1/0), or lists them in the checklist's order."""

    def yes_no(item: str, v: object) -> bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        s = str(v).strip().lower()
        if s in ("yes", "y", "true", "1", "ok"):
            return True
        if s in ("no", "n", "false", "0"):
            return False
        raise QualityError(f"answer yes or no for {item!r} (got {v!r})")

    if not checklist:
        raise QualityError("the clinic has no quality checklist yet (pypbx quality checklist set ITEM…)")
    if isinstance(given, Mapping):
        unknown = [k for k in given if k not in checklist]
        if unknown:
            raise QualityError(f"not on the checklist: {', '.join(map(repr, unknown))}")
        missing = [x for x in checklist if x not in given]
        if missing:
            raise QualityError(f"answer every item; missing: {', '.join(map(repr, missing))}")
        return [(x, yes_no(x, given[x])) for x in checklist]
    values = list(given)
    if len(values) != len(checklist):
        raise QualityError(f"the checklist has {len(checklist)} items, got {len(values)} answers")
    return [(x, yes_no(x, v)) for x, v in zip(checklist, values, strict=True)]


async def score_call(
    db: Database,
    call_id: str,
    answers: Mapping[str, object] | Sequence[object],
    reviewer: str,
    comment: str = "",
    clock: Callable[[], float] = time.time,
) -> Review:
    """Review a recorded call on the checklist in force (replacing an earlier review)."""
    cid = await resolve_call(db, call_id)
    row = await db.get_call_row(cid)
    assert row is not None
    rec = await db.get_recording_row(cid)
    if rec is None or rec["status"] == "failed":
        raise QualityNotFound(f"call {cid[:12]} has no recording to review")
    comment = str(comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise QualityError(f"comment too long (at most {MAX_COMMENT} characters)")
    pairs = parse_answers(await get_checklist(db), answers)
    await db.save_quality_review(cid, row["agent"] or row["extension"], reviewer, comment, pairs, clock())
    review = await get_review(db, cid)
    assert review is not None
    return review


async def get_review(db: Database, call_id: str) -> Review | None:
    row = await db.quality_review_row(call_id)
    return (await _reviews(db, [row]))[0] if row is not None else None


async def list_reviews(
    db: Database, *, agent: str | None = None, since: float | None = None, until: float | None = None
) -> list[Review]:
    """Reviews of the calls offered in [since, until) (``agent``'s only), newest call first."""
    rows = await db.quality_review_rows(agent=agent, since=since, until=until)
    return await _reviews(db, rows)


# ------------------------------------------------------------------ the report


async def quality_report(db: Database, since: float | None = None, until: float | None = None) -> QualityReport:
    """Per agent: the reviews of the calls of [since, until), their mean score and, per item
    asked, how often it was a yes."""
    reviews = await list_reviews(db, since=since, until=until)
    by_agent: dict[str, list[Review]] = {}
    for r in reviews:
        by_agent.setdefault(r["agent"] or "-", []).append(r)
    agents: list[AgentQuality] = []
    for agent in sorted(by_agent):
        rs = by_agent[agent]
        per_item: dict[str, list[int]] = {}
        for r in rs:
            for a in r["answers"]:
                per_item.setdefault(a["item"], []).append(int(a["ok"]))
        scores = [r["score"] for r in rs if r["score"] is not None]
        agents.append(
            {
                "agent": agent,
                "reviews": len(rs),
                "score": round(sum(scores) / len(scores), 4) if scores else None,
                "last_reviewed_at": max(r["reviewed_at"] for r in rs),
                "items": [
                    {"item": item, "answered": len(v), "yes": sum(v), "rate": _score(sum(v), len(v))}
                    for item, v in per_item.items()
                ],
            }
        )
    all_scores = [r["score"] for r in reviews if r["score"] is not None]
    return {
        "since": since,
        "until": until,
        "checklist": await get_checklist(db),
        "reviews": len(reviews),
        "score": round(sum(all_scores) / len(all_scores), 4) if all_scores else None,
        "agents": agents,
    }
