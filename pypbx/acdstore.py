"""The ACD's admin side: queues, agents, agent states, callbacks, queue events, engine state.

Validated domain functions over :class:`pypbx.db.Database` methods (no SQL here). Every
problem a user can cause is an :class:`AcdError` with a one-line message.

* A queue is stored as its :class:`acd.model.QueueConfig` (``to_dict()`` as JSON), so what
  the live core loads is exactly what the admin configured (:func:`load_engine_config`).
* An agent is a login (``id``), a name, skills with levels 1-10 and an optional wrap-up
  override; :func:`login` / :func:`logout` / :func:`pause` / :func:`unpause` write the
  saved state AND an ``agent_events`` row in one transaction. An agent logged in at one
  extension who logs in at another moves there; one extension holds at most one agent.
* Callbacks: :func:`request_callback` merges a request for a number that already has an
  open one (pending or dialing), in any queue (``merged_count`` + 1): one open callback per number.
* Queue events (``queue_events``) and agent events (``agent_events``) are append-only.

Text forms used by the CLI (and accepted by the functions):

* skills: ``new_patients:8,korean:5`` (level 1-10; skill names are lower-case letters,
  digits and ``_``);
* targets: ``queue:front_desk``, ``extension:1001``, ``ring_group:nurses``,
  ``external:+3312345`` (``ext:`` and ``group:`` are accepted as short forms);
* overflow: ``after=20,queue:front_desk``;
* skill relaxation: ``30:5,60:1`` (after 30 s accept level 5, after 60 s level 1).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from acd.model import (
    Agent,
    AgentState,
    JoinEmpty,
    OverflowRule,
    PauseReason,
    QueueConfig,
    QueueEvent,
    Relaxation,
    Strategy,
    Target,
    TargetKind,
)
from pypbx import destinations as D
from pypbx import prompts as P
from pypbx.db import Database, IntegrityError
from pypbx.db.rows import AgentEventRow, AgentRow, CallbackRow, QueueRow
from pypbx.errors import PbxError, PbxUsageError
from pypbx.jsontypes import JSON
from pypbx.numbers import e164, is_emergency

QUEUE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
AGENT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
SKILL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
EXTENSION_RE = re.compile(r"^[0-9]{2,8}$")
PHONE_RE = re.compile(r"^\+?[0-9]{2,20}$")
LANGUAGES = ("en", "ko", "ru", "zh", "fr")
MAX_NAME_LENGTH = 64
CALLBACK_STATUSES = ("pending", "dialing", "done", "failed")
ENGINE_STATE_KEY = "engine"

_TARGET_ALIASES = {
    "ext": "extension",
    "group": "ring_group",
    "ring-group": "ring_group",
    "number": "external",
    "vm": "voicemail",
    "mailbox": "voicemail",
}
#: A mailbox name (as pypbx.voicemail.BOX_RE).
_BOX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AgentDict(TypedDict):
    """:meth:`AgentRecord.to_dict`."""

    id: str
    name: str
    skills: dict[str, int]
    wrap_up: float | None
    extension: str | None
    state: str
    pause_reason: str | None
    state_since: float | None
    created_at: float | None
    updated_at: float | None


class QueueEventDict(TypedDict):
    """A queue event as :meth:`acd.model.QueueEvent.to_dict` gives it (:func:`append_queue_events`)."""

    time: float
    kind: str
    queue: NotRequired[str | None]
    call_id: NotRequired[str | None]
    agent_id: NotRequired[str | None]
    data: NotRequired[Mapping[str, object] | None]


class AcdError(PbxError):
    """A one-line, user-facing problem with a queue, agent or callback operation."""


class AcdInputError(AcdError, PbxUsageError):
    """A bad value given for a queue, agent or callback setting (exit status 2)."""


# =========================================================================== text forms


def strategy_names() -> list[str]:
    return [s.value for s in Strategy]


def parse_strategy(value: object) -> Strategy:
    if isinstance(value, Strategy):
        return value
    v = str(value).strip().lower().replace("-", "_")
    try:
        return Strategy(v)
    except ValueError:
        raise AcdInputError(f"unknown strategy {value!r} (choose from {', '.join(strategy_names())})") from None


def parse_skills(spec: object) -> dict[str, int]:
    """``'new_patients:8,korean:5'`` (or a mapping) -> ``{'new_patients': 8, 'korean': 5}``."""
    if spec is None:
        return {}
    items: Iterable[tuple[object, object]]
    if isinstance(spec, Mapping):
        items = spec.items()
    else:
        pairs = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, level = part.partition(":")
            if not sep:
                raise AcdInputError(f"bad skill {part!r}: expected NAME:LEVEL, e.g. new_patients:8")
            pairs.append((name, level))
        items = pairs
    out: dict[str, int] = {}
    for raw_name, level in items:
        name = str(raw_name).strip().lower()
        if not SKILL_RE.match(name):
            raise AcdInputError(f"bad skill name {name!r}: lower-case letters, digits and _ (starting with a letter)")
        try:
            lv = int(str(level).strip())
        except ValueError:
            raise AcdInputError(f"bad level {level!r} for skill {name}: expected a whole number 1-10") from None
        if not 1 <= lv <= 10:
            raise AcdInputError(f"bad level {lv} for skill {name}: expected 1-10")
        if name in out:
            raise AcdError(f"skill {name} given twice")
        out[name] = lv
    return out


def format_skills(skills: Mapping[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(skills.items())) or "-"


def parse_target(spec: object) -> Target:
    """``queue:NAME``, ``extension:1001``, ``ring_group:NAME``, ``external:+3312345``,
    ``voicemail:BOX``."""
    if isinstance(spec, Target):
        t = spec
    elif isinstance(spec, Mapping):
        try:
            t = Target.from_dict(spec)
        except (KeyError, ValueError):
            raise AcdInputError(f"bad destination {dict(spec)!r}") from None
    else:
        text = str(spec).strip()
        kind, sep, target = text.partition(":")
        kind = _TARGET_ALIASES.get(kind.strip().lower(), kind.strip().lower())
        kinds = ", ".join(k.value for k in TargetKind)
        if not sep:
            raise AcdError(
                f"bad destination {text!r}: expected KIND:TARGET with KIND one of {kinds} (e.g. extension:1001)"
            )
        try:
            t = Target(TargetKind(kind), target.strip())
        except ValueError:
            raise AcdInputError(f"bad destination {text!r}: unknown kind {kind!r} (choose from {kinds})") from None
    if t.kind is TargetKind.QUEUE and not QUEUE_NAME_RE.match(t.target):
        raise AcdInputError(f"bad destination queue:{t.target}: {_queue_name_rule()}")
    if t.kind is TargetKind.EXTENSION and not EXTENSION_RE.match(t.target):
        raise AcdInputError(f"bad destination extension:{t.target}: expected 2-8 digits")
    if t.kind is TargetKind.RING_GROUP and not QUEUE_NAME_RE.match(t.target):
        raise AcdInputError(f"bad destination ring_group:{t.target}: expected a group name")
    if t.kind is TargetKind.EXTERNAL and not PHONE_RE.match(t.target):
        raise AcdInputError(f"bad destination external:{t.target}: expected a phone number (digits, optional +)")
    if t.kind is TargetKind.VOICEMAIL and not _BOX_RE.match(t.target):
        raise AcdInputError(f"bad destination voicemail:{t.target}: expected a mailbox name")
    return t


def _queue_target(spec: object, queue: str) -> Target:
    """:func:`parse_target`, with plain ``voicemail`` meaning the queue's own mailbox
    (a box named like the queue: ``pypbx voicemail box NAME``)."""
    if isinstance(spec, str) and spec.strip().lower() in ("voicemail", "vm"):
        return Target(TargetKind.VOICEMAIL, queue)
    return parse_target(spec)


def format_target(t: Target | None) -> str:
    """As shown (one spelling for ring groups: ``group:NAME``, see :mod:`pypbx.destinations`)."""
    return D.canonical(f"{t.kind.value}:{t.target}") if t else "-"


def parse_overflow(spec: object) -> OverflowRule | None:
    """``'after=20,queue:front_desk'`` -> OverflowRule(20, queue front_desk); ``''``/``'none'`` -> None."""
    if spec is None or isinstance(spec, OverflowRule):
        return spec
    if isinstance(spec, Mapping):
        return OverflowRule(
            _seconds(spec.get("after"), "overflow after", minimum=1), parse_target(spec.get("target", {}))
        )
    text = str(spec).strip()
    if text.lower() in ("", "none", "off"):
        return None
    head, sep, target = text.partition(",")
    key, eq, after = head.partition("=")
    if not sep or not eq or key.strip().lower() != "after":
        raise AcdInputError(
            f"bad overflow {text!r}: expected after=SECONDS,KIND:TARGET (e.g. after=20,queue:front_desk)"
        )
    return OverflowRule(_seconds(after, "overflow after", minimum=1), parse_target(target))


def format_overflow(o: OverflowRule | None) -> str:
    return f"after={_num(o.after)},{format_target(o.target)}" if o else "-"


def parse_relaxation(spec: object) -> tuple[Relaxation, ...]:
    """``'30:5,60:1'`` (or a sequence of steps) -> after 30 s accept level 5, after 60 s level 1."""
    if spec is None:
        return ()
    if not isinstance(spec, str):
        steps = [Relaxation.from_dict(r) for r in _iterable(spec)]
    else:
        steps = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            after, sep, level = part.partition(":")
            if not sep:
                raise AcdInputError(f"bad relaxation step {part!r}: expected SECONDS:LEVEL, e.g. 30:5")
            try:
                lv = int(level.strip())
            except ValueError:
                raise AcdInputError(f"bad relaxation step {part!r}: level must be a whole number 1-10") from None
            steps.append(Relaxation(_seconds(after, "relaxation time", minimum=1), lv))
    steps.sort(key=lambda r: r.after)
    for r in steps:
        if not 1 <= r.min_level <= 10:
            raise AcdInputError(f"bad relaxation step {_num(r.after)}:{r.min_level}: level must be 1-10")
    for a, b in itertools.pairwise(steps):
        if a.after == b.after:
            raise AcdError(f"relaxation: two steps at {_num(a.after)} s")
        if b.min_level >= a.min_level:
            raise AcdError(
                f"relaxation: the level must go down as the wait grows "
                f"({_num(a.after)}:{a.min_level} then {_num(b.after)}:{b.min_level})"
            )
    return tuple(steps)


def format_relaxation(steps: Sequence[Relaxation]) -> str:
    return ",".join(f"{_num(r.after)}:{r.min_level}" for r in steps) or "-"


def _num(x: float) -> str:
    return f"{x:g}"


def _iterable(value: object) -> Iterable[Any]:
    if not isinstance(value, Iterable):
        raise TypeError(f"{type(value).__name__!r} object is not iterable")
    return value


def _as_int(value: object) -> int:
    """``int(value)`` for what ``int`` takes (else TypeError, as ``int`` itself)."""
    if isinstance(value, (int, float, str, bytes)):
        return int(value)
    raise TypeError(f"int() argument must be a string or a number, not {type(value).__name__!r}")


def _seconds(value: object, what: str, minimum: float = 0, maximum: float = 86400) -> float:
    try:
        v = float(str(value).strip())
    except (TypeError, ValueError):
        raise AcdInputError(f"bad {what} {value!r}: expected seconds") from None
    if v != v or not minimum <= v <= maximum:
        raise AcdInputError(f"bad {what} {_num(v)}: expected {_num(minimum)}-{_num(maximum)} seconds")
    return v


def _queue_name_rule() -> str:
    return "expected 1-32 lower-case letters, digits, _ or - (starting with a letter)"


def validate_queue_name(name: str) -> str:
    name = str(name).strip()
    if not QUEUE_NAME_RE.match(name):
        raise AcdInputError(f"bad queue name {name!r}: {_queue_name_rule()}")
    return name


def validate_agent_id(agent_id: str) -> str:
    agent_id = str(agent_id).strip()
    if not AGENT_ID_RE.match(agent_id):
        raise AcdInputError(f"bad agent id {agent_id!r}: expected 1-32 lower-case letters, digits, '.', '_' or '-'")
    return agent_id


def validate_phone_number(number: str) -> str:
    n = re.sub(r"[\s().-]", "", str(number))
    if not PHONE_RE.match(n):
        raise AcdInputError(f"bad phone number {number!r}: expected digits with an optional leading +")
    return n


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise AcdError("an agent needs a name (--name)")
    if len(name) > MAX_NAME_LENGTH:
        raise AcdError(f"name too long: at most {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == '"' for c in name):
        raise AcdError("name must not contain quotes or control characters")
    return name


# =========================================================================== queues

#: Options of :func:`add_queue` / :func:`edit_queue` (QueueConfig field names, plus
#: ``skills`` for ``required_skills``, ``when_empty`` for ``join_empty`` and
#: ``overflow_after`` + ``overflow_to`` as the two halves of ``overflow``).
QUEUE_OPTIONS = (
    "strategy",
    "skills",
    "required_skills",
    "ring_timeout",
    "wrap_up",
    "max_wait",
    "max_length",
    "when_empty",
    "join_empty",
    "fallback",
    "overflow",
    "overflow_after",
    "overflow_to",
    "relaxation",
    "announce_interval",
    "callback_allowed",
    "language",
    "rna_misses_before_pause",
    "callback_max_attempts",
    "callback_retry_delay",
    "priority",
    "urgent_prompt",
    "overflow_when_busy",
    "closed",
)

#: Highest priority a DID, route rule, IVR option or queue can give (0 = normal).
MAX_PRIORITY = 100


@dataclass(frozen=True)
class QueueRecord:
    config: QueueConfig
    created_at: float | None
    updated_at: float | None

    @property
    def name(self) -> str:
        return self.config.name

    def to_dict(self) -> dict[str, JSON]:
        return {
            **self.config.to_dict(),
            "closed": self.config.closed,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class _QueueChanges(TypedDict, total=False):
    """The QueueConfig fields :func:`_apply_options` changes."""

    strategy: Strategy
    required_skills: Mapping[str, int]
    ring_timeout: float
    wrap_up: float
    max_wait: float | None
    max_length: int | None
    join_empty: JoinEmpty
    fallback: Target | None
    overflow: OverflowRule | None
    relaxation: tuple[Relaxation, ...]
    rna_misses_before_pause: int
    announce_interval: float
    callback_allowed: bool
    callback_max_attempts: int
    callback_retry_delay: float
    language: str
    priority: int
    urgent_prompt: str
    overflow_when_busy: bool
    closed: bool


def parse_priority(value: object) -> int:
    """A caller priority 0..MAX_PRIORITY (higher is answered first); AcdError if not."""
    return _int_range(value, "priority", 0, MAX_PRIORITY)


def check_prompt_id(value: object, override: Path | None = None, *, exists: bool = True) -> str:
    """A prompt id (``ivr_prompts/<lang>/<id>.wav``: shipped, or imported with ``pypbx
    prompts import`` into ``override``, ``<data_dir>/prompts``); '' or 'none' = no prompt.
    AcdError if malformed, or (``exists``) neither shipped nor imported."""
    pid = str(value).strip()
    if pid.lower() in ("", "none"):
        return ""
    if not P.PROMPT_ID.match(pid):
        raise AcdInputError(f"bad prompt {pid!r}: a prompt id (lower-case letters, digits, _), see pypbx prompts list")
    if not exists:
        return pid
    known = set(P.shipped_ids())
    if override is not None:
        known |= {f.stem for f in override.glob("*/*.wav")}
    if pid not in known:
        raise AcdError(f"unknown prompt {pid!r}: see pypbx prompts list (import one with pypbx prompts import)")
    return pid


def _apply_options(base: QueueConfig, opts: Mapping[str, object]) -> QueueConfig:
    """A new QueueConfig: ``base`` with the (validated) options that are not None."""
    unknown = set(opts) - set(QUEUE_OPTIONS)
    if unknown:
        raise AcdInputError(f"unknown queue option(s): {', '.join(sorted(unknown))}")
    o = {k: v for k, v in opts.items() if v is not None}
    kw: _QueueChanges = {}
    q = base.name
    if "strategy" in o:
        kw["strategy"] = parse_strategy(o["strategy"])
    skills = o.get("skills", o.get("required_skills"))
    if skills is not None:
        kw["required_skills"] = parse_skills(skills)
    if "ring_timeout" in o:
        kw["ring_timeout"] = _seconds(o["ring_timeout"], "ring timeout", minimum=1, maximum=600)
    if "wrap_up" in o:
        kw["wrap_up"] = _seconds(o["wrap_up"], "wrap-up", maximum=3600)
    if "max_wait" in o:
        v = _seconds(o["max_wait"], "max wait")
        kw["max_wait"] = v or None  # 0 = no limit
    if "max_length" in o:
        try:
            n = _as_int(o["max_length"])
        except (TypeError, ValueError):
            raise AcdInputError(f"bad max length {o['max_length']!r}: expected a whole number") from None
        if not 0 <= n <= 10000:
            raise AcdInputError(f"bad max length {n}: expected 0-10000 (0 = no limit)")
        kw["max_length"] = n or None
    je = o.get("when_empty", o.get("join_empty"))
    if je is not None:
        try:
            kw["join_empty"] = je if isinstance(je, JoinEmpty) else JoinEmpty(str(je).strip().lower())
        except ValueError:
            raise AcdInputError(f"bad when-empty {je!r}: choose join or refuse") from None
    if "fallback" in o:
        f = o["fallback"]
        kw["fallback"] = None if isinstance(f, str) and f.strip().lower() in ("", "none") else _queue_target(f, q)
    if "overflow" in o:
        kw["overflow"] = parse_overflow(o["overflow"])
    if "overflow_after" in o or "overflow_to" in o:
        if "overflow_after" in o and "overflow_to" in o:
            kw["overflow"] = OverflowRule(
                _seconds(o["overflow_after"], "overflow after", minimum=1), _queue_target(o["overflow_to"], q)
            )
        elif "overflow_to" in o and isinstance(o["overflow_to"], str) and o["overflow_to"].strip().lower() == "none":
            kw["overflow"] = None
        else:
            cur = kw.get("overflow", base.overflow)
            if cur is None:
                raise AcdError("overflow needs both a time and a destination (--overflow-after N --overflow-to TARGET)")
            if "overflow_after" in o:
                kw["overflow"] = OverflowRule(_seconds(o["overflow_after"], "overflow after", minimum=1), cur.target)
            else:
                kw["overflow"] = OverflowRule(cur.after, _queue_target(o["overflow_to"], q))
    if "relaxation" in o:
        r = o["relaxation"]
        kw["relaxation"] = () if isinstance(r, str) and r.strip().lower() in ("", "none") else parse_relaxation(r)
    if "announce_interval" in o:
        kw["announce_interval"] = _seconds(o["announce_interval"], "announce interval", maximum=3600)
    if "callback_allowed" in o:
        kw["callback_allowed"] = bool(o["callback_allowed"])
    if "language" in o:
        lang = str(o["language"]).strip().lower()
        if lang not in LANGUAGES:
            raise AcdInputError(f"unknown language {o['language']!r} (choose from {', '.join(LANGUAGES)})")
        kw["language"] = lang
    if "rna_misses_before_pause" in o:
        kw["rna_misses_before_pause"] = _int_range(o["rna_misses_before_pause"], "ring-no-answer misses", 0, 100)
    if "callback_max_attempts" in o:
        kw["callback_max_attempts"] = _int_range(o["callback_max_attempts"], "callback attempts", 1, 20)
    if "callback_retry_delay" in o:
        kw["callback_retry_delay"] = _seconds(o["callback_retry_delay"], "callback retry delay", minimum=1)
    if "priority" in o:
        kw["priority"] = parse_priority(o["priority"])
    if "urgent_prompt" in o:
        kw["urgent_prompt"] = check_prompt_id(o["urgent_prompt"], exists=False)  # the CLI checks it exists
    if "overflow_when_busy" in o:
        kw["overflow_when_busy"] = bool(o["overflow_when_busy"])
    if "closed" in o:
        kw["closed"] = bool(o["closed"])
    try:
        cfg = replace(base, **kw)
    except ValueError as e:
        raise AcdError(str(e)) from None
    if cfg.overflow_when_busy and cfg.overflow is None:
        raise AcdError(
            f"queue {q}: overflow when busy needs an overflow destination (--overflow-after N --overflow-to TARGET)"
        )
    if cfg.closed and cfg.overflow is None and cfg.fallback is None:
        raise AcdError(
            f"queue {q}: a closed queue sends new callers to its overflow or fallback destination; "
            "set one first (--overflow-after N --overflow-to TARGET, or --fallback TARGET)"
        )
    if cfg.join_empty is JoinEmpty.REFUSE and cfg.fallback is None:
        raise AcdError(f"queue {q}: when empty 'refuse' needs a fallback destination (e.g. extension:1001)")
    if cfg.overflow and cfg.overflow.target.kind is TargetKind.QUEUE and cfg.overflow.target.target == q:
        raise AcdError(f"queue {q} cannot overflow to itself")
    if cfg.fallback and cfg.fallback.kind is TargetKind.QUEUE and cfg.fallback.target == q:
        raise AcdError(f"queue {q} cannot fall back to itself")
    return cfg


def _int_range(value: object, what: str, lo: int, hi: int) -> int:
    try:
        n = _as_int(value)
    except (TypeError, ValueError):
        raise AcdInputError(f"bad {what} {value!r}: expected a whole number") from None
    if not lo <= n <= hi:
        raise AcdInputError(f"bad {what} {n}: expected {lo}-{hi}")
    return n


async def _check_targets_exist(db: Database, cfg: QueueConfig) -> None:
    for what, t in (("overflow", cfg.overflow.target if cfg.overflow else None), ("fallback", cfg.fallback)):
        if t is None:
            continue
        if t.kind is TargetKind.QUEUE and await db.get_queue_row(t.target) is None:
            raise AcdError(f"{what} destination queue {t.target} does not exist (add it first)")
        if t.kind is TargetKind.EXTENSION and await db.get_extension_row(t.target) is None:
            raise AcdError(f"{what} destination extension {t.target} does not exist")
        if t.kind is TargetKind.RING_GROUP:
            await D.require_destination(db, f"group:{t.target}")  # issue 12: the shared check
        if t.kind is TargetKind.VOICEMAIL and await db.get_voicemail_box_row(t.target) is None:
            raise AcdError(
                f"{what} destination mailbox {t.target} does not exist (add it first: pypbx voicemail box {t.target})"
            )


def _record(row: QueueRow) -> QueueRecord:
    try:
        cfg = QueueConfig.from_dict(json.loads(row["config"]))
    except (ValueError, KeyError, TypeError) as e:
        raise AcdError(f"queue {row['name']}: stored configuration is damaged ({e})") from None
    return QueueRecord(cfg, row["created_at"], row["updated_at"])


async def add_queue(db: Database, name: str, **options: object) -> QueueRecord:
    """Create queue ``name`` from the defaults of QueueConfig and ``options`` (see QUEUE_OPTIONS)."""
    name = validate_queue_name(name)
    cfg = _apply_options(QueueConfig(name), options)
    if await db.get_queue_row(name) is not None:
        raise AcdError(f"queue {name} already exists")
    await _check_targets_exist(db, cfg)
    now = time.time()
    try:
        await db.insert_queue_row(name, json.dumps(cfg.to_dict(), sort_keys=True), now)
    except IntegrityError:
        raise AcdError(f"queue {name} already exists") from None
    return QueueRecord(cfg, now, now)


async def list_queues(db: Database) -> list[QueueRecord]:
    return [_record(r) for r in await db.list_queue_rows()]


async def get_queue(db: Database, name: str) -> QueueRecord:
    name = validate_queue_name(name)
    row = await db.get_queue_row(name)
    if row is None:
        raise AcdError(f"queue {name} not found")
    return _record(row)


async def edit_queue(db: Database, name: str, **options: object) -> QueueRecord:
    """Change the given options (None = keep) of queue ``name``."""
    rec = await get_queue(db, name)
    cfg = _apply_options(rec.config, options)
    await _check_targets_exist(db, cfg)
    now = time.time()
    if not await db.update_queue_row(cfg.name, json.dumps(cfg.to_dict(), sort_keys=True), now):
        raise AcdError(f"queue {cfg.name} not found")
    return QueueRecord(cfg, rec.created_at, now)


def closed_destination(cfg: QueueConfig) -> Target | None:
    """Where a closed queue sends a new caller: its overflow target, else its fallback."""
    return cfg.overflow.target if cfg.overflow is not None else cfg.fallback


async def set_queue_closed(db: Database, name: str, closed: bool) -> QueueRecord:
    """Close queue ``name`` (new callers go to :func:`closed_destination`; callers already
    waiting stay) or open it again. AcdError if closing a queue with nowhere to send callers."""
    return await edit_queue(db, name, closed=closed)


async def remove_queue(db: Database, name: str) -> None:
    """Delete a queue. Refused while another queue overflows or falls back to it, or while
    callbacks for it are still open."""
    rec = await get_queue(db, name)
    for other in await list_queues(db):
        if other.name == rec.name:
            continue
        c = other.config
        for what, t in (("overflows", c.overflow.target if c.overflow else None), ("falls back", c.fallback)):
            if t is not None and t.kind is TargetKind.QUEUE and t.target == rec.name:
                raise AcdError(f"queue {rec.name} is in use: queue {other.name} {what} to it")
    open_cbs = await db.list_callback_rows(("pending", "dialing"), queue=rec.name)
    if open_cbs:
        raise AcdError(f"queue {rec.name} has {len(open_cbs)} open callback(s); wait until they are done or failed")
    if not await db.delete_queue_row(rec.name):
        raise AcdError(f"queue {rec.name} not found")


# =========================================================================== agents


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    skills: dict[str, int]
    wrap_up: float | None
    extension: str | None
    state: str
    pause_reason: str | None
    state_since: float | None
    created_at: float | None
    updated_at: float | None

    @property
    def logged_in(self) -> bool:
        return self.state != AgentState.LOGGED_OUT.value

    def to_dict(self) -> AgentDict:
        return {
            "id": self.id,
            "name": self.name,
            "skills": dict(self.skills),
            "wrap_up": self.wrap_up,
            "extension": self.extension,
            "state": self.state,
            "pause_reason": self.pause_reason,
            "state_since": self.state_since,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _agent(row: AgentRow) -> AgentRecord:
    try:
        skills = {str(k): int(v) for k, v in json.loads(row["skills"] or "{}").items()}
    except (ValueError, AttributeError):
        skills = {}
    return AgentRecord(
        id=row["id"],
        name=row["name"] or "",
        skills=skills,
        wrap_up=row["wrap_up"],
        extension=row["extension"],
        state=row["state"],
        pause_reason=row["pause_reason"],
        state_since=row["state_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _detail(**kw: object) -> str:
    return json.dumps({k: v for k, v in kw.items() if v is not None}, sort_keys=True)


async def add_agent(
    db: Database, agent_id: str, name: str, skills: str | Mapping[str, int] | None = None, wrap_up: float | None = None
) -> AgentRecord:
    agent_id = validate_agent_id(agent_id)
    name = _check_name(name)
    sk = parse_skills(skills)
    wu = None if wrap_up is None else _seconds(wrap_up, "wrap-up", maximum=3600)
    now = time.time()
    row: AgentRow = {
        "id": agent_id,
        "name": name,
        "skills": json.dumps(sk, sort_keys=True),
        "wrap_up": wu,
        "extension": None,
        "state": AgentState.LOGGED_OUT.value,
        "pause_reason": None,
        "state_since": now,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await db.insert_agent_row(row)
    except IntegrityError:
        raise AcdError(f"agent {agent_id} already exists") from None
    return _agent(row)


async def list_agents(db: Database) -> list[AgentRecord]:
    return [_agent(r) for r in await db.list_agent_rows()]


async def get_agent(db: Database, agent_id: str) -> AgentRecord:
    agent_id = validate_agent_id(agent_id)
    row = await db.get_agent_row(agent_id)
    if row is None:
        raise AcdError(f"agent {agent_id} not found")
    return _agent(row)


class _Changed(Exception):
    """The agent's row changed between reading and writing it (another process)."""


