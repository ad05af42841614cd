"""The owner of every call: the B2BUA between the front door, the media workers and the books.

The front door (``sip/``) proxies a phone's authenticated INVITE to a media worker it
reserved for the call (:meth:`CallManager.route`); the worker reports ``incoming`` and
the session takes over: it writes the call record, originates the callee leg back
through the front door (which forks it to every registered device of the extension),
relays ringing, answers the caller when the callee answers, bridges the two legs and
records both parties, and on hang-up closes the record with exactly one disposition and
turns the two party files into one stereo WAV with a JSON sidecar.

Every call runs as one task (:meth:`CallManager.run_call`) fed by its queue of inputs
(:data:`pypbx.call.CallInput`: worker events, timers, shutdown, ACD orders), so a call's
steps never interleave; calls are tracked in a TaskGroup owned by :meth:`CallManager.run`.
A flow that took the call over (:meth:`CallManager.hand_over`: a queue call, an IVR menu,
voicemail...) gets those inputs instead of the manager's own two-party logic, and acts on
the call only through the public call-control API below (``answer``, ``originate``,
``play``, ``connect``, ``hangup``, ``finish``...); :meth:`CallManager.hand_back` returns
an answered call to the manager (hold, transfers, hang-up, recording).

Hold, music on hold and transfers (desk phones' own buttons):

* **Hold**: a phone's re-INVITE with a=sendonly / a=inactive / c=0.0.0.0 reaches the worker,
  which reports ``held(leg)``; the session unbridges the two parties and plays music on
  hold (looped) to the *other* party until ``unheld(leg)``, then stops it and re-bridges
  (``CallManager._rewire`` derives bridge and MOH from the call's state). Recorders
  keep running: hold time is part of the recording; ``held``/``unheld`` call events.
* **Blind transfer** (REFER, Refer-To without Replaces): pjsua2 cannot accept a REFER without
  placing the new call itself, so the worker accepts it (202; pjsua NOTIFYs the transferor
  as the new call progresses), names the new call ``xfer-<n>`` and reports
  ``transfer_requested(leg, target, replaces, new_leg)``. The new call goes through the
  front door like any worker-originated leg (to the target extension's devices). The
  session plays MOH to the remaining party; when ``new_leg`` answers it bridges remaining
  party and new leg, hangs up the transferor's leg (if the phone has not already), and the
  new leg takes the transferor's place (its channel in the recording, ``s.caller``/
  ``s.callee``; the record's ``extension``/``agent`` move to the new party when the callee
  side changes). If the new leg fails, the remaining party goes back to the transferor, or
  is hung up if the transferor already left. Event ``transferred`` with from/to and the
  ``transfers`` trail; the disposition stays ``answered``.
* **Attended transfer** (REFER with ``Replaces=<call-id of the consultation call>``): the two
  calls live in two workers W1 (REFER received) and W2 (consultation). W1's pjsua places
  the new call with the Replaces header; :meth:`CallManager.route` sees a worker's INVITE
  carrying Replaces whose Call-ID belongs to another session (the core knows every leg's
  Call-ID as the phones see it: ``incoming.call_id``, ``answered.call_id``) and routes it
  to *that* worker's loopback SIP port instead of an extension. W2's pjsua answers it and
  hangs up the transferor's consultation leg (``replaced(leg, new_leg)``); W2's session
  closes the consultation call's record (answered, cause "attended transfer", its own
  recording) and stays up as a *relay*: it bridges its remaining party with the new leg and
  hangs up the rest when either ends. W1 completes like a blind transfer: its remaining
  party is bridged with the leg to W2. Audio: phone A - W1 - (RTP on loopback) - W2 - phone C;
  the W1 call record and recording follow the joined call to its end.
* **Recording across a transfer**: one stereo file per call. The remaining party's recorder
  keeps running; the transferor's channel continues with a new recorder for the new leg,
  placed at its offset from the start of the recording (core clock, within ~one 20 ms frame);
  the channel's segments are spliced with silence between them before the stereo merge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import ParamSpec, TypedDict, cast

import numpy as np

from media import protocol as P
from media.client import CommandFailed, WorkerClient, WorkerError, WorkerExited
from media.pool import MediaPool, WorkerLost
from media.recording import (
    RecordingInfo,
    _read_mono,
    merge_stereo,
    repair_files,
    write_atomic,
)
from pypbx import screenpop, sitetime
from pypbx.call.flow import CallInput, Flow, Shutdown
from pypbx.call.hooks import AcdHooks, FrontLineHooks, GroupHooks, TrunkHooks
from pypbx.call.session import Call, Transfer, TransferEntry, TransferKind, user_of
from pypbx.calllog import (
    CallExtras,
    CallLog,
    Direction,
    Disposition,
    disposition_for_status,
)
from pypbx.db import Database
from pypbx.errors import PbxError
from pypbx.logs import call_log
from pypbx.recordings import completeness, disk_ok, keep_parts, leftover_party_files
from sip.message import Request
from sip.proxy import RouteDecision
from sip.transaction import Addr

log = logging.getLogger(__name__)


class NoMediaWorker(PbxError):
    """A call the PBX places itself found every media worker busy."""

    def __init__(self) -> None:
        super().__init__("all media workers busy")


_Args = ParamSpec("_Args")


class CallStatus(TypedDict):
    """A live call as the local API's ``calls`` reply shows it."""

    id: str
    caller: str
    callee: str
    state: str
    since: float
    worker: int


#: How long a worker reserved by the front door may wait for its INVITE.
RESERVATION_TIMEOUT = 15.0
#: seconds the legs of a call the PBX ends (CallManager.end_call) get to report their end
END_GRACE = 3.0
#: Music on hold shipped with pypbx (replaceable with ``pypbx prompts import``).
DEFAULT_MOH = Path(__file__).resolve().parents[2] / "ivr_prompts" / "moh" / "default.wav"


