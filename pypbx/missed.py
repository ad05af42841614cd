"""The missed-caller worklist: one callback task per number that could not reach a person.

Every call that did not reach a person (abandoned in a queue, no answer, busy, unavailable,
after hours, hung up in the IVR, voicemail, "press 1" callback, interrupted) opens a
**callback task** for the caller's number, or merges into the number's open task (across
queues; a task keeps each missed call, its reasons in the order first seen, its latest
queue and service line). A task closes itself when the number is reached: an answered call
to or from it whose talk lasted at least ``[missed] reached_after`` seconds. Staff claim a
task, call the patient back (:class:`pypbx.flows.callback.MissedCallback`: the agent's phone
first, then the patient) or close it with an :class:`Outcome`; a queue with automatic
callback has its open tasks dialled by the ACD (:meth:`pypbx.acdlive.AcdLive.sync_missed`).

Where calls end: :class:`Worklist` is a synchronous sink of the event stream for
``call.ended`` (it only queues the ended record, so a call never waits for it) and works the
records off in its own task. Numbers are compared as the calls table stores them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from pypbx import hours
from pypbx.db import Database
from pypbx.db.missed import MissedAttemptRow, MissedCallRow, MissedTaskRow
from pypbx.errors import PbxError, PbxUsageError
from pypbx.events import (
    AttemptOutcome,
    CallEnded,
    Direction,
    Disposition,
    EventBus,
    MissedReason,
    MissedTaskAttempted,
    MissedTaskClaimed,
    MissedTaskClosed,
    MissedTaskMerged,
    MissedTaskOpened,
    Outcome,
)

log = logging.getLogger(__name__)

#: Default talk time (seconds) after which an answered call counts as the number reached.
DEFAULT_REACHED_AFTER = 5.0


class MissedError(PbxError):
    """A one-line problem with a worklist operation."""


class MissedInputError(MissedError, PbxUsageError):
    """A bad value given to a worklist command (exit status 2)."""


class TaskState(str, enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


#: The final dispositions that mean the caller did not reach a person, and why.
REASON_OF: Mapping[Disposition, MissedReason] = {
    Disposition.ABANDONED_QUEUE: MissedReason.ABANDONED,
    Disposition.NO_ANSWER: MissedReason.NO_ANSWER,
    Disposition.ABANDONED_RINGING: MissedReason.NO_ANSWER,
    Disposition.BUSY: MissedReason.BUSY,
    Disposition.UNAVAILABLE: MissedReason.UNAVAILABLE,
    Disposition.FAILED: MissedReason.UNAVAILABLE,
    Disposition.AFTER_HOURS: MissedReason.AFTER_HOURS,
    Disposition.ABANDONED_IVR: MissedReason.IVR_HANGUP,
    Disposition.VOICEMAIL: MissedReason.VOICEMAIL,
    Disposition.CALLBACK_REQUESTED: MissedReason.CALLBACK_REQUESTED,
    Disposition.INTERRUPTED: MissedReason.INTERRUPTED,
}
#: Caller numbers that cannot be called back.
UNCALLABLE = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})


def _text(row: Mapping[str, object], key: str) -> str | None:
    v = row.get(key)
    return v if isinstance(v, str) and v else None


def _num(row: Mapping[str, object], key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def callable_number(number: str | None) -> bool:
    """A number a callback can dial (not anonymous, has digits)."""
    if not number or number.strip().lower() in UNCALLABLE:
        return False
    return any(ch.isdigit() for ch in number)


def missed_reason(row: Mapping[str, object]) -> MissedReason | None:
    """Why the ended call ``row`` (a calls row) is a missed caller, or None: it is not one.

    Inbound calls (from a trunk) and internal callers who dialled a queue are patients'
    calls; outbound calls never open a task."""
    try:
        disposition = Disposition(row.get("disposition"))
        direction = Direction(row.get("direction"))
    except ValueError:
        return None
    if direction is Direction.OUTBOUND:
        return None
    if direction is Direction.INTERNAL and not _text(row, "queue"):
        return None
    if not callable_number(_text(row, "caller_number")):
        return None
    return REASON_OF.get(disposition)


def reached_numbers(row: Mapping[str, object], reached_after: float) -> list[str]:
    """The numbers an ended call reached (an answered call, talk >= ``reached_after``)."""
    if row.get("disposition") != Disposition.ANSWERED.value:
        return []
    talk = _num(row, "talk_seconds")
    if talk is None or talk < reached_after:
        return []
    out: list[str] = []
    for key in ("caller_number", "callee_number"):
        n = _text(row, key)
        if n and n not in out:
            out.append(n)
    return out


class TaskDict(TypedDict):
    id: int
    number: str
    state: str
    reasons: list[str]
    queue: str | None
    service_line: str | None
    opened_at: float
    first_missed_at: float
    last_missed_at: float
    missed_count: int
    attempts: int
    last_attempt_at: float | None
    claimed_by: str | None
    claimed_at: float | None
    closed_at: float | None
    outcome: str | None
    closed_by: str | None
    closing_call_id: str | None
    waiting: float  # seconds since the first missed call (until the close, once closed)


@dataclass(frozen=True)
class Task:
    """One callback task (a ``missed_tasks`` row)."""

    id: int
    number: str
    state: TaskState
    reasons: tuple[MissedReason, ...]
    queue: str | None
    service_line: str | None
    opened_at: float
    first_missed_at: float
    last_missed_at: float
    missed_count: int
    attempts: int
    last_attempt_at: float | None
    claimed_by: str | None
    claimed_at: float | None
    closed_at: float | None
    outcome: Outcome | None
    closed_by: str | None
    closing_call_id: str | None

    @classmethod
    def from_row(cls, r: MissedTaskRow) -> Task:
        reasons: list[MissedReason] = []
        for x in r["reasons"].split(","):
            try:
                reasons.append(MissedReason(x))
            except ValueError:
                continue
        return cls(
            id=r["id"],
            number=r["number"],
            state=TaskState(r["state"]),
            reasons=tuple(reasons),
            queue=r["queue"],
            service_line=r["service_line"],
            opened_at=r["opened_at"],
            first_missed_at=r["first_missed_at"],
            last_missed_at=r["last_missed_at"],
            missed_count=r["missed_count"],
            attempts=r["attempts"],
            last_attempt_at=r["last_attempt_at"],
            claimed_by=r["claimed_by"],
            claimed_at=r["claimed_at"],
            closed_at=r["closed_at"],
            outcome=Outcome(r["outcome"]) if r["outcome"] else None,
            closed_by=r["closed_by"],
            closing_call_id=r["closing_call_id"],
        )

    @property
    def is_open(self) -> bool:
        return self.state is TaskState.OPEN

    def waiting(self, now: float) -> float:
        end = self.closed_at if self.closed_at is not None else now
        return max(0.0, end - self.first_missed_at)

    def to_dict(self, now: float | None = None) -> TaskDict:
        return {
            "id": self.id,
            "number": self.number,
            "state": self.state.value,
            "reasons": [r.value for r in self.reasons],
            "queue": self.queue,
            "service_line": self.service_line,
            "opened_at": self.opened_at,
            "first_missed_at": self.first_missed_at,
            "last_missed_at": self.last_missed_at,
            "missed_count": self.missed_count,
            "attempts": self.attempts,
            "last_attempt_at": self.last_attempt_at,
            "claimed_by": self.claimed_by,
            "claimed_at": self.claimed_at,
            "closed_at": self.closed_at,
            "outcome": self.outcome.value if self.outcome else None,
            "closed_by": self.closed_by,
            "closing_call_id": self.closing_call_id,
            "waiting": round(self.waiting(time.time() if now is None else now), 1),
        }


class TaskDetail(TypedDict):
    task: TaskDict
    calls: list[MissedCallRow]
    attempts: list[MissedAttemptRow]


# =========================================================================== the store


def parse_task_id(task: object) -> int:
    """A task id as typed (``12`` or ``#12``)."""
    text = str(task).strip().lstrip("#")
    try:
        n = int(text)
    except ValueError:
        raise MissedInputError(f"bad task id {task!r}: expected a number, e.g. 12") from None
    if n <= 0:
        raise MissedInputError(f"bad task id {task!r}: expected a number, e.g. 12")
    return n


def parse_outcome(text: object) -> Outcome:
    try:
        return Outcome(str(text).strip().lower().replace("_", "-"))
    except ValueError:
        raise MissedInputError(
            f"unknown outcome {text!r} (choose from {', '.join(o.value for o in Outcome)})"
        ) from None


async def get_task(db: Database, task: object) -> Task:
    row = await db.get_missed_task_row(parse_task_id(task))
    if row is None:
        raise MissedError(f"task {task} not found")
    return Task.from_row(row)


async def list_tasks(
    db: Database,
    *,
    include_closed: bool = False,
    queue: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 1000,
) -> list[Task]:
    """Open tasks (all with ``include_closed``), the longest waiting first."""
    states = None if include_closed else (TaskState.OPEN.value,)
    rows = await db.list_missed_task_rows(states=states, queue=queue, since=since, until=until, limit=limit)
    return [Task.from_row(r) for r in rows]


async def task_detail(db: Database, task: object) -> TaskDetail:
    t = await get_task(db, task)
    return {
        "task": t.to_dict(),
        "calls": await db.missed_call_rows(t.id),
        "attempts": await db.missed_attempt_rows(t.id),
    }


class Change(enum.Enum):
    OPENED = "opened"
    MERGED = "merged"
    CLOSED = "closed"


async def record_call(
    db: Database, row: Mapping[str, object], *, reached_after: float = DEFAULT_REACHED_AFTER
) -> list[tuple[Change, Task]]:
    """An ended call (its ``calls`` row): open or merge a task for a missed caller, close the
    open task of a number the call reached. What changed, in order."""
    out: list[tuple[Change, Task]] = []
    ended = _num(row, "ended_at") or time.time()
    call_id = _text(row, "id") or ""
    for number in reached_numbers(row, reached_after):
        open_row = await db.open_missed_task_row(number)
        if open_row is None:
            continue
        if await db.update_missed_task_row(
            open_row["id"],
            {
                "state": TaskState.CLOSED.value,
                "closed_at": ended,
                "outcome": Outcome.REACHED.value,
                "closed_by": _text(row, "agent") or _text(row, "extension") or "call",
                "closing_call_id": call_id or None,
            },
            only_open=True,
        ):
            out.append((Change.CLOSED, await get_task(db, open_row["id"])))
    reason = missed_reason(row)
    if reason is not None:
        caller = _text(row, "caller_number")
        assert caller is not None  # missed_reason checked it
        offered = _num(row, "offered_at") or ended
        task_row, merged, new_call = await db.record_missed_call_row(
            caller, call_id, reason.value, _text(row, "queue"), _text(row, "service_line"), offered, ended
        )
        if new_call:
            out.append((Change.MERGED if merged else Change.OPENED, Task.from_row(task_row)))
    return out


async def claim_task(db: Database, task: object, by: str, *, now: float | None = None) -> Task:
    t = await get_task(db, task)
    by = by.strip()
    if not by:
        raise MissedError("claim needs --by EXT or agent")
    if not t.is_open:
        raise MissedError(f"task {t.id} is closed ({t.outcome.value if t.outcome else '-'})")
    if t.claimed_by and t.claimed_by != by:
        raise MissedError(f"task {t.id} is already claimed by {t.claimed_by}")
    await db.update_missed_task_row(
        t.id, {"claimed_by": by, "claimed_at": time.time() if now is None else now}, only_open=True
    )
    return await get_task(db, t.id)


async def close_task(
    db: Database,
    task: object,
    outcome: Outcome | str,
    *,
    by: str | None = None,
    call_id: str | None = None,
    now: float | None = None,
) -> Task:
    t = await get_task(db, task)
    oc = outcome if isinstance(outcome, Outcome) else parse_outcome(outcome)
    if not t.is_open:
        raise MissedError(f"task {t.id} is already closed ({t.outcome.value if t.outcome else '-'})")
    ok = await db.update_missed_task_row(
        t.id,
        {
            "state": TaskState.CLOSED.value,
            "closed_at": time.time() if now is None else now,
            "outcome": oc.value,
            "closed_by": by or t.claimed_by or "staff",
            "closing_call_id": call_id,
        },
        only_open=True,
    )
    if not ok:
        raise MissedError(f"task {t.id} was closed meanwhile")
    return await get_task(db, t.id)


async def start_attempt(db: Database, task: Task, by: str, *, now: float | None = None) -> int:
    return await db.add_missed_attempt_row(task.id, by, time.time() if now is None else now, None)


async def end_attempt(
    db: Database, attempt_id: int, outcome: AttemptOutcome, *, dialled: bool, now: float | None = None
) -> bool:
    return await db.end_missed_attempt_row(attempt_id, outcome.value, time.time() if now is None else now, dialled)


# -- queue settings ------------------------------------------------------------------------------


class QueueCallback(TypedDict):
    queue: str
    auto_callback: bool
    callback_hours: str | None


async def queue_callback_settings(db: Database) -> dict[str, QueueCallback]:
    return {
        r["name"]: {
            "queue": r["name"],
            "auto_callback": bool(r["auto_callback"]),
            "callback_hours": r["callback_hours"],
        }
        for r in await db.queue_callback_rows()
    }


async def set_queue_callback(
    db: Database, queue: str, *, auto_callback: bool | None = None, callback_hours: str | None = None
) -> None:
    """A queue's automatic callback (on/off) and the opening hours it dials in ('' = always)."""
    if callback_hours:
        await hours.get_schedule(db, callback_hours)  # raises: unknown schedule
    if not await db.set_queue_callback_row(queue, auto_callback, callback_hours):
        raise MissedError(f"queue {queue} not found")


# =========================================================================== figures


class MissedFigures(TypedDict):
    opened: int
    reached: int
    closed: int
    still_open: int
    callback_rate: float | None  # reached / opened
    median_to_callback: float | None  # seconds, first missed call -> reached
    p90_to_callback: float | None


class MissedGroup(MissedFigures):
    key: str


class MissedReport(TypedDict):
    total: MissedFigures
    by_day: list[MissedGroup]
    by_queue: list[MissedGroup]
    by_service_line: list[MissedGroup]


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100), nearest-rank method (None for no values)."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, -(-len(s) * p // 100))  # ceil(n * p / 100), at least 1
    return s[int(k) - 1]