async def _update_agent(
    db: Database,
    a: AgentRecord,
    fields: dict[str, object],
    kind: str | None,
    now: float,
    expect: dict[str, object] | None = None,
    /,
    **detail: object,
) -> AgentRecord:
    event = (now, kind, _detail(**detail)) if kind else None
    try:
        ok = await db.update_agent_row(a.id, fields, now, event, expect)
    except IntegrityError:
        if "extension" in fields:
            raise AcdError(f"extension {fields['extension']} is in use by another agent") from None
        raise
    if not ok:
        if expect and await db.get_agent_row(a.id) is not None:
            raise _Changed(a.id)
        raise AcdError(f"agent {a.id} not found")
    return await get_agent(db, a.id)


async def set_skills(db: Database, agent_id: str, skills: str | Mapping[str, int]) -> AgentRecord:
    """Replace the agent's skills (an ``agent_events`` SKILLS row records the change)."""
    a = await get_agent(db, agent_id)
    sk = parse_skills(skills)
    return await _update_agent(db, a, {"skills": json.dumps(sk, sort_keys=True)}, "SKILLS", time.time(), skills=sk)


async def set_wrap_up(db: Database, agent_id: str, wrap_up: float | None) -> AgentRecord:
    a = await get_agent(db, agent_id)
    wu = None if wrap_up is None else _seconds(wrap_up, "wrap-up", maximum=3600)
    return await _update_agent(db, a, {"wrap_up": wu}, None, time.time())


