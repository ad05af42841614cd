"""Alerts before patients notice: the disk nearly full, a trunk down, media workers crash-
looping, recordings failing, the backup failing or stale.

Each condition is an *episode*: when it starts, one alert row (``alerts`` table) and one
message ("raised"); while it lasts, a reminder every ``[alerts] remind_hours``; when it
ends, one "resolved" message and the row is closed. Messages go through the notification
outbox (pypbx.notify: retried, durable) to ``[alerts] email`` (needs ``[notify]
smtp_host``) and/or ``[alerts] webhook_url``; every episode is also logged (WARNING when
raised, INFO when resolved) and listed by ``pypbx alerts list``.

The checks are pure functions of what the PBX sees (:func:`disk_check`, :func:`trunk_checks`,
:func:`crash_loop_check`, :func:`backup_checks`); :class:`AlertBook` turns their verdicts into
episodes, and :class:`AlertWatch` runs them every ``interval`` seconds inside ``pypbx run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pypbx.backup import LastBackup, Schedule
from pypbx.config import AlertsConfig
from pypbx.db import Database
from pypbx.db.retention import AlertRow

log = logging.getLogger(__name__)

#: the webhook/e-mail payload's ``event``
EVENT = "alert"
#: a backup older than this (s) is "stale" when a schedule exists
BACKUP_STALE_AFTER = 2 * 86400.0
#: this many lost workers within CRASH_WINDOW seconds is a crash loop
CRASH_LOOP_COUNT = 3
CRASH_WINDOW = 300.0
#: the recordings job failing this many rounds in a row
RECORDINGS_FAILING_ROUNDS = 3


class AlertKind(enum.StrEnum):
    DISK_LOW = "disk_low"
    TRUNK_DOWN = "trunk_down"
    WORKERS_CRASH_LOOP = "workers_crash_loop"
    RECORDINGS_FAILING = "recordings_failing"
    BACKUP_FAILED = "backup_failed"
    BACKUP_STALE = "backup_stale"
    NOBODY_ANSWERING = "nobody_answering"  # callers waiting in a queue, no agent logged in


class Phase(enum.StrEnum):
    RAISED = "raised"
    REMINDER = "reminder"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: ``bad`` or not, for one subject (a trunk's name, "" for the site)."""

    kind: AlertKind
    subject: str
    bad: bool
    message: str = ""


# --------------------------------------------------------------------------- checks


def disk_check(data_dir: Path, min_free_mb: int, free_mb: float | None = None) -> Verdict:
    if free_mb is None:
        p = data_dir
        while not p.exists() and p != p.parent:
            p = p.parent
        free_mb = shutil.disk_usage(p).free / 1e6
    return Verdict(
        AlertKind.DISK_LOW,
        "",
        free_mb < min_free_mb,
        f"only {free_mb:.0f} MB free on the disk of {data_dir} (alert below {min_free_mb} MB; "
        "recordings stop below [calls] min_free_mb)",
    )


class TrunkWatch:
    """Since when each trunk is down (an enabled trunk not registered): a trunk down for
    more than ``after`` seconds is bad."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.down_since: dict[str, float] = {}

    def checks(self, status: Iterable[dict[str, object]], now: float) -> list[Verdict]:
        out = []
        seen = set()
        for t in status:
            name = str(t.get("name"))
            seen.add(name)
            state = str(t.get("state") or "")
            down = bool(t.get("enabled", True)) and state not in ("registered", "ip-auth", "registering")
            if state == "registering" and name in self.down_since:
                down = True  # retrying after a failure is still down
            if down:
                since = self.down_since.setdefault(name, now)
            else:
                self.down_since.pop(name, None)
                since = now
            reason = str(t.get("last_reason") or state)
            out.append(
                Verdict(
                    AlertKind.TRUNK_DOWN,
                    name,
                    down and now - since >= self.after,
                    f"trunk {name} ({t.get('host')}) down for {now - since:.0f} s: {reason}",
                )
            )
        for gone in set(self.down_since) - seen:
            del self.down_since[gone]
        return out


#: (queue, callers waiting now, agents of the queue logged in)
QueueStaffing = tuple[str, int, int]


class NobodyWatch:
    """Callers waiting in a queue while none of its agents is logged in (a queue only takes
    callers while it is open: its hours allowed them in): bad after ``after`` seconds."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.since: dict[str, float] = {}

    def checks(self, staffing: Iterable[QueueStaffing], now: float) -> list[Verdict]:
        out = []
        for queue, waiting, logged_in in staffing:
            empty = waiting > 0 and logged_in == 0
            since = self.since.setdefault(queue, now) if empty else now
            if not empty:
                self.since.pop(queue, None)
            out.append(
                Verdict(
                    AlertKind.NOBODY_ANSWERING,
                    queue,
                    empty and now - since >= self.after,
                    f"queue {queue}: {waiting} caller(s) waiting for {now - since:.0f} s and no agent logged in",
                )
            )
        return out


