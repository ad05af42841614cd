"""One call in a queue, on the media worker that anchors it (driven by :mod:`pypbx.acdlive`).

A phone dials a queue's number; the ACD hands the call to :class:`QueueCall`
(``CallManager.hand_over``), which from then on gets every worker event of the call and every
engine order about it (:data:`pypbx.call.AcdOrder`), in order, on the call's own task:

* answer the caller; greeting and "this call may be recorded" (configurable); enter the
  queue (``call_arrived``); the position and estimated wait in the queue's language
  (:mod:`ivr_prompts.announce`) whenever the engine says ``Announce``; "press 1 to be called
  back" when the queue offers it; music on hold in between (looped);
* the urgent line: the caller enters with the priority :meth:`pypbx.acdlive.AcdLive.enter_queue`
  worked out (DID, route rules, IVR options; the engine raises it to the queue's own) and,
  above 0, hears the queue's ``urgent_prompt`` after the greeting and with each announcement;
* ``RingOrder``: ONE leg originated through the front door to ``sip:acd-<token>@...``,
  which the front door forks to every registered device of every agent rung; an answer
  is ``ring_answered`` -> ``Connect``: MOH stops, the two legs are bridged and recorded by
  ``CallManager.connect`` and the call goes back to CallManager (``hand_back``) as an
  ordinary answered call (hold, transfers, hang-up, recording); its end comes back through
  :meth:`QueueCall.finished` as COMPLETE_CALLER / COMPLETE_AGENT;
* a ring leg that fails or is not answered in time -> ``ring_timeout`` (RINGNOANSWER, the
  agent paused after the queue's number of misses, the next agent tried);
* caller hangs up while queued -> ``caller_abandoned`` (ABANDON with its wait), CDR
  ``abandoned_queue``;
* DTMF 1 -> the caller ID read back, 1 to confirm or 2 to key in another number then # ->
  ``callback_requested`` (the slot keeps its place), CDR ``callback_requested``;
* ``Overflow`` / ``Timeout`` / ``ExitEmpty`` / ``ExitFull``: to another queue (the engine
  re-queues the call), to an extension (rung through the front door, bridged and recorded
  on answer), to an outside number (through the best trunk, :func:`outside_leg`, with the
  trunk's channel counted), CDR ``overflowed_out``; to a ring group or a mailbox (the
  front line takes the call over: CDR ``voicemail`` with flag ``queue_timeout`` for a
  message left after the maximum wait); else a short prompt and hang-up;
* the agent transfers the connected call (CallManager's transfer, hook
  :meth:`QueueCall.transferred`): TRANSFER with the target, the agent freed; the call goes
  on as an ordinary call.

The agents' feature codes are :mod:`pypbx.flows.features`; callbacks the engine dials are
:mod:`pypbx.flows.callback`.
"""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from acd.model import (
    Announce,
    Caller,
    CancelRing,
    Connect,
    ExitEmpty,
    ExitFull,
    Overflow,
    RingAgents,
    Target,
    TargetKind,
    Timeout,
)
from media import protocol as P
from media.client import WorkerError, WorkerExited
from media.pool import WorkerLost
from pypbx import acdstore as S
from pypbx import screenpop
from pypbx.call.flow import CallInput, Closing, FlowBase, RingOrder, Shutdown
from pypbx.calllog import CallRecord, Disposition
from pypbx.flows.player import DEFAULT_MOH, PROMPTS_DIR, Player, prompt
from pypbx.logs import call_log

try:
    from ivr_prompts import announce as A
except ModuleNotFoundError:  # an editable install made before ivr_prompts became a package
    import importlib.util as _ilu
    from types import ModuleType

    _spec = _ilu.spec_from_file_location(
        "ivr_prompts.announce", Path(__file__).resolve().parents[2] / "ivr_prompts" / "announce.py"
    )
    assert _spec is not None and _spec.loader is not None
    _mod: ModuleType = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    A = _mod

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive
    from pypbx.call.manager import CallManager
    from pypbx.call.session import Call

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MOH",
    "MAX_NUMBER_DIGITS",
    "PROMPTS_DIR",
    "QueueCall",
    "QueueState",
    "announcement_ids",
    "outside_auth",
    "outside_leg",
    "prompt",
]

