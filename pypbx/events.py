"""One event stream: typed, frozen domain events on an in-process bus.

Every domain event is a frozen dataclass of the closed union :data:`DomainEvent`; the bus
stamps each with a monotonic sequence number ``seq`` (1, 2, 3 ... with no gap, per run of
the PBX) and the wall-clock time ``at`` when it is published.

Three kinds of subscriber:

* **writers** (``add_writer``): async, durable, in order. :meth:`EventBus.emit` awaits them
  after the event is stamped and fanned out, so the emitter's timing is what it was when it
  wrote to the database itself (the books: ``calls``/``call_events`` via
  :class:`pypbx.calllog.CallLog`; the notification outbox and MWI for a voicemail). A writer
  is never dropped; its exception reaches the emitter (as a failed database write always did).
* **sinks** (``add_sink``): synchronous and durable (the ``[events] journal`` file): called
  in ``seq`` order while the event is published; an exception is logged, never raised.
* **live subscribers** (:meth:`EventBus.subscribe`): a bounded queue each, filled with
  ``put_nowait``; the bus never waits for one. A subscriber whose queue is full is dropped and
  gets a final :class:`SubscriberDropped` notice with the last ``seq`` it was given, from which
  it can resume (``subscribe(since=last_seq)``).

The bus keeps the most recent events (a ring buffer, ``[events] buffer``) so that a consumer
can resume from a sequence number N: it gets N+1 onward, then the live events. If N+1 is no
longer in the buffer the consumer first gets an explicit :class:`Gap` notice, never a silently
partial stream. ``run`` (a random id per run of the PBX) tells a consumer that the PBX
restarted and the numbering began again.

Publishing is synchronous (stamp, ring buffer, sinks, live queues), so the order of the
stream is the order of ``seq`` for every subscriber, whatever the writers' latency.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Generic, Protocol, TypedDict, TypeVar, cast, get_args, overload

from acd.model import EventKind as AcdEventKind
from acd.model import QueueEvent as AcdQueueEvent

log = logging.getLogger(__name__)

#: Events kept for consumers that resume from a sequence number.
DEFAULT_BUFFER = 10_000
#: Events queued for one live subscriber before it is dropped.
DEFAULT_QUEUE = 1_000


# =========================================================================== enums


class Direction(str, enum.Enum):
    INTERNAL = "internal"  # extension to extension
    INBOUND = "inbound"  # from a trunk
    OUTBOUND = "outbound"  # to a trunk


class Disposition(str, enum.Enum):
    IN_PROGRESS = "in_progress"  # not final
    ANSWERED = "answered"
    BUSY = "busy"  # callee busy (486/600)
    NO_ANSWER = "no_answer"  # rang out
    ABANDONED_RINGING = "abandoned_ringing"  # caller hung up while it rang
    ABANDONED_IVR = "abandoned_ivr"
    ABANDONED_QUEUE = "abandoned_queue"
    VOICEMAIL = "voicemail"
    CALLBACK_REQUESTED = "callback_requested"
    OVERFLOWED_OUT = "overflowed_out"
    AFTER_HOURS = "after_hours"
    UNAVAILABLE = "unavailable"  # callee not registered (480)
    NOT_FOUND = "not_found"  # unknown number (404)
    REJECTED = "rejected"  # refused by policy (403, toll-fraud guard...)
    FAILED = "failed"  # a fault: see hangup_cause
    INTERRUPTED = "interrupted"  # a crash or restart cut it

    @property
    def final(self) -> bool:
        return self is not Disposition.IN_PROGRESS


class OverflowReason(str, enum.Enum):
    """Why a caller left a queue for its fallback (the ACD's outcome)."""

    OVERFLOW = "overflow"  # waited past the overflow threshold
    ALL_BUSY = "all_busy"  # every agent busy on arrival: sent on at once (queue --overflow-when-busy)
    TIMEOUT = "timeout"  # waited past the queue's maximum wait
    EMPTY = "empty"  # nobody logged in to answer
    FULL = "full"  # the queue was full


class CallbackOutcome(str, enum.Enum):
    CONNECTED = "connected"
    FAILED = "failed"


class MissedReason(str, enum.Enum):
    """Why a call did not reach a person."""

    ABANDONED = "abandoned"  # hung up while waiting in a queue
    NO_ANSWER = "no-answer"  # rang out, or hung up while it rang
    BUSY = "busy"
    UNAVAILABLE = "unavailable"  # nobody / no trunk could take it (480, failures)
    AFTER_HOURS = "after-hours"
    IVR_HANGUP = "ivr-hangup"
    VOICEMAIL = "voicemail"
    CALLBACK_REQUESTED = "callback-requested"  # "press 1" in a queue
    INTERRUPTED = "interrupted"  # the PBX stopped or crashed during the call


class Outcome(str, enum.Enum):
    """How a task was closed."""

    REACHED = "reached"
    NO_ANSWER = "no-answer"
    WRONG_NUMBER = "wrong-number"
    MESSAGE_LEFT = "message-left"
    NOT_NEEDED = "not-needed"


class AttemptOutcome(str, enum.Enum):
    """How one callback attempt ended."""

    ANSWERED = "answered"  # the patient answered
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    AGENT_NO_ANSWER = "agent-no-answer"  # the agent's phone did not answer: the patient was not dialled
    FAILED = "failed"


class AgentChange(str, enum.Enum):
    LOGIN = "login"
    LOGOUT = "logout"
    PAUSE = "pause"
    UNPAUSE = "unpause"


class RegistrationEnd(str, enum.Enum):
    EXPIRED = "expired"  # not refreshed in time
    UNREGISTERED = "unregistered"  # the phone said Expires: 0 (or was replaced)
    REMOVED = "removed"  # its extension was deleted


# =========================================================================== events


@dataclass(frozen=True, kw_only=True)
class Event:
    """Common fields, assigned by the bus when the event is published."""

    name: ClassVar[str] = "event"
    seq: int = 0
    at: float = 0.0

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"seq": self.seq, "at": self.at, "event": self.name}
        for f in dataclasses.fields(self):
            if f.name in ("seq", "at"):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, sort_keys=False)


