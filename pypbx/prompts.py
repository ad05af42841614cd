"""Which audio file plays for a prompt: the clinic's own recording if it imported one,
else the shipped one.

Shipped prompts live in ``ivr_prompts/<lang>/<id>.wav`` (8 kHz mono 16-bit, generated);
``pypbx prompts import`` converts a clinic's WAV/FLAC/OGG to that format into
``<data_dir>/prompts/<lang>/<id>.wav`` (music on hold: ``<data_dir>/prompts/moh/default.wav``),
which then wins. A language without the prompt falls back to English.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from pypbx.errors import PbxError

SHIPPED = Path(__file__).resolve().parents[1] / "ivr_prompts"
LANGUAGES = ("en", "ko", "ru", "zh", "fr")
MAX_SAY_CHARS = 2000
PROMPT_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")

#: Set once at start by the running PBX: ``<data_dir>/prompts``.
override_dir: Path | None = None


def resolve(lang: str, pid: str, base: Path = SHIPPED) -> str:
    """Path of prompt ``pid`` in ``lang``: override, shipped, then both again in English."""
    langs = (lang, "en") if lang != "en" else ("en",)
    for lg in langs:
        for root in ((override_dir,) if override_dir else ()) + (Path(base),):
            p = root / lg / f"{pid}.wav"
            if p.exists():
                return str(p)
    return str(Path(base) / lang / f"{pid}.wav")


def moh_file(default: Path) -> Path:
    if override_dir is not None:
        p = override_dir / "moh" / "default.wav"
        if p.exists():
            return p
    return default


def shipped_ids() -> dict[str, list[str]]:
    """{prompt id: languages it exists in}, from the shipped manifest."""
    manifest = tomllib.loads((SHIPPED / "manifest.toml").read_text(encoding="utf-8"))
    out: dict[str, list[str]] = {}
    for pid, spec in (manifest.get("prompts") or manifest).items():
        if isinstance(spec, dict):
            langs = spec.get("langs") or [lg for lg in LANGUAGES if lg in spec]
            out[pid] = list(langs)
    return out


def voice_for(lang: str) -> tuple[str, int]:
    """The espeak-ng voice and speed (words/min) the shipped prompts of ``lang`` use."""
    manifest = tomllib.loads((SHIPPED / "manifest.toml").read_text(encoding="utf-8"))
    v = (manifest.get("voices") or {}).get(lang) or {}
    return str(v.get("voice", lang)), int(v.get("speed", 150))


def speak(text: str, lang: str, wav: Path, timeout: float = 60.0) -> None:
    """Say ``text`` in ``lang`` with espeak-ng (Debian: ``apt-get install espeak-ng``) into
    the WAV file ``wav`` (espeak-ng's own rate; ``pypbx prompts say`` converts it like an
    imported recording). PbxError, one line, when espeak-ng is missing or fails."""
    if lang not in LANGUAGES:
        raise PbxError(f"--lang must be one of {', '.join(LANGUAGES)}")
    text = " ".join(text.split())
    if not text:
        raise PbxError("--text is empty")
    if len(text) > MAX_SAY_CHARS:
        raise PbxError(f"--text is {len(text)} characters long; at most {MAX_SAY_CHARS}")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise PbxError(
            "espeak-ng is not installed (Debian/Ubuntu: sudo apt-get install espeak-ng); "
            "or record the prompt and use 'pypbx prompts import'"
        )
    voice, speed = voice_for(lang)
    try:
        res = subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-w", str(wav), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PbxError(f"espeak-ng failed: {e}") from None
    if res.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
        detail = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PbxError(f"espeak-ng failed (exit {res.returncode})" + (f": {detail[-1]}" if detail else ""))


# --------------------------------------------------------------------------- issue 9 (h-cli): moved from the CLI


def inventory(override: Path, lang: str | None = None) -> list[dict[str, str | bool]]:
    """Every prompt per language (only ``lang`` if given), and the music on hold: ``{"id",
    "lang", "shipped", "replaced"}``, ``replaced`` when the clinic's recording is under
    ``override`` (``<data_dir>/prompts``)."""
    rows: list[dict[str, str | bool]] = []
    ids = shipped_ids()
    custom = {(p.parent.name, p.stem) for p in override.glob("*/*.wav") if p.parent.name in LANGUAGES}
    for pid in sorted(set(ids) | {c[1] for c in custom}):
        for lg in LANGUAGES:
            if lang and lg != lang:
                continue
            shipped = lg in ids.get(pid, [])
            replaced = (lg, pid) in custom
            if shipped or replaced:
                rows.append({"id": pid, "lang": lg, "shipped": shipped, "replaced": replaced})
    rows.append({"id": "moh", "lang": "-", "shipped": True, "replaced": (override / "moh" / "default.wav").exists()})
    return rows
