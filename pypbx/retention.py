"""Recordings over years: retention, legal holds, erasure, verification, compression.

* Retention (``[recordings] keep_days``, ``queue_keep_days``, ``max_gb``): applied daily by
  the PBX (:class:`RecordingKeeper`) or at once by ``pypbx recordings purge``; oldest first;
  a recording under legal hold (``pypbx recordings hold CALL``) is never touched. Every
  deletion stays in the books: the recording row keeps ``status='deleted'``, when and why,
  and the call's event log gets a ``recording_deleted`` event.
* Compression after the call, off the call path: a single low-priority thread (nice 19)
  rewrites a finished stereo WAV as FLAC (lossless) or Ogg Opus, checks that the new file
  decodes to the same number of frames, updates the sidecar (``<call id>.json``: ``path``,
  ``format``, ``sha256``, ``bytes``, and the WAV's under ``original``) and the database
  row, then removes the WAV. Playback decodes any of the three (:func:`decode_to_wav`).
* Verification (``pypbx recordings verify``): every kept recording's file exists and its
  SHA-256 is the one the books hold.

The recording path API stays: ``recordings.path`` is the file the audio is in now (its
suffix ``.wav``, ``.flac`` or ``.ogg`` says the format, :func:`audio_mime` the MIME type);
the sidecar is always ``<same stem>.json``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from media.recording import RECORDING_MODE, sha256_file
from pypbx import sitetime
from pypbx.config import RecordingsConfig
from pypbx.db import Database
from pypbx.db.retention import StoredRecordingRow
from pypbx.errors import PbxError
from pypbx.recordings import write_sidecar

log = logging.getLogger(__name__)

DAY = 86400.0
#: recordings in these states have a finished file that may be compressed
COMPRESSIBLE = ("complete", "incomplete", "interrupted")
#: the meta key holding when retention last ran (the daily job survives restarts)
LAST_RUN_KEY = "retention_last_run"


class AudioFormat(enum.StrEnum):
    WAV = "wav"
    FLAC = "flac"
    OPUS = "opus"

    @property
    def suffix(self) -> str:
        return ".ogg" if self is AudioFormat.OPUS else f".{self.value}"

    @property
    def mime(self) -> str:
        return {"wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg; codecs=opus"}[self.value]


def format_of(path: str | Path) -> AudioFormat:
    suffix = Path(path).suffix.lower()
    return {".flac": AudioFormat.FLAC, ".ogg": AudioFormat.OPUS, ".opus": AudioFormat.OPUS}.get(suffix, AudioFormat.WAV)


def audio_mime(path: str | Path) -> str:
    """The Content-Type to serve a recording file with (``audio/wav``, ``audio/flac``, ``audio/ogg``)."""
    return format_of(path).mime


def opus_supported() -> bool:
    """Whether the installed libsndfile writes Ogg Opus (1.0.29 and later)."""
    return "OPUS" in sf.available_subtypes("OGG")


# --------------------------------------------------------------------------- retention plan


@dataclass(frozen=True)
class Deletion:
    call_id: str
    path: str
    bytes: int
    reason: str


def _started(row: StoredRecordingRow) -> float:
    return row["offered_at"] if row["offered_at"] is not None else row["created_at"]


def _size(row: StoredRecordingRow) -> int:
    return int(row["bytes"] or 0)


def plan(rows: Iterable[StoredRecordingRow], cfg: RecordingsConfig, now: float) -> list[Deletion]:
    """What retention deletes now, oldest first: recordings older than their queue's (else
    the site's) ``keep_days``, then the oldest beyond the ``max_gb`` budget. Held and
    already-deleted recordings are never planned (held ones still count in the budget)."""
    kept = sorted((r for r in rows if r["deleted_at"] is None), key=lambda r: (_started(r), r["call_id"]))
    per_queue = cfg.queue_days()
    out: list[Deletion] = []
    gone: set[str] = set()
    for r in kept:
        if r["held_at"] is not None:
            continue
        days = per_queue.get(r["queue"] or "", cfg.keep_days)
        if days and _started(r) < now - days * DAY:
            where = f"queue {r['queue']}" if (r["queue"] or "") in per_queue else "site"
            out.append(Deletion(r["call_id"], r["path"], _size(r), f"retention: older than {days} days ({where})"))
            gone.add(r["call_id"])
    if cfg.max_gb > 0:
        budget = int(cfg.max_gb * 1e9)
        total = sum(_size(r) for r in kept if r["call_id"] not in gone)
        for r in kept:
            if total <= budget:
                break
            if r["held_at"] is not None or r["call_id"] in gone:
                continue
            out.append(Deletion(r["call_id"], r["path"], _size(r), f"disk budget: over {cfg.max_gb:g} GB"))
            gone.add(r["call_id"])
            total -= _size(r)
    return out


def _remove_files(path: str) -> None:
    """The audio file, its sidecar, and the day folder once empty."""
    p = Path(path)
    for f in (p, p.with_suffix(".json"), p.with_suffix(".wav")):
        f.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        p.parent.rmdir()  # only when empty


async def _delete(db: Database, d: Deletion, now: float) -> None:
    """The call's recording and the caller's survey comment (a recording of the patient too)."""
    await asyncio.to_thread(_remove_files, d.path)
    for comment in await db.take_survey_comments(d.call_id):
        await asyncio.to_thread(Path(comment).unlink, missing_ok=True)
    await db.mark_recording_deleted(d.call_id, now, d.reason)
    log.info("recording of call %s deleted (%s): %s", d.call_id[:12], d.reason, d.path)


async def apply_retention(
    db: Database, cfg: RecordingsConfig, now: float | None = None, *, dry_run: bool = False
) -> list[Deletion]:
    """Delete what :func:`plan` says (``dry_run``: only say it). Returns the deletions."""
    now = time.time() if now is None else now
    todo = plan(await db.stored_recording_rows(), cfg, now)
    if not dry_run:
        for d in todo:
            await _delete(db, d, now)
        await db.set_meta(LAST_RUN_KEY, repr(now))
    return todo


async def recording(db: Database, call_id: str) -> StoredRecordingRow:
    row = await db.stored_recording_row(call_id)
    if row is None:
        raise PbxError(f"call {call_id} has no recording")
    return row


async def delete_recording(db: Database, call_id: str, reason: str, now: float | None = None) -> Deletion:
    """Erase one call's recording now (a patient's erasure request); refused under legal hold."""
    if not reason.strip():
        raise PbxError("a reason is needed (--reason), it is kept in the books")
    row = await recording(db, call_id)
    if row["deleted_at"] is not None:
        raise PbxError(f"the recording of call {call_id} was already deleted ({_when(row['deleted_at'])})")
    if row["held_at"] is not None:
        raise PbxError(
            f"the recording of call {call_id} is under legal hold since {_when(row['held_at'])}; "
            f"'pypbx recordings unhold {call_id}' first"
        )
    d = Deletion(call_id, row["path"], _size(row), f"erasure: {reason.strip()}")
    await _delete(db, d, time.time() if now is None else now)
    return d


async def set_hold(db: Database, call_id: str, held: bool, reason: str = "", now: float | None = None) -> None:
    row = await recording(db, call_id)
    if row["deleted_at"] is not None:
        raise PbxError(f"the recording of call {call_id} was deleted ({_when(row['deleted_at'])}): nothing to hold")
    ts = time.time() if now is None else now
    await db.set_recording_hold(call_id, ts if held else None, reason if held else "", ts)


def _when(ts: float) -> str:
    return sitetime.local(ts).strftime("%Y-%m-%d %H:%M")  # the site's clock, not the machine's


def books_line(row: StoredRecordingRow) -> str:
    """What the books say of a deleted recording."""
    if row["deleted_at"] is None:
        return ""
    return f"recording deleted on {_when(row['deleted_at'])}, {row['deleted_reason']}"


# --------------------------------------------------------------------------- verify


class Problem(enum.StrEnum):
    MISSING = "missing"
    CORRUPT = "corrupt"  # the SHA-256 differs from the books
    NO_CHECKSUM = "no checksum"


@dataclass(frozen=True)
class Finding:
    call_id: str
    path: str
    problem: Problem


def _check(row: StoredRecordingRow) -> Finding | None:
    p = Path(row["path"])
    if not p.is_file():
        return Finding(row["call_id"], row["path"], Problem.MISSING)
    if not row["sha256"]:
        return Finding(row["call_id"], row["path"], Problem.NO_CHECKSUM)
    if sha256_file(p) != row["sha256"]:
        return Finding(row["call_id"], row["path"], Problem.CORRUPT)
    return None


async def verify(db: Database) -> tuple[int, list[Finding]]:
    """(recordings checked, what is wrong): every kept recording with a file."""
    rows = [r for r in await db.stored_recording_rows() if r["status"] != "failed"]
    found = await asyncio.to_thread(lambda: [f for f in map(_check, rows) if f is not None])
    return len(rows), found


# --------------------------------------------------------------------------- compression


@dataclass(frozen=True)
class Compressed:
    path: Path
    format: AudioFormat
    sha256: str
    bytes: int
    frames: int


def compress_file(wav: Path, fmt: AudioFormat) -> Compressed:
    """Write ``wav`` as ``fmt`` beside it (temp file + rename, mode 0640) and check it decodes
    to as many frames; the WAV is left for the caller to remove."""
    if fmt is AudioFormat.WAV:
        raise ValueError("nothing to compress to")
    out = wav.with_suffix(fmt.suffix)
    tmp = out.with_name(out.name + ".tmp")
    data, rate = sf.read(str(wav), dtype="int16", always_2d=True)
    kind = ("FLAC", "PCM_16") if fmt is AudioFormat.FLAC else ("OGG", "OPUS")
    with sf.SoundFile(str(tmp), "w", samplerate=rate, channels=data.shape[1], format=kind[0], subtype=kind[1]) as f:
        f.write(data)
    os.chmod(tmp, RECORDING_MODE)
    frames = sf.info(str(tmp)).frames
    if abs(frames - len(data)) > rate // 50:  # Opus pads to 20 ms frames
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{fmt.value} copy has {frames} frames, the WAV {len(data)}")
    os.replace(tmp, out)
    return Compressed(out, fmt, sha256_file(out), out.stat().st_size, frames)


def _update_sidecar(wav: Path, c: Compressed, original_sha: str | None, original_bytes: int | None) -> None:
    sidecar = wav.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        meta = {}
    rec = dict(meta.get("recording") or {})
    rec.update(
        {
            "path": str(c.path),
            "format": c.format.value,
            "sha256": c.sha256,
            "bytes": c.bytes,
            "original": {"format": "wav", "sha256": original_sha, "bytes": original_bytes},
        }
    )
    meta["recording"] = rec
    write_sidecar(wav, meta)


def _compress_one(row: StoredRecordingRow, fmt: AudioFormat) -> Compressed:
    wav = Path(row["path"])
    c = compress_file(wav, fmt)
    _update_sidecar(wav, c, row["sha256"], row["bytes"])
    return c


def _low_priority() -> None:
    """In the compression thread: nice 19 for this thread only (Linux threads have their own)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


