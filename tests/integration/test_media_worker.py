"""A real media worker (pjsua2) driven by sipp on loopback, sipp playing the front door.

sipp sends its INVITE from the port the worker trusts; the worker answers, bridges to a
leg it originates towards a second sipp (the agent's phone), records both parties; both
sipps stream PCMA speech (g711a.pcap shipped with sipp), the caller keys RFC 2833 DTMF.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import soundfile as sf

from media import protocol as P
from media.client import WorkerClient, WorkerExited
from media.pool import MediaPool, WorkerLost
from media.recording import merge_stereo, repair_wav
from tests.conftest import free_port

pytestmark = pytest.mark.slow

SIPP_DIR = Path(__file__).resolve().parents[1] / "sipp"
PCAP_DIR = Path("/usr/share/sip-tester")


def sipp_path() -> str:
    path = shutil.which("sipp")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("sipp is not installed (CI must install it)")
        pytest.skip("sipp is not installed")
    if not (PCAP_DIR / "g711a.pcap").exists():
        if os.environ.get("CI"):
            pytest.fail("sipp's pcap files are missing (/usr/share/sip-tester)")
        pytest.skip("sipp's pcap files are missing")
    return path


def free_rtp_range(count: int = 16) -> int:
    """An even base port with ``count`` consecutive free UDP ports (best effort)."""
    import socket

    for _ in range(50):
        base = free_port("udp") & ~1
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free RTP range")


class Sipp:
    def __init__(
        self,
        tmp: Path,
        scenario: str,
        *,
        remote: str | None = None,
        port: int | None = None,
        duration_ms: int = 3000,
        name: str = "sipp",
    ):
        self.port = port or free_port("udp")
        self.media_port = free_rtp_range(4)
        self.log = tmp / f"{name}.out"
        self.args = [
            sipp_path(),
            "-sf",
            str(SIPP_DIR / scenario),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(self.media_port),
            "-d",
            str(duration_ms),
            "-timeout",
            "40s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(tmp / f"{name}.err"),
        ]
        if remote:
            self.args.insert(1, remote)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        with open(self.log, "wb") as out:  # the child has its own copy of the descriptor
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
            )
        return self

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()

    def diag(self) -> str:
        err = Path(str(self.log).replace(".out", ".err"))
        return (err.read_text(errors="replace")[-3000:] if err.exists() else "") + self.log.read_bytes()[-2000:].decode(
            errors="replace"
        )


async def spawn_worker(tmp: Path, trusted_port: int, **kw) -> WorkerClient:
    with open(tmp / "worker.log", "ab") as stderr:  # the worker has its own copy of the descriptor
        return await WorkerClient.spawn(
            sip_port=free_port("udp"),
            rtp_start=free_rtp_range(16),
            rtp_count=16,
            trusted=[f"127.0.0.1:{trusted_port}"],
            stderr=stderr,
            **kw,
        )


@pytest.fixture
def workers_log(tmp_path: Path) -> Iterator[BinaryIO]:
    """The stderr of a pool's workers: open as long as the pool may spawn one."""
    with open(tmp_path / "workers.log", "ab") as f:
        yield f


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


# ---------------------------------------------------------------------------------------


