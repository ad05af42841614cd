"""A callback the ACD engine dials (``DialCallback``; started by :mod:`pypbx.acdlive`).

A worker of its own rings the agent first (``sip:acd-<token>@...``, forked by the front
door like a queue call's ring leg); when the agent answers, the patient's number is dialled
(an extension, or an outside number through a trunk, :func:`pypbx.flows.queue.outside_leg`);
both answered -> connected (bridged and recorded by ``CallManager.connect``),
``callback_answered``; the patient not answering -> ``callback_failed`` (the engine retries
later, keeping the place). Its CDR is an outbound call from the agent's extension to the
patient's number (event ``callback`` names the queued call).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from typing import TYPE_CHECKING

from acd.model import CancelRing, Connect, DialCallback
from media import protocol as P
from media.client import WorkerExited
from media.pool import WorkerLost
from pypbx.call.flow import CallInput
from pypbx.call.session import Call
from pypbx.calllog import Direction, Disposition
from pypbx.flows.queue import outside_auth, outside_leg

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive

log = logging.getLogger(__name__)


class CallbackState(enum.Enum):
    """Where a callback is."""

    RINGING_AGENT = "ringing_agent"  # the agent's phones ring
    DIALING_PATIENT = "dialing_patient"  # the agent answered: the patient's number is dialled
    CONNECTED = "connected"  # both answered: bridged and recorded
    DONE = "done"


class CallbackCall:
    """A callback the engine dials (see the module docstring)."""

    def __init__(self, live: AcdLive, a: DialCallback) -> None:
        self.live = live
        self.a = a
        self.cm = live.callmgr
        self.queue: asyncio.Queue[CallInput] = asyncio.Queue()
        self.token = ""
        self.state = CallbackState.RINGING_AGENT

    def post(self, order: CallInput) -> None:
        """An engine order about this callback (read by :meth:`run`, in order with the
        worker's events)."""
        self.queue.put_nowait(order)

    async def run(self) -> None:
        a = self.a
        live = self.live
        cm = self.cm
        if cm is None:
            live.ring_timeout(a.call_id)
            return
        w = cm.pool.try_acquire()
        if w is None:
            live.callback_failed(a.call_id, "no media worker")
            return
        sess = Call(worker=w, reserved_at=cm.clock())
        self.queue = sess.queue  # worker events and engine orders, in order
        cm.sessions[w] = sess
        ext = live.agent_ext.get(a.agent_id, "")
        rec = await cm.calllog.offer(
            direction=Direction.OUTBOUND,
            caller_number=ext or a.agent_id,
            callee_number=a.number,
            extension=ext or None,
            queue=a.queue,
            agent=a.agent_id,
            worker=str(w.pid),
        )
        await cm.calllog.event(rec, "callback", of_call=a.call_id, number=a.number, queue=a.queue, agent=a.agent_id)
        self.token = uuid.uuid4().hex[:16]
        ring_timeout = live.engine.queues[a.queue].ring_timeout
        live.add_ring(self.token, a.call_id, (a.agent_id,), ring_timeout)
        fd = cm.front_door
        disp, side, cause = Disposition.FAILED, "system", ""
        sess.rec = rec
        sess.caller, sess.callee = ext or a.agent_id, a.number
        trunk: str | None = None
        deadline = time.monotonic() + ring_timeout
        try:
            await cm.originate(
                sess,
                "agent",
                f"sip:acd-{self.token}@{fd}",
                from_uri=f"sip:{a.number}@{fd.split(':')[0]}",
                headers={"X-PBX-Call": rec.id, "X-PBX-Callback": a.number},
            )
            while True:
                ringing = self.state is CallbackState.RINGING_AGENT
                timeout = max(0.0, deadline - time.monotonic()) if ringing else None
                try:
                    ev = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    await cm.hangup(sess, "agent", None)
                    live.ring_timeout(a.call_id)
                    disp, cause = Disposition.NO_ANSWER, "agent did not answer"
                    break
                if isinstance(ev, CancelRing):
                    await cm.hangup(sess, "agent", None)
                    disp, cause = Disposition.NO_ANSWER, "cancelled"
                    break
                if isinstance(ev, Connect):
                    continue
                if isinstance(ev, P.Answered) and ev.leg == "agent" and ringing:
                    self.state = CallbackState.DIALING_PATIENT
                    live.ring_answered(a.call_id, a.agent_id)
                    uri, from_uri, hdrs, trunk = outside_leg(cm, a.number, ext or a.queue)
                    await cm.calllog.event(rec, "callback_dial", number=a.number, trunk=trunk)
                    await cm.originate(
                        sess,
                        "patient",
                        uri,
                        from_uri=from_uri,
                        headers={"X-PBX-Call": rec.id, **hdrs},
                        auth=outside_auth(cm, trunk),
                    )
                    if trunk and cm.trunks is not None:  # a trunk: only through a trunk router
                        cm.trunks.svc.trunk_busy(trunk, +1)
                elif isinstance(ev, P.Answered) and ev.leg == "patient" and self.state is CallbackState.DIALING_PATIENT:
                    self.state = CallbackState.CONNECTED
                    live.callback_answered(a.call_id)
                    sess.caller_leg, sess.callee_leg = "agent", "patient"
                    sess.answered = True
                    await cm.connect(sess)  # bridged, recorded, answered in the CDR
                    await live.callback_closed(a.call_id, a.number, a.queue, "done", "connected")
                elif isinstance(ev, P.Ended):
                    if self.state is CallbackState.RINGING_AGENT:
                        live.ring_timeout(a.call_id)
                        disp, cause = Disposition.NO_ANSWER, f"agent: {ev.cause_code} {ev.reason}"
                        break
                    if self.state is CallbackState.DIALING_PATIENT:
                        if ev.leg == "patient":
                            await cm.hangup(sess, "agent", None)
                            live.callback_failed(a.call_id, f"{ev.cause_code} {ev.reason}")
                            disp, cause = Disposition.NO_ANSWER, f"patient: {ev.cause_code} {ev.reason}"
                        else:
                            await cm.hangup(sess, "patient", None)
                            live.callback_failed(a.call_id, "agent hung up")
                            disp, side, cause = Disposition.ABANDONED_RINGING, "agent", "agent hung up"
                        break
                    other = "patient" if ev.leg == "agent" else "agent"
                    await cm.hangup(sess, other, None)
                    live.call_ended(a.call_id, live.party("caller" if ev.leg == "patient" else "agent"))
                    disp, side, cause = Disposition.ANSWERED, ("callee" if ev.leg == "patient" else "caller"), "BYE"
                    break
                elif isinstance(ev, (WorkerLost, WorkerExited)):
                    if self.state is CallbackState.CONNECTED:
                        live.call_ended(a.call_id, live.party("caller"))
                    elif self.state is CallbackState.DIALING_PATIENT:
                        live.callback_failed(a.call_id, "media worker lost")
                    else:
                        live.ring_timeout(a.call_id)
                    cause = "media worker lost"
                    break
        except Exception as exc:
            log.exception("callback %s failed", a.call_id)
            if self.state is CallbackState.RINGING_AGENT:
                live.ring_timeout(a.call_id)
            elif self.state is CallbackState.DIALING_PATIENT:
                live.callback_failed(a.call_id, str(exc))
            cause = str(exc)
        finally:
            self.state = CallbackState.DONE
            live.rings.pop(self.token, None)
            live.unregister(a.call_id)
            sess.ended = True
            cm.sessions.pop(w, None)
            if trunk and cm.trunks is not None:
                cm.trunks.svc.trunk_busy(trunk, -1)
            await cm.calllog.end(rec, disp, side=side, cause=cause or disp.value)
            if sess.files:
                try:
                    await cm.close_recording(sess)
                except Exception:
                    log.exception("callback %s: closing the recording", a.call_id)
            try:
                await cm.pool.release(w)
            except Exception:
                log.exception("releasing worker %s", w.pid)