async def remove_agent(db: Database, agent_id: str) -> None:
    """Delete an agent (logged out first if needed; its events stay)."""
    a = await get_agent(db, agent_id)
    now = time.time()
    if a.logged_in:
        await db.update_agent_row(
            a.id,
            {"extension": None, "state": AgentState.LOGGED_OUT.value, "pause_reason": None, "state_since": now},
            now,
            (now, "LOGOUT", _detail(extension=a.extension, reason="removed")),
        )
    if not await db.delete_agent_row(a.id, (now, "REMOVED", _detail())):
        raise AcdError(f"agent {a.id} not found")


async def login(db: Database, agent_id: str, extension: str) -> tuple[AgentRecord, str | None]:
    """Log the agent in at ``extension`` (available). Already logged in elsewhere: moves
    there, keeping the state (a paused agent stays paused). Returns (agent, previous
    extension or None)."""
    a = await get_agent(db, agent_id)
    extension = str(extension).strip()
    if not EXTENSION_RE.match(extension):
        raise AcdInputError(f"bad extension number {extension!r}: expected 2-8 digits")
    if await db.get_extension_row(extension) is None:
        raise AcdError(f"extension {extension} not found")
    holder = await db.get_agent_row_at_extension(extension)
    if holder is not None and holder["id"] != a.id:
        raise AcdError(f"extension {extension} is in use by agent {holder['id']} (log them out first)")
    if a.extension == extension:
        raise AcdError(f"agent {a.id} is already logged in at {extension}")
    now = time.time()
    if a.logged_in:
        return await _update_agent(
            db, a, {"extension": extension}, "LOGIN", now, extension=extension, moved_from=a.extension
        ), a.extension
    return await _update_agent(
        db,
        a,
        {"extension": extension, "state": AgentState.AVAILABLE.value, "pause_reason": None, "state_since": now},
        "LOGIN",
        now,
        extension=extension,
    ), None


