"""`pypbx backup` / `restore` (pypbx.backup) on real files and databases: the online copy,
incremental objects, verify, prune, restore into an empty directory, refusals, the schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os
import sqlite3
from pathlib import Path

import pytest

from pypbx import backup as B
from pypbx import runlock
from pypbx.config import load_config
from pypbx.db import open_db


def _dump(db: Path, moved: tuple[str, str] = ("", "")) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {
            t: sorted(
                (
                    tuple(v.replace(*moved) if isinstance(v, str) and moved[0] else v for v in row)
                    for row in con.execute(f"SELECT * FROM {t}")
                ),
                key=repr,
            )
            for t in tables
        }
    finally:
        con.close()


def _files(d: Path) -> dict[str, bytes]:
    skip = {"pypbx.db", "pypbx.db-wal", "pypbx.db-shm", "pypbx.lock"}
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name not in skip}


@pytest.fixture
def site(make_config, tmp_path: Path):
    cfg_path = make_config(recordings={"keep_days": 90})
    cfg = load_config(cfg_path)

    async def go():
        async with open_db(cfg.db_path) as db:
            await db.execute(
                "INSERT INTO calls(id, direction, offered_at, disposition) VALUES ('c1','inbound',1,'answered')"
            )
            await db.execute("INSERT INTO calls(id, direction, offered_at) VALUES ('live','inbound',2)")
            await db.set_meta("site", "clinic")
            await db.upsert_recording(
                {
                    "call_id": "c1",
                    "path": str(cfg.data_dir / "recordings/2026-12-01/c1.flac"),
                    "status": "complete",
                    "created_at": 1.0,
                    "detail": "{}",
                }
            )

    asyncio.run(go())
    d = cfg.data_dir
    (d / "recordings" / "2026-12-01").mkdir(parents=True)
    (d / "recordings" / "2026-12-01" / "c1.flac").write_bytes(b"fLaC" + os.urandom(5000))
    (d / "recordings" / "2026-12-01" / "c1.json").write_text('{"call_id": "c1"}')
    (d / "recordings" / "2026-12-01" / "live-in-1.wav").write_bytes(b"RIFF partial")
    (d / "voicemail" / "1001").mkdir(parents=True)
    (d / "voicemail" / "1001" / "m1.wav").write_bytes(b"RIFF" + os.urandom(300))
    (d / "prompts" / "en").mkdir(parents=True)
    (d / "prompts" / "en" / "welcome.wav").write_bytes(b"RIFF" + os.urandom(200))
    (d / "web_secret").write_bytes(os.urandom(32))
    os.chmod(d / "web_secret", 0o600)
    return cfg


def test_backup_is_incremental_verified_and_restores_identically(site, tmp_path: Path) -> None:
    dest = tmp_path / "usb"
    r1 = B.backup(site, dest, clock=1_800_000_000)
    assert r1.files == 5 and r1.copied == 5  # the live call's party file is not taken
    m = B.read_manifest(r1.snapshot)
    assert "recordings/2026-12-01/live-in-1.wav" not in m["files"]
    assert (dest.stat().st_mode & 0o777) == 0o700
    # a second backup copies only what is new
    (site.data_dir / "recordings" / "2026-12-01" / "c2.flac").write_bytes(os.urandom(100))
    r2 = B.backup(site, dest, clock=1_800_000_100)
    assert r2.files == 6 and r2.copied == 1 and r2.copied_bytes == 100
    assert [s.name for s in B.snapshots(dest)] == [r1.snapshot.name, r2.snapshot.name]
    rep = B.verify(dest)
    assert rep.snapshot == r2.snapshot and rep.problems == []

    new_cfg = tmp_path / "new" / "pypbx.toml"
    res = B.restore(dest, new_cfg)
    assert res.config_written == new_cfg and new_cfg.read_text() == site.config_path.read_text()
    assert res.data_dir == (new_cfg.parent / "var").resolve()
    assert _dump(res.data_dir / "pypbx.db") == _dump(site.db_path, (str(site.data_dir), str(res.data_dir)))
    rec = sqlite3.connect(res.data_dir / "pypbx.db").execute("SELECT path FROM recordings").fetchone()[0]
    assert rec == str(res.data_dir / "recordings/2026-12-01/c1.flac")  # moved with the data directory
    want = _files(site.data_dir)
    del want["recordings/2026-12-01/live-in-1.wav"]
    assert _files(res.data_dir) == want
    assert (res.data_dir / "web_secret").stat().st_mode & 0o777 == 0o600
    assert (res.data_dir / "pypbx.db").stat().st_mode & 0o777 == 0o600
    # restore refuses a data directory that is not empty
    with pytest.raises(B.BackupError, match="not empty"):
        B.restore(dest, new_cfg)


def test_verify_finds_damage_and_restore_refuses_it(site, tmp_path: Path) -> None:
    dest = tmp_path / "usb"
    B.backup(site, dest)
    m = B.read_manifest(B.resolve_snapshot(dest))
    sha = m["files"]["voicemail/1001/m1.wav"]["sha256"]
    obj = dest / "objects" / sha[:2] / sha
    obj.write_bytes(b"bitrot")
    gone = m["files"]["web_secret"]["sha256"]
    (dest / "objects" / gone[:2] / gone).unlink()
    rep = B.verify(dest)
    assert sorted(rep.problems) == ["corrupt: voicemail/1001/m1.wav", "missing: web_secret"]
    with pytest.raises(B.BackupError, match="damaged"):
        B.restore(dest, tmp_path / "n" / "pypbx.toml")
    with pytest.raises(B.BackupError, match="no backup found"):
        B.verify(tmp_path)


def test_restore_refuses_a_running_pbx(site, tmp_path: Path) -> None:
    dest = tmp_path / "usb"
    B.backup(site, dest)
    target = tmp_path / "fresh"
    target.mkdir()
    fd = os.open(target / runlock.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running PBX holds it
    try:
        with pytest.raises(runlock.AlreadyRunning, match="pid 4242"):
            B.restore(dest, site.config_path, target)
    finally:
        os.close(fd)
    assert B.restore(dest, site.config_path, target).files == 5


def test_prune_keeps_the_newest_and_their_objects(site, tmp_path: Path) -> None:
    dest = tmp_path / "usb"
    secret = site.data_dir / "web_secret"
    for i in range(4):
        secret.write_bytes(os.urandom(32))  # a file that changes every time
        B.backup(site, dest, clock=1_800_000_000 + i)
    r = B.backup(site, dest, keep=2, clock=1_800_000_010)
    assert len(r.pruned) == 3 and len(B.snapshots(dest)) == 2
    assert B.verify(dest).problems == []
    objects = {p.name for p in (dest / "objects").glob("*/*")}
    wanted = set()
    for s in B.snapshots(dest):
        mm = B.read_manifest(s)
        wanted |= {f["sha256"] for f in mm["files"].values()} | {mm["config_sha256"]}
    assert objects == wanted


def test_the_backup_refuses_a_destination_inside_the_data_dir(site) -> None:
    with pytest.raises(B.BackupError, match="inside the data directory"):
        B.backup(site, site.data_dir / "bk")


def test_daily_schedule_is_due_once_per_day() -> None:
    sched: B.Schedule = {"dest": "/x", "at": "02:00", "keep": 14, "set_at": 0.0}
    day = dt.datetime(2026, 12, 7, 1, 59).astimezone()
    assert B.due(sched, None, day.timestamp())  # never made: yesterday's slot is due
    last: B.LastBackup = {
        "ok": True,
        "at": (day - dt.timedelta(hours=20)).timestamp(),
        "dest": "/x",
        "snapshot": "s",
        "error": "",
    }
    assert not B.due(sched, last, day.timestamp())
    later = day + dt.timedelta(minutes=2)
    assert B.due(sched, last, later.timestamp())
    done = {**last, "at": later.timestamp()}
    assert not B.due(sched, done, (later + dt.timedelta(hours=3)).timestamp())
    assert B.parse_at("2:05") == "02:05"
    with pytest.raises(B.BackupError, match="HH:MM"):
        B.parse_at("25:00")


def test_cli_backup_verify_status_restore(invoke_cli, site, tmp_path: Path) -> None:
    c = ["--config", str(site.config_path)]
    dest = tmp_path / "usb"
    r = invoke_cli("backup", str(dest), "--keep", "3", "--json", *c)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["files"] == 5
    r = invoke_cli("backup", "verify", str(dest), *c)
    assert r.exit_code == 0 and "0 problem(s)" in r.output
    r = invoke_cli("backup", "--schedule", "daily", "02:00", "--keep", "14", str(dest), *c)
    assert r.exit_code == 0 and "Daily backup at 02:00" in r.output
    r = invoke_cli("backup", "status", *c)
    assert "daily at 02:00" in r.output and "ok," in r.output and "Backups there: 1" in r.output
    r = invoke_cli("backup", "--schedule", "weekly", "02:00", str(dest), *c)
    assert r.exit_code == 1 and r.output.strip() == "Error: only 'daily' schedules exist, got 'weekly'"
    r = invoke_cli("backup", "verify", str(tmp_path / "nothing"), *c)
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "no backup found" in r.output
    r = invoke_cli("restore", str(dest), *c)
    assert r.exit_code == 1 and "not empty" in r.output
    new = tmp_path / "n" / "pypbx.toml"
    r = invoke_cli("restore", str(dest), "--config", str(new))
    assert r.exit_code == 0 and "Restored" in r.output and new.exists()


def test_the_pbx_scheduled_backup_records_success_and_failure(site, tmp_path: Path) -> None:
    from pypbx import upkeep

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    async def go():
        async with open_db(site.db_path) as db:
            sched: B.Schedule = {"dest": str(tmp_path / "usb"), "at": "02:00", "keep": 2, "set_at": 0.0}
            last = await upkeep.backup_once(site, db, sched, 1_800_000_000.0)
            assert last["ok"] and last["snapshot"] and B.verify(tmp_path / "usb").problems == []
            assert B.loads_last(await db.get_meta(B.LAST_KEY)) == last
            bad = await upkeep.backup_once(site, db, {**sched, "dest": str(blocker)}, 1_800_000_100.0)
            assert not bad["ok"] and "cannot use" in bad["error"]
            assert B.loads_last(await db.get_meta(B.LAST_KEY)) == bad

    asyncio.run(go())
