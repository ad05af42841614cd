"""pypbx as a real service (pypbx.service, pypbx/contrib): the systemd unit (accepted by
systemd-analyze), sd_notify over a real socket, secret files' modes, the fail2ban filter
against the log lines the code writes, `pypbx service`."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from pypbx import contrib
from pypbx import service as S
from pypbx.config import load_config
from pypbx.web import accounts
from sip.guard import AbuseGuard

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # pypbx.app.setup_logging's


def failregexes() -> list[str]:
    """The filter's failregex lines, fail2ban's <HOST> as a named group."""
    text = contrib.text("fail2ban-filter.conf")
    body = text.split("failregex =", 1)[1].split("ignoreregex", 1)[0]
    return [ln.strip().replace("<HOST>", r"(?P<host>[\w.:\[\]-]+)") for ln in body.splitlines() if ln.strip()]


def matched(lines: list[str]) -> list[str]:
    rx = [re.compile(r) for r in failregexes()]
    out = []
    for line in lines:
        for r in rx:
            m = r.search(line)
            if m:
                out.append(m.group("host"))
                break
    return out


def test_unit_is_accepted_by_systemd_analyze(tmp_config: Path, tmp_path: Path) -> None:
    text = S.render_unit(load_config(tmp_config), backup_dir=tmp_path / "bk")
    assert "@" not in "".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    for line in ("Type=notify", "WatchdogSec=60", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"):
        assert line in text.splitlines()
    assert f"ReadWritePaths={load_config(tmp_config).data_dir}" in text
    assert f"ExecStart={S.pypbx_executable()} run --config {tmp_config}" in text
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "pypbx.service"
    unit.write_text(text)
    res = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "pypbx.service" not in res.stderr, res.stderr


def test_sd_notify_reaches_the_socket(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert S.notify("READY=1")
        assert srv.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not S.notify("READY=1")
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert S.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert S.watchdog_interval() is None


def test_secret_files_are_fixed_with_one_warning(tmp_config: Path, caplog) -> None:
    cfg = load_config(tmp_config)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("pypbx.db", "web_secret"):
        (cfg.data_dir / name).write_bytes(b"x")
        os.chmod(cfg.data_dir / name, 0o644)
    os.chmod(cfg.data_dir, 0o755)
    os.chmod(tmp_config, 0o666)
    caplog.set_level(logging.WARNING, logger="pypbx.service")
    fixed = S.secure_files(cfg)
    assert set(fixed) == {cfg.data_dir, tmp_config, cfg.data_dir / "pypbx.db", cfg.data_dir / "web_secret"}
    assert [os.stat(p).st_mode & 0o777 for p in (cfg.data_dir / "pypbx.db", cfg.data_dir / "web_secret")] == [
        0o600,
        0o600,
    ]
    assert os.stat(tmp_config).st_mode & 0o777 == 0o640 and os.stat(cfg.data_dir).st_mode & 0o777 == 0o750
    assert len(caplog.records) == 1 and "readable by other users fixed" in caplog.records[0].getMessage()
    assert S.secure_files(cfg) == []  # nothing left to fix: no line


def test_fail2ban_filter_matches_every_failure_line_the_code_writes_and_no_other() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger("pypbx.security"), logging.getLogger(accounts.__name__)]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        g = AbuseGuard(auth_fail_limit=3, auth_fail_window=60, ban_time=600)
        for i in range(3):
            g.auth_failed("203.0.113.7", float(i), user=f"10{i}", method="REGISTER")
        g.auth_failed("2001:db8::7", 10.0, user="1001", method="INVITE")
        g.check_request("203.0.113.8", "friendly-scanner", 20.0)
        g.purge(10_000.0)  # the ban ends: an "unbanned" line
        accounts.log.warning('SECURITY auth-failed ip=%s user="%s" method=HTTP', "203.0.113.9", "alice")
        logging.getLogger("pypbx.registrar").info("registered 1001 contact=sip:1001@192.0.2.1 expires=3600")
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    lines = buf.getvalue().splitlines()
    failures = [ln for ln in lines if "auth-failed" in ln or "scanner-dropped" in ln]
    assert len(failures) == 6
    assert matched(failures) == ["203.0.113.7"] * 3 + ["2001:db8::7", "203.0.113.8", "203.0.113.9"]
    others = [ln for ln in lines if ln not in failures]
    assert others and matched(others) == []  # the ban's own lines, a registration: never


def test_cli_service_unit_and_fail2ban_files(invoke_cli, tmp_config: Path, tmp_path: Path, monkeypatch) -> None:
    r = invoke_cli("service", "unit", "--config", str(tmp_config))
    assert r.exit_code == 0 and "Type=notify" in r.output
    r = invoke_cli("service", "fail2ban", "--install", str(tmp_path))
    assert r.exit_code == 0
    assert (tmp_path / "filter.d" / "pypbx.conf").read_text() == contrib.text("fail2ban-filter.conf")
    assert "backend  = systemd" in (tmp_path / "jail.d" / "pypbx.conf").read_text()
    r = invoke_cli("service", "fail2ban", "--install", str(tmp_path / "nope"))
    assert r.exit_code == 1 and "not a directory" in r.output
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = invoke_cli("service", "install", "--config", str(tmp_config))
    assert r.exit_code == 1 and r.output.strip().startswith("Error: run 'pypbx service install' as root")
