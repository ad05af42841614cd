"""pypbx as a real service (issue 13): the systemd unit, readiness and watchdog (sd_notify
over ``$NOTIFY_SOCKET``, no dependency), the files holding secrets kept from other users.

* :func:`render_unit` fills the shipped template (``pypbx/contrib/pypbx.service``).
* :func:`install` writes it, creates the ``pypbx`` system user, hands it the data directory
  and lets it read the config (root-owned, group ``pypbx``, mode 0640).
* :func:`secure_files` runs at every start of ``pypbx run``: the database (and its WAL),
  ``web_secret``, the config file (trunk and SMTP passwords) and the data directory lose any
  access by other users; one WARNING line names what was fixed.
* :func:`notify`: ``READY=1`` once the PBX serves, ``WATCHDOG=1`` while its loop runs,
  ``STOPPING=1`` on the way out. Without ``$NOTIFY_SOCKET`` (not under systemd) nothing.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

from pypbx import contrib
from pypbx.config import Config
from pypbx.errors import PbxError

log = logging.getLogger(__name__)

UNIT_NAME = "pypbx.service"
DEFAULT_USER = "pypbx"
DEFAULT_BACKUP_DIR = Path("/var/backups/pypbx")
#: names under the data directory that hold secrets: 0600
SECRET_FILES = ("pypbx.db", "pypbx.db-wal", "pypbx.db-shm", "web_secret")


# --------------------------------------------------------------------------- sd_notify


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``...) to systemd; False when
    not run by systemd (no ``$NOTIFY_SOCKET``) or the socket is gone."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), addr)
    except OSError as e:
        log.debug("sd_notify %s: %s", state, e)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the unit's ``WatchdogSec`` (systemd's advice), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


# --------------------------------------------------------------------------- file modes


def _tighten(path: Path, mode: int) -> bool:
    """Take away the bits ``mode`` does not allow; True when something changed."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    want = stat.S_IMODE(st.st_mode) & mode
    if want == stat.S_IMODE(st.st_mode):
        return False
    os.chmod(path, want)
    return True


def secure_files(cfg: Config) -> list[Path]:
    """Secrets not readable by others: the data directory 0750 at most (0700 bits for the
    owner), the database and web secret 0600, the config file 0640. Returns what was fixed."""
    fixed = []
    checks = [(cfg.data_dir, 0o750), (cfg.config_path, 0o640)]
    checks += [(cfg.data_dir / n, 0o600) for n in SECRET_FILES]
    checks += [(cfg.data_dir / d, 0o750) for d in ("recordings", "voicemail", "prompts")]
    for path, mode in checks:
        try:
            if _tighten(path, mode):
                fixed.append(path)
        except PermissionError:
            log.warning("cannot restrict %s (owned by another user): chmod o-rwx it", path)
    if fixed:
        log.warning("files readable by other users fixed (now 0600/0640/0750): %s", ", ".join(str(p) for p in fixed))
    return fixed


# --------------------------------------------------------------------------- the unit


def pypbx_executable() -> Path:
    """The ``pypbx`` script of this installation (the venv's)."""
    here = Path(sys.executable).parent / "pypbx"
    found = here if here.exists() else shutil.which("pypbx")
    if not found:
        raise PbxError("cannot find the pypbx command of this installation")
    return Path(found).absolute()


def render_unit(cfg: Config, *, user: str = DEFAULT_USER, backup_dir: Path = DEFAULT_BACKUP_DIR) -> str:
    text = contrib.text("pypbx.service")
    for key, value in {
        "@USER@": user,
        "@PYPBX@": str(pypbx_executable()),
        "@CONFIG@": str(cfg.config_path),
        "@DATA_DIR@": str(cfg.data_dir),
        "@BACKUP_DIR@": str(backup_dir),
    }.items():
        text = text.replace(key, value)
    return text


def _run(args: list[str]) -> None:
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise PbxError(f"{' '.join(args)} failed: {(res.stderr or res.stdout).strip()}")


def install(
    cfg: Config,
    *,
    user: str = DEFAULT_USER,
    unit_dir: Path = Path("/etc/systemd/system"),
    backup_dir: Path = DEFAULT_BACKUP_DIR,
) -> list[str]:
    """Write the unit, create the system user, set ownership and modes. Root only. Returns
    the steps done, for the admin to read."""
    if os.geteuid() != 0:
        raise PbxError("run 'pypbx service install' as root (sudo): it creates a user and writes to /etc")
    done = []
    try:
        pwd.getpwnam(user)
    except KeyError:
        _run(["useradd", "--system", "--home-dir", str(cfg.data_dir), "--shell", "/usr/sbin/nologin", user])
        done.append(f"created the system user {user}")
    pw = pwd.getpwnam(user)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(cfg.data_dir):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    os.chown(cfg.data_dir, pw.pw_uid, pw.pw_gid)
    os.chmod(cfg.data_dir, 0o750)
    done.append(f"{cfg.data_dir} belongs to {user} (0750)")
    os.chown(cfg.config_path, 0, pw.pw_gid)
    os.chmod(cfg.config_path, 0o640)
    done.append(f"{cfg.config_path}: root:{user} 0640 (readable by the PBX, not by others)")
    if backup_dir.exists():
        os.chown(backup_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(backup_dir, 0o700)
        done.append(f"{backup_dir} belongs to {user} (0700)")
    unit = unit_dir / UNIT_NAME
    unit.write_text(render_unit(cfg, user=user, backup_dir=backup_dir))
    os.chmod(unit, 0o644)
    done.append(f"wrote {unit}")
    return done