def test_bridged_call_recorded_both_parties(tmp_path):
    """Caller -> worker; worker originates to the agent; bridge; record; caller hangs up."""

    async def go():
        caller_port = free_port("udp")
        w = await spawn_worker(tmp_path, caller_port)
        assert w.capacity >= 4
        agent = await Sipp(tmp_path, "media_uas_pcma.xml", name="agent").start()
        caller = Sipp(
            tmp_path,
            "media_uac_pcma.xml",
            remote=f"127.0.0.1:{w.sip_port}",
            port=caller_port,
            duration_ms=4000,
            name="caller",
        )
        try:
            await caller.start()
            inc = await w.next_event(P.Incoming, timeout=10)
            assert inc.leg.startswith("in-") and "+15550100" in inc.from_uri
            assert inc.headers.get("X-PBX-Trunk") == "trunk-test"
            assert inc.call_id
            await w.answer(inc.leg, 180)
            await w.originate(
                "agent-1",
                f"sip:agent@127.0.0.1:{agent.port}",
                from_uri="<sip:+15550100@pbx.invalid>",
                headers={"X-PBX-Call": "c1"},
            )
            assert isinstance(await w.next_event(P.Ringing, leg="agent-1"), P.Ringing)
            await w.next_event(P.Answered, leg="agent-1")
            await w.answer(inc.leg)
            await w.next_event(P.Answered, leg=inc.leg)
            t0 = time.monotonic()
            await w.bridge(inc.leg, "agent-1")
            files = await w.record([inc.leg, "agent-1"], tmp_path / "rec" / "c1")
            assert set(files) == {inc.leg, "agent-1"}
            ended = await w.next_event(P.Ended, leg=inc.leg, timeout=15)
            talk = time.monotonic() - t0
            assert ended.cause_code == 200
            await w.hangup("agent-1")
            await w.next_event(P.Ended, leg="agent-1")
            stopped = {}
            while len(stopped) < 2:
                ev = await w.next_event(P.RecordStopped)
                stopped[ev.leg] = ev
            assert stopped[inc.leg].reason == "leg_ended"
            assert await caller.wait() == 0, caller.diag()
            assert await agent.wait() == 0, agent.diag()
            assert (await w.ping())["legs"] == []
        finally:
            caller.kill()
            agent.kill()
            await w.shutdown()
        return files, talk, inc.leg

    files, talk, leg = run(go())
    lens = [sf.info(p).frames for p in files.values()]
    assert abs(lens[0] - lens[1]) <= 160, lens  # same conference tick, within one frame
    for path in files.values():
        d, rate = sf.read(path, dtype="int16")
        assert rate == 8000
        assert abs(len(d) / rate - talk) < 0.5, (len(d) / rate, talk)
        assert rms(d) > 300, f"{path} is silent"
    info = merge_stereo(files[leg], files["agent-1"], tmp_path / "rec" / "c1.wav")
    st, _ = sf.read(info.path, dtype="int16")
    assert rms(st[:, 0]) > 300 and rms(st[:, 1]) > 300
    assert abs(info.duration - talk) < 0.5
    assert len(info.sha256) == 64


def test_dtmf_and_playback(tmp_path):
    async def go():
        prompt = tmp_path / "beep.wav"
        t = np.arange(8000) / 8000
        sf.write(str(prompt), (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), 8000, subtype="PCM_16")
        caller_port = free_port("udp")
        w = await spawn_worker(tmp_path, caller_port)
        caller = Sipp(
            tmp_path,
            "media_uac_dtmf.xml",
            remote=f"127.0.0.1:{w.sip_port}",
            port=caller_port,
            duration_ms=2500,
            name="caller",
        )
        try:
            await caller.start()
            inc = await w.next_event(P.Incoming, timeout=10)
            await w.answer(inc.leg)
            t0 = time.monotonic()
            await w.play(inc.leg, prompt)
            digits, finished = [], None
            while len(digits) < 3 or finished is None:
                ev = await w.next_event((P.Dtmf, P.PlaybackFinished), timeout=10)
                if isinstance(ev, P.Dtmf):
                    digits.append(ev.digit)
                else:
                    finished = time.monotonic() - t0
                    assert ev.file == str(prompt) and ev.leg == inc.leg
            assert digits == ["1", "5", "#"]
            assert 0.8 < finished < 2.0
            with pytest.raises(Exception, match="no such file"):
                await w.play(inc.leg, tmp_path / "nope.wav")
            await w.play(inc.leg, prompt, loop=True)
            await w.stop_play(inc.leg)
            await w.send_dtmf(inc.leg, "42")
            await w.next_event(P.Ended, leg=inc.leg, timeout=15)
            assert await caller.wait() == 0, caller.diag()
        finally:
            caller.kill()
            await w.shutdown()

    run(go())


def test_untrusted_invite_rejected(tmp_path):
    async def go():
        w = await spawn_worker(tmp_path, free_port("udp"))  # trusts some other port
        intruder = Sipp(tmp_path, "media_uac_rejected.xml", remote=f"127.0.0.1:{w.sip_port}", name="intruder")
        try:
            await intruder.start()
            assert await intruder.wait() == 0, intruder.diag()
            with pytest.raises(asyncio.TimeoutError):
                await w.next_event(P.Incoming, timeout=0.5)
            assert (await w.ping())["legs"] == []
        finally:
            intruder.kill()
            assert await w.shutdown() == 0

    run(go())


