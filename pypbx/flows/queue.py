"""One call in a queue, on the media worker that anchors it (driven by :mod:`pypbx.acdlive`).

A phone dials a queue's number; CallManager hands the session to :class:`QueueCall`
(``CallManager.hand_over``), which from then on gets every worker event of the call and every
engine Action about it, in order, on the session's own task:

* answer the caller; greeting and "this call may be recorded" (configurable); enter the
  queue (``call_arrived``); the position and estimated wait in the queue's language
  (:mod:`ivr_prompts.announce`) whenever the engine says ``Announce``; "press 1 to be called
  back" when the queue offers it; music on hold in between (looped);
* ``RingAgents``: ONE leg originated through the front door to ``sip:acd-<token>@...``,
  which the front door forks to every registered device of every agent rung; an answer
  is ``ring_answered`` -> ``Connect``: MOH stops, the two legs are bridged and recorded by
  CallManager's own ``_connect`` and the session goes back to CallManager as an ordinary
  answered call (hold, transfers, hang-up, recording); its end comes back through
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
  front line takes the session over: CDR ``voicemail`` with flag ``queue_timeout`` for a
  message left after the maximum wait); else a short prompt and hang-up;
* the agent transfers the connected call (CallManager's transfer, hook
  :meth:`QueueCall.transferred`): TRANSFER with the target, the agent freed; the call goes
  on as an ordinary call.

:class:`FeatureCall` carries out ``*45<agent>`` (log that agent in at the calling extension),
``*45`` (log out the agent there) and ``*46`` (pause / unpause the agent there) and
answers with a short prompt. :class:`CallbackCall` places a callback: a worker of its
own rings the agent first, then dials the patient (an extension, or an outside number
through a trunk), bridges and records them; its CDR is an outbound call from the agent's
extension to the patient's number (event ``callback`` names the queued call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from acd.model import (
    Announce,
    Caller,
    CancelRing,
    Connect,
    DialCallback,
    ExitEmpty,
    ExitFull,
    Overflow,
    PauseReason,
    Target,
    TargetKind,
    Timeout,
)
try:
    from ivr_prompts import announce as A
except ModuleNotFoundError:      # an editable install made before ivr_prompts became a package
    import importlib.util as _ilu
    _spec = _ilu.spec_from_file_location(
        "ivr_prompts.announce", Path(__file__).resolve().parents[2] / "ivr_prompts" / "announce.py")
    assert _spec is not None and _spec.loader is not None
    A = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(A)
from media import protocol as P
from media.client import WorkerError
from pypbx import acdstore as S
from pypbx import screenpop
from pypbx.calllog import Disposition

log = logging.getLogger(__name__)

from pypbx import prompts  # noqa: E402

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "ivr_prompts"
DEFAULT_MOH = PROMPTS_DIR / "moh" / "default.wav"
#: Digits of a keyed-in callback number, at most.
MAX_NUMBER_DIGITS = 20


def prompt(lang: str, pid: str, base: Path = PROMPTS_DIR) -> str:
    """The clinic's own recording if imported (``pypbx prompts import``), else shipped."""
    return prompts.resolve(lang, pid, base)


def announcement_ids(lang: str, position: int, ewt: float | None, offer_callback: bool) -> list[str]:
    """Prompt ids of one announcement: position, then the wait when there is a figure,
    then the callback offer."""
    ids = A.position_ids(lang, max(1, min(position, A.MAX_NUMBER)))
    if ewt is not None:
        minutes = 0 if ewt < 60 else int(min(A.MAX_NUMBER, round(ewt / 60.0)))
        ids += A.wait_ids(lang, minutes)
    if offer_callback:
        ids.append("callback_offer")
    return ids


