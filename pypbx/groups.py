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
* :class:`pypbx.flows.group.GroupCall` drives one call as the call's flow (``CallManager.hand_over``):
  rings (one leg per step), relays ringing to an unanswered caller (MOH to an answered
  one: IVR, queue overflow), and on answer gives the session back to CallManager as an
  ordinary answered call (bridged, recorded); no answer -> ``then``.

Reached from a DID (``pypbx did add ... --to group:NAME``), an IVR action ``group:NAME``
and a queue's overflow (``--overflow-to ring_group:NAME``), all through
:meth:`pypbx.frontline.FrontLine.start_destination`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from pypbx.db import Database, IntegrityError
from pypbx.db.rows import RingGroupRow
from pypbx.errors import PbxError
from sip.message import Request
from sip.proxy import RouteDecision

log = logging.getLogger(__name__)

STRATEGIES = ("all", "order")
THEN_KINDS = ("voicemail", "queue", "extension", "route")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MEMBER_RE = re.compile(r"^[0-9]{1,16}$")
#: Request-URI user prefix of a group's ring leg: ``sip:grp-<token>@front-door``.
RING_PREFIX = "grp-"
#: The proxy's own ring timeout for a ring leg is the group's plus this (the call decides).
RING_GRACE = 5.0


class GroupError(PbxError, ValueError):
    """A one-line, user-facing problem with a ring group."""


class RingGroupDict(TypedDict):
    """:meth:`RingGroup.to_dict` (``pypbx group show --json``)."""

    name: str
    members: list[str]
    strategy: str
    ring_time: float
    then: str
    created_at: float | None


@dataclass
class RingGroup:
    name: str
    members: list[str] = field(default_factory=list)
    strategy: str = "all"
    ring_time: float = 20.0
    then: str = ""
    created_at: float | None = None

    def validate(self) -> RingGroup:
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

    def to_dict(self) -> RingGroupDict:
        return {
            "name": self.name,
            "members": list(self.members),
            "strategy": self.strategy,
            "ring_time": self.ring_time,
            "then": self.then,
            "created_at": self.created_at,
        }


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


def _from_row(row: RingGroupRow) -> RingGroup:
    return RingGroup(
        name=row["name"],
        members=json.loads(row["members"] or "[]"),
        strategy=row["strategy"],
        ring_time=row["ring_time"],
        then=row["then_dest"] or "",
        created_at=row["created_at"],
    )


async def add_group(db: Database, group: RingGroup, now: float | None = None) -> RingGroup:
    group.validate()
    group.created_at = now if now is not None else time.time()
    try:
        await db.insert_ring_group_row(
            group.name, json.dumps(group.members), group.strategy, group.ring_time, group.then, group.created_at
        )
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

    def __init__(
        self,
        *,
        contacts: Callable[[str], list],
        answered_by: Callable[[str, tuple[str, ...]], str | None] | None = None,
    ) -> None:
        self.contacts = contacts
        self.answered_by = answered_by
        self.rings: dict[str, tuple[tuple[str, ...], float]] = {}  # token -> (extensions, timeout)

    def ring(self, extensions: tuple[str, ...], timeout: float) -> str:
        token = uuid.uuid4().hex[:16]
        self.rings[token] = (tuple(extensions), timeout)
        return token

    def done(self, token: str | None) -> None:
        if token:
            self.rings.pop(token, None)

    def route(self, request: Request) -> RouteDecision | None:
        """A worker's ring leg ``sip:grp-<token>@...``: fork to every registered contact of
        the members being rung (None: not ours)."""
        user = request.uri.user or ""
        if not user.startswith(RING_PREFIX):
            return None
        ring = self.rings.get(user[len(RING_PREFIX) :])
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
