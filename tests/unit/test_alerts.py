"""Alerts (pypbx.alerts): one message per episode (raised, reminders, resolved), the checks,
the e-mail an alert becomes, and `pypbx alerts list`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pypbx import alerts as A
from pypbx.config import AlertsConfig, NotifyConfig
from pypbx.db import open_db
from pypbx.notify import build_email


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _trunk(state: str, enabled: bool = True) -> dict[str, object]:
    return {
        "name": "carrier",
        "host": "sip.example.net:5060",
        "state": state,
        "enabled": enabled,
        "last_reason": "timeout",
    }


def test_a_trunk_that_stops_answering_raises_one_alert_and_one_resolved(tmp_path: Path) -> None:
    sent: list[tuple[A.Phase, str, str]] = []
    clock = Clock()

    async def send(phase: A.Phase, row) -> None:
        sent.append((phase, row["kind"], row["subject"]))

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            book = A.AlertBook(db, AlertsConfig(remind_hours=1), send, clock)
            watch = A.TrunkWatch(after=60)
            status = [_trunk("registered")]

            async def tick(dt: float) -> None:
                clock.t += dt
                for v in watch.checks(status, clock.t):
                    await book.observe(v)

            await tick(0)
            status[0] = _trunk("failed")
            await tick(10)
            await tick(30)  # 40 s down: not yet
            assert sent == []
            status[0] = _trunk("registering")  # retrying: still down
            await tick(30)
            assert sent == [(A.Phase.RAISED, "trunk_down", "carrier")]
            for _ in range(5):
                await tick(60)
            assert len(sent) == 1  # once per episode ...
            await tick(3600)
            assert sent[-1][0] is A.Phase.REMINDER and len(sent) == 2  # ... then a reminder
            status[0] = _trunk("registered")
            await tick(5)
            await tick(5)
            assert [p for p, *_ in sent] == [A.Phase.RAISED, A.Phase.REMINDER, A.Phase.RESOLVED]
            rows = await A.list_alerts(db)
            assert len(rows) == 1 and rows[0]["resolved_at"] == clock.t - 5
            # a disabled trunk is not down
            status[0] = _trunk("unregistered", enabled=False)
            await tick(600)
            assert len(sent) == 3

    asyncio.run(go())


def test_checks() -> None:
    assert A.disk_check(Path("/"), 2000, free_mb=1500).bad
    assert not A.disk_check(Path("/"), 2000, free_mb=2500).bad
    assert "1500 MB free" in A.disk_check(Path("/"), 2000, free_mb=1500).message
    crash = A.CrashWatch()
    for t in (0.0, 100.0):
        crash.worker_lost(t)
    assert not crash.check(100.0).bad
    crash.worker_lost(200.0)
    assert crash.check(200.0).bad and not crash.check(200.0 + A.CRASH_WINDOW).bad
    assert A.recordings_check(3).bad and not A.recordings_check(2).bad

    sched = {"dest": "/mnt/usb", "at": "02:00", "keep": 14, "set_at": 0.0}
    day = 86400.0
    assert [v.bad for v in A.backup_checks(None, None, None, 10 * day)] == [False, False]
    assert [v.bad for v in A.backup_checks(sched, None, 9 * day, 10 * day)] == [False, False]
    assert [v.bad for v in A.backup_checks(sched, None, 7 * day, 10 * day)] == [False, True]  # never made
    ok = {"ok": True, "at": 9.5 * day, "dest": "/mnt/usb", "snapshot": "s", "error": ""}
    assert [v.bad for v in A.backup_checks(sched, ok, 0.0, 10 * day)] == [False, False]
    failed = {"ok": False, "at": 10 * day, "dest": "/mnt/usb", "snapshot": "", "error": "disk full"}
    verdicts = A.backup_checks(sched, failed, 0.0, 10 * day)
    assert [v.bad for v in verdicts] == [True, True] and "disk full" in verdicts[0].message


def test_an_alert_becomes_an_email_and_a_webhook_body(tmp_path: Path) -> None:
    row = {
        "id": 1,
        "kind": "disk_low",
        "subject": "",
        "message": "only 900 MB free",
        "raised_at": 1_800_000_000.0,
        "notified_at": None,
        "resolved_at": None,
    }
    p = A.payload(A.Phase.RAISED, row)
    em = build_email(NotifyConfig(smtp_host="mail.example"), "it@clinic.example", p)
    assert "ALERT: disk_low" in em["Subject"] and "only 900 MB free" in em.get_content()
    assert json.loads(json.dumps(p))["alert"]["kind"] == "disk_low"


def test_cli_alerts_list(invoke_cli, tmp_config) -> None:
    from pypbx.config import load_config

    cfg = load_config(tmp_config)

    async def go():
        async with open_db(cfg.db_path) as db:
            book = A.AlertBook(db, AlertsConfig(), None, Clock())
            await book.observe(A.Verdict(A.AlertKind.DISK_LOW, "", True, "only 900 MB free"))
            await book.observe(A.Verdict(A.AlertKind.TRUNK_DOWN, "carrier", True, "down"))
            await book.observe(A.Verdict(A.AlertKind.TRUNK_DOWN, "carrier", False))

    asyncio.run(go())
    r = invoke_cli("alerts", "list", "--open", "--config", str(tmp_config))
    assert r.exit_code == 0 and "disk_low" in r.output and "carrier" not in r.output
    r = invoke_cli("alerts", "list", "--json", "--config", str(tmp_config))
    assert [x["kind"] for x in json.loads(r.output)] == ["trunk_down", "disk_low"]  # newest first
