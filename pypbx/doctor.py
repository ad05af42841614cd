"""``pypbx doctor``: is this PBX healthy, in lines a non-specialist can act on.

Each check gives OK, WARN or FAIL with one line saying why and what to do. The exit code is
the worst level — 0 OK, 1 WARN, 2 FAIL, the monitoring plugins' convention (Nagios, Icinga,
Zabbix agents) — so a cron job or a monitor can run ``pypbx doctor --json`` as it is.

Checks: the PBX running (its local API), its ports (listening when it runs; free when it
does not), the disk of the data directory (free space against ``[calls] min_free_mb`` and
``[alerts] disk_min_free_mb``, and the days left at today's recording rate), the database's
integrity (``PRAGMA quick_check``), trunks registered, media workers, the clock synchronised
(systemd-timesyncd / chrony via ``timedatectl``), TLS certificates' expiry, failing webhook
endpoints and open alerts.
"""

from __future__ import annotations

import enum
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from pypbx import sitetime
from pypbx.config import Config
from pypbx.db import Database

#: a certificate this close to its end is a warning
CERT_WARN_DAYS = 21
#: fewer days of disk than this at today's recording rate is a warning
DISK_WARN_DAYS = 14


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str


class CheckDict(TypedDict):
    check: str
    level: str
    detail: str


def as_dict(c: Check) -> CheckDict:
    return {"check": c.name, "level": c.level.name, "detail": c.detail}


def worst(checks: list[Check]) -> Level:
    return max((c.level for c in checks), default=Level.OK)


# ------------------------------------------------------------------ the checks (pure where they can be)


def pbx_check(status: Mapping[str, object] | None, error: str = "") -> Check:
    if status is None:
        return Check("pbx", Level.WARN, f"{error or 'pypbx is not running'}; start it with pypbx run")
    return Check("pbx", Level.OK, f"running, pid {status.get('pid')}, up {status.get('uptime')} s")


def _port_free(kind: int, host: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ports_check(cfg: Config, status: Mapping[str, object] | None) -> Check:
    """Running: what it listens on. Not running: the ports it needs are free now."""
    if status is not None:
        ts = status.get("transports")
        listening = (
            [f"{t.get('transport')} {t.get('host')}:{t.get('port')}" for t in ts if isinstance(t, Mapping)]
            if isinstance(ts, list)
            else []
        )
        if not listening:
            return Check("ports", Level.FAIL, "the PBX runs but listens on no SIP transport")
        return Check("ports", Level.OK, "listening on " + ", ".join(listening))
    wanted: list[tuple[int, str, int, str]] = []
    if cfg.sip.udp_port:
        wanted.append((socket.SOCK_DGRAM, cfg.sip.bind, cfg.sip.udp_port, f"{cfg.sip.udp_port}/udp (SIP)"))
    if cfg.sip.tcp_port:
        wanted.append((socket.SOCK_STREAM, cfg.sip.bind, cfg.sip.tcp_port, f"{cfg.sip.tcp_port}/tcp (SIP)"))
    if cfg.web.enabled:
        wanted.append((socket.SOCK_STREAM, cfg.web.bind, cfg.web.port, f"{cfg.web.port}/tcp (web desk)"))
    taken = [label for kind, host, port, label in wanted if not _port_free(kind, host, port)]
    if taken:
        return Check("ports", Level.FAIL, f"taken by another program: {', '.join(taken)} (ss -lntup shows which)")
    return Check("ports", Level.OK, "free: " + ", ".join(label for *_, label in wanted))


def disk_check(cfg: Config, free_bytes: int, recorded_today: int, day_fraction: float) -> Check:
    """Free space against the thresholds, and the days left at today's recording rate."""
    free_mb = free_bytes / 1e6
    fail_mb, warn_mb = cfg.calls.min_free_mb, cfg.alerts.disk_min_free_mb
    per_day = recorded_today / day_fraction if day_fraction > 0.05 and recorded_today > 0 else 0.0
    days = free_bytes / per_day if per_day else None
    left = f"; about {days:.0f} days at today's rate" if days is not None else ""
    where = f"{free_mb:,.0f} MB free on the disk of {cfg.data_dir}{left}"
    if free_mb < fail_mb:
        return Check("disk", Level.FAIL, f"{where}: below [calls] min_free_mb ({fail_mb} MB), recordings stop")
    if free_mb < warn_mb:
        return Check("disk", Level.WARN, f"{where}: below [alerts] disk_min_free_mb ({warn_mb} MB)")
    if days is not None and days < DISK_WARN_DAYS:
        return Check(
            "disk", Level.WARN, f"{where}: under {DISK_WARN_DAYS} days (recordings retention: keep_days, max_gb)"
        )
    return Check("disk", Level.OK, where)


def trunks_check(status: Mapping[str, object] | None) -> Check:
    if status is None:
        return Check("trunks", Level.WARN, "unknown: the PBX is not running")
    trunks = status.get("trunks")
    rows = [t for t in trunks if isinstance(t, Mapping)] if isinstance(trunks, list) else []
    if not rows:
        return Check("trunks", Level.OK, "no trunks configured")
    down = [
        f"{t.get('name')} {t.get('state')}" + (f" ({t.get('last_reason')})" if t.get("last_reason") else "")
        for t in rows
        if t.get("enabled") and t.get("state") not in ("registered", "ip-auth")
    ]
    if down:
        return Check("trunks", Level.FAIL, "not registered: " + "; ".join(down))
    return Check("trunks", Level.OK, ", ".join(f"{t.get('name')} {t.get('state')}" for t in rows))


def workers_check(status: Mapping[str, object] | None) -> Check:
    if status is None:
        return Check("workers", Level.WARN, "unknown: the PBX is not running")
    w = status.get("workers")
    if not isinstance(w, Mapping):
        return Check("workers", Level.WARN, "the PBX did not report its media workers")
    n, busy, mx = w.get("workers", 0), w.get("busy", 0), w.get("max", 0)
    if not n:
        return Check("workers", Level.FAIL, "no media worker running: calls cannot be answered (see the log)")
    if isinstance(busy, int) and isinstance(mx, int) and mx and busy >= mx:
        return Check("workers", Level.WARN, f"all {mx} workers busy: new calls are refused ([media] workers_max)")
    return Check("workers", Level.OK, f"{n} running, {busy} on calls, at most {mx}")


def clock_check(synced: bool | None) -> Check:
    if synced is None:
        return Check("clock", Level.WARN, "cannot tell whether the clock is synchronised (timedatectl gave no answer)")
    if not synced:
        return Check("clock", Level.WARN, "not synchronised: call times and reports drift (enable systemd-timesyncd)")
    return Check("clock", Level.OK, "synchronised")


def ntp_synchronised() -> bool | None:
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    return {"yes": True, "no": False}.get(value)


def cert_not_after(path: Path) -> float:
    """UNIX time a PEM certificate ends (its first certificate)."""
    decoded = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]  # the stdlib's own decoder
    return ssl.cert_time_to_seconds(decoded["notAfter"])


