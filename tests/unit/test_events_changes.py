"""pypbx.changes: the one change watcher (another process's commits; this process's writes)."""

from __future__ import annotations

import asyncio

from pypbx.changes import ChangeWatcher, DbChanged
from pypbx.db import open_db


def test_the_watcher_tells_who_moved_and_each_subscriber_what_it_asked_for(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            w = ChangeWatcher(db, interval=0.01)
            cli_only: list[DbChanged] = []
            every: list[DbChanged] = []

            async def a(c: DbChanged) -> None:
                cli_only.append(c)

            async def b(c: DbChanged) -> None:
                every.append(c)

            async def broken(c: DbChanged) -> None:
                raise RuntimeError("this one fails; the others still run")

            w.subscribe("broken", broken, own_writes=True)
            w.subscribe("cli", a)
            w.subscribe("all", b, own_writes=True)
            await w.prime()
            assert await w.check() is None  # nothing moved
            await db.set_meta("x", "1")  # this process writes
            own = await w.check()
            async with open_db(tmp_path / "pbx.db") as other:  # the CLI commits
                await other.set_meta("y", "2")
            ext = await w.check()
            return own, ext, cli_only, every

    own, ext, cli_only, every = asyncio.run(go())
    assert own == DbChanged(external=False, own=True)
    assert ext is not None and ext.external
    assert cli_only == [ext] and every == [own, ext]


def test_run_polls_until_stopped(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            w = ChangeWatcher(db, interval=0.02)
            seen = asyncio.Event()

            async def cb(c: DbChanged) -> None:
                seen.set()

            w.subscribe("x", cb)
            stop = asyncio.Event()
            task = asyncio.create_task(w.run(stop))
            await asyncio.sleep(0.05)
            async with open_db(tmp_path / "pbx.db") as other:
                await other.set_meta("y", "2")
            await asyncio.wait_for(seen.wait(), 2.0)
            stop.set()
            await asyncio.wait_for(task, 2.0)
            return seen.is_set()

    assert asyncio.run(go())
