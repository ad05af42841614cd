"""The low-priority background jobs of ``pypbx run`` (issue 13): recordings' compression and
daily retention (pypbx.retention), the scheduled daily backup (pypbx.backup) and the alerts
(pypbx.alerts). None of them is on a call's path: the file work runs in ONE thread at nice
19 (compression and backups never overlap); each failure is logged and retried on the next
round, and the alerts report the ones that keep failing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from pypbx import alerts as A
from pypbx import backup as B
from pypbx import events as E
from pypbx import service
from pypbx.config import Config
from pypbx.db import Database
from pypbx.db.retention import AlertRow
from pypbx.notify import Channel, Notifier
from pypbx.retention import RecordingKeeper, background_executor

log = logging.getLogger(__name__)

TrunkStatus = Callable[[], list[dict[str, object]]]
#: how often the backup job looks at its schedule (s)
BACKUP_POLL = 30.0


async def backup_state(db: Database) -> tuple[B.Schedule | None, B.LastBackup | None, float | None]:
    sched = B.loads_schedule(await db.get_meta(B.SCHEDULE_KEY))
    last = B.loads_last(await db.get_meta(B.LAST_KEY))
    return sched, last, (sched or {}).get("set_at") if sched else None


async def backup_once(cfg: Config, db: Database, sched: B.Schedule, now: float) -> B.LastBackup:
    """Make the scheduled backup in the background thread and record its outcome."""
    loop = asyncio.get_running_loop()
    try:
        r = await loop.run_in_executor(
            background_executor(), lambda: B.backup(cfg, Path(sched["dest"]), keep=sched["keep"])
        )
        last: B.LastBackup = {"ok": True, "at": now, "dest": sched["dest"], "snapshot": r.snapshot.name, "error": ""}
    except Exception as exc:  # whatever it was, it is recorded and alerted
        log.error("scheduled backup to %s failed: %s", sched["dest"], exc)
        last = {"ok": False, "at": now, "dest": sched["dest"], "snapshot": "", "error": str(exc)}
    await db.set_meta(B.LAST_KEY, json.dumps(last))
    return last


async def run_backups(cfg: Config, db: Database, stop: asyncio.Event, clock: Callable[[], float] = time.time) -> None:
    while not stop.is_set():
        try:
            sched, last, _ = await backup_state(db)
            now = clock()
            if sched is not None and B.due(sched, last, now):
                await backup_once(cfg, db, sched, now)
        except Exception as exc:  # background upkeep never stops the PBX (the alert says it)
            log.error("scheduled backup failed: %s: %s", type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BACKUP_POLL)


def alert_sender(cfg: Config, notifier: Notifier | None) -> A.Sender | None:
    targets = [(Channel.EMAIL, cfg.alerts.email)] if cfg.alerts.email and cfg.notify.smtp_host else []
    if cfg.alerts.webhook_url:
        targets.append((Channel.WEBHOOK, cfg.alerts.webhook_url))
    if notifier is None or not targets:
        return None

    async def send(phase: A.Phase, row: AlertRow) -> None:
        await notifier.enqueue(A.EVENT, A.payload(phase, row), targets)

    return send


async def run_upkeep(
    cfg: Config,
    db: Database,
    stop: asyncio.Event,
    *,
    trunks: TrunkStatus | None = None,
    notifier: Notifier | None = None,
    events: E.EventBus | None = None,
    queues: Callable[[], list[A.QueueStaffing]] | None = None,
) -> None:
    keeper = RecordingKeeper(db, cfg.recordings)
    book = A.AlertBook(db, cfg.alerts, alert_sender(cfg, notifier))

    async def state() -> tuple[B.Schedule | None, B.LastBackup | None, float | None]:
        return await backup_state(db)

    watch = A.AlertWatch(
        book,
        cfg.data_dir,
        cfg.alerts,
        trunks=trunks,
        backup_state=state,
        recordings_failures=lambda: keeper.failures,
        queues=queues,
    )
    if events is not None:
        events.add_sink(lambda ev: watch.crashes.worker_lost(time.time()), E.WorkerLost)
    await asyncio.to_thread(service.secure_files, cfg)
    service.notify("READY=1")  # systemd (Type=notify): the PBX serves from now on
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(keeper.run(stop))
            tg.create_task(run_backups(cfg, db, stop))
            tg.create_task(watch.run(stop))
            tg.create_task(watchdog(stop))
    finally:
        service.notify("STOPPING=1")


async def watchdog(stop: asyncio.Event) -> None:
    """``WATCHDOG=1`` every WatchdogSec/2 while the event loop runs (a stuck loop misses it:
    systemd restarts the PBX)."""
    interval = service.watchdog_interval()
    if interval is None:
        return
    while not stop.is_set():
        service.notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