def _plain(v: object) -> object:
    """``v`` for JSON: enums as their values, mappings as dicts, sequences as lists."""
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def frozen_map(d: Mapping[str, object] | None = None) -> Mapping[str, object]:
    """A read-only copy (the events are frozen, their payloads too)."""
    return MappingProxyType(dict(d or {}))


_EMPTY: Mapping[str, object] = MappingProxyType({})


# -- calls: what pypbx.calllog.CallLog records ------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CallEvent(Event):
    """Base of the call events. ``step`` and ``detail`` are the ``call_events`` row the books
    write for it (kind and JSON details, exactly as the call flow gave them); ``record`` is the
    call record's row when the step changed it (None: only the step is written)."""

    call_id: str
    step: str | None = None
    detail: Mapping[str, object] = field(default_factory=lambda: _EMPTY, compare=False)
    record: Mapping[str, object] | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class CallOffered(CallEvent):
    name: ClassVar[str] = "call.offered"
    direction: Direction
    caller: str
    callee: str


@dataclass(frozen=True, kw_only=True)
class CallRinging(CallEvent):
    name: ClassVar[str] = "call.ringing"
    callee: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CallEvent):
    name: ClassVar[str] = "call.answered"
    answered_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class CallHeld(CallEvent):
    name: ClassVar[str] = "call.held"
    held: bool  # False: taken off hold
    side: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallTransferred(CallEvent):
    name: ClassVar[str] = "call.transferred"
    to: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    name: ClassVar[str] = "call.ended"
    disposition: Disposition
    side: str | None = None
    cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallStep(CallEvent):
    """Any other step of a call (DTMF, routing, recording, IVR ...): ``step`` says which."""

    name: ClassVar[str] = "call.step"


# -- queues, callbacks, agents: the ACD's queue events ----------------------------------------
@dataclass(frozen=True, kw_only=True)
class QueueEvent(Event):
    """Base of the ACD's events; ``kind`` is the engine's own event kind (queue_events.kind;
    None for the announcement, which the engine decides but does not log)."""

    kind: AcdEventKind | None = None
    queue: str | None = None
    call_id: str | None = None
    agent: str | None = None
    data: Mapping[str, object] = field(default_factory=lambda: _EMPTY, compare=False)


@dataclass(frozen=True, kw_only=True)
class QueueEntered(QueueEvent):
    name: ClassVar[str] = "queue.entered"


@dataclass(frozen=True, kw_only=True)
class QueueAnnounced(QueueEvent):
    name: ClassVar[str] = "queue.announced"
    position: int | None = None
    ewt: float | None = None


@dataclass(frozen=True, kw_only=True)
class QueueConnected(QueueEvent):
    name: ClassVar[str] = "queue.connected"


