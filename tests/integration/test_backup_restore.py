"""Issue 13 on a real `pypbx run`: recordings compressed to FLAC in the background (same
length, sidecar checksum, playback), a backup taken while a call is up, restore into a fresh
data directory reproducing the books, the recordings and the settings; restore refuses the
running PBX's directory. ONE PBX for the module."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from pypbx import contrib
from tests.integration.harness import BIN, SIPP_DIR, PbxProcess, auth_users, require_tool, run_sipp
from tests.integration.test_proxy_calls import PASSWORD, Phone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    proc = PbxProcess(
        tmp_path_factory.mktemp("bk") / "pbx",
        security={"exempt": ["127.0.0.1"]},
        recordings={"compress": "flac", "compress_after": 0, "keep_days": 30},
    )
    proc.add_extensions(["1001", "1002"], PASSWORD)
    proc.cli("queue", "add", "front", "--number", "700")
    proc.start(timeout=45)  # a loaded CI machine starts slowly
    yield proc
    assert proc.stop() == 0
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _call(p: PbxProcess, work: Path, *, wait: bool = True) -> subprocess.Popen | None:
    phone = Phone(p, "1002", "call_uas_audio.xml", work / "uas")
    if not wait:  # a longer call (12 s of talk), in the background
        work.mkdir(parents=True, exist_ok=True)
        text = (SIPP_DIR / "call_uac_audio.xml").read_text()
        assert '<pause milliseconds="4000"/>' in text
        (work / "long_uac.xml").write_text(
            text.replace('<pause milliseconds="4000"/>', '<pause milliseconds="12000"/>')
        )
        return subprocess.Popen(
            [
                str(BIN / "python"),
                "-c",
                "import sys; from tests.integration.harness import run_sipp, auth_users;"
                f"r = run_sipp({str(work / 'long_uac.xml')!r}, '127.0.0.1:{p.port}', users=auth_users(['1001'], {PASSWORD!r}),"
                f" workdir=__import__('pathlib').Path({str(work / 'uac')!r}), extra=['-s', '1002'], timeout=40);"
                "sys.exit(0 if r.successful == 1 else 1)",
            ],
            cwd=Path(__file__).resolve().parents[2],
        )
    res = run_sipp(
        "call_uac_audio.xml",
        f"127.0.0.1:{p.port}",
        users=auth_users(["1001"], PASSWORD),
        workdir=work / "uac",
        extra=["-s", "1002"],
        timeout=40,
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-2000:]
    assert phone.wait() == 0, phone.errors()
    return None


class _Result:
    def __init__(self, code: int, out: str) -> None:
        self.returncode, self.stdout = code, out


def _cli(config: Path, *args: str) -> _Result:
    """The CLI in this process (no interpreter start per command: the suite's time)."""
    from click.testing import CliRunner

    from cli import cli

    r = CliRunner().invoke(cli, [*args, "--config", str(config)], catch_exceptions=False)
    return _Result(r.exit_code, r.output)


def _json(config: Path, *args: str) -> list[dict]:
    r = _cli(config, *args, "--json")
    assert r.returncode == 0, r.stdout
    return json.loads(r.stdout)


def _recordings(p: PbxProcess, config: Path | None = None) -> list[dict]:
    return _json(config or p.config_path, "recordings")


def test_a_recording_is_compressed_in_the_background_and_still_plays(p, tmp_path):
    _call(p, tmp_path)

    def flac():
        recs = _recordings(p)
        return recs if recs and recs[0]["recording_path"].endswith(".flac") else None

    rec = p.wait_for(flac, 20, "the recording to be compressed")[0]
    path = Path(rec["recording_path"])
    assert not path.with_suffix(".wav").exists()
    talk = json.loads(_cli(p.config_path, "calls", "list", "--json").stdout)[0]["talk_seconds"]
    info = sf.info(str(path))
    assert info.channels == 2 and abs(info.frames / info.samplerate - talk) < 0.5
    side = json.loads(path.with_suffix(".json").read_text())["recording"]
    assert side["format"] == "flac" and side["sha256"] == _sha(path) and side["original"]["format"] == "wav"
    assert side["bytes"] < side["original"]["bytes"]
    shown = _json(p.config_path, "recordings", "show", rec["id"])
    assert shown["format"] == "flac" and shown["sha256"] == side["sha256"]
    out = tmp_path / "played.wav"
    assert _cli(p.config_path, "recordings", "play", rec["id"], "--out", str(out)).returncode == 0
    assert abs(sf.info(str(out)).frames - info.frames) <= 1
    assert "0 problem(s)" in _cli(p.config_path, "recordings", "verify").stdout


def test_backup_during_a_call_and_restore_on_a_fresh_data_directory(p, tmp_path):
    dest = tmp_path / "usb"
    caller = _call(p, tmp_path, wait=False)
    assert caller is not None
    p.wait_for(lambda: [c for c in p.api("calls") if c.get("state") == "talking"], 15, "a call to be up")
    live = p.cli("backup", str(dest), "--json")
    during = json.loads(live.stdout)
    assert p.api("calls"), "the call was still up after the backup"
    assert caller.wait(60) == 0
    p.wait_for(
        lambda: all(
            r["disposition"] != "in_progress" for r in json.loads(_cli(p.config_path, "calls", "list", "--json").stdout)
        ),
        15,
        "the call to be booked",
    )
    p.wait_for(lambda: [r["recording_path"][-5:] for r in _recordings(p)] == [".flac"] * 2, 20, "compression")
    after = _json(p.config_path, "backup", str(dest), "--keep", "5")
    assert after["copied"] >= 1 and after["copied"] < after["files"]  # incremental: only the new files
    assert "0 problem(s)" in _cli(p.config_path, "backup", "verify", str(dest)).stdout

    # the running PBX's directory: refused at once
    res = p.cli("restore", str(dest), check=False)
    assert res.returncode == 1 and "already running" in res.stderr and res.stderr.count("\n") == 1

    # the snapshot taken during the call: its books have the call still up
    cfg_a = tmp_path / "siteA" / "pypbx.toml"
    res = _cli(cfg_a, "restore", during["snapshot"])
    assert res.returncode == 0, res.stderr
    calls_a = json.loads(_cli(cfg_a, "calls", "list", "--json").stdout)
    assert len(calls_a) == 2 and sorted(c["disposition"] for c in calls_a)[0] == "answered"

    # the latest: identical books, recordings and settings
    cfg_b = tmp_path / "siteB" / "pypbx.toml"
    res = _cli(cfg_b, "restore", str(dest))
    assert res.returncode == 0, res.stderr
    data_b = (cfg_b.parent / "var").resolve()
    for args in (("calls", "list", "--json"), ("ext", "list", "--json"), ("queue", "list", "--json")):
        want = _cli(p.config_path, *args).stdout.replace(str(p.cfg.data_dir), str(data_b))  # paths moved with the data
        assert _cli(cfg_b, *args).stdout == want, args
    orig, restored = _recordings(p), _recordings(p, cfg_b)
    assert len(orig) == 2 and [r["id"] for r in restored] == [r["id"] for r in orig]
    for r, rr in zip(orig, restored, strict=True):
        assert Path(rr["recording_path"]) == data_b / Path(r["recording_path"]).relative_to(p.cfg.data_dir)
        assert _sha(Path(rr["recording_path"])) == _sha(Path(r["recording_path"]))
    res = _cli(cfg_b, "recordings", "verify")
    assert res.returncode == 0 and "2 recording(s) checked, 0 problem(s)" in res.stdout


def test_fail2ban_filter_matches_a_real_brute_force_run(p, tmp_path):
    """The shipped filter against the PBX's own log after wrong passwords (sipp) and a good
    registration: every failure line matches, with the attacker's address; nothing else."""
    from tests.unit.test_service import matched

    target = f"127.0.0.1:{p.port}"
    for i in range(3):
        run_sipp(
            "register_wrong_password.xml",
            target,
            users=auth_users(["1001"], "guessed-wrong"),
            workdir=tmp_path / f"w{i}",
        )
    res = run_sipp("register.xml", target, users=auth_users(["1001"], PASSWORD), workdir=tmp_path / "ok")
    assert res.returncode == 0, res.errors
    lines = p.log().splitlines()
    failures = [ln for ln in lines if "SECURITY auth-failed" in ln]
    assert len(failures) >= 3, "\n".join(lines[-40:])
    assert matched(failures) == ["127.0.0.1"] * len(failures)
    assert matched([ln for ln in lines if ln not in failures]) == []
    # and fail2ban's own tool (Debian's fail2ban package) on the very log file: every failure
    # line matched with the attacker's address, every other line missed
    tool = require_tool("fail2ban-regex")
    flt = tmp_path / "pypbx.conf"
    flt.write_text(contrib.text("fail2ban-filter.conf"))
    out = subprocess.run(
        [tool, "--out", "ip", str(p.log_path), str(flt)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["127.0.0.1"] * len(failures)
    summary = subprocess.run([tool, str(p.log_path), str(flt)], capture_output=True, text=True, timeout=120).stdout
    assert f"{len(lines)} lines, 0 ignored, {len(failures)} matched, {len(lines) - len(failures)} missed" in summary


def test_the_daily_retention_in_the_pbx_deletes_the_expired_and_not_the_held(p):
    """Both recorded calls made 100 days old, one held, the day's run forgotten: the PBX's
    own job deletes exactly the other one and keeps it in the books."""
    import sqlite3

    held, old = (r["id"] for r in _recordings(p))
    assert _cli(p.config_path, "recordings", "hold", held, "--reason", "complaint").returncode == 0
    con = sqlite3.connect(p.cfg.db_path)
    with con:
        con.execute("UPDATE calls SET offered_at = offered_at - 100 * 86400")
        con.execute("DELETE FROM meta WHERE key = 'retention_last_run'")
    con.close()

    def deleted():
        return _json(p.config_path, "recordings", "show", old)["deleted_at"]

    p.wait_for(deleted, 20, "the daily retention to run")
    kept, gone = (_json(p.config_path, "recordings", "show", c) for c in (held, old))
    assert kept["deleted_at"] is None and Path(kept["path"]).exists()
    assert not Path(gone["path"]).exists() and not Path(gone["path"]).with_suffix(".json").exists()
    assert gone["deleted_reason"] == "retention: older than 30 days (site)"
    assert "recording deleted on" in _cli(p.config_path, "recordings", "show", old).stdout
    assert len(_json(p.config_path, "calls", "list")) == 2  # the call records stay