#: Digits of a keyed-in callback number, at most.
MAX_NUMBER_DIGITS = 20


class QueueState(enum.Enum):
    """Where a queued caller is."""

    ANSWERING = "answering"  # answered, greeting not started yet
    QUEUED = "queued"  # waiting (greeting, announcements, music)
    CALLBACK = "callback"  # pressed 1: the number read back, 1 confirms / 2 keys in another
    COLLECT = "collect"  # keying in a callback number, then #
    LEAVING = "leaving"  # leaving the queue (callback, overflow, exit): prompt, then hang-up
    CONNECTED = "connected"  # talking to an agent (an ordinary call of CallManager now)
    CONNECTED_OUT = "connected_out"  # overflowed to an extension / outside number, answered
    TRANSFERRED = "transferred"  # the agent transferred it: no longer the queue's call
    DONE = "done"

    @property
    def waiting(self) -> bool:
        """Still in the queue (the agents' ring may go on)."""
        return self in (QueueState.QUEUED, QueueState.CALLBACK, QueueState.COLLECT)


def announcement_ids(lang: str, position: int, ewt: float | None, offer_callback: bool) -> list[str]:
    """Prompt ids of one announcement: position, then the wait when there is a figure,
    then the callback offer."""
    ids: list[str] = A.position_ids(lang, max(1, min(position, A.MAX_NUMBER)))
    if ewt is not None:
        minutes = 0 if ewt < 60 else int(min(A.MAX_NUMBER, round(ewt / 60.0)))
        ids += A.wait_ids(lang, minutes)
    if offer_callback:
        ids.append("callback_offer")
    return ids