async def logout(db: Database, agent_id: str) -> AgentRecord:
    a = await get_agent(db, agent_id)
    if not a.logged_in:
        raise AcdError(f"agent {a.id} is not logged in")
    now = time.time()
    return await _update_agent(
        db,
        a,
        {"extension": None, "state": AgentState.LOGGED_OUT.value, "pause_reason": None, "state_since": now},
        "LOGOUT",
        now,
        extension=a.extension,
    )


def parse_pause_reason(reason: str | PauseReason) -> PauseReason:
    if isinstance(reason, PauseReason):
        return reason
    try:
        return PauseReason(str(reason).strip().lower().replace("-", "_"))
    except ValueError:
        raise AcdError(
            f"unknown pause reason {reason!r} (choose from {', '.join(r.value for r in PauseReason)})"
        ) from None


async def pause(db: Database, agent_id: str, reason: str | PauseReason = PauseReason.BREAK) -> AgentRecord:
    """Pause a logged-in agent (or change the reason of a pause)."""
    r = parse_pause_reason(reason)
    while True:  # checked and written as one step: two desks pausing at once make one PAUSE
        a = await get_agent(db, agent_id)
        if not a.logged_in:
            raise AcdError(f"agent {a.id} is not logged in")
        if a.state == AgentState.PAUSED.value and a.pause_reason == r.value:
            raise AcdError(f"agent {a.id} is already paused ({r.value})")
        now = time.time()
        try:
            return await _update_agent(
                db,
                a,
                {"state": AgentState.PAUSED.value, "pause_reason": r.value, "state_since": now},
                "PAUSE",
                now,
                {"state": a.state, "pause_reason": a.pause_reason, "extension": a.extension},
                reason=r.value,
                extension=a.extension,
            )
        except _Changed:
            continue


