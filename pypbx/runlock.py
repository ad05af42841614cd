"""One running PBX per data directory: an exclusive ``flock`` on ``<data_dir>/pypbx.lock``.

``pypbx run`` takes the lock before anything else starts (workers, sockets, database
migrations) and holds it for the life of the process; the kernel releases it when the
process ends, however it ends, so a file left by a killed PBX never blocks the next one.
The holder's pid is written in the file, for the message a second ``pypbx run`` prints.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tomllib
from pathlib import Path

from pypbx.errors import PbxError

__all__ = ["LOCK_NAME", "AlreadyRunning", "acquire", "release"]

LOCK_NAME = "pypbx.lock"
_held: dict[Path, int] = {}  # lock path -> open descriptor, for this process


class AlreadyRunning(PbxError):
    """Another process holds the data directory's lock."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"pypbx is already running on this data directory{who}")


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(raw) if raw.isdigit() else None


def acquire(data_dir: Path) -> Path:
    """Take the lock of ``data_dir`` (created if missing) for this process; idempotent.

    Raises :class:`AlreadyRunning` at once (never waits) when another process holds it,
    :class:`PbxError` when the directory or file cannot be created.
    """
    path = (data_dir / LOCK_NAME).absolute()
    if path in _held:
        return path
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise PbxError(f"cannot create the lock file {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise AlreadyRunning(pid) from None
    except OSError as e:
        os.close(fd)
        raise PbxError(f"cannot lock {path}: {e.strerror or e}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    _held[path] = fd
    return path


def release(data_dir: Path) -> None:
    """Give the lock back (the process ending does the same)."""
    path = (data_dir / LOCK_NAME).absolute()
    fd = _held.pop(path, None)
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _argv_config(argv: list[str]) -> tuple[bool, str | None]:
    """(is this ``pypbx run``?, its ``--config`` value) from the raw arguments."""
    is_run = False
    config: str | None = None
    it = iter(argv)
    for a in it:
        if a == "--config":
            config = next(it, None)
        elif a.startswith("--config="):
            config = a.split("=", 1)[1]
        elif a.startswith("-"):
            continue
        elif not is_run:
            if a != "run":
                return False, None
            is_run = True
    return is_run, config


def preflight(argv: list[str]) -> None:
    """``pypbx run`` on a data directory that is in use: say so at once and exit 1, before
    the CLI (and the whole runtime) is imported. Anything unclear (no such config, a bad
    one) is left to the normal path, which reports it; this check only ever exits for a
    held lock, and holds nothing afterwards."""
    is_run, option = _argv_config(argv)
    if not is_run or "--help" in argv or "-h" in argv:
        return

    value = option or os.environ.get("PYPBX_CONFIG") or "pypbx.toml"
    cfg_path = Path(value).expanduser().absolute()
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    data_dir = raw.get("data_dir", "./var")
    if not isinstance(data_dir, str) or not data_dir:
        return
    path = (cfg_path.parent / Path(data_dir).expanduser()).resolve() / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: nothing ran here yet
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        msg = str(AlreadyRunning(_read_pid(fd)))
        os.close(fd)
        print(f"Error: {msg}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError:
        pass
    os.close(fd)  # closing the descriptor releases a lock taken just now