class QueueCall(FlowBase):
    """A caller in a queue (see the module docstring). ``lang``: the language the caller
    chose (in the IVR), else the queue's; ``priority``: the urgent line's (the DID's, route
    rules' and IVR options', :meth:`pypbx.acdlive.AcdLive.enter_queue`; the engine raises
    it to the queue's own entry priority)."""

    def __init__(self, live: AcdLive, s: Call, queue: str, lang: str | None = None, priority: int = 0) -> None:
        assert s.rec is not None and live.callmgr is not None
        self.live = live
        self.s = s
        self.rec: CallRecord = s.rec
        self.cm: CallManager = live.callmgr
        self.queue = queue
        self.chosen_lang = lang
        self.priority = priority
        self.call_id = s.rec.id
        self.number = s.caller
        self.state = QueueState.ANSWERING
        self.ring_leg: str | None = None
        self.ring_token: str | None = None
        self.ring_agents: tuple[str, ...] = ()
        self.cancelled: set[str] = set()
        self.rings = 0
        self.agent: str | None = None
        self.connecting: str | None = None  # the engine's Connect for this agent is on its way
        self.out_leg: str | None = None  # overflow to an extension
        self.out_target: Target | None = None
        self.out_trunk: str | None = None  # the trunk an overflow to an outside number went out on
        self.cb_number = ""
        self.digits = ""
        self.entered = False
        self.hangup_after_prompt = False
        self.end_disposition: Disposition | None = None
        self.end_cause = ""
        self.moh_file: str | None = str(live.moh) if live.moh else None
        self.player = Player(self, s.caller_leg)

    @property
    def lang(self) -> str:
        if self.chosen_lang:
            return self.chosen_lang
        q = self.live.engine.queues.get(self.queue)
        return q.language if q else "en"

    def p(self, pid: str) -> str:
        return prompt(self.lang, pid, self.live.prompts_dir)

    def urgent_files(self) -> list[str]:
        """The queue's urgent guidance prompt, for a caller waiting with a priority above 0
        (its own or the queue's), else nothing."""
        q = self.live.engine.queues.get(self.queue)
        if q is None or not q.urgent_prompt or max(self.priority, q.priority) <= 0:
            return []
        return [self.p(q.urgent_prompt)]

    def post(self, order: CallInput) -> None:
        """An engine order about this call (carried out on the call's own task)."""
        self.s.queue.put_nowait(order)

    # ---------------------------------------------------------------- start
    async def start(self) -> None:
        """A caller not answered yet: answer; the greeting starts when the answer is confirmed."""
        rec = self.rec
        rec.queue = self.queue
        rec.extension = None
        self.live.register(self.call_id, self)
        await self.cm.calllog.update(rec, "queue", queue=self.queue, number=self.s.callee, **self._prio())
        call_log(log, self.call_id).info("%s -> queue %s", self.s.caller, self.queue)
        await self.cm.answer(self.s, self.s.caller_leg, 200)

    async def start_answered(self, via: str) -> None:
        """A caller answered already (by the IVR, ``via``): straight into the queue."""
        rec = self.rec
        rec.queue = self.queue
        rec.extension = None
        self.live.register(self.call_id, self)
        await self.cm.calllog.update(rec, "queue", queue=self.queue, number=self.s.callee, via=via, **self._prio())
        call_log(log, self.call_id).info("%s -> queue %s", via.upper(), self.queue)
        await self._enter()

    def _prio(self) -> dict[str, int]:
        """The ``queue`` call event's ``priority`` (only for an urgent caller)."""
        return {"priority": self.priority} if self.priority else {}

    async def _enter(self) -> None:
        self.state = QueueState.QUEUED
        self.entered = True
        greet = [self.p(g) for g in self.live.greeting]
        if self.live.recording_notice and self.cm.record:  # CallManager.record: the "record calls" flag
            greet.append(self.p("call_may_be_recorded"))
        greet += self.urgent_files()
        self.player.head = greet
        await self.player.next()
        pref, secs = self.s.route_prefer or (None, 0.0)  # routing rule --prefer-last
        caller = Caller(
            self.call_id,
            self.number if _phone(self.number) else "",
            priority=self.priority,
            language=None,
            preferred_agent=pref,
            prefer_for=secs,
        )
        self.live.call_arrived(caller, self.queue)

    # ---------------------------------------------------------------- events
    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is QueueState.DONE:
            return
        if isinstance(ev, (Shutdown, Closing)):
            await self._shutdown()
        elif isinstance(ev, RingOrder):
            await self._ring(ev.token, ev.ring)
        elif isinstance(ev, Connect):
            await self._connect(ev.agent_id)
        elif isinstance(ev, CancelRing):
            await self._cancel_ring(ev.agent_ids)
        elif isinstance(ev, Announce):
            if self.state is QueueState.QUEUED:
                files = [
                    self.p(i)
                    for i in announcement_ids(
                        ev.language if ev.language in A.LANGUAGES else "en",
                        ev.position,
                        ev.ewt_seconds,
                        ev.offer_callback,
                    )
                ] + self.urgent_files()
                await self.player.say(files)
                await self.cm.calllog.event(
                    self.rec, "queue_announce", position=ev.position, ewt=ev.ewt_seconds, files=files
                )
        elif isinstance(ev, Overflow):
            await self._leave(ev.target, "overflow")
        elif isinstance(ev, (Timeout, ExitEmpty, ExitFull)):
            await self._leave(ev.fallback, type(ev).__name__.lower())
        elif isinstance(ev, P.Answered):
            if ev.call_id:
                s.call_ids[ev.leg] = ev.call_id
            if ev.leg == s.caller_leg and not self.entered:
                await self._enter()
            elif ev.leg == self.ring_leg and self.state is not QueueState.CONNECTED:
                await self._ring_answered(ev)
            elif ev.leg == self.out_leg:
                await self._out_answered()
        elif isinstance(ev, P.PlaybackFinished):
            if ev.leg == s.caller_leg:
                await self.cm.calllog.event(self.rec, "playback_finished", file=ev.file)
                mine = await self.player.finished(ev.file)
                if mine and self.hangup_after_prompt and self.player.current is None:
                    await self._end_after_prompt()
        elif isinstance(ev, P.Dtmf):
            if ev.leg == s.caller_leg:
                await self._dtmf(ev.digit)
        elif isinstance(ev, P.Ringing):
            if ev.leg == self.ring_leg:
                await self.cm.calllog.event(self.rec, "agent_ringing", agents=list(self.ring_agents))
        elif isinstance(ev, P.Ended):
            await self._ended(ev)
        elif isinstance(ev, (WorkerLost, WorkerExited)):
            await self._worker_lost(ev)

    # ---------------------------------------------------------------- ringing agents
    async def _ring(self, token: str, ring: RingAgents) -> None:
        if not self.state.waiting:
            # the call is leaving (a race with the engine's decision): not the agents' miss
            self.live.rings.pop(token, None)
            for aid in ring.agent_ids:
                self.live.ring_failed(self.call_id, aid, "caller leaving")
            return
        if self.ring_leg is not None:
            await self._drop_ring_leg()
        self.rings += 1
        self.ring_leg = f"agent{self.rings}"
        self.ring_token = token
        self.ring_agents = tuple(ring.agent_ids)
        fd = self.cm.front_door
        try:
            await self.cm.originate(
                self.s,
                self.ring_leg,
                f"sip:acd-{token}@{fd}",
                from_uri=await screenpop.caller_from(self.cm, self.s),
                headers={"X-PBX-Call": self.call_id, "X-PBX-Queue": self.queue},
            )
        except WorkerError as exc:
            call_log(log, self.call_id).warning("ringing %s failed: %s", ring.agent_ids, exc)
            self.ring_leg = None
            self.live.ring_timeout(self.call_id)
            return
        await self.cm.calllog.event(self.rec, "queue_ring", agents=list(ring.agent_ids), leg=self.ring_leg)

    async def _drop_ring_leg(self) -> None:
        leg, self.ring_leg = self.ring_leg, None
        if leg is not None:
            self.cancelled.add(leg)
            await self.cm.hangup(self.s, leg, None)
        if self.ring_token:
            self.live.rings.pop(self.ring_token, None)
            self.ring_token = None

    async def _cancel_ring(self, agent_ids: tuple[str, ...]) -> None:
        if self.ring_leg is None or self.state is QueueState.CONNECTED:
            return
        if set(self.ring_agents) <= set(agent_ids):
            await self._drop_ring_leg()

    async def _ring_answered(self, ev: P.Answered) -> None:
        agent = self.live.who_answered(self.ring_token or "", ev.call_id) if self.ring_token else None
        actions = self.live.ring_answered(self.call_id, agent) if agent else []
        connect = next((a for a in actions if isinstance(a, Connect)), None)
        if connect is None:
            call_log(log, self.call_id).info("late answer on %s dropped", self.ring_leg)
            await self._drop_ring_leg()
        else:
            self.connecting = connect.agent_id
        # the Connect order arrives through post()

    async def _connect(self, agent_id: str) -> None:
        s = self.s
        if self.ring_leg is None:
            return
        self.state = QueueState.CONNECTED
        self.agent = agent_id
        ext = self.live.agent_ext.get(agent_id, "")
        await self.player.stop()
        s.callee_leg = self.ring_leg
        s.callee = ext or agent_id
        self.rec.agent = agent_id
        self.rec.extension = ext or None
        s.answered = True
        self.cm.hand_back(s)  # from here on an ordinary answered call of CallManager
        if self.ring_token:
            self.live.rings.pop(self.ring_token, None)
        await self.cm.connect(s)
        call_log(log, self.call_id).info("queue %s connected to agent %s (%s)", self.queue, agent_id, ext)

    # ---------------------------------------------------------------- DTMF: callbacks
    async def _dtmf(self, digit: str) -> None:
        await self.cm.calllog.event(self.rec, "dtmf", leg="caller", digit=digit)
        q = self.live.engine.queues.get(self.queue)
        if self.state is QueueState.QUEUED:
            if digit == "1" and q is not None and q.callback_allowed:
                if _phone(self.number):
                    await self._confirm(self.number)
                else:
                    await self._collect()
        elif self.state is QueueState.CALLBACK:
            if digit == "1":
                await self._callback(self.cb_number)
            elif digit == "2":
                await self._collect()
            elif digit in ("*", "0"):
                self.state = QueueState.QUEUED
                await self.player.interrupt([])
        elif self.state is QueueState.COLLECT:
            if digit == "#":
                if _phone(self.digits):
                    await self._confirm(self.digits)
                else:
                    await self.player.interrupt([self.p("invalid_choice"), self.p("enter_number")])
                    self.digits = ""
            elif digit.isdigit() and len(self.digits) < MAX_NUMBER_DIGITS:
                self.digits += digit

    async def _confirm(self, number: str) -> None:
        self.state = QueueState.CALLBACK
        self.cb_number = number
        files = (
            [self.p("callback_number_is")]
            + [self.p(i) for i in A.digits_ids(self.lang, number)]
            + [self.p("callback_confirm")]
        )
        await self.player.interrupt(files)

    async def _collect(self) -> None:
        self.state = QueueState.COLLECT
        self.digits = ""
        await self.player.interrupt([self.p("enter_number")])

    async def _callback(self, number: str) -> None:
        self.state = QueueState.LEAVING
        await self._drop_ring_leg()
        await self.live.callback_requested(self.call_id, number, self.queue)
        self.end_disposition = Disposition.CALLBACK_REQUESTED
        self.end_cause = f"callback requested to {number}"
        await self.cm.calllog.event(self.rec, "callback_requested", number=number, queue=self.queue)
        await self._say_and_hang_up([self.p("callback_scheduled")])

    # ---------------------------------------------------------------- leaving the queue
    async def _leave(self, target: Target | None, why: str) -> None:
        s = self.s
        if (
            target is not None
            and target.kind is TargetKind.QUEUE
            and target.target in self.live.engine.queues
            and why == "overflow"
        ):
            old, self.queue = self.queue, target.target
            self.rec.queue = self.queue
            await self.cm.calllog.update(self.rec, "queue_overflow", from_queue=old, to_queue=self.queue)
            return
        self.state = QueueState.LEAVING
        await self._drop_ring_leg()
        self.end_disposition = (
            Disposition.OVERFLOWED_OUT
            if target is not None or why == "overflow"
            else Disposition.REJECTED
            if why in ("exitempty", "exitfull")
            else Disposition.FAILED
        )
        self.end_cause = f"queue {why}" + (f" to {target.kind.value}:{target.target}" if target else "")
        await self.cm.calllog.event(self.rec, "queue_leave", reason=why, target=target.to_dict() if target else None)
        if target is not None and target.kind in (TargetKind.EXTENSION, TargetKind.EXTERNAL):
            self.out_target = target
            self.out_leg = "overflow"
            fd = self.cm.front_door
            trunk: str | None
            if target.kind is TargetKind.EXTERNAL:
                # an outside number: through the best trunk (as any outside call), with its caller ID
                uri, from_uri, hdrs, trunk = outside_leg(self.cm, target.target, s.caller)
            else:
                uri, from_uri, hdrs, trunk = f"sip:{target.target}@{fd}", f"sip:{s.caller}@{fd.split(':')[0]}", {}, None
            try:
                await self.cm.originate(
                    s,
                    self.out_leg,
                    uri,
                    from_uri=from_uri,
                    headers={"X-PBX-Call": self.call_id, **hdrs},
                    auth=outside_auth(self.cm, trunk),
                )
                if trunk and self.cm.trunks is not None:  # a trunk: only through a trunk router
                    self.out_trunk = trunk
                    self.cm.trunks.svc.trunk_busy(trunk, +1)
                    await self.cm.calllog.event(
                        self.rec, "trunk_dial", trunk=trunk, number=uri[4:].split("@")[0], reason="queue overflow"
                    )
                return
            except WorkerError as exc:
                call_log(log, self.call_id).warning("overflow to %s failed: %s", target.target, exc)
                self.out_leg = None
        fl = self.cm.frontline
        if target is not None and target.kind in (TargetKind.RING_GROUP, TargetKind.VOICEMAIL) and fl is not None:
            # a ring group (pypbx.groups) or a mailbox (pypbx.voicemail: greeting, beep, the
            # message) takes the call over; its end closes the record (a message left:
            # disposition voicemail; the record keeps the queue, flag queue_<why>)
            await self.player.stop()
            self.state = QueueState.DONE
            self.live.forget(self.call_id)
            self.live.sessions.pop(id(s), None)
            dest = f"group:{target.target}" if target.kind is TargetKind.RING_GROUP else f"voicemail:{target.target}"
            if target.kind is TargetKind.VOICEMAIL:
                self.rec.flags.add(f"queue_{why}")
                await self.cm.calllog.update(
                    self.rec, "queue_to_voicemail", queue=self.queue, box=target.target, reason=why
                )
            if await fl.start_destination(s, dest, answered=True):
                return
            self.state = QueueState.LEAVING
            self.cm.hand_over(s, self)
            self.live.sessions[id(s)] = self
        # no way on from here: tell the caller, hang up
        await self._say_and_hang_up([self.p("all_staff_busy"), self.p("try_again_later")])

    async def _out_answered(self) -> None:
        s = self.s
        await self.player.stop()
        self.state = QueueState.CONNECTED_OUT
        s.callee_leg = self.out_leg
        s.callee = self.out_target.target if self.out_target else ""
        if self.out_target is None or self.out_target.kind is TargetKind.EXTENSION:
            self.rec.extension = s.callee
        s.answered = True
        await self.cm.connect(s)

    async def _say_and_hang_up(self, files: list[str]) -> None:
        self.hangup_after_prompt = True
        await self.player.interrupt(files)
        if self.player.current is None:
            await self._end_after_prompt()

    async def _end_after_prompt(self) -> None:
        await self.player.stop()
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        await self._finish(self.end_disposition or Disposition.FAILED, "system", self.end_cause)

    # ---------------------------------------------------------------- the end
    async def _ended(self, ev: P.Ended) -> None:
        s = self.s
        if ev.leg in self.cancelled:
            return
        if ev.leg == self.ring_leg:
            self.ring_leg = None
            if self.ring_token:
                self.live.rings.pop(self.ring_token, None)
                self.ring_token = None
            await self.cm.calllog.event(
                self.rec,
                "queue_ring_failed",
                agents=list(self.ring_agents),
                cause=f"{ev.cause_code} {ev.reason}".strip(),
            )
            self.live.ring_timeout(self.call_id)
            return
        if ev.leg == self.out_leg:
            if self.state is QueueState.CONNECTED_OUT:
                await self.cm.hangup(self.s, s.caller_leg, None)
                await self._finish(Disposition.OVERFLOWED_OUT, "callee", self.end_cause)
            else:
                self.out_leg = None
                self._release_trunk()
                self.end_cause += f" ({ev.cause_code} {ev.reason})".rstrip()
                await self._say_and_hang_up([self.p("try_again_later")])
            return
        if ev.leg != s.caller_leg:
            return
        # the caller hung up
        if self.connecting is not None and self.state is not QueueState.CONNECTED:
            await self._caller_left_as_agent_answered(self.connecting, ev)
            return
        if self.state is QueueState.CONNECTED_OUT:
            if self.out_leg:
                await self.cm.hangup(self.s, self.out_leg, None)
            await self._finish(Disposition.OVERFLOWED_OUT, "caller", self.end_cause)
            return
        await self._drop_ring_leg()
        if self.out_leg:
            await self.cm.hangup(self.s, self.out_leg, None)
        if self.end_disposition is not None:
            await self._finish(self.end_disposition, "caller", self.end_cause)
            return
        if self.entered:
            self.live.caller_abandoned(self.call_id)
        await self._finish(Disposition.ABANDONED_QUEUE, "caller", f"{ev.cause_code} {ev.reason}".strip())

    async def _caller_left_as_agent_answered(self, agent_id: str, ev: P.Ended) -> None:
        """The agent's answer crossed the caller's hang-up: the engine connected the call
        (CONNECT in the queue log) but the caller is gone before the bridge. One outcome in
        both books: answered by the agent with no talk, COMPLETE_CALLER, the agent freed
        (its phone is hung up)."""
        ext = self.live.agent_ext.get(agent_id, "")
        self.agent = agent_id
        self.rec.agent = agent_id
        self.rec.extension = ext or None
        self.s.callee = ext or agent_id
        await self._drop_ring_leg()
        if self.out_leg:
            await self.cm.hangup(self.s, self.out_leg, None)
        await self.cm.calllog.answered(self.rec, callee=self.s.callee)
        self.state = QueueState.CONNECTED  # finished(): COMPLETE_CALLER, the agent freed
        call_log(log, self.call_id).info("caller hung up as agent %s answered", agent_id)
        await self._finish(
            Disposition.ANSWERED,
            "caller",
            f"caller hung up as the agent answered ({ev.cause_code} {ev.reason})".strip(),
        )

    async def _shutdown(self) -> None:
        await self._drop_ring_leg()
        for leg in (self.out_leg, self.s.caller_leg):
            if leg:
                await self.cm.hangup(self.s, leg, None)
        if (self.state.waiting or self.state is QueueState.ANSWERING) and self.entered:
            # normally AcdLive.close() closed it already (INTERRUPTED + callback slot)
            self.live.caller_abandoned(self.call_id)
        await self._finish(self.end_disposition or Disposition.INTERRUPTED, "system", "pbx shutting down")

    async def _worker_lost(self, ev: WorkerLost | WorkerExited) -> None:
        if self.entered and self.state is not QueueState.CONNECTED:
            self.live.caller_abandoned(self.call_id)
        await self.cm.worker_lost(self.s, ev)
        self._done()

    async def _finish(self, disposition: Disposition, side: str, cause: str) -> None:
        if self.state is QueueState.DONE:
            return
        self._done()
        await self.cm.finish(self.s, disposition, side=side, cause=cause)

    def _release_trunk(self) -> None:
        trunk, self.out_trunk = self.out_trunk, None
        if trunk and self.cm.trunks is not None:
            self.cm.trunks.svc.trunk_busy(trunk, -1)

    def _done(self) -> None:
        self._release_trunk()
        self.state = QueueState.DONE
        self.s.ended = True
        self.live.forget(self.call_id)

    def transferred(self, side: str, frm: str, to: str) -> None:
        """CallManager completed a transfer of this (connected) call. The agent's side
        handed it on: TRANSFER with the target, the agent freed; the rest of the call is
        an ordinary call (its end is not the queue's)."""
        if self.agent is None or self.state is not QueueState.CONNECTED or side != "callee":
            return
        self.live.agent_transferred(self.call_id, to)
        self.state = QueueState.TRANSFERRED
        call_log(log, self.call_id).info("agent %s transferred the queue call to %s", self.agent, to)

    def finished(self, disposition: Disposition, side: str) -> None:
        """CallManager closed the call (hook in ``finish``): a connected call is complete."""
        if self.agent is not None and self.state in (QueueState.CONNECTED, QueueState.DONE):
            self.live.call_ended(self.call_id, self.live.party(side))
        self._release_trunk()
        self.state = QueueState.DONE
        self.live.forget(self.call_id)