async def unpause(db: Database, agent_id: str) -> AgentRecord:
    while True:  # checked and written as one step (see pause)
        a = await get_agent(db, agent_id)
        if a.state != AgentState.PAUSED.value:
            raise AcdError(f"agent {a.id} is not paused")
        now = time.time()
        try:
            return await _update_agent(
                db,
                a,
                {"state": AgentState.AVAILABLE.value, "pause_reason": None, "state_since": now},
                "UNPAUSE",
                now,
                {"state": a.state, "pause_reason": a.pause_reason},
                extension=a.extension,
            )
        except _Changed:
            continue


async def save_agent_state(
    db: Database,
    agent_id: str,
    state: AgentState | str,
    pause_reason: PauseReason | str | None = None,
    now: float | None = None,
    kind: str | None = None,
    **detail: object,
) -> AgentRecord:
    """For the live core: record a state the engine moved the agent to (e.g. paused for
    ring-no-answer), with an optional agent_events row ``kind``."""
    a = await get_agent(db, agent_id)
    st = state.value if isinstance(state, AgentState) else AgentState(state).value
    pr = pause_reason.value if isinstance(pause_reason, PauseReason) else pause_reason
    now = time.time() if now is None else now
    fields: dict[str, object] = {
        "state": st,
        "pause_reason": pr if st == AgentState.PAUSED.value else None,
        "state_since": now,
    }
    if st == AgentState.LOGGED_OUT.value:
        fields["extension"] = None
    return await _update_agent(db, a, fields, kind, now, **detail)


