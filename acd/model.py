"""ACD data model: agents, queue configuration, callers, actions and queue events.

Pure data, no I/O.  Configuration, callers, actions and events are frozen
dataclasses; an :class:`Agent` is the engine's live record of one person (state and
statistics change as calls come and go), so it is a plain mutable dataclass owned by
the engine -- read it, don't mutate it from outside.

Times are seconds as floats on whatever clock the caller injects (``now``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- enums


class AgentState(enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class PauseReason(enum.Enum):
    BREAK = "break"
    LUNCH = "lunch"
    ADMIN = "admin"
    RING_NO_ANSWER = "ring_no_answer"
    OTHER = "other"


class Strategy(enum.Enum):
    RING_ALL = "ring_all"
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"
    LEAST_TALK_TIME = "least_talk_time"
    BEST_SKILL_THEN_LONGEST_IDLE = "best_skill_then_longest_idle"
    RANDOM = "random"


class JoinEmpty(enum.Enum):
    JOIN = "join"  # queue anyway when nobody who could answer is logged in
    REFUSE = "refuse"  # send the caller to the queue's fallback destination


class TargetKind(enum.Enum):
    QUEUE = "queue"
    EXTENSION = "extension"
    RING_GROUP = "ring_group"
    EXTERNAL = "external"
    VOICEMAIL = "voicemail"  # a mailbox (pypbx.voicemail): the caller leaves a message


class Party(enum.Enum):
    """Who hung up a connected call."""

    CALLER = "caller"
    AGENT = "agent"


class EventKind(enum.Enum):
    ENTER = "ENTER"
    RING = "RING"
    RINGNOANSWER = "RINGNOANSWER"
    CONNECT = "CONNECT"
    ABANDON = "ABANDON"
    TIMEOUT = "TIMEOUT"
    OVERFLOW = "OVERFLOW"
    EXITEMPTY = "EXITEMPTY"
    FULL = "FULL"
    CALLBACK_REQUESTED = "CALLBACK_REQUESTED"
    CALLBACK_DIALED = "CALLBACK_DIALED"
    CALLBACK_CONNECTED = "CALLBACK_CONNECTED"
    CALLBACK_FAILED = "CALLBACK_FAILED"
    COMPLETE_CALLER = "COMPLETE_CALLER"
    COMPLETE_AGENT = "COMPLETE_AGENT"
    TRANSFER = "TRANSFER"
    INTERRUPTED = "INTERRUPTED"
    LOGIN = "LOGIN"
    LOGOUT = "LOGOUT"
    PAUSE = "PAUSE"
    UNPAUSE = "UNPAUSE"


#: Events that close one queue visit of a live caller (exactly one per ENTER / refusal).
CALLER_OUTCOMES = frozenset(
    {
        EventKind.CONNECT,
        EventKind.ABANDON,
        EventKind.TIMEOUT,
        EventKind.OVERFLOW,
        EventKind.EXITEMPTY,
        EventKind.FULL,
        EventKind.CALLBACK_REQUESTED,
        EventKind.INTERRUPTED,
    }
)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Target:
    """Where a call goes when it leaves a queue without an agent."""

    kind: TargetKind
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "target": self.target}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Target) -> Target:
        if isinstance(d, Target):
            return d
        return cls(TargetKind(d["kind"]), str(d["target"]))


@dataclass(frozen=True)
class OverflowRule:
    """After ``after`` seconds of waiting, send the call to ``target``."""

    after: float
    target: Target

    def to_dict(self) -> dict[str, Any]:
        return {"after": self.after, "target": self.target.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | OverflowRule) -> OverflowRule:
        if isinstance(d, OverflowRule):
            return d
        return cls(float(d["after"]), Target.from_dict(d["target"]))


@dataclass(frozen=True)
class Relaxation:
    """After ``after`` seconds of waiting, accept agents whose level is >= ``min_level``
    on every required skill (never stricter than the original requirement)."""

    after: float
    min_level: int

    def to_dict(self) -> dict[str, Any]:
        return {"after": self.after, "min_level": self.min_level}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Relaxation) -> Relaxation:
        if isinstance(d, Relaxation):
            return d
        return cls(float(d["after"]), int(d["min_level"]))


@dataclass(frozen=True)
class QueueConfig:
    name: str
    required_skills: Mapping[str, int] = field(default_factory=dict)
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout: float = 15.0
    wrap_up: float = 10.0
    max_wait: float | None = None
    max_length: int | None = None
    join_empty: JoinEmpty = JoinEmpty.JOIN
    fallback: Target | None = None  # for REFUSE, max length, max wait
    overflow: OverflowRule | None = None
    relaxation: tuple[Relaxation, ...] = ()
    #: Rings an agent lets go unanswered in a row (counted per agent, across queues; reset
    #: when the agent answers, logs in or unpauses) before the ACD pauses them
    #: (RING_NO_ANSWER); the count is checked against the queue of the ring. 0 = never.
    rna_misses_before_pause: int = 1
    announce_interval: float = 60.0  # 0 = announce only on entry
    callback_allowed: bool = True
    callback_max_attempts: int = 3
    callback_retry_delay: float = 120.0
    language: str = "en"
    #: Entry priority: every caller entering this queue has at least this priority (a
    #: caller's own -- from the DID, route rule or IVR option -- wins when higher).
    priority: int = 0
    #: Prompt id played to a waiting caller whose priority is above 0 (the urgent line's
    #: guidance), after the greeting and with every announcement; "" = none.
    urgent_prompt: str = ""
    #: Every staffed agent who could answer is busy (on a call, in wrap-up, on a direct
    #: call) and none is free or ringing: a new caller goes to ``overflow``'s target at once.
    overflow_when_busy: bool = False
    #: Closed by staff (``pypbx queue close``): a new caller does not wait; it goes at once to
    #: the closed destination -- the overflow target, else the fallback (an EXITEMPTY with
    #: ``closed``). Callers already waiting stay.
    closed: bool = False

    def __post_init__(self) -> None:
        for skill, level in self.required_skills.items():
            if not 1 <= int(level) <= 10:
                raise ValueError(f"queue {self.name}: skill {skill} level {level} not in 1..10")
        if int(self.priority) < 0:
            raise ValueError(f"queue {self.name}: priority {self.priority} is negative")
        if int(self.rna_misses_before_pause) < 0:
            raise ValueError(f"queue {self.name}: ring-no-answer misses {self.rna_misses_before_pause} is negative")
        object.__setattr__(self, "relaxation", tuple(sorted(self.relaxation, key=lambda r: r.after)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required_skills": dict(self.required_skills),
            "strategy": self.strategy.value,
            "ring_timeout": self.ring_timeout,
            "wrap_up": self.wrap_up,
            "max_wait": self.max_wait,
            "max_length": self.max_length,
            "join_empty": self.join_empty.value,
            "fallback": self.fallback.to_dict() if self.fallback else None,
            "overflow": self.overflow.to_dict() if self.overflow else None,
            "relaxation": [r.to_dict() for r in self.relaxation],
            "rna_misses_before_pause": self.rna_misses_before_pause,
            "announce_interval": self.announce_interval,
            "callback_allowed": self.callback_allowed,
            "callback_max_attempts": self.callback_max_attempts,
            "callback_retry_delay": self.callback_retry_delay,
            "language": self.language,
            "priority": self.priority,
            "urgent_prompt": self.urgent_prompt,
            "overflow_when_busy": self.overflow_when_busy,
            **({"closed": True} if self.closed else {}),  # an open queue's saved config stays as it was
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | QueueConfig) -> QueueConfig:
        if isinstance(d, QueueConfig):
            return d
        kw = dict(d)
        if "strategy" in kw:
            kw["strategy"] = Strategy(kw["strategy"])
        if "join_empty" in kw:
            kw["join_empty"] = JoinEmpty(kw["join_empty"])
        if kw.get("fallback") is not None:
            kw["fallback"] = Target.from_dict(kw["fallback"])
        if kw.get("overflow") is not None:
            kw["overflow"] = OverflowRule.from_dict(kw["overflow"])
        if "relaxation" in kw:
            kw["relaxation"] = tuple(Relaxation.from_dict(r) for r in kw["relaxation"])
        if "required_skills" in kw:
            kw["required_skills"] = {str(k): int(v) for k, v in kw["required_skills"].items()}
        return cls(**kw)


# --------------------------------------------------------------------------- agents


@dataclass
class Agent:
    """One person who takes calls.  ``skills`` maps skill name to level 1..10.

    ``queues``: if not None, the agent only serves these queues (besides matching skills).
    ``wrap_up``: per-agent wrap-up override (seconds) for every queue.
    The remaining fields are state and statistics maintained by the engine.
    """

    id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: frozenset[str] | None = None
    wrap_up: float | None = None
    # live state
    state: AgentState = AgentState.LOGGED_OUT
    pause_reason: PauseReason | None = None
    state_since: float = 0.0
    external_busy: bool = False  # on a direct (non-queue) call
    external_since: float = 0.0
    current_call: str | None = None
    wrap_up_until: float | None = None
    # statistics
    calls_taken: int = 0
    last_call_end: float | None = None
    total_talk_time: float = 0.0
    idle_since: float = 0.0
    missed_in_row: int = 0

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            if not 1 <= int(level) <= 10:
                raise ValueError(f"agent {self.id}: skill {skill} level {level} not in 1..10")
        if self.queues is not None:
            self.queues = frozenset(self.queues)

    @property
    def logged_in(self) -> bool:
        return self.state is not AgentState.LOGGED_OUT

    @property
    def offerable(self) -> bool:
        return self.state is AgentState.AVAILABLE and not self.external_busy

    def level(self, skill: str) -> int:
        return self.skills.get(skill, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "skills": dict(self.skills),
            "queues": sorted(self.queues) if self.queues is not None else None,
            "wrap_up": self.wrap_up,
            "state": self.state.value,
            "pause_reason": self.pause_reason.value if self.pause_reason else None,
            "state_since": self.state_since,
            "external_busy": self.external_busy,
            "current_call": self.current_call,
            "calls_taken": self.calls_taken,
            "last_call_end": self.last_call_end,
            "total_talk_time": self.total_talk_time,
            "idle_since": self.idle_since,
            "missed_in_row": self.missed_in_row,
        }


# --------------------------------------------------------------------------- callers


@dataclass(frozen=True)
class Caller:
    """A call offered to a queue.  ``skills``: extra requirements of this caller
    (e.g. ``{"korean": 3}``) on top of the queue's; ``priority``: higher jumps ahead."""

    id: str
    number: str = ""
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    language: str | None = None
    #: Sticky agent (routing rules, ``--prefer-last``): while the call has waited less than
    #: ``prefer_for`` seconds it is offered to this agent only -- if the agent is staffed
    #: (logged in, not paused, qualifies); otherwise normal distribution at once.
    preferred_agent: str | None = None
    prefer_for: float = 0.0


