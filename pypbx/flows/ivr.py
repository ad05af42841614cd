"""An IVR menu, live: :class:`IvrCall` drives one caller through a menu (the menus themselves
are stored by :mod:`pypbx.ivr`).

:class:`IvrCall` drives one call on its media worker as the call's flow
(``CallManager.hand_over``, the way :class:`pypbx.flows.queue.QueueCall` does): answers, plays
the greeting (a key press interrupts it), collects DTMF with an inter-digit timeout, and
acts. Handing the call on (queue, voicemail, an answered extension) hands it to another flow
or back to CallManager (``hand_back``). Caller hang-up in the menu -> ``abandoned_ivr``;
a call that ends in the after-hours branch -> ``after_hours``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING, cast

from media import protocol as P
from media.client import WorkerError
from pypbx import callers as C
from pypbx import hours as H
from pypbx import screenpop
from pypbx.call import Call, CallInput, Shutdown, Tick
from pypbx.calllog import Disposition
from pypbx.flows.base import TimedFlow
from pypbx.flows.player import Player, prompt
from pypbx.flows.route import resolve
from pypbx.ivr import IvrError, Menu, get_menu, parse_action, queue_target
from pypbx.logs import call_log
from pypbx.numbers import classify
from pypbx.trunks import TrunkCall, TrunkRouter

if TYPE_CHECKING:
    from pypbx.frontline import FrontLine

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the runtime


class IvrState(enum.Enum):
    """Where a caller is in an IVR menu."""

    ANSWERING = "answering"
    GREETING = "greeting"
    WAITING = "waiting"
    COLLECTING = "collecting"
    INFO = "info"
    RINGING = "ringing"
    OUTSIDE = "outside"
    LEAVING = "leaving"
    DONE = "done"


class IvrCall(TimedFlow):
    """One caller in the IVR (see the module docstring)."""

    def __init__(self, fl: FrontLine, s: Call, menu: Menu, lang: str | None = None) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.w = s.worker  # read by pypbx.flows.player.Player (the prompt player)
        self.menu = menu
        self.lang = lang or menu.language
        self.lang_chosen = lang is not None
        self.state = IvrState.ANSWERING
        self.digits = ""
        self.tries = 0
        self.closed = False
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.ring_leg: str | None = None
        self.ring_ext = ""
        self.rings = 0
        self.moh_file = None  # Player: nothing after the playlist
        self.player = Player(self, s.caller_leg)
        self.hangup_after = False
        self.end: tuple[Disposition, str] | None = None
        self.path: list[str] = [menu.name]

    # ---------------------------------------------------------------- helpers
    def p(self, pid: str) -> str:
        if pid.endswith(".wav") or "/" in pid:
            return pid
        return prompt(self.lang, pid, self.fl.prompts_dir)

    # ---------------------------------------------------------------- start
    async def start(self, answered: bool = False) -> None:
        await self.event("ivr", menu=self.menu.name, number=self.s.callee)
        call_log(log, self.s).info("%s -> IVR %s", self.s.caller, self.menu.name)
        if answered:
            await self.enter(self.menu)
        else:
            await self.cm.answer(self.s, self.s.caller_leg, 200)

    async def enter(self, menu: Menu) -> None:
        self.menu = menu
        self.tries = 0
        await self.event("ivr_menu", menu=menu.name)
        if not self.lang_chosen:
            self.lang = menu.language
        if menu.schedule:
            try:
                sched = await H.get_schedule(self.fl.db, menu.schedule)
                open_ = H.is_open(sched)
            except H.HoursError as exc:
                log.warning("IVR %s: schedule %s: %s (treated as open)", menu.name, menu.schedule, exc)
                open_ = True
            if not open_:
                self.closed = True
                if self.s.rec is not None:
                    self.s.record.flags.add("after_hours")
                await self.event("after_hours", menu=menu.name, schedule=menu.schedule, action=menu.after_hours)
                await self.act(menu.after_hours)
                return
        if menu.known_caller or menu.new_caller:
            known = await C.known(self.fl.db, self.s.caller)
            action = menu.known_caller if known else menu.new_caller
            await self.event("caller_lookup", number=self.s.caller, known=known, action=action or None)
            if action:
                await self.act(action)
                return
        await self.prompt()

    async def prompt(self, before: list[str] | None = None) -> None:
        self.state = IvrState.GREETING
        self.digits = ""
        self._disarm()
        await self.player.interrupt([self.p(x) for x in (before or [])] + [self.p(g) for g in self.menu.greeting])
        if self.player.current is None:
            self._waiting()

    def _waiting(self) -> None:
        self.state = IvrState.WAITING
        self._arm(self.menu.timeout)

    # ---------------------------------------------------------------- events
    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is IvrState.DONE:
            return
        if isinstance(ev, Tick):
            if ev.gen == self.gen:
                self._timer = None
                await self._tick()
        elif isinstance(ev, Shutdown):
            await self._hangup_all()
            await self.finish(Disposition.INTERRUPTED, "system", "pbx shutting down")
        elif isinstance(ev, P.Answered):
            if ev.call_id:
                s.call_ids[ev.leg] = ev.call_id
            if ev.leg == s.caller_leg and self.state is IvrState.ANSWERING:
                await self.enter(self.menu)
            elif ev.leg == self.ring_leg and self.state is IvrState.RINGING:
                await self._ring_answered()
            elif ev.leg == s.callee_leg and self.state is IvrState.OUTSIDE:
                await self._outside_answered()
        elif isinstance(ev, P.Ringing):
            if ev.leg == self.ring_leg or (ev.leg == s.callee_leg and self.state is IvrState.OUTSIDE):
                await self.event("ringing", callee=self.ring_ext)
        elif isinstance(ev, P.PlaybackFinished):
            if ev.leg == s.caller_leg and await self.player.finished(ev.file) and self.player.current is None:
                await self._played()
        elif isinstance(ev, P.Dtmf):
            if ev.leg == s.caller_leg:
                await self._dtmf(ev.digit)
        elif isinstance(ev, P.Ended):
            await self._ended(ev)
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self._disarm()
            self.state = IvrState.DONE
            await self.cm.worker_lost(s, ev)

    async def _played(self) -> None:
        if self.hangup_after:
            await self._hangup_caller_and_finish()
        elif self.state is IvrState.GREETING:
            self._waiting()
        elif self.state is IvrState.INFO:
            if self.closed:
                await self._goodbye(Disposition.AFTER_HOURS, "after hours")
            else:
                await self.prompt()

    async def _dtmf(self, digit: str) -> None:
        await self.event("dtmf", leg="caller", digit=digit, menu=self.menu.name)
        if self.state is IvrState.ANSWERING:
            await self.enter(self.menu)  # a key before the worker reported the answer
        if self.state not in (IvrState.GREETING, IvrState.WAITING, IvrState.COLLECTING):
            return
        if self.state is IvrState.GREETING:
            await self.player.stop()  # a key press interrupts the greeting
        if digit == "#" and self.digits:
            await self._evaluate()
            return
        self.digits += digit
        opts = self.menu.options
        longer = any(k != self.digits and k.startswith(self.digits) for k in opts)
        if self.digits in opts and not longer and not self.menu.direct_dial:
            await self._evaluate()
        elif not longer and not self.menu.direct_dial:
            await self._evaluate()  # nothing can start like this: invalid now
        else:
            self.state = IvrState.COLLECTING
            self._arm(self.menu.inter_digit)

    async def _tick(self) -> None:
        if self.state is IvrState.WAITING:
            self.tries += 1
            await self.event("ivr_no_input", menu=self.menu.name, tries=self.tries)
            if self.tries > self.menu.retries:
                self.end = (Disposition.ABANDONED_IVR, "no input")
                await self.act(self.menu.on_timeout)
            else:
                await self.prompt(before=["no_input"])
        elif self.state is IvrState.COLLECTING:
            await self._evaluate()
        elif self.state is IvrState.RINGING:
            await self._ring_failed("no answer")
        elif self.state is IvrState.OUTSIDE:
            await self._outside_failed("no answer")

    async def _evaluate(self) -> None:
        buf, self.digits = self.digits, ""
        self._disarm()
        if buf in self.menu.options:
            self._chose(buf)
            await self.event("ivr_choice", menu=self.menu.name, digits=buf, action=self.menu.options[buf])
            await self.act(self.menu.options[buf])
        elif self.menu.direct_dial and self.cm.is_extension(buf):
            self._chose(buf)
            await self.event("ivr_choice", menu=self.menu.name, digits=buf, action=f"extension:{buf}")
            await self.act(f"extension:{buf}")
        else:
            self.tries += 1
            await self.event("ivr_invalid", menu=self.menu.name, digits=buf, tries=self.tries)
            if self.tries > self.menu.retries:
                self.end = (Disposition.ABANDONED_IVR, "invalid input")
                await self.act(self.menu.on_invalid)
            else:
                await self.prompt(before=["invalid_choice"])

    def _chose(self, digits: str) -> None:
        """Remember the choice on the session (routing rules' ivr=MENU:DIGITS)."""
        choices = self.s.ivr_choices
        if choices is None:
            choices = self.s.ivr_choices = []
        choices.append((self.menu.name, digits))

    # ---------------------------------------------------------------- actions
    async def act(self, action: str) -> None:
        kind, arg = parse_action(action)
        s = self.s
        if kind == "hangup":
            if self.end is None:
                self.end = (
                    (Disposition.AFTER_HOURS, "after hours")
                    if self.closed
                    else (Disposition.ANSWERED, f"ivr {self.menu.name}: hangup")
                )
            await self._goodbye(*self.end)
        elif kind == "play":
            self.state = IvrState.INFO
            self._disarm()
            await self.player.interrupt([self.p(arg)])
            if self.player.current is None:
                await self._played()
        elif kind == "menu":
            try:
                menu = await get_menu(self.fl.db, arg)
            except IvrError:
                log.warning("IVR %s: sub-menu %s does not exist", self.menu.name, arg)
                await self.prompt(before=["invalid_choice"])
                return
            self.path.append(menu.name)
            await self.enter(menu)
        elif kind == "lang":
            self.lang, self.lang_chosen = arg, True
            await self.event("language", language=arg)
            nxt = self.menu
            if self.menu.after_language:
                try:
                    nxt = await get_menu(self.fl.db, self.menu.after_language)
                except IvrError:
                    pass
            await self.enter(nxt)
        elif kind == "extension":
            await self._ring(arg)
        elif kind == "queue":
            queue, prio = queue_target(arg)  # queue:NAME@N: the urgent line's priority
            if prio > s.priority:
                s.priority = prio
                await self.event("priority", priority=prio, queue=queue)
            await self._leave()
            if not await self.fl.to_queue(s, queue, self.lang):
                log.warning("IVR %s: queue %s is not available", self.menu.name, queue)
                self.state = IvrState.GREETING
                await self._unavailable()
        elif kind == "voicemail":
            await self._leave()
            if not await self.fl.to_voicemail(s, arg, answered=True, lang=self.lang, after_hours=self.closed):
                self.state = IvrState.GREETING
                await self._unavailable()
        elif kind == "group":
            await self._leave()
            if not await self.fl.to_group(s, arg, answered=True):
                log.warning("IVR %s: ring group %s is not available", self.menu.name, arg)
                self.state = IvrState.GREETING
                await self._unavailable()
        elif kind == "external":
            await self._outside(arg)
        elif kind == "route":
            dest = await resolve(self.cm, s, arg)
            if dest is None:
                log.warning("IVR %s: route %s: no rule matched", self.menu.name, arg)
                await self._unavailable()
                return
            dkind, _, target = dest.partition(":")
            await self.act(f"{'menu' if dkind == 'ivr' else dkind}:{target}")

    async def _leave(self) -> None:
        self._disarm()
        self.state = IvrState.LEAVING
        await self.player.stop()

    async def _unavailable(self) -> None:
        if self.closed:
            await self._goodbye(Disposition.AFTER_HOURS, "after hours")
        else:
            await self.prompt(before=["try_again_later"])

    async def _goodbye(self, disposition: Disposition, cause: str) -> None:
        self._disarm()
        self.state = IvrState.LEAVING
        self.end = (disposition, cause)
        self.hangup_after = True
        await self.player.interrupt([self.p("thank_you_goodbye")])
        if self.player.current is None:
            await self._hangup_caller_and_finish()

    async def _hangup_caller_and_finish(self) -> None:
        disp, cause = self.end or (Disposition.ANSWERED, "ivr")
        await self.player.stop()
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        await self.finish(disp, "system", cause)

    # ---------------------------------------------------------------- extensions
    async def _ring(self, ext: str) -> None:
        s = self.s
        if not self.cm.is_extension(ext):
            await self.event("ivr_invalid", menu=self.menu.name, digits=ext, reason="no such extension")
            await self.prompt(before=["invalid_choice"])
            return
        self._disarm()
        if not self.cm.is_registered(ext):
            await self._ring_failed("not registered", ext=ext)
            return
        self.rings += 1
        self.ring_leg = f"ivr-ext{self.rings}"
        self.ring_ext = ext
        self.state = IvrState.RINGING
        await self.player.stop()
        try:
            await self.cm.play(self.s, s.caller_leg, self.cm.moh, loop=True)
        except WorkerError:
            pass
        fd = self.cm.front_door
        try:
            await self.cm.originate(
                self.s,
                self.ring_leg,
                f"sip:{ext}@{fd}",
                from_uri=await screenpop.caller_from(self.cm, s),
                headers={"X-PBX-Call": s.record.id},
            )
        except WorkerError as exc:
            self.ring_leg = None
            await self._ring_failed(str(exc), ext=ext)
            return
        await self.event("ivr_dial", extension=ext, leg=self.ring_leg)
        self._arm(self.cm.ring_time)

    async def _ring_answered(self) -> None:
        s = self.s
        self._disarm()
        self.state = IvrState.DONE
        try:
            await self.cm.stop_play(self.s, s.caller_leg)
        except WorkerError:
            pass
        s.callee_leg = self.ring_leg
        s.callee = self.ring_ext
        s.record.extension = self.ring_ext
        s.answered = True
        self.cm.hand_back(s)  # an ordinary answered call of CallManager from here on
        self.fl.forget(s)
        await self.cm.connect(s)
        call_log(log, s).info("IVR %s connected to extension %s", self.menu.name, self.ring_ext)

    async def _ring_failed(self, why: str, ext: str | None = None) -> None:
        ext = ext or self.ring_ext
        leg, self.ring_leg = self.ring_leg, None
        self._disarm()
        if leg is not None:
            self.s.dropped.add(leg)
            await self.cm.hangup(self.s, leg, None)
        await self.event("ivr_dial_failed", extension=ext, reason=why)
        try:
            await self.cm.stop_play(self.s, self.s.caller_leg)
        except WorkerError:
            pass
        box = await self.fl.voicemail_box(ext)
        if box is not None:
            self.state = IvrState.LEAVING
            if await self.fl.to_voicemail(self.s, ext, answered=True, lang=self.lang):
                return
        self.state = IvrState.GREETING
        await self.prompt(before=["all_staff_busy"])

    # ---------------------------------------------------------------- outside numbers
    async def _outside(self, number: str) -> None:
        """``external:NUMBER``: out through the best trunk, as a DID's ``external:`` does
        (:meth:`pypbx.trunks.TrunkRouter.dial_next`: caller ID, channel counting, failover
        to the next trunk on 5xx/408 through ``on_ended``); the caller, already answered,
        hears MOH meanwhile. The IVR stays the call's flow until the answer."""
        s, router = self.s, self._router()
        if router is None or not router.svc.candidates():
            await self.event("ivr_dial_failed", number=number, reason="no trunk available")
            await self._unavailable()
            return
        self._disarm()
        await self.player.stop()
        tc = s.trunk if s.trunk is not None else TrunkCall("inbound")
        s.trunk = tc
        tc.forward, tc.number, tc.cls = True, number, classify(number, router.svc.plan).cls
        tc.tried.clear()
        self.state = IvrState.OUTSIDE
        self.ring_ext = number
        try:
            await self.cm.play(self.s, s.caller_leg, self.cm.moh, loop=True)
        except WorkerError:
            pass
        await self.event("ivr_external", menu=self.menu.name, number=number, number_class=tc.cls)
        if not await router.dial_next(self.cm, s) or s.ended:
            if not s.ended:
                await self._outside_failed("no trunk available")
            return
        s.ring_deadline = None  # the IVR's own timer, not CallManager's
        self._arm(self.cm.ring_time)

    def _router(self) -> TrunkRouter | None:
        return cast("TrunkRouter | None", self.cm.trunks)

    async def _drop_outside(self) -> None:
        s, tc = self.s, self.s.trunk
        leg, s.callee_leg = s.callee_leg, None
        router = self._router()
        if tc is not None and tc.current is not None and router is not None:
            router.svc.trunk_busy(tc.current, -1)
            tc.current = None
        if leg:
            s.dropped.add(leg)
            await self.cm.hangup(self.s, leg, None)

    async def _outside_answered(self) -> None:
        s = self.s
        self._disarm()
        self.state = IvrState.DONE
        try:
            await self.cm.stop_play(self.s, s.caller_leg)
        except WorkerError:
            pass
        s.callee = self.ring_ext
        s.answered = True
        s.ring_deadline = None
        self.cm.hand_back(s)  # an ordinary answered (forwarded) call from here on
        self.fl.forget(s)
        await self.cm.connect(s)
        call_log(log, s).info("IVR %s connected to %s", self.menu.name, self.ring_ext)

    async def _outside_failed(self, why: str) -> None:
        self._disarm()
        await self._drop_outside()
        if self.s.trunk is not None:
            self.s.trunk.forward = False
        await self.event("ivr_dial_failed", number=self.ring_ext, reason=why)
        try:
            await self.cm.stop_play(self.s, self.s.caller_leg)
        except WorkerError:
            pass
        self.state = IvrState.GREETING
        await self.prompt(before=["all_staff_busy"])

    # ---------------------------------------------------------------- the end
    async def _ended(self, ev: P.Ended) -> None:
        s = self.s
        if self.state is IvrState.OUTSIDE and ev.leg == s.callee_leg and ev.leg not in s.dropped:
            router = self._router()
            if router is not None and await router.on_ended(self.cm, s, ev):  # failover: the next trunk
                s.ring_deadline = None
                self._arm(self.cm.ring_time)
                return
            await self._outside_failed(f"{ev.cause_code} {ev.reason}".strip())
            return
        if ev.leg in s.dropped and ev.leg != s.caller_leg:
            return
        if ev.leg == self.ring_leg:
            if self.state is IvrState.RINGING:
                await self._ring_failed(f"{ev.cause_code} {ev.reason}".strip())
            return
        if ev.leg != s.caller_leg:
            return
        ringing = self.state in (IvrState.RINGING, IvrState.OUTSIDE)
        await self._hangup_all(caller=False)
        if ringing:
            await self.finish(
                Disposition.ABANDONED_RINGING,
                "caller",
                f"while {self.ring_ext} rang: {ev.cause_code} {ev.reason}".strip(),
            )
        elif self.end is not None and self.hangup_after:
            await self.finish(self.end[0], "caller", self.end[1])
        elif self.closed:
            await self.finish(Disposition.AFTER_HOURS, "caller", "after hours")
        else:
            await self.finish(
                Disposition.ABANDONED_IVR, "caller", f"in menu {self.menu.name}: {ev.cause_code} {ev.reason}".strip()
            )

    async def _hangup_all(self, caller: bool = True) -> None:
        self._disarm()
        if self.state is IvrState.OUTSIDE:
            await self._drop_outside()
        if self.ring_leg:
            self.s.dropped.add(self.ring_leg)
            await self.cm.hangup(self.s, self.ring_leg, None)
            self.ring_leg = None
        if caller:
            await self.cm.hangup(self.s, self.s.caller_leg, None)

    async def finish(self, disposition: Disposition, side: str, cause: str) -> None:
        if self.state is IvrState.DONE:
            return
        self._disarm()
        self.state = IvrState.DONE
        self.fl.forget(self.s)
        await self.cm.finish(self.s, disposition, side=side, cause=cause)

    def finished(self, disposition: Disposition, side: str) -> None:
        self._disarm()
        self.state = IvrState.DONE
