"""``pypbx backup`` (DEST, verify, status) and ``pypbx restore``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pypbx import backup as B
from pypbx.cli.context import config_option, config_path, load, on_db
from pypbx.cli.output import echo_json, json_option, ts
from pypbx.db import Database


class _BackupGroup(click.Group):
    """``pypbx backup DEST ...`` runs a backup; ``pypbx backup verify|status ...`` the others."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["now", *args]
        return super().parse_args(ctx, args)


async def _set_schedule(db: Database, sched: B.Schedule | None) -> None:
    await db.set_meta(B.SCHEDULE_KEY, json.dumps(sched) if sched else "")


async def _get(db: Database) -> tuple[B.Schedule | None, B.LastBackup | None]:
    return B.loads_schedule(await db.get_meta(B.SCHEDULE_KEY)), B.loads_last(await db.get_meta(B.LAST_KEY))


async def _set_last(db: Database, last: B.LastBackup) -> None:
    await db.set_meta(B.LAST_KEY, json.dumps(last))


@click.group("backup", cls=_BackupGroup)
def backup_group() -> None:
    """Back up the PBX (database, config, prompts, voicemail, recordings) to a directory,
    now or every day; verify a backup. `pypbx restore` brings one back.

    Example: pypbx backup /mnt/usb/pypbx-backup
    """


@backup_group.command("now", hidden=True)
@config_option
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--keep", type=click.IntRange(1), default=None, help="Then keep only the newest N backups.")
@click.option(
    "--schedule",
    nargs=2,
    metavar="daily HH:MM",
    default=None,
    help="Instead of backing up now: let `pypbx run` back up to DEST every day at HH:MM (site time).",
)
@click.option("--no-schedule", is_flag=True, help="Stop the daily backup.")
@json_option
@click.pass_context
def now(
    ctx: click.Context, dest: Path, keep: int | None, schedule: tuple[str, str] | None, no_schedule: bool, as_json: bool
) -> None:
    """Back up to DEST now (safe while calls are up), or set the daily schedule.

    Example: pypbx backup /mnt/usb/pypbx-backup --keep 14
    """
    cfg = load(ctx)
    if no_schedule:
        on_db(ctx, _set_schedule, None)
        click.echo("Daily backup off.")
        return
    if schedule is not None:
        every, at = schedule
        if every != "daily":
            raise B.BackupError(f"only 'daily' schedules exist, got {every!r}")
        sched: B.Schedule = {
            "dest": str(dest.expanduser().absolute()),
            "at": B.parse_at(at),
            "keep": keep or 14,
            "set_at": time.time(),
        }
        on_db(ctx, _set_schedule, sched)
        click.echo(
            f"Daily backup at {sched['at']} to {sched['dest']}, keeping {sched['keep']}"
            " (made by `pypbx run`; see `pypbx backup status`)."
        )
        return
    try:
        r = B.backup(cfg, dest, keep=keep)
    except B.BackupError as e:
        on_db(ctx, _set_last, {"ok": False, "at": time.time(), "dest": str(dest), "snapshot": "", "error": str(e)})
        raise
    on_db(ctx, _set_last, {"ok": True, "at": time.time(), "dest": str(dest), "snapshot": r.snapshot.name, "error": ""})
    if as_json:
        echo_json(
            {
                "snapshot": str(r.snapshot),
                "files": r.files,
                "copied": r.copied,
                "copied_bytes": r.copied_bytes,
                "seconds": r.seconds,
                "pruned": r.pruned,
            }
        )
        return
    click.echo(
        f"Backed up to {r.snapshot}: {r.files} files, {r.copied} new ({r.copied_bytes / 1e6:.1f} MB), {r.seconds:.1f} s."
    )
    if r.pruned:
        click.echo(f"Removed {len(r.pruned)} older backup(s).")


@backup_group.command("verify")
@config_option
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@json_option
@click.pass_context
def verify(ctx: click.Context, src: Path, as_json: bool) -> None:
    """Re-check a backup (the newest in SRC, or the snapshot SRC): every file's checksum and
    the database's integrity. Exit 1 when something is missing or corrupt.

    Example: pypbx backup verify /mnt/usb/pypbx-backup
    """
    rep = B.verify(src)
    if as_json:
        echo_json({"snapshot": str(rep.snapshot), "files": rep.files, "problems": [str(p) for p in rep.problems]})
    else:
        for p in rep.problems:
            click.echo(p)
        click.echo(f"{rep.snapshot}: {rep.files} files, {len(rep.problems)} problem(s).")
    if rep.problems:
        raise SystemExit(1)


@backup_group.command("status")
@config_option
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The daily schedule, the last backup and the backups at the scheduled destination.

    Example: pypbx backup status
    """
    sched, last = on_db(ctx, _get)
    snaps = [s.name for s in B.snapshots(Path(sched["dest"]))] if sched else []
    if as_json:
        echo_json({"schedule": sched, "last": last, "snapshots": snaps})
        return
    click.echo(
        f"Schedule: daily at {sched['at']} to {sched['dest']}, keep {sched['keep']}" if sched else "Schedule: none"
    )
    if last:
        what = f"ok, {last['snapshot']}" if last["ok"] else f"FAILED: {last['error']}"
        click.echo(f"Last backup: {ts(last['at'])} to {last['dest']} ({what})")
    else:
        click.echo("Last backup: never")
    if sched:
        click.echo(f"Backups there: {len(snaps)}" + (f" (newest {snaps[-1]})" if snaps else ""))


@click.command("restore")
@config_option
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Restore into this (empty) directory instead of the config's data_dir.",
)
@json_option
@click.pass_context
def restore(ctx: click.Context, src: Path, data_dir: Path | None, as_json: bool) -> None:
    """Restore a backup (the newest in SRC, or the snapshot SRC) into an empty data
    directory. Refuses a directory a running PBX holds. When the config file (--config)
    does not exist yet, the backed-up one is written there.

    Example: pypbx restore /mnt/usb/pypbx-backup --config /etc/pypbx/pypbx.toml
    """
    r = B.restore(src, config_path(ctx), data_dir)
    if as_json:
        echo_json(
            {
                "snapshot": r.snapshot.name,
                "data_dir": str(r.data_dir),
                "files": r.files,
                "config_written": str(r.config_written) if r.config_written else None,
            }
        )
        return
    if r.config_written:
        click.echo(f"Wrote the backed-up config to {r.config_written}.")
    click.echo(f"Restored {r.snapshot.name} into {r.data_dir}: the database and {r.files} files.")
