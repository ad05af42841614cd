"""Callbacks: the ACD engine's (:class:`CallbackCall`) and the worklist's (:class:`MissedCallback`).

A callback the ACD engine dials (``DialCallback``; started by :mod:`pypbx.acdlive`).

A flow of a call the PBX places itself (:meth:`CallManager.place`): a worker of its own
rings the agent first (``sip:acd-<token>@...``, forked by the front
door like a queue call's ring leg); when the agent answers, the patient's number is dialled
(an extension, or an outside number through a trunk, :func:`pypbx.flows.queue.outside_leg`);
both answered -> connected (bridged and recorded by ``CallManager.connect``),
``callback_answered``; the patient not answering -> ``callback_failed`` (the engine retries
later, keeping the place). Its CDR is an outbound call from the agent's extension to the
patient's number (event ``callback`` names the queued call).

``pypbx missed call TASK --from EXT`` (:class:`MissedCallback`, :func:`missed_call`): the
extension's phones ring first; the agent answers and hears "calling back <number>" and the
time of the first missed call (:func:`announcement`); then the patient is dialled (an
extension, or through the trunk routing, as for the ACD's callbacks). The attempt and its
outcome go on the task (:class:`pypbx.missed.Worklist`); an answered callback that lasts
``[missed] reached_after`` closes the task as reached (the worklist sees the call end).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from acd.model import CancelRing, DialCallback
from media import protocol as P
from media.client import WorkerExited
from media.pool import WorkerLost
from pypbx import acdstore as S
from pypbx import sitetime
from pypbx.call.flow import CallInput, Shutdown
from pypbx.call.session import Call
from pypbx.calllog import Direction, Disposition, disposition_for_status
from pypbx.errors import PbxError
from pypbx.flows.base import TimedFlow
from pypbx.flows.player import PROMPTS_DIR, Player, prompt
from pypbx.flows.queue import A, outside_auth, outside_leg
from pypbx.logs import call_log
from pypbx.missed import AttemptOutcome, MissedError, Task, Worklist, get_task
from pypbx.numbers import DEFAULT_REGION, display

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive
    from pypbx.call.manager import CallManager

log = logging.getLogger(__name__)


class CallbackState(enum.Enum):
    """Where a callback is."""

    RINGING_AGENT = "ringing_agent"  # the agent's phones ring
    DIALING_PATIENT = "dialing_patient"  # the agent answered: the patient's number is dialled
    CONNECTED = "connected"  # both answered: bridged and recorded
    DONE = "done"


class CallbackCall(TimedFlow):
    """A callback the engine dials (see the module docstring)."""

    def __init__(self, live: AcdLive, a: DialCallback, s: Call) -> None:
        assert live.callmgr is not None
        self.live = live
        self.a = a
        self.s = s
        self.cm = live.callmgr
        self.ext = live.agent_ext.get(a.agent_id, "")
        self.token = ""
        self.trunk: str | None = None
        self.state = CallbackState.RINGING_AGENT
        self.task_attempt: tuple[Task, int] | None = None  # the number's worklist task, this attempt

    def post(self, order: CallInput) -> None:
        """An engine order about this callback (into the call's queue, in order with the
        worker's events)."""
        self.s.queue.put_nowait(order)

    async def start(self) -> str:
        """Open the record and ring the agent; returns the record's id."""
        a, live, cm, s = self.a, self.live, self.cm, self.s
        try:
            rec = await cm.calllog.offer(
                direction=Direction.OUTBOUND,
                caller_number=self.ext or a.agent_id,
                callee_number=a.number,
                extension=self.ext or None,
                queue=a.queue,
                agent=a.agent_id,
                worker=str(s.worker.pid),
            )
            s.rec = rec
            s.caller, s.callee = self.ext or a.agent_id, a.number
            await cm.event(s, "callback", of_call=a.call_id, number=a.number, queue=a.queue, agent=a.agent_id)
            await self._task_attempt_start()
            self.token = uuid.uuid4().hex[:16]
            ring_timeout = live.engine.queues[a.queue].ring_timeout
            live.add_ring(self.token, a.call_id, (a.agent_id,), ring_timeout)
            self._arm(ring_timeout)
            fd = cm.front_door
            await cm.originate(
                s,
                "agent",
                f"sip:acd-{self.token}@{fd}",
                from_uri=f"sip:{a.number}@{fd.split(':')[0]}",
                headers={"X-PBX-Call": rec.id, "X-PBX-Callback": a.number},
            )
        except BaseException:
            self._disarm()
            live.ring_timeout(a.call_id)
            self._forget()
            raise
        return rec.id

    async def handle(self, ev: CallInput) -> None:
        if self.state is CallbackState.DONE:
            return
        try:
            await self._handle(ev)
        except Exception as exc:
            call_log(log, self.s).exception("callback %s failed", self.a.call_id)
            if self.state is CallbackState.RINGING_AGENT:
                self.live.ring_timeout(self.a.call_id)
            elif self.state is CallbackState.DIALING_PATIENT:
                self.live.callback_failed(self.a.call_id, str(exc))
            for leg in ("agent", "patient"):
                await self.cm.hangup(self.s, leg, None)
            await self._done(Disposition.FAILED, "system", str(exc))

    async def _handle(self, ev: CallInput) -> None:
        a, live, cm, s = self.a, self.live, self.cm, self.s
        if self._current(ev) and self.state is CallbackState.RINGING_AGENT:
            await cm.hangup(s, "agent", None)
            live.ring_timeout(a.call_id)
            await self._done(Disposition.NO_ANSWER, "system", "agent did not answer")
        elif isinstance(ev, CancelRing):
            await cm.hangup(s, "agent", None)
            await self._done(Disposition.NO_ANSWER, "system", "cancelled")
        elif isinstance(ev, Shutdown):
            for leg in ("agent", "patient"):
                await cm.hangup(s, leg, None)
            connected = self.state is CallbackState.CONNECTED
            await self._done(
                Disposition.ANSWERED if connected else Disposition.INTERRUPTED, "system", "pbx shutting down"
            )
        elif isinstance(ev, P.Answered) and ev.leg == "agent" and self.state is CallbackState.RINGING_AGENT:
            self._disarm()
            self.state = CallbackState.DIALING_PATIENT
            live.ring_answered(a.call_id, a.agent_id)
            uri, from_uri, hdrs, trunk = outside_leg(cm, a.number, self.ext or a.queue)
            self.trunk = trunk
            await cm.event(s, "callback_dial", number=a.number, trunk=trunk)
            await cm.originate(
                s,
                "patient",
                uri,
                from_uri=from_uri,
                headers={"X-PBX-Call": s.record.id, **hdrs},
                auth=outside_auth(cm, trunk),
            )
            if trunk and cm.trunks is not None:  # a trunk: only through a trunk router
                cm.trunks.svc.trunk_busy(trunk, +1)
        elif isinstance(ev, P.Answered) and ev.leg == "patient" and self.state is CallbackState.DIALING_PATIENT:
            self.state = CallbackState.CONNECTED
            live.callback_answered(a.call_id)
            s.caller_leg, s.callee_leg = "agent", "patient"
            s.answered = True
            await cm.connect(s)  # bridged, recorded, answered in the CDR
            await live.callback_closed(a.call_id, a.number, a.queue, "done", "connected")
        elif isinstance(ev, P.Ended):
            await self._ended(ev)
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif isinstance(ev, (WorkerLost, WorkerExited)):
            if self.state is CallbackState.CONNECTED:
                live.call_ended(a.call_id, live.party("caller"))
            elif self.state is CallbackState.DIALING_PATIENT:
                live.callback_failed(a.call_id, "media worker lost")
            else:
                live.ring_timeout(a.call_id)
            self._release()
            await cm.worker_lost(s, ev)

    async def _ended(self, ev: P.Ended) -> None:
        a, live, cm, s = self.a, self.live, self.cm, self.s
        if self.state is CallbackState.RINGING_AGENT:
            live.ring_timeout(a.call_id)
            await self._done(Disposition.NO_ANSWER, "system", f"agent: {ev.cause_code} {ev.reason}")
        elif self.state is CallbackState.DIALING_PATIENT:
            if ev.leg == "patient":
                await cm.hangup(s, "agent", None)
                live.callback_failed(a.call_id, f"{ev.cause_code} {ev.reason}")
                await self._done(Disposition.NO_ANSWER, "system", f"patient: {ev.cause_code} {ev.reason}")
            else:
                await cm.hangup(s, "patient", None)
                live.callback_failed(a.call_id, "agent hung up")
                await self._done(Disposition.ABANDONED_RINGING, "agent", "agent hung up")
        else:
            other = "patient" if ev.leg == "agent" else "agent"
            await cm.hangup(s, other, None)
            live.call_ended(a.call_id, live.party("caller" if ev.leg == "patient" else "agent"))
            await self._done(Disposition.ANSWERED, "callee" if ev.leg == "patient" else "caller", "BYE")

    def _forget(self) -> None:
        self.live.rings.pop(self.token, None)
        self.live.unregister(self.a.call_id)

    def _release(self) -> None:
        """The callback is over for the ACD: no more ring routing, orders or trunk slot."""
        self._disarm()
        self.state = CallbackState.DONE
        self._forget()
        if self.trunk and self.cm.trunks is not None:
            self.cm.trunks.svc.trunk_busy(self.trunk, -1)
            self.trunk = None

    async def _task_attempt_start(self) -> None:
        """The number's open worklist task gets this attempt (automatic callbacks and "press 1")."""
        wl = self.live.worklist
        if wl is None:
            return
        try:
            row = await wl.db.open_missed_task_row(self.a.number)
            if row is not None:
                task = Task.from_row(row)
                self.task_attempt = (task, await wl.attempt_started(task, self.a.agent_id))
        except Exception:
            call_log(log, self.s).exception("callback %s: recording the attempt on the task", self.a.call_id)

    async def _task_attempt_end(self, disposition: Disposition, state: CallbackState) -> None:
        wl, ta = self.live.worklist, self.task_attempt
        if wl is None or ta is None:
            return
        self.task_attempt = None
        if state is CallbackState.RINGING_AGENT:
            outcome, dialled = AttemptOutcome.AGENT_NO_ANSWER, False
        elif disposition is Disposition.ANSWERED:
            outcome, dialled = AttemptOutcome.ANSWERED, True
        elif disposition is Disposition.FAILED:
            outcome, dialled = AttemptOutcome.FAILED, state is not CallbackState.RINGING_AGENT
        else:
            outcome, dialled = AttemptOutcome.NO_ANSWER, True
        try:
            rec = self.s.rec
            await wl.attempt_ended(
                ta[0], ta[1], outcome, dialled=dialled, by=self.a.agent_id, call_id=rec.id if rec else None
            )
        except Exception:
            call_log(log, self.s).exception("callback %s: recording the attempt's outcome", self.a.call_id)

    async def _done(self, disposition: Disposition, side: str, cause: str) -> None:
        state = self.state
        self._release()
        await self._task_attempt_end(disposition, state)
        await self.cm.finish(self.s, disposition, side=side, cause=cause or disposition.value)


# =========================================================================== the worklist's callbacks

#: Seconds the agent's phones ring, then the patient's number, before giving up.
AGENT_RING = 30.0
PATIENT_RING = 45.0


def announcement(
    lang: str, number: str, missed_at: dt.datetime, base: Path = PROMPTS_DIR, region: str = DEFAULT_REGION
) -> list[str]:
    """What the agent hears before the patient is dialled: "calling back the patient at the
    number" + the number digit by digit, then "missed at" + the time of the first missed call
    (hour, minute)."""
    digits = "".join(ch for ch in display(number, region) if ch.isdigit())  # as staff dial it: 0 6 1 2 ...
    ids = ["calling_back", *A.digits_ids(lang, digits), "missed_at", *A.number_ids(lang, missed_at.hour)]
    ids += A.number_ids(lang, missed_at.minute)
    return [prompt(lang, i, base) for i in ids]


class MissedCallState(enum.Enum):
    RINGING_AGENT = "ringing_agent"
    ANNOUNCING = "announcing"  # the agent answered and hears who is called back
    DIALING_PATIENT = "dialing_patient"
    CONNECTED = "connected"
    DONE = "done"


class MissedCallback(TimedFlow):
    """One callback attempt of a worklist task (see the module docstring)."""

    def __init__(
        self,
        worklist: Worklist,
        cm: CallManager,
        s: Call,
        task: Task,
        extension: str,
        *,
        by: str,
        files: list[str],
        agent_ring: float = AGENT_RING,
        patient_ring: float = PATIENT_RING,
    ) -> None:
        self.worklist = worklist
        self.cm = cm
        self.s = s
        self.task = task
        self.extension = extension
        self.by = by
        self.files = files
        self.agent_ring = agent_ring
        self.patient_ring = patient_ring
        self.state = MissedCallState.RINGING_AGENT
        self.player = Player(self, "agent")
        self.trunk: str | None = None
        self.attempt = 0
        self.dialled = False

    @property
    def moh_file(self) -> str | None:
        return str(self.cm.moh)

    async def start(self) -> str:
        cm, s, t = self.cm, self.s, self.task
        rec = await cm.calllog.offer(
            direction=Direction.OUTBOUND,
            caller_number=self.extension,
            callee_number=t.number,
            extension=self.extension,
            queue=t.queue,
            worker=str(s.worker.pid),
        )
        s.rec = rec
        s.caller, s.callee = self.extension, t.number
        await cm.event(s, "missed_callback", task=t.id, number=t.number, by=self.by)
        self.attempt = await self.worklist.attempt_started(t, self.by)
        self._arm(self.agent_ring)
        fd = cm.front_door
        await cm.originate(
            s,
            "agent",
            f"sip:{self.extension}@{fd}",
            from_uri=f"sip:{t.number}@{fd.split(':')[0]}",
            headers={"X-PBX-Call": rec.id, "X-PBX-Callback": t.number},
        )
        call_log(log, s).info("missed-caller callback: task %d, %s then %s", t.id, self.extension, t.number)
        return rec.id

    async def handle(self, ev: CallInput) -> None:
        if self.state is MissedCallState.DONE:
            return
        try:
            await self._handle(ev)
        except Exception as exc:
            call_log(log, self.s).exception("missed-caller callback of task %d failed", self.task.id)
            for leg in ("agent", "patient"):
                await self.cm.hangup(self.s, leg, None)
            await self._done(Disposition.FAILED, "system", str(exc), AttemptOutcome.FAILED)

    async def _handle(self, ev: CallInput) -> None:
        cm, s = self.cm, self.s
        st = self.state
        if self._current(ev):
            for leg in ("agent", "patient"):
                await cm.hangup(s, leg, None)
            if st is MissedCallState.RINGING_AGENT:
                await self._done(
                    Disposition.NO_ANSWER, "system", "agent did not answer", AttemptOutcome.AGENT_NO_ANSWER
                )
            else:
                await self._done(Disposition.NO_ANSWER, "system", "patient did not answer", AttemptOutcome.NO_ANSWER)
        elif isinstance(ev, Shutdown):
            for leg in ("agent", "patient"):
                await cm.hangup(s, leg, None)
            connected = st is MissedCallState.CONNECTED
            await self._done(
                Disposition.ANSWERED if connected else Disposition.INTERRUPTED,
                "system",
                "pbx shutting down",
                AttemptOutcome.ANSWERED if connected else AttemptOutcome.FAILED,
            )
        elif isinstance(ev, P.Answered) and ev.leg == "agent" and st is MissedCallState.RINGING_AGENT:
            self._disarm()
            self.state = MissedCallState.ANNOUNCING
            await cm.event(s, "extension_answered", extension=self.extension)
            await self.player.say(list(self.files), replace=False)
            if self.player.current is None:  # nothing could be played: dial now
                await self._dial()
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == "agent":
            await cm.event(s, "playback_finished", leg="agent", file=ev.file)
            await self.player.finished(ev.file)
            if self.state is MissedCallState.ANNOUNCING and self.player.current != ev.file and self._said():
                await self._dial()
        elif isinstance(ev, P.Answered) and ev.leg == "patient" and st is MissedCallState.DIALING_PATIENT:
            self._disarm()
            self.state = MissedCallState.CONNECTED
            await self.player.stop()
            s.caller_leg, s.callee_leg = "agent", "patient"
            s.answered = True
            await cm.connect(s)
        elif isinstance(ev, P.Ended):
            await self._ended(ev)
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif isinstance(ev, (WorkerLost, WorkerExited)):
            self._release()
            await self._attempt_over(AttemptOutcome.FAILED)
            await cm.worker_lost(s, ev)

    def _said(self) -> bool:
        """The announcement is over (only music on hold, or nothing, is left)."""
        return self.player.moh or self.player.current is None

    async def _dial(self) -> None:
        cm, s, t = self.cm, self.s, self.task
        self.state = MissedCallState.DIALING_PATIENT
        uri, from_uri, hdrs, trunk = outside_leg(cm, t.number, self.extension)
        self.trunk = trunk
        self.dialled = True
        await cm.event(s, "callback_dial", number=t.number, trunk=trunk)
        self._arm(self.patient_ring)
        await cm.originate(
            s,
            "patient",
            uri,
            from_uri=from_uri,
            headers={"X-PBX-Call": s.record.id, **hdrs},
            auth=outside_auth(cm, trunk),
        )
        if trunk and cm.trunks is not None:
            cm.trunks.svc.trunk_busy(trunk, +1)

    async def _ended(self, ev: P.Ended) -> None:
        cm, s, st = self.cm, self.s, self.state
        code = ev.cause_code or 0
        cause = f"{code} {ev.reason}".strip()
        if st is MissedCallState.RINGING_AGENT:
            await self._done(
                disposition_for_status(code or 480), "caller", f"agent: {cause}", AttemptOutcome.AGENT_NO_ANSWER
            )
        elif st is MissedCallState.ANNOUNCING:
            await self._done(Disposition.ABANDONED_RINGING, "caller", "agent hung up", AttemptOutcome.FAILED)
        elif st is MissedCallState.DIALING_PATIENT:
            if ev.leg == "patient":
                await cm.hangup(s, "agent", None)
                busy = code in (486, 600)
                await self._done(
                    Disposition.BUSY if busy else Disposition.NO_ANSWER,
                    "callee",
                    f"patient: {cause}",
                    AttemptOutcome.BUSY if busy else AttemptOutcome.NO_ANSWER,
                )
            else:
                await cm.hangup(s, "patient", None)
                await self._done(Disposition.ABANDONED_RINGING, "caller", "agent hung up", AttemptOutcome.NO_ANSWER)
        else:
            other = "patient" if ev.leg == "agent" else "agent"
            await cm.hangup(s, other, None)
            await self._done(
                Disposition.ANSWERED, "callee" if ev.leg == "patient" else "caller", "BYE", AttemptOutcome.ANSWERED
            )

    def _release(self) -> None:
        self._disarm()
        self.state = MissedCallState.DONE
        if self.trunk and self.cm.trunks is not None:
            self.cm.trunks.svc.trunk_busy(self.trunk, -1)
            self.trunk = None

    async def _attempt_over(self, outcome: AttemptOutcome) -> None:
        if not self.attempt:
            return
        attempt, self.attempt = self.attempt, 0
        try:
            await self.worklist.attempt_ended(
                self.task,
                attempt,
                outcome,
                dialled=self.dialled,
                by=self.by,
                call_id=self.s.rec.id if self.s.rec is not None else None,
            )
        except Exception:
            call_log(log, self.s).exception("recording the attempt on task %d", self.task.id)

    async def _done(self, disposition: Disposition, side: str, cause: str, outcome: AttemptOutcome) -> None:
        self._release()
        await self._attempt_over(outcome)
        await self.cm.finish(self.s, disposition, side=side, cause=cause or disposition.value)


async def missed_call(
    worklist: Worklist,
    cm: CallManager,
    task: object,
    extension: str,
    *,
    lang: str = "en",
    when: dt.datetime | None = None,
) -> dict[str, object]:
    """Local API ``missed_call``: call the patient of ``task`` back from ``extension`` (its
    phones ring first). Returns the callback's call record id."""
    t = await get_task(worklist.db, task)
    if not t.is_open:
        raise MissedError(f"task {t.id} is closed ({t.outcome.value if t.outcome else '-'})")
    if not cm.is_extension(extension):
        raise MissedError(f"no extension {extension}")
    if not cm.is_registered(extension):
        raise MissedError(f"extension {extension} has no registered phone")
    if cm.trunks is not None and not cm.is_extension(t.number):
        chk = cm.trunks.svc.check_outbound(extension, t.number)
        if not chk.ok:
            raise MissedError(f"{t.number} may not be called from {extension}: {chk.status} {chk.reason}")
    if t.queue:  # the announcement in the queue's language
        try:
            lang = (await S.get_queue(worklist.db, t.queue)).config.language
        except S.AcdError:
            pass  # the queue is gone: the default language
    missed_at = when or sitetime.local(t.first_missed_at)  # read to the agent on the clinic's clock
    files = announcement(lang, t.number, missed_at, region=worklist.db.region)
    by = t.claimed_by or extension
    try:
        call_id = await cm.place(
            lambda s: MissedCallback(worklist, cm, s, t, extension, by=by, files=files), what="missed-caller callback"
        )
    except PbxError:
        raise
    except Exception as exc:
        raise MissedError(f"callback could not start: {exc}") from None
    return {"call_id": call_id, "task": t.id, "extension": extension, "number": t.number}