def test_commands_on_unknown_legs_fail_cleanly(tmp_path):
    async def go():
        w = await spawn_worker(tmp_path, free_port("udp"))
        try:
            for coro in (
                w.answer("in-9"),
                w.hangup("x"),
                w.play("x", "/nope.wav"),
                w.bridge("a", "b"),
                w.record(["a"], tmp_path / "r"),
                w.send_dtmf("a", "1"),
            ):
                with pytest.raises(Exception, match="no such leg"):
                    await coro
            with pytest.raises(Exception, match="bad or duplicate"):
                await w.originate("in-1", "sip:x@127.0.0.1:9")
            assert await w.stop_record() == {}
        finally:
            assert await w.shutdown() == 0

    run(go())


def test_pool_replaces_killed_worker_mid_call(tmp_path, workers_log):
    async def go():
        caller_port = free_port("udp")
        base = free_rtp_range(64)
        pool = MediaPool(
            size_warm=2,
            max_workers=4,
            sip_port_base=free_port("udp"),
            rtp_port_base=base,
            rtp_ports_per_worker=16,
            trusted=[f"127.0.0.1:{caller_port}"],
            ping_interval=0.5,
            worker_stderr=workers_log,
        )
        await pool.start()
        caller = None
        try:
            assert pool.stats()["idle"] == 2
            w = await pool.acquire()
            other = await pool.acquire()
            assert w is not other and w.sip_port != other.sip_port
            caller = Sipp(
                tmp_path,
                "media_uac_pcma.xml",
                remote=f"127.0.0.1:{w.sip_port}",
                port=caller_port,
                duration_ms=20000,
                name="caller",
            )
            await caller.start()
            inc = await w.next_event(P.Incoming, timeout=10)
            await w.answer(inc.leg)
            await w.next_event(P.Answered, leg=inc.leg)
            rec = (await w.record([inc.leg], tmp_path / "crash"))[inc.leg]
            await asyncio.sleep(1.0)
            os.kill(w.pid, signal.SIGKILL)
            async for source, ev in pool.events():
                if isinstance(ev, WorkerLost):
                    worker = source
                    break
            assert worker is w and ev.legs == (inc.leg,) and ev.returncode == -signal.SIGKILL
            assert "signal 9" in ev.reason
            assert isinstance(await w.next_event(WorkerExited), WorkerExited)
            # the recording the dead worker left is repairable and holds the audio so far
            fixed = repair_wav(rec)
            assert 0.5 < fixed.duration < 2.0, fixed
            assert np.count_nonzero(sf.read(rec, dtype="int16")[0]) > 1000
            assert (await other.ping())["legs"] == []  # the other call goes on
            for _ in range(50):
                if pool.stats()["idle"] == 2:
                    break
                await asyncio.sleep(0.1)
            assert pool.stats() == {"workers": 3, "idle": 2, "busy": 1, "starting": 0, "max": 4}
            fresh = await pool.acquire()
            assert fresh.alive and (await fresh.ping())["legs"] == []
            await pool.release(fresh)
            await pool.release(other)
        finally:
            if caller:
                caller.kill()
            await pool.close()

    run(go())


def test_pool_exhausted_and_stdin_close(tmp_path, workers_log):
    async def go():
        from media.pool import PoolExhausted

        pool = MediaPool(
            size_warm=1,
            max_workers=2,
            sip_port_base=free_port("udp"),
            rtp_port_base=free_rtp_range(32),
            rtp_ports_per_worker=16,
            trusted=["127.0.0.1:5060"],
            worker_stderr=workers_log,
        )
        await pool.start()
        try:
            a = await pool.acquire()
            b = await pool.acquire()
            with pytest.raises(PoolExhausted):
                await pool.acquire(timeout=1)
            await pool.release(a)
            c = await pool.acquire()
            assert c is a
            # a worker whose core goes away (stdin EOF) exits cleanly
            b.proc.stdin.close()
            ex = await asyncio.wait_for(asyncio.shield(b.exited), 5)
            assert ex.returncode == 0
        finally:
            await pool.close()

    run(go())