_pool: concurrent.futures.ThreadPoolExecutor | None = None


def background_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The one low-priority thread for background file work (compression, scheduled backups)."""
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(1, "pypbx-compress", initializer=_low_priority)
    return _pool


async def compress_pending(
    db: Database, cfg: RecordingsConfig, now: float | None = None, *, limit: int = 20
) -> list[Compressed]:
    """Compress the finished WAV recordings older than ``compress_after`` (not held ones:
    a held recording stays exactly as it was)."""
    if cfg.compress == "none":
        return []
    fmt = AudioFormat(cfg.compress)
    if fmt is AudioFormat.OPUS and not opus_supported():
        raise PbxError('this libsndfile cannot write Ogg Opus (needs 1.0.29+): set [recordings] compress = "flac"')
    now = time.time() if now is None else now
    rows = await db.compressible_recording_rows(COMPRESSIBLE, now - cfg.compress_after, limit)
    todo = [r for r in rows if Path(r["path"]).suffix == ".wav"]
    loop = asyncio.get_running_loop()
    done: list[Compressed] = []
    for r in todo:
        try:
            c = await loop.run_in_executor(background_executor(), _compress_one, r, fmt)
        except (OSError, ValueError, RuntimeError, sf.LibsndfileError) as exc:
            log.error("compressing the recording of call %s failed: %s", r["call_id"][:12], exc)
            continue
        await db.set_recording_stored(r["call_id"], str(c.path), c.format.value, c.sha256, c.bytes)
        Path(r["path"]).unlink(missing_ok=True)
        done.append(c)
    if done:
        log.info("compressed %d recording(s) to %s", len(done), fmt.value)
    return done


# --------------------------------------------------------------------------- playback


def decode_to_wav(path: str | Path) -> bytes:
    """Any stored recording (WAV, FLAC, Ogg Opus) as 16-bit PCM WAV bytes."""
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def duration(path: str | Path) -> float:
    i = sf.info(str(path))
    return float(i.frames) / i.samplerate


# --------------------------------------------------------------------------- the daily job


class RecordingKeeper:
    """The background job in ``pypbx run``: compression every ``interval`` seconds, retention
    once a day (the last run is kept in the database, so restarts do not skip or repeat it)."""

    def __init__(
        self,
        db: Database,
        cfg: RecordingsConfig,
        clock: Callable[[], float] = time.time,
        interval: float | None = None,
    ) -> None:
        self.db, self.cfg, self.clock = db, cfg, clock
        #: how often it looks for work: half of compress_after, between 2 s and a minute
        self.interval = interval if interval is not None else min(60.0, max(2.0, cfg.compress_after / 2))
        self.failures = 0  # consecutive failed rounds (alerts read it)

    async def step(self) -> None:
        now = self.clock()
        await compress_pending(self.db, self.cfg, now)
        last = await self.db.get_meta(LAST_RUN_KEY)
        if (self.cfg.keep_days or self.cfg.max_gb or self.cfg.queue_keep_days) and (
            last is None or float(last) <= now - DAY
        ):
            gone = await apply_retention(self.db, self.cfg, now)
            log.info("retention: %d recording(s) deleted", len(gone))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
                self.failures = 0
            except Exception as exc:  # background upkeep never stops the PBX: counted, alerted
                self.failures += 1
                log.error("recordings job failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
