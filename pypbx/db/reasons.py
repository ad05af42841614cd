"""Queries: reason codes and the reasons set for calls, callers' kinds for the reports, the
survey's recorded comments (pypbx.reasons, pypbx.reports, pypbx.survey)."""

from __future__ import annotations

from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import CALL_FIELDS, CallReasonRow, CallRow, CommentedSurveyRow, ReasonRow

_REASON_COLS = "code, label, digit, notify, created_at, updated_at, retired_at"
_INF = float("inf")


class RoutingStepRow(TypedDict):
    """A smart-routing step of a call's books (``detail``: its JSON)."""

    call_id: str
    kind: str
    detail: str


class ReasonQueries(DatabaseCore):
    # ------------------------------------------------------------------ reason codes
    async def insert_reason_row(self, code: str, label: str, digit: str | None, notify: str, now: float) -> None:
        """Raises IntegrityError if the code (or the digit) is taken."""
        async with self.transaction():
            await self.execute(
                "INSERT INTO reasons(code, label, digit, notify, created_at) VALUES (?, ?, ?, ?, ?)",
                (code, label, digit, notify, now),
            )

    async def update_reason_row(self, code: str, label: str, digit: str | None, notify: str, now: float) -> bool:
        """Raises IntegrityError if another reason has the digit."""
        async with self.transaction():
            n = await self.execute(
                "UPDATE reasons SET label = ?, digit = ?, notify = ?, updated_at = ? "
                "WHERE code = ? AND retired_at IS NULL",
                (label, digit, notify, now, code),
            )
        return n > 0

    async def get_reason_row(self, code: str) -> ReasonRow | None:
        return await self.fetch_row(ReasonRow, f"SELECT {_REASON_COLS} FROM reasons WHERE code = ?", (code,))

    async def reason_row_for_digit(self, digit: str) -> ReasonRow | None:
        return await self.fetch_row(
            ReasonRow, f"SELECT {_REASON_COLS} FROM reasons WHERE digit = ? AND retired_at IS NULL", (digit,)
        )

    async def list_reason_rows(self, *, retired: bool = False) -> list[ReasonRow]:
        cond = "" if retired else "WHERE retired_at IS NULL"
        return await self.fetch_rows(ReasonRow, f"SELECT {_REASON_COLS} FROM reasons {cond} ORDER BY code")

    async def remove_reason_row(self, code: str, now: float) -> str | None:
        """Delete a reason no call used; retire one that calls used (the digit freed, the
        history kept). Returns "deleted", "retired" or None (no such active reason)."""
        async with self.transaction():
            used = await self.fetchone("SELECT 1 AS used FROM call_reasons WHERE code = ? LIMIT 1", (code,))
            if used is None:
                n = await self.execute("DELETE FROM reasons WHERE code = ? AND retired_at IS NULL", (code,))
                return "deleted" if n else None
            n = await self.execute(
                "UPDATE reasons SET retired_at = ?, digit = NULL WHERE code = ? AND retired_at IS NULL", (now, code)
            )
            return "retired" if n else None

    # ------------------------------------------------------------------ reasons of calls
    async def insert_call_reason_row(
        self, call_id: str, code: str, agent: str | None, extension: str | None, via: str, now: float
    ) -> int:
        async with self.transaction():
            return await self.insert(
                "INSERT INTO call_reasons(call_id, code, agent, extension, via, set_at) VALUES (?, ?, ?, ?, ?, ?)",
                (call_id, code, agent, extension, via, now),
            )

    async def call_reason_rows(self, since: float | None, until: float | None) -> list[CallReasonRow]:
        """The LAST reason set for each call offered in [since, until), with the call's line and agent."""
        return await self.fetch_rows(
            CallReasonRow,
            "SELECT r.seq, r.call_id, r.code, r.agent, r.extension, r.via, r.set_at, c.offered_at, "
            "c.service_line, c.did, c.queue, c.agent AS call_agent "
            "FROM call_reasons r JOIN calls c ON c.id = r.call_id "
            "WHERE r.seq = (SELECT max(seq) FROM call_reasons WHERE call_id = r.call_id) "
            "AND c.offered_at >= ? AND c.offered_at < ? ORDER BY c.offered_at",
            (since if since is not None else -_INF, until if until is not None else _INF),
        )

    async def reasons_of_call(self, call_id: str) -> list[CallReasonRow]:
        return await self.fetch_rows(
            CallReasonRow,
            "SELECT r.seq, r.call_id, r.code, r.agent, r.extension, r.via, r.set_at, c.offered_at, "
            "c.service_line, c.did, c.queue, c.agent AS call_agent "
            "FROM call_reasons r LEFT JOIN calls c ON c.id = r.call_id WHERE r.call_id = ? ORDER BY r.seq",
            (call_id,),
        )

    async def last_call_of(self, extension: str, agent: str | None, exclude: str | None = None) -> CallRow | None:
        """The latest call answered at ``extension`` (or by ``agent``), other than ``exclude``:
        the call a wrap-up feature code is about."""
        return await self.fetch_row(
            CallRow,
            f"SELECT {', '.join(CALL_FIELDS)} FROM calls "
            "WHERE (extension = ? OR (agent IS NOT NULL AND agent = ?) OR (direction = 'outbound' AND caller_number = ?)) "
            "AND answered_at IS NOT NULL AND id != ? ORDER BY answered_at DESC LIMIT 1",
            (extension, agent or "", extension, exclude or ""),
        )

    # ------------------------------------------------------------------ survey comments
    async def set_survey_comment(self, call_id: str, path: str, seconds: float | None) -> bool:
        async with self.transaction():
            n = await self.execute(
                "UPDATE surveys SET comment_path = ?, comment_seconds = ? WHERE call_id = ?", (path, seconds, call_id)
            )
        return n > 0

    async def take_survey_comments(self, call_id: str) -> list[str]:
        """The call's survey comment recordings, forgotten (retention, erasure): their paths."""
        async with self.transaction():
            rows = await self.fetchall(
                "SELECT comment_path FROM surveys WHERE call_id = ? AND comment_path IS NOT NULL", (call_id,)
            )
            await self.execute("UPDATE surveys SET comment_path = NULL WHERE call_id = ?", (call_id,))
        return [str(r["comment_path"]) for r in rows]

    async def commented_survey_rows(
        self, since: float | None = None, until: float | None = None, max_score: int = 5
    ) -> list[CommentedSurveyRow]:
        return await self.fetch_rows(
            CommentedSurveyRow,
            "SELECT s.seq, s.call_id, s.agent, s.queue, s.score, s.ts, s.comment_path, s.comment_seconds, "
            "c.caller_number FROM surveys s LEFT JOIN calls c ON c.id = s.call_id "
            "WHERE s.ts >= ? AND s.ts < ? AND s.score <= ? ORDER BY s.seq",
            (since if since is not None else -_INF, until if until is not None else _INF, max_score),
        )

    # ------------------------------------------------------------------ the callers report
    async def routing_step_rows(self, since: float | None, until: float | None) -> list[RoutingStepRow]:
        """The smart-routing steps (``caller_lookup``, ``route``) of the inbound calls offered in [since, until)."""
        return await self.fetch_rows(
            RoutingStepRow,
            "SELECT e.call_id, e.kind, e.detail FROM call_events e JOIN calls c ON c.id = e.call_id "
            "WHERE c.offered_at >= ? AND c.offered_at < ? AND c.direction = 'inbound' "
            "AND e.kind IN ('caller_lookup', 'route') ORDER BY e.seq",
            (since if since is not None else -_INF, until if until is not None else _INF),
        )