async def agent_events(db: Database, agent_id: str | None = None, limit: int = 100) -> list[dict[str, JSON]]:
    """Newest first; ``detail`` decoded."""
    rows = await db.agent_event_rows(agent_id, limit)
    return [_agent_event(r) for r in rows]


def _agent_event(r: AgentEventRow) -> dict[str, JSON]:
    """The row with ``detail`` decoded (its keys: those of AgentEventRow)."""
    return {
        "seq": r["seq"],
        "ts": r["ts"],
        "agent": r["agent"],
        "kind": r["kind"],
        "detail": json.loads(r["detail"] or "{}"),
    }


# =========================================================================== the live core


async def load_engine_config(db: Database) -> tuple[list[QueueConfig], list[Agent]]:
    """Queues and agents for :class:`acd.engine.AcdEngine`, agents in their saved state
    (logged out / available / paused with reason)."""
    queues = [r.config for r in await list_queues(db)]
    agents = []
    for r in await list_agents(db):
        try:
            state = AgentState(r.state)
        except ValueError:
            state = AgentState.LOGGED_OUT
        if state not in (AgentState.LOGGED_OUT, AgentState.PAUSED):
            state = AgentState.AVAILABLE  # ringing / on call / wrap-up do not survive a restart
        reason = None
        if state is AgentState.PAUSED:
            try:
                reason = PauseReason(r.pause_reason) if r.pause_reason else PauseReason.OTHER
            except ValueError:
                reason = PauseReason.OTHER
        since = r.state_since or 0.0
        agents.append(
            Agent(
                id=r.id,
                name=r.name,
                skills=dict(r.skills),
                wrap_up=r.wrap_up,
                state=state,
                pause_reason=reason,
                state_since=since,
                idle_since=since,
            )
        )
    return queues, agents


