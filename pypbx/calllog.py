"""Call records (CDR) and the call-event log: every call counted, exactly once.

Every call the front door accepts gets one row in ``calls`` the moment it is offered,
with disposition ``in_progress``; it ends with exactly one final :class:`Disposition`.
Every step is appended to ``call_events`` (append-only, enforced by triggers). On start
the PBX closes calls a crash left open as ``interrupted`` (:meth:`CallLog.close_interrupted`),
so offered = the sum of the final dispositions, always; :meth:`CallLog.accounting` checks it
and lists any call that breaks it.

Every step is also a domain event on the PBX's event stream (:mod:`pypbx.events`): the call
flows call :meth:`CallLog.offer` / :meth:`~CallLog.event` / :meth:`~CallLog.update` /
:meth:`~CallLog.answered` / :meth:`~CallLog.end`, which emit ``call offered / ringing /
answered / held / transferred / ended`` (or a ``call step`` for the rest) on the bus; the
books -- the ``calls`` row and the ``call_events`` rows -- are written by this module's
durable subscriber of those events (:meth:`CallLog.write`), awaited by the emitter as before.
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

from pypbx.db import Database
from pypbx.db.rows import CallEventRow, CallRow, RecordingRow
from pypbx.errors import PbxError
from pypbx.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallHeld,
    CallOffered,
    CallRinging,
    CallStep,
    CallTransferred,
    Direction,
    Disposition,
    EventBus,
    QueueAnnounced,
    frozen_map,
)
from pypbx.recordings import last_media

__all__ = [
    "FINAL_DISPOSITIONS",
    "CallLog",
    "CallLogError",
    "CallRecord",
    "CallerKind",
    "Direction",
    "Disposition",
    "disposition_for_status",
]


FINAL_DISPOSITIONS = tuple(d for d in Disposition if d.final)


class CallerKind(enum.StrEnum):
    """Who an inbound call's caller was at arrival (``calls.caller_kind``, looked up once by
    :func:`pypbx.callers.caller_kind`): a patient on the imported list with a patient id, a
    known number without one (on the list without an id, or called before), or new."""

    PATIENT = "patient"
    KNOWN = "known"
    NEW = "new"

    @property
    def returning(self) -> bool:
        return self is not CallerKind.NEW


def disposition_for_status(status: int) -> Disposition:
    """The disposition of an unanswered call from the final SIP status it ended with."""
    if status in (486, 600):
        return Disposition.BUSY
    if status == 487:
        return Disposition.ABANDONED_RINGING
    if status in (408,):
        return Disposition.NO_ANSWER
    if status in (480,):
        return Disposition.UNAVAILABLE
    if status in (404, 484, 604):
        return Disposition.NOT_FOUND
    if status in (401, 403, 407, 603):
        return Disposition.REJECTED
    return Disposition.FAILED


@dataclass
class CallRecord:
    id: str
    direction: Direction
    caller_number: str
    callee_number: str
    offered_at: float
    caller_name: str = ""
    callee_name: str = ""
    sip_call_id: str | None = None
    did: str | None = None
    service_line: str | None = None
    extension: str | None = None
    queue: str | None = None
    agent: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    disposition: Disposition = Disposition.IN_PROGRESS
    hangup_side: str | None = None
    hangup_cause: str | None = None
    flags: set[str] = field(default_factory=set)
    worker: str | None = None
    caller_kind: CallerKind | None = None

    @property
    def ring_seconds(self) -> float | None:
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return None if end is None else round(end - self.offered_at, 3)

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return round(self.ended_at - self.answered_at, 3)

    def row(self) -> CallRow:
        return {
            "id": self.id,
            "sip_call_id": self.sip_call_id,
            "direction": self.direction.value,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "callee_number": self.callee_number,
            "callee_name": self.callee_name,
            "did": self.did,
            "service_line": self.service_line,
            "extension": self.extension,
            "queue": self.queue,
            "agent": self.agent,
            "offered_at": self.offered_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "ring_seconds": self.ring_seconds,
            "talk_seconds": self.talk_seconds,
            "hangup_side": self.hangup_side,
            "hangup_cause": self.hangup_cause,
            "disposition": self.disposition.value,
            "flags": ",".join(sorted(self.flags)),
            "worker": self.worker,
            "caller_kind": self.caller_kind.value if self.caller_kind is not None else None,
        }


class CallLogError(PbxError):
    pass


class CallExtras(TypedDict, total=False):
    """The :class:`CallRecord` fields :meth:`CallLog.offer` takes besides its named ones."""

    callee_name: str
    did: str | None
    service_line: str | None
    extension: str | None
    queue: str | None
    agent: str | None
    flags: set[str]
    worker: str | None
    caller_kind: CallerKind | None


class Accounting(TypedDict):
    """What :meth:`CallLog.accounting` returns."""

    offered: int
    answered: int
    abandoned: int
    in_progress: int
    dispositions: dict[str, int]
    balanced: bool
    unaccounted: list[str]


class AccountingReport(Accounting):
    """:class:`Accounting` plus the inbound callers of the period not answered."""

    missed_callers: list[str]


class CallLog:
    """Writes call records and events. One instance per running PBX."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time, *, bus: EventBus | None = None) -> None:
        self.db = db
        self.clock = clock
        self.active: dict[str, CallRecord] = {}
        self.bus = bus if bus is not None else EventBus(clock=clock)
        self.bus.add_writer(self.write, CallEvent)

    # -- the books: the durable subscriber of the call events --------------------------
    async def write(self, ev: CallEvent) -> None:
        """Write one call event to ``calls`` / ``call_events`` (what each step always wrote)."""
        rows = [(ev.at, ev.step, json.dumps(dict(ev.detail), default=str))] if ev.step else []
        if isinstance(ev, CallOffered):
            assert ev.record is not None and rows
            await self.db.insert_call(dict(ev.record), rows[0])
        elif ev.record is not None:
            row = dict(ev.record)
            row.pop("id", None)
            await self.db.update_call(ev.call_id, row, rows)
        elif rows:
            await self.db.add_call_events([(ev.call_id, *rows[0])])

    # -- the call flows' API -----------------------------------------------------------
    async def offer(
        self,
        *,
        direction: Direction,
        caller_number: str,
        callee_number: str,
        caller_name: str = "",
        sip_call_id: str | None = None,
        **extra: Unpack[CallExtras],
    ) -> CallRecord:
        now = self.clock()
        rec = CallRecord(
            id=uuid.uuid4().hex,
            direction=direction,
            caller_number=caller_number,
            callee_number=callee_number,
            caller_name=caller_name,
            sip_call_id=sip_call_id,
            offered_at=now,
            **extra,
        )
        self.active[rec.id] = rec
        await self.bus.emit(
            CallOffered(
                call_id=rec.id,
                direction=direction,
                caller=caller_number,
                callee=callee_number,
                step="offered",
                detail=frozen_map({"from": caller_number, "to": callee_number, "direction": direction.value}),
                record=frozen_map(rec.row()),
            )
        )
        return rec

    async def event(self, rec: CallRecord, kind: str, **detail: object) -> None:
        await self.bus.emit(_call_event(rec, kind, detail, None))
        if kind == "queue_announce":  # the caller heard its position / wait: a queue event too
            position, ewt = detail.get("position"), detail.get("ewt")
            self.bus.publish(
                QueueAnnounced(
                    queue=rec.queue,
                    call_id=rec.id,
                    position=position if isinstance(position, int) else None,
                    ewt=ewt if isinstance(ewt, (int, float)) else None,
                    data=frozen_map({"files": detail.get("files")}),
                )
            )

    async def update(self, rec: CallRecord, kind: str | None = None, **detail: object) -> None:
        await self.bus.emit(_call_event(rec, kind, detail, frozen_map(rec.row())))

    async def answered(self, rec: CallRecord, at: float | None = None, **detail: object) -> None:
        """Stamp the answer (``at``: when it happened, if that was before this call)."""
        if rec.answered_at is None:
            rec.answered_at = self.clock() if at is None else at
            await self.bus.emit(
                CallAnswered(
                    call_id=rec.id,
                    answered_at=rec.answered_at,
                    step="answered",
                    detail=frozen_map(detail),
                    record=frozen_map(rec.row()),
                )
            )

    async def end(
        self,
        rec: CallRecord,
        disposition: Disposition,
        *,
        side: str | None = None,
        cause: str | None = None,
        **detail: object,
    ) -> None:
        """Give the call its one final disposition. A second call is ignored (logged as an event)."""
        if not disposition.final:
            raise CallLogError("a call must end with a final disposition")
        if rec.disposition.final:
            await self.event(rec, "late_end_ignored", disposition=disposition.value, cause=cause)
            return
        rec.ended_at = self.clock()
        rec.disposition = disposition
        rec.hangup_side = side
        rec.hangup_cause = cause
        self.active.pop(rec.id, None)
        await self.bus.emit(
            CallEnded(
                call_id=rec.id,
                disposition=disposition,
                side=side,
                cause=cause,
                step="ended",
                detail=frozen_map({"disposition": disposition.value, "side": side, "cause": cause, **detail}),
                record=frozen_map(rec.row()),
            )
        )

    async def close_interrupted(self, rec_dir: Path | None = None) -> list[str]:
        """At start: every call a crash left ``in_progress`` ends as ``interrupted``.

        The downtime is not talk: an answered call ends where its recording's party files
        (under ``rec_dir``) stop -- the last media activity they show (without them, at the
        restart)."""
        now = self.clock()
        ids = []
        for row in await self.db.open_call_rows():
            answered = row.get("answered_at")
            ended = await self._last_activity(row, rec_dir)
            end = min(now, ended) if ended is not None else now
            fields = {
                "disposition": Disposition.INTERRUPTED.value,
                "ended_at": end,
                "hangup_side": "system",
                "hangup_cause": "pbx restarted",
                "talk_seconds": (round(max(0.0, end - answered), 3) if answered else None),
            }
            await self.bus.emit(
                CallEnded(
                    call_id=row["id"],
                    disposition=Disposition.INTERRUPTED,
                    side="system",
                    cause="pbx restarted",
                    step="ended",
                    detail=frozen_map({"disposition": "interrupted", "cause": "pbx restarted"}),
                    record=frozen_map(fields),
                )
            )
            ids.append(row["id"])
        return ids

    async def _last_activity(self, row: CallRow, rec_dir: Path | None) -> float | None:
        """When an answered call the crash cut last showed life: answered + the audio its
        party files hold (None: no recording to tell, the restart time is used)."""
        answered = row.get("answered_at")
        if answered is None or rec_dir is None:
            return None
        seconds = await asyncio.to_thread(last_media, rec_dir, row["id"])
        return None if seconds is None else float(answered) + seconds

    async def accounting(self, since: float | None = None, until: float | None = None) -> Accounting:
        """Offered = sum of final dispositions; calls still open are listed (they must be live)."""
        counts = await self.db.disposition_counts(since, until)
        offered = sum(counts.values())
        open_rows = [
            r
            for r in await self.db.open_call_rows()
            if (since is None or r["offered_at"] >= since) and (until is None or r["offered_at"] < until)
        ]
        stray = [r["id"] for r in open_rows if r["id"] not in self.active]
        finals = {d.value: counts.get(d.value, 0) for d in FINAL_DISPOSITIONS}
        return {
            "offered": offered,
            "answered": finals[Disposition.ANSWERED.value],
            "abandoned": sum(
                finals[d.value]
                for d in (Disposition.ABANDONED_RINGING, Disposition.ABANDONED_IVR, Disposition.ABANDONED_QUEUE)
            ),
            "in_progress": counts.get(Disposition.IN_PROGRESS.value, 0),
            "dispositions": finals,
            "balanced": offered == sum(finals.values()) + counts.get(Disposition.IN_PROGRESS.value, 0) and not stray,
            "unaccounted": stray,
        }


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def _call_event(
    rec: CallRecord, kind: str | None, detail: Mapping[str, object], record: Mapping[str, object] | None
) -> CallEvent:
    """The typed event of one step the call flow logged (``kind`` as in ``call_events``)."""
    details = frozen_map(detail)
    if kind == "ringing":
        return CallRinging(
            callee=_opt_str(detail.get("callee")), call_id=rec.id, step=kind, detail=details, record=record
        )
    if kind in ("held", "unheld"):
        return CallHeld(
            held=kind == "held",
            side=_opt_str(detail.get("side")),
            call_id=rec.id,
            step=kind,
            detail=details,
            record=record,
        )
    if kind == "transferred":
        return CallTransferred(to=_opt_str(detail.get("to")), call_id=rec.id, step=kind, detail=details, record=record)
    return CallStep(call_id=rec.id, step=kind, detail=details, record=record)