@dataclass(frozen=True)
class EntryView:
    """A read-only view of one waiting entry (live caller or callback slot)."""

    call_id: str
    queue: str
    number: str
    priority: int
    entered_at: float
    position: int  # 1-based, in this queue, callbacks included
    wait: float
    is_callback: bool
    ringing: tuple[str, ...]
    attempts: int


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    pass


@dataclass(frozen=True)
class RingAgents(Action):
    """Ring these agents for ``call_id`` -- ONE leg from the caller's worker, forked by
    the front door to every device of every listed agent; first answer wins."""

    call_id: str
    queue: str
    agent_ids: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class CancelRing(Action):
    call_id: str
    agent_ids: tuple[str, ...]


@dataclass(frozen=True)
class Connect(Action):
    call_id: str
    agent_id: str


@dataclass(frozen=True)
class Announce(Action):
    """Tell the caller their place and wait; ``ewt_seconds`` None = say no figure.
    ``offer_callback``: the queue allows "press 1 to be called back"."""

    call_id: str
    position: int
    ewt_seconds: float | None
    language: str
    offer_callback: bool = False


@dataclass(frozen=True)
class Overflow(Action):
    call_id: str
    target: Target


@dataclass(frozen=True)
class Timeout(Action):
    call_id: str
    queue: str
    fallback: Target | None


