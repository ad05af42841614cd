"""Fixes found by tests/integration/test_faults_more.py (issue 12), as fast unit tests:

* a source flooding over its rate limit is banned (one line), not throttled forever;
* two processes pausing / unpausing the same agent at once: the check and the write are one
  step (compare-and-set), so one pause gives one PAUSE and one UNPAUSE, never two;
* a stereo merge onto a full disk: the parties' files are repaired in place and kept;
  write_atomic says "no space left" (one OSError, no cffi traceback) and leaves no temp file.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media.recording import write_atomic
from pypbx import acdstore as S
from pypbx import extensions as E
from pypbx.db import open_db
from pypbx.recordings import keep_parts
from sip.guard import AbuseGuard

IP = "203.0.113.9"


def test_a_source_flooding_past_its_rate_limit_is_banned_once(caplog):
    caplog.set_level(logging.WARNING, logger="pypbx.security")
    g = AbuseGuard(rate_limit=50, rate_burst=100, ban_time=60, flood_ban_after=200)
    t = 1000.0
    allowed = 0
    for i in range(2000):  # 1000/s for 2 s
        allowed += g.allow_datagram(IP, 300, t + i / 1000)
    assert 100 <= allowed <= 120  # the burst, then 50/s until the ban
    assert g.is_banned(IP, t + 2.0)
    lines = [r.getMessage() for r in caplog.records]
    bans = [ln for ln in lines if ln.startswith("SECURITY banned")]
    assert bans == [f"SECURITY banned ip={IP} for=60s failures=200 reason=flood"]
    assert g.counters()["bans_total"] == 1
    # another address is not affected
    assert g.allow_datagram("203.0.113.10", 300, t + 2.0)


def test_a_bursty_phone_under_the_flood_threshold_is_not_banned():
    g = AbuseGuard(rate_limit=50, rate_burst=100, flood_ban_after=200)
    t = 0.0
    dropped = 0
    for burst in range(12):  # 130 requests at once every 5 s: 30 over the limit each time
        for i in range(130):
            dropped += not g.allow_datagram(IP, 300, t + 5 * burst + i / 10000)
    assert dropped == 12 * 30
    assert not g.is_banned(IP, 60.0)


def test_flood_ban_off_by_default():
    g = AbuseGuard(rate_limit=50, rate_burst=100)
    for i in range(5000):
        g.allow_datagram(IP, 300, i / 1000)
    assert not g.is_banned(IP, 5.0)


def _agent_db(tmp_path: Path):
    async def go() -> None:
        async with open_db(tmp_path / "db.sqlite") as db:
            await E.add_extension(db, "1001")
            await S.add_agent(db, "alice", "Alice")
            await S.login(db, "alice", "1001")

    asyncio.run(go())


def test_concurrent_unpause_from_two_connections_books_one_unpause(tmp_path):
    """Two desks (two connections) both read 'paused', then both unpause: exactly one wins,
    the other says the agent is not paused; the events log holds one UNPAUSE."""
    _agent_db(tmp_path)

    async def go() -> list[object]:
        async with open_db(tmp_path / "db.sqlite") as db1, open_db(tmp_path / "db.sqlite") as db2:
            await S.pause(db1, "alice")
            results = await asyncio.gather(S.unpause(db1, "alice"), S.unpause(db2, "alice"), return_exceptions=True)
            events = await db1.fetchall("SELECT kind FROM agent_events WHERE agent = 'alice' ORDER BY rowid")
            return [results, [e["kind"] for e in events]]

    results, kinds = asyncio.run(go())
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and "alice is not paused" in str(errors[0]), results
    assert kinds.count("PAUSE") == 1 and kinds.count("UNPAUSE") == 1, kinds


def test_pause_after_a_change_underneath_is_rechecked(tmp_path, monkeypatch):
    """The row changes between the read and the write (another process paused the agent
    for lunch): the compare-and-set fails, the check runs again on the new state."""
    _agent_db(tmp_path)

    async def go() -> list[str]:
        async with open_db(tmp_path / "db.sqlite") as db, open_db(tmp_path / "db.sqlite") as other:
            real = S.get_agent
            first = True

            async def get_then_change(d, agent_id):
                nonlocal first
                a = await real(d, agent_id)
                if first:
                    first = False
                    await S.pause(other, "alice", "lunch")
                return a

            monkeypatch.setattr(S, "get_agent", get_then_change)
            with pytest.raises(S.AcdError, match="already paused"):
                await S.pause(db, "alice", "lunch")
            monkeypatch.setattr(S, "get_agent", real)
            rows = await db.fetchall("SELECT kind FROM agent_events WHERE agent = 'alice' ORDER BY rowid")
            return [r["kind"] for r in rows]

    kinds = asyncio.run(go())
    assert kinds.count("PAUSE") == 1, kinds


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MB tmpfs (root only)."""
    where = tmp_path / "tiny"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)]).returncode:
        pytest.skip("needs root to mount a tmpfs")
    yield where
    subprocess.run(["umount", "-l", str(where)])


