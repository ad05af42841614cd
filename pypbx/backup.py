"""Backup and restore of a clinic's PBX (``pypbx backup``, ``pypbx restore``).

A backup destination is a directory (a USB disk, a mounted share)::

    DEST/
      objects/ab/ab12...        every file once, named by its SHA-256 (incremental: a
                                recording already there is never copied again)
      snapshots/20261207T020000Z/
        pypbx.db                the database, through SQLite's online backup API
                                (consistent and WAL-safe while calls are up)
        manifest.json           what the snapshot holds: the database's checksum, the
                                config file and every data-directory file (relative path
                                -> sha256, bytes, mode)

What is in a snapshot: the database, the config file, and every file under the data
directory (recordings and their sidecars, voicemail, the clinic's prompts, the web secret,
the event journal) except the database's own files, the run lock, the local API socket,
temporary files and the party files of calls still in progress (they are not finished;
the snapshot's database says those calls are still up).

``restore`` refuses a data directory that is not empty or that a PBX holds (its run lock),
writes the database, the files (their modes kept) and, when the config file named by
``--config`` does not exist yet, the backed-up config.

The schedule (``pypbx backup --schedule daily 02:00 --keep 14 DEST``) is kept in the
database; ``pypbx run`` makes the backup itself at that site time (a background job, low
priority), prunes to the newest ``keep`` snapshots, and records the outcome, which
``pypbx backup status`` shows and the alerts watch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

from pypbx import runlock, sitetime
from pypbx.config import Config
from pypbx.errors import PbxError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DB_NAME = "pypbx.db"
FORMAT = 1
#: data-directory entries never copied (the database goes through the backup API)
SKIP_NAMES = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", runlock.LOCK_NAME, "pypbx.sock"}
SCHEDULE_KEY = "backup_schedule"
LAST_KEY = "backup_last"
FILE_MODE = 0o600
DIR_MODE = 0o700


class FileEntry(TypedDict):
    sha256: str
    bytes: int
    mode: int
    mtime_ns: int


class Manifest(TypedDict):
    format: int
    created_at: float
    snapshot: str
    data_dir: str
    config_name: str
    config_sha256: str
    db_sha256: str
    db_bytes: int
    files: dict[str, FileEntry]


@dataclass
class BackupResult:
    snapshot: Path
    files: int = 0
    copied: int = 0  # new objects written (the incremental part)
    copied_bytes: int = 0
    seconds: float = 0.0
    pruned: list[str] = field(default_factory=list)


class BackupError(PbxError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _object(dest: Path, sha: str) -> Path:
    return dest / "objects" / sha[:2] / sha


def snapshots(dest: Path) -> list[Path]:
    """The snapshots in ``dest``, oldest first (their names sort by time)."""
    d = dest / "snapshots"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and (p / MANIFEST).is_file())


def read_manifest(snap: Path) -> Manifest:
    try:
        return cast(Manifest, json.loads((snap / MANIFEST).read_text()))
    except (OSError, ValueError) as e:
        raise BackupError(f"{snap}: no readable {MANIFEST} ({e})") from None


def resolve_snapshot(src: Path) -> Path:
    """``src``: a snapshot directory, or a destination (its newest snapshot)."""
    src = src.expanduser().absolute()
    if (src / MANIFEST).is_file():
        return src
    found = snapshots(src)
    if not found:
        raise BackupError(f"no backup found in {src}")
    return found[-1]


def _dest_of(snap: Path) -> Path:
    return snap.parent.parent


# --------------------------------------------------------------------------- backup


def _active_call_ids(db_file: Path) -> set[str]:
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        return {r[0] for r in con.execute("SELECT id FROM calls WHERE ended_at IS NULL")}
    except sqlite3.Error:
        return set()
    finally:
        con.close()


def _data_files(data_dir: Path, active: set[str]) -> Iterator[tuple[str, Path]]:
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            rel = p.relative_to(data_dir).as_posix()
            if rel in SKIP_NAMES or name.endswith(".tmp") or not p.is_file() or p.is_symlink():
                continue
            if rel.startswith("recordings/") and any(name.startswith(cid + "-") for cid in active):
                continue  # a call in progress: its party files are not finished
            yield rel, p


def _online_copy(db_path: Path, out: Path) -> None:
    """The database, consistent, through SQLite's online backup API (readers and the
    running PBX's writer go on meanwhile)."""
    if not db_path.is_file():
        raise BackupError(f"no database at {db_path}")
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(out)
    try:
        src.backup(dst, pages=1024, sleep=0.005)
        dst.execute("PRAGMA journal_mode = DELETE")
    finally:
        dst.close()
        src.close()
    os.chmod(out, FILE_MODE)


