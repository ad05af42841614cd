"""``pypbx recordings``: find call recordings; hold, delete, verify, play, purge, compress them."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from pypbx import retention
from pypbx.cli.calls import call_filters, calls_table, search_calls
from pypbx.cli.context import config_option, load, on_db, run
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.errors import PbxError

#: players tried in this order by ``recordings play`` (the first one installed)
PLAYERS = (("aplay", "-q"), ("paplay",), ("ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"))


@click.group("recordings", invoke_without_command=True)
@config_option
@call_filters
@click.pass_context
def recordings(
    ctx: click.Context,
    date: str | None,
    since: str | None,
    until: str | None,
    number: str | None,
    queue: str | None,
    agent: str | None,
    disposition: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Find recordings by number, date, queue and agent.

    Example: pypbx recordings --date today --agent alice
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = run(
        search_calls(load(ctx), date, since, until, number, queue, agent, disposition, limit, recorded_only=True)
    )
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No recordings match.")
    else:
        click.echo(calls_table(rows))


@recordings.command("hold")
@config_option
@click.argument("call_id")
@click.option("--reason", default="", help="Why (a case number, a complaint...): kept in the books.")
@json_option
@click.pass_context
def hold(ctx: click.Context, call_id: str, reason: str, as_json: bool) -> None:
    """Put a call's recording under legal hold: retention and compression never touch it.

    Example: pypbx recordings hold 3f2a9c1e --reason 'complaint 2026-114'
    """
    on_db(ctx, retention.set_hold, call_id, True, reason)
    done(
        as_json,
        {"call_id": call_id, "held": True, "reason": reason},
        f"Recording of call {call_id} is under legal hold.",
    )


@recordings.command("unhold")
@config_option
@click.argument("call_id")
@json_option
@click.pass_context
def unhold(ctx: click.Context, call_id: str, as_json: bool) -> None:
    """Release a call's recording from legal hold (retention applies again).

    Example: pypbx recordings unhold 3f2a9c1e
    """
    on_db(ctx, retention.set_hold, call_id, False)
    done(as_json, {"call_id": call_id, "held": False}, f"Recording of call {call_id} is no longer held.")


@recordings.command("delete")
@config_option
@click.argument("call_id")
@click.option("--reason", required=True, help="Why (e.g. 'patient erasure request 2026-12-01'): kept in the books.")
@json_option
@click.pass_context
def delete(ctx: click.Context, call_id: str, reason: str, as_json: bool) -> None:
    """Erase a call's recording now (a patient's erasure request). The call record stays,
    saying when the recording was deleted and why.

    Example: pypbx recordings delete 3f2a9c1e --reason 'patient erasure request'
    """
    d = on_db(ctx, retention.delete_recording, call_id, reason)
    done(
        as_json,
        {"call_id": d.call_id, "path": d.path, "bytes": d.bytes, "reason": d.reason},
        f"Recording of call {call_id} deleted ({d.reason}).",
    )


@recordings.command("purge")
@config_option
@click.option("--dry-run", is_flag=True, help="Only list what retention would delete.")
@json_option
@click.pass_context
def purge(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Apply the retention rules now ([recordings] keep_days, queue_keep_days, max_gb);
    `pypbx run` does it once a day by itself. Held recordings are never deleted.

    Example: pypbx recordings purge --dry-run
    """
    cfg = load(ctx)
    gone = on_db(ctx, retention.apply_retention, cfg.recordings, dry_run=dry_run)
    if as_json:
        echo_json([{"call_id": d.call_id, "path": d.path, "bytes": d.bytes, "reason": d.reason} for d in gone])
        return
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(f"{verb} {len(gone)} recording(s), {sum(d.bytes for d in gone) / 1e6:.1f} MB.")
    for d in gone:
        click.echo(f"  {d.call_id}  {d.reason}")


