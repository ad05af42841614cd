"""In-memory stand-ins for WorkerClient and MediaPool, for testing the core without pjsua2.

    pool = FakePool()
    w = await pool.acquire()
    w.inject(P.Incoming(leg="in-1", from_uri="<sip:100@x>", to_uri="<sip:200@y>", call_id="c"))
    ... the core reacts: await w.answer("in-1") ...
    assert w.commands[-1] == P.Answer(id=1, leg="in-1")

Commands are validated like the real worker does (unknown leg -> CommandFailed) and
answered instantly; ``answer`` / ``originate`` / ``hangup`` move leg state and emit the
events a real worker would (``answered``, ``ringing``+``answered`` with
``auto_answer_originate``, ``ended``). ``kill()`` simulates a kill -9.

Hold and transfers are what phones do, so tests inject them: ``P.Held(leg)`` /
``P.Unheld(leg)``; ``P.TransferRequested(leg, target, replaces, new_leg)`` (the fake then
knows ``new_leg``; inject its ``Ringing``/``Answered``/``Ended`` as the target phone would);
``P.Replaced(leg, new_leg, ...)`` for the worker that receives an INVITE with Replaces.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

from media import protocol as P
from media.client import CommandFailed, WorkerDied, WorkerExited, _reply_files, _reply_str, run_if_coroutine
from media.pool import PoolExhausted, WorkerLost


class FakeWorker:
    _pids = itertools.count(90000)

    def __init__(self, sip_port: int = 25060, capacity: int = 4, auto_answer_originate: bool = True):
        self.pid = next(self._pids)
        self.sip_port = sip_port
        self.rtp_range = (30000, 30016)
        self.capacity = capacity
        self.auto_answer_originate = auto_answer_originate
        self.legs: set[str] = set()
        self.commands: list[P.Command] = []
        self.bridges: set[frozenset[str]] = set()
        self.playing: dict[str, str] = {}
        self.recording: dict[str, str] = {}
        self.exited: asyncio.Future[WorkerExited] = asyncio.get_running_loop().create_future()
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._callbacks: list[Callable[[Any], Any]] = []

    # events
    def inject(self, ev: Any) -> None:
        if isinstance(ev, P.Incoming):
            self.legs.add(ev.leg)
        elif isinstance(ev, (P.TransferRequested, P.Replaced)):
            self.legs.add(ev.new_leg)  # the worker creates the new leg (REFER / Replaces)
        elif isinstance(ev, P.Ended):
            self.legs.discard(ev.leg)
            for b in [b for b in self.bridges if ev.leg in b]:
                self.bridges.discard(b)
            self.playing.pop(ev.leg, None)
            if ev.leg in self.recording:
                path = self.recording.pop(ev.leg)
                self._deliver(ev)
                self._deliver(P.RecordStopped(leg=ev.leg, path=path, reason="leg_ended"))
                return
        self._deliver(ev)

    def _deliver(self, ev: Any) -> None:
        self._queue.put_nowait(ev)
        for cb in list(self._callbacks):
            run_if_coroutine(cb(ev))

    def on_event(self, cb: Callable[[Any], Any]) -> None:
        self._callbacks.append(cb)

    async def events(self) -> AsyncIterator[Any]:
        while True:
            ev = await self._queue.get()
            yield ev
            if isinstance(ev, WorkerExited):
                return

    async def next_event(self, kind: Any = None, timeout: float = 10.0, leg: str | None = None) -> Any:
        async def get() -> Any:
            while True:
                ev = await self._queue.get()
                if (kind is None or isinstance(ev, kind)) and (leg is None or getattr(ev, "leg", None) == leg):
                    return ev

        return await asyncio.wait_for(get(), timeout)

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def kill(self, sig: int = 9) -> None:
        if self.alive:
            ex = WorkerExited(returncode=-sig, legs=tuple(sorted(self.legs)), expected=False)
            self.exited.set_result(ex)
            self._deliver(ex)

    # commands
    async def request(self, name: str, **fields: Any) -> dict[str, Any]:
        if not self.alive:
            raise WorkerDied("fake worker is gone")
        cmd = P.command(name, next(self._ids), **fields)
        self.commands.append(cmd)
        await asyncio.sleep(0)
        return getattr(self, "_do_" + cmd.name.value)(cmd) or {}

    def _need(self, *legs: str) -> None:
        for leg in legs:
            if leg not in self.legs:
                raise CommandFailed(f"no such leg: {leg}")

    def _do_answer(self, c: P.Answer) -> None:
        self._need(c.leg)
        if c.code == 200:
            self._deliver(P.Answered(leg=c.leg))

    def _do_hangup(self, c: P.Hangup) -> None:
        self._need(c.leg)
        self.inject(P.Ended(leg=c.leg, cause_code=c.code or 200, reason="hangup"))

    def _do_originate(self, c: P.Originate) -> dict[str, Any]:
        if c.leg_id in self.legs:
            raise CommandFailed(f"bad or duplicate leg id: {c.leg_id!r}")
        if len(self.legs) >= self.capacity:
            raise CommandFailed("worker at capacity")
        self.legs.add(c.leg_id)
        if self.auto_answer_originate:
            self._deliver(P.Ringing(leg=c.leg_id))
            self._deliver(P.Answered(leg=c.leg_id, call_id=f"{c.leg_id}-{self.pid}@fake"))
        return {"leg": c.leg_id}

    def _do_play(self, c: P.Play) -> None:
        self._need(c.leg)
        self.playing[c.leg] = c.file

    def finish_playback(self, leg: str) -> None:
        """Test hook: the prompt playing on ``leg`` reaches its end."""
        f = self.playing.pop(leg)
        self._deliver(P.PlaybackFinished(leg=leg, file=f))

    def _do_stop_play(self, c: P.StopPlay) -> None:
        self._need(c.leg)
        self.playing.pop(c.leg, None)

    def _do_record(self, c: P.Record) -> dict[str, Any]:
        self._need(*c.legs)
        files = {leg: f"{c.path_prefix}-{leg}.wav" for leg in c.legs}
        self.recording.update(files)
        return {"files": files}

    def _do_stop_record(self, c: P.StopRecord) -> dict[str, Any]:
        names = list(self.recording) if c.legs is None else [leg for leg in c.legs if leg in self.recording]
        files = {leg: self.recording.pop(leg) for leg in names}
        for leg, p in files.items():
            self._deliver(P.RecordStopped(leg=leg, path=p, reason="stopped"))
        return {"files": files}

    def _do_bridge(self, c: P.Bridge) -> None:
        self._need(c.leg_a, c.leg_b)
        self.bridges.add(frozenset((c.leg_a, c.leg_b)))

    def _do_unbridge(self, c: P.Unbridge) -> None:
        self._need(c.leg_a, c.leg_b)
        self.bridges.discard(frozenset((c.leg_a, c.leg_b)))

    def _do_send_dtmf(self, c: P.SendDtmf) -> None:
        self._need(c.leg)

    def _do_ping(self, c: P.Ping) -> dict[str, Any]:
        return {"legs": sorted(self.legs), "uptime": 0.0, "recorders": len(self.recording)}

    def _do_shutdown(self, c: P.Shutdown) -> None:
        pass

    async def answer(self, leg: str, code: int = 200) -> None:
        await self.request("answer", leg=leg, code=code)

    async def hangup(self, leg: str, code: int | None = None) -> None:
        await self.request("hangup", leg=leg, code=code)

    async def originate(
        self,
        leg_id: str,
        uri: str,
        from_uri: str | None = None,
        headers: dict[str, str] | None = None,
        auth: dict[str, str] | None = None,
    ) -> str:
        res = await self.request(
            "originate",
            leg_id=leg_id,
            uri=uri,
            from_uri=from_uri,
            headers=dict(headers or {}),
            auth=dict(auth) if auth else None,
        )
        return _reply_str(res, "leg", "originate")

    async def play(self, leg: str, file: Any, loop: bool = False) -> None:
        await self.request("play", leg=leg, file=str(file), loop=loop)

    async def stop_play(self, leg: str) -> None:
        await self.request("stop_play", leg=leg)

    async def record(self, legs: list[str], path_prefix: Any) -> dict[str, str]:
        return _reply_files(await self.request("record", legs=list(legs), path_prefix=str(path_prefix)), "record")

    async def stop_record(self, legs: list[str] | None = None) -> dict[str, str]:
        return _reply_files(await self.request("stop_record", legs=legs), "stop_record")

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        await self.request("bridge", leg_a=leg_a, leg_b=leg_b)

    async def unbridge(self, leg_a: str, leg_b: str) -> None:
        await self.request("unbridge", leg_a=leg_a, leg_b=leg_b)

    async def send_dtmf(self, leg: str, digits: str) -> None:
        await self.request("send_dtmf", leg=leg, digits=digits)

    async def ping(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.request("ping")

    async def shutdown(self, timeout: float = 5.0) -> int | None:
        if self.alive:
            self.exited.set_result(WorkerExited(returncode=0, legs=(), expected=True))
        return 0


class FakePool:
    """MediaPool's interface over FakeWorkers (same events, WorkerLost on kill)."""

    def __init__(self, max_workers: int = 8, sip_port_base: int = 25060, **worker_kw: Any):
        self.max_workers = max_workers
        self.sip_port_base = sip_port_base
        self.worker_kw = worker_kw
        self.busy: list[FakeWorker] = []
        self.idle: list[FakeWorker] = []
        self._events: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self._callbacks: list[Callable[[Any, Any], Any]] = []
        self._ports = itertools.count(sip_port_base)

    async def start(self) -> None:
        pass

    async def acquire(self, timeout: float = 10.0) -> FakeWorker:
        if len(self.busy) >= self.max_workers:
            raise PoolExhausted(f"all {self.max_workers} media workers are busy")
        w = self.idle.pop() if self.idle else FakeWorker(sip_port=next(self._ports), **self.worker_kw)
        self.busy.append(w)
        w.on_event(functools.partial(self._on, w))
        return w

    def try_acquire(self) -> FakeWorker | None:
        """MediaPool.try_acquire: a worker now or None (for the front door's routing)."""
        if len(self.busy) >= self.max_workers:
            return None
        w = self.idle.pop() if self.idle else FakeWorker(sip_port=next(self._ports), **self.worker_kw)
        self.busy.append(w)
        w.on_event(functools.partial(self._on, w))
        return w

    def acquire_soon(self) -> None:
        """MediaPool.acquire_soon: the fake starts workers synchronously in try_acquire,
        so when that returns None every slot is taken."""
        return None

    def owns_port(self, port: int) -> bool:
        return self.sip_port_base <= port < self.sip_port_base + self.max_workers

    def _on(self, w: FakeWorker, ev: Any) -> None:
        if isinstance(ev, WorkerExited):
            if w in self.busy:
                self.busy.remove(w)
            if not ev.expected:
                self._publish(
                    w,
                    WorkerLost(
                        worker=w,
                        legs=ev.legs,
                        returncode=ev.returncode,
                        reason=f"killed by signal {-(ev.returncode or 0)}",
                    ),
                )
            return
        self._publish(w, ev)

    def _publish(self, w: Any, ev: Any) -> None:
        self._events.put_nowait((w, ev))
        for cb in list(self._callbacks):
            run_if_coroutine(cb(w, ev))

    async def release(self, w: FakeWorker) -> None:
        if w in self.busy:
            self.busy.remove(w)
        for leg in list(w.legs):
            await w.hangup(leg)
        w._callbacks.clear()
        if w.alive:
            self.idle.append(w)

    def on_event(self, cb: Callable[[Any, Any], Any]) -> None:
        self._callbacks.append(cb)

    async def events(self) -> AsyncIterator[tuple[Any, Any]]:
        while True:
            yield await self._events.get()

    def stats(self) -> dict[str, int]:
        return {
            "workers": len(self.busy) + len(self.idle),
            "idle": len(self.idle),
            "busy": len(self.busy),
            "starting": 0,
            "max": self.max_workers,
        }

    async def close(self) -> None:
        for w in self.busy + self.idle:
            await w.shutdown()
