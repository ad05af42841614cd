"""Ring groups: several extensions rung at once (``all``) or one after another (``order``).

Store (CLI ``pypbx group add|list|show|remove``): :class:`RingGroup` -- name, members
(extension numbers), strategy, ``ring_time`` (seconds: the whole ring for ``all``, each
member's turn for ``order``) and ``then``: where an unanswered call goes
(``voicemail:BOX``, ``queue:NAME``, ``extension:NUMBER``; empty: 480 / goodbye).

Live:

* :class:`GroupService` (``CallManager.groups``, set by the app): the front door asks it
  (:meth:`GroupService.route`) where a worker's ``sip:grp-<token>@...`` ring leg goes:
  every registered contact of every member being rung, in ONE fork (as
  :meth:`pypbx.acdlive.AcdLive.route` does for agents);
* :class:`GroupCall` drives one call as the call's flow (``CallManager.hand_over``):
  rings (one leg per step), relays ringing to an unanswered caller (MOH to an answered
  one: IVR, queue overflow), and on answer gives the session back to CallManager as an
  ordinary answered call (bridged, recorded); no answer -> ``then``.

Reached from a DID (``pypbx did add ... --to group:NAME``), an IVR action ``group:NAME``
and a queue's overflow (``--overflow-to ring_group:NAME``), all through
:meth:`pypbx.frontline.FrontLine.start_destination`.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from pypbx import screenpop
from pypbx.calllog import Disposition
from pypbx.db import Database, IntegrityError
from pypbx.call import Tick
from pypbx.flows.base import TimedFlow
from pypbx.call.logs import call_log

log = logging.getLogger(__name__)

STRATEGIES = ("all", "order")
THEN_KINDS = ("voicemail", "queue", "extension", "route")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MEMBER_RE = re.compile(r"^[0-9]{1,16}$")
#: Request-URI user prefix of a group's ring leg: ``sip:grp-<token>@front-door``.
RING_PREFIX = "grp-"
#: The proxy's own ring timeout for a ring leg is the group's plus this (the call decides).
RING_GRACE = 5.0


class GroupError(ValueError):
    """A one-line, user-facing problem with a ring group."""


@dataclass
class RingGroup:
    name: str
    members: list[str] = field(default_factory=list)
    strategy: str = "all"
    ring_time: float = 20.0
    then: str = ""
    created_at: float | None = None

    def validate(self) -> "RingGroup":
        if not NAME_RE.match(self.name or ""):
            raise GroupError(f"bad group name {self.name!r}: letters, digits, '-', '_' and '.'")
        members = []
        for m in self.members:
            m = str(m).strip()
            if not m:
                continue
            if not MEMBER_RE.match(m):
                raise GroupError(f"bad member {m!r}: an extension number")
            if m not in members:
                members.append(m)
        if not members:
            raise GroupError("a ring group needs at least one member (--members 1001,1002)")
        self.members = members
        if self.strategy not in STRATEGIES:
            raise GroupError(f"bad strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        if not 0 < float(self.ring_time) <= 600:
            raise GroupError("ring time must be > 0 and at most 600 seconds")
        self.ring_time = float(self.ring_time)
        self.then = parse_then(self.then)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_then(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        return ""
    kind, _, target = text.partition(":")
    kind = {"ext": "extension", "vm": "voicemail"}.get(kind.strip().lower(), kind.strip().lower())
    if kind not in THEN_KINDS or not target.strip():
        raise GroupError(f"bad --then {text!r}: voicemail:BOX, queue:NAME, extension:NUMBER or route:NAME")
    return f"{kind}:{target.strip()}"


def parse_members(text: str | list[str]) -> list[str]:
    if isinstance(text, str):
        return [m.strip() for m in text.replace(" ", ",").split(",") if m.strip()]
    return list(text)


# ----------------------------------------------------------------------------- store

def _from_row(row: dict[str, Any]) -> RingGroup:
    return RingGroup(name=row["name"], members=json.loads(row["members"] or "[]"), strategy=row["strategy"],
                     ring_time=row["ring_time"], then=row["then_dest"] or "", created_at=row["created_at"])


async def add_group(db: Database, group: RingGroup, now: float | None = None) -> RingGroup:
    group.validate()
    group.created_at = now if now is not None else time.time()
    try:
        await db.insert_ring_group_row(group.name, json.dumps(group.members), group.strategy,
                                       group.ring_time, group.then, group.created_at)
    except IntegrityError:
        raise GroupError(f"ring group {group.name} already exists") from None
    return group


async def get_group(db: Database, name: str) -> RingGroup:
    row = await db.get_ring_group_row(name)
    if row is None:
        raise GroupError(f"no ring group named {name!r}")
    return _from_row(row)


async def list_groups(db: Database) -> list[RingGroup]:
    return [_from_row(r) for r in await db.list_ring_group_rows()]


async def remove_group(db: Database, name: str) -> None:
    if not await db.delete_ring_group_row(name):
        raise GroupError(f"no ring group named {name!r}")


# ----------------------------------------------------------------------------- live

class GroupService:
    """The front door's view of ring legs in progress (see the module docstring)."""

    def __init__(self, *, contacts: Callable[[str], list],
                 answered_by: Callable[[str, tuple[str, ...]], str | None] | None = None) -> None:
        self.contacts = contacts
        self.answered_by = answered_by
        self.rings: dict[str, tuple[tuple[str, ...], float]] = {}    # token -> (extensions, timeout)

    def ring(self, extensions: tuple[str, ...], timeout: float) -> str:
        token = uuid.uuid4().hex[:16]
        self.rings[token] = (tuple(extensions), timeout)
        return token

    def done(self, token: str | None) -> None:
        if token:
            self.rings.pop(token, None)

    def route(self, request: Any) -> Any:
        """A worker's ring leg ``sip:grp-<token>@...``: fork to every registered contact of
        the members being rung (None: not ours)."""
        from sip.proxy import RouteDecision
        user = request.uri.user or ""
        if not user.startswith(RING_PREFIX):
            return None
        ring = self.rings.get(user[len(RING_PREFIX):])
        if ring is None or request.method != "INVITE":
            return RouteDecision.reject(481 if request.method != "INVITE" else 404)
        exts, timeout = ring
        targets = []
        for ext in exts:
            targets.extend(self.contacts(ext))
        if not targets:
            return RouteDecision.reject(480, "Temporarily Unavailable - no member registered")
        return RouteDecision.fork(targets, ring_timeout=timeout + RING_GRACE)

    def who_answered(self, token: str, sip_call_id: str) -> str:
        exts, _ = self.rings.get(token, ((), 0.0))
        if len(exts) == 1:
            return exts[0]
        if self.answered_by is not None and exts:
            try:
                ext = self.answered_by(sip_call_id, exts)
            except Exception:
                ext = None
            if ext:
                return ext
        return exts[0] if exts else ""



