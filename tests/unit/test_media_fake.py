"""media.fake: the in-memory worker/pool the core's tests use behave like the real ones."""

from __future__ import annotations

import asyncio

import pytest

from media import protocol as P
from media.client import CommandFailed, WorkerDied
from media.fake import FakePool
from media.pool import PoolExhausted, WorkerLost


def test_fake_call_flow():
    async def go():
        pool = FakePool(max_workers=1)
        seen = []
        pool.on_event(lambda w, ev: seen.append(ev))
        w = await pool.acquire()
        with pytest.raises(PoolExhausted):
            await pool.acquire()
        w.inject(P.Incoming(leg="in-1", from_uri="a", to_uri="b", call_id="c"))
        await w.answer("in-1")
        assert await w.originate("agent", "sip:1001@127.0.0.1") == "agent"
        await w.bridge("in-1", "agent")
        files = await w.record(["in-1", "agent"], "/r/c1")
        assert files == {"in-1": "/r/c1-in-1.wav", "agent": "/r/c1-agent.wav"}
        await w.play("in-1", "/p/x.wav")
        w.finish_playback("in-1")
        with pytest.raises(CommandFailed, match="no such leg"):
            await w.play("nope", "/p/x.wav")
        w.inject(P.Ended(leg="in-1", cause_code=200, reason="bye"))
        await w.hangup("agent")
        names = [type(e).__name__ for e in seen]
        assert names == [
            "Incoming",
            "Answered",
            "Ringing",
            "Answered",
            "PlaybackFinished",
            "Ended",
            "RecordStopped",
            "Ended",
            "RecordStopped",
        ]
        assert [c.name.value for c in w.commands] == [
            "answer",
            "originate",
            "bridge",
            "record",
            "play",
            "play",
            "hangup",
        ]
        await pool.release(w)
        assert pool.stats()["idle"] == 1

    asyncio.run(go())


def test_fake_kill_reports_worker_lost():
    async def go():
        pool = FakePool()
        w = await pool.acquire()
        w.inject(P.Incoming(leg="in-1", from_uri="a", to_uri="b", call_id="c"))
        w.kill()
        async for source, ev in pool.events():
            if isinstance(ev, WorkerLost):
                worker = source
                break
        assert worker is w and ev.legs == ("in-1",) and ev.returncode == -9
        with pytest.raises(WorkerDied):
            await w.ping()

    asyncio.run(go())
