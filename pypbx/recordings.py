"""Recording files: where they go, their JSON sidecars, disk-space checks, crash repair.

Layout: ``<data_dir>/recordings/YYYY-MM-DD/<call id>.wav`` (stereo: caller left, callee
right) with ``<call id>.json`` beside it. While a call is up the worker writes one mono
file per party, ``<call id>-<leg>.wav``; the caller's leg is the one the worker named
(``in-1``...), the callee's is ``callee``. A crash leaves those party files behind with
unfinished headers: :func:`repair_interrupted` makes them valid at the next start, merges
them and marks the recording ``interrupted``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from media.recording import RecordingError, merge_stereo, recorded_seconds, repair_files, repair_wav
from pypbx import sitetime
from pypbx.db import Database
from pypbx.db.rows import CallRow
from pypbx.logs import call_log

log = logging.getLogger(__name__)

SIDECAR_MODE = 0o640
CALLEE_LEG = "callee"


def day_folder(rec_dir: Path, offered_at: float) -> Path:
    return Path(rec_dir) / sitetime.local_day(offered_at)  # the clinic's day, not the machine clock's


def write_sidecar(wav: Path, meta: Mapping[str, object]) -> Path:
    """``<wav>.json``, written atomically (temp + rename), mode 0640."""
    sidecar = wav.with_suffix(".json")
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SIDECAR_MODE)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, sidecar)
    return sidecar


def disk_free_mb(path: Path) -> float:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free / 1e6


def disk_ok(path: Path, min_free_mb: float) -> bool:
    """Enough room to go on recording? (A full disk stops recordings, never calls.)"""
    try:
        return disk_free_mb(path) >= min_free_mb
    except OSError:
        return False


#: a recording is ``complete`` when its length is the booked talk time within this (s)
COMPLETE_TOLERANCE = 0.1


class Completeness(TypedDict, total=False):
    """What a recording lacks (the ``recordings.detail`` of one that is not complete)."""

    talk_seconds: float
    recorded_seconds: float
    missing_seconds: float
    missing: str
    reason: str


def completeness(
    recorded: float, talk: float | None, *, reason: str | None = None, status_if_short: str = "incomplete"
) -> tuple[str, Completeness]:
    """(status, detail) of a recording of ``recorded`` seconds for a call with ``talk``
    seconds of booked talk time: ``complete`` only when the two agree within
    COMPLETE_TOLERANCE, else ``status_if_short`` with what is missing and why (``reason``:
    "disk full", "media worker lost"...)."""
    if talk is None:
        return "complete", {}
    diff = round(talk - recorded, 3)
    if abs(diff) <= COMPLETE_TOLERANCE:
        return "complete", {}
    detail: Completeness = {
        "talk_seconds": round(talk, 3),
        "recorded_seconds": round(recorded, 3),
        "missing_seconds": max(0.0, diff),
        "missing": (
            f"{diff:.1f} s of {talk:.1f} s talk not recorded"
            if diff > 0
            else f"{-diff:.1f} s longer than the {talk:.1f} s talk"
        ),
    }
    if reason:
        detail["reason"] = reason
    return status_if_short, detail


class KeptParts(TypedDict):
    """A recording that could not be merged: its party files, kept (``recordings.detail``)."""

    parts: list[str]
    error: str
    reason: str
    missing: str
    recorded_seconds: float
    talk_seconds: float | None


def keep_parts(parts: list[str], talk: float | None, error: OSError | Exception, disk_full: bool) -> KeptParts:
    """The stereo merge failed (typically: no space left for the merged copy): make each of
    the call's party files a valid WAV in place (a write cut short by the full disk leaves a
    header that does not match the data; repairing needs no space) and say what the books
    keep. Blocking: run it in a thread."""
    kept = [p for p in parts if p and Path(p).exists()]
    repaired = repair_files(kept)
    seconds = max((r.duration for r in repaired), default=0.0)
    no_space = disk_full or (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space" in str(error)
    reason = "disk full" if no_space else "merge failed"
    return {
        "parts": kept,
        "error": str(error),
        "reason": reason,
        "missing": f"not merged into one stereo file ({reason}); the parties' files are kept",
        "recorded_seconds": round(seconds, 3),
        "talk_seconds": None if talk is None else round(talk, 3),
    }


def leftover_party_files(prefix: Path) -> list[Path]:
    """A call's party files still on disk (``<prefix>-*.wav``) once its recording is merged."""
    return sorted(prefix.parent.glob(f"{prefix.name}-*.wav"))


def party_files(rec_dir: Path, call_id: str) -> list[Path]:
    return sorted(Path(rec_dir).glob(f"*/{call_id}-*.wav"))