class _Player:
    """A playlist on one leg, then music on hold (looped)."""

    def __init__(self, call: "QueueCall", leg: str) -> None:
        self.call = call
        self.leg = leg
        self.head: list[str] = []        # greeting / prompts that must be heard
        self.tail: list[str] = []        # the latest announcement (a newer one replaces it)
        self.current: str | None = None
        self.moh = False
        self.stopped = False

    async def _play(self, f: str, loop: bool = False) -> bool:
        try:
            await self.call.w.play(self.leg, f, loop=loop)
            return True
        except WorkerError as exc:
            log.info("play %s on %s failed: %s", f, self.leg, exc)
            return False

    async def next(self) -> None:
        if self.stopped:
            return
        while self.head or self.tail:
            f = (self.head or self.tail).pop(0)
            if await self._play(f):
                self.current, self.moh = f, False
                return
        self.current = None
        if self.call.moh_file and await self._play(self.call.moh_file, loop=True):
            self.moh = True

    async def say(self, files: list[str], replace: bool = True) -> None:
        """Play ``files`` now if only music is on, else after what is playing."""
        if self.stopped:
            return
        if replace:
            self.tail = list(files)
        else:
            self.head.extend(files)
        if self.current is None:
            await self.next()

    async def interrupt(self, files: list[str]) -> None:
        """Drop everything queued and play ``files`` now."""
        self.head, self.tail = list(files), []
        self.current = None
        self.stopped = False
        await self.next()

    async def finished(self, f: str) -> bool:
        """A playback ended; True if it was ours (the next one started)."""
        if self.current is None or f != self.current:
            return False
        self.current = None
        await self.next()
        return True

    async def stop(self) -> None:
        self.stopped = True
        self.head, self.tail, self.current = [], [], None
        self.moh = False
        try:
            await self.call.w.stop_play(self.leg)
        except WorkerError:
            pass


