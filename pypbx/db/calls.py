"""Queries: call records (CDR), the call-event log, recordings' metadata, post-call surveys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import (
    CALL_FIELDS,
    RECORDING_FIELDS,
    CallEventRow,
    CallRow,
    CallSearchRow,
    RecordingRow,
    SQLValue,
    SurveyRow,
)


class _DispositionCount(TypedDict):
    disposition: str
    n: int


class _Name(TypedDict):
    name: str


class CallQueries(DatabaseCore):
    # ------------------------------------------------------------------ calls (CDR)
    async def insert_call(self, row: Mapping[str, object], event: tuple[float, str, str]) -> None:
        """A new call record and its first event, in one transaction."""
        async with self.transaction():
            await self.execute(
                f"INSERT INTO calls({', '.join(CALL_FIELDS)}) VALUES ({', '.join(':' + f for f in CALL_FIELDS)})",
                {f: row.get(f) for f in CALL_FIELDS},
            )
            await self.execute(
                "INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)", (row["id"], *event)
            )

    async def update_call(
        self, call_id: str, fields: Mapping[str, object], events: Sequence[tuple[float, str, str]] = ()
    ) -> bool:
        bad = set(fields) - set(CALL_FIELDS) | ({"id"} & set(fields))
        if bad:
            raise ValueError(f"cannot update call fields {sorted(bad)}")
        async with self.transaction():
            n = 1
            if fields:
                sets = ", ".join(f"{k} = :{k}" for k in fields)
                n = await self.execute(f"UPDATE calls SET {sets} WHERE id = :_id", {**fields, "_id": call_id})
            if events:
                await self.executemany(
                    "INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                    [(call_id, *e) for e in events],
                )
        return n > 0

    async def add_call_events(self, events: Sequence[tuple[str, float, str, str]]) -> None:
        if events:
            async with self.transaction():
                await self.executemany(
                    "INSERT INTO call_events(call_id, ts, kind, detail) VALUES (?, ?, ?, ?)", list(events)
                )

    async def call_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids of calls starting with ``prefix`` (at most ``limit``; two tell "ambiguous")."""
        rows = await self.fetchall("SELECT id FROM calls WHERE id LIKE ? LIMIT ?", (prefix + "%", limit))
        return [str(r["id"]) for r in rows]

    async def get_call_row(self, call_id: str) -> CallRow | None:
        return await self.fetch_row(CallRow, f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE id = ?", (call_id,))

    async def call_event_rows(self, call_id: str) -> list[CallEventRow]:
        return await self.fetch_rows(
            CallEventRow, "SELECT seq, ts, kind, detail FROM call_events WHERE call_id = ? ORDER BY seq", (call_id,)
        )

    async def search_call_rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        number: str | None = None,
        queue: str | None = None,
        agent: str | None = None,
        disposition: str | None = None,
        limit: int = 100,
    ) -> list[CallSearchRow]:
        where: list[str] = []
        params: list[SQLValue] = []
        if since is not None:
            where.append("offered_at >= ?")
            params.append(since)
        if until is not None:
            where.append("offered_at < ?")
            params.append(until)
        if number:
            where.append("(caller_number = ? OR callee_number = ?)")
            params += [number, number]
        if queue:
            where.append("queue = ?")
            params.append(queue)
        if agent:
            where.append("(agent = ? OR extension = ?)")
            params += [agent, agent]
        if disposition:
            where.append("disposition = ?")
            params.append(disposition)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        cols = ", ".join("c." + f for f in CALL_FIELDS)
        return await self.fetch_rows(
            CallSearchRow,
            f"SELECT {cols}, r.path AS recording_path, r.status AS recording_status, r.seconds AS recording_seconds "
            f"FROM calls c LEFT JOIN recordings r ON r.call_id = c.id {cond.replace('offered_at', 'c.offered_at')} "
            f"ORDER BY c.offered_at DESC LIMIT ?",
            (*params, limit),
        )

    async def open_call_rows(self) -> list[CallRow]:
        return await self.fetch_rows(
            CallRow, f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE disposition = 'in_progress'"
        )

    async def call_rows_between(self, since: float | None, until: float | None) -> list[CallRow]:
        """Every call offered in [since, until), oldest first (pypbx.reports)."""
        return await self.fetch_rows(
            CallRow,
            f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE offered_at >= ? AND offered_at < ? ORDER BY offered_at",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")),
        )

    async def disposition_counts(self, since: float | None, until: float | None) -> dict[str, int]:
        rows = await self.fetch_rows(
            _DispositionCount,
            "SELECT disposition, count(*) AS n FROM calls WHERE offered_at >= ? AND offered_at < ? "
            "GROUP BY disposition",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")),
        )
        return {r["disposition"]: int(r["n"]) for r in rows}

    async def history_names(self, column: str) -> list[str]:
        """The distinct ``queue``, ``agent`` or ``service_line`` values the call records hold
        (a filter may name a queue or agent removed since)."""
        if column not in ("queue", "agent", "service_line", "extension"):
            raise ValueError(f"no call column {column!r}")
        rows = await self.fetch_rows(
            _Name, f"SELECT DISTINCT {column} AS name FROM calls WHERE {column} IS NOT NULL AND {column} != ''"
        )
        return [r["name"] for r in rows]

    # ------------------------------------------------------------------ recordings
    async def upsert_recording(self, row: Mapping[str, object]) -> None:
        cols = ", ".join(RECORDING_FIELDS)
        vals = ", ".join(":" + f for f in RECORDING_FIELDS)
        sets = ", ".join(f"{f} = excluded.{f}" for f in RECORDING_FIELDS if f != "call_id")
        async with self.transaction():
            await self.execute(
                f"INSERT INTO recordings({cols}) VALUES ({vals}) ON CONFLICT(call_id) DO UPDATE SET {sets}",
                {f: row.get(f) for f in RECORDING_FIELDS},
            )

    async def get_recording_row(self, call_id: str) -> RecordingRow | None:
        return await self.fetch_row(
            RecordingRow, f"SELECT {', '.join(RECORDING_FIELDS)} FROM recordings WHERE call_id = ?", (call_id,)
        )

    async def recording_rows_with_status(self, status: str) -> list[RecordingRow]:
        return await self.fetch_rows(
            RecordingRow, f"SELECT {', '.join(RECORDING_FIELDS)} FROM recordings WHERE status = ?", (status,)
        )

    # surveys (pypbx.survey)
    async def insert_survey_row(
        self, call_id: str, agent: str | None, queue: str | None, score: int, ts: float
    ) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO surveys(call_id, agent, queue, score, ts) VALUES (?, ?, ?, ?, ?)",
                (call_id, agent, queue, score, ts),
            )

    async def survey_rows(self, since: float | None = None, until: float | None = None) -> list[SurveyRow]:
        where: list[str] = []
        params: list[SQLValue] = []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetch_rows(
            SurveyRow, f"SELECT seq, call_id, agent, queue, score, ts FROM surveys {cond} ORDER BY seq", params
        )
