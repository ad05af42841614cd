"""A callback the ACD engine dials (``DialCallback``; started by :mod:`pypbx.acdlive`).

A flow of a call the PBX places itself (:meth:`CallManager.place`): a worker of its own
rings the agent first (``sip:acd-<token>@...``, forked by the front
door like a queue call's ring leg); when the agent answers, the patient's number is dialled
(an extension, or an outside number through a trunk, :func:`pypbx.flows.queue.outside_leg`);
both answered -> connected (bridged and recorded by ``CallManager.connect``),
``callback_answered``; the patient not answering -> ``callback_failed`` (the engine retries
later, keeping the place). Its CDR is an outbound call from the agent's extension to the
patient's number (event ``callback`` names the queued call).
"""

from __future__ import annotations

import enum
import logging
import uuid
from typing import TYPE_CHECKING

from acd.model import CancelRing, DialCallback
from media import protocol as P
from media.client import WorkerExited
from media.pool import WorkerLost
from pypbx.call.flow import CallInput, Shutdown
from pypbx.call.session import Call
from pypbx.calllog import Direction, Disposition
from pypbx.flows.base import TimedFlow
from pypbx.flows.queue import outside_auth, outside_leg
from pypbx.logs import call_log

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive

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

    async def _done(self, disposition: Disposition, side: str, cause: str) -> None:
        self._release()
        await self.cm.finish(self.s, disposition, side=side, cause=cause or disposition.value)
