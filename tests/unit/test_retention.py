"""Recordings over years (pypbx.retention): retention plan and job, legal hold, erasure,
verify, compression to FLAC / Ogg Opus, playback, and the ``pypbx recordings`` commands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media.recording import sha256_file
from pypbx import retention as R
from pypbx.config import RecordingsConfig, load_config
from pypbx.db import Database, open_db

DAY = 86400.0
NOW = 1_800_000_000.0


def run(coro):
    return asyncio.run(coro)


def _wav(path: Path, seconds: float = 2.0, rate: int = 8000) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    right = (np.sin(2 * np.pi * 660 * t) * 6000).astype(np.int16)
    sf.write(str(path), np.stack([left, right], axis=1), rate, subtype="PCM_16")
    path.with_suffix(".json").write_text(json.dumps({"call_id": path.stem, "recording": {"path": str(path)}}))
    return sha256_file(path), path.stat().st_size


async def _add(db: Database, rec_dir: Path, cid: str, age_days: float, queue: str | None = None) -> Path:
    t = NOW - age_days * DAY
    await db.execute(
        "INSERT INTO calls(id, direction, offered_at, disposition, queue) VALUES (?, 'inbound', ?, 'answered', ?)",
        (cid, t, queue),
    )
    wav = rec_dir / f"day{int(age_days)}" / f"{cid}.wav"
    sha, size = _wav(wav)
    await db.upsert_recording(
        {
            "call_id": cid,
            "path": str(wav),
            "status": "complete",
            "seconds": 2.0,
            "sample_rate": 8000,
            "channels": 2,
            "sha256": sha,
            "bytes": size,
            "created_at": t + 60,
            "detail": "{}",
        }
    )
    return wav


def _row(cid: str, age: float, size: int = 100, queue: str | None = None, held: bool = False) -> R.StoredRecordingRow:
    return {
        "call_id": cid,
        "path": f"/r/{cid}.wav",
        "status": "complete",
        "format": "wav",
        "seconds": 1.0,
        "sha256": "x",
        "bytes": size,
        "created_at": NOW - age * DAY,
        "offered_at": NOW - age * DAY,
        "queue": queue,
        "held_at": NOW if held else None,
        "hold_reason": "",
        "deleted_at": None,
        "deleted_reason": "",
    }


def test_plan_keep_days_queue_override_hold_and_budget() -> None:
    rows = [
        _row("old", 400),
        _row("old-held", 500, held=True),
        _row("billing", 40, queue="billing"),
        _row("front", 40, queue="front"),
        _row("new", 1),
    ]
    cfg = RecordingsConfig(keep_days=365, queue_keep_days=("billing=30",))
    got = R.plan(rows, cfg, NOW)
    assert [(d.call_id, d.reason) for d in got] == [
        ("old", "retention: older than 365 days (site)"),
        ("billing", "retention: older than 30 days (queue billing)"),
    ]
    # the budget deletes the oldest unheld first, until the rest fits (the held one still counts)
    budget = RecordingsConfig(max_gb=250 / 1e9)
    got = R.plan(rows, budget, NOW)
    assert [d.call_id for d in got] == ["old", "billing", "front"]
    assert all(d.reason == "disk budget: over 2.5e-07 GB" for d in got)
    assert R.plan(rows, RecordingsConfig(), NOW) == []  # keep for ever, no budget


def test_retention_deletes_exactly_the_expired_and_keeps_the_books(tmp_path: Path) -> None:
    rec = tmp_path / "recordings"

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            old = await _add(db, rec, "c-old", 100)
            held = await _add(db, rec, "c-held", 120)
            new = await _add(db, rec, "c-new", 3)
            await R.set_hold(db, "c-held", True, "complaint 114", now=NOW)
            cfg = RecordingsConfig(keep_days=30)
            assert [d.call_id for d in await R.apply_retention(db, cfg, NOW, dry_run=True)] == ["c-old"]
            assert old.exists()
            gone = await R.apply_retention(db, cfg, NOW)
            assert [d.call_id for d in gone] == ["c-old"]
            assert not old.exists() and not old.with_suffix(".json").exists() and not old.parent.exists()
            assert held.exists() and new.exists()
            row = await R.recording(db, "c-old")
            assert row["status"] == "deleted" and row["deleted_at"] == NOW
            assert R.books_line(row).startswith("recording deleted on ") and "older than 30 days" in R.books_line(row)
            events = [e["kind"] for e in await db.fetchall("SELECT kind FROM call_events WHERE call_id = 'c-old'")]
            assert events == ["recording_deleted"]
            assert await db.get_meta(R.LAST_RUN_KEY) == repr(NOW)
            # a second run deletes nothing more
            assert await R.apply_retention(db, cfg, NOW + 10) == []

    run(go())


def test_erasure_needs_a_reason_and_respects_the_hold(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            wav = await _add(db, tmp_path / "recordings", "c1", 1)
            await R.set_hold(db, "c1", True, "court order", now=NOW)
            with pytest.raises(R.PbxError, match="under legal hold"):
                await R.delete_recording(db, "c1", "patient request", NOW)
            with pytest.raises(R.PbxError, match="reason"):
                await R.delete_recording(db, "c1", "  ", NOW)
            await R.set_hold(db, "c1", False, now=NOW)
            d = await R.delete_recording(db, "c1", "patient request", NOW)
            assert d.reason == "erasure: patient request" and not wav.exists()
            with pytest.raises(R.PbxError, match="already deleted"):
                await R.delete_recording(db, "c1", "again", NOW)
            with pytest.raises(R.PbxError, match="no recording"):
                await R.set_hold(db, "nope", True)

    run(go())


def test_verify_reports_missing_and_corrupt(tmp_path: Path) -> None:
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await _add(db, tmp_path / "r", "ok", 1)
            gone = await _add(db, tmp_path / "r", "gone", 1)
            bad = await _add(db, tmp_path / "r", "bad", 1)
            gone.unlink()
            with bad.open("r+b") as f:
                f.seek(100)
                f.write(b"\x7f\x7f")
            checked, found = await R.verify(db)
            assert checked == 3
            assert sorted((f.call_id, f.problem) for f in found) == [
                ("bad", R.Problem.CORRUPT),
                ("gone", R.Problem.MISSING),
            ]

    run(go())


@pytest.mark.parametrize("fmt", ["flac", "opus"])
def test_compression_keeps_length_checksums_and_playback(tmp_path: Path, fmt: str) -> None:
    if fmt == "opus" and not R.opus_supported():
        pytest.skip("libsndfile without Opus")

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            wav = await _add(db, tmp_path / "r", "c1", 1)
            held = await _add(db, tmp_path / "r", "c2", 1)
            fresh = await _add(db, tmp_path / "r", "c3", 0)
            await db.execute("UPDATE recordings SET created_at = ? WHERE call_id = 'c3'", (NOW - 5,))
            await R.set_hold(db, "c2", True, now=NOW)
            before = sf.info(str(wav)).frames
            done = await R.compress_pending(db, RecordingsConfig(compress=fmt, compress_after=60), NOW)
            assert [c.path.stem for c in done] == ["c1"]
            assert held.exists() and fresh.exists() and not wav.exists()  # held and too recent: untouched
            row = await R.recording(db, "c1")
            out = Path(row["path"])
            assert row["format"] == fmt and out.suffix == (".ogg" if fmt == "opus" else ".flac")
            assert row["sha256"] == sha256_file(out) and row["bytes"] == out.stat().st_size
            assert abs(sf.info(str(out)).frames - before) <= 160
            side = json.loads(out.with_suffix(".json").read_text())["recording"]
            assert side["sha256"] == row["sha256"] and side["path"] == str(out) and side["format"] == fmt
            assert side["original"]["format"] == "wav"
            assert out.stat().st_size < side["original"]["bytes"]
            decoded = tmp_path / "play.wav"
            decoded.write_bytes(R.decode_to_wav(out))
            assert abs(R.duration(decoded) - 2.0) < 0.03
            assert R.audio_mime(out) == ("audio/flac" if fmt == "flac" else "audio/ogg; codecs=opus")
            _, found = await R.verify(db)
            assert found == []

    run(go())


def test_cli_hold_delete_verify_play(invoke_cli, make_config, tmp_path: Path) -> None:
    cfg_path = make_config(recordings={"compress": "flac", "keep_days": 30})
    cfg = load_config(cfg_path)

    async def setup():
        async with open_db(cfg.db_path) as db:
            await _add(db, cfg.data_dir / "recordings", "c1", 1)
            await _add(db, cfg.data_dir / "recordings", "c2", 1)

    run(setup())
    c = ["--config", str(cfg_path)]
    r = invoke_cli("recordings", "hold", "c1", "--reason", "complaint", *c)
    assert r.exit_code == 0, r.output
    r = invoke_cli("recordings", "delete", "c1", "--reason", "erasure", *c)
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "legal hold" in r.output
    r = invoke_cli("recordings", "delete", "c2", *c)
    assert r.exit_code == 2 and "--reason" in r.output
    r = invoke_cli("recordings", "delete", "c2", "--reason", "patient erasure request", *c)
    assert r.exit_code == 0 and "deleted" in r.output
    r = invoke_cli("recordings", "show", "c2", *c)
    assert "recording deleted on" in r.output and "patient erasure request" in r.output
    r = invoke_cli("recordings", "compress", "--all", *c)
    assert r.exit_code == 0 and "Compressed 0" in r.output  # c1 is held, c2 gone
    r = invoke_cli("recordings", "verify", *c)
    assert r.exit_code == 0 and "1 recording(s) checked, 0 problem(s)" in r.output
    out = tmp_path / "out.wav"
    r = invoke_cli("recordings", "play", "c1", "--out", str(out), *c)
    assert r.exit_code == 0 and out.stat().st_size > 44
    r = invoke_cli("recordings", "play", "c2", "--out", str(out), *c)
    assert r.exit_code == 1 and "recording deleted on" in r.output
    (cfg.data_dir / "recordings" / "day1" / "c1.wav").unlink()
    r = invoke_cli("recordings", "verify", "--json", *c)
    assert r.exit_code == 1 and json.loads(r.output)["problems"][0]["problem"] == "missing"
    r = invoke_cli("recordings", "purge", "--dry-run", *c)
    assert r.exit_code == 0 and "Would delete 0" in r.output


def test_erasure_and_retention_take_the_callers_survey_comment_too(tmp_path: Path) -> None:
    """The survey comment is the patient's voice as well: gone with the call's recording;
    the survey's score stays in the books."""

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await _add(db, tmp_path / "recordings", "c1", 1)
            comment = tmp_path / "recordings" / "c1-comment.wav"
            comment.write_bytes(b"RIFF")
            await db.insert_survey_row("c1", "alice", "front", 2, NOW)
            assert await db.set_survey_comment("c1", str(comment), 4.0)
            await R.delete_recording(db, "c1", "patient request", NOW)
            assert not comment.exists()
            [row] = await db.survey_rows()
            assert (row["score"], row["call_id"]) == (2, "c1")
            assert await db.take_survey_comments("c1") == []  # forgotten in the books too

    run(go())
