"""Queries: the missed-caller worklist (pypbx.missed): tasks, their missed calls, attempts,
and the queues' automatic-callback settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import SQLValue


class MissedTaskRow(TypedDict):
    id: int
    number: str
    state: str
    reasons: str
    queue: str | None
    service_line: str | None
    opened_at: float
    first_missed_at: float
    last_missed_at: float
    missed_count: int
    attempts: int
    last_attempt_at: float | None
    claimed_by: str | None
    claimed_at: float | None
    closed_at: float | None
    outcome: str | None
    closed_by: str | None
    closing_call_id: str | None


class MissedCallRow(TypedDict):
    task_id: int
    call_id: str
    reason: str
    queue: str | None
    service_line: str | None
    at: float


class MissedAttemptRow(TypedDict):
    id: int
    task_id: int
    started_at: float
    ended_at: float | None
    by: str
    call_id: str | None
    outcome: str | None


class QueueCallbackRow(TypedDict):
    name: str
    auto_callback: int
    callback_hours: str | None


MISSED_TASK_FIELDS = tuple(MissedTaskRow.__annotations__)
_TASK_COLS = ", ".join(MISSED_TASK_FIELDS)
_UPDATABLE = set(MISSED_TASK_FIELDS) - {"id", "number"}


class MissedQueries(DatabaseCore):
    # ------------------------------------------------------------------ tasks
    async def record_missed_call_row(
        self,
        number: str,
        call_id: str,
        reason: str,
        queue: str | None,
        service_line: str | None,
        offered_at: float,
        ended_at: float,
    ) -> tuple[MissedTaskRow, bool, bool]:
        """The open task of ``number`` gets this missed call (merged), else a new task opens.
        Returns (task, merged, new_call): ``new_call`` False when this call was already in it."""
        async with self.transaction():
            row = await self.fetch_row(
                MissedTaskRow, f"SELECT {_TASK_COLS} FROM missed_tasks WHERE number = ? AND state = 'open'", (number,)
            )
            merged = row is not None
            if row is None:
                task_id = await self.insert(
                    "INSERT INTO missed_tasks(number, state, reasons, queue, service_line, opened_at, "
                    "first_missed_at, last_missed_at, missed_count) VALUES (?, 'open', ?, ?, ?, ?, ?, ?, 1)",
                    (number, reason, queue, service_line, ended_at, offered_at, offered_at),
                )
                new_call = True
            else:
                task_id = row["id"]
                seen = await self.fetchone(
                    "SELECT 1 FROM missed_task_calls WHERE task_id = ? AND call_id = ?", (task_id, call_id)
                )
                new_call = seen is None
                if new_call:
                    reasons = [r for r in row["reasons"].split(",") if r]
                    if reason not in reasons:
                        reasons.append(reason)
                    await self.execute(
                        "UPDATE missed_tasks SET reasons = ?, queue = COALESCE(?, queue), "
                        "service_line = COALESCE(?, service_line), last_missed_at = MAX(last_missed_at, ?), "
                        "missed_count = missed_count + 1 WHERE id = ?",
                        (",".join(reasons), queue, service_line, offered_at, task_id),
                    )
            if new_call:
                await self.execute(
                    "INSERT INTO missed_task_calls(task_id, call_id, reason, queue, service_line, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (task_id, call_id, reason, queue, service_line, offered_at),
                )
            new = await self.fetch_row(MissedTaskRow, f"SELECT {_TASK_COLS} FROM missed_tasks WHERE id = ?", (task_id,))
        assert new is not None
        return new, merged, new_call

    async def get_missed_task_row(self, task_id: int) -> MissedTaskRow | None:
        return await self.fetch_row(MissedTaskRow, f"SELECT {_TASK_COLS} FROM missed_tasks WHERE id = ?", (task_id,))

    async def open_missed_task_row(self, number: str) -> MissedTaskRow | None:
        return await self.fetch_row(
            MissedTaskRow, f"SELECT {_TASK_COLS} FROM missed_tasks WHERE number = ? AND state = 'open'", (number,)
        )

    async def update_missed_task_row(
        self, task_id: int, fields: Mapping[str, SQLValue], *, only_open: bool = False
    ) -> bool:
        """Set ``fields``; with ``only_open`` only while the task is open. True if a row changed."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"cannot update missed task fields {sorted(bad)}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        cond = " AND state = 'open'" if only_open else ""
        async with self.transaction():
            return (
                await self.execute(f"UPDATE missed_tasks SET {sets} WHERE id = :_id{cond}", {**fields, "_id": task_id})
                > 0
            )

    async def list_missed_task_rows(
        self,
        *,
        states: Sequence[str] | None = ("open",),
        queue: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[MissedTaskRow]:
        """Oldest first. ``queue``: tasks with a missed call in that queue."""
        where: list[str] = []
        params: list[SQLValue] = []
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params += list(states)
        if queue is not None:
            where.append("(queue = ? OR id IN (SELECT task_id FROM missed_task_calls WHERE queue = ?))")
            params += [queue, queue]
        if since is not None:
            where.append("opened_at >= ?")
            params.append(since)
        if until is not None:
            where.append("opened_at < ?")
            params.append(until)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetch_rows(
            MissedTaskRow,
            f"SELECT {_TASK_COLS} FROM missed_tasks {cond} ORDER BY first_missed_at, id LIMIT ?",
            (*params, limit),
        )

    async def missed_call_rows(self, task_id: int) -> list[MissedCallRow]:
        return await self.fetch_rows(
            MissedCallRow,
            "SELECT task_id, call_id, reason, queue, service_line, at FROM missed_task_calls "
            "WHERE task_id = ? ORDER BY at",
            (task_id,),
        )

    # ------------------------------------------------------------------ attempts
    async def add_missed_attempt_row(self, task_id: int, by: str, started_at: float, call_id: str | None) -> int:
        async with self.transaction():
            return await self.insert(
                "INSERT INTO missed_attempts(task_id, started_at, by, call_id) VALUES (?, ?, ?, ?)",
                (task_id, started_at, by, call_id),
            )

    async def end_missed_attempt_row(self, attempt_id: int, outcome: str, ended_at: float, dialled: bool) -> bool:
        """Close an attempt; ``dialled``: the patient was dialled (the task's attempts + 1)."""
        async with self.transaction():
            row = await self.fetch_row(
                MissedAttemptRow,
                "SELECT id, task_id, started_at, ended_at, by, call_id, outcome FROM missed_attempts WHERE id = ?",
                (attempt_id,),
            )
            if row is None or row["outcome"] is not None:
                return False
            await self.execute(
                "UPDATE missed_attempts SET outcome = ?, ended_at = ? WHERE id = ?", (outcome, ended_at, attempt_id)
            )
            if dialled:
                await self.execute(
                    "UPDATE missed_tasks SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
                    (row["started_at"], row["task_id"]),
                )
        return True

    async def set_missed_attempt_call(self, attempt_id: int, call_id: str) -> None:
        async with self.transaction():
            await self.execute("UPDATE missed_attempts SET call_id = ? WHERE id = ?", (call_id, attempt_id))

    async def missed_attempt_rows(self, task_id: int) -> list[MissedAttemptRow]:
        return await self.fetch_rows(
            MissedAttemptRow,
            "SELECT id, task_id, started_at, ended_at, by, call_id, outcome FROM missed_attempts "
            "WHERE task_id = ? ORDER BY id",
            (task_id,),
        )

    # ------------------------------------------------------------------ queue settings
    async def queue_callback_rows(self) -> list[QueueCallbackRow]:
        return await self.fetch_rows(
            QueueCallbackRow, "SELECT name, auto_callback, callback_hours FROM queues ORDER BY name"
        )

    async def set_queue_callback_row(self, name: str, auto_callback: bool | None, callback_hours: str | None) -> bool:
        """Change the given settings (None = keep; ``callback_hours`` '' = clear)."""
        sets: list[str] = []
        params: list[SQLValue] = []
        if auto_callback is not None:
            sets.append("auto_callback = ?")
            params.append(int(auto_callback))
        if callback_hours is not None:
            sets.append("callback_hours = ?")
            params.append(callback_hours or None)
        if not sets:
            return True
        async with self.transaction():
            return await self.execute(f"UPDATE queues SET {', '.join(sets)} WHERE name = ?", (*params, name)) > 0
