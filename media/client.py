"""asyncio client for one media worker process (see :mod:`media.protocol`).

    w = await WorkerClient.spawn(sip_port=..., rtp_start=..., rtp_count=..., trusted=[...])
    w.on_event(lambda ev: ...)            # or: async for ev in w.events(): ...
    await w.answer("in-1")
    await w.play("in-1", "/prompts/hello.wav")
    await w.originate("agent-1", "sip:1001@127.0.0.1:5060", from_uri="sip:0101@pbx")
    await w.originate("trunk-1", "sip:0612345678@127.0.0.1:5060", headers={"X-PBX-Trunk": "t"},
                      auth={"username": "clinic", "password": "...", "realm": "*"})
    await w.bridge("in-1", "agent-1"); await w.record(["in-1", "agent-1"], "/var/rec/x")

Commands are logged at DEBUG level with :func:`media.protocol.redact` (an originate's
``auth`` password never reaches a log). A command whose reply says ``ok: false`` raises :class:`CommandFailed`; every pending
command raises :class:`WorkerDied` once the process is gone. When the process exits,
``events()`` yields a final :class:`WorkerExited` (not a protocol event) with the legs it
still had.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from media import protocol as P

#: events kept for next_event() by a client consumed through on_event() callbacks
QUEUE_KEEP = 256

log = logging.getLogger("media.client")

REPO_ROOT = Path(__file__).resolve().parents[1]


class WorkerError(Exception):
    pass


class CommandFailed(WorkerError):
    """The worker answered ``ok: false``."""


class WorkerDied(WorkerError):
    """The worker process is gone."""


@dataclass(frozen=True)
class WorkerExited:
    """Synthetic last event of a worker: it exited (``returncode`` < 0: killed by signal)."""

    returncode: int | None
    legs: tuple[str, ...]
    expected: bool


EventCallback = Callable[[Any], Any]


class MediaWorker(Protocol):
    """What the core uses of one media worker: a :class:`WorkerClient`, or in tests a
    :class:`media.fake.FakeWorker`."""

    pid: int
    sip_port: int
    capacity: int
    legs: set[str]

    @property
    def alive(self) -> bool: ...

    def on_event(self, callback: EventCallback) -> None: ...

    def events(self) -> AsyncIterator[Any]: ...

    async def answer(self, leg: str, code: int = 200) -> None: ...

    async def hangup(self, leg: str, code: int | None = None) -> None: ...

    async def originate(
        self,
        leg_id: str,
        uri: str,
        from_uri: str | None = None,
        headers: dict[str, str] | None = None,
        auth: dict[str, str] | None = None,
    ) -> str: ...

    async def play(self, leg: str, file: str | os.PathLike[str], loop: bool = False) -> None: ...

    async def stop_play(self, leg: str) -> None: ...

    async def record(self, legs: list[str], path_prefix: str | os.PathLike[str]) -> dict[str, str]: ...

    async def stop_record(self, legs: list[str] | None = None) -> dict[str, str]: ...

    async def bridge(self, leg_a: str, leg_b: str) -> None: ...

    async def unbridge(self, leg_a: str, leg_b: str) -> None: ...

    async def send_dtmf(self, leg: str, digits: str) -> None: ...

    async def ping(self, timeout: float | None = None) -> dict[str, Any]: ...

    async def shutdown(self, timeout: float = 5.0) -> int | None: ...

    def kill(self, sig: int = ...) -> None: ...


def _reply_str(res: dict[str, Any], key: str, what: str) -> str:
    """A string field of a command's result (the worker is a separate process: check)."""
    value = res.get(key)
    if not isinstance(value, str):
        raise WorkerError(f"{what}: reply field {key!r} is not a string: {value!r}")
    return value


def _reply_files(res: dict[str, Any], what: str) -> dict[str, str]:
    """The ``files`` ({leg: path}) of a record/stop_record result."""
    files = res.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise WorkerError(f"{what}: reply field 'files' is not an object of strings: {files!r}")
    return files


# Tasks started for coroutine callbacks: the event loop keeps only weak references to tasks,
# so one nobody holds could be garbage-collected before it ends.
_callback_tasks: set[asyncio.Task[Any]] = set()


def run_if_coroutine(res: object) -> None:
    """Run what an event callback returned as a task if it is a coroutine (async callback),
    keeping a reference to the task until it is done."""
    if asyncio.iscoroutine(res):
        task = asyncio.ensure_future(res)
        _callback_tasks.add(task)
        task.add_done_callback(_callback_tasks.discard)


