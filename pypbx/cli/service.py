"""``pypbx service``: run pypbx as a systemd service (unit, install) and the fail2ban files."""

from __future__ import annotations

from pathlib import Path

import click

from pypbx import contrib
from pypbx import service as S
from pypbx.cli.context import config_option, load
from pypbx.cli.output import echo_json, json_option
from pypbx.errors import PbxError

FAIL2BAN_FILES = {"fail2ban-filter.conf": "filter.d/pypbx.conf", "fail2ban-jail.conf": "jail.d/pypbx.conf"}


@click.group("service")
def service() -> None:
    """Run pypbx as a systemd service; the fail2ban filter and jail."""


_backup_dir = click.option(
    "--backup-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=S.DEFAULT_BACKUP_DIR,
    show_default=True,
    help="Backup destination the service may write to.",
)


@service.command("unit")
@config_option
@click.option("--user", default=S.DEFAULT_USER, show_default=True, help="The system user the PBX runs as.")
@_backup_dir
@click.pass_context
def unit(ctx: click.Context, user: str, backup_dir: Path) -> None:
    """Print the systemd unit for this installation and config (nothing is written).

    Example: pypbx service unit --config /etc/pypbx/pypbx.toml
    """
    click.echo(S.render_unit(load(ctx), user=user, backup_dir=backup_dir), nl=False)


@service.command("install")
@config_option
@click.option("--user", default=S.DEFAULT_USER, show_default=True, help="The system user the PBX runs as.")
@_backup_dir
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/systemd/system"),
    show_default=True,
    help="Where the unit file goes.",
)
@json_option
@click.pass_context
def install(ctx: click.Context, user: str, backup_dir: Path, unit_dir: Path, as_json: bool) -> None:
    """Install the systemd service (as root): the pypbx system user, ownership of the data
    directory, config 0640, /etc/systemd/system/pypbx.service. Then start it with
    `systemctl daemon-reload && systemctl enable --now pypbx`.

    Example: sudo /opt/pypbx/bin/pypbx service install --config /etc/pypbx/pypbx.toml
    """
    done_lines = list(S.install(load(ctx), user=user, unit_dir=unit_dir, backup_dir=backup_dir))
    if as_json:
        echo_json({"done": done_lines, "next": "systemctl daemon-reload && systemctl enable --now pypbx"})
        return
    for line in done_lines:
        click.echo(line)
    click.echo("Now: systemctl daemon-reload && systemctl enable --now pypbx")


@service.command("fail2ban")
@click.option(
    "--install",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the filter and jail under this fail2ban directory (e.g. /etc/fail2ban).",
)
def fail2ban(target: Path | None) -> None:
    """Print (or install) the fail2ban filter and jail that read pypbx's security log lines
    (journald, the systemd unit's).

    Example: sudo pypbx service fail2ban --install /etc/fail2ban
    """
    if target is None:
        for name, where in FAIL2BAN_FILES.items():
            click.echo(f"# ---- {where}")
            click.echo(contrib.text(name))
        return
    if not target.is_dir():
        raise PbxError(f"{target} is not a directory (is fail2ban installed?)")
    for name, where in FAIL2BAN_FILES.items():
        out = target / where
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(contrib.text(name))
        click.echo(f"wrote {out}")
    click.echo("Now: systemctl reload fail2ban")