def certificates_check(cfg: Config, now: float) -> Check:
    certs = [(n, p) for n, p in (("SIP TLS", cfg.sip.tls_cert), ("web desk", cfg.web.tls_cert)) if p is not None]
    if not certs:
        return Check("certificates", Level.OK, "no TLS certificate configured")
    worst_level, parts = Level.OK, []
    for name, path in certs:
        try:
            end = cert_not_after(Path(path))
        except (OSError, ssl.SSLError, ValueError) as exc:
            worst_level = Level.FAIL
            parts.append(f"{name} {path}: unreadable ({exc})")
            continue
        days = (end - now) / 86400
        when = sitetime.local(end).strftime("%Y-%m-%d")
        if days < 0:
            worst_level = Level.FAIL
            parts.append(f"{name} expired on {when}")
        elif days < CERT_WARN_DAYS:
            worst_level = max(worst_level, Level.WARN)
            parts.append(f"{name} ends in {days:.0f} days ({when}): renew it")
        else:
            parts.append(f"{name} valid until {when}")
    return Check("certificates", worst_level, "; ".join(parts))


async def database_check(db: Database) -> Check:
    result = await db.integrity_check()
    if result == ["ok"]:
        return Check("database", Level.OK, f"integrity ok ({db.path})")
    return Check("database", Level.FAIL, f"integrity check failed: {'; '.join(result[:3])} (restore a backup)")


async def webhooks_check(db: Database) -> Check:
    failing = [r for r in await db.webhook_rows() if r["failing_since"] is not None]
    if not failing:
        return Check("webhooks", Level.OK, "none failing")
    return Check(
        "webhooks",
        Level.WARN,
        "failing: "
        + "; ".join(
            f"{r['id']} {r['url']} since {sitetime.local(r['failing_since'] or 0):%Y-%m-%d %H:%M}: {r['last_error']}"
            for r in failing
        ),
    )


async def alerts_check(db: Database) -> Check:
    rows = await db.alert_rows(open_only=True, limit=20)
    if not rows:
        return Check("alerts", Level.OK, "none open")
    return Check("alerts", Level.WARN, f"{len(rows)} open: see pypbx alerts list --open")


async def recorded_today(db: Database, now: float) -> tuple[int, float]:
    """(bytes of recordings made since the site's midnight, the fraction of the day gone)."""
    start = sitetime.day_start(sitetime.local(now).date())
    return await db.recording_bytes_since(start), max(0.0, (now - start) / 86400)


def free_bytes_of(path: Path) -> int:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


async def run(
    cfg: Config,
    db: Database | None,
    status: Mapping[str, object] | None,
    *,
    status_error: str = "",
    db_error: str = "",
    now: float | None = None,
    synced: bool | None = None,
) -> list[Check]:
    """Every check, in the order printed. ``db`` None: the database could not be opened
    (``db_error`` says why) — the checks that need it say so, the others still run."""
    t = time.time() if now is None else now
    made, frac = await recorded_today(db, t) if db is not None else (0, 0.0)
    checks = [
        pbx_check(status, status_error),
        ports_check(cfg, status),
        disk_check(cfg, free_bytes_of(cfg.data_dir), made, frac),
        await database_check(db) if db is not None else Check("database", Level.FAIL, db_error),
        trunks_check(status),
        workers_check(status),
        clock_check(synced),
        certificates_check(cfg, t),
    ]
    if db is not None:
        checks += [await webhooks_check(db), await alerts_check(db)]
    return checks