class CrashWatch:
    """Media workers lost (WorkerLost events): CRASH_LOOP_COUNT within CRASH_WINDOW is a loop."""

    def __init__(self) -> None:
        self.lost: deque[float] = deque(maxlen=100)

    def worker_lost(self, now: float) -> None:
        self.lost.append(now)

    def check(self, now: float) -> Verdict:
        recent = [t for t in self.lost if t > now - CRASH_WINDOW]
        return Verdict(
            AlertKind.WORKERS_CRASH_LOOP,
            "",
            len(recent) >= CRASH_LOOP_COUNT,
            f"{len(recent)} media workers lost in {CRASH_WINDOW / 60:.0f} min (calls on them were cut)",
        )


def backup_checks(
    schedule: Schedule | None, last: LastBackup | None, set_at: float | None, now: float
) -> list[Verdict]:
    """The last backup failed / none succeeded for two days (only when a schedule exists)."""
    if schedule is None:
        return [Verdict(AlertKind.BACKUP_FAILED, "", False), Verdict(AlertKind.BACKUP_STALE, "", False)]
    failed = last is not None and not last["ok"]
    ok_at = last["at"] if last is not None and last["ok"] else None
    reference = ok_at if ok_at is not None else (set_at if set_at is not None else now)
    return [
        Verdict(
            AlertKind.BACKUP_FAILED,
            "",
            failed,
            f"the backup to {schedule['dest']} failed: {last['error'] if last else ''}",
        ),
        Verdict(
            AlertKind.BACKUP_STALE,
            "",
            now - reference > BACKUP_STALE_AFTER,
            f"no successful backup to {schedule['dest']} for {(now - reference) / 86400:.1f} days",
        ),
    ]


def recordings_check(failures: int) -> Verdict:
    return Verdict(
        AlertKind.RECORDINGS_FAILING,
        "",
        failures >= RECORDINGS_FAILING_ROUNDS,
        f"the recordings job (compression, retention) failed {failures} times in a row: see the log",
    )


# --------------------------------------------------------------------------- episodes

#: ``send(phase, alert row)``: queue the message (the outbox), or anything else in tests
Sender = Callable[[Phase, AlertRow], Awaitable[None]]


