"""A ring group, live: :class:`GroupCall` drives one call through a ring group (see
:mod:`pypbx.groups`: the groups, and :class:`~pypbx.groups.GroupService`, which routes
their ring legs at the front door).

It rings (one leg per step), relays ringing to an unanswered caller (MOH to an answered
one: IVR, queue overflow), and on answer gives the call back to CallManager as an
ordinary answered call (bridged, recorded); no answer -> the group's ``then``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING

from media import protocol as P
from pypbx import screenpop
from pypbx.call import Call, CallInput, Shutdown, Tick
from pypbx.calllog import Disposition
from pypbx.flows.base import TimedFlow
from pypbx.groups import RING_PREFIX, GroupService, RingGroup
from pypbx.logs import call_log

if TYPE_CHECKING:
    from pypbx.frontline import FrontLine

log = logging.getLogger(__name__)


class GroupCallState(enum.Enum):
    """Where a ring group call is."""

    RINGING = "ringing"
    ANSWERING = "answering"
    LEAVING = "leaving"
    DONE = "done"


class GroupCall(TimedFlow):
    """One call ringing a group (see the module docstring)."""

    def __init__(self, fl: FrontLine, s: Call, group: RingGroup, svc: GroupService, *, answered: bool) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.group = group
        self.svc = svc
        self.caller_answered = answered
        self.pending: list[str] = list(group.members)
        self.steps = 0
        self.leg: str | None = None
        self.token: str | None = None
        self.exts: tuple[str, ...] = ()
        self.cancelled: set[str] = set()
        self.sent_180 = False
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.state = GroupCallState.RINGING

    # ---------------------------------------------------------------- helpers
    # ---------------------------------------------------------------- start
    async def start(self) -> None:
        s = self.s
        g = self.group
        s.ring_deadline = None
        await self.event(
            "ring_group",
            group=g.name,
            strategy=g.strategy,
            members=list(g.members),
            ring_time=g.ring_time,
            then=g.then or None,
        )
        call_log(log, s).info("%s -> ring group %s (%s: %s)", s.caller, g.name, g.strategy, ",".join(g.members))
        if self.caller_answered:
            try:
                await self.cm.play(self.s, s.caller_leg, self.cm.moh, loop=True)
            except Exception:
                pass
        await self._next()

    async def _next(self) -> None:
        """Ring the next step: everyone (``all``, once) or the next member (``order``)."""
        cm = self.cm
        if self.group.strategy == "all":
            exts = tuple(m for m in self.pending if cm.is_extension(m) and cm.is_registered(m))
            self.pending = []
        else:
            exts = ()
            while self.pending and not exts:
                m = self.pending.pop(0)
                if cm.is_extension(m) and cm.is_registered(m):
                    exts = (m,)
        if not exts:
            await self._no_answer()
            return
        self.steps += 1
        self.exts = exts
        self.token = self.svc.ring(exts, self.group.ring_time)
        self.leg = f"grp{self.steps}"
        fd = cm.front_door
        try:
            await self.cm.originate(
                self.s,
                self.leg,
                f"sip:{RING_PREFIX}{self.token}@{fd}",
                from_uri=await screenpop.caller_from(cm, self.s),
                headers={"X-PBX-Call": self.s.record.id, "X-PBX-Group": self.group.name},
            )
        except Exception as exc:
            call_log(log, self.s).warning("ringing group %s (%s) failed: %s", self.group.name, exts, exc)
            await self._drop_leg()
            await self._next()
            return
        await self.event("ring_group_dial", group=self.group.name, extensions=list(exts), leg=self.leg)
        self._arm(self.group.ring_time)

    async def _drop_leg(self) -> None:
        self._disarm()
        leg, self.leg = self.leg, None
        if leg is not None:
            self.cancelled.add(leg)
            self.s.dropped.add(leg)
            await self.cm.hangup(self.s, leg, None)
        self.svc.done(self.token)
        self.token = None

    # ---------------------------------------------------------------- events
    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is GroupCallState.DONE:
            return
        if isinstance(ev, Tick):
            if ev.gen == self.gen and self.state is GroupCallState.RINGING:
                self._timer = None
                await self.event("ring_group_no_answer", group=self.group.name, extensions=list(self.exts))
                await self._drop_leg()
                await self._next()
        elif isinstance(ev, Shutdown):
            await self._drop_leg()
            await self.cm.hangup(self.s, s.caller_leg, None if self.caller_answered else 503)
            await self.finish(Disposition.INTERRUPTED, "system", "pbx shutting down")
        elif isinstance(ev, P.Ringing):
            if ev.leg == self.leg:
                if not self.caller_answered and not self.sent_180:
                    self.sent_180 = True
                    await self.cm.answer(self.s, s.caller_leg, 180)
                await self.event("ringing", callee=",".join(self.exts), group=self.group.name)
        elif isinstance(ev, P.Answered):
            if ev.call_id:
                s.call_ids[ev.leg] = ev.call_id
            if ev.leg == self.leg and self.state is GroupCallState.RINGING:
                await self._answered(ev)
        elif isinstance(ev, P.Ended):
            if ev.leg in self.cancelled:
                return
            if ev.leg == self.leg:
                await self.event(
                    "ring_group_dial_failed",
                    group=self.group.name,
                    extensions=list(self.exts),
                    cause=f"{ev.cause_code} {ev.reason}".strip(),
                )
                await self._drop_leg()
                await self._next()
            elif ev.leg == s.caller_leg:
                await self._drop_leg()
                await self.finish(
                    Disposition.ABANDONED_RINGING,
                    "caller",
                    f"while group {self.group.name} rang: {ev.cause_code} {ev.reason}".strip(),
                )
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self._disarm()
            self.svc.done(self.token)
            self.state = GroupCallState.DONE
            await self.cm.worker_lost(s, ev)

    async def _answered(self, ev: P.Answered) -> None:
        s = self.s
        self._disarm()
        ext = self.svc.who_answered(self.token or "", ev.call_id) if self.token else (self.exts or ("",))[0]
        self.svc.done(self.token)
        self.token = None
        self.state = GroupCallState.DONE
        s.callee_leg = self.leg
        s.callee = ext
        s.record.extension = ext or None
        s.answered = True
        s.ring_deadline = None
        self.cm.hand_back(s)  # an ordinary answered call of CallManager from here on
        self.fl.forget(s)
        await self.event("ring_group_answered", group=self.group.name, extension=ext)
        call_log(log, s).info("ring group %s answered by %s", self.group.name, ext)
        if self.caller_answered:
            try:
                await self.cm.stop_play(self.s, s.caller_leg)
            except Exception:
                pass
            await self.cm.connect(s)
        else:
            await self.cm.answer(self.s, s.caller_leg, 200)  # CallManager connects on the caller's answer

    async def _no_answer(self) -> None:
        s = self.s
        self._disarm()
        then = self.group.then
        await self.event("ring_group_unanswered", group=self.group.name, then=then or None)
        if then:
            self.state = GroupCallState.LEAVING
            self.fl.forget(s)
            if self.caller_answered:
                try:
                    await self.cm.stop_play(self.s, s.caller_leg)
                except Exception:
                    pass
            if await self.fl.start_destination(s, then, answered=self.caller_answered):
                return
            call_log(log, s).warning("group %s: --then %s is not available", self.group.name, then)
        await self.cm.hangup(self.s, s.caller_leg, None if self.caller_answered else 480)
        await self.finish(Disposition.NO_ANSWER, "system", f"ring group {self.group.name}: no answer")

    async def finish(self, disposition: Disposition, side: str, cause: str) -> None:
        if self.state is GroupCallState.DONE:
            return
        self._disarm()
        self.state = GroupCallState.DONE
        self.fl.forget(self.s)
        await self.cm.finish(self.s, disposition, side=side, cause=cause)

    def finished(self, disposition: Disposition, side: str) -> None:
        self._disarm()
        self.svc.done(self.token)
        self.state = GroupCallState.DONE
