"""`pypbx prompts import|list|remove`: a clinic's recording replaces a shipped prompt."""

import json

import numpy as np
import soundfile as sf

from pypbx import prompts as P
from pypbx.config import load_config


def test_import_converts_and_overrides(invoke_cli, tmp_config, tmp_path, monkeypatch):
    src = tmp_path / "welcome.flac"
    t = np.arange(44100 * 2) / 44100
    sf.write(src, np.stack([0.4 * np.sin(2 * np.pi * 300 * t)] * 2, axis=1), 44100, subtype="PCM_24")
    r = invoke_cli("prompts", "import", str(src), "--id", "welcome", "--lang", "ru", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    assert "Imported prompt welcome (ru): 2.0 s, from 44100 Hz 2-channel PCM_24" in r.output
    cfg = load_config(tmp_config)
    dst = cfg.data_dir / "prompts" / "ru" / "welcome.wav"
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    monkeypatch.setattr(P, "override_dir", cfg.data_dir / "prompts")
    assert P.resolve("ru", "welcome") == str(dst)  # the clinic's wins
    assert P.resolve("ko", "welcome").endswith("ivr_prompts/ko/welcome.wav")
    rows = json.loads(invoke_cli("prompts", "list", "--lang", "ru", "--json", "--config", str(tmp_config)).output)
    assert {"id": "welcome", "lang": "ru", "shipped": True, "replaced": True} in rows
    assert {"id": "please_hold", "lang": "ru", "shipped": True, "replaced": False} in rows
    r = invoke_cli("prompts", "remove", "--id", "welcome", "--lang", "ru", "--config", str(tmp_config))
    assert r.exit_code == 0 and not dst.exists()


def test_import_rejects_what_it_cannot_convert(invoke_cli, tmp_config, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    r = invoke_cli("prompts", "import", str(bad), "--id", "welcome", "--config", str(tmp_config))
    assert r.exit_code == 2 and "not a readable audio file" in r.output  # issue 12: bad input is exit 2
    r = invoke_cli("prompts", "import", str(bad), "--id", "Bad Id", "--config", str(tmp_config))
    assert r.exit_code == 2 and "--id must be a prompt id" in r.output
    r = invoke_cli("prompts", "import", str(tmp_path / "missing.wav"), "--id", "x", "--config", str(tmp_config))
    assert r.exit_code == 2 and "no such file" in r.output


def test_music_on_hold_replaced(invoke_cli, tmp_config, tmp_path, monkeypatch):
    src = tmp_path / "moh.wav"
    sf.write(src, (0.2 * np.sin(2 * np.pi * 220 * np.arange(16000 * 3) / 16000)), 16000)
    r = invoke_cli("prompts", "import", str(src), "--moh", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    cfg = load_config(tmp_config)
    monkeypatch.setattr(P, "override_dir", cfg.data_dir / "prompts")
    assert P.moh_file(P.SHIPPED / "moh" / "default.wav") == cfg.data_dir / "prompts" / "moh" / "default.wav"