def _phone(number: str) -> bool:
    return bool(number) and S.PHONE_RE.match(number) is not None


def outside_leg(cm: CallManager, number: str, caller_id: str) -> tuple[str, str, dict[str, str], str | None]:
    """(Request-URI, From URI, extra headers, trunk name) of a leg a worker places to
    ``number``: an extension through the front door, anything else through the best trunk
    (``X-PBX-Trunk``: the front door sends it to that trunk, with its caller ID)."""
    fd = cm.front_door
    host = fd.split(":")[0]
    router = cm.trunks
    if router is not None and router.svc.trunks and not cm.is_extension(number):
        cands = router.svc.candidates()
        if cands:
            t = cands[0]
            dialled = router.svc.dial_number(t, number)
            # the provider's Request-URI, reached through the front door (see TrunkRouter._dial_next)
            uri: str = router.svc.outbound_target(t, dialled)[0]
            return uri, router.svc.from_uri(t, caller_id), {"X-PBX-Trunk": t.name}, t.name
    return f"sip:{number}@{fd}", f"sip:{caller_id}@{host}", {}, None


def outside_auth(cm: CallManager, trunk: str | None) -> dict[str, str] | None:
    """The credentials for a leg :func:`outside_leg` sent through ``trunk`` (providers that
    challenge outbound INVITEs; ``TrunkService.leg_auth``), None for an extension."""
    router = cm.trunks
    if router is None or not trunk:
        return None
    auth: dict[str, str] | None = router.svc.leg_auth(trunk)
    return auth
