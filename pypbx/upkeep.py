"""The low-priority background jobs of ``pypbx run`` (issue 13): recordings' compression and
daily retention (pypbx.retention), the scheduled backup (pypbx.backup) and alerts
(pypbx.alerts). None of them is on a call's path; each failure is logged and retried on the
next round, and the alerts job reports the ones that keep failing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pypbx.config import Config
from pypbx.db import Database
from pypbx.retention import RecordingKeeper

log = logging.getLogger(__name__)

TrunkStatus = Callable[[], list[dict[str, object]]]


async def run_upkeep(cfg: Config, db: Database, stop: asyncio.Event, *, trunks: TrunkStatus | None = None) -> None:
    keeper = RecordingKeeper(db, cfg.recordings)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(keeper.run(stop))