async def agent_extensions(db: Database) -> dict[str, str]:
    """{agent id: extension} of the logged-in agents (where to ring them)."""
    return {r.id: r.extension for r in await list_agents(db) if r.extension}


# =========================================================================== queue events


def _event_row(e: QueueEvent | QueueEventDict) -> tuple[float, str | None, str | None, str | None, str, str]:
    if isinstance(e, QueueEvent):
        data: Mapping[str, object] = e.to_dict()["data"]
        return (float(e.time), e.queue, e.call_id, e.agent_id, e.kind.value, _data_json(data))
    return (
        float(e["time"]),
        e.get("queue"),
        e.get("call_id"),
        e.get("agent_id"),
        str(e["kind"]),
        _data_json(e.get("data")),
    )


def _data_json(data: Mapping[str, object] | None) -> str:
    return json.dumps(data or {}, sort_keys=True, default=str)


async def append_queue_events(db: Database, events: Iterable[QueueEvent | QueueEventDict]) -> int:
    """Persist engine events (``AcdEngine.drain_events()``), one row each; returns the count."""
    rows = [_event_row(e) for e in events]
    await db.add_queue_events(rows)
    return len(rows)


async def list_queue_events(
    db: Database,
    *,
    queue: str | None = None,
    call_id: str | None = None,
    agent: str | None = None,
    kind: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 1000,
) -> list[dict[str, JSON]]:
    """Oldest first; ``data`` decoded."""
    rows = await db.queue_event_rows(
        queue=queue, call_id=call_id, agent=agent, kind=kind, since=since, until=until, limit=limit
    )
    return [
        {
            "seq": r["seq"],
            "ts": r["ts"],
            "queue": r["queue"],
            "call_id": r["call_id"],
            "agent": r["agent"],
            "kind": r["kind"],
            "data": json.loads(r["data"] or "{}"),
        }
        for r in rows
    ]


# =========================================================================== callbacks


@dataclass(frozen=True)
class Callback:
    id: int
    number: str
    queue: str
    requested_at: float
    status: str
    attempts: int
    last_attempt_at: float | None
    call_id: str | None
    agent: str | None
    result: str | None
    merged_count: int

    def to_dict(self) -> CallbackRow:
        return {
            "id": self.id,
            "number": self.number,
            "queue": self.queue,
            "requested_at": self.requested_at,
            "status": self.status,
            "attempts": self.attempts,
            "last_attempt_at": self.last_attempt_at,
            "call_id": self.call_id,
            "agent": self.agent,
            "result": self.result,
            "merged_count": self.merged_count,
        }


