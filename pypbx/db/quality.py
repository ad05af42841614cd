"""Queries: the call-quality checklist and reviews (pypbx.quality), and the recordings search
of the web desk (pypbx.web.recordings): recorded calls with their last reason and review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import CALL_FIELDS, CallSearchRow, SQLValue


class QualityItemRow(TypedDict):
    id: int
    position: int
    label: str
    created_at: float
    retired_at: float | None


class QualityReviewRow(TypedDict):
    id: int
    call_id: str
    agent: str | None
    reviewer: str
    comment: str
    yes: int
    items: int
    reviewed_at: float


class QualityAnswerRow(TypedDict):
    review_id: int
    position: int
    item: str
    ok: int


class QualityReviewCallRow(QualityReviewRow):
    """A review with its call's time (the period of the quality report is the calls')."""

    offered_at: float


class RecordingSearchRow(CallSearchRow):
    """A recorded call with the last reason set for it and its quality review's score."""

    reason: str | None
    quality_yes: int | None
    quality_items: int | None


@dataclass(frozen=True)
class RecordingFilter:
    """The recordings search (every field optional; they combine)."""

    since: float | None = None
    until: float | None = None
    number: str | None = None  # E.164 (or an extension), caller or callee
    agent: str | None = None  # the agent or extension that took the call
    queue: str | None = None
    service_line: str | None = None
    direction: str | None = None  # inbound | outbound | internal
    external: bool = False  # leave out internal calls
    reason: str | None = None  # the last reason code set for the call
    min_seconds: float | None = None
    max_seconds: float | None = None
    limit: int = 200
    call_id: str | None = None  # this call only


_REVIEW_COLS = "id, call_id, agent, reviewer, comment, yes, items, reviewed_at"