def _store(dest: Path, src: Path, sha: str) -> int:
    """Copy ``src`` into the object store unless it is there already; bytes written."""
    obj = _object(dest, sha)
    if obj.exists():
        return 0
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_name(obj.name + ".tmp")
    shutil.copyfile(src, tmp)
    if sha256_file(tmp) != sha:  # changed while copying: leave it for the next backup
        tmp.unlink(missing_ok=True)
        raise OSError(f"{src} changed while being copied")
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, obj)
    return obj.stat().st_size


def _previous_hashes(dest: Path) -> dict[str, FileEntry]:
    """The last snapshot's file entries: a file with the same size and mtime is not re-hashed."""
    found = snapshots(dest)
    if not found:
        return {}
    try:
        return read_manifest(found[-1])["files"]
    except BackupError:
        return {}


def backup(cfg: Config, dest: Path, *, keep: int | None = None, clock: float | None = None) -> BackupResult:
    """Take one snapshot of ``cfg``'s PBX into ``dest`` (running or not). Blocking: the PBX
    runs it in a thread."""
    started = time.monotonic()
    now = time.time() if clock is None else clock
    dest = dest.expanduser().absolute()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        os.chmod(dest, DIR_MODE)
    except OSError as e:
        raise BackupError(f"cannot use {dest} as a backup destination: {e.strerror or e}") from None
    if dest == cfg.data_dir or cfg.data_dir in dest.parents:
        raise BackupError(f"the backup destination {dest} is inside the data directory {cfg.data_dir}")
    name = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    snap = dest / "snapshots" / name
    n = 1
    while snap.exists():
        n += 1
        snap = dest / "snapshots" / f"{name}-{n}"
    work = snap.with_name(snap.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = BackupResult(snapshot=snap)
    try:
        _online_copy(cfg.db_path, work / DB_NAME)
        active = _active_call_ids(work / DB_NAME)
        previous = _previous_hashes(dest)
        files: dict[str, FileEntry] = {}
        for rel, p in _data_files(cfg.data_dir, active):
            try:
                st = p.stat()
                old = previous.get(rel)
                if old and old["bytes"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
                    sha = old["sha256"]
                    if not _object(dest, sha).exists():
                        sha = sha256_file(p)
                else:
                    sha = sha256_file(p)
                written = _store(dest, p, sha)
            except FileNotFoundError:
                continue  # deleted meanwhile (retention, a finished call's part file)
            result.copied += bool(written)
            result.copied_bytes += written
            files[rel] = {"sha256": sha, "bytes": st.st_size, "mode": st.st_mode & 0o777, "mtime_ns": st.st_mtime_ns}
        cfg_sha = sha256_file(cfg.config_path)
        result.copied_bytes += _store(dest, cfg.config_path, cfg_sha)
        manifest: Manifest = {
            "format": FORMAT,
            "created_at": now,
            "snapshot": snap.name,
            "data_dir": str(cfg.data_dir),
            "config_name": cfg.config_path.name,
            "config_sha256": cfg_sha,
            "db_sha256": sha256_file(work / DB_NAME),
            "db_bytes": (work / DB_NAME).stat().st_size,
            "files": files,
        }
        tmp = work / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, work / MANIFEST)
        os.replace(work, snap)
    except OSError as e:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"backup to {dest} failed: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result.files = len(files)
    if keep is not None:
        result.pruned = prune(dest, keep)
    result.seconds = round(time.monotonic() - started, 2)
    log.info(
        "backup %s: %d files, %d new (%.1f MB) in %.1f s",
        snap,
        result.files,
        result.copied,
        result.copied_bytes / 1e6,
        result.seconds,
    )
    return result


def prune(dest: Path, keep: int) -> list[str]:
    """Keep the newest ``keep`` snapshots; drop the objects no kept snapshot names."""
    if keep < 1:
        raise BackupError("--keep must be at least 1")
    found = snapshots(dest)
    gone = found[:-keep] if len(found) > keep else []
    for snap in gone:
        shutil.rmtree(snap)
    wanted: set[str] = set()
    for snap in snapshots(dest):
        m = read_manifest(snap)
        wanted.add(m["config_sha256"])
        wanted.update(f["sha256"] for f in m["files"].values())
    objects = dest / "objects"
    if objects.is_dir():
        for obj in objects.glob("*/*"):
            if obj.name not in wanted:
                obj.unlink(missing_ok=True)
    for partial in (dest / "snapshots").glob("*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    return [s.name for s in gone]


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyReport:
    snapshot: Path
    files: int
    problems: list[str]


def verify(src: Path) -> VerifyReport:
    """Re-hash everything a snapshot names; check the database's integrity."""
    snap = resolve_snapshot(src)
    m = read_manifest(snap)
    dest = _dest_of(snap)
    problems: list[str] = []
    db = snap / DB_NAME
    if not db.is_file():
        problems.append(f"missing: {DB_NAME}")
    elif sha256_file(db) != m["db_sha256"]:
        problems.append(f"corrupt: {DB_NAME} (checksum differs)")
    else:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.Error as e:
            ok = str(e)
        finally:
            con.close()
        if ok != "ok":
            problems.append(f"corrupt: {DB_NAME} (integrity check: {ok})")
    entries = [("config " + m["config_name"], m["config_sha256"])]
    entries += [(rel, f["sha256"]) for rel, f in sorted(m["files"].items())]
    for rel, sha in entries:
        obj = _object(dest, sha)
        if not obj.is_file():
            problems.append(f"missing: {rel}")
        elif sha256_file(obj) != sha:
            problems.append(f"corrupt: {rel}")
    return VerifyReport(snap, len(m["files"]), problems)


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class RestoreResult:
    snapshot: Path
    data_dir: Path
    files: int
    config_written: Path | None


def _data_dir_of_config(text: str, config_path: Path) -> Path:
    raw = tomllib.loads(text)
    d = raw.get("data_dir", "./var")
    return (config_path.parent / Path(str(d)).expanduser()).resolve()


def _rebase_paths(db_file: Path, old: str, new: str) -> int:
    """The database names files by absolute path (recordings, voicemail, survey comments):
    restored into another data directory, those under the old one move with it."""
    con = sqlite3.connect(db_file)
    changed = 0
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        with con:
            for t in tables:
                cols = [r[1] for r in con.execute(f"PRAGMA table_info({t})")]
                for c in cols:
                    if c == "path" or c.endswith("_path"):
                        cur = con.execute(
                            f"UPDATE {t} SET {c} = ? || substr({c}, ?) WHERE {c} LIKE ? ESCAPE '\\'",
                            (new, len(old) + 1, old.replace("%", "\\%").replace("_", "\\_") + "/%"),
                        )
                        changed += cur.rowcount
    finally:
        con.close()
    return changed


def restore(src: Path, config_path: Path, data_dir: Path | None = None) -> RestoreResult:
    """Restore a snapshot into an empty data directory. ``config_path``: the config to use;
    when it does not exist, the backed-up config is written there first. ``data_dir``: the
    directory to fill (default: the config's)."""
    snap = resolve_snapshot(src)
    report = verify(snap)
    if report.problems:
        raise BackupError(f"the backup {snap} is damaged ({report.problems[0]}); run 'pypbx backup verify'")
    m = read_manifest(snap)
    dest = _dest_of(snap)
    written: Path | None = None
    if config_path.exists():
        text = config_path.read_text(encoding="utf-8")
    else:
        text = _object(dest, m["config_sha256"]).read_text(encoding="utf-8")
    target = (data_dir or _data_dir_of_config(text, config_path)).absolute()
    runlock.acquire(target)  # AlreadyRunning when a PBX holds it (first: a running PBX is the worse news)
    try:
        if any(p.name != runlock.LOCK_NAME for p in target.iterdir()):
            raise BackupError(f"the data directory {target} is not empty: restore only into an empty one")
        if not config_path.exists():
            config_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            written = config_path
        shutil.copyfile(snap / DB_NAME, target / DB_NAME)
        os.chmod(target / DB_NAME, FILE_MODE)
        if Path(m["data_dir"]) != target:
            moved = _rebase_paths(target / DB_NAME, m["data_dir"], str(target))
            log.info("restore: %d file path(s) moved from %s to %s", moved, m["data_dir"], target)
        for rel, entry in m["files"].items():
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            shutil.copyfile(_object(dest, entry["sha256"]), out)
            os.chmod(out, entry["mode"])
            os.utime(out, ns=(entry["mtime_ns"], entry["mtime_ns"]))
    finally:
        runlock.release(target)
    return RestoreResult(snap, target, len(m["files"]), written)


# --------------------------------------------------------------------------- schedule


class Schedule(TypedDict):
    dest: str
    at: str  # HH:MM, site time
    keep: int
    set_at: float  # when the schedule was set (a backup never made is stale two days later)


class LastBackup(TypedDict):
    ok: bool
    at: float
    dest: str
    snapshot: str
    error: str


def parse_at(value: str) -> str:
    try:
        t = dt.datetime.strptime(value, "%H:%M")
    except ValueError:
        raise BackupError(f"expected a time of day HH:MM (like 02:00), got {value!r}") from None
    return t.strftime("%H:%M")


def due(schedule: Schedule, last: LastBackup | None, now: float) -> bool:
    """Whether the daily backup is due at ``now``: past today's time (site time) and none
    attempted since."""
    local = sitetime.local(now)
    hh, mm = (int(x) for x in schedule["at"].split(":"))
    slot = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if local < slot:
        slot -= dt.timedelta(days=1)
    return last is None or last["at"] < slot.timestamp()


def loads_schedule(raw: str | None) -> Schedule | None:
    if not raw:
        return None
    with contextlib.suppress(ValueError):
        return cast(Schedule, json.loads(raw))
    return None


def loads_last(raw: str | None) -> LastBackup | None:
    if not raw:
        return None
    with contextlib.suppress(ValueError):
        return cast(LastBackup, json.loads(raw))
    return None