class QueueCall:
    """A caller in a queue (see the module docstring)."""

    def __init__(self, live: Any, s: Any, queue: str) -> None:
        self.live = live
        self.s = s
        self.cm = live.callmgr
        self.w = s.worker
        self.queue = queue
        self.call_id = s.rec.id
        self.number = s.caller
        self.state = "answering"   # answering, queued, callback, collect, leaving, connected, done
        self.ring_leg: str | None = None
        self.ring_token: str | None = None
        self.ring_agents: tuple[str, ...] = ()
        self.cancelled: set[str] = set()
        self.rings = 0
        self.agent: str | None = None
        self.out_leg: str | None = None       # overflow to an extension
        self.out_target: Target | None = None
        self.out_trunk: str | None = None     # the trunk an overflow to an outside number went out on
        self.cb_number = ""
        self.digits = ""
        self.entered = False
        self.hangup_after_prompt = False
        self.end_disposition: Disposition | None = None
        self.end_cause = ""
        self.player = _Player(self, s.caller_leg)
        self.moh_file = str(live.moh) if live.moh else None

    @property
    def lang(self) -> str:
        q = self.live.engine.queues.get(self.queue)
        return q.language if q else "en"

    def p(self, pid: str) -> str:
        return prompt(self.lang, pid, self.live.prompts_dir)

    def post(self, item: Any) -> None:
        self.s.queue.put_nowait(item)

    # ---------------------------------------------------------------- start
    async def start(self) -> None:
        rec = self.s.rec
        rec.queue = self.queue
        rec.extension = None
        self.live.register(self.call_id, self)
        await self.cm.calllog.update(rec, "queue", queue=self.queue, number=self.s.callee)
        log.info("call %s: %s -> queue %s", self.call_id[:12], self.s.caller, self.queue)
        await self.w.answer(self.s.caller_leg, 200)

    async def _enter(self) -> None:
        self.state = "queued"
        self.entered = True
        greet = [self.p(g) for g in self.live.greeting]
        if self.live.recording_notice and getattr(self.cm, "record", True):
            greet.append(self.p("call_may_be_recorded"))
        self.player.head = greet
        await self.player.next()
        pref, secs = getattr(self.s, "route_prefer", None) or (None, 0.0)   # routing rule --prefer-last
        caller = Caller(self.call_id, self.number if _phone(self.number) else "", language=None,
                        preferred_agent=pref, prefer_for=secs)
        self.live.run("call_arrived", caller, self.queue)

    # ---------------------------------------------------------------- events
    async def handle(self, ev: Any) -> None:
        from pypbx.acdlive import _Closing
        from pypbx.call import Shutdown
        s = self.s
        if self.state == "done":
            return
        if isinstance(ev, (Shutdown, _Closing)):
            await self._shutdown()
        elif isinstance(ev, tuple) and len(ev) == 2 and hasattr(ev[1], "agent_ids"):
            await self._ring(*ev)
        elif isinstance(ev, Connect):
            await self._connect(ev.agent_id)
        elif isinstance(ev, CancelRing):
            await self._cancel_ring(ev.agent_ids)
        elif isinstance(ev, Announce):
            if self.state == "queued":
                files = [self.p(i) for i in announcement_ids(ev.language if ev.language in A.LANGUAGES else "en",
                                                              ev.position, ev.ewt_seconds, ev.offer_callback)]
                await self.player.say(files)
                await self.cm.calllog.event(s.rec, "queue_announce", position=ev.position,
                                            ewt=ev.ewt_seconds, files=files)
        elif isinstance(ev, Overflow):
            await self._leave(ev.target, "overflow")
        elif isinstance(ev, (Timeout, ExitEmpty, ExitFull)):
            await self._leave(ev.fallback, type(ev).__name__.lower())
        elif isinstance(ev, P.Answered):
            if ev.call_id:
                s.call_ids[ev.leg] = ev.call_id
            if ev.leg == s.caller_leg and not self.entered:
                await self._enter()
            elif ev.leg == self.ring_leg and self.state != "connected":
                await self._ring_answered(ev)
            elif ev.leg == self.out_leg:
                await self._out_answered()
        elif isinstance(ev, P.PlaybackFinished):
            if ev.leg == s.caller_leg:
                await self.cm.calllog.event(s.rec, "playback_finished", file=ev.file)
                mine = await self.player.finished(ev.file)
                if mine and self.hangup_after_prompt and self.player.current is None:
                    await self._end_after_prompt()
        elif isinstance(ev, P.Dtmf):
            if ev.leg == s.caller_leg:
                await self._dtmf(ev.digit)
        elif isinstance(ev, P.Ringing):
            if ev.leg == self.ring_leg:
                await self.cm.calllog.event(s.rec, "agent_ringing", agents=list(self.ring_agents))
        elif isinstance(ev, P.Ended):
            await self._ended(ev)
        elif isinstance(ev, P.RecordStopped):
            pass
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            await self._worker_lost(ev)

    # ---------------------------------------------------------------- ringing agents
    async def _ring(self, token: str, ring: Any) -> None:
        if self.state not in ("queued", "callback", "collect"):
            # the call is leaving (a race with the engine's decision): not the agents' miss
            self.live.rings.pop(token, None)
            for aid in ring.agent_ids:
                self.live.run("ring_failed", self.call_id, aid, "caller leaving")
            return
        if self.ring_leg is not None:
            await self._drop_ring_leg()
        self.rings += 1
        self.ring_leg = f"agent{self.rings}"
        self.ring_token = token
        self.ring_agents = tuple(ring.agent_ids)
        fd = self.cm.front_door
        try:
            await self.w.originate(self.ring_leg, f"sip:acd-{token}@{fd}",
                                   from_uri=await screenpop.caller_from(self.cm, self.s),
                                   headers={"X-PBX-Call": self.call_id, "X-PBX-Queue": self.queue})
        except WorkerError as exc:
            log.warning("call %s: ringing %s failed: %s", self.call_id[:12], ring.agent_ids, exc)
            self.ring_leg = None
            self.live.run("ring_timeout", self.call_id)
            return
        await self.cm.calllog.event(self.s.rec, "queue_ring", agents=list(ring.agent_ids), leg=self.ring_leg)

    async def _drop_ring_leg(self) -> None:
        leg, self.ring_leg = self.ring_leg, None
        if leg is not None:
            self.cancelled.add(leg)
            await self.cm.hangup(self.s, leg, None)
        if self.ring_token:
            self.live.rings.pop(self.ring_token, None)
            self.ring_token = None

    async def _cancel_ring(self, agent_ids: tuple[str, ...]) -> None:
        if self.ring_leg is None or self.state == "connected":
            return
        if set(self.ring_agents) <= set(agent_ids):
            await self._drop_ring_leg()

    async def _ring_answered(self, ev: P.Answered) -> None:
        agent = self.live.who_answered(self.ring_token or "", ev.call_id) if self.ring_token else None
        actions = self.live.run("ring_answered", self.call_id, agent) if agent else []
        if not any(isinstance(a, Connect) for a in actions):
            log.info("call %s: late answer on %s dropped", self.call_id[:12], self.ring_leg)
            await self._drop_ring_leg()
        # the Connect action arrives through post()

    async def _connect(self, agent_id: str) -> None:
        s = self.s
        if self.ring_leg is None:
            return
        self.state = "connected"
        self.agent = agent_id
        ext = self.live.agent_ext.get(agent_id, "")
        await self.player.stop()
        s.callee_leg = self.ring_leg
        s.callee = ext or agent_id
        s.rec.agent = agent_id
        s.rec.extension = ext or None
        s.answered = True
        self.cm.hand_back(s)          # from here on an ordinary answered call of CallManager
        if self.ring_token:
            self.live.rings.pop(self.ring_token, None)
        await self.cm.connect(s)
        log.info("call %s: queue %s connected to agent %s (%s)", self.call_id[:12], self.queue, agent_id, ext)

    # ---------------------------------------------------------------- DTMF: callbacks
    async def _dtmf(self, digit: str) -> None:
        await self.cm.calllog.event(self.s.rec, "dtmf", leg="caller", digit=digit)
        q = self.live.engine.queues.get(self.queue)
        if self.state == "queued":
            if digit == "1" and q is not None and q.callback_allowed:
                if _phone(self.number):
                    await self._confirm(self.number)
                else:
                    await self._collect()
        elif self.state == "callback":
            if digit == "1":
                await self._callback(self.cb_number)
            elif digit == "2":
                await self._collect()
            elif digit in ("*", "0"):
                self.state = "queued"
                await self.player.interrupt([])
        elif self.state == "collect":
            if digit == "#":
                if _phone(self.digits):
                    await self._confirm(self.digits)
                else:
                    await self.player.interrupt([self.p("invalid_choice"), self.p("enter_number")])
                    self.digits = ""
            elif digit.isdigit() and len(self.digits) < MAX_NUMBER_DIGITS:
                self.digits += digit

    async def _confirm(self, number: str) -> None:
        self.state = "callback"
        self.cb_number = number
        files = [self.p("callback_number_is")] + [self.p(i) for i in A.digits_ids(self.lang, number)] \
            + [self.p("callback_confirm")]
        await self.player.interrupt(files)

    async def _collect(self) -> None:
        self.state = "collect"
        self.digits = ""
        await self.player.interrupt([self.p("enter_number")])

    async def _callback(self, number: str) -> None:
        self.state = "leaving"
        await self._drop_ring_leg()
        await self.live.callback_requested(self.call_id, number, self.queue)
        self.end_disposition = Disposition.CALLBACK_REQUESTED
        self.end_cause = f"callback requested to {number}"
        await self.cm.calllog.event(self.s.rec, "callback_requested", number=number, queue=self.queue)
        await self._say_and_hang_up([self.p("callback_scheduled")])

    # ---------------------------------------------------------------- leaving the queue
    async def _leave(self, target: Target | None, why: str) -> None:
        s = self.s
        if target is not None and target.kind is TargetKind.QUEUE and target.target in self.live.engine.queues \
                and why == "overflow":
            old, self.queue = self.queue, target.target
            s.rec.queue = self.queue
            await self.cm.calllog.update(s.rec, "queue_overflow", from_queue=old, to_queue=self.queue)
            return
        self.state = "leaving"
        await self._drop_ring_leg()
        self.end_disposition = Disposition.OVERFLOWED_OUT if target is not None or why == "overflow" \
            else Disposition.REJECTED if why in ("exitempty", "exitfull") else Disposition.FAILED
        self.end_cause = f"queue {why}" + (f" to {target.kind.value}:{target.target}" if target else "")
        await self.cm.calllog.event(s.rec, "queue_leave", reason=why,
                                    target=target.to_dict() if target else None)
        if target is not None and target.kind in (TargetKind.EXTENSION, TargetKind.EXTERNAL):
            self.out_target = target
            self.out_leg = "overflow"
            fd = self.cm.front_door
            if target.kind is TargetKind.EXTERNAL:
                # an outside number: through the best trunk (as any outside call), with its caller ID
                uri, from_uri, hdrs, trunk = outside_leg(self.cm, target.target, s.caller)
            else:
                uri, from_uri, hdrs, trunk = f"sip:{target.target}@{fd}", f"sip:{s.caller}@{fd.split(':')[0]}", {}, None
            try:
                await self.w.originate(self.out_leg, uri, from_uri=from_uri,
                                       headers={"X-PBX-Call": self.call_id, **hdrs},
                                       auth=outside_auth(self.cm, trunk))
                if trunk:
                    self.out_trunk = trunk
                    self.cm.trunks.svc.trunk_busy(trunk, +1)
                    await self.cm.calllog.event(s.rec, "trunk_dial", trunk=trunk, number=uri[4:].split("@")[0],
                                                reason="queue overflow")
                return
            except WorkerError as exc:
                log.warning("call %s: overflow to %s failed: %s", self.call_id[:12], target.target, exc)
                self.out_leg = None
        fl = getattr(self.cm, "frontline", None)
        if target is not None and target.kind in (TargetKind.RING_GROUP, TargetKind.VOICEMAIL) and fl is not None:
            # a ring group (pypbx.groups) or a mailbox (pypbx.voicemail: greeting, beep, the
            # message) takes the session over; its end closes the record (a message left:
            # disposition voicemail; the record keeps the queue, flag queue_<why>)
            await self.player.stop()
            self.state = "done"
            self.live.forget(self.call_id)
            self.live.sessions.pop(id(s), None)
            dest = f"group:{target.target}" if target.kind is TargetKind.RING_GROUP else f"voicemail:{target.target}"
            if target.kind is TargetKind.VOICEMAIL:
                s.rec.flags.add(f"queue_{why}")
                await self.cm.calllog.update(s.rec, "queue_to_voicemail", queue=self.queue, box=target.target,
                                             reason=why)
            if await fl.start_destination(s, dest, answered=True):
                return
            self.state = "leaving"
            self.cm.hand_over(s, self)
            self.live.sessions[id(s)] = self
        # no way on from here: tell the caller, hang up
        await self._say_and_hang_up([self.p("all_staff_busy"), self.p("try_again_later")])

    async def _out_answered(self) -> None:
        s = self.s
        await self.player.stop()
        self.state = "connected_out"
        s.callee_leg = self.out_leg
        s.callee = self.out_target.target if self.out_target else ""
        if self.out_target is None or self.out_target.kind is TargetKind.EXTENSION:
            s.rec.extension = s.callee
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
            await self.cm.calllog.event(s.rec, "queue_ring_failed", agents=list(self.ring_agents),
                                        cause=f"{ev.cause_code} {ev.reason}".strip())
            self.live.run("ring_timeout", self.call_id)
            return
        if ev.leg == self.out_leg:
            if self.state == "connected_out":
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
        if self.state == "connected_out":
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
            self.live.run("caller_abandoned", self.call_id)
        await self._finish(Disposition.ABANDONED_QUEUE, "caller", f"{ev.cause_code} {ev.reason}".strip())

    async def _shutdown(self) -> None:
        await self._drop_ring_leg()
        for leg in (self.out_leg, self.s.caller_leg):
            if leg:
                await self.cm.hangup(self.s, leg, None)
        if self.state in ("queued", "callback", "collect", "answering") and self.entered:
            # normally AcdLive.close() closed it already (INTERRUPTED + callback slot)
            self.live.run("caller_abandoned", self.call_id)
        await self._finish(self.end_disposition or Disposition.INTERRUPTED, "system", "pbx shutting down")

    async def _worker_lost(self, ev: Any) -> None:
        if self.entered and self.state != "connected":
            self.live.run("caller_abandoned", self.call_id)
        await self.cm.worker_lost(self.s, ev)
        self._done()

    async def _finish(self, disposition: Disposition, side: str, cause: str) -> None:
        if self.state == "done":
            return
        self._done()
        await self.cm.finish(self.s, disposition, side=side, cause=cause)

    def _release_trunk(self) -> None:
        trunk, self.out_trunk = self.out_trunk, None
        if trunk and getattr(self.cm, "trunks", None) is not None:
            self.cm.trunks.svc.trunk_busy(trunk, -1)

    def _done(self) -> None:
        self._release_trunk()
        self.state = "done"
        self.s.ended = True
        self.live.forget(self.call_id)

    def transferred(self, side: str, frm: str, to: str) -> None:
        """CallManager completed a transfer of this (connected) call. The agent's side
        handed it on: TRANSFER with the target, the agent freed; the rest of the call is
        an ordinary call (its end is not the queue's)."""
        if self.agent is None or self.state != "connected" or side != "callee":
            return
        self.live.run("call_transferred", self.call_id, to)
        self.state = "transferred"
        log.info("call %s: agent %s transferred the queue call to %s", self.call_id[:12], self.agent, to)

    def finished(self, disposition: Any, side: str) -> None:
        """CallManager closed the call (hook in ``_finish``): a connected call is complete."""
        if self.agent is not None and self.state in ("connected", "done"):
            self.live.run("call_ended", self.call_id, self.live.party(side))
        self._release_trunk()
        self.state = "done"
        self.live.forget(self.call_id)