@recordings.command("compress")
@config_option
@click.option("--all", "everything", is_flag=True, help="Ignore compress_after: every finished WAV now.")
@json_option
@click.pass_context
def compress(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """Compress finished WAV recordings now ([recordings] compress: flac or opus);
    `pypbx run` does it in the background by itself.

    Example: pypbx recordings compress --all
    """
    cfg = load(ctx).recordings
    if cfg.compress == "none":
        raise PbxError('[recordings] compress = "none": nothing to do')
    if everything:
        cfg = dataclasses.replace(cfg, compress_after=0)
    made = on_db(ctx, retention.compress_pending, cfg, limit=1_000_000)
    done(
        as_json,
        [{"path": str(c.path), "format": c.format.value, "bytes": c.bytes, "sha256": c.sha256} for c in made],
        f"Compressed {len(made)} recording(s) to {cfg.compress}.",
    )


@recordings.command("verify")
@config_option
@json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Re-check every kept recording: the file is there and its SHA-256 is the one in the
    books. Exit 1 when one is missing or corrupt.

    Example: pypbx recordings verify
    """
    checked, found = on_db(ctx, retention.verify)
    if as_json:
        echo_json(
            {
                "checked": checked,
                "problems": [{"call_id": f.call_id, "path": f.path, "problem": f.problem.value} for f in found],
            }
        )
    else:
        for f in found:
            click.echo(f"{f.problem.value.upper()}: call {f.call_id}: {f.path}")
        click.echo(f"{checked} recording(s) checked, {len(found)} problem(s).")
    if any(f.problem is not retention.Problem.NO_CHECKSUM for f in found):
        raise SystemExit(1)


@recordings.command("show")
@config_option
@click.argument("call_id")
@json_option
@click.pass_context
def show(ctx: click.Context, call_id: str, as_json: bool) -> None:
    """A recording's file, format, size, hold and (once deleted) when and why.

    Example: pypbx recordings show 3f2a9c1e
    """
    row = on_db(ctx, retention.recording, call_id)
    if as_json:
        echo_json(row)
        return
    lines = [
        ("file", row["path"]),
        ("format", row["format"]),
        ("status", row["status"]),
        ("seconds", f"{row['seconds'] or 0:.1f}"),
        ("bytes", str(row["bytes"] or 0)),
        ("held", f"since {ts(row['held_at'])} {row['hold_reason']}".rstrip() if row["held_at"] else "no"),
    ]
    if row["deleted_at"] is not None:
        lines.append(("deleted", retention.books_line(row)))
    click.echo(table(["", ""], lines))


@recordings.command("play")
@config_option
@click.argument("call_id")
@click.option(
    "--out", "out", type=click.Path(dir_okay=False), default=None, help="Write a WAV file instead of playing."
)
@click.pass_context
def play(ctx: click.Context, call_id: str, out: str | None) -> None:
    """Play a call's recording (WAV, FLAC or Opus) with aplay/paplay/ffplay, or write it as
    a WAV file with --out.

    Example: pypbx recordings play 3f2a9c1e --out /tmp/call.wav
    """
    row = on_db(ctx, retention.recording, call_id)
    if row["deleted_at"] is not None:
        raise PbxError(f"call {call_id}: {retention.books_line(row)}")
    src = Path(row["path"])
    if not src.is_file():
        raise PbxError(f"call {call_id}: recording file missing: {src}")
    try:
        wav = retention.decode_to_wav(src)
    except (OSError, RuntimeError) as e:
        raise PbxError(f"call {call_id}: cannot decode {src}: {e}") from None
    if out is not None:
        Path(out).write_bytes(wav)
        click.echo(f"Wrote {out} ({retention.duration(out):.1f} s).")
        return
    player = next((p for p in PLAYERS if shutil.which(p[0])), None)
    if player is None:
        raise PbxError("no audio player found (aplay, paplay, ffplay): use --out FILE.wav")
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        tmp.write(wav)
        tmp.flush()
        subprocess.run([*player, tmp.name], check=False)