def figures(tasks: Sequence[Task]) -> MissedFigures:
    reached = [t for t in tasks if t.outcome is Outcome.REACHED and t.closed_at is not None]
    waits = [t.waiting(0.0) for t in reached]
    opened = len(tasks)
    return {
        "opened": opened,
        "reached": len(reached),
        "closed": sum(1 for t in tasks if not t.is_open),
        "still_open": sum(1 for t in tasks if t.is_open),
        "callback_rate": round(len(reached) / opened, 4) if opened else None,
        "median_to_callback": round(statistics.median(waits), 1) if waits else None,
        "p90_to_callback": round(p, 1) if (p := percentile(waits, 90)) is not None else None,
    }


def grouped(tasks: Sequence[Task], key: Callable[[Task], str]) -> list[MissedGroup]:
    groups: dict[str, list[Task]] = {}
    for t in tasks:
        groups.setdefault(key(t), []).append(t)
    return [{"key": k, **figures(v)} for k, v in sorted(groups.items())]


async def missed_report(
    db: Database,
    since: float | None,
    until: float | None,
    day: Callable[[float], str],
    *,
    queue: str | None = None,
) -> MissedReport:
    """Callback figures of the tasks opened in [since, until): per day (``day(ts)`` of the
    first missed call), queue, service line."""
    tasks = await list_tasks(db, include_closed=True, queue=queue, since=since, until=until, limit=1_000_000)
    return {
        "total": figures(tasks),
        "by_day": grouped(tasks, lambda t: day(t.first_missed_at)),
        "by_queue": grouped(tasks, lambda t: t.queue or "-"),
        "by_service_line": grouped(tasks, lambda t: t.service_line or "-"),
    }


