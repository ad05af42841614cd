"""Which audio file plays for a prompt: the clinic's own recording if it imported one,
else the shipped one.

Shipped prompts live in ``ivr_prompts/<lang>/<id>.wav`` (8 kHz mono 16-bit, generated);
``pypbx prompts import`` converts a clinic's WAV/FLAC/OGG to that format into
``<data_dir>/prompts/<lang>/<id>.wav`` (music on hold: ``<data_dir>/prompts/moh/default.wav``),
which then wins. A language without the prompt falls back to English.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "ivr_prompts"
LANGUAGES = ("en", "ko", "ru", "zh", "fr")
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