@dataclass(frozen=True)
class ExitEmpty(Action):
    call_id: str
    queue: str
    fallback: Target | None


@dataclass(frozen=True)
class ExitFull(Action):
    call_id: str
    queue: str
    fallback: Target | None


@dataclass(frozen=True)
class PauseAgent(Action):
    agent_id: str
    reason: PauseReason


@dataclass(frozen=True)
class StartWrapUp(Action):
    agent_id: str
    until: float


@dataclass(frozen=True)
class EndWrapUp(Action):
    agent_id: str


@dataclass(frozen=True)
class DialCallback(Action):
    """Ring the agent first; when the agent answers, dial the patient's ``number``."""

    call_id: str
    agent_id: str
    number: str
    attempt: int
    queue: str


@dataclass(frozen=True)
class CallbackFailed(Action):
    call_id: str
    number: str
    attempts: int
    queue: str


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class QueueEvent:
    """One queue_log-style row."""

    time: float
    kind: EventKind
    queue: str | None = None
    call_id: str | None = None
    agent_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": self.kind.value,
            "queue": self.queue,
            "call_id": self.call_id,
            "agent_id": self.agent_id,
            "data": {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in self.data.items()},
        }


@dataclass(frozen=True)
class ClosedCall:
    """A live caller closed at restart: record its outcome; call ``number`` back."""

    call_id: str
    queue: str
    number: str
    outcome: str
    wait: float
    position: int
