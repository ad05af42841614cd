"""``pypbx prompts``: the prompts callers hear, and the clinic's own recordings of them."""

from __future__ import annotations

from pathlib import Path

import click

from pypbx import prompts as P
from pypbx.cli.context import config_option, load
from pypbx.cli.output import echo_json, json_option, table
from pypbx.config import Config
from pypbx.errors import PbxError


@click.group()
@config_option
def prompts() -> None:
    """The prompts callers hear: replace any with the clinic's own recording."""


def _prompt_target(cfg: Config, pid: str | None, lang: str, moh: bool) -> Path:

    if moh:
        return cfg.data_dir / "prompts" / "moh" / "default.wav"
    if not pid or not P.PROMPT_ID.match(pid):
        raise PbxError("--id must be a prompt id like 'welcome' (lower case, digits, _)")
    if lang not in P.LANGUAGES:
        raise PbxError(f"--lang must be one of {', '.join(P.LANGUAGES)}")
    return cfg.data_dir / "prompts" / lang / f"{pid}.wav"


@prompts.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id", "pid", default=None, help="Prompt id, e.g. welcome, after_hours, clinic_address.")
@click.option("--lang", default="en", show_default=True, help="en, ko, ru or zh.")
@click.option("--moh", is_flag=True, help="Replace the music on hold instead.")
@click.pass_context
def prompts_import(ctx: click.Context, file: str, pid: str | None, lang: str, moh: bool) -> None:
    """Convert FILE (WAV, FLAC or OGG, any rate) to the engine's format and use it."""
    # function-level: media.prompts needs soundfile (libsndfile), only to convert a prompt;
    # every other command works without it
    from media.prompts import PromptError, convert_prompt

    cfg = load(ctx)
    dst = _prompt_target(cfg, pid, lang, moh)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = convert_prompt(file, dst, max_seconds=3600.0) if moh else convert_prompt(file, dst)
    except PromptError as e:  # media/ does not depend on pypbx/: its error is translated here
        raise PbxError(str(e)) from None
    what = "music on hold" if moh else f"prompt {pid} ({lang})"
    click.echo(
        f"Imported {what}: {info.duration:.1f} s, from {info.source_rate} Hz "
        f"{info.source_channels}-channel {info.source_subtype} -> {dst}"
    )
    if not moh and pid not in P.shipped_ids():
        click.echo(f"Note: {pid!r} is not one of the shipped prompts; IVR menus can play it by that id.")
    if info.clipped_samples:
        click.echo(f"Warning: {info.clipped_samples} samples were clipped; the recording is too loud.")


@prompts.command("list")
@config_option
@click.option("--lang", default=None, help="Only this language.")
@json_option
@click.pass_context
def prompts_list(ctx: click.Context, lang: str | None, as_json: bool) -> None:
    """Every prompt, per language, and whether the clinic replaced it."""

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
@click.option("--lang", default="en", show_default=True)
@click.option("--moh", is_flag=True, help="The music on hold.")
@click.pass_context
def prompts_remove(ctx: click.Context, pid: str | None, lang: str, moh: bool) -> None:
    """Go back to the shipped prompt (delete the clinic's recording)."""
    cfg = load(ctx)
    dst = _prompt_target(cfg, pid, lang, moh)
    if not dst.exists():
        raise PbxError(f"no imported recording at {dst}")
    dst.unlink()
    click.echo(f"Removed {dst}; the shipped prompt plays again.")