def test_write_atomic_on_a_full_disk_is_one_oserror_and_no_temp_file(tiny_fs, capfd):
    big = np.zeros((8000 * 40, 2), dtype=np.int16)  # 1.28 MB > 1 MB
    with pytest.raises(OSError) as e:
        write_atomic(tiny_fs / "x.wav", big, 8000)
    assert e.value.errno == errno.ENOSPC
    assert list(tiny_fs.iterdir()) == []
    assert "Traceback" not in capfd.readouterr().err


def test_keep_parts_repairs_the_party_files_in_place(tmp_path):
    a = tmp_path / "c-in-1.wav"
    b = tmp_path / "c-callee.wav"
    for p in (a, b):
        sf.write(p, np.zeros(8000, dtype=np.int16), 8000, subtype="PCM_16")
    raw = bytearray(a.read_bytes())
    raw[40:44] = (10**6).to_bytes(4, "little")  # the header claims more than was written
    a.write_bytes(bytes(raw))
    kept = keep_parts([str(a), str(b), ""], 1.0, OSError(errno.ENOSPC, "No space left on device"), False)
    assert kept["parts"] == [str(a), str(b)] and kept["reason"] == "disk full"
    assert kept["recorded_seconds"] == pytest.approx(1.0, abs=0.01)
    info = sf.info(str(a))
    assert info.frames == 8000


class _SilentProc:
    """Just enough of asyncio.subprocess.Process for a WorkerClient that never hears back."""

    pid = 4242
    returncode = None

    class _Out:
        async def readline(self) -> bytes:
            await asyncio.Event().wait()
            return b""

    stdout = _Out()
    stdin = None

    async def wait(self) -> int:
        await asyncio.Event().wait()
        return 0


def test_a_pooled_worker_client_does_not_keep_every_event():
    """The pool consumes a worker's events through on_event(): its queue keeps only the
    latest QUEUE_KEEP events (it used to keep every event of every call a warm worker
    took: the core's memory grew with each call); next_event() still gets a recent one,
    and a client nobody registered a callback on keeps all its events."""
    from media import protocol as P
    from media.client import QUEUE_KEEP, WorkerClient

    async def go() -> None:
        pooled = WorkerClient(_SilentProc(), 1, 2, 3)  # type: ignore[arg-type]
        seen: list[object] = []
        pooled.on_event(seen.append)
        plain = WorkerClient(_SilentProc(), 1, 2, 3)  # type: ignore[arg-type]
        for i in range(3000):
            ev = P.Dtmf(leg=f"in-{i}", digit="1")
            pooled._deliver(ev)
            plain._deliver(ev)
        assert len(seen) == 3000
        assert pooled._queue.qsize() == QUEUE_KEEP
        assert plain._queue.qsize() == 3000
        last = await pooled.next_event(P.Dtmf, leg="in-2999", timeout=1)
        assert last.leg == "in-2999"
        for c in (pooled, plain):
            c._reader.cancel()

    asyncio.run(go())