def _phone(number: str) -> bool:
    return bool(number) and S.PHONE_RE.match(number) is not None


# =========================================================================== feature codes

class FeatureCall:
    """``*45<agent>`` log in at this extension, ``*45`` log out, ``*46`` pause / unpause."""

    def __init__(self, live: Any, s: Any) -> None:
        self.live = live
        self.s = s
        self.cm = live.callmgr
        self.w = s.worker
        self.done = False
        self.result = ""
        self.ok = False
        self.playing: str | None = None

    async def start(self) -> None:
        await self.cm.calllog.event(self.s.rec, "feature_code", code=self.s.callee)
        await self.w.answer(self.s.caller_leg, 200)

    async def _act(self) -> None:
        db = self.live.db
        ext = self.s.caller
        code = self.s.callee
        try:
            here = await db.get_agent_row_at_extension(ext)
            if code.startswith("*45"):
                agent = code[3:]
                if agent:
                    await S.login(db, agent, ext)
                    self.result = f"agent {agent} logged in at {ext}"
                elif here is not None:
                    await S.logout(db, here["id"])
                    self.result = f"agent {here['id']} logged out"
                else:
                    raise S.AcdError(f"no agent logged in at {ext}")
            else:
                if here is None:
                    raise S.AcdError(f"no agent logged in at {ext}")
                if here["state"] == "paused":
                    await S.unpause(db, here["id"])
                    self.result = f"agent {here['id']} unpaused"
                else:
                    await S.pause(db, here["id"], PauseReason.BREAK)
                    self.result = f"agent {here['id']} paused"
            self.ok = True
            await self.live.sync()
        except S.AcdError as exc:
            self.result = str(exc)
        log.info("feature code %s from %s: %s", code, ext, self.result)

    async def handle(self, ev: Any) -> None:
        from pypbx.call import Shutdown
        s = self.s
        if self.done:
            return
        if isinstance(ev, P.Answered) and ev.leg == s.caller_leg and self.playing is None:
            await self._act()
            self.playing = prompt("en", "thank_you_goodbye" if self.ok else "invalid_choice",
                                  self.live.prompts_dir)
            try:
                await self.w.play(s.caller_leg, self.playing)
            except WorkerError:
                await self._end("system")
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg:
            await self.cm.hangup(self.s, s.caller_leg, None)
            await self._end("system")
        elif isinstance(ev, P.Ended) and ev.leg == s.caller_leg:
            await self._end("caller")
        elif isinstance(ev, Shutdown):
            await self.cm.hangup(self.s, s.caller_leg, None)
            await self._end("system")

    async def _end(self, side: str) -> None:
        if self.done:
            return
        self.done = True
        if self.s.rec.answered_at is None:
            await self.cm.calllog.answered(self.s.rec, feature=self.s.callee)
        await self.cm.finish(self.s, Disposition.ANSWERED if self.ok else Disposition.REJECTED,
                              side=side, cause=f"feature code: {self.result}")

    def finished(self, disposition: Any, side: str) -> None:
        self.done = True


