"""Routing rules: named routes, each an ordered list of rules ``conditions -> destination``.

A DID (``pypbx did add N --to route:NAME``), an IVR option (``route:NAME``) or a ring
group's ``--then route:NAME`` can send a call through a route. The first rule whose
conditions ALL hold decides; a rule without conditions is the default. Conditions::

    known                  a returning patient (pypbx.callers.known)
    new                    a new caller
    time=DAYS/HH:MM-HH:MM  the time of day in the route's time zone (``pypbx route add --tz``);
                           DAYS as in ``pypbx hours`` (mon-fri, sat, mon/wed/fri); either part
                           may be left out: ``time=08:00-12:00``, ``time=sat-sun``; a range
                           past midnight (``fri/22:00-07:00``) runs into the next morning
    open=SCHEDULE          an opening-hours schedule (pypbx.hours) says open ...
    closed=SCHEDULE        ... or closed (a schedule that does not exist counts as open)
    sticky                 the caller's last agent (pypbx.callers.last_agent) is logged in and
                           not paused in the ACD (on a call / wrap-up counts: ``--prefer-last``
                           waits for them)
    ivr=MENU:DIGITS        the caller chose DIGITS in IVR menu MENU during this call
    caller=PREFIX          the caller's number starts with PREFIX (``+336`` or, nationally, ``06``: compared
                           with the E.164 caller number through the site's region)

Destinations: everything a DID takes (``extension:``, ``queue:``, ``ivr:``, ``voicemail:``,
``group:``, ``external:``, ``route:`` another route) plus ``agent:last``: the extension the
caller's last agent is logged in at (the rule is skipped when there is none). A rule
option ``prefer_last`` (seconds, ``--prefer-last``) on a ``queue:`` destination makes the
queue call prefer the caller's last agent (:class:`acd.model.Caller.preferred_agent`): the
call stays in the ACD's statistics. A rule option ``priority`` (``--priority N``, 0-100) on a
``queue:``, ``ivr:`` or ``route:`` destination is the urgent line: the call keeps that
priority (the highest of the DID's, the rules' and the IVR options' it went through, and
the queue's own) and waits ahead of callers of lower priority in the queue it reaches.

:func:`evaluate` is pure (rules + facts -> :class:`Decision`); :func:`pypbx.flows.route.resolve` gathers the
facts of a live call, evaluates, writes a ``route`` call event and returns the destination.
The store functions back ``pypbx route ...`` (``pypbx/cli/route.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NotRequired, Protocol, TypedDict

from acd.model import AgentState
from pypbx import callers as C
from pypbx import destinations as D
from pypbx import hours as H
from pypbx import sitetime
from pypbx.acdstore import AcdError, parse_priority
from pypbx.db import Database, IntegrityError
from pypbx.db.rows import RouteRuleRow
from pypbx.errors import PbxError, did_you_mean
from pypbx.numbers import DEFAULT_REGION, e164, e164_prefix

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
COND_KINDS = ("known", "new", "time", "open", "closed", "sticky", "ivr", "caller")
_NO_ARG = ("known", "new", "sticky")
_PREFIX_RE = re.compile(r"^\+?[0-9*#]{1,32}$")
_TIME_RANGE_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_IVR_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):([0-9*#]{1,8})$")
#: route:A -> route:B -> ... at most this deep (a loop is cut there).
MAX_DEPTH = 4


class RoutingError(PbxError, ValueError):
    """A one-line, user-facing problem with a route or a rule."""


# ----------------------------------------------------------------------------- the model


#: :meth:`Rule.to_dict` (``pypbx route show --json``); functional syntax: "if" is a keyword.
RuleDict = TypedDict(
    "RuleDict",
    {"position": int, "if": list[str], "to": str, "prefer_last": NotRequired[float], "priority": NotRequired[int]},
)


class RuleOptions(TypedDict, total=False):
    """A rule's options (the ``options`` column, JSON)."""

    prefer_last: float
    priority: int