# --------------------------------------------------------------------------- issue 9 (h-cli): CLI report logic
# Moved here from the CLI (``pypbx calls show`` / ``pypbx calls report``).


async def call_detail(db: Database, call_id: str) -> tuple[CallRow, list[CallEventRow], RecordingRow | None]:
    """One call (``call_id`` or a unique prefix of it): its row, event rows and recording row."""
    row = await db.get_call_row(call_id)
    if row is None:
        matches = await db.call_ids_with_prefix(call_id)
        if len(matches) != 1:
            raise CallLogError(f"no call {call_id!r}" if not matches else f"call id prefix {call_id!r} is ambiguous")
        row = await db.get_call_row(matches[0])
        if row is None:
            raise CallLogError(f"no call {call_id!r}")
    return row, await db.call_event_rows(row["id"]), await db.get_recording_row(row["id"])


async def accounting_report(
    db: Database, since: float | None, until: float | None, live_calls: Callable[[], Awaitable[Iterable[str]]]
) -> AccountingReport:
    """:meth:`CallLog.accounting`, where calls still live (``await live_calls()``) are not
    unaccounted, plus ``missed_callers``: inbound callers of the period not answered."""
    acc = await CallLog(db).accounting(since, until)
    live = set(await live_calls())
    acc["unaccounted"] = [c for c in acc["unaccounted"] if c not in live]
    acc["balanced"] = not acc["unaccounted"]
    missed = await db.search_call_rows(since=since, until=until, limit=1000)
    return {
        **acc,
        "missed_callers": sorted(
            {
                num
                for r in missed
                # the column is nullable, but CallLog always writes a number (CallRecord.caller_number: str)
                if (num := r["caller_number"]) is not None
                and r["disposition"] not in ("answered", "in_progress")
                and r["direction"] != "outbound"
            }
        ),
    }