class QualityQueries(DatabaseCore):
    # ------------------------------------------------------------------ the checklist
    async def quality_item_rows(self) -> list[QualityItemRow]:
        """The checklist in force, in order."""
        return await self.fetch_rows(
            QualityItemRow,
            "SELECT id, position, label, created_at, retired_at FROM quality_items "
            "WHERE retired_at IS NULL ORDER BY position",
        )

    async def replace_quality_items(self, labels: Sequence[str], now: float) -> None:
        """Retire the checklist in force and put ``labels`` in its place (an unchanged label
        keeps its row; only its position moves)."""
        async with self.transaction():
            await self.execute(
                "UPDATE quality_items SET retired_at = ? WHERE retired_at IS NULL AND label NOT IN "
                f"({', '.join('?' for _ in labels)})",
                (now, *labels),
            )
            for pos, label in enumerate(labels, 1):
                n = await self.execute(
                    "UPDATE quality_items SET position = ? WHERE label = ? AND retired_at IS NULL", (pos, label)
                )
                if not n:
                    await self.execute(
                        "INSERT INTO quality_items(position, label, created_at) VALUES (?, ?, ?)", (pos, label, now)
                    )

    # ------------------------------------------------------------------ reviews
    async def save_quality_review(
        self,
        call_id: str,
        agent: str | None,
        reviewer: str,
        comment: str,
        answers: Sequence[tuple[str, bool]],
        now: float,
    ) -> int:
        """The call's review (replacing an earlier one) and its answers; returns its id."""
        yes = sum(1 for _, ok in answers if ok)
        async with self.transaction():
            await self.execute("DELETE FROM quality_reviews WHERE call_id = ?", (call_id,))
            rid = await self.insert(
                "INSERT INTO quality_reviews(call_id, agent, reviewer, comment, yes, items, reviewed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (call_id, agent, reviewer, comment, yes, len(answers), now),
            )
            await self.executemany(
                "INSERT INTO quality_answers(review_id, position, item, ok) VALUES (?, ?, ?, ?)",
                [(rid, i, item, int(ok)) for i, (item, ok) in enumerate(answers, 1)],
            )
        return rid

    async def quality_review_row(self, call_id: str) -> QualityReviewRow | None:
        return await self.fetch_row(
            QualityReviewRow, f"SELECT {_REVIEW_COLS} FROM quality_reviews WHERE call_id = ?", (call_id,)
        )

    async def quality_answer_rows(self, review_ids: Sequence[int]) -> list[QualityAnswerRow]:
        if not review_ids:
            return []
        return await self.fetch_rows(
            QualityAnswerRow,
            "SELECT review_id, position, item, ok FROM quality_answers WHERE review_id IN "
            f"({', '.join('?' for _ in review_ids)}) ORDER BY review_id, position",
            list(review_ids),
        )

    async def quality_review_rows(
        self, *, agent: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[QualityReviewCallRow]:
        """Reviews of the calls offered in [since, until) (an agent's only), newest call first."""
        where = ["c.offered_at >= ?", "c.offered_at < ?"]
        params: list[SQLValue] = [
            since if since is not None else float("-inf"),
            until if until is not None else float("inf"),
        ]
        if agent is not None:
            where.append("q.agent = ?")
            params.append(agent)
        cols = ", ".join("q." + c.strip() for c in _REVIEW_COLS.split(","))
        return await self.fetch_rows(
            QualityReviewCallRow,
            f"SELECT {cols}, c.offered_at AS offered_at FROM quality_reviews q JOIN calls c ON c.id = q.call_id "
            f"WHERE {' AND '.join(where)} ORDER BY c.offered_at DESC",
            params,
        )

    # ------------------------------------------------------------------ the recordings search
    async def recording_search_rows(self, f: RecordingFilter) -> list[RecordingSearchRow]:
        """Recorded calls (a recording that is not ``failed``) matching ``f``, newest first."""
        where = ["r.status != 'failed'"]
        params: list[SQLValue] = []

        def cond(sql: str, *values: SQLValue) -> None:
            where.append(sql)
            params.extend(values)

        if f.call_id is not None:
            cond("c.id = ?", f.call_id)
        if f.since is not None:
            cond("c.offered_at >= ?", f.since)
        if f.until is not None:
            cond("c.offered_at < ?", f.until)
        if f.number:
            cond("(c.caller_number = ? OR c.callee_number = ?)", f.number, f.number)
        if f.agent:
            cond("(c.agent = ? OR c.extension = ?)", f.agent, f.agent)
        if f.queue:
            cond("c.queue = ?", f.queue)
        if f.service_line:
            cond("c.service_line = ?", f.service_line)
        if f.direction:
            cond("c.direction = ?", f.direction)
        if f.external:
            cond("c.direction != 'internal'")
        if f.reason:
            cond("last_reason.code = ?", f.reason)
        if f.min_seconds is not None:
            cond("COALESCE(r.seconds, 0) >= ?", f.min_seconds)
        if f.max_seconds is not None:
            cond("COALESCE(r.seconds, 0) <= ?", f.max_seconds)
        cols = ", ".join("c." + x for x in CALL_FIELDS)
        return await self.fetch_rows(
            RecordingSearchRow,
            f"SELECT {cols}, r.path AS recording_path, r.status AS recording_status, "
            "r.seconds AS recording_seconds, last_reason.code AS reason, "
            "q.yes AS quality_yes, q.items AS quality_items "
            "FROM calls c JOIN recordings r ON r.call_id = c.id "
            "LEFT JOIN (SELECT cr.call_id, cr.code FROM call_reasons cr WHERE cr.seq = "
            "(SELECT MAX(seq) FROM call_reasons x WHERE x.call_id = cr.call_id)) last_reason "
            "ON last_reason.call_id = c.id "
            "LEFT JOIN quality_reviews q ON q.call_id = c.id "
            f"WHERE {' AND '.join(where)} ORDER BY c.offered_at DESC LIMIT ?",
            (*params, f.limit),
        )