class RouteDict(TypedDict):
    """:meth:`Route.to_dict` (``pypbx route show --json``)."""

    name: str
    tz: str
    rules: list[RuleDict]
    created_at: float | None


class Facts(TypedDict, total=False):
    """What :func:`evaluate` looks at (see there); :func:`gather_facts` fills it."""

    caller: str  # E.164 when it is a phone number (pypbx.numbers.e164)
    region: str  # the site's: a caller=PREFIX written nationally (06) is compared as +336
    ivr_choices: list[tuple[str, str]]
    now: dt.datetime
    known: bool
    last_agent: str | None
    last_agent_available: bool
    last_agent_ext: str | None
    schedules: dict[str, H.Schedule]


class AgentView(Protocol):
    @property
    def state(self) -> AgentState: ...


class EngineView(Protocol):
    @property
    def agents(self) -> Mapping[str, AgentView]: ...


class AcdView(Protocol):
    """What :func:`gather_facts` reads of the live ACD (:class:`pypbx.acdlive.AcdLive`)."""

    @property
    def engine(self) -> EngineView: ...
    @property
    def agent_ext(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Condition:
    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return self.kind if not self.arg else f"{self.kind}={self.arg}"


@dataclass(frozen=True)
class Rule:
    conditions: tuple[Condition, ...]
    destination: str
    prefer_last: float | None = None  # seconds: a queue call prefers the caller's last agent
    position: int = 0  # 1-based, as stored
    priority: int = 0  # the urgent line: the call's queue priority (0 = as it was)

    @property
    def is_default(self) -> bool:
        return not self.conditions

    def options(self) -> RuleOptions:
        opts: RuleOptions = {"prefer_last": self.prefer_last} if self.prefer_last else {}
        if self.priority:
            opts["priority"] = self.priority
        return opts

    def to_dict(self) -> RuleDict:
        d: RuleDict = {"position": self.position, "if": [str(c) for c in self.conditions], "to": self.destination}
        if self.prefer_last:
            d["prefer_last"] = self.prefer_last
        if self.priority:
            d["priority"] = self.priority
        return d

    def describe(self) -> str:
        cond = " and ".join(str(c) for c in self.conditions) or "(default)"
        extra = f" (prefer last agent {self.prefer_last:g} s)" if self.prefer_last else ""
        if self.priority:
            extra += f" (priority {self.priority})"
        return f"{cond} -> {self.destination}{extra}"


@dataclass(frozen=True)
class Route:
    name: str
    tz: str = "UTC"
    rules: tuple[Rule, ...] = ()
    created_at: float | None = None

    def to_dict(self) -> RouteDict:
        return {
            "name": self.name,
            "tz": self.tz,
            "rules": [r.to_dict() for r in self.rules],
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Decision:
    """What :func:`evaluate` found. ``rule`` is the matching rule's position (None: no
    rule matched); ``destination`` is ready to use (``agent:last`` already resolved);
    ``prefer_agent`` / ``prefer_for``: the queue call's sticky agent; ``trace``: one line
    per rule tried (for ``pypbx route test``); ``priority``: the rule's queue priority."""

    rule: int | None
    destination: str | None
    prefer_agent: str | None = None
    prefer_for: float = 0.0
    trace: tuple[str, ...] = ()
    priority: int = 0

    @property
    def matched(self) -> bool:
        return self.rule is not None


# ----------------------------------------------------------------------------- parsing


def _parse_time(arg: str) -> tuple[list[int], tuple[int, int] | None]:
    """``mon-fri/08:00-12:00`` | ``08:00-12:00`` | ``sat-sun`` -> (weekdays, minute range).
    A range that ends before it starts runs past midnight (``22:00-07:00``: from 22:00 on
    the days given to 07:00 the next morning)."""
    arg = arg.strip().lower()
    if not arg:
        raise RoutingError("time= needs DAYS/HH:MM-HH:MM (e.g. time=mon-fri/08:00-12:00)")
    days_txt, _, rng_txt = arg.rpartition("/")
    if ":" not in rng_txt:  # days only
        days_txt, rng_txt = arg, ""
    try:
        days = H._parse_days(days_txt) if days_txt else list(range(7))
    except H.HoursError as e:
        raise RoutingError(f"bad time={arg}: {e}") from None
    if not rng_txt:
        return days, None
    m = _TIME_RANGE_RE.match(rng_txt)
    if not m:
        raise RoutingError(f"bad time={arg}: want HH:MM-HH:MM")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise RoutingError(f"bad time={arg}: no such time of day")
    a, b = h1 * 60 + m1, h2 * 60 + m2
    if a == b or (b == 1440 and a == 0):
        raise RoutingError(f"bad time={arg}: an empty or whole-day range (leave the time out for all day)")
    return days, (a, b % 1440)  # start > end: past midnight (24:00 is 0)


def _in_time(days: list[int], rng: tuple[int, int] | None, t: dt.datetime) -> bool:
    minute = t.hour * 60 + t.minute
    if rng is None:
        return t.weekday() in days
    a, b = rng
    if a < b:
        return t.weekday() in days and a <= minute < b
    # past midnight: the evening of a day given, or the small hours after one
    return (t.weekday() in days and minute >= a) or ((t.weekday() - 1) % 7 in days and minute < b)


def parse_condition(text: str) -> Condition:
    text = (text or "").strip()
    kind, eq, arg = text.partition("=")
    kind, arg = kind.strip().lower(), arg.strip()
    if kind not in COND_KINDS:
        raise RoutingError(
            f"bad condition {text!r} (want one of known, new, sticky, time=DAYS/HH:MM-HH:MM, "
            "open=SCHEDULE, closed=SCHEDULE, ivr=MENU:DIGITS, caller=PREFIX)"
        )
    if kind in _NO_ARG:
        if eq:
            raise RoutingError(f"condition {kind} takes no value")
        return Condition(kind)
    if not arg:
        raise RoutingError(f"condition {kind}= needs a value")
    if kind == "time":
        _parse_time(arg)
        arg = arg.lower()
    elif kind in ("open", "closed"):
        if not H.NAME_RE.match(arg):
            raise RoutingError(f"bad schedule name {arg!r}")
    elif kind == "ivr":
        if not _IVR_RE.match(arg):
            raise RoutingError(f"bad ivr={arg} (want MENU:DIGITS, e.g. ivr=main:2)")
    elif kind == "caller":
        arg = arg.replace(" ", "")
        if not _PREFIX_RE.match(arg):
            raise RoutingError(f"bad caller={arg} (want a number prefix, e.g. caller=+336)")
    return Condition(kind, arg)


def parse_destination(dest: str) -> str:
    """A DID destination (:func:`pypbx.destinations.parse_destination`), ``route:NAME`` or ``agent:last``."""
    d = (dest or "").strip()
    kind, _, target = d.partition(":")
    if kind.strip().lower() == "agent":
        if target.strip().lower() != "last":
            raise RoutingError(f"bad destination {dest!r}: agent:last is the only agent destination")
        return "agent:last"
    if kind.strip().lower() == "route":
        if not NAME_RE.match(target.strip()):
            raise RoutingError(f"bad route name in {dest!r}")
        return f"route:{target.strip()}"
    try:
        return D.parse_destination(d)
    except D.DestinationError as e:
        raise RoutingError(f"{e}, route:NAME or agent:last") from None


def make_rule(
    conditions: Sequence[str],
    destination: str,
    prefer_last: float | None = None,
    position: int = 0,
    priority: int | str | None = None,
) -> Rule:
    conds = tuple(parse_condition(c) for c in conditions)
    kinds = [c.kind for c in conds]
    if "known" in kinds and "new" in kinds:
        raise RoutingError("a rule cannot ask for both known and new callers")
    dest = parse_destination(destination)
    if prefer_last is not None:
        if prefer_last <= 0:
            raise RoutingError("--prefer-last must be > 0 seconds")
        if not dest.startswith("queue:"):
            raise RoutingError("--prefer-last needs a queue: destination (the queue prefers the last agent)")
    prio = 0
    if priority is not None:
        prio = _priority(priority)
        if prio and dest.partition(":")[0] not in PRIORITY_KINDS:
            raise RoutingError("--priority needs a queue:, ivr: or route: destination (it counts in a queue)")
    return Rule(conds, dest, float(prefer_last) if prefer_last else None, position, prio)


#: Destinations a rule's ``--priority`` makes sense for: the call may wait in a queue there.
PRIORITY_KINDS = ("queue", "ivr", "route")


def _priority(value: int | str) -> int:
    try:
        return parse_priority(value)
    except AcdError as e:
        raise RoutingError(str(e)) from None


# ----------------------------------------------------------------------------- evaluation (pure)


def _holds(c: Condition, facts: Facts, tz: str) -> bool:
    k = c.kind
    if k == "known":
        return bool(facts.get("known"))
    if k == "new":
        return not facts.get("known")
    if k == "sticky":
        return bool(facts.get("last_agent")) and bool(facts.get("last_agent_available"))
    if k == "caller":
        caller = str(facts.get("caller") or "")
        region = facts.get("region") or DEFAULT_REGION
        return caller.startswith((c.arg, e164_prefix(c.arg, region)))
    if k == "ivr":
        menu, _, digits = c.arg.partition(":")
        return any(m == menu and d == digits for m, d in facts.get("ivr_choices") or ())
    now = facts.get("now") or dt.datetime.now(dt.UTC)
    if k == "time":
        days, rng = _parse_time(c.arg)
        t = now.astimezone(H.zone(tz)) if now.tzinfo else now.replace(tzinfo=H.zone(tz))
        return _in_time(days, rng, t)
    if k in ("open", "closed"):
        sched = (facts.get("schedules") or {}).get(c.arg)
        is_open = True if sched is None else H.is_open(sched, now)
        return is_open if k == "open" else not is_open
    return False


def evaluate(rules: Sequence[Rule], facts: Facts, tz: str = "UTC") -> Decision:
    """The first rule whose conditions all hold (pure: no I/O, the clock is ``facts["now"]``).

    facts: ``known`` (bool), ``now`` (aware datetime), ``caller`` (number), ``last_agent``
    (agent id or None), ``last_agent_available`` (bool), ``last_agent_ext`` (the
    extension the last agent is logged in at, for ``agent:last``), ``ivr_choices``
    ([(menu, digits)]), ``schedules`` ({name: pypbx.hours.Schedule} for open=/closed=).
    """
    trace: list[str] = []
    for i, r in enumerate(rules, start=1):
        pos = r.position or i
        failed = next((c for c in r.conditions if not _holds(c, facts, tz)), None)
        if failed is not None:
            trace.append(f"rule {pos}: {failed} does not hold")
            continue
        dest = r.destination
        if dest == "agent:last":
            ext = facts.get("last_agent_ext")
            if not facts.get("last_agent") or not ext:
                trace.append(f"rule {pos}: agent:last, but the caller's last agent is not logged in")
                continue
            dest = f"extension:{ext}"
        prefer, secs = None, 0.0
        if r.prefer_last and facts.get("last_agent") and facts.get("last_agent_available"):
            prefer, secs = str(facts["last_agent"]), float(r.prefer_last)
        trace.append(
            f"rule {pos}: matches -> {dest}"
            + (f" (prefer agent {prefer} {secs:g} s)" if prefer else "")
            + (f" (priority {r.priority})" if r.priority else "")
        )
        return Decision(pos, dest, prefer, secs, tuple(trace), r.priority)
    trace.append("no rule matched")
    return Decision(None, None, trace=tuple(trace))


# ----------------------------------------------------------------------------- the store


def _check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise RoutingError(f"bad route name {name!r}: letters, digits, '-', '_' and '.' only")
    return name


def _rule_from_row(row: RouteRuleRow) -> Rule:
    conds = tuple(parse_condition(c) for c in json.loads(row["conditions"] or "[]"))
    opts = json.loads(row["options"] or "{}")
    return Rule(
        conds, row["destination"], opts.get("prefer_last"), int(row["position"]), int(opts.get("priority") or 0)
    )


async def add_route(db: Database, name: str, tz: str | None = None, clock: Callable[[], float] = time.time) -> Route:
    """Create route ``name``; its time= conditions are read in ``tz`` (None: the site's zone)."""
    _check_name(name)
    tz = tz or sitetime.zone_name()
    try:
        H.zone(tz)
    except H.HoursError as e:
        raise RoutingError(str(e)) from None
    try:
        await db.insert_route_row(name, tz, clock())
    except IntegrityError:
        raise RoutingError(f"route {name} already exists") from None
    return Route(name, tz)


async def get_route(db: Database, name: str) -> Route:
    row = await db.get_route_row(name)
    if row is None:
        raise RoutingError(f"no route {name!r} (create it: pypbx route add {name})")
    rules = tuple(_rule_from_row(r) for r in await db.list_route_rule_rows(name))
    return Route(row["name"], row["tz"], rules, row["created_at"])


async def list_routes(db: Database) -> list[Route]:
    rules: dict[str, list[Rule]] = {}
    for r in await db.list_route_rule_rows():
        rules.setdefault(r["route"], []).append(_rule_from_row(r))
    return [
        Route(r["name"], r["tz"], tuple(rules.get(r["name"], ())), r["created_at"]) for r in await db.list_route_rows()
    ]


async def remove_route(db: Database, name: str) -> list[str]:
    """Remove route ``name``; returns what still points to it (DIDs, other routes' rules,
    IVR options, ring groups' --then): those calls then get the fallback."""
    if not await db.delete_route_row(name):
        raise RoutingError(f"no route {name!r}")
    return await references(db, name)


async def references(db: Database, name: str) -> list[str]:
    ref, out = f"route:{name}", []
    for d in await db.list_did_rows():
        if ref in (d["destination"], d.get("known_dest"), d.get("new_dest")):
            out.append(f"DID {d['number']}")
    for r in await db.list_route_rule_rows():
        if r["destination"] == ref and r["route"] != name:
            out.append(f"route {r['route']} rule {r['position']}")
    for m in await db.list_ivr_menu_rows():
        if f'"{ref}"' in (m.get("config") or ""):
            out.append(f"IVR menu {m['name']}")
    for g in await db.list_ring_group_rows():
        if g.get("then_dest") == ref:
            out.append(f"ring group {g['name']}")
    return out


async def set_tz(db: Database, name: str, tz: str) -> Route:
    try:
        H.zone(tz)
    except H.HoursError as e:
        raise RoutingError(str(e)) from None
    if not await db.set_route_tz_row(name, tz):
        raise RoutingError(f"no route {name!r}")
    return await get_route(db, name)


async def _save_rules(db: Database, name: str, rules: Sequence[Rule]) -> Route:
    await db.replace_route_rule_rows(
        name, [(json.dumps([str(c) for c in r.conditions]), r.destination, json.dumps(r.options())) for r in rules]
    )
    return await get_route(db, name)


async def check_destination(db: Database, dest: str, route: str | None = None) -> None:
    """Where checkable, the destination must point somewhere (else RoutingError)."""
    kind, _, target = dest.partition(":")
    missing = None
    if kind == "route":
        if target == route:
            raise RoutingError(f"route {route} cannot send calls to itself")
        if await db.get_route_row(target) is None:
            missing = f"no route {target!r}"
    elif kind == "ivr":
        if await db.get_ivr_menu_row(target) is None:
            missing = f"no IVR menu {target!r}"
    elif kind == "group":
        if await db.get_ring_group_row(target) is None:
            missing = f"no ring group {target!r}"
    elif kind == "queue":
        if await db.get_queue_row(target) is None:
            missing = f"no queue {target!r}"
    elif kind == "extension" and await db.get_extension_row(target) is None:
        missing = f"no extension {target!r}"
    if missing:
        hint = did_you_mean(target.partition("@")[0], await D.known_names(db, kind))
        raise RoutingError(f"destination {dest}: {missing}{hint}")


async def check_condition(db: Database, c: Condition) -> None:
    if c.kind in ("open", "closed") and await db.get_schedule_row(c.arg) is None:
        raise RoutingError(f"condition {c}: no schedule {c.arg!r} (pypbx hours set {c.arg} ...)")
    if c.kind == "ivr" and await db.get_ivr_menu_row(c.arg.partition(":")[0]) is None:
        raise RoutingError(f"condition {c}: no IVR menu {c.arg.partition(':')[0]!r}")


async def add_rule(
    db: Database,
    name: str,
    conditions: Sequence[str],
    destination: str,
    prefer_last: float | None = None,
    position: int | None = None,
    priority: int | str | None = None,
) -> Route:
    """Append (or insert at 1-based ``position``) a rule to route ``name``."""
    route = await get_route(db, name)
    rule = make_rule(conditions, destination, prefer_last, priority=priority)
    for c in rule.conditions:
        await check_condition(db, c)
    await check_destination(db, rule.destination, route=name)
    rules = list(route.rules)
    if position is None:
        rules.append(rule)
    else:
        if not 1 <= position <= len(rules) + 1:
            raise RoutingError(f"bad position {position}: 1..{len(rules) + 1}")
        rules.insert(position - 1, rule)
    return await _save_rules(db, name, rules)


async def remove_rule(db: Database, name: str, position: int) -> Route:
    route = await get_route(db, name)
    if not 1 <= position <= len(route.rules):
        raise RoutingError(
            f"route {name} has no rule {position}" + (f" (1..{len(route.rules)})" if route.rules else "")
        )
    rules = [r for i, r in enumerate(route.rules, start=1) if i != position]
    return await _save_rules(db, name, rules)


# ----------------------------------------------------------------------------- live calls


async def gather_facts(
    db: Database,
    route: Route,
    caller: str,
    *,
    acd: AcdView | None = None,
    ivr_choices: Sequence[tuple[str, str]] = (),
    now: dt.datetime | None = None,
) -> Facts:
    """What the route's conditions need, read from the database and the live ACD (only
    the lookups the rules ask for)."""
    kinds = {c.kind for r in route.rules for c in r.conditions}
    needs_agent = "sticky" in kinds or any(r.destination == "agent:last" or r.prefer_last for r in route.rules)
    schedules: dict[str, H.Schedule] = {}
    caller = e164(caller, db.region)
    facts: Facts = {
        "caller": caller,
        "region": db.region,
        "ivr_choices": list(ivr_choices),
        "now": now or H.now(route.tz),
        "known": False,
        "last_agent": None,
        "last_agent_available": False,
        "last_agent_ext": None,
        "schedules": schedules,
    }
    if kinds & {"known", "new"}:
        facts["known"] = await C.known(db, caller)
    if needs_agent:
        agent = await C.last_agent(db, caller)
        facts["last_agent"] = agent
        if agent and acd is not None:
            a = getattr(getattr(acd, "engine", None), "agents", {}).get(agent)
            if a is not None:
                facts["last_agent_available"] = a.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED)
                if a.state is not AgentState.LOGGED_OUT:
                    facts["last_agent_ext"] = getattr(acd, "agent_ext", {}).get(agent)
    for c in (c for r in route.rules for c in r.conditions if c.kind in ("open", "closed")):
        try:
            schedules[c.arg] = await H.get_schedule(db, c.arg)
        except H.HoursError:
            log.warning("route %s: schedule %s does not exist (counts as open)", route.name, c.arg)
    return facts


@dataclass
class _SavedAgent:
    id: str
    state: AgentState


@dataclass
class _SavedEngine:
    agents: dict[str, _SavedAgent] = field(default_factory=dict)


@dataclass
class SavedAcd:
    """The ACD as the database has it (:func:`acd_from_db`): an :class:`AcdView`."""

    engine: _SavedEngine
    agent_ext: dict[str, str]


async def acd_from_db(db: Database) -> SavedAcd:
    """The agents' states and extensions as the database has them (what the running PBX
    last saved), shaped like :class:`pypbx.acdlive.AcdLive` for :func:`gather_facts`."""

    agents: dict[str, _SavedAgent] = {}
    ext: dict[str, str] = {}
    for r in await db.list_agent_rows():
        try:
            state = AgentState(r.get("state") or "logged_out")
        except ValueError:
            state = AgentState.LOGGED_OUT
        agents[r["id"]] = _SavedAgent(id=r["id"], state=state)
        extension = r.get("extension")
        if extension and state is not AgentState.LOGGED_OUT:
            ext[r["id"]] = extension
    return SavedAcd(engine=_SavedEngine(agents=agents), agent_ext=ext)


class DryRunStep(TypedDict):
    """One route :func:`dry_run` went through (a loop cut short has only the first four keys)."""

    route: str
    rule: int | None
    destination: str | None
    trace: list[str]
    prefer_agent: NotRequired[str | None]
    prefer_for: NotRequired[float | None]
    priority: NotRequired[int]
    known: NotRequired[bool]
    last_agent: NotRequired[str | None]
    now: NotRequired[str]


class DryRun(TypedDict):
    """:func:`dry_run` (``pypbx route test --json``)."""

    caller: str
    destination: str | None
    steps: list[DryRunStep]


async def dry_run(
    db: Database,
    name: str,
    caller: str,
    *,
    at: dt.datetime | None = None,
    ivr_choices: Sequence[tuple[str, str]] = (),
    acd: AcdView | None = None,
) -> DryRun:
    """``pypbx route test``: which rule would match (following ``route:`` destinations).
    ``at`` without a zone is in each route's time zone; the agents' states come from the
    database unless ``acd`` is given."""
    if acd is None:
        acd = await acd_from_db(db)
    steps: list[DryRunStep] = []
    seen: list[str] = []
    dest: str | None = None
    while True:
        if name in seen or len(seen) >= MAX_DEPTH:
            steps.append({"route": name, "rule": None, "destination": None, "trace": ["route loop / too deep"]})
            dest = None
            break
        seen.append(name)
        route = await get_route(db, name)
        when = at.replace(tzinfo=H.zone(route.tz)) if at is not None and at.tzinfo is None else at
        facts = await gather_facts(db, route, caller, acd=acd, ivr_choices=ivr_choices, now=when)
        d = evaluate(route.rules, facts, route.tz)
        steps.append(
            {
                "route": name,
                "rule": d.rule,
                "destination": d.destination,
                "prefer_agent": d.prefer_agent,
                "prefer_for": d.prefer_for or None,
                "priority": d.priority,
                "known": facts["known"],
                "last_agent": facts["last_agent"],
                "now": facts["now"].astimezone(H.zone(route.tz)).isoformat(timespec="minutes"),
                "trace": list(d.trace),
            }
        )
        dest = d.destination
        if dest is None or not dest.startswith("route:"):
            break
        name = dest.partition(":")[2]
    return {"caller": caller, "destination": dest, "steps": steps}