class WorkerClient:
    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        sip_port: int,
        rtp_start: int,
        rtp_count: int,
        command_timeout: float = 5.0,
    ):
        self.proc = proc
        self.pid = proc.pid
        self.sip_port = sip_port
        self.rtp_range = (rtp_start, rtp_start + rtp_count)
        self.capacity = 0
        self.command_timeout = command_timeout
        self.legs: set[str] = set()
        self.ready: asyncio.Future[P.Ready] = asyncio.get_running_loop().create_future()
        self.exited: asyncio.Future[WorkerExited] = asyncio.get_running_loop().create_future()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[P.Reply]] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._consumers = 0  # events() / next_event() callers waiting on the queue
        self._callbacks: list[EventCallback] = []
        self._closing = False
        self._reader = asyncio.ensure_future(self._read_loop())

    # ------------------------------------------------------------ spawn
    @classmethod
    async def spawn(
        cls,
        *,
        sip_port: int,
        rtp_start: int,
        rtp_count: int,
        trusted: list[str],
        sip_addr: str = "127.0.0.1",
        media_addr: str = "127.0.0.1",
        public_addr: str = "",
        proxy: str = "",
        python: str = sys.executable,
        stderr: Any = None,
        extra_args: list[str] | None = None,
        ready_timeout: float = 10.0,
        command_timeout: float = 5.0,
    ) -> WorkerClient:
        args = [
            python,
            "-m",
            "media.worker",
            "--sip-port",
            str(sip_port),
            "--sip-addr",
            sip_addr,
            "--rtp-start",
            str(rtp_start),
            "--rtp-count",
            str(rtp_count),
            "--media-addr",
            media_addr,
        ]
        for t in trusted:
            args += ["--trusted", t]
        if public_addr:
            args += ["--public-addr", public_addr]
        if proxy:
            args += ["--proxy", proxy]
        args += extra_args or []
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env, limit=1 << 20
        )
        w = cls(proc, sip_port, rtp_start, rtp_count, command_timeout)
        try:
            await asyncio.wait_for(asyncio.shield(w.ready), ready_timeout)
        except (TimeoutError, WorkerDied) as exc:
            w.kill()
            raise WorkerDied(f"worker on SIP port {sip_port} did not become ready") from exc
        return w

    # ------------------------------------------------------------ I/O
    async def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                try:
                    msg = P.decode(line)
                except P.ProtocolError as exc:
                    log.warning("worker %s: bad line %r: %s", self.pid, line[:200], exc)
                    continue
                if isinstance(msg, P.Reply):
                    fut = self._pending.pop(msg.id, None)
                    if fut and not fut.done():
                        fut.set_result(msg)
                    continue
                self._track(msg)
                self._deliver(msg)
        except Exception:
            log.exception("worker %s reader", self.pid)
        rc = await self.proc.wait()
        ex = WorkerExited(returncode=rc, legs=tuple(sorted(self.legs)), expected=self._closing)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(WorkerDied(f"worker {self.pid} exited ({rc})"))
        self._pending.clear()
        if not self.ready.done():
            self.ready.set_exception(WorkerDied(f"worker {self.pid} exited ({rc})"))
            self.ready.exception()
        self.exited.set_result(ex)
        self._deliver(ex)

    def _track(self, ev: P.Event | P.Command) -> None:
        if isinstance(ev, P.Ready):
            self.capacity = ev.capacity
            if not self.ready.done():
                self.ready.set_result(ev)
        elif isinstance(ev, P.Incoming):
            self.legs.add(ev.leg)
        elif isinstance(ev, (P.TransferRequested, P.Replaced)):
            self.legs.add(ev.new_leg)
        elif isinstance(ev, P.Ended):
            self.legs.discard(ev.leg)

    def _deliver(self, ev: Any) -> None:
        self._queue.put_nowait(ev)
        if self._callbacks and not self._consumers and self._queue.qsize() > QUEUE_KEEP:
            # consumed through on_event() callbacks (the pool): the queue only keeps the
            # latest events for a script's next_event(), not every event of a long-lived
            # warm worker's every call (the core's memory grew with each call)
            self._queue.get_nowait()
        for cb in list(self._callbacks):
            try:
                run_if_coroutine(cb(ev))
            except Exception:
                log.exception("event callback")

    def on_event(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` for each event (plain or async function)."""
        self._callbacks.append(callback)

    async def events(self) -> AsyncIterator[Any]:
        """Every event in order; ends after the final :class:`WorkerExited`."""
        self._consumers += 1
        try:
            while True:
                ev = await self._queue.get()
                yield ev
                if isinstance(ev, WorkerExited):
                    return
        finally:
            self._consumers -= 1

    async def next_event(
        self, kind: type | tuple[type, ...] | None = None, timeout: float = 10.0, leg: str | None = None
    ) -> Any:
        """The next event of a kind (others are skipped); handy in tests and scripts."""

        async def get() -> Any:
            while True:
                ev = await self._queue.get()
                if isinstance(ev, WorkerExited) and not (kind and isinstance(ev, kind)):
                    raise WorkerDied(f"worker exited ({ev.returncode}) while waiting")
                if kind is not None and not isinstance(ev, kind):
                    continue
                if leg is not None and getattr(ev, "leg", None) != leg:
                    continue
                return ev

        self._consumers += 1
        try:
            return await asyncio.wait_for(get(), timeout)
        finally:
            self._consumers -= 1

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    async def request(self, name: str | P.CommandName, **fields: Any) -> dict[str, Any]:
        if self.exited.done():
            raise WorkerDied(f"worker {self.pid} is gone")
        cmd = P.command(name, next(self._ids), **fields)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("worker %s <- %s", self.pid, P.redact(cmd))
        fut: asyncio.Future[P.Reply] = asyncio.get_running_loop().create_future()
        self._pending[cmd.id] = fut
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(P.encode(cmd))
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(cmd.id, None)
            raise WorkerDied(f"worker {self.pid}: {exc}") from None
        try:
            reply = await asyncio.wait_for(fut, self.command_timeout)
        except TimeoutError:
            self._pending.pop(cmd.id, None)
            raise WorkerError(f"worker {self.pid}: no reply to {cmd.name.value}") from None
        if not reply.ok:
            raise CommandFailed(reply.error or "error")
        return reply.result

    # ------------------------------------------------------------ commands
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
        """Place an outgoing leg. ``auth``: digest credentials the worker answers a 401/407
        on this leg with (a trunk's provider), e.g. from ``TrunkService.leg_auth``."""
        self.legs.add(leg_id)
        try:
            res = await self.request(
                "originate",
                leg_id=leg_id,
                uri=uri,
                from_uri=from_uri,
                headers=dict(headers or {}),
                auth=dict(auth) if auth else None,
            )
        except WorkerError:
            self.legs.discard(leg_id)
            raise
        return _reply_str(res, "leg", "originate")

    async def play(self, leg: str, file: str | os.PathLike[str], loop: bool = False) -> None:
        await self.request("play", leg=leg, file=os.fspath(file), loop=loop)

    async def stop_play(self, leg: str) -> None:
        await self.request("stop_play", leg=leg)

    async def record(self, legs: list[str], path_prefix: str | os.PathLike[str]) -> dict[str, str]:
        res = await self.request("record", legs=list(legs), path_prefix=os.fspath(path_prefix))
        return _reply_files(res, "record")

    async def stop_record(self, legs: list[str] | None = None) -> dict[str, str]:
        res = await self.request("stop_record", legs=None if legs is None else list(legs))
        return _reply_files(res, "stop_record")

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        await self.request("bridge", leg_a=leg_a, leg_b=leg_b)

    async def unbridge(self, leg_a: str, leg_b: str) -> None:
        await self.request("unbridge", leg_a=leg_a, leg_b=leg_b)

    async def send_dtmf(self, leg: str, digits: str) -> None:
        await self.request("send_dtmf", leg=leg, digits=digits)

    async def ping(self, timeout: float | None = None) -> dict[str, Any]:
        if timeout is None:
            return await self.request("ping")
        return await asyncio.wait_for(self.request("ping"), timeout)

    async def shutdown(self, timeout: float = 5.0) -> int | None:
        """Ask the worker to exit cleanly; SIGKILL it if it does not within ``timeout``."""
        self._closing = True
        if self.exited.done():
            return self.exited.result().returncode
        try:
            await asyncio.wait_for(self.request("shutdown"), timeout)
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except (TimeoutError, WorkerError):
            self.kill()
            await asyncio.shield(self.exited)
        return self.exited.result().returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