@dataclass(frozen=True, kw_only=True)
class QueueAbandoned(QueueEvent):
    name: ClassVar[str] = "queue.abandoned"


@dataclass(frozen=True, kw_only=True)
class QueueOverflowed(QueueEvent):
    name: ClassVar[str] = "queue.overflowed"
    reason: OverflowReason


@dataclass(frozen=True, kw_only=True)
class QueueStep(QueueEvent):
    """Any other queue event (ring, ring-no-answer, complete, transfer, interrupted)."""

    name: ClassVar[str] = "queue.step"


@dataclass(frozen=True, kw_only=True)
class CallbackRequested(QueueEvent):
    name: ClassVar[str] = "callback.requested"
    number: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallbackDialled(QueueEvent):
    name: ClassVar[str] = "callback.dialled"
    number: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallbackClosed(QueueEvent):
    name: ClassVar[str] = "callback.closed"
    outcome: CallbackOutcome
    number: str | None = None


@dataclass(frozen=True, kw_only=True)
class AgentStateChanged(QueueEvent):
    name: ClassVar[str] = "agent.state_changed"
    change: AgentChange
    reason: str | None = None


# -- the missed-caller worklist (pypbx.missed) ---------------------------------------------
@dataclass(frozen=True, kw_only=True)
class MissedTaskEvent(Event):
    """Base of the worklist's events: one callback task of ``number``."""

    task_id: int
    number: str
    reasons: tuple[MissedReason, ...] = ()
    queue: str | None = None
    call_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MissedTaskOpened(MissedTaskEvent):
    name: ClassVar[str] = "missed.opened"


@dataclass(frozen=True, kw_only=True)
class MissedTaskMerged(MissedTaskEvent):
    """Another missed call from the number joined its open task."""

    name: ClassVar[str] = "missed.merged"


@dataclass(frozen=True, kw_only=True)
class MissedTaskClaimed(MissedTaskEvent):
    name: ClassVar[str] = "missed.claimed"
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class MissedTaskAttempted(MissedTaskEvent):
    """A callback attempt ended."""

    name: ClassVar[str] = "missed.attempted"
    by: str | None = None
    outcome: AttemptOutcome | None = None


@dataclass(frozen=True, kw_only=True)
class MissedTaskClosed(MissedTaskEvent):
    name: ClassVar[str] = "missed.closed"
    outcome: Outcome | None = None
    by: str | None = None
    wait: float | None = None  # seconds from the first missed call to the close


# -- the rest of the PBX ------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RegistrationAdded(Event):
    name: ClassVar[str] = "registration.added"
    aor: str
    contact: str
    expires_at: float | None = None
    source: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class RegistrationExpired(Event):
    """A registration ended: ``reason`` says whether it expired, was unregistered or removed."""

    name: ClassVar[str] = "registration.expired"
    aor: str
    contact: str
    reason: RegistrationEnd = RegistrationEnd.EXPIRED


@dataclass(frozen=True, kw_only=True)
class VoicemailLeft(Event):
    name: ClassVar[str] = "voicemail.left"
    box: str
    message_id: str | None = None
    caller: str | None = None
    seconds: float | None = None
    call_id: str | None = None
    meta: Mapping[str, object] = field(default_factory=lambda: _EMPTY, compare=False)


@dataclass(frozen=True, kw_only=True)
class ReasonSet(Event):
    """An agent (or the local API) set the reason code of a call (pypbx.reasons)."""

    name: ClassVar[str] = "reason.set"
    call_id: str
    code: str
    label: str
    agent: str | None = None
    extension: str | None = None
    via: str = ""
    notify: str = ""  # e-mail addresses to tell (a reason marked to notify, e.g. a complaint)
    caller: str | None = None
    service_line: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrunkUp(Event):
    name: ClassVar[str] = "trunk.up"
    trunk: str


@dataclass(frozen=True, kw_only=True)
class TrunkDown(Event):
    name: ClassVar[str] = "trunk.down"
    trunk: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class WorkerLost(Event):
    name: ClassVar[str] = "worker.lost"
    worker: str
    legs: tuple[str, ...] = ()
    returncode: int | None = None
    reason: str | None = None


