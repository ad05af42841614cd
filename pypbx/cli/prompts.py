"""``pypbx prompts``: the prompts callers hear, and the clinic's own recordings of them."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from pypbx import prompts as P
from pypbx.cli.context import config_option, load
from pypbx.cli.output import check_language, done, echo_json, json_option, languages_help, prompt_languages, table
from pypbx.config import Config
from pypbx.errors import PbxError, PbxUsageError


@click.group()
@config_option
def prompts() -> None:
    """The prompts callers hear: replace any with the clinic's own recording."""


def _prompt_target(cfg: Config, pid: str | None, lang: str, moh: bool) -> Path:
    """Where the clinic's recording of ``pid`` in ``lang`` goes; bad input is exit 2."""
    if moh:
        return cfg.data_dir / "prompts" / "moh" / "default.wav"
    if not pid or not P.PROMPT_ID.match(pid):
        raise PbxUsageError("--id must be a prompt id like 'welcome' (lower case, digits, _)")
    check_language(lang)
    return cfg.data_dir / "prompts" / lang / f"{pid}.wav"


@prompts.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id", "pid", default=None, help="Prompt id, e.g. welcome, after_hours, clinic_address.")
@click.option("--lang", default="en", show_default=True, help=languages_help(None))
@click.option("--moh", is_flag=True, help="Replace the music on hold instead.")
@json_option
@click.pass_context
def prompts_import(ctx: click.Context, file: str, pid: str | None, lang: str, moh: bool, as_json: bool) -> None:
    """Convert FILE (WAV, FLAC or OGG, any rate) to the engine's format and use it.

    Example: pypbx prompts import accueil.wav --id welcome --lang fr
    """
    cfg = load(ctx)
    dst = _prompt_target(cfg, pid, lang, moh)
    if not Path(file).is_file():  # bad input (exit 2), as a file in the wrong format is
        raise PbxUsageError(f"{file}: no such file")
    _convert(file, dst, moh, "music on hold" if moh else f"prompt {pid} ({lang})", pid, as_json)


def _convert(file: str, dst: Path, moh: bool, what: str, pid: str | None, as_json: bool) -> None:
    """Convert ``file`` into the engine's format at ``dst`` and say what was done (a file
    that is not audio, or not readable, is bad input: exit 2; a place it cannot be put, 1)."""
    # function-level: media.prompts needs soundfile (libsndfile), only to convert a prompt;
    # every other command works without it
    from media.prompts import PromptError, convert_prompt

    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PbxError(f"cannot create {dst.parent}: {e.strerror or e}") from None
    try:
        with _quiet_stderr():
            info = convert_prompt(file, dst, max_seconds=3600.0) if moh else convert_prompt(file, dst)
    except PromptError as e:  # media/ does not depend on pypbx/: its error is translated here
        raise PbxUsageError(_one_line(str(e), file)) from None
    except OSError as e:
        raise PbxUsageError(f"{file}: {e.strerror or e}") from None
    if as_json:
        echo_json(
            {
                "id": "moh" if moh else pid,
                "path": str(dst),
                "seconds": round(info.duration, 3),
                "source_rate": info.source_rate,
                "source_channels": info.source_channels,
                "source_format": info.source_subtype,
                "clipped_samples": info.clipped_samples,
                "shipped_id": moh or pid in P.shipped_ids(),
            }
        )
        return
    click.echo(
        f"Imported {what}: {info.duration:.1f} s, from {info.source_rate} Hz "
        f"{info.source_channels}-channel {info.source_subtype} -> {dst}"
    )
    if not moh and pid not in P.shipped_ids():
        click.echo(f"Note: {pid!r} is not one of the shipped prompts; IVR menus can play it by that id.")
    if info.clipped_samples:
        click.echo(f"Warning: {info.clipped_samples} samples were clipped; the recording is too loud.")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what C decoders (libsndfile's mpg123) print on descriptor 2 while a file is
    probed: the admin gets one line, ours."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _one_line(msg: str, file: str) -> str:
    """libsndfile's reason, without the path it repeats or its misleading guess."""
    msg = msg.replace(f"Error opening {file!r}: ", "").replace(f"Error opening '{file}': ", "")
    msg = msg.replace("File does not exist or is not a regular file (possibly a pipe?).", "Format not recognised.")
    return " ".join(msg.split())


@prompts.command("say")
@config_option
@click.option("--id", "pid", required=True, help="Prompt id, e.g. clinic_address or after_hours.")
@click.option("--lang", default="en", show_default=True, help=languages_help(None))
@click.option("--text", required=True, help="What to say.")
@json_option
@click.pass_context
def prompts_say(ctx: click.Context, pid: str, lang: str, text: str, as_json: bool) -> None:
    """Make the clinic's own prompt from TEXT with espeak-ng (the shipped prompts' voice),
    stored like an imported recording (pypbx prompts remove undoes it).

    Needs espeak-ng (Debian/Ubuntu: apt-get install espeak-ng). Example:

        pypbx prompts say --id after_hours --lang fr --text "Le cabinet est ouvert du lundi au vendredi."
    """
    cfg = load(ctx)
    dst = _prompt_target(cfg, pid, lang, False)
    words = " ".join(text.split())
    if not words:
        raise PbxUsageError("--text is empty")
    if len(words) > P.MAX_SAY_CHARS:
        raise PbxUsageError(f"--text is {len(words)} characters long; at most {P.MAX_SAY_CHARS}")
    with tempfile.TemporaryDirectory(prefix="pypbx-say-") as tmp:
        wav = Path(tmp) / "say.wav"
        P.speak(words, lang, wav)  # espeak-ng missing or failing: exit 1
        _convert(str(wav), dst, False, f"prompt {pid} ({lang}), spoken by espeak-ng", pid, as_json)


@prompts.command("list")
@config_option
@click.option("--lang", default=None, help="Only this language (" + ", ".join(prompt_languages()) + ").")
@json_option
@click.pass_context
def prompts_list(ctx: click.Context, lang: str | None, as_json: bool) -> None:
    """Every prompt, per language, and whether the clinic replaced it."""

    check_language(lang)
    rows = P.inventory(load(ctx).data_dir / "prompts", lang)
    if as_json:
        echo_json(rows)
        return
    click.echo(
        table(["ID", "LANG", "SOURCE"], [[r["id"], r["lang"], "clinic" if r["replaced"] else "shipped"] for r in rows])
    )


@prompts.command("remove")
@config_option
@click.option("--id", "pid", default=None, help="Prompt id.")
@click.option("--lang", default="en", show_default=True, help=languages_help(None))
@click.option("--moh", is_flag=True, help="The music on hold.")
@json_option
@click.pass_context
def prompts_remove(ctx: click.Context, pid: str | None, lang: str, moh: bool, as_json: bool) -> None:
    """Go back to the shipped prompt (delete the clinic's recording)."""
    cfg = load(ctx)
    dst = _prompt_target(cfg, pid, lang, moh)
    if not dst.exists():
        raise PbxUsageError(f"no imported recording at {dst}")
    dst.unlink()
    done(
        as_json,
        {"id": "moh" if moh else pid, "path": str(dst), "removed": True},
        f"Removed {dst}; the shipped prompt plays again.",
    )