# =========================================================================== callbacks

class CallbackCall:
    """A callback the engine dials (``DialCallback``): a worker rings the agent first;
    when the agent answers, the patient's number is dialled; both answered -> connected
    (bridged and recorded), ``callback_answered``; the patient not answering ->
    ``callback_failed`` (the engine retries later, keeping the place)."""

    def __init__(self, live: Any, a: DialCallback) -> None:
        self.live = live
        self.a = a
        self.cm = live.callmgr
        self.queue: asyncio.Queue = asyncio.Queue()
        self.token = ""
        self.connected = False

    def post(self, item: Any) -> None:
        self.queue.put_nowait(item)

    async def run(self) -> None:
        a = self.a
        live = self.live
        cm = self.cm
        if cm is None:
            live.run("ring_timeout", a.call_id)
            return
        w = cm.pool.try_acquire()
        if w is None:
            live.run("callback_failed", a.call_id, "no media worker")
            return
        from pypbx.call import Call
        sess = Call(worker=w, reserved_at=cm.clock())
        self.queue = sess.queue            # worker events and engine actions, in order
        cm.sessions[w] = sess
        ext = live.agent_ext.get(a.agent_id, "")
        rec = await cm.calllog.offer(direction=_direction("OUTBOUND"), caller_number=ext or a.agent_id,
                                     callee_number=a.number, extension=ext or None, queue=a.queue,
                                     agent=a.agent_id, worker=str(w.pid))
        await cm.calllog.event(rec, "callback", of_call=a.call_id, number=a.number, queue=a.queue,
                               agent=a.agent_id)
        import uuid
        self.token = uuid.uuid4().hex[:16]
        live.rings[self.token] = (a.call_id, (a.agent_id,), live.engine.queues[a.queue].ring_timeout)
        fd = cm.front_door
        disp, side, cause = Disposition.FAILED, "system", ""
        sess.rec = rec
        sess.caller, sess.callee = ext or a.agent_id, a.number
        agent_up = patient_up = False
        trunk: str | None = None
        deadline = time.monotonic() + live.engine.queues[a.queue].ring_timeout
        try:
            await w.originate("agent", f"sip:acd-{self.token}@{fd}", from_uri=f"sip:{a.number}@{fd.split(':')[0]}",
                              headers={"X-PBX-Call": rec.id, "X-PBX-Callback": a.number})
            while True:
                timeout = None if agent_up else max(0.0, deadline - time.monotonic())
                try:
                    ev = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    await cm.hangup(sess, "agent", None)
                    live.run("ring_timeout", a.call_id)
                    disp, cause = Disposition.NO_ANSWER, "agent did not answer"
                    break
                if isinstance(ev, CancelRing):
                    await cm.hangup(sess, "agent", None)
                    disp, cause = Disposition.NO_ANSWER, "cancelled"
                    break
                if isinstance(ev, Connect):
                    continue
                if isinstance(ev, P.Answered) and ev.leg == "agent" and not agent_up:
                    agent_up = True
                    live.run("ring_answered", a.call_id, a.agent_id)
                    uri, from_uri, hdrs, trunk = outside_leg(cm, a.number, ext or a.queue)
                    await cm.calllog.event(rec, "callback_dial", number=a.number, trunk=trunk)
                    await w.originate("patient", uri, from_uri=from_uri,
                                      headers={"X-PBX-Call": rec.id, **hdrs}, auth=outside_auth(cm, trunk))
                    if trunk:
                        cm.trunks.svc.trunk_busy(trunk, +1)
                elif isinstance(ev, P.Answered) and ev.leg == "patient" and not patient_up:
                    patient_up = True
                    live.run("callback_answered", a.call_id)
                    sess.caller_leg, sess.callee_leg = "agent", "patient"
                    sess.answered = True
                    await cm.connect(sess)        # bridged, recorded, answered in the CDR
                    await live._callback_done(a.call_id, a.number, a.queue, "done", "connected")
                elif isinstance(ev, P.Ended):
                    if not agent_up:
                        live.run("ring_timeout", a.call_id)
                        disp, cause = Disposition.NO_ANSWER, f"agent: {ev.cause_code} {ev.reason}"
                        break
                    if not patient_up:
                        if ev.leg == "patient":
                            await cm.hangup(sess, "agent", None)
                            live.run("callback_failed", a.call_id, f"{ev.cause_code} {ev.reason}")
                            disp, cause = Disposition.NO_ANSWER, f"patient: {ev.cause_code} {ev.reason}"
                        else:
                            await cm.hangup(sess, "patient", None)
                            live.run("callback_failed", a.call_id, "agent hung up")
                            disp, side, cause = Disposition.ABANDONED_RINGING, "agent", "agent hung up"
                        break
                    other = "patient" if ev.leg == "agent" else "agent"
                    await cm.hangup(sess, other, None)
                    live.run("call_ended", a.call_id, live.party("caller" if ev.leg == "patient" else "agent"))
                    disp, side, cause = Disposition.ANSWERED, ("callee" if ev.leg == "patient" else "caller"), "BYE"
                    break
                elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
                    if patient_up:
                        live.run("call_ended", a.call_id, live.party("caller"))
                    elif agent_up:
                        live.run("callback_failed", a.call_id, "media worker lost")
                    else:
                        live.run("ring_timeout", a.call_id)
                    cause = "media worker lost"
                    break
        except Exception as exc:
            log.exception("callback %s failed", a.call_id)
            if not agent_up:
                live.run("ring_timeout", a.call_id)
            elif not patient_up:
                live.run("callback_failed", a.call_id, str(exc))
            cause = str(exc)
        finally:
            live.rings.pop(self.token, None)
            live.calls.pop(a.call_id, None)
            sess.ended = True
            cm.sessions.pop(w, None)
            if trunk:
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