# =========================================================================== the live worklist


class Worklist:
    """The worklist of a running PBX: records every ended call (a sink of the event stream,
    worked off in :meth:`run`), publishes the tasks' events, serves the local API."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        reached_after: float = DEFAULT_REACHED_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.bus = bus
        self.reached_after = reached_after
        self.clock = clock
        self.inbox: asyncio.Queue[Mapping[str, object]] = asyncio.Queue()
        self.listeners: list[Callable[[list[tuple[Change, Task]]], None]] = []  # told what changed (the ACD)
        self._idle = asyncio.Event()
        self._idle.set()
        bus.add_sink(self._ended, CallEnded)

    def _ended(self, ev: CallEnded) -> None:
        """The sink: queue the ended record (never waits)."""
        if ev.record is not None:
            self._idle.clear()
            self.inbox.put_nowait({**ev.record, "id": ev.call_id, "disposition": ev.disposition.value})

    async def run(self) -> None:
        """Work the ended calls off, in order, until cancelled."""
        while True:
            row = await self.inbox.get()
            try:
                await self.record(row)
            except Exception:
                log.exception("missed-caller worklist: recording call %s failed", row.get("id"))
            finally:
                if self.inbox.empty():
                    self._idle.set()

    async def drained(self) -> None:
        """Every queued record is worked off (tests, shutdown)."""
        await self._idle.wait()

    async def record(self, row: Mapping[str, object]) -> list[tuple[Change, Task]]:
        changes = await record_call(self.db, row, reached_after=self.reached_after)
        for change, task in changes:
            call_id = _text(row, "id")
            if change is Change.OPENED:
                self._publish(MissedTaskOpened, task, call_id=call_id)
            elif change is Change.MERGED:
                self._publish(MissedTaskMerged, task, call_id=call_id)
            else:
                self._publish_closed(task)
        if changes:
            self._changed(changes)
        return changes

    def _changed(self, changes: list[tuple[Change, Task]]) -> None:
        for fn in self.listeners:
            try:
                fn(changes)
            except Exception:
                log.exception("missed-caller worklist listener failed")

    def _publish(self, kind: type[MissedTaskOpened] | type[MissedTaskMerged], task: Task, call_id: str | None) -> None:
        self.bus.publish(
            kind(task_id=task.id, number=task.number, reasons=task.reasons, queue=task.queue, call_id=call_id)
        )

    def _publish_closed(self, task: Task) -> None:
        self.bus.publish(
            MissedTaskClosed(
                task_id=task.id,
                number=task.number,
                reasons=task.reasons,
                queue=task.queue,
                call_id=task.closing_call_id,
                outcome=task.outcome,
                by=task.closed_by,
                wait=round(task.waiting(self.clock()), 1),
            )
        )

    # -- operations (the local API and the CLI through it) --------------------------------------
    async def tasks(self, queue: str | None = None, all: bool = False) -> list[TaskDict]:
        now = self.clock()
        return [t.to_dict(now) for t in await list_tasks(self.db, include_closed=all, queue=queue)]

    async def show(self, task: object) -> TaskDetail:
        return await task_detail(self.db, task)

    async def claim(self, task: object, by: str) -> TaskDict:
        t = await claim_task(self.db, task, by, now=self.clock())
        self.bus.publish(
            MissedTaskClaimed(
                task_id=t.id,
                number=t.number,
                reasons=t.reasons,
                queue=t.queue,
                by=t.claimed_by,
            )
        )
        return t.to_dict(self.clock())

    async def close(self, task: object, outcome: str, by: str | None = None) -> TaskDict:
        t = await close_task(self.db, task, outcome, by=by, now=self.clock())
        self._publish_closed(t)
        self._changed([(Change.CLOSED, t)])
        return t.to_dict(self.clock())

    async def attempt_started(self, task: Task, by: str) -> int:
        return await start_attempt(self.db, task, by, now=self.clock())

    async def attempt_ended(
        self, task: Task, attempt_id: int, outcome: AttemptOutcome, *, dialled: bool, by: str, call_id: str | None
    ) -> None:
        if call_id:
            await self.db.set_missed_attempt_call(attempt_id, call_id)
        await end_attempt(self.db, attempt_id, outcome, dialled=dialled, now=self.clock())
        self.bus.publish(
            MissedTaskAttempted(
                task_id=task.id,
                number=task.number,
                reasons=task.reasons,
                queue=task.queue,
                call_id=call_id,
                by=by,
                outcome=outcome,
            )
        )
        self._changed([])