DomainEvent = (
    CallOffered
    | CallRinging
    | CallAnswered
    | CallHeld
    | CallTransferred
    | CallEnded
    | CallStep
    | QueueEntered
    | QueueAnnounced
    | QueueConnected
    | QueueAbandoned
    | QueueOverflowed
    | QueueStep
    | CallbackRequested
    | CallbackDialled
    | CallbackClosed
    | AgentStateChanged
    | MissedTaskOpened
    | MissedTaskMerged
    | MissedTaskClaimed
    | MissedTaskAttempted
    | MissedTaskClosed
    | RegistrationAdded
    | RegistrationExpired
    | VoicemailLeft
    | ReasonSet
    | TrunkUp
    | TrunkDown
    | WorkerLost
)
#: Every event class, by its stream name (``call.ended`` ...).
EVENT_TYPES: dict[str, type[Event]] = {c.name: c for c in get_args(DomainEvent)}


# =========================================================================== notices


@dataclass(frozen=True)
class Gap:
    """Events ``first``..``last`` cannot be given (older than the buffer, or of an earlier run)."""

    first: int
    last: int
    name: ClassVar[str] = "gap"

    def to_dict(self) -> dict[str, str | int]:
        return {"event": self.name, "first": self.first, "last": self.last}


@dataclass(frozen=True)
class SubscriberDropped:
    """The subscriber fell behind and was dropped; it was given every event up to ``last_seq``
    and can resume from there."""

    last_seq: int
    name: ClassVar[str] = "subscriber_dropped"

    def to_dict(self) -> dict[str, str | int]:
        return {"event": self.name, "last_seq": self.last_seq}


Notice = Gap | SubscriberDropped


# -- the ACD's events, typed ----------------------------------------------------------------
_OVERFLOWS = {
    AcdEventKind.OVERFLOW: OverflowReason.OVERFLOW,
    AcdEventKind.TIMEOUT: OverflowReason.TIMEOUT,
    AcdEventKind.EXITEMPTY: OverflowReason.EMPTY,
    AcdEventKind.FULL: OverflowReason.FULL,
}
_AGENT = {
    AcdEventKind.LOGIN: AgentChange.LOGIN,
    AcdEventKind.LOGOUT: AgentChange.LOGOUT,
    AcdEventKind.PAUSE: AgentChange.PAUSE,
    AcdEventKind.UNPAUSE: AgentChange.UNPAUSE,
}


class _QueueFields(TypedDict):
    """The fields every :class:`QueueEvent` takes (``**`` into its constructor)."""

    kind: AcdEventKind | None
    queue: str | None
    call_id: str | None
    agent: str | None
    data: Mapping[str, object]


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def from_queue_event(qe: AcdQueueEvent) -> QueueEvent:
    """The domain event of one :class:`acd.model.QueueEvent` (what ``queue_events`` stores)."""
    k = qe.kind
    data = frozen_map({key: _plain(v) for key, v in (qe.data or {}).items()})
    base: _QueueFields = {"kind": k, "queue": qe.queue, "call_id": qe.call_id, "agent": qe.agent_id, "data": data}
    number = _opt_str(data.get("number"))
    if k is AcdEventKind.ENTER:
        return QueueEntered(**base)
    if k is AcdEventKind.CONNECT:
        return QueueConnected(**base)
    if k is AcdEventKind.ABANDON:
        return QueueAbandoned(**base)
    if k in _OVERFLOWS:
        busy = k is AcdEventKind.OVERFLOW and data.get("reason") == OverflowReason.ALL_BUSY.value
        return QueueOverflowed(reason=OverflowReason.ALL_BUSY if busy else _OVERFLOWS[k], **base)
    if k is AcdEventKind.CALLBACK_REQUESTED:
        return CallbackRequested(number=number, **base)
    if k is AcdEventKind.CALLBACK_DIALED:
        return CallbackDialled(number=number, **base)
    if k is AcdEventKind.CALLBACK_CONNECTED:
        return CallbackClosed(outcome=CallbackOutcome.CONNECTED, number=number, **base)
    if k is AcdEventKind.CALLBACK_FAILED:
        return CallbackClosed(outcome=CallbackOutcome.FAILED, number=number, **base)
    if k in _AGENT:
        return AgentStateChanged(change=_AGENT[k], reason=_opt_str(data.get("reason")), **base)
    return QueueStep(**base)


# =========================================================================== the bus

E = TypeVar("E", bound=Event)
#: What a live subscriber gets: an event, or a notice about the stream.
Item = Event | Notice


@dataclass(frozen=True)
class _Writer(Generic[E]):
    """A durable async subscriber and the event types it is for."""

    fn: Callable[[E], Awaitable[None]]
    types: tuple[type[E], ...]

    async def __call__(self, ev: Event) -> None:
        if isinstance(ev, self.types):
            await self.fn(ev)