def last_media(rec_dir: Path, call_id: str) -> float | None:
    """Seconds of audio a call's party files left by a crash hold (the longest), None if it
    has none: how long the call really talked before the crash."""
    lengths = []
    for f in party_files(rec_dir, call_id):
        try:
            lengths.append(recorded_seconds(f))
        except (OSError, RecordingError):
            continue
    return max(lengths) if lengths else None


class RepairedRecording(TypedDict):
    path: str
    status: str
    seconds: float
    sample_rate: int
    sha256: str
    channels: int
    bytes: int
    repaired: dict[str, dict[str, bool | float]]


class RepairedParty(TypedDict):
    number: str | None
    name: str
    channel: str


class RepairedMeta(TypedDict):
    """The sidecar of a recording repaired after a crash (what :func:`repair_interrupted` returns)."""

    call_id: str
    sip_call_id: str | None
    direction: str
    caller: RepairedParty
    callee: RepairedParty
    extension: str | None
    queue: str | None
    agent: str | None
    did: str | None
    offered_at: float
    answered_at: float | None
    ended_at: float | None
    disposition: str
    flags: list[str]
    recording: RepairedRecording


def _repair_one(rec_dir: Path, row: CallRow) -> RepairedMeta | None:
    files = party_files(rec_dir, row["id"])
    if not files:
        return None
    results = {f: repair_wav(f) for f in files}
    callee = next((f for f in files if f.stem.endswith("-" + CALLEE_LEG)), None)
    caller = next((f for f in files if f is not callee), None)
    out = files[0].parent / f"{row['id']}.wav"
    info = merge_stereo(caller, callee, out, samplerate=8000, remove_sources=True)
    meta: RepairedMeta = {
        "call_id": row["id"],
        "sip_call_id": row.get("sip_call_id"),
        "direction": row.get("direction"),
        "caller": {"number": row.get("caller_number"), "name": row.get("caller_name") or "", "channel": "left"},
        "callee": {"number": row.get("callee_number"), "name": row.get("callee_name") or "", "channel": "right"},
        "extension": row.get("extension"),
        "queue": row.get("queue"),
        "agent": row.get("agent"),
        "did": row.get("did"),
        "offered_at": row.get("offered_at"),
        "answered_at": row.get("answered_at"),
        "ended_at": row.get("ended_at"),
        "disposition": row.get("disposition"),
        "flags": sorted(set(filter(None, (row.get("flags") or "").split(","))) | {"interrupted"}),
        "recording": {
            "path": str(out),
            "status": "interrupted",
            "seconds": round(info.duration, 3),
            "sample_rate": info.samplerate,
            "sha256": info.sha256,
            "channels": 2,
            "bytes": info.size,
            "repaired": {
                str(f.name): {"repaired": r.repaired, "seconds": round(r.duration, 3)} for f, r in results.items()
            },
        },
    }
    write_sidecar(out, meta)
    return meta


async def repair_interrupted(db: Database, rec_dir: Path, call_ids: list[str]) -> list[RepairedMeta]:
    """After a crash: make the interrupted calls' party files valid WAVs again, merge them
    into the call's stereo file and record it with status ``interrupted``."""
    done: list[RepairedMeta] = []
    for cid in call_ids:
        row = await db.get_call_row(cid)
        if row is None:
            continue
        try:
            meta = await asyncio.to_thread(_repair_one, Path(rec_dir), row)
        except (OSError, RecordingError, ValueError) as exc:
            call_log(log, cid).error("could not repair its recording: %s", exc)
            await db.upsert_recording(
                {
                    "call_id": cid,
                    "path": str(rec_dir),
                    "status": "failed",
                    "created_at": time.time(),
                    "detail": json.dumps({"error": str(exc)}),
                }
            )
            continue
        if meta is None:
            continue
        rec = meta["recording"]
        await db.upsert_recording(
            {
                "call_id": cid,
                "path": rec["path"],
                "status": "interrupted",
                "seconds": rec["seconds"],
                "sample_rate": rec["sample_rate"],
                "channels": 2,
                "sha256": rec["sha256"],
                "bytes": rec["bytes"],
                "created_at": time.time(),
                "detail": json.dumps({"repaired": rec["repaired"]}),
            }
        )
        await db.add_call_events(
            [(cid, time.time(), "recording_repaired", json.dumps({"path": rec["path"], "seconds": rec["seconds"]}))]
        )
        log.warning(
            "call %s: recording left by the crash repaired (%.1f s) -> %s", cid[:12], rec["seconds"], rec["path"]
        )
        done.append(meta)
    return done
