"""A pool of media worker processes, each hosting the legs of one call session.

    pool = MediaPool(size_warm=2, max_workers=50, sip_port_base=25060,
                     rtp_port_base=30000, rtp_ports_per_worker=16,
                     trusted=["127.0.0.1:5060"])
    await pool.start()
    w = await pool.acquire()          # a ready, unused worker (WorkerClient)
    ... proxy the INVITE to 127.0.0.1:w.sip_port, drive the call with w ...
    await pool.release(w)             # the session is over: the worker is recycled
    async for ev in pool.events(): ...   # (worker, event) for every worker, plus WorkerLost
    await pool.close()

Worker *slot* ``i`` uses SIP port ``sip_port_base + i`` and RTP ports
``[rtp_port_base + i*rtp_ports_per_worker, … + rtp_ports_per_worker)``; a slot keeps its
ports for its lifetime, and a replacement worker reuses the slot of the one it replaces.

A worker that exits unexpectedly (crash, kill -9) or stops answering pings is reported
as ``WorkerLost(worker, legs, returncode, reason)`` on :meth:`events` and to the
callbacks, its slot is freed, and warm workers are topped up again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from media.client import MediaWorker, WorkerClient, WorkerError, WorkerExited

log = logging.getLogger("media.pool")


class PoolExhausted(Exception):
    """Every worker slot is busy."""


class _SpawnOptions(TypedDict):
    """The arguments of :meth:`WorkerClient.spawn` that are the same for every worker."""

    sip_addr: str
    media_addr: str
    public_addr: str
    proxy: str
    python: str
    stderr: Any  # as for asyncio.create_subprocess_exec: None, a file, a descriptor, DEVNULL
    extra_args: list[str] | None


@dataclass(frozen=True)
class WorkerLost:
    worker: MediaWorker
    legs: tuple[str, ...]
    returncode: int | None
    reason: str


class MediaPool:
    def __init__(
        self,
        size_warm: int,
        max_workers: int,
        sip_port_base: int,
        rtp_port_base: int,
        rtp_ports_per_worker: int,
        trusted: list[str],
        *,
        sip_addr: str = "127.0.0.1",
        media_addr: str = "127.0.0.1",
        public_addr: str = "",
        proxy: str = "",
        python: str = sys.executable,
        ping_interval: float = 5.0,
        ping_timeout: float = 2.0,
        worker_stderr: Any = None,
        worker_args: list[str] | None = None,
    ):
        if size_warm > max_workers:
            raise ValueError("size_warm > max_workers")
        self.size_warm = size_warm
        self.max_workers = max_workers
        self.sip_port_base = sip_port_base
        self.rtp_port_base = rtp_port_base
        self.rtp_ports_per_worker = rtp_ports_per_worker
        self.trusted = list(trusted)
        self.spawn_kw: _SpawnOptions = {
            "sip_addr": sip_addr,
            "media_addr": media_addr,
            "public_addr": public_addr,
            "proxy": proxy,
            "python": python,
            "stderr": worker_stderr,
            "extra_args": worker_args,
        }
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.slots: dict[int, WorkerClient | None] = {}  # slot -> worker (None: starting)
        self.idle: list[WorkerClient] = []
        self.busy: set[WorkerClient] = set()
        self._slot_of: dict[WorkerClient, int] = {}
        self._events: asyncio.Queue[tuple[WorkerClient | None, Any]] = asyncio.Queue()
        self._callbacks: list[Callable[[WorkerClient | None, Any], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._health: asyncio.Task[None] | None = None
        self._idle_changed = asyncio.Event()
        self._consumers = 0

    # ------------------------------------------------------------ public API
    async def start(self) -> None:
        await asyncio.gather(*(self._start_worker(self._reserve()) for _ in range(self.size_warm)))
        self._health = asyncio.ensure_future(self._health_loop())

    async def acquire(self, timeout: float = 10.0) -> WorkerClient:
        """A ready worker nobody uses; starts one if none is warm (PoolExhausted if full)."""
        while True:
            while self.idle:
                w = self.idle.pop(0)
                if w.alive:
                    self.busy.add(w)
                    self._top_up()
                    return w
            if self._free_slot() is None:
                if any(v is None for v in self.slots.values()):
                    # a worker is starting: wait for it
                    self._idle_changed.clear()
                    try:
                        await asyncio.wait_for(self._idle_changed.wait(), timeout)
                    except TimeoutError:
                        raise PoolExhausted("no worker became ready in time") from None
                    continue
                raise PoolExhausted(f"all {self.max_workers} media workers are busy")
            w = await self._start_worker(self._reserve(), idle=False)
            self.busy.add(w)
            self._top_up()
            return w

    def try_acquire(self) -> WorkerClient | None:
        """A warm worker right now, or None (never waits; starts more in the background).

        For the front door's routing decision, which cannot wait: a caller whose INVITE
        finds no warm worker gets 503 with Retry-After instead of a stalled transaction."""
        while self.idle:
            w = self.idle.pop(0)
            if w.alive:
                self.busy.add(w)
                self._top_up()
                return w
        self._top_up()
        return None

    def acquire_soon(self) -> tuple[int, asyncio.Future[WorkerClient]] | None:
        """No warm worker: reserve a slot and start one now. Returns its SIP port at once
        (the front door can send the INVITE there straight away: UDP retransmission covers
        the ~0.15 s start) and a future for the worker; None when every slot is taken."""
        if self._closed or self._free_slot() is None:
            return None
        slot = self._reserve()
        fut: asyncio.Future[WorkerClient] = asyncio.get_running_loop().create_future()

        async def start() -> None:
            try:
                w = await self._start_worker(slot, idle=False)
            except BaseException as exc:  # handed to whoever waits
                if not fut.done():
                    fut.set_exception(exc)
                return
            self.busy.add(w)
            if not fut.done():
                fut.set_result(w)

        self._spawn_task(start())
        return self.sip_port_base + slot, fut

    def owns_port(self, port: int) -> bool:
        """True when ``port`` is the SIP port of one of this pool's worker slots."""
        return self.sip_port_base <= port < self.sip_port_base + self.max_workers

    async def release(self, worker: WorkerClient) -> None:
        """The session on ``worker`` is over. A worker with legs left is hung up first."""
        self.busy.discard(worker)
        if not worker.alive or self._closed:
            return
        for leg in list(worker.legs):
            try:
                await worker.hangup(leg)
            except WorkerError:
                pass
        if worker.legs:
            # legs still ending: recycle the process rather than wait
            await self._retire(worker)
            return
        if len(self.idle) < self.size_warm:
            self.idle.append(worker)
            self._idle_changed.set()
        else:
            await self._retire(worker)

    def on_event(self, callback: Callable[[WorkerClient | None, Any], Any]) -> None:
        """``callback(worker, event)`` for every worker event and every WorkerLost."""
        self._callbacks.append(callback)

    async def events(self) -> AsyncIterator[tuple[WorkerClient | None, Any]]:
        # Events are queued only while someone iterates here, so a core that uses
        # on_event() callbacks alone does not accumulate every event forever.
        self._consumers += 1
        try:
            while True:
                yield await self._events.get()
        finally:
            self._consumers -= 1

    @property
    def workers(self) -> list[WorkerClient]:
        return [w for w in self.slots.values() if w is not None]

    def stats(self) -> dict[str, int]:
        return {
            "workers": len(self.workers),
            "idle": len(self.idle),
            "busy": len(self.busy),
            "starting": sum(1 for v in self.slots.values() if v is None),
            "max": self.max_workers,
        }

    async def close(self) -> None:
        self._closed = True
        if self._health:
            self._health.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)
        self.slots.clear()
        self.idle.clear()
        self.busy.clear()

    # ------------------------------------------------------------ internals
    def _free_slot(self) -> int | None:
        for i in range(self.max_workers):
            if i not in self.slots:
                return i
        return None

    def _reserve(self) -> int:
        slot = self._free_slot()
        if slot is None:
            raise PoolExhausted(f"all {self.max_workers} media workers are busy")
        self.slots[slot] = None
        return slot

    async def _start_worker(self, slot: int, idle: bool = True) -> WorkerClient:
        try:
            w = await WorkerClient.spawn(
                sip_port=self.sip_port_base + slot,
                rtp_start=self.rtp_port_base + slot * self.rtp_ports_per_worker,
                rtp_count=self.rtp_ports_per_worker,
                trusted=self.trusted,
                **self.spawn_kw,
            )
        except BaseException:
            self.slots.pop(slot, None)
            self._idle_changed.set()
            raise
        self.slots[slot] = w
        self._slot_of[w] = slot
        w.on_event(functools.partial(self._on_worker_event, w))
        if idle:
            self.idle.append(w)
            self._idle_changed.set()
        log.info("media worker %s ready: slot %d sip %d capacity %d", w.pid, slot, w.sip_port, w.capacity)
        return w

    def _spawn_task(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("media pool task failed: %s", t.exception())

    def _top_up(self) -> None:
        if self._closed:
            return
        starting = sum(1 for v in self.slots.values() if v is None)
        need = self.size_warm - len(self.idle) - starting
        for _ in range(need):
            if self._free_slot() is None:
                break
            self._spawn_task(self._start_worker(self._reserve()))

    async def _retire(self, w: WorkerClient) -> None:
        await w.shutdown()

    def _publish(self, worker: WorkerClient | None, ev: Any) -> None:
        if self._consumers:
            self._events.put_nowait((worker, ev))
        for cb in list(self._callbacks):
            try:
                res = cb(worker, ev)
                if asyncio.iscoroutine(res):
                    self._spawn_task(res)
            except Exception:
                log.exception("pool event callback")

    def _on_worker_event(self, w: WorkerClient, ev: Any) -> None:
        if isinstance(ev, WorkerExited):
            slot = self._slot_of.pop(w, None)
            if slot is not None and self.slots.get(slot) is w:
                del self.slots[slot]
            if w in self.idle:
                self.idle.remove(w)
            was_busy = w in self.busy
            self.busy.discard(w)
            if not ev.expected and not self._closed:
                reason = (
                    f"killed by signal {-ev.returncode}"
                    if ev.returncode and ev.returncode < 0
                    else f"exited with {ev.returncode}"
                )
                log.error("media worker %s lost (%s), legs %s", w.pid, reason, ev.legs)
                self._publish(
                    w,
                    WorkerLost(
                        worker=w,
                        legs=ev.legs,
                        returncode=ev.returncode,
                        reason=reason + ("" if was_busy else " (idle)"),
                    ),
                )
            self._top_up()
            return
        self._publish(w, ev)

    async def _health_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.ping_interval)
            for w in list(self.workers):
                if not w.alive:
                    continue
                try:
                    await w.ping(timeout=self.ping_timeout)
                except (TimeoutError, WorkerError):
                    if w.alive:
                        log.error("media worker %s does not answer ping: killing it", w.pid)
                        w.kill()