@dataclass(frozen=True)
class _Sink(Generic[E]):
    """A durable synchronous subscriber and the event types it is for."""

    fn: Callable[[E], None]
    types: tuple[type[E], ...]

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, self.types):
            self.fn(ev)


class _Writes(Protocol):
    """A :class:`_Writer` of any event type, as the bus keeps it."""

    @property
    def fn(self) -> object: ...

    @property
    def types(self) -> tuple[type[Event], ...]: ...

    async def __call__(self, ev: Event) -> None: ...


class _Sinks(Protocol):
    """A :class:`_Sink` of any event type, as the bus keeps it."""

    @property
    def fn(self) -> object: ...

    @property
    def types(self) -> tuple[type[Event], ...]: ...

    def __call__(self, ev: Event) -> None: ...


class Subscription:
    """A live subscriber's bounded queue. Iterate it (``async for``) or call :meth:`get`;
    the iteration ends after a :class:`SubscriberDropped` notice or :meth:`close`."""

    def __init__(self, bus: EventBus, limit: int, types: tuple[type[Event], ...] | None) -> None:
        self.bus = bus
        self.limit = limit
        self.types = types
        self.items: collections.deque[Item] = collections.deque()
        self.last_seq = 0  # the last event put in this subscriber's queue
        self.dropped = False
        self.closed = False
        self._ready = asyncio.Event()

    def _wants(self, ev: Event) -> bool:
        return self.types is None or isinstance(ev, self.types)

    def _offer(self, ev: Event) -> bool:
        """put_nowait: False when the queue was full (the subscriber is then dropped)."""
        if not self._wants(ev):
            return True
        if len(self.items) >= self.limit:
            self.dropped = True
            self._push(SubscriberDropped(self.last_seq))
            return False
        self.last_seq = ev.seq
        self._push(ev)
        return True

    def _push(self, item: Item) -> None:
        self.items.append(item)
        self._ready.set()

    def get_nowait(self) -> Item | None:
        if not self.items:
            return None
        return self.items.popleft()

    async def get(self) -> Item | None:
        """The next event or notice; None once closed or dropped and drained."""
        while not self.items:
            if self.closed or self.dropped:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self.items.popleft()

    def close(self) -> None:
        self.closed = True
        self.bus._subs.discard(self)
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Item]:
        while True:
            item = await self.get()
            if item is None:
                return
            yield item
            if isinstance(item, SubscriberDropped):
                return


class EventsReply(TypedDict):
    """The local API's ``events`` reply (:meth:`EventBus.api`)."""

    run: str
    last_seq: int
    gap: dict[str, str | int] | None
    events: list[dict[str, object]]


class BusStatus(TypedDict):
    """The bus in ``pypbx status`` (:meth:`EventBus.status`)."""

    run: str
    last_seq: int
    buffered: int
    first_buffered: int | None
    subscribers: int
    dropped: int