def _callback(row: CallbackRow) -> Callback:
    return Callback(
        id=row["id"],
        number=row["number"],
        queue=row["queue"],
        requested_at=row["requested_at"],
        status=row["status"],
        attempts=row["attempts"],
        last_attempt_at=row["last_attempt_at"],
        call_id=row["call_id"],
        agent=row["agent"],
        result=row["result"],
        merged_count=row["merged_count"],
    )


async def request_callback(
    db: Database, number: str, queue: str, call_id: str | None = None, now: float | None = None
) -> tuple[Callback, bool]:
    """A callback request; one from a number with an open request (in any queue) is merged
    into it. Returns (callback, merged)."""
    n = e164(validate_phone_number(number), db.region)  # one number, one open request, whatever its form
    q = (await get_queue(db, queue)).name
    row, merged = await db.request_callback_row(n, q, time.time() if now is None else now, call_id)
    return _callback(row), merged


def _statuses(status: str) -> tuple[str, ...] | None:
    s = status.strip().lower()
    if s == "all":
        return None
    if s == "pending":
        return ("pending", "dialing")  # not done yet, including those being dialled now
    if s in CALLBACK_STATUSES:
        return (s,)
    raise AcdInputError(f"unknown callback status {status!r} (choose from pending, dialing, done, failed, all)")


async def list_callbacks(
    db: Database, status: str = "pending", queue: str | None = None, limit: int = 1000
) -> list[Callback]:
    """Oldest request first. ``pending`` includes callbacks being dialled now."""
    return [_callback(r) for r in await db.list_callback_rows(_statuses(status), queue, limit)]


async def update_callback(
    db: Database,
    cb_id: int,
    status: str,
    *,
    agent: str | None = None,
    call_id: str | None = None,
    result: str | None = None,
    now: float | None = None,
) -> Callback:
    """For the live core: ``dialing`` counts an attempt; ``done`` / ``failed`` close it."""
    if status not in CALLBACK_STATUSES:
        raise AcdInputError(f"unknown callback status {status!r}")
    row = await db.get_callback_row(cb_id)
    if row is None:
        raise AcdError(f"callback {cb_id} not found")
    fields: dict[str, object] = {"status": status}
    if status == "dialing":
        fields["attempts"] = int(row["attempts"]) + 1
        fields["last_attempt_at"] = time.time() if now is None else now
    for k, v in (("agent", agent), ("call_id", call_id), ("result", result)):
        if v is not None:
            fields[k] = v
    try:
        await db.update_callback_row(cb_id, fields)
    except IntegrityError:
        raise AcdError(f"callback {cb_id}: another request for {row['number']} is open in {row['queue']}") from None
    new = await db.get_callback_row(cb_id)
    assert new is not None
    return _callback(new)


# =========================================================================== engine state


async def save_acd_state(db: Database, value: object, key: str = ENGINE_STATE_KEY) -> None:
    """Store ``AcdEngine.snapshot()`` (any JSON value) under ``key``."""
    await db.save_acd_state_row(key, json.dumps(value, sort_keys=True), time.time())


async def load_acd_state(db: Database, key: str = ENGINE_STATE_KEY) -> dict[str, JSON] | None:
    row = await db.load_acd_state_row(key)
    if not row:
        return None
    value: dict[str, JSON] = json.loads(row["value"])
    return value


# =========================================================================== queue numbers

QUEUE_NUMBER_RE = re.compile(r"^[0-9]{2,8}$")


async def set_queue_number(db: Database, name: str, number: str | None) -> QueueRecord:
    """Give queue ``name`` a number any extension can dial (``None`` / ``''`` / ``'none'``
    clears it). Refused if an extension or another queue has that number."""
    rec = await get_queue(db, name)
    n = None if number is None or str(number).strip().lower() in ("", "none") else str(number).strip()
    if n is not None:
        if not QUEUE_NUMBER_RE.match(n):
            raise AcdInputError(f"bad queue number {number!r}: expected 2-8 digits")
        if is_emergency(n, db.region):
            raise AcdError(f"{n} is an emergency number in {db.region}: it cannot be a queue number")
        if await db.get_extension_row(n) is not None:
            raise AcdError(f"number {n} is an extension; choose another queue number")
    try:
        await db.set_queue_number_row(rec.name, n, time.time())
    except IntegrityError:
        raise AcdError(f"number {n} is in use by another queue") from None
    return rec


async def queue_numbers(db: Database) -> dict[str, str]:
    """{number: queue name} of the queues that can be dialled."""
    return {r["number"]: r["name"] for r in await db.queue_number_rows()}


# --------------------------------------------------------------------------- issue 9 (h-cli): moved from the CLI


def qualified_agents(queue: QueueConfig, agents: Iterable[AgentRecord]) -> list[AgentRecord]:
    """The agents whose skills meet every minimum level ``queue`` requires."""
    req = queue.required_skills
    return [a for a in agents if all(a.skills.get(s, 0) >= lv for s, lv in req.items())]


async def add_queue_numbered(db: Database, /, name: str, number: str | None = None, **options: object) -> QueueRecord:
    """:func:`add_queue`, then :func:`set_queue_number` when ``number`` is given; a bad
    number removes the queue again (nothing half-created)."""
    rec = await add_queue(db, name, **options)
    if number is not None:
        try:
            await set_queue_number(db, rec.name, number)
        except AcdError:
            await remove_queue(db, rec.name)
            raise
    return rec


async def change_queue(db: Database, /, name: str, number: str | None = None, **options: object) -> QueueRecord:
    """Set the number (when given) and the options that are not ``None`` of queue ``name``."""
    if number is not None:
        await set_queue_number(db, name, number)
    if all(v is None for v in options.values()):
        return await get_queue(db, name)
    return await edit_queue(db, name, **options)