class CallManager:
    """Owns the call sessions of one running PBX."""

    def __init__(
        self,
        *,
        pool: MediaPool,
        calllog: CallLog,
        db: Database,
        data_dir: Path,
        front_door: str,
        is_extension: Callable[[str], bool],
        is_registered: Callable[[str], bool],
        ring_time: float = 60.0,
        record: bool = True,
        clock: Callable[[], float] = time.time,
        moh: Path | str | None = None,
        min_free_mb: int = 200,
        max_duration: float = 0.0,
    ) -> None:
        self.pool = pool
        self.calllog = calllog
        self.db = db
        self.rec_dir = Path(data_dir) / "recordings"
        self.min_free_mb = min_free_mb
        self.max_duration = max_duration  # seconds from offer (0: no limit)
        self.front_door = front_door  # "127.0.0.1:5060": where workers send calls
        self.is_extension = is_extension
        self.is_registered = is_registered
        self.ring_time = ring_time
        self.record = record
        self.clock = clock
        self.moh = Path(moh) if moh else DEFAULT_MOH
        self._starting: dict[int, float] = {}  # SIP ports of workers started for a call
        self.sessions: dict[WorkerClient, Call] = {}
        self.acd: AcdHooks | None = None  # pypbx.acdlive.AcdLive, set by the app
        self.trunks: TrunkHooks | None = None  # pypbx.trunks.TrunkRouter, set by the app
        self.frontline: FrontLineHooks | None = None  # pypbx.frontline.FrontLine (IVR, voicemail, survey, callers)
        self.groups: GroupHooks | None = None  # pypbx.groups.GroupService (ring groups' ring legs)
        #: where a call to an extension goes (the proxy's ExtensionRouter), set by the app
        self.route_to_extension: Callable[[Request], RouteDecision] = self._no_extension_router
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = False
        pool.on_event(self._on_pool_event)

    # -- the front door's routing seam -------------------------------------------------
    def route(self, request: Request, source: Addr, user: str | None) -> RouteDecision:
        """Phones' calls: anchor them in a worker. Worker-originated legs: the extension."""
        if self._stopping:
            return RouteDecision.reject(503, "Service Unavailable - shutting down", [("Retry-After", "30")])
        if self.is_worker(source):
            if self.trunks is not None:
                out = self.trunks.route_worker_leg(request)  # an outside call's trunk leg
                if out is not None:
                    return out
            joined = self._route_replaces(request, source)
            if joined is not None:
                return joined
            if self.acd is not None:
                ring = self.acd.route(request)  # a queue call's ring leg: the agents' phones
                if ring is not None:
                    return ring
            if self.groups is not None:
                ring = self.groups.route(request)  # a ring group's leg: the members' phones
                if ring is not None:
                    return ring
            return self._route_to_extension(request)
        if request.method != "INVITE":
            return self._route_to_extension(request)
        target = request.uri.user or ""
        marks: tuple[tuple[str, str], ...] = ()
        if self.trunks is not None:
            screened = self.trunks.screen(request, source, user)  # DID / outside-call checks
            if isinstance(screened, RouteDecision):
                return screened
            marks = screened
        w = self.pool.try_acquire()
        if w is not None:
            port = w.sip_port
            self.sessions[w] = Call(worker=w, reserved_at=self.clock())
            self.spawn(self.run_call(self.sessions[w]))
        else:
            # No warm worker: start one for this call and send the INVITE to its port now;
            # the INVITE's retransmission (500 ms) reaches it once it is up.
            soon = self.pool.acquire_soon()
            if soon is None:
                log.warning("all media workers busy: call from %s refused", user)
                return RouteDecision.reject(503, "Service Unavailable - all lines busy", [("Retry-After", "5")])
            port, fut = soon
            self._starting[port] = self.clock()
            self.spawn(self._adopt(fut))
        return RouteDecision.fork([(f"sip:{target}@127.0.0.1:{port}", Addr("UDP", "127.0.0.1", port))], headers=marks)

    async def _adopt(self, fut: asyncio.Future[WorkerClient]) -> None:
        try:
            w = await fut
        except Exception as exc:
            log.error("could not start a media worker for a call: %s", exc)
            return
        if self._starting.pop(w.sip_port, None) is None:
            return  # its first event already opened the session (_on_pool_event)
        self.sessions[w] = Call(worker=w, reserved_at=self.clock())
        await self.run_call(self.sessions[w])

    def _route_replaces(self, request: Request, source: Addr) -> RouteDecision | None:
        """Attended transfer: a worker's INVITE whose Replaces names a dialog anchored in
        another session's worker goes to that worker (worker -> worker through the front
        door), which replaces the transferor's leg with it."""
        if request.method != "INVITE":
            return None
        rep = request.headers.get("Replaces")
        if not rep:
            return None
        owner = self.session_by_call_id(str(rep).split(";")[0].strip())
        if owner is None or owner.worker.sip_port == source.port:
            return None
        owner.joined_from = next((s for s in self.sessions.values() if s.worker.sip_port == source.port), None)
        port = owner.worker.sip_port
        log.info("attended transfer: INVITE/Replaces from worker :%d joined to worker :%d", source.port, port)
        return RouteDecision.fork(
            [(f"sip:{request.uri.user or 'xfer'}@127.0.0.1:{port}", Addr("UDP", "127.0.0.1", port))]
        )

    async def place(self, make_flow: Callable[[Call], Flow], *, what: str = "call") -> object:
        """A call the PBX places itself (click-to-call, a callback): a media worker of its
        own, a :class:`Call` owned here, handed to the flow ``make_flow(call)`` makes for it
        and started; from then on it runs like every call. Returns what ``flow.start()``
        returned. :class:`NoMediaWorker` when every worker is busy; if the start fails, the
        record (if any) is closed as failed, the worker released, and the error raised."""
        w = self.pool.try_acquire()
        if w is None:
            raise NoMediaWorker()
        s = self.sessions[w] = Call(worker=w, reserved_at=self.clock())
        flow = make_flow(s)
        self.hand_over(s, flow)
        try:
            started = await flow.start()
        except BaseException:
            self.sessions.pop(w, None)
            if s.rec is not None and not s.ended:
                await self.finish(s, Disposition.FAILED, side="system", cause=f"{what} failed to start")
            await self.pool.release(w)
            raise
        self.spawn(self.run_call(s))
        return started

    def session_by_call_id(self, call_id: str) -> Call | None:
        """The live session one of whose legs is the phones' dialog ``call_id``."""
        for s in self.sessions.values():
            if not s.ended and call_id in s.call_ids.values():
                leg = next(lg for lg, c in s.call_ids.items() if c == call_id)
                if leg not in s.dropped:
                    return s
        return None

    def is_worker(self, source: Addr) -> bool:
        return source.host == "127.0.0.1" and self.pool.owns_port(source.port)

    def _route_to_extension(self, request: Request) -> RouteDecision:
        return self.route_to_extension(request)

    def _no_extension_router(self, request: Request) -> RouteDecision:
        raise NotImplementedError("CallManager.route_to_extension is set by the app (the proxy's ExtensionRouter)")

    # -- events ----------------------------------------------------------------------
    def _on_pool_event(self, worker: WorkerClient | None, ev: object) -> None:
        """A worker's event (:mod:`media.protocol`) or its loss (WorkerLost / WorkerExited):
        into the queue of the call it anchors."""
        if worker is None:
            return
        s = self.sessions.get(worker)
        if s is None and self._starting.pop(worker.sip_port, None) is not None:
            # A worker started for a call can report the INVITE before _adopt runs.
            s = self.sessions[worker] = Call(worker=worker, reserved_at=self.clock())
            self.spawn(self.run_call(s))
        if s is None:
            if isinstance(ev, P.Incoming):
                log.warning("worker %s got a call nobody reserved it for: hanging up", worker.pid)
                self.spawn(self._hangup_worker(worker, ev.leg, 480))
            return
        s.queue.put_nowait(cast(CallInput, ev))

    # -- who drives a call ----------------------------------------------------------
    def hand_over(self, call: Call, flow: Flow) -> None:
        """``flow`` drives ``call`` from now on: every input of the call goes to
        ``flow.handle``. The only place a call changes hands (with :meth:`hand_back`)."""
        call._flow = flow

    def hand_back(self, call: Call) -> None:
        """The call goes back to the manager's own two-party logic (an ordinary call:
        hold, transfers, hang-up, recording)."""
        call._flow = None

    # -- call control: the public API flows act through ------------------------------
    async def answer(self, call: Call, leg: str | None, code: int = 200) -> None:
        """Answer (``code`` 200) or send a provisional response (1xx) on an incoming leg."""
        await call.worker.answer(leg, code)  # type: ignore[arg-type]  # None: refused by the worker

    async def originate(
        self,
        call: Call,
        leg: str,
        uri: str,
        *,
        from_uri: str | None = None,
        headers: dict[str, str] | None = None,
        auth: dict[str, str] | None = None,
    ) -> None:
        """Place a new leg ``leg`` of the call to ``uri`` (through the front door)."""
        await call.worker.originate(leg, uri, from_uri=from_uri, headers=headers, auth=auth)

    async def play(
        self, call: Call, leg: str | None, file: str | os.PathLike[str], *, loop: bool = False, quiet: bool = False
    ) -> bool:
        """Play a WAV file to ``leg``. ``quiet``: a failure (e.g. a leg that just ended) is
        logged and returns False instead of raising."""
        # a None leg (a flow's leg that is gone) is sent as is: the worker refuses it (False when quiet)
        return await self._command(call, quiet, "play", call.worker.play, leg, file, loop=loop)  # type: ignore[arg-type]

    async def stop_play(self, call: Call, leg: str | None, *, quiet: bool = False) -> bool:
        # a None leg: refused by the worker, as in play
        return await self._command(call, quiet, "stop_play", call.worker.stop_play, leg)  # type: ignore[arg-type]

    async def bridge(self, call: Call, a: str, b: str, *, quiet: bool = False) -> bool:
        """Audio both ways between legs ``a`` and ``b`` (see :meth:`connect` for a call's
        two parties)."""
        return await self._command(call, quiet, "bridge", call.worker.bridge, a, b)

    async def unbridge(self, call: Call, a: str, b: str, *, quiet: bool = False) -> bool:
        return await self._command(call, quiet, "unbridge", call.worker.unbridge, a, b)

    async def record_legs(self, call: Call, legs: list[str], prefix: str | os.PathLike[str]) -> dict[str, str]:
        """One mono recorder per leg: ``<prefix>-<leg>.wav``; returns ``{leg: path}``."""
        return await call.worker.record(legs, prefix)

    async def stop_record(self, call: Call, legs: list[str] | None = None, *, quiet: bool = False) -> bool:
        return await self._command(call, quiet, "stop_record", call.worker.stop_record, legs)

    async def send_dtmf(self, call: Call, leg: str, digits: str) -> None:
        await call.worker.send_dtmf(leg, digits)

    async def hangup(self, call: Call, leg: str | None, code: int | None = None) -> None:
        """Hang up ``leg`` (``code``: the final response before answer; None: 603 / BYE);
        a leg already gone is no error."""
        await self._hangup_worker(call.worker, leg, code)

    async def hold(self, call: Call, leg: str) -> None:
        """``leg``'s party holds the call: unbridge, music on hold to the other party."""
        await self._hold_changed(call, leg, True)

    async def unhold(self, call: Call, leg: str) -> None:
        await self._hold_changed(call, leg, False)

    async def event(self, call: Call, kind: str, **detail: object) -> None:
        """One event in the call's record (``calls events``)."""
        await self.calllog.event(call.record, kind, **detail)

    async def _hangup_worker(self, w: WorkerClient, leg: str | None, code: int | None) -> None:
        try:
            await w.hangup(leg, code)  # type: ignore[arg-type]  # None: refused by the worker, quietly
        except WorkerError:
            pass

    async def _command(
        self,
        call: Call,
        quiet: bool,
        name: str,
        fn: Callable[_Args, Coroutine[object, object, object]],
        *args: _Args.args,
        **kw: _Args.kwargs,
    ) -> bool:
        if not quiet:
            await fn(*args, **kw)
            return True
        try:
            await fn(*args, **kw)
            return True
        except WorkerError as exc:
            log.info("worker %s: %s%s failed: %s", call.worker.pid, name, args, exc)
            return False

    def spawn(self, coro: Coroutine[object, object, object]) -> None:
        """Run ``coro`` as a task tracked by the manager (cancelled / awaited at stop)."""
        if self._tg is None:
            raise RuntimeError("CallManager is not running")
        self._tg.create_task(coro)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            monitor = tg.create_task(self._watch_disk(stop))
            await stop.wait()
            await self.drain()
            monitor.cancel()
        self._tg = None

    def _disk_ok(self) -> bool:
        return disk_ok(self.rec_dir, self.min_free_mb)

    async def _watch_disk(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """A disk that fills up during calls stops their recordings (with an event and a
        flag on each call), never the calls; what was recorded so far is kept."""
        while not stop.is_set():
            await asyncio.sleep(interval)
            if self._disk_ok():
                continue
            for s in list(self.sessions.values()):
                if s.files and not s.ended and s.rec is not None and "disk_full" not in s.rec.flags:
                    s.rec.flags.add("disk_full")
                    try:
                        await s.worker.stop_record()
                    except WorkerError:
                        pass
                    await self.calllog.update(
                        s.rec, "recording_stopped", reason="disk full", min_free_mb=self.min_free_mb
                    )
                    call_log(log, s).error("recording stopped: less than %d MB free", self.min_free_mb)

    async def drain(self, timeout: float = 10.0) -> None:
        """SIGTERM: refuse new calls, let calls in progress finish (up to ``timeout``),
        then hang up the rest so every record is closed."""
        self._stopping = True
        deadline = self.clock() + timeout
        while any(s.rec is not None and not s.ended for s in self.sessions.values()) and self.clock() < deadline:
            await asyncio.sleep(0.1)
        for s in list(self.sessions.values()):
            s.queue.put_nowait(Shutdown())

    # -- one call --------------------------------------------------------------------
    async def run_call(self, s: Call) -> None:
        w = s.worker
        try:
            while not s.ended:
                timeout = RESERVATION_TIMEOUT if s.rec is None else self._next_deadline(s)
                try:
                    ev = await asyncio.wait_for(s.queue.get(), timeout)
                except TimeoutError:
                    if s.rec is None:
                        log.info("worker %s reserved but no INVITE arrived: released", w.pid)
                        break
                    await self._deadline(s)
                    continue
                await self._handle(s, ev)
        except Exception:
            log.exception("call session on worker %s failed", w.pid)
            if s.rec is not None and not s.rec.disposition.final:
                await self.finish(s, Disposition.FAILED, side="system", cause="internal error")
        finally:
            self.sessions.pop(w, None)
            try:
                await self.pool.release(w)
            except Exception:
                log.exception("releasing worker %s", w.pid)

    def _max_end(self, s: Call) -> float | None:
        """When the call reaches ``[calls] max_duration`` (None: no limit / already ending)."""
        if not self.max_duration or s.rec is None or s.end_cause is not None or s.relay:
            return None
        return s.rec.offered_at + self.max_duration

    def _next_deadline(self, s: Call) -> float | None:
        """Seconds until the call's next timer (ring time-out, max duration, forced end)."""
        due = [d for d in (s.ring_deadline, self._max_end(s), s.end_deadline) if d is not None]
        return None if not due else max(0.0, min(due) - self.clock())

    async def _deadline(self, s: Call) -> None:
        now = self.clock()
        if s.end_deadline is not None and now >= s.end_deadline:
            await self._end_now(s)
        elif (end := self._max_end(s)) is not None and now >= end:
            await self.end_call(s, "max duration")
        elif s.ring_deadline is not None:
            await self._ring_timeout(s)

    async def end_call(self, s: Call, cause: str) -> None:
        """The PBX ends the call itself (a vanished phone's RTP timeout, the maximum call
        duration): every leg is hung up and the call is booked with ``cause`` (side
        "system") by whichever step closes it -- the flow or the manager seeing the legs
        end, or :meth:`_end_now` if they do not end within END_GRACE seconds."""
        if s.ended or s.end_cause is not None:
            return
        s.end_cause = cause
        s.end_deadline = self.clock() + END_GRACE
        call_log(log, s).warning("ending the call: %s", cause)
        if s.rec is not None and not s.relay:
            await self.calllog.event(s.rec, "pbx_ending", cause=cause)
        for leg in sorted(s.worker.legs):
            await self.hangup(s, leg, None if s.answered or leg != s.caller_leg else 503)

    async def _end_now(self, s: Call) -> None:
        """The legs of a call the PBX ends did not all report their end: book it now."""
        if s.rec is not None and not s.ended and not s.relay:
            if s.answered:
                disp = Disposition.ANSWERED
            elif s.rec.queue:
                disp = Disposition.ABANDONED_QUEUE
            else:
                disp = Disposition.ABANDONED_RINGING
            await self.finish(s, disp, side="system", cause=s.end_cause or "ended by the pbx")
        s.ended = True

    async def _handle(self, s: Call, ev: CallInput) -> None:
        if isinstance(ev, P.MediaTimeout):
            if ev.leg not in s.dropped and not s.ended:
                call_log(log, s).warning("leg %s: no RTP for %s s", ev.leg, ev.seconds)
                await self.end_call(s, "rtp timeout")
            return
        if isinstance(ev, P.Ended) and s.end_cause is None and _session_expired(ev) and ev.leg not in s.dropped:
            # RFC 4028: the phone stopped refreshing (gone without a BYE): the PBX ended it
            call_log(log, s).warning("leg %s: session timer expired (no refresh)", ev.leg)
            s.end_cause = SESSION_EXPIRED
        if s.flow is not None:
            await s.flow.handle(ev)
            return
        if isinstance(ev, Shutdown):
            if s.relay and not s.ended:
                for leg in (s.callee_leg, s.caller_leg):
                    if leg:
                        await self.hangup(s, leg, None)
            elif s.rec is not None and not s.ended:
                for leg in (s.callee_leg, s.caller_leg):
                    if leg:
                        await self.hangup(s, leg, None if s.answered else 503)
                disp = Disposition.ANSWERED if s.answered else Disposition.INTERRUPTED
                await self.finish(s, disp, side="system", cause="pbx shutting down")
            s.ended = True
        elif isinstance(ev, P.Incoming):
            s.call_ids[ev.leg] = ev.call_id
            await self._incoming(s, ev)
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif isinstance(ev, (P.Held, P.Unheld)):
            await self._hold_changed(s, ev.leg, isinstance(ev, P.Held))
        elif isinstance(ev, P.TransferRequested):
            await self._transfer_requested(s, ev)
        elif isinstance(ev, P.Replaced):
            await self._replaced(s, ev)
        elif isinstance(ev, P.Ringing) and s.xfer is not None and ev.leg == s.xfer.new_leg:
            await self.event(s, "transfer_ringing", to=user_of(s.xfer.target), leg=ev.leg)
        elif isinstance(ev, P.Ringing) and ev.leg == s.callee_leg:
            await self.answer(s, s.caller_leg, 180)
            await self.event(s, "ringing", callee=s.callee)
        elif isinstance(ev, P.Answered):
            if ev.call_id:
                s.call_ids[ev.leg] = ev.call_id
            if s.xfer is not None and ev.leg == s.xfer.new_leg:
                await self._transfer_done(s)
            elif ev.leg in s.pending_replace:
                s.pending_replace.pop(ev.leg)
                await self._rewire(s)
            elif ev.leg == s.callee_leg and not s.answered:
                s.answered = True
                s.ring_deadline = None
                await self.answer(s, s.caller_leg, 200)
            elif ev.leg == s.caller_leg and s.answered:
                await self.connect(s)
        elif isinstance(ev, P.Dtmf):
            await self.event(s, "dtmf", leg=s.side_of(ev.leg), digit=ev.digit)
            if self.frontline is not None:
                await self.frontline.dtmf(s, ev.leg, ev.digit)  # the agent's in-call codes (reasons)
        elif isinstance(ev, P.Ended):
            if s.trunk is not None and self.trunks is not None and await self.trunks.on_ended(self, s, ev):
                return  # failover to the next trunk
            await self._ended(s, ev)
        elif isinstance(ev, (WorkerLost, WorkerExited)):
            await self.worker_lost(s, ev)

    async def _incoming(self, s: Call, ev: P.Incoming) -> None:
        s.caller = user_of(ev.from_uri)
        s.callee = user_of(ev.to_uri)
        s.caller_leg = ev.leg
        extras: CallExtras = {"extension": s.callee}
        direction, callee_number = Direction.INTERNAL, s.callee
        ctx = self.trunks.context(s, ev) if self.trunks is not None else None
        if ctx is not None:  # from a trunk to a DID, or an outside call
            s.trunk, direction, callee_number, extras = ctx
        extras["worker"] = str(s.worker.pid)
        if direction is Direction.INBOUND and self.frontline is not None:
            await self.frontline.ask_crm(s)  # the clinic's system, if any: at most [crm] timeout_ms
            extras["caller_kind"] = await self.frontline.caller_kind(s.caller)  # once, at arrival
        s.rec = await self.calllog.offer(
            direction=direction,
            caller_number=s.caller,
            callee_number=callee_number,
            caller_name="",
            sip_call_id=ev.call_id,
            **extras,
        )
        call_log(log, s).info("%s -> %s", s.caller, s.callee)
        if s.trunk is not None and self.trunks is not None and await self.trunks.start(self, s, ev):
            return
        if self.frontline is not None and await self.frontline.on_incoming(s, ev):
            return  # an IVR menu / mailbox number, *98: pypbx.frontline took it
        if self.acd is not None and await self.acd.on_incoming(s, ev):
            return  # a queue number or a feature code: pypbx.acdlive took it
        if not self.is_extension(s.callee):
            await s.worker.hangup(s.caller_leg, 404)
            await self.finish(s, Disposition.NOT_FOUND, side="system", cause="404 unknown number")
            return
        if not self.is_registered(s.callee):
            if self.frontline is not None and await self.frontline.unanswered(s, "not registered"):
                return  # its mailbox takes the call
            await s.worker.hangup(s.caller_leg, 480)
            await self.finish(s, Disposition.UNAVAILABLE, side="system", cause="480 not registered")
            return
        s.callee_leg = "callee"
        s.ring_deadline = self.clock() + self.ring_time
        caller_display = await screenpop.caller_from(self, s)  # service line + patient's name
        await s.worker.originate(
            s.callee_leg, f"sip:{s.callee}@{self.front_door}", from_uri=caller_display, headers={"X-PBX-Call": s.rec.id}
        )

    async def connect(self, s: Call) -> None:
        w = s.worker
        assert s.rec is not None and s.caller_leg and s.callee_leg
        answered_at = self.clock()
        # Talk time starts now: bridge and start the recorders first (two worker round
        # trips, sent together), and only then write to the database, so the recording
        # covers the whole conversation.
        record = self.record and self._disk_ok()
        prefix: Path | None = None
        if record:
            day = sitetime.local_day(s.rec.offered_at)  # the clinic's calendar day
            folder = self.rec_dir / day
            prefix = s.record_prefix = folder / s.rec.id
        bridged: BaseException | None
        recorded: dict[str, str] | BaseException | None
        try:
            if prefix is not None:
                prefix.parent.mkdir(parents=True, exist_ok=True)
            bridged, recorded = await asyncio.gather(
                w.bridge(s.caller_leg, s.callee_leg),
                w.record([s.caller_leg, s.callee_leg], prefix) if prefix is not None else _nothing(),
                return_exceptions=True,
            )
        except OSError as exc:
            await w.bridge(s.caller_leg, s.callee_leg)
            bridged, recorded = None, exc
        if isinstance(bridged, CommandFailed):
            # a leg ended at the very moment of the answer (e.g. the caller hung up as the
            # callee picked up): its Ended event is on the way and closes the call as usual
            call_log(log, s).info("bridge %s-%s failed: %s", s.caller_leg, s.callee_leg, bridged)
            await self.calllog.event(s.rec, "bridge_failed", error=str(bridged))
        elif isinstance(bridged, BaseException):
            raise bridged
        else:
            s.bridged = (s.caller_leg, s.callee_leg)
        await self.calllog.answered(s.rec, at=answered_at, callee=s.callee)
        if not self.record:
            return
        if not record:
            s.rec.flags.add("disk_full")
            await self.calllog.update(s.rec, "recording_skipped", reason="disk full", min_free_mb=self.min_free_mb)
            call_log(log, s).error("not recorded: less than %d MB free under %s", self.min_free_mb, self.rec_dir)
            return
        if isinstance(recorded, BaseException) or recorded is None:
            # a recorder failure stops the recording, never the call
            s.rec.flags.add("recording_failed")
            await self.calllog.update(s.rec, "recording_failed", error=str(recorded))
            call_log(log, s).error("recording failed: %s", recorded)
            return
        s.files = recorded
        s.record_t0 = time.monotonic()
        s.segments = {"caller": [(s.files[s.caller_leg], 0.0)], "callee": [(s.files[s.callee_leg], 0.0)]}
        await self.calllog.event(s.rec, "recording_started", files=list(s.files.values()))

    # -- hold, music on hold, transfers ----------------------------------------------
    def _other(self, s: Call, leg: str) -> str | None:
        return s.callee_leg if leg == s.caller_leg else s.caller_leg if leg == s.callee_leg else None

    async def _rewire(self, s: Call) -> None:
        """Make bridge and music on hold match the session's state: while a transfer is in
        progress the remaining party hears MOH; otherwise a held party's peer hears MOH
        and the two are unbridged; with nobody holding, the two are bridged."""
        a, b = s.caller_leg, s.callee_leg
        want_moh: set[str] = set()
        want_bridge: tuple[str, str] | None = None
        if s.xfer is not None:
            want_moh.add(s.xfer.remaining)
        elif a and b:
            if a in s.held:
                want_moh.add(b)
            if b in s.held:
                want_moh.add(a)
            if not want_moh:
                want_bridge = (a, b)
        for leg in sorted(s.moh - want_moh):
            s.moh.discard(leg)
            await self.stop_play(s, leg, quiet=True)
        if s.bridged != want_bridge:
            if s.bridged is not None:
                await self.unbridge(s, *s.bridged, quiet=True)
                s.bridged = None
            if want_bridge is not None and await self.bridge(s, *want_bridge, quiet=True):
                s.bridged = want_bridge
        for leg in sorted(want_moh - s.moh):
            if await self.play(s, leg, self.moh, loop=True, quiet=True):
                s.moh.add(leg)

    async def _hold_changed(self, s: Call, leg: str, held: bool) -> None:
        if s.rec is None or not s.answered or leg not in (s.caller_leg, s.callee_leg):
            return
        if held == (leg in s.held):
            return
        (s.held.add if held else s.held.discard)(leg)
        side = s.side_of(leg)
        if s.relay:  # the consultation record is closed; the joined call carries on
            await self._rewire(s)
            return
        await self.calllog.event(
            s.rec,
            "held" if held else "unheld",
            side=side,
            party=s.caller if side == "caller" else s.callee,
            moh=str(self.moh) if held else None,
            recording=bool(s.files),
        )
        await self._rewire(s)

    async def _transfer_requested(self, s: Call, ev: P.TransferRequested) -> None:
        if (
            s.rec is None
            or not s.answered
            or s.relay
            or s.xfer is not None
            or ev.leg not in (s.caller_leg, s.callee_leg)
        ):
            # not a transfer we can carry out: drop the call pjsua started
            log.info("worker %s: REFER on %s ignored (state)", s.worker.pid, ev.leg)
            await self.hangup(s, ev.new_leg, None)
            s.dropped.add(ev.new_leg)
            return
        remaining = self._other(s, ev.leg)
        assert remaining is not None
        joined = None
        if ev.replaces:
            joined = self.session_by_call_id(ev.replaces.split(";")[0].strip())
        s.xfer = Transfer(
            kind=TransferKind.ATTENDED if ev.replaces else TransferKind.BLIND,
            transferor=ev.leg,
            remaining=remaining,
            new_leg=ev.new_leg,
            target=ev.target,
            replaces=ev.replaces,
            joined=joined,
        )
        if joined is not None:
            # the consultation call's party other than the transferor's replaced dialog
            cid = ev.replaces.split(";")[0].strip() if ev.replaces else ""
            s.xfer.joined_party = (
                joined.callee if joined.call_ids.get(joined.caller_leg or "") == cid else joined.caller
            )
        side = s.side_of(ev.leg)
        await self.calllog.event(
            s.rec,
            "transfer_requested",
            type=s.xfer.kind.value,
            side=side,
            by=s.caller if side == "caller" else s.callee,
            to=user_of(ev.target),
            target=ev.target,
            replaces=ev.replaces,
            joined_call=joined.rec.id if joined and joined.rec else None,
        )
        await self._rewire(s)

    async def _transfer_done(self, s: Call) -> None:
        """The transfer target answered: it takes the transferor's place."""
        x = s.xfer
        assert x is not None and s.rec is not None
        side = s.side_of(x.transferor)
        to = x.joined_party or user_of(x.target)
        frm = s.caller if side == "caller" else s.callee
        s.xfer = None
        s.dropped.add(x.transferor)
        s.held.discard(x.transferor)
        s.moh.discard(x.transferor)
        if side == "caller":
            s.caller_leg, s.caller = x.new_leg, to
        else:
            s.callee_leg, s.callee = x.new_leg, to
            s.rec.extension = to
            if s.rec.agent:
                # the record's agent is a person: the agent logged in at the new
                # extension, if any (the trail of transfers is in the call events)
                s.rec.agent = self.acd.agent_at(to) if self.acd is not None else None
        if not x.transferor_gone:
            await self.hangup(s, x.transferor, None)
        if s.bridged and x.transferor in s.bridged:
            s.bridged = None  # the worker drops the bridges of an ended leg
        await self._rewire(s)
        if s.files and s.record_prefix is not None and s.record_t0 is not None:
            if not x.transferor_gone:
                await self.stop_record(s, [x.transferor], quiet=True)
            try:
                files = await s.worker.record([x.new_leg], s.record_prefix)
                s.files.update(files)
                s.segments.setdefault(side, []).append((files[x.new_leg], time.monotonic() - s.record_t0))
            except (WorkerError, KeyError) as exc:
                s.rec.flags.add("recording_failed")
                await self.calllog.event(s.rec, "recording_failed", error=f"after transfer: {exc}")
        entry: TransferEntry = {
            "type": x.kind.value,
            "side": side,
            "from": frm,
            "to": to,
            "at": self.clock(),
            "target": x.target,
        }
        if x.joined is not None and x.joined.rec is not None:
            entry["joined_call"] = x.joined.rec.id
        s.transfers.append(entry)
        await self.calllog.update(s.rec, "transferred", **entry, transfers=list(s.transfers))
        call_log(log, s).info("%s transfer, %s %s -> %s", x.kind.value, side, frm, to)
        if self.acd is not None:
            self.acd.call_transferred(s, side, frm, to)  # a queue call's agent handed it on: TRANSFER

    async def _ended_during_transfer(self, s: Call, ev: P.Ended) -> bool:
        """A leg ended while a transfer is in progress; True if handled here."""
        x = s.xfer
        assert x is not None and s.rec is not None
        if ev.leg == x.transferor:
            # phones often hang up right after 202 (blind transfer): the call goes on
            x.transferor_gone = True
            s.held.discard(ev.leg)
            if s.bridged and ev.leg in s.bridged:
                s.bridged = None
            await self.calllog.event(s.rec, "transferor_left", leg=ev.leg)
            return True
        if ev.leg == x.new_leg:
            code = ev.cause_code
            s.xfer = None
            s.dropped.add(x.new_leg)
            await self.calllog.event(
                s.rec, "transfer_failed", type=x.kind.value, to=user_of(x.target), cause=f"{code} {ev.reason}".strip()
            )
            if x.transferor_gone:
                await self.hangup(s, x.remaining, None)
                await self.finish(
                    s, Disposition.ANSWERED, side="system", cause=f"transfer failed: {code} {ev.reason}".strip()
                )
            else:
                await self._rewire(s)  # back to the transferor (or MOH if it holds)
            return True
        if ev.leg == x.remaining:
            s.xfer = None
            for leg in (x.transferor, x.new_leg):
                if leg != x.transferor or not x.transferor_gone:
                    await self.hangup(s, leg, None)
            side = s.side_of(ev.leg)
            await self.finish(s, Disposition.ANSWERED, side=side, cause="BYE during transfer")
            return True
        return False

    async def _replaced(self, s: Call, ev: P.Replaced) -> None:
        """Attended transfer, consultation side: an INVITE/Replaces from the transferor's
        other call's worker took over ``ev.leg``. Close this call's record and recording;
        the session stays as a relay between its remaining party and the new leg."""
        if s.rec is None or s.relay or ev.leg not in (s.caller_leg, s.callee_leg):
            await self.hangup(s, ev.new_leg, None)
            return
        side = s.side_of(ev.leg)
        s.dropped.add(ev.leg)
        s.held.discard(ev.leg)
        s.moh.discard(ev.leg)
        if s.bridged and ev.leg in s.bridged:
            s.bridged = None
        s.pending_replace[ev.new_leg] = ev.leg
        s.call_ids[ev.new_leg] = ev.call_id
        frm = s.caller if side == "caller" else s.callee
        if side == "caller":
            s.caller_leg = ev.new_leg
        else:
            s.callee_leg = ev.new_leg
        joined = s.joined_from.rec.id if s.joined_from is not None and s.joined_from.rec else None
        entry: TransferEntry = {
            "type": "attended",
            "side": side,
            "from": frm,
            "at": self.clock(),
            "joined_call": joined,
            "role": "consultation",
        }
        s.transfers.append(entry)
        await self.calllog.event(s.rec, "transferred", **entry, transfers=list(s.transfers))
        # the consultation call ends here for the books; its audio goes on in the joined call
        s.relay = True
        await self.calllog.end(s.rec, Disposition.ANSWERED, side=side, cause="attended transfer")
        call_log(log, s).info("consultation joined to call %s (attended transfer)", (joined or "?")[:12])
        if s.files:
            await self.close_recording(s)
            s.files = {}

    async def _ring_timeout(self, s: Call) -> None:
        s.ring_deadline = None
        if s.callee_leg:
            await self.hangup(s, s.callee_leg, None)
        if self.frontline is not None and await self.frontline.unanswered(s, "no answer"):
            return  # its mailbox takes the call
        await self.hangup(s, s.caller_leg, 480)
        await self.finish(s, Disposition.NO_ANSWER, side="system", cause=f"no answer in {self.ring_time:g} s")

    async def _ended(self, s: Call, ev: P.Ended) -> None:
        if s.rec is None or s.ended:
            return
        if ev.leg in s.dropped:
            return
        if s.relay:
            # attended transfer relay: either side gone ends the relay
            for leg in (s.caller_leg, s.callee_leg):
                if leg and leg != ev.leg:
                    await self.hangup(s, leg, None)
            s.ended = True
            return
        if s.xfer is not None and await self._ended_during_transfer(s, ev):
            return
        if not s.answered:
            if ev.leg == s.caller_leg:
                if s.callee_leg:
                    await self.hangup(s, s.callee_leg, None)
                await self.finish(
                    s, Disposition.ABANDONED_RINGING, side="caller", cause=f"{ev.cause_code} {ev.reason}".strip()
                )
            elif ev.leg == s.callee_leg:
                code = ev.cause_code or 480
                if self.frontline is not None and await self.frontline.unanswered(s, f"{code} {ev.reason}"):
                    return  # its mailbox takes the call
                relay = code if 400 <= code < 700 and code != 487 else 480
                await self.hangup(s, s.caller_leg, relay)
                await self.finish(
                    s,
                    disposition_for_status(code if code != 487 else 480),
                    side="callee",
                    cause=f"{code} {ev.reason}".strip(),
                )
            return
        other = s.callee_leg if ev.leg == s.caller_leg else s.caller_leg
        side = s.side_of(ev.leg)
        if side == "callee" and self.frontline is not None and await self.frontline.callee_left(s):
            return  # the caller stays for the survey (the record is closed)
        if other:
            await self.hangup(s, other, None)
        await self.finish(s, Disposition.ANSWERED, side=side, cause="BYE")

    async def worker_lost(self, s: Call, ev: WorkerLost | WorkerExited | object) -> None:
        """The call's media worker is gone: close the record (failed / interrupted) and
        repair what was recorded."""
        if s.rec is not None and not s.ended:
            s.rec.flags.add("worker_lost")
            await self.finish(
                s,
                Disposition.FAILED if not s.answered else Disposition.INTERRUPTED,
                side="system",
                cause=f"media worker lost: {getattr(ev, 'reason', 'exited')}",
                stop_recording=False,
            )
            if s.files and s.record_prefix is not None:
                await self.close_recording(s, worker_lost=True)
        s.ended = True

    async def finish(
        self, s: Call, disposition: Disposition, *, side: str, cause: str, stop_recording: bool = True
    ) -> None:
        assert s.rec is not None
        s.ended = True
        if s.end_cause is not None:  # the PBX ended it (end_call): whoever's leg went first
            side, cause = "system", s.end_cause
        if s.trunk is not None and self.trunks is not None:
            self.trunks.finished(s)
        await self.calllog.end(s.rec, disposition, side=side, cause=cause)
        call_log(log, s).info("ended: %s (%s hung up: %s)", disposition.value, side, cause)
        if self.acd is not None:
            self.acd.call_finished(s, disposition, side)  # queue COMPLETE_*, agent free
        if self.frontline is not None:
            await self.frontline.call_finished(s, disposition, side)  # the callers table
        if s.files and stop_recording:
            await self.close_recording(s)

    async def close_recording(self, s: Call, *, worker_lost: bool = False) -> None:
        """Stop the call's recorders and merge its party files into the stereo WAV with its
        JSON sidecar. ``worker_lost``: the worker was killed mid-write: repair exactly this
        call's party files (no other call's) and merge them (status ``interrupted``)."""
        w = s.worker
        assert s.rec is not None and s.record_prefix is not None
        if worker_lost:
            paths = sorted({p for p in s.files.values() if p} | {p for seg in s.segments.values() for p, _ in seg})
            repaired = await asyncio.to_thread(repair_files, paths)
            await self.calllog.event(
                s.rec, "recording_repaired", files=[r.path for r in repaired], seconds=[r.duration for r in repaired]
            )
        else:
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
            if any(len(v) > 1 for v in s.segments.values()):
                # a transfer switched a channel to another party: splice its segments
                caller_file, callee_file = await asyncio.to_thread(_splice_channels, s.segments, s.record_prefix)
            info = await asyncio.to_thread(merge_stereo, caller_file, callee_file, out, remove_sources=True)
        except Exception as exc:
            s.rec.flags.add("recording_failed")
            kept = await asyncio.to_thread(
                keep_parts,
                [p for p in (caller_file, callee_file) if p],
                s.rec.talk_seconds,
                exc,
                "disk_full" in s.rec.flags,
            )
            status = "incomplete" if kept["parts"] else "failed"
            await self.calllog.update(s.rec, "recording_failed", status=status, **kept)
            await self.db.upsert_recording(
                {
                    "call_id": s.rec.id,
                    "path": kept["parts"][0] if kept["parts"] else str(out),
                    "status": status,
                    "seconds": kept["recorded_seconds"],
                    "channels": 1,
                    "created_at": self.clock(),
                    "detail": json.dumps(kept),
                }
            )
            call_log(log, s).error(
                "recording %s (%s): kept as %d party file(s), not merged: %s",
                status,
                kept["reason"],
                len(kept["parts"]),
                exc,
            )
            return
        for left in await asyncio.to_thread(leftover_party_files, s.record_prefix):
            left.unlink(missing_ok=True)  # no part file outlives its call
        why = "media worker lost" if worker_lost else "disk full" if "disk_full" in s.rec.flags else None
        status, missing = completeness(
            info.duration,
            s.rec.talk_seconds,
            reason=why,
            status_if_short="interrupted" if worker_lost else "incomplete",
        )
        if worker_lost:
            status = "interrupted"
        meta = self._metadata(s, info, out)
        meta["recording"] = {**cast(dict[str, object], meta["recording"]), "status": status, **missing}
        sidecar = out.with_suffix(".json")
        tmp = sidecar.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.chmod(tmp, 0o640)
        os.replace(tmp, sidecar)
        await self.db.upsert_recording(
            {
                "call_id": s.rec.id,
                "path": str(out),
                "status": status,
                "seconds": info.duration,
                "sample_rate": info.samplerate,
                "channels": 2,
                "sha256": info.sha256,
                "bytes": info.size,
                "created_at": self.clock(),
                "detail": json.dumps({"sidecar": str(sidecar), **missing}),
            }
        )
        await self.calllog.event(
            s.rec, "recording_saved", path=str(out), seconds=info.duration, status=status, **missing
        )
        if status != "complete":
            call_log(log, s).warning("recording %s: %s", status, missing.get("missing", ""))

    async def _await_recorders(self, s: Call, timeout: float = 3.0) -> None:
        """The worker flushes a recorder shortly after it is released (record_stopped)."""
        want = {p for p in s.files.values() if p} - s.stopped_files
        deadline = self.clock() + timeout
        other: list[CallInput] = []
        while want and self.clock() < deadline:
            try:
                ev = await asyncio.wait_for(s.queue.get(), max(0.0, deadline - self.clock()))
            except TimeoutError:
                break
            if isinstance(ev, P.RecordStopped):
                want.discard(ev.path)
                s.stopped_files.add(ev.path)
            else:
                other.append(ev)
        if other:  # a relay session goes on after its record closed: keep its events
            rest = []
            while not s.queue.empty():
                rest.append(s.queue.get_nowait())
            for ev in other + rest:
                s.queue.put_nowait(ev)

    def _metadata(self, s: Call, info: RecordingInfo, out: Path) -> dict[str, object]:
        rec = s.rec
        assert rec is not None
        return {
            "call_id": rec.id,
            "sip_call_id": rec.sip_call_id,
            "direction": rec.direction.value,
            "caller": {"number": rec.caller_number, "name": rec.caller_name, "channel": "left"},
            "callee": {"number": rec.callee_number, "name": rec.callee_name, "channel": "right"},
            "extension": rec.extension,
            "queue": rec.queue,
            "agent": rec.agent,
            "did": rec.did,
            "offered_at": rec.offered_at,
            "answered_at": rec.answered_at,
            "ended_at": rec.ended_at,
            "ring_seconds": rec.ring_seconds,
            "talk_seconds": rec.talk_seconds,
            "hangup_side": rec.hangup_side,
            "hangup_cause": rec.hangup_cause,
            "disposition": rec.disposition.value,
            "flags": sorted(rec.flags),
            "transfers": list(s.transfers),
            "recording": {
                "path": str(out),
                "seconds": round(info.duration, 3),
                "sample_rate": info.samplerate,
                "sha256": info.sha256,
                "channels": 2,
                "bytes": info.size,
                "caller_frames": info.left_frames,
                "callee_frames": info.right_frames,
            },
        }

    def active_call_ids(self) -> list[str]:
        return sorted(s.rec.id for s in self.sessions.values() if s.rec is not None and not s.ended)

    def status(self) -> list[CallStatus]:
        out: list[CallStatus] = []
        for s in self.sessions.values():
            if s.rec is None or s.ended or s.relay:
                continue
            out.append(
                {
                    "id": s.rec.id,
                    "caller": s.caller,
                    "callee": s.callee,
                    "state": s.state.value,
                    "since": s.rec.answered_at or s.rec.offered_at,
                    "worker": s.worker.pid,
                }
            )
        return out


#: the cause booked when a phone stopped refreshing its session timer (RFC 4028)
SESSION_EXPIRED = "session timer expired: no refresh from the phone"


def _session_expired(ev: P.Ended) -> bool:
    """pjsip ends a dialog whose session was not refreshed with 408 "No session refresh
    received." (RFC 4028 §10)."""
    return ev.cause_code == 408 and "session refresh" in (ev.reason or "").lower()


async def _nothing() -> None:
    return None


def _splice_channels(segments: dict[str, list[tuple[str, float]]], prefix: Path) -> tuple[str | None, str | None]:
    """One mono file per side from its recorders' segments (placed at their offsets, with
    silence between them): ``<prefix>-caller.wav`` / ``<prefix>-callee.wav``."""
    out: list[str | None] = []
    for side in ("caller", "callee"):
        parts = []
        rate = None
        for path, offset in segments.get(side, []):
            data, r = _read_mono(path)
            rate = rate or r
            parts.append((data, offset))
        if not parts or rate is None:
            out.append(None)
            continue
        starts = [round(off * rate) for _, off in parts]
        n = max(st + len(d) for (d, _), st in zip(parts, starts, strict=True))
        chan = np.zeros(n, dtype=np.int16)
        for (d, _), st in zip(parts, starts, strict=True):
            chan[st : st + len(d)] = d
        path = f"{prefix}-{side}.wav"
        write_atomic(path, chan, rate)
        for p, _ in segments.get(side, []):
            if os.path.exists(p) and p != path:
                os.unlink(p)
        out.append(path)
    return out[0], out[1]