class AlertBook:
    """Verdicts -> episodes: raise once, remind every ``remind_hours``, resolve once."""

    def __init__(
        self, db: Database, cfg: AlertsConfig, send: Sender | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.db, self.cfg, self.send, self.clock = db, cfg, send, clock

    async def observe(self, v: Verdict) -> Phase | None:
        now = self.clock()
        row = await self.db.open_alert_row(v.kind.value, v.subject)
        if v.bad and row is None:
            aid = await self.db.insert_alert(v.kind.value, v.subject, v.message, now)
            row = await self.db.open_alert_row(v.kind.value, v.subject)
            log.warning("ALERT %s%s: %s", v.kind.value, f" {v.subject}" if v.subject else "", v.message)
            await self._send(Phase.RAISED, row, aid, now)
            return Phase.RAISED
        if v.bad and row is not None:
            remind = self.cfg.remind_hours * 3600
            if remind and (row["notified_at"] or row["raised_at"]) <= now - remind:
                await self._send(Phase.REMINDER, {**row, "message": v.message}, row["id"], now)
                return Phase.REMINDER
            return None
        if not v.bad and row is not None:
            await self.db.resolve_alert(row["id"], now)
            log.info("alert %s%s resolved", v.kind.value, f" {v.subject}" if v.subject else "")
            await self._send(Phase.RESOLVED, {**row, "resolved_at": now}, row["id"], now)
            return Phase.RESOLVED
        return None

    async def _send(self, phase: Phase, row: AlertRow | None, aid: int, now: float) -> None:
        if row is None:
            return
        if self.send is not None:
            await self.send(phase, row)
        await self.db.set_alert_notified(aid, now)


def payload(phase: Phase, row: AlertRow) -> dict[str, object]:
    """What the webhook receives and the e-mail says (``event: alert``; the e-mail uses
    ``subject`` and ``text``)."""
    what = row["kind"] + (f" {row['subject']}" if row["subject"] else "")
    head = {Phase.RAISED: "ALERT", Phase.REMINDER: "STILL", Phase.RESOLVED: "RESOLVED"}[phase]
    host = socket.gethostname()
    text = [
        f"{head}: {what}",
        "",
        row["message"],
        "",
        f"Raised:   {time.strftime('%Y-%m-%d %H:%M', time.localtime(row['raised_at']))}",
    ]
    if row["resolved_at"]:
        text.append(f"Resolved: {time.strftime('%Y-%m-%d %H:%M', time.localtime(row['resolved_at']))}")
    text += ["", f"pypbx on {host}: pypbx alerts list"]
    return {
        "event": EVENT,
        "phase": phase.value,
        "alert": dict(row),
        "subject": f"[pypbx {host}] {head}: {what}",
        "text": "\n".join(text),
    }


# --------------------------------------------------------------------------- the watch in `pypbx run`

TrunkStatus = Callable[[], list[dict[str, object]]]


class AlertWatch:
    def __init__(
        self,
        book: AlertBook,
        data_dir: Path,
        cfg: AlertsConfig,
        *,
        trunks: TrunkStatus | None = None,
        backup_state: Callable[[], Awaitable[tuple[Schedule | None, LastBackup | None, float | None]]] | None = None,
        recordings_failures: Callable[[], int] | None = None,
        queues: Callable[[], list[QueueStaffing]] | None = None,
        interval: float | None = None,
    ) -> None:
        self.book, self.data_dir, self.cfg = book, data_dir, cfg
        self.trunks, self.backup_state, self.recordings_failures = trunks, backup_state, recordings_failures
        self.queues = queues
        self.trunk_watch = TrunkWatch(cfg.trunk_down_after)
        self.nobody = NobodyWatch(cfg.nobody_answering_after)
        self.crashes = CrashWatch()
        self.interval = cfg.check_seconds if interval is None else interval

    async def step(self) -> list[Phase | None]:
        now = self.book.clock()
        verdicts = [disk_check(self.data_dir, self.cfg.disk_min_free_mb), self.crashes.check(now)]
        if self.trunks is not None:
            verdicts += self.trunk_watch.checks(self.trunks(), now)
        if self.backup_state is not None:
            sched, last, set_at = await self.backup_state()
            verdicts += backup_checks(sched, last, set_at, now)
        if self.recordings_failures is not None:
            verdicts.append(recordings_check(self.recordings_failures()))
        if self.queues is not None:
            verdicts += self.nobody.checks(self.queues(), now)
        return [await self.book.observe(v) for v in verdicts]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # background upkeep never stops the PBX
                log.error("alert checks failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


async def list_alerts(db: Database, *, open_only: bool = False, limit: int = 100) -> list[AlertRow]:
    return await db.alert_rows(open_only=open_only, limit=limit)
