"""Queries: the ACD's queues, agents, agent and queue events, callbacks and engine state (pypbx.acdstore)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import (
    AGENT_FIELDS,
    CALLBACK_FIELDS,
    AcdStateRow,
    AgentEventRow,
    AgentRow,
    CallbackRow,
    QueueEventRow,
    QueueNumberRow,
    QueueRow,
    SQLValue,
)


class AcdQueries(DatabaseCore):
    # ------------------------------------------------------------------ ACD: queues
    async def insert_queue_row(self, name: str, config: str, now: float) -> None:
        """``config``: QueueConfig.to_dict() as JSON. Raises IntegrityError if the name exists."""
        async with self.transaction():
            await self.execute(
                "INSERT INTO queues(name, config, created_at, updated_at) VALUES (?, ?, ?, ?)", (name, config, now, now)
            )

    async def update_queue_row(self, name: str, config: str, now: float) -> bool:
        async with self.transaction():
            n = await self.execute("UPDATE queues SET config = ?, updated_at = ? WHERE name = ?", (config, now, name))
        return n > 0

    async def delete_queue_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM queues WHERE name = ?", (name,)) > 0

    async def get_queue_row(self, name: str) -> QueueRow | None:
        return await self.fetch_row(
            QueueRow, "SELECT name, config, created_at, updated_at FROM queues WHERE name = ?", (name,)
        )

    async def list_queue_rows(self) -> list[QueueRow]:
        return await self.fetch_rows(QueueRow, "SELECT name, config, created_at, updated_at FROM queues ORDER BY name")

    # ------------------------------------------------------------------ ACD: agents
    async def insert_agent_row(self, row: Mapping[str, object]) -> None:
        """Raises IntegrityError if the id exists."""
        async with self.transaction():
            await self.execute(
                f"INSERT INTO agents({', '.join(AGENT_FIELDS)}) VALUES ({', '.join(':' + f for f in AGENT_FIELDS)})",
                {f: row.get(f) for f in AGENT_FIELDS},
            )

    async def get_agent_row(self, agent_id: str) -> AgentRow | None:
        return await self.fetch_row(AgentRow, f"SELECT {', '.join(AGENT_FIELDS)} FROM agents WHERE id = ?", (agent_id,))

    async def get_agent_row_at_extension(self, extension: str) -> AgentRow | None:
        return await self.fetch_row(
            AgentRow, f"SELECT {', '.join(AGENT_FIELDS)} FROM agents WHERE extension = ?", (extension,)
        )

    async def list_agent_rows(self) -> list[AgentRow]:
        return await self.fetch_rows(AgentRow, f"SELECT {', '.join(AGENT_FIELDS)} FROM agents ORDER BY id")

    async def update_agent_row(
        self,
        agent_id: str,
        fields: Mapping[str, object],
        now: float,
        event: tuple[float, str, str] | None = None,
        expect: Mapping[str, object] | None = None,
    ) -> bool:
        """Set some of name, skills, wrap_up, extension, state, pause_reason, state_since and,
        in the same transaction, append ``event`` = (ts, kind, detail JSON) to agent_events.
        ``expect``: only if those columns still hold these values (compare-and-set: another
        process may have changed the agent since it was read); False when not."""
        bad = set(fields) - (set(AGENT_FIELDS) - {"id", "created_at", "updated_at"})
        bad |= set(expect or ()) - set(AGENT_FIELDS)
        if bad:
            raise ValueError(f"cannot update agent fields {sorted(bad)}")
        async with self.transaction():
            sets = ", ".join([f"{k} = :{k}" for k in fields] + ["updated_at = :_now"])
            where = "".join(f" AND {k} IS :_exp_{k}" for k in expect or ())
            n = await self.execute(
                f"UPDATE agents SET {sets} WHERE id = :_id{where}",
                {**fields, "_now": now, "_id": agent_id, **{f"_exp_{k}": v for k, v in (expect or {}).items()}},
            )
            if n and event is not None:
                await self.execute(
                    "INSERT INTO agent_events(ts, agent, kind, detail) VALUES (?, ?, ?, ?)",
                    (event[0], agent_id, event[1], event[2]),
                )
        return n > 0

    async def delete_agent_row(self, agent_id: str, event: tuple[float, str, str] | None = None) -> bool:
        """Delete the agent (its events stay); ``event`` is appended in the same transaction."""
        async with self.transaction():
            n = await self.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            if n and event is not None:
                await self.execute(
                    "INSERT INTO agent_events(ts, agent, kind, detail) VALUES (?, ?, ?, ?)",
                    (event[0], agent_id, event[1], event[2]),
                )
        return n > 0

    async def add_agent_events(self, events: Sequence[tuple[float, str, str, str]]) -> None:
        """Append (ts, agent, kind, detail JSON) rows."""
        if events:
            async with self.transaction():
                await self.executemany(
                    "INSERT INTO agent_events(ts, agent, kind, detail) VALUES (?, ?, ?, ?)", list(events)
                )

    async def agent_event_rows(self, agent: str | None = None, limit: int = 100) -> list[AgentEventRow]:
        """Newest first."""
        if agent is None:
            return await self.fetch_rows(
                AgentEventRow,
                "SELECT seq, ts, agent, kind, detail FROM agent_events ORDER BY seq DESC LIMIT ?",
                (limit,),
            )
        return await self.fetch_rows(
            AgentEventRow,
            "SELECT seq, ts, agent, kind, detail FROM agent_events WHERE agent = ? ORDER BY seq DESC LIMIT ?",
            (agent, limit),
        )

    # ------------------------------------------------------------------ ACD: queue events
    async def add_queue_events(
        self, events: Sequence[tuple[float, str | None, str | None, str | None, str, str]]
    ) -> None:
        """Append (ts, queue, call_id, agent, kind, data JSON) rows in one transaction."""
        if events:
            async with self.transaction():
                await self.executemany(
                    "INSERT INTO queue_events(ts, queue, call_id, agent, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
                    list(events),
                )

    async def queue_event_rows(
        self,
        *,
        queue: str | None = None,
        call_id: str | None = None,
        agent: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[QueueEventRow]:
        """Oldest first (in the order they were written), at most ``limit`` rows: the newest ones."""
        where: list[str] = []
        params: list[SQLValue] = []
        for col, val in (("queue", queue), ("call_id", call_id), ("agent", agent), ("kind", kind)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetch_rows(
            QueueEventRow,
            f"SELECT * FROM (SELECT seq, ts, queue, call_id, agent, kind, data FROM queue_events {cond} "
            f"ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (*params, limit),
        )

    # ------------------------------------------------------------------ ACD: callbacks
    async def request_callback_row(
        self, number: str, queue: str, now: float, call_id: str | None = None
    ) -> tuple[CallbackRow, bool]:
        """A callback for ``number`` (asked in ``queue``): the number's open one (pending or
        dialing, in any queue: the ACD keeps one callback slot per number) gets
        merged_count + 1, else a new pending row. Returns (row, merged)."""
        async with self.transaction():
            row = await self.fetch_row(
                CallbackRow,
                f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks "
                f"WHERE number = ? AND status IN ('pending', 'dialing') ORDER BY requested_at, id LIMIT 1",
                (number,),
            )
            if row is not None:
                await self.execute("UPDATE callbacks SET merged_count = merged_count + 1 WHERE id = ?", (row["id"],))
                merged = True
                cb_id = row["id"]
            else:
                cb_id = await self.insert(
                    "INSERT INTO callbacks(number, queue, requested_at, status, call_id) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    (number, queue, now, call_id),
                )
                merged = False
            new = await self.fetch_row(
                CallbackRow, f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks WHERE id = ?", (cb_id,)
            )
        assert new is not None
        return new, merged

    async def update_callback_row(self, cb_id: int, fields: Mapping[str, object]) -> bool:
        bad = set(fields) - (set(CALLBACK_FIELDS) - {"id"})
        if bad:
            raise ValueError(f"cannot update callback fields {sorted(bad)}")
        if not fields:
            return await self.get_callback_row(cb_id) is not None
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        async with self.transaction():
            return await self.execute(f"UPDATE callbacks SET {sets} WHERE id = :_id", {**fields, "_id": cb_id}) > 0

    async def get_callback_row(self, cb_id: int) -> CallbackRow | None:
        return await self.fetch_row(
            CallbackRow, f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks WHERE id = ?", (cb_id,)
        )

    async def list_callback_rows(
        self, statuses: Sequence[str] | None = None, queue: str | None = None, limit: int = 1000
    ) -> list[CallbackRow]:
        """Oldest request first. ``statuses`` None = all."""
        where: list[str] = []
        params: list[SQLValue] = []
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params += list(statuses)
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        return await self.fetch_rows(
            CallbackRow,
            f"SELECT {', '.join(CALLBACK_FIELDS)} FROM callbacks {cond} ORDER BY requested_at, id LIMIT ?",
            (*params, limit),
        )

    # ------------------------------------------------------------------ ACD: engine state
    async def save_acd_state_row(self, key: str, value: str, now: float) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO acd_state(key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, value, now),
            )

    async def load_acd_state_row(self, key: str) -> AcdStateRow | None:
        return await self.fetch_row(AcdStateRow, "SELECT key, value, updated_at FROM acd_state WHERE key = ?", (key,))

    # ------------------------------------------------------------------ ACD: queue numbers
    async def set_queue_number_row(self, name: str, number: str | None, now: float) -> bool:
        """Raises IntegrityError if another queue has the number."""
        async with self.transaction():
            return (
                await self.execute("UPDATE queues SET number = ?, updated_at = ? WHERE name = ?", (number, now, name))
                > 0
            )

    async def queue_number_rows(self) -> list[QueueNumberRow]:
        return await self.fetch_rows(
            QueueNumberRow, "SELECT name, number FROM queues WHERE number IS NOT NULL ORDER BY name"
        )
