"""Call sessions: the B2BUA flow between the front door, the media workers and the books.

The front door (``sip/``) proxies a phone's authenticated INVITE to a media worker it
reserved for the call (:meth:`CallManager.route`); the worker reports ``incoming`` and
the session takes over: it writes the call record, originates the callee leg back
through the front door (which forks it to every registered device of the extension),
relays ringing, answers the caller when the callee answers, bridges the two legs and
records both parties, and on hang-up closes the record with exactly one disposition and
turns the two party files into one stereo WAV with a JSON sidecar.

Every session runs as one task fed by a queue of worker events, so a call's steps never
interleave; sessions are tracked in a TaskGroup owned by :meth:`CallManager.run`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from media import protocol as P
from media.client import WorkerClient, WorkerError, WorkerExited
from media.pool import MediaPool, WorkerLost
from media.recording import RecordingInfo, merge_stereo, repair_dir
from pypbx.calllog import CallLog, CallRecord, Direction, Disposition, disposition_for_status
from pypbx.db import Database
from sip.message import Request, URI
from sip.proxy import RouteDecision
from sip.transaction import Addr

log = logging.getLogger(__name__)

#: How long a worker reserved by the front door may wait for its INVITE.
RESERVATION_TIMEOUT = 15.0


@dataclass
class Session:
    worker: WorkerClient
    reserved_at: float
    caller: str = ""
    callee: str = ""
    rec: CallRecord | None = None
    caller_leg: str | None = None
    callee_leg: str | None = None
    answered: bool = False
    ended: bool = False
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    files: dict[str, str] = field(default_factory=dict)
    record_prefix: Path | None = None
    ring_deadline: float | None = None


def _user(uri_text: str) -> str:
    text = uri_text.strip()
    if "<" in text:
        text = text[text.index("<") + 1:text.index(">")] if ">" in text else text[text.index("<") + 1:]
    try:
        return URI.parse(text).user or ""
    except Exception:
        return ""


class CallManager:
    """Owns the call sessions of one running PBX."""

    def __init__(self, *, pool: MediaPool, calllog: CallLog, db: Database, data_dir: Path,
                 front_door: str, is_extension: Callable[[str], bool],
                 is_registered: Callable[[str], bool], ring_time: float = 60.0,
                 record: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.calllog = calllog
        self.db = db
        self.rec_dir = Path(data_dir) / "recordings"
        self.front_door = front_door          # "127.0.0.1:5060": where workers send calls
        self.is_extension = is_extension
        self.is_registered = is_registered
        self.ring_time = ring_time
        self.record = record
        self.clock = clock
        self.sessions: dict[WorkerClient, Session] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = False
        pool.on_event(self._on_pool_event)

    # -- the front door's routing seam -------------------------------------------------
    def route(self, request: Request, source: Addr, user: str | None) -> RouteDecision:
        """Phones' calls: anchor them in a worker. Worker-originated legs: the extension."""
        if self._stopping:
            return RouteDecision.reject(503, "Service Unavailable - shutting down", [("Retry-After", "30")])
        if self.is_worker(source):
            return self._route_to_extension(request)
        if request.method != "INVITE":
            return self._route_to_extension(request)
        w = self.pool.try_acquire()
        if w is None:
            log.warning("no media worker free for a call from %s", user)
            return RouteDecision.reject(503, "Service Unavailable - no media worker", [("Retry-After", "5")])
        self.sessions[w] = Session(worker=w, reserved_at=self.clock())
        self._spawn(self._session(self.sessions[w]))
        target = request.uri.user or ""
        return RouteDecision.fork([(f"sip:{target}@127.0.0.1:{w.sip_port}",
                                    Addr("UDP", "127.0.0.1", w.sip_port))])

    def is_worker(self, source: Addr) -> bool:
        return source.host == "127.0.0.1" and self.pool.owns_port(source.port)

    def _route_to_extension(self, request: Request) -> RouteDecision:
        raise NotImplementedError  # replaced by the app with the proxy's ExtensionRouter

    # -- events ----------------------------------------------------------------------
    def _on_pool_event(self, worker: WorkerClient | None, ev: Any) -> None:
        if worker is None:
            return
        s = self.sessions.get(worker)
        if s is None:
            if isinstance(ev, P.Incoming):
                log.warning("worker %s got a call nobody reserved it for: hanging up", worker.pid)
                self._spawn(self._hangup_quietly(worker, ev.leg, 480))
            return
        s.queue.put_nowait(ev)

    async def _hangup_quietly(self, w: WorkerClient, leg: str, code: int | None) -> None:
        try:
            await w.hangup(leg, code)
        except WorkerError:
            pass

    def _spawn(self, coro: Any) -> None:
        if self._tg is None:
            raise RuntimeError("CallManager is not running")
        self._tg.create_task(coro)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            await stop.wait()
            await self.drain()
        self._tg = None

    async def drain(self, timeout: float = 10.0) -> None:
        """SIGTERM: refuse new calls, let calls in progress finish (up to ``timeout``),
        then hang up the rest so every record is closed."""
        self._stopping = True
        deadline = self.clock() + timeout
        while any(s.rec is not None and not s.ended for s in self.sessions.values()) and self.clock() < deadline:
            await asyncio.sleep(0.1)
        for s in list(self.sessions.values()):
            s.queue.put_nowait(_Shutdown())

    # -- one call --------------------------------------------------------------------
    async def _session(self, s: Session) -> None:
        w = s.worker
        try:
            while not s.ended:
                timeout = RESERVATION_TIMEOUT if s.rec is None else (
                    None if s.ring_deadline is None else max(0.0, s.ring_deadline - self.clock()))
                try:
                    ev = await asyncio.wait_for(s.queue.get(), timeout)
                except asyncio.TimeoutError:
                    if s.rec is None:
                        log.info("worker %s reserved but no INVITE arrived: released", w.pid)
                        break
                    await self._ring_timeout(s)
                    continue
                await self._handle(s, ev)
        except Exception:
            log.exception("call session on worker %s failed", w.pid)
            if s.rec is not None and not s.rec.disposition.final:
                await self._finish(s, Disposition.FAILED, side="system", cause="internal error")
        finally:
            self.sessions.pop(w, None)
            try:
                await self.pool.release(w)
            except Exception:
                log.exception("releasing worker %s", w.pid)

    async def _handle(self, s: Session, ev: Any) -> None:
        w = s.worker
        if isinstance(ev, _Shutdown):
            if s.rec is not None and not s.ended:
                for leg in (s.callee_leg, s.caller_leg):
                    if leg:
                        await self._hangup_quietly(w, leg, None if s.answered else 503)
                disp = Disposition.ANSWERED if s.answered else Disposition.INTERRUPTED
                await self._finish(s, disp, side="system", cause="pbx shutting down")
            s.ended = True
        elif isinstance(ev, P.Incoming):
            await self._incoming(s, ev)
        elif isinstance(ev, P.Ringing) and ev.leg == s.callee_leg:
            await w.answer(s.caller_leg, 180)
            await self.calllog.event(s.rec, "ringing", callee=s.callee)
        elif isinstance(ev, P.Answered):
            if ev.leg == s.callee_leg and not s.answered:
                s.answered = True
                s.ring_deadline = None
                await w.answer(s.caller_leg, 200)
            elif ev.leg == s.caller_leg and s.answered:
                await self._connect(s)
        elif isinstance(ev, P.Dtmf):
            await self.calllog.event(s.rec, "dtmf", leg="caller" if ev.leg == s.caller_leg else "callee",
                                     digit=ev.digit)
        elif isinstance(ev, P.Ended):
            await self._ended(s, ev)
        elif isinstance(ev, (WorkerLost, WorkerExited)):
            await self._worker_lost(s, ev)

    async def _incoming(self, s: Session, ev: P.Incoming) -> None:
        s.caller = _user(ev.from_uri)
        s.callee = _user(ev.to_uri)
        s.caller_leg = ev.leg
        s.rec = await self.calllog.offer(direction=Direction.INTERNAL, caller_number=s.caller,
                                         callee_number=s.callee, sip_call_id=ev.call_id,
                                         extension=s.callee, worker=str(s.worker.pid))
        log.info("call %s: %s -> %s", s.rec.id[:12], s.caller, s.callee)
        if not self.is_extension(s.callee):
            await s.worker.hangup(s.caller_leg, 404)
            await self._finish(s, Disposition.NOT_FOUND, side="system", cause="404 unknown number")
            return
        if not self.is_registered(s.callee):
            await s.worker.hangup(s.caller_leg, 480)
            await self._finish(s, Disposition.UNAVAILABLE, side="system", cause="480 not registered")
            return
        s.callee_leg = "callee"
        s.ring_deadline = self.clock() + self.ring_time
        caller_display = f"sip:{s.caller}@{self.front_door.split(':')[0]}"
        await s.worker.originate(s.callee_leg, f"sip:{s.callee}@{self.front_door}", from_uri=caller_display,
                                 headers={"X-PBX-Call": s.rec.id})

    async def _connect(self, s: Session) -> None:
        w = s.worker
        assert s.rec is not None and s.caller_leg and s.callee_leg
        await w.bridge(s.caller_leg, s.callee_leg)
        await self.calllog.answered(s.rec, callee=s.callee)
        if self.record:
            day = time.strftime("%Y-%m-%d", time.localtime(s.rec.offered_at))
            folder = self.rec_dir / day
            try:
                folder.mkdir(parents=True, exist_ok=True)
                s.record_prefix = folder / s.rec.id
                s.files = await w.record([s.caller_leg, s.callee_leg], s.record_prefix)
                await self.calllog.event(s.rec, "recording_started", files=list(s.files.values()))
            except (OSError, WorkerError) as exc:
                # a full disk or a recorder failure stops the recording, never the call
                s.rec.flags.add("recording_failed")
                await self.calllog.update(s.rec, "recording_failed", error=str(exc))
                log.error("call %s: recording failed: %s", s.rec.id[:12], exc)

    async def _ring_timeout(self, s: Session) -> None:
        s.ring_deadline = None
        if s.callee_leg:
            await self._hangup_quietly(s.worker, s.callee_leg, None)
        await self._hangup_quietly(s.worker, s.caller_leg, 480)
        await self._finish(s, Disposition.NO_ANSWER, side="system", cause=f"no answer in {self.ring_time:g} s")

    async def _ended(self, s: Session, ev: P.Ended) -> None:
        w = s.worker
        if s.rec is None or s.ended:
            return
        if not s.answered:
            if ev.leg == s.caller_leg:
                if s.callee_leg:
                    await self._hangup_quietly(w, s.callee_leg, None)
                await self._finish(s, Disposition.ABANDONED_RINGING, side="caller",
                                   cause=f"{ev.cause_code} {ev.reason}".strip())
            elif ev.leg == s.callee_leg:
                code = ev.cause_code or 480
                relay = code if 400 <= code < 700 and code != 487 else 480
                await self._hangup_quietly(w, s.caller_leg, relay)
                await self._finish(s, disposition_for_status(code if code != 487 else 480), side="callee",
                                   cause=f"{code} {ev.reason}".strip())
            return
        other = s.callee_leg if ev.leg == s.caller_leg else s.caller_leg
        side = "caller" if ev.leg == s.caller_leg else "callee"
        if other:
            await self._hangup_quietly(w, other, None)
        await self._finish(s, Disposition.ANSWERED, side=side, cause="BYE")

    async def _worker_lost(self, s: Session, ev: Any) -> None:
        if s.rec is not None and not s.ended:
            s.rec.flags.add("worker_lost")
            await self._finish(s, Disposition.FAILED if not s.answered else Disposition.INTERRUPTED,
                               side="system", cause=f"media worker lost: {getattr(ev, 'reason', 'exited')}",
                               stop_recording=False)
            if s.record_prefix is not None:
                repaired = await asyncio.to_thread(repair_dir, s.record_prefix.parent)
                await self.calllog.event(s.rec, "recording_repaired", files=[str(r) for r in repaired or []])
        s.ended = True

    async def _finish(self, s: Session, disposition: Disposition, *, side: str, cause: str,
                      stop_recording: bool = True) -> None:
        assert s.rec is not None
        s.ended = True
        await self.calllog.end(s.rec, disposition, side=side, cause=cause)
        log.info("call %s ended: %s (%s hung up: %s)", s.rec.id[:12], disposition.value, side, cause)
        if s.files and stop_recording:
            await self._close_recording(s)

    async def _close_recording(self, s: Session) -> None:
        w = s.worker
        assert s.rec is not None and s.record_prefix is not None
        try:
            files = await w.stop_record()
            s.files.update(files or {})
        except WorkerError:
            pass
        await self._await_recorders(s)
        caller_file = s.files.get(s.caller_leg or "")
        callee_file = s.files.get(s.callee_leg or "")
        out = s.record_prefix.with_suffix(".wav")
        try:
            info = await asyncio.to_thread(merge_stereo, caller_file, callee_file, out, remove_sources=True)
        except Exception as exc:
            s.rec.flags.add("recording_failed")
            await self.calllog.update(s.rec, "recording_failed", error=str(exc))
            await self.db.upsert_recording({"call_id": s.rec.id, "path": str(out), "status": "failed",
                                            "created_at": self.clock(), "detail": json.dumps({"error": str(exc)})})
            log.error("call %s: merging the recording failed: %s", s.rec.id[:12], exc)
            return
        meta = self._metadata(s, info, out)
        sidecar = out.with_suffix(".json")
        tmp = sidecar.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.chmod(tmp, 0o640)
        os.replace(tmp, sidecar)
        await self.db.upsert_recording({
            "call_id": s.rec.id, "path": str(out), "status": "complete", "seconds": info.duration,
            "sample_rate": info.samplerate, "channels": 2, "sha256": info.sha256, "bytes": info.size,
            "created_at": self.clock(),
            "detail": json.dumps({"sidecar": str(sidecar)})})
        await self.calllog.event(s.rec, "recording_saved", path=str(out), seconds=info.duration)

    async def _await_recorders(self, s: Session, timeout: float = 3.0) -> None:
        """The worker flushes a recorder shortly after it is released (record_stopped)."""
        want = {p for p in s.files.values() if p}
        deadline = self.clock() + timeout
        while want and self.clock() < deadline:
            try:
                ev = await asyncio.wait_for(s.queue.get(), max(0.0, deadline - self.clock()))
            except asyncio.TimeoutError:
                break
            if isinstance(ev, P.RecordStopped):
                want.discard(ev.path)

    def _metadata(self, s: Session, info: RecordingInfo, out: Path) -> dict[str, Any]:
        rec = s.rec
        assert rec is not None
        return {
            "call_id": rec.id, "sip_call_id": rec.sip_call_id, "direction": rec.direction.value,
            "caller": {"number": rec.caller_number, "name": rec.caller_name, "channel": "left"},
            "callee": {"number": rec.callee_number, "name": rec.callee_name, "channel": "right"},
            "extension": rec.extension, "queue": rec.queue, "agent": rec.agent, "did": rec.did,
            "offered_at": rec.offered_at, "answered_at": rec.answered_at, "ended_at": rec.ended_at,
            "ring_seconds": rec.ring_seconds, "talk_seconds": rec.talk_seconds,
            "hangup_side": rec.hangup_side, "hangup_cause": rec.hangup_cause,
            "disposition": rec.disposition.value, "flags": sorted(rec.flags),
            "recording": {"path": str(out), "seconds": round(info.duration, 3), "sample_rate": info.samplerate,
                          "sha256": info.sha256, "channels": 2, "bytes": info.size,
                          "caller_frames": info.left_frames, "callee_frames": info.right_frames},
        }

    def active_call_ids(self) -> list[str]:
        return sorted(s.rec.id for s in self.sessions.values() if s.rec is not None and not s.ended)

    def status(self) -> list[dict[str, Any]]:
        out = []
        for s in self.sessions.values():
            if s.rec is None or s.ended:
                continue
            out.append({"id": s.rec.id, "caller": s.caller, "callee": s.callee,
                        "state": "talking" if s.answered else "ringing",
                        "since": s.rec.answered_at or s.rec.offered_at, "worker": s.worker.pid})
        return out


class _Shutdown:
    """Queued into every session when the PBX stops."""