def outside_leg(cm: Any, number: str, caller_id: str) -> tuple[str, str, dict[str, str], str | None]:
    """(Request-URI, From URI, extra headers, trunk name) of a leg a worker places to
    ``number``: an extension through the front door, anything else through the best trunk
    (``X-PBX-Trunk``: the front door sends it to that trunk, with its caller ID)."""
    fd = cm.front_door
    host = fd.split(":")[0]
    router = getattr(cm, "trunks", None)
    is_ext = getattr(cm, "is_extension", None)
    if router is not None and router.svc.trunks and not (is_ext is not None and is_ext(number)):
        cands = router.svc.candidates()
        if cands:
            t = cands[0]
            dialled = router.svc.dial_number(t, number)
            # the provider's Request-URI, reached through the front door (see TrunkRouter._dial_next)
            uri = router.svc.outbound_target(t, dialled)[0]
            return uri, router.svc.from_uri(t, caller_id), {"X-PBX-Trunk": t.name}, t.name
    return f"sip:{number}@{fd}", f"sip:{caller_id}@{host}", {}, None


def outside_auth(cm: Any, trunk: str | None) -> dict[str, str] | None:
    """The credentials for a leg :func:`outside_leg` sent through ``trunk`` (providers that
    challenge outbound INVITEs; ``TrunkService.leg_auth``), None for an extension."""
    router = getattr(cm, "trunks", None)
    return router.svc.leg_auth(trunk) if router is not None and trunk else None


def _direction(name: str) -> Any:
    from pypbx.calllog import Direction
    return Direction[name]
