"""Files the CLI reads and writes besides the patient list (issue 12): prompt audio (import,
and ``prompts say`` with espeak-ng), public holidays per country, the config file, and a
voicemail message copied out. Each bad input is one line naming the file and the problem."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pypbx import sitetime
from pypbx import voicemail as V
from pypbx.config import load_config
from pypbx.db import open_db

BIN = Path(sys.executable).parent
HAVE_ESPEAK = shutil.which("espeak-ng") is not None


@pytest.fixture(autouse=True)
def _system_zone_after():
    """A config loaded here may set the process's site zone: back to the system's after."""
    yield
    sitetime.set_zone(None)


def pypbx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script: what the admin sees on the terminal, C libraries' output included."""
    return subprocess.run(
        [str(BIN / "pypbx"), *args], capture_output=True, text=True, timeout=60, env=env or dict(os.environ)
    )


# --------------------------------------------------------------------------- prompt audio


def test_prompt_import_of_wrong_files_is_one_line_naming_the_file(invoke_cli, tmp_config, tmp_path):
    c = ("--config", str(tmp_config))
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    r = invoke_cli("prompts", "import", str(trunc), "--id", "welcome", "--lang", "fr", *c)
    assert r.exit_code == 2  # issue 12: a file that is not audio is bad input
    assert r.output.splitlines() == [
        "Error: trunc.wav: not a readable audio file (WAV/FLAC/OGG expected): Error in WAV file. No 'data' chunk marker."
    ]
    low = tmp_path / "low.wav"
    sf.write(low, np.zeros(400), 2000, subtype="ULAW")
    r = invoke_cli("prompts", "import", str(low), "--id", "welcome", *c)
    assert r.exit_code == 2
    assert r.output.splitlines() == ["Error: low.wav: sample rate 2000 Hz is outside 4000..384000 Hz"]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    r = invoke_cli("prompts", "import", str(empty), "--id", "welcome", *c)
    assert r.exit_code == 2 and len(r.output.splitlines()) == 1 and "empty.wav: not a readable audio file" in r.output
    assert not (load_config(tmp_config).data_dir / "prompts" / "fr" / "welcome.wav").exists()


def test_prompt_import_of_noise_named_mp3_is_exactly_one_line_on_the_terminal(tmp_config, tmp_path):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    r = pypbx("prompts", "import", str(noise), "--id", "welcome", "--config", str(tmp_config))
    assert r.returncode == 2  # issue 12: a file that is not audio is bad input
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr  # libsndfile's decoder says nothing on its own
    assert lines[0] == "Error: noise.mp3: not a readable audio file (WAV/FLAC/OGG expected): Format not recognised."
    assert "Traceback" not in r.stderr


