"""IVR menus: declarative definitions (database, TOML import/export) and the runtime.

A menu (:class:`Menu`) is data::

    name = "main"
    number = "700"                    # dial 700 from a phone (the internal dialplan); optional
    greeting = ["welcome"]            # prompt ids (ivr_prompts/<lang>/<id>.wav) or WAV paths
    language = "en"                   # the caller's language unless one was chosen already
    timeout = 5.0                     # seconds to wait for a choice after the greeting
    inter_digit = 2.0                 # seconds between the digits of a longer choice
    retries = 2                       # no input / invalid input: replay this many times, then ...
    on_timeout = "hangup"             # ... this action (any action below)
    on_invalid = "hangup"
    direct_dial = false               # true: the caller may key an extension number (end with #)
    schedule = "clinic"               # opening hours (pypbx.hours); optional
    after_hours = "play:clinic_closed"   # the action when the schedule says closed
    after_language = ""               # the menu after a language choice (default: this one again)
    known_caller = ""                 # smart routing: a returning patient (pypbx.callers.known) ...
    new_caller = ""                   # ... or a new caller goes straight to this action (no greeting)

    [options]
    1 = "queue:front"                 # into an ACD queue (pypbx.flows.queue), in the call's language
    2 = "menu:results"                # a sub-menu
    3 = "extension:1001"              # ring an extension (MOH meanwhile; no answer -> its voicemail
                                      #   box if it has one, else back to the menu)
    4 = "voicemail:1001"              # leave a message in a mailbox (pypbx.voicemail)
    6 = "group:front_desk"            # a ring group (pypbx.groups): MOH while it rings, its --then
    7 = "external:+33612345678"       # an outside number through the best trunk (failover to the
                                      #   next trunk; MOH while it rings; no answer -> back to the menu)
    9 = "route:triage"                # routing rules (pypbx.routing); ivr=MENU:DIGITS conditions see
                                      #   the choices made so far (Call.ivr_choices)
    5 = "play:after_hours"            # play an information prompt, then back to the menu
    8 = "lang:ru"                     # set the prompt language for the rest of the call
    0 = "hangup"                      # goodbye

``pypbx ivr add|import|export|list|show|remove`` manage menus; a TOML file holds one menu
(top-level keys as above) or several (``[menus.<name>]`` tables).

Runtime: :class:`IvrCall` drives one call on its media worker as the call's flow
(``CallManager.hand_over``, the way :class:`pypbx.flows.queue.QueueCall` does): answers, plays
the greeting (a key press interrupts it), collects DTMF with an inter-digit timeout, and
acts. Handing the call on (queue, voicemail, an answered extension) hands it to another flow
or back to CallManager (``hand_back``). Caller hang-up in the menu -> ``abandoned_ivr``;
a call that ends in the after-hours branch -> ``after_hours``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Any

from media import protocol as P
from media.client import WorkerError
from pypbx import screenpop
from pypbx.calllog import Disposition
from pypbx.db import Database, IntegrityError
from pypbx.call import Tick
from pypbx.flows.base import TimedFlow

log = logging.getLogger(__name__)

ACTION_KINDS = ("queue", "menu", "extension", "voicemail", "group", "play", "hangup", "lang", "external", "route")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DIGITS_RE = re.compile(r"^[0-9*#]{1,8}$")
NUMBER_RE = re.compile(r"^\*?[0-9]{1,16}$")


class IvrError(ValueError):
    pass


def parse_action(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind not in ACTION_KINDS:
        raise IvrError(f"bad action {text!r} (want one of {', '.join(k + ':' for k in ACTION_KINDS)})")
    if kind == "hangup":
        return kind, ""
    if not arg:
        raise IvrError(f"action {text!r} needs a target, e.g. {kind}:NAME")
    if kind == "external":
        from pypbx.trunks import TrunkError, parse_destination
        try:
            arg = parse_destination(f"external:{arg}").partition(":")[2]
        except TrunkError as e:
            raise IvrError(str(e)) from None
    return kind, arg


@dataclass
class Menu:
    name: str
    number: str | None = None
    greeting: list[str] = field(default_factory=lambda: ["welcome"])
    language: str = "en"
    timeout: float = 5.0
    inter_digit: float = 2.0
    retries: int = 2
    on_timeout: str = "hangup"
    on_invalid: str = "hangup"
    direct_dial: bool = False
    schedule: str | None = None
    after_hours: str = "play:clinic_closed"
    after_language: str = ""
    known_caller: str = ""
    new_caller: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def validate(self) -> "Menu":
        if not NAME_RE.match(self.name):
            raise IvrError(f"bad menu name {self.name!r}")
        if self.number is not None and not NUMBER_RE.match(self.number):
            raise IvrError(f"bad number {self.number!r} (digits, optionally after *)")
        if isinstance(self.greeting, str):
            self.greeting = [self.greeting]
        for k, v in self.options.items():
            if not DIGITS_RE.match(k):
                raise IvrError(f"bad option key {k!r} (digits, * or #)")
            parse_action(v)
        for a in (self.on_timeout, self.on_invalid, self.after_hours):
            parse_action(a)
        for a in (self.known_caller, self.new_caller):
            if a:
                parse_action(a)
        if self.timeout <= 0 or self.inter_digit <= 0 or self.retries < 0:
            raise IvrError("timeout and inter_digit must be > 0, retries >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], name: str | None = None) -> "Menu":
        known = set(cls.__dataclass_fields__)
        d = dict(d)
        if name is not None:
            d.setdefault("name", name)
        bad = set(d) - known
        if bad:
            raise IvrError(f"unknown menu keys {sorted(bad)}")
        if "name" not in d:
            raise IvrError("a menu needs a name")
        d["options"] = {str(k): str(v) for k, v in (d.get("options") or {}).items()}
        for k in ("timeout", "inter_digit"):
            if k in d:
                d[k] = float(d[k])
        if "number" in d and d["number"] is not None:
            d["number"] = str(d["number"]) or None
        return cls(**d).validate()


# ------------------------------------------------------------------ TOML

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))        # a JSON string is a valid TOML basic string


def to_toml(menu: Menu) -> str:
    d = menu.to_dict()
    opts = d.pop("options")
    lines = [f"# pypbx IVR menu {menu.name!r} (pypbx ivr import FILE)"]
    for k, v in d.items():
        if v is None:
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    lines.append("")
    lines.append("[options]")
    for k in sorted(opts):
        lines.append(f"{json.dumps(k)} = {_toml_value(opts[k])}")
    return "\n".join(lines) + "\n"


def from_toml(text: str) -> list[Menu]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise IvrError(f"bad TOML: {e}") from None
    if "menus" in data:
        return [Menu.from_dict(v, name=k) for k, v in data["menus"].items()]
    return [Menu.from_dict(data)]


# ------------------------------------------------------------------ the store

async def save_menu(db: Database, menu: Menu, clock: Any = time.time) -> Menu:
    menu.validate()
    cfg = menu.to_dict()
    cfg.pop("name")
    number = cfg.pop("number")
    try:
        await db.upsert_ivr_menu_row(menu.name, number, json.dumps(cfg), clock())
    except IntegrityError:
        raise IvrError(f"number {number} already belongs to another menu") from None
    return menu


def _from_row(row: dict[str, Any]) -> Menu:
    cfg = json.loads(row["config"])
    return Menu.from_dict({**cfg, "name": row["name"], "number": row["number"]})


async def get_menu(db: Database, name: str) -> Menu:
    row = await db.get_ivr_menu_row(name)
    if row is None:
        raise IvrError(f"no IVR menu {name!r}")
    return _from_row(row)


async def list_menus(db: Database) -> list[Menu]:
    return [_from_row(r) for r in await db.list_ivr_menu_rows()]


async def menu_for_number(db: Database, number: str) -> Menu | None:
    for m in await list_menus(db):
        if m.number == number:
            return m
    return None


async def remove_menu(db: Database, name: str) -> None:
    if not await db.delete_ivr_menu_row(name):
        raise IvrError(f"no IVR menu {name!r}")


async def check_references(db: Database, menu: Menu) -> list[str]:
    """Warnings: sub-menus, schedules that do not exist (yet)."""
    out = []
    names = {m.name for m in await list_menus(db)} | {menu.name}
    for a in list(menu.options.values()) + [menu.on_timeout, menu.on_invalid, menu.after_hours]:
        kind, arg = parse_action(a)
        if kind == "menu" and arg not in names:
            out.append(f"menu {arg!r} does not exist (yet)")
        if kind == "route" and await db.get_route_row(arg) is None:
            out.append(f"route {arg!r} does not exist (yet): pypbx route add {arg}")
    if menu.after_language and menu.after_language not in names:
        out.append(f"menu {menu.after_language!r} does not exist (yet)")
    if menu.schedule and await db.get_schedule_row(menu.schedule) is None:
        out.append(f"schedule {menu.schedule!r} does not exist (yet): the menu counts as open")
    return out


# ------------------------------------------------------------------ the runtime


class IvrCall(TimedFlow):
    """One caller in the IVR (see the module docstring)."""

    def __init__(self, fl: Any, s: Any, menu: Menu, lang: str | None = None) -> None:
        from pypbx.flows.player import Player
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.w = s.worker
        self.menu = menu
        self.lang = lang or menu.language
        self.lang_chosen = lang is not None
        self.state = "answering"   # answering, greeting, waiting, collecting, info, ringing, leaving, done
        self.digits = ""
        self.tries = 0
        self.closed = False
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.ring_leg: str | None = None
        self.ring_ext = ""
        self.rings = 0
        self.moh_file = None           # Player: nothing after the playlist
        self.player = Player(self, s.caller_leg)
        self.hangup_after = False
        self.end: tuple[Disposition, str] | None = None
        self.path: list[str] = [menu.name]

    # ---------------------------------------------------------------- helpers
    def p(self, pid: str) -> str:
        if pid.endswith(".wav") or "/" in pid:
            return pid
        from pypbx.flows.player import prompt
        return prompt(self.lang, pid, self.fl.prompts_dir)

    # ---------------------------------------------------------------- start
    async def start(self, answered: bool = False) -> None:
        await self.event("ivr", menu=self.menu.name, number=self.s.callee)
        log.info("call %s: %s -> IVR %s", self.s.rec.id[:12], self.s.caller, self.menu.name)
        if answered:
            await self.enter(self.menu)
        else:
            await self.w.answer(self.s.caller_leg, 200)

    async def enter(self, menu: Menu) -> None:
        self.menu = menu
        self.tries = 0
        await self.event("ivr_menu", menu=menu.name)
        if not self.lang_chosen:
            self.lang = menu.language
        if menu.schedule:
            from pypbx import hours as H
            try:
                sched = await H.get_schedule(self.fl.db, menu.schedule)
                open_ = H.is_open(sched)
            except H.HoursError as exc:
                log.warning("IVR %s: schedule %s: %s (treated as open)", menu.name, menu.schedule, exc)
                open_ = True
            if not open_:
                self.closed = True
                if self.s.rec is not None:
                    self.s.rec.flags.add("after_hours")
                await self.event("after_hours", menu=menu.name, schedule=menu.schedule, action=menu.after_hours)
                await self.act(menu.after_hours)
                return
        if menu.known_caller or menu.new_caller:
            from pypbx import callers as C
            known = await C.known(self.fl.db, self.s.caller)
            action = menu.known_caller if known else menu.new_caller
            await self.event("caller_lookup", number=self.s.caller, known=known, action=action or None)
            if action:
                await self.act(action)
                return
        await self.prompt()

    async def prompt(self, before: list[str] | None = None) -> None:
        self.state = "greeting"
        self.digits = ""
        self._disarm()
        await self.player.interrupt([self.p(x) for x in (before or [])] + [self.p(g) for g in self.menu.greeting])
        if self.player.current is None:
            self._waiting()

    def _waiting(self) -> None:
        self.state = "waiting"
        self._arm(self.menu.timeout)

    # ---------------------------------------------------------------- events
    async def handle(self, ev: Any) -> None:
        from pypbx.call import Shutdown
        s = self.s
        if self.state == "done":
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
            if ev.leg == s.caller_leg and self.state == "answering":
                await self.enter(self.menu)
            elif ev.leg == self.ring_leg and self.state == "ringing":
                await self._ring_answered()
            elif ev.leg == s.callee_leg and self.state == "outside":
                await self._outside_answered()
        elif isinstance(ev, P.Ringing):
            if ev.leg == self.ring_leg:
                await self.event("ringing", callee=self.ring_ext)
            elif ev.leg == s.callee_leg and self.state == "outside":
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
            self.state = "done"
            await self.cm.worker_lost(s, ev)

    async def _played(self) -> None:
        if self.hangup_after:
            await self._hangup_caller_and_finish()
        elif self.state == "greeting":
            self._waiting()
        elif self.state == "info":
            if self.closed:
                await self._goodbye(Disposition.AFTER_HOURS, "after hours")
            else:
                await self.prompt()

    async def _dtmf(self, digit: str) -> None:
        await self.event("dtmf", leg="caller", digit=digit, menu=self.menu.name)
        if self.state == "answering":
            await self.enter(self.menu)       # a key before the worker reported the answer
        if self.state not in ("greeting", "waiting", "collecting"):
            return
        if self.state == "greeting":
            await self.player.stop()          # a key press interrupts the greeting
        if digit == "#" and self.digits:
            await self._evaluate()
            return
        self.digits += digit
        opts = self.menu.options
        longer = any(k != self.digits and k.startswith(self.digits) for k in opts)
        if self.digits in opts and not longer and not self.menu.direct_dial:
            await self._evaluate()
        elif not longer and not self.menu.direct_dial:
            await self._evaluate()            # nothing can start like this: invalid now
        else:
            self.state = "collecting"
            self._arm(self.menu.inter_digit)

    async def _tick(self) -> None:
        if self.state == "waiting":
            self.tries += 1
            await self.event("ivr_no_input", menu=self.menu.name, tries=self.tries)
            if self.tries > self.menu.retries:
                self.end = (Disposition.ABANDONED_IVR, "no input")
                await self.act(self.menu.on_timeout)
            else:
                await self.prompt(before=["no_input"])
        elif self.state == "collecting":
            await self._evaluate()
        elif self.state == "ringing":
            await self._ring_failed("no answer")
        elif self.state == "outside":
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
        if getattr(self.s, "ivr_choices", None) is None:
            self.s.ivr_choices = []
        self.s.ivr_choices.append((self.menu.name, digits))

    # ---------------------------------------------------------------- actions
    async def act(self, action: str) -> None:
        kind, arg = parse_action(action)
        s = self.s
        if kind == "hangup":
            if self.end is None:
                self.end = (Disposition.AFTER_HOURS, "after hours") if self.closed else \
                    (Disposition.ANSWERED, f"ivr {self.menu.name}: hangup")
            await self._goodbye(*self.end)
        elif kind == "play":
            self.state = "info"
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
            await self._leave()
            if not await self.fl.to_queue(s, arg, self.lang):
                log.warning("IVR %s: queue %s is not available", self.menu.name, arg)
                self.state = "greeting"
                await self._unavailable()
        elif kind == "voicemail":
            await self._leave()
            if not await self.fl.to_voicemail(s, arg, answered=True, lang=self.lang,
                                              after_hours=self.closed):
                self.state = "greeting"
                await self._unavailable()
        elif kind == "group":
            await self._leave()
            if not await self.fl.to_group(s, arg, answered=True):
                log.warning("IVR %s: ring group %s is not available", self.menu.name, arg)
                self.state = "greeting"
                await self._unavailable()
        elif kind == "external":
            await self._outside(arg)
        elif kind == "route":
            from pypbx.routing import resolve
            dest = await resolve(self.cm, s, arg)
            if dest is None:
                log.warning("IVR %s: route %s: no rule matched", self.menu.name, arg)
                await self._unavailable()
                return
            dkind, _, target = dest.partition(":")
            await self.act(f"{'menu' if dkind == 'ivr' else dkind}:{target}")

    async def _leave(self) -> None:
        self._disarm()
        self.state = "leaving"
        await self.player.stop()

    async def _unavailable(self) -> None:
        if self.closed:
            await self._goodbye(Disposition.AFTER_HOURS, "after hours")
        else:
            await self.prompt(before=["try_again_later"])

    async def _goodbye(self, disposition: Disposition, cause: str) -> None:
        self._disarm()
        self.state = "leaving"
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
        self.state = "ringing"
        await self.player.stop()
        try:
            await self.w.play(s.caller_leg, self.cm.moh, loop=True)
        except WorkerError:
            pass
        fd = self.cm.front_door
        try:
            await self.w.originate(self.ring_leg, f"sip:{ext}@{fd}", from_uri=await screenpop.caller_from(self.cm, s),
                                   headers={"X-PBX-Call": s.rec.id})
        except WorkerError as exc:
            self.ring_leg = None
            await self._ring_failed(str(exc), ext=ext)
            return
        await self.event("ivr_dial", extension=ext, leg=self.ring_leg)
        self._arm(self.cm.ring_time)

    async def _ring_answered(self) -> None:
        s = self.s
        self._disarm()
        self.state = "done"
        try:
            await self.w.stop_play(s.caller_leg)
        except WorkerError:
            pass
        s.callee_leg = self.ring_leg
        s.callee = self.ring_ext
        s.rec.extension = self.ring_ext
        s.answered = True
        self.cm.hand_back(s)                # an ordinary answered call of CallManager from here on
        self.fl.forget(s)
        await self.cm.connect(s)
        log.info("call %s: IVR %s connected to extension %s", s.rec.id[:12], self.menu.name, self.ring_ext)

    async def _ring_failed(self, why: str, ext: str | None = None) -> None:
        ext = ext or self.ring_ext
        leg, self.ring_leg = self.ring_leg, None
        self._disarm()
        if leg is not None:
            self.s.dropped.add(leg)
            await self.cm.hangup(self.s, leg, None)
        await self.event("ivr_dial_failed", extension=ext, reason=why)
        try:
            await self.w.stop_play(self.s.caller_leg)
        except WorkerError:
            pass
        box = await self.fl.voicemail_box(ext)
        if box is not None:
            self.state = "leaving"
            if await self.fl.to_voicemail(self.s, ext, answered=True, lang=self.lang):
                return
        self.state = "greeting"
        await self.prompt(before=["all_staff_busy"])

    # ---------------------------------------------------------------- outside numbers
    async def _outside(self, number: str) -> None:
        """``external:NUMBER``: out through the best trunk, as a DID's ``external:`` does
        (:meth:`pypbx.trunks.TrunkRouter._dial_next`: caller ID, channel counting, failover
        to the next trunk on 5xx/408 through ``on_ended``); the caller, already answered,
        hears MOH meanwhile. The IVR stays the call's flow until the answer."""
        from pypbx.numbers import classify
        from pypbx.trunks import TrunkCall
        s, router = self.s, getattr(self.cm, "trunks", None)
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
        self.state = "outside"
        self.ring_ext = number
        try:
            await self.w.play(s.caller_leg, self.cm.moh, loop=True)
        except WorkerError:
            pass
        await self.event("ivr_external", menu=self.menu.name, number=number, number_class=tc.cls)
        if not await router._dial_next(self.cm, s) or s.ended:
            if not s.ended:
                await self._outside_failed("no trunk available")
            return
        s.ring_deadline = None              # the IVR's own timer, not CallManager's
        self._arm(self.cm.ring_time)

    async def _drop_outside(self) -> None:
        s, tc = self.s, self.s.trunk
        leg, s.callee_leg = s.callee_leg, None
        if tc is not None and tc.current is not None:
            self.cm.trunks.svc.trunk_busy(tc.current, -1)
            tc.current = None
        if leg:
            s.dropped.add(leg)
            await self.cm.hangup(self.s, leg, None)

    async def _outside_answered(self) -> None:
        s = self.s
        self._disarm()
        self.state = "done"
        try:
            await self.w.stop_play(s.caller_leg)
        except WorkerError:
            pass
        s.callee = self.ring_ext
        s.answered = True
        s.ring_deadline = None
        self.cm.hand_back(s)                # an ordinary answered (forwarded) call from here on
        self.fl.forget(s)
        await self.cm.connect(s)
        log.info("call %s: IVR %s connected to %s", s.rec.id[:12], self.menu.name, self.ring_ext)

    async def _outside_failed(self, why: str) -> None:
        self._disarm()
        await self._drop_outside()
        if self.s.trunk is not None:
            self.s.trunk.forward = False
        await self.event("ivr_dial_failed", number=self.ring_ext, reason=why)
        try:
            await self.w.stop_play(self.s.caller_leg)
        except WorkerError:
            pass
        self.state = "greeting"
        await self.prompt(before=["all_staff_busy"])

    # ---------------------------------------------------------------- the end
    async def _ended(self, ev: P.Ended) -> None:
        s = self.s
        if self.state == "outside" and ev.leg == s.callee_leg and ev.leg not in s.dropped:
            if await self.cm.trunks.on_ended(self.cm, s, ev):    # failover: the next trunk
                s.ring_deadline = None
                self._arm(self.cm.ring_time)
                return
            await self._outside_failed(f"{ev.cause_code} {ev.reason}".strip())
            return
        if ev.leg in s.dropped and ev.leg != s.caller_leg:
            return
        if ev.leg == self.ring_leg:
            if self.state == "ringing":
                await self._ring_failed(f"{ev.cause_code} {ev.reason}".strip())
            return
        if ev.leg != s.caller_leg:
            return
        ringing = self.state in ("ringing", "outside")
        await self._hangup_all(caller=False)
        if ringing:
            await self.finish(Disposition.ABANDONED_RINGING, "caller",
                              f"while {self.ring_ext} rang: {ev.cause_code} {ev.reason}".strip())
        elif self.end is not None and self.hangup_after:
            await self.finish(self.end[0], "caller", self.end[1])
        elif self.closed:
            await self.finish(Disposition.AFTER_HOURS, "caller", "after hours")
        else:
            await self.finish(Disposition.ABANDONED_IVR, "caller",
                              f"in menu {self.menu.name}: {ev.cause_code} {ev.reason}".strip())

    async def _hangup_all(self, caller: bool = True) -> None:
        self._disarm()
        if self.state == "outside":
            await self._drop_outside()
        if self.ring_leg:
            self.s.dropped.add(self.ring_leg)
            await self.cm.hangup(self.s, self.ring_leg, None)
            self.ring_leg = None
        if caller:
            await self.cm.hangup(self.s, self.s.caller_leg, None)

    async def finish(self, disposition: Disposition, side: str, cause: str) -> None:
        if self.state == "done":
            return
        self._disarm()
        self.state = "done"
        self.fl.forget(self.s)
        await self.cm.finish(self.s, disposition, side=side, cause=cause)

    def finished(self, disposition: Any, side: str) -> None:
        self._disarm()
        self.state = "done"