class EventBus:
    """The PBX's one event stream (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        buffer: int = DEFAULT_BUFFER,
        queue_size: int = DEFAULT_QUEUE,
        run: str | None = None,
    ) -> None:
        self.clock = clock
        self.queue_size = queue_size
        self.run = run or uuid.uuid4().hex[:12]
        self.seq = 0
        self.recent: collections.deque[Event] = collections.deque(maxlen=max(1, buffer))
        self._writers: list[_Writes] = []
        self._sinks: list[_Sinks] = []
        self._subs: set[Subscription] = set()
        self.dropped = 0

    # -- subscribers -----------------------------------------------------------------
    @overload
    def add_writer(self, fn: Callable[[Event], Awaitable[None]]) -> None: ...
    @overload
    def add_writer(self, fn: Callable[[E], Awaitable[None]], *types: type[E]) -> None: ...

    def add_writer(self, fn: Callable[[E], Awaitable[None]], *types: type[E]) -> None:
        """A durable async subscriber (awaited by :meth:`emit`), for ``types`` (all if none)."""
        # no types: the first overload, ``fn`` takes every Event
        sub: _Writer[E] = _Writer(fn, types or (cast("type[E]", Event),))
        self._writers.append(sub)

    @overload
    def add_sink(self, fn: Callable[[Event], None]) -> None: ...
    @overload
    def add_sink(self, fn: Callable[[E], None], *types: type[E]) -> None: ...

    def add_sink(self, fn: Callable[[E], None], *types: type[E]) -> None:
        """A durable synchronous subscriber, called in order as each event is published."""
        # no types: the first overload, ``fn`` takes every Event
        sub: _Sink[E] = _Sink(fn, types or (cast("type[E]", Event),))
        self._sinks.append(sub)

    def subscribe(
        self,
        since: int | None = None,
        *,
        types: Iterable[type[Event]] | None = None,
        maxsize: int | None = None,
        run: str | None = None,
    ) -> Subscription:
        """A live subscriber: the events after ``since`` still in the buffer (after a
        :class:`Gap` notice if some are not), then every new one. ``run``: the run the consumer
        counted ``since`` in; another run means everything before the buffer is a gap."""
        sub = Subscription(self, maxsize or self.queue_size, tuple(types) if types else None)
        if since is not None:
            gap, backlog = self.replay(since, run=run)
            if gap is not None:
                sub._push(gap)
            sub.limit = max(sub.limit, len(backlog) + sub.limit)
            for ev in backlog:
                sub._offer(ev)
        self._subs.add(sub)
        return sub

    def replay(self, since: int, *, run: str | None = None, limit: int | None = None) -> tuple[Gap | None, list[Event]]:
        """(a gap notice or None, the buffered events with seq > ``since``, oldest first)."""
        if run is not None and run != self.run:
            since = 0
        since = max(0, since)
        first = self.recent[0].seq if self.recent else self.seq + 1
        gap = Gap(since + 1, first - 1) if since + 1 < first else None
        skip = max(0, since + 1 - first)
        events = list(self.recent)[skip:] if skip < len(self.recent) else []
        if limit is not None:
            events = events[:limit]
        return gap, events

    # -- publishing --------------------------------------------------------------------
    def publish(self, event: E) -> E:
        """Stamp ``event`` (seq, at), keep it, call the sinks and queue it for every live
        subscriber (never waiting; a full one is dropped). Returns the stamped event."""
        self.seq += 1
        ev = dataclasses.replace(event, seq=self.seq, at=self.clock())
        self.recent.append(ev)
        for sink in self._sinks:
            if isinstance(ev, sink.types):
                try:
                    sink(ev)
                except Exception:
                    log.exception("event sink %r failed on %s #%d", sink.fn, ev.name, ev.seq)
        for sub in list(self._subs):
            if not sub._offer(ev):
                self._subs.discard(sub)
                self.dropped += 1
                log.warning(
                    "event subscriber dropped: it fell behind at #%d (%d queued)", sub.last_seq, len(sub.items) - 1
                )
        return ev

    async def emit(self, event: E) -> E:
        """:meth:`publish`, then await the writers for it in order. Every writer runs; the
        first exception is raised afterwards (the emitter's database write failed)."""
        ev = self.publish(event)
        first: BaseException | None = None
        for writer in self._writers:
            if isinstance(ev, writer.types):
                try:
                    await writer(ev)
                except Exception as exc:
                    if first is None:
                        first = exc
                    else:
                        log.exception("event writer %r failed on %s #%d", writer.fn, ev.name, ev.seq)
        if first is not None:
            raise first
        return ev

    def api(self, since: int = 0, run: str | None = None, limit: int = 1000) -> EventsReply:
        """The local API's ``events`` reply: the buffered events after ``since`` (at most
        ``limit``), with ``gap`` when some are gone and this ``run``'s id."""
        gap, evs = self.replay(int(since), run=run, limit=max(1, min(int(limit), 10_000)))
        return {
            "run": self.run,
            "last_seq": self.seq,
            "gap": gap.to_dict() if gap else None,
            "events": [e.to_dict() for e in evs],
        }

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def status(self) -> BusStatus:
        return {
            "run": self.run,
            "last_seq": self.seq,
            "buffered": len(self.recent),
            "first_buffered": self.recent[0].seq if self.recent else None,
            "subscribers": len(self._subs),
            "dropped": self.dropped,
        }


# =========================================================================== the journal


class Journal:
    """A sink appending one JSON line per event to a file (``[events] journal``), with the
    run id; flushed per line, so a crash loses nothing that was published."""

    def __init__(self, path: Path | str, run: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run = run
        self._f = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (open for the run)

    def __call__(self, ev: Event) -> None:
        if self._f.closed:
            return
        d = ev.to_dict()
        d["run"] = self.run
        self._f.write(json.dumps(d, default=str) + "\n")

    def close(self) -> None:
        self._f.close()


def read_journal(path: Path | str) -> list[dict[str, object]]:
    """Every line of a journal file, decoded (a torn last line is skipped)."""
    out: list[dict[str, object]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
