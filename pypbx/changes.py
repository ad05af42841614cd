"""One change watcher: how CLI changes reach the running PBX.

The CLI writes to the same SQLite database from another process. :class:`ChangeWatcher` is
the one task that notices: every :data:`POLL_INTERVAL` seconds it reads ``PRAGMA
data_version`` (moves when ANOTHER connection commits) and this connection's
``total_changes`` (moves with our own writes, e.g. ``*98`` marking voicemail heard), and
calls the registered components with a :class:`DbChanged` saying which moved. A component
that only cares about the CLI registers with ``own_writes=False`` (the default).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

#: How often the database is checked for changes (the CLI's changes arrive within this).
POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class DbChanged:
    """The database moved since the last look: ``external`` another process committed
    (the CLI), ``own`` this process wrote."""

    external: bool
    own: bool


Callback = Callable[[DbChanged], Awaitable[None]]


class Versioned(Protocol):
    """What the watcher reads (:class:`pypbx.db.Database`): ``PRAGMA data_version``. Its
    connection's ``total_changes`` is read from ``_conn`` when it has one."""

    async def data_version(self) -> int: ...


class ChangeWatcher:
    def __init__(self, db: Versioned, interval: float = POLL_INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self._subs: list[tuple[str, Callback, bool]] = []
        self._mark: tuple[int, int] | None = None

    def subscribe(self, name: str, callback: Callback, *, own_writes: bool = False) -> None:
        """``callback(change)`` is awaited on every change (``own_writes``: this process's
        writes count too). Callbacks run one after the other; one failing is logged."""
        self._subs.append((name, callback, own_writes))

    async def _read(self) -> tuple[int, int]:
        conn = getattr(self.db, "_conn", None)
        return await self.db.data_version(), int(getattr(conn, "total_changes", 0) or 0)

    async def prime(self) -> None:
        """Take the starting point (call before loading what the callbacks would reload)."""
        self._mark = await self._read()

    async def check(self) -> DbChanged | None:
        """Look once; call the subscribers if something moved. Returns what moved."""
        mark = await self._read()
        old, self._mark = self._mark, mark
        if old is None or mark == old:
            return None
        change = DbChanged(external=mark[0] != old[0], own=mark[1] != old[1])
        for name, cb, own in list(self._subs):
            if not change.external and not own:
                continue
            try:
                await cb(change)
            except Exception:
                log.exception("reloading %s after a database change failed", name)
        return change

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set (or the task is cancelled)."""
        if self._mark is None:
            await self.prime()
        while stop is None or not stop.is_set():
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                log.exception("reading the database's change counters failed")