def test_prompt_import_in_french(invoke_cli, tmp_config, tmp_path):
    src = tmp_path / "accueil.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000)
    r = invoke_cli("prompts", "import", str(src), "--id", "welcome", "--lang", "fr", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    dst = load_config(tmp_config).data_dir / "prompts" / "fr" / "welcome.wav"
    assert (sf.info(dst).samplerate, sf.info(dst).channels) == (8000, 1)
    rows = json.loads(invoke_cli("prompts", "list", "--lang", "fr", "--json", "--config", str(tmp_config)).output)
    assert {"id": "welcome", "lang": "fr", "shipped": True, "replaced": True} in rows


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_prompts_say_makes_the_clinics_own_prompt_with_espeak(invoke_cli, tmp_config):
    c = ("--config", str(tmp_config))
    text = "Le cabinet se trouve au 12 rue de la Paix."
    r = invoke_cli("prompts", "say", "--id", "clinic_address", "--lang", "fr", "--text", text, *c)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Imported prompt clinic_address (fr), spoken by espeak-ng: ")
    dst = load_config(tmp_config).data_dir / "prompts" / "fr" / "clinic_address.wav"
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    x, _ = sf.read(dst)
    assert 1.5 < len(x) / 8000 < 10.0 and float(np.sqrt(np.mean(x**2))) > 0.01  # speech, not silence
    rows = json.loads(invoke_cli("prompts", "list", "--lang", "fr", "--json", *c).output)
    assert {"id": "clinic_address", "lang": "fr", "shipped": False, "replaced": True} in rows
    assert invoke_cli("prompts", "remove", "--id", "clinic_address", "--lang", "fr", *c).exit_code == 0
    assert not dst.exists()


def test_prompts_say_without_espeak_is_one_line(tmp_config, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    r = pypbx("prompts", "say", "--id", "x", "--lang", "fr", "--text", "Bonjour", "--config", str(tmp_config), env=env)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "Error: espeak-ng is not installed (Debian/Ubuntu: sudo apt-get install espeak-ng); "
        "or record the prompt and use 'pypbx prompts import'"
    ]


def test_prompts_say_bad_input(invoke_cli, tmp_config):
    c = ("--config", str(tmp_config))
    r = invoke_cli("prompts", "say", "--id", "x", "--lang", "de", "--text", "Hallo", *c)
    assert r.exit_code == 2 and r.output.splitlines() == ["Error: unknown language 'de' (valid: en, ko, ru, zh, fr)"]
    r = invoke_cli("prompts", "say", "--id", "x", "--lang", "fr", "--text", "   ", *c)
    assert r.exit_code != 0 and r.output.splitlines() == ["Error: --text is empty"]


# --------------------------------------------------------------------------- public holidays


def test_public_holidays_imported_per_country_idempotent(invoke_cli, tmp_config):
    c = ("--config", str(tmp_config))
    assert (
        invoke_cli("hours", "set", "clinic", "--week", "mon-fri 08:00-18:00", "--tz", "Europe/Paris", *c).exit_code == 0
    )
    assert invoke_cli("hours", "holiday", "clinic", "2027-12-25", "09:00-12:00", *c).exit_code == 0  # the admin's own
    r = invoke_cli("hours", "holiday", "clinic", "--country", "FR", "--year", "2027", *c)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "clinic: 10 public holiday(s) of FR 2027 added, 1 already there."
    assert "  2027-07-14  closed  National Day" in lines and "  2027-01-01  closed  New Year's Day" in lines
    assert not any("2027-12-25" in ln for ln in lines)
    d = json.loads(invoke_cli("hours", "show", "clinic", "--json", *c).output)
    assert d["exceptions"]["2027-07-14"] == [] and d["exceptions"]["2027-03-29"] == []  # Easter Monday
    assert d["exceptions"]["2027-12-25"] == ["09:00-12:00"]  # kept as the admin set it
    again = json.loads(
        invoke_cli("hours", "holiday", "clinic", "--country", "fr", "--year", "2027", "--json", *c).output
    )
    assert again["added"] == [] and len(again["already_there"]) == 11
    assert json.loads(invoke_cli("hours", "show", "clinic", "--json", *c).output)["exceptions"] == d["exceptions"]


def test_public_holidays_bad_input_is_one_line_exit_2(invoke_cli, tmp_config):
    c = ("--config", str(tmp_config))
    assert invoke_cli("hours", "set", "clinic", "--week", "mon-fri 08:00-18:00", *c).exit_code == 0
    r = invoke_cli("hours", "holiday", "clinic", "--country", "XX", "--year", "2027", *c)
    assert r.exit_code == 2
    assert r.output.splitlines() == [
        "Error: unknown country 'XX' for public holidays (an ISO 3166 code like FR, KR, US)"
    ]
    r = invoke_cli("hours", "holiday", "clinic", "--country", "FR", "--subdiv", "zz", *c)
    assert r.exit_code == 2 and r.output.startswith("Error: unknown subdivision 'zz' of FR (known: ")
    r = invoke_cli("hours", "holiday", "clinic", "2027-01-02", "--country", "FR", *c)
    assert r.exit_code == 2 and len(r.output.splitlines()) == 1
    r = invoke_cli("hours", "holiday", "nope", "--country", "FR", *c)
    assert r.exit_code == 2 and r.output.splitlines() == ["Error: unknown schedule 'nope' (valid: clinic)"]
    r = invoke_cli("hours", "holiday", "clinic", *c)
    assert r.exit_code == 2 and r.output.splitlines() == ["Error: give a DATE (YYYY-MM-DD) or --country CC"]


# --------------------------------------------------------------------------- the config file


def _config_error(invoke_cli, path: Path) -> str:
    r = invoke_cli("ext", "list", "--config", str(path))
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    lines = r.output.splitlines()
    assert len(lines) == 1, r.output
    return lines[0]


def test_broken_config_files_are_one_line_naming_the_file(invoke_cli, tmp_path):
    p = tmp_path / "pypbx.toml"
    p.write_text('data_dir = "./var"\n[sip]\nudp_port = 5070\ntcp_port 5070\n', encoding="utf-8")
    msg = _config_error(invoke_cli, p)
    assert msg.startswith(f"Error: config error: {p}: invalid TOML: ") and "line 4" in msg

    p.write_bytes('data_dir = "./var"\n[notify]\nmail_from = "accueil@clinique-é.fr"\n'.encode("cp1252"))
    msg = _config_error(invoke_cli, p)
    assert msg == f"Error: config error: {p}: not UTF-8 text (line 3: byte 0xe9); save it as UTF-8"

    p.write_bytes('data_dir = "./var"\n'.encode("utf-16"))
    assert _config_error(invoke_cli, p) == f"Error: config error: {p}: the file is UTF-16 text; save it as UTF-8"

    p.write_text('data_dir = "./var"\n\n[sites]\ntimezone = "Europe/Paris"\n', encoding="utf-8")
    assert _config_error(invoke_cli, p) == f"Error: config error: unknown section '[sites]' ({p}, line 3)"

    p.write_text('data_dir = "./var"\n[site]\ntimezon = "Europe/Paris"\n', encoding="utf-8")
    assert _config_error(invoke_cli, p) == f"Error: config error: unknown key 'site.timezon' ({p}, line 3)"

    p.write_text('data_dir = "./var"\n[calls]\n\nring_time = "60"\n', encoding="utf-8")
    assert _config_error(invoke_cli, p) == (
        f"Error: config error: calls.ring_time: expected an integer 1-600, got '60' ({p}, line 4)"
    )


def test_config_with_a_utf8_byte_order_mark_loads(tmp_path):
    p = tmp_path / "pypbx.toml"
    p.write_bytes(b"\xef\xbb\xbf" + b'data_dir = "./var"\n[site]\ntimezone = "Europe/Paris"\n')
    assert load_config(p).site.timezone == "Europe/Paris"


# --------------------------------------------------------------------------- voicemail play


def test_voicemail_play_prints_the_path_copies_with_to(invoke_cli, tmp_config, tmp_path):
    c = ("--config", str(tmp_config))
    assert invoke_cli("voicemail", "box", "1001", "--number", "801", *c).exit_code == 0
    cfg = load_config(tmp_config)
    src = tmp_path / "a.wav"
    sf.write(src, (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16), 8000, subtype="PCM_16")

    async def put():
        async with open_db(cfg.db_path) as db:
            return await V.file_message(
                db, cfg.data_dir, "1001", src, caller="555", did="801", call_id="x", received_at=1000.0
            )

    m = asyncio.run(put())
    assert invoke_cli("voicemail", "play", m["id"], *c).output.strip() == m["path"]
    out = tmp_path / "out"
    out.mkdir()
    r = invoke_cli("voicemail", "play", m["id"], "--to", str(out / "msg.wav"), *c)
    assert r.exit_code == 0 and r.output.strip() == f"Message {m['id']} copied to {out / 'msg.wav'}"
    assert (out / "msg.wav").read_bytes() == Path(m["path"]).read_bytes()
    r = invoke_cli("voicemail", "play", m["id"], "--to", str(out), *c)  # a directory: the same name inside
    assert r.exit_code == 0 and (out / Path(m["path"]).name).read_bytes() == Path(m["path"]).read_bytes()
    r = invoke_cli("voicemail", "play", m["id"], "--to", str(tmp_path / "no" / "dir" / "x.wav"), *c)
    assert r.exit_code == 1 and r.output.startswith(f"Error: cannot write {tmp_path / 'no' / 'dir' / 'x.wav'}: ")
    r = invoke_cli("voicemail", "play", m["id"], "--speaker", *c, env={"PATH": str(tmp_path / "empty-bin")})
    assert r.exit_code == 1 and r.output.splitlines() == [
        "Error: no audio player here (install alsa-utils for aplay); use --to FILE to copy it instead"
    ]