class GroupCallState(enum.Enum):
    """Where a ring group call is."""
    RINGING = "ringing"
    ANSWERING = "answering"
    LEAVING = "leaving"
    DONE = "done"


class GroupCall(TimedFlow):
    """One call ringing a group (see the module docstring)."""

    def __init__(self, fl: Any, s: Any, group: RingGroup, svc: GroupService, *, answered: bool) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.w = s.worker
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
        await self.event("ring_group", group=g.name, strategy=g.strategy, members=list(g.members),
                         ring_time=g.ring_time, then=g.then or None)
        call_log(log, s).info("%s -> ring group %s (%s: %s)", s.caller, g.name, g.strategy,
                 ",".join(g.members))
        if self.caller_answered:
            try:
                await self.w.play(s.caller_leg, self.cm.moh, loop=True)
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
            await self.w.originate(self.leg, f"sip:{RING_PREFIX}{self.token}@{fd}",
                                   from_uri=await screenpop.caller_from(cm, self.s),
                                   headers={"X-PBX-Call": self.s.rec.id, "X-PBX-Group": self.group.name})
        except Exception as exc:
            call_log(log, self.s).warning("ringing group %s (%s) failed: %s", self.group.name,
                        exts, exc)
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
    async def handle(self, ev: Any) -> None:
        from media import protocol as P
        from pypbx.call import Shutdown
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
                    await self.w.answer(s.caller_leg, 180)
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
                await self.event("ring_group_dial_failed", group=self.group.name, extensions=list(self.exts),
                                 cause=f"{ev.cause_code} {ev.reason}".strip())
                await self._drop_leg()
                await self._next()
            elif ev.leg == s.caller_leg:
                await self._drop_leg()
                await self.finish(Disposition.ABANDONED_RINGING, "caller",
                                  f"while group {self.group.name} rang: {ev.cause_code} {ev.reason}".strip())
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self._disarm()
            self.svc.done(self.token)
            self.state = GroupCallState.DONE
            await self.cm.worker_lost(s, ev)

    async def _answered(self, ev: Any) -> None:
        s = self.s
        self._disarm()
        ext = self.svc.who_answered(self.token or "", ev.call_id) if self.token else (self.exts or ("",))[0]
        self.svc.done(self.token)
        self.token = None
        self.state = GroupCallState.DONE
        s.callee_leg = self.leg
        s.callee = ext
        s.rec.extension = ext or None
        s.answered = True
        s.ring_deadline = None
        self.cm.hand_back(s)                # an ordinary answered call of CallManager from here on
        self.fl.forget(s)
        await self.event("ring_group_answered", group=self.group.name, extension=ext)
        call_log(log, s).info("ring group %s answered by %s", self.group.name, ext)
        if self.caller_answered:
            try:
                await self.w.stop_play(s.caller_leg)
            except Exception:
                pass
            await self.cm.connect(s)
        else:
            await self.w.answer(s.caller_leg, 200)     # CallManager connects on the caller's answer

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
                    await self.w.stop_play(s.caller_leg)
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

    def finished(self, disposition: Any, side: str) -> None:
        self._disarm()
        self.svc.done(self.token)
        self.state = GroupCallState.DONE
