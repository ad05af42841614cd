"""``pypbx doctor`` (pypbx.doctor): each check's OK / WARN / FAIL and the exit code by the
worst; a filled disk (a real 3 MB tmpfs as the data directory: root only) and a taken port
are FAIL through the CLI, with --json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from pypbx import doctor as D
from pypbx.config import load_config
from tests.conftest import free_port

MB = 1_000_000


def test_disk_levels_and_days_left(make_config: Callable[..., Path]) -> None:
    cfg = load_config(make_config(calls={"min_free_mb": 200}, alerts={"disk_min_free_mb": 2000}))
    assert D.disk_check(cfg, 100 * MB, 0, 0.5).level is D.Level.FAIL
    assert D.disk_check(cfg, 1500 * MB, 0, 0.5).level is D.Level.WARN
    # 10 GB free, 1 GB recorded in the first half of today: 2 GB a day, 5 days left
    c = D.disk_check(cfg, 10_000 * MB, 1_000 * MB, 0.5)
    assert c.level is D.Level.WARN and "about 5 days at today's rate" in c.detail
    c = D.disk_check(cfg, 100_000 * MB, 1_000 * MB, 0.5)
    assert c.level is D.Level.OK and "about 50 days" in c.detail


def test_trunks_workers_clock_and_worst() -> None:
    up = {"name": "prov", "enabled": True, "state": "registered", "last_reason": ""}
    down = {"name": "backup", "enabled": True, "state": "failed", "last_reason": "403 Forbidden"}
    assert D.trunks_check({"trunks": [up]}).level is D.Level.OK
    c = D.trunks_check({"trunks": [up, down]})
    assert c.level is D.Level.FAIL and c.detail == "not registered: backup failed (403 Forbidden)"
    assert D.trunks_check(None).level is D.Level.WARN
    assert D.workers_check({"workers": {"workers": 0, "busy": 0, "max": 8}}).level is D.Level.FAIL
    assert D.workers_check({"workers": {"workers": 8, "busy": 8, "max": 8}}).level is D.Level.WARN
    assert D.workers_check({"workers": {"workers": 2, "busy": 0, "max": 8}}).level is D.Level.OK
    assert [D.clock_check(v).level for v in (True, False, None)] == [D.Level.OK, D.Level.WARN, D.Level.WARN]
    checks = [D.Check("a", D.Level.OK, ""), D.Check("b", D.Level.WARN, ""), D.Check("c", D.Level.FAIL, "")]
    assert D.worst(checks) is D.Level.FAIL and D.worst(checks[:2]) is D.Level.WARN and D.worst([]) is D.Level.OK


def _cert(tmp_path: Path, days: int) -> Path:
    cert = tmp_path / f"cert{days}.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=pbx",
            "-keyout",
            str(tmp_path / f"key{days}.pem"),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert


def test_certificates_expiring_and_unreadable(make_config: Callable[..., Path], tmp_path: Path) -> None:
    soon, later = _cert(tmp_path, 10), _cert(tmp_path, 400)
    key = tmp_path / "key10.pem"
    cfg = load_config(make_config(web={"port": free_port("tcp"), "tls_cert": str(soon), "tls_key": str(key)}))
    now = D.cert_not_after(soon) - 10 * 86400 + 60
    c = D.certificates_check(cfg, now)
    assert c.level is D.Level.WARN and "web desk ends in 10 days" in c.detail
    assert D.certificates_check(cfg, D.cert_not_after(soon) + 60).level is D.Level.FAIL  # expired
    cfg = load_config(make_config(web={"port": free_port("tcp"), "tls_cert": str(later), "tls_key": str(key)}))
    assert D.certificates_check(cfg, now).level is D.Level.OK
    (tmp_path / "bad.pem").write_text("not a certificate")
    cfg = load_config(
        make_config(web={"port": free_port("tcp"), "tls_cert": str(tmp_path / "bad.pem"), "tls_key": str(key)})
    )
    c = D.certificates_check(cfg, now)
    assert c.level is D.Level.FAIL and "unreadable" in c.detail


def doctor(config: Path) -> tuple[int, dict[str, dict[str, str]]]:
    res = CliRunner().invoke(cli, ["doctor", "--json", "--config", str(config)])
    out = json.loads(res.stdout)
    return res.exit_code, {c["check"]: c for c in out["checks"]}


def test_a_taken_sip_port_is_fail_and_the_exit_code_is_the_worst(make_config: Callable[..., Path]) -> None:
    config = make_config()
    cfg = load_config(config)
    code, checks = doctor(config)
    assert checks["ports"]["level"] == "OK" and checks["pbx"]["level"] == "WARN" and code == 1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((cfg.sip.bind, cfg.sip.udp_port))
    try:
        code, checks = doctor(config)
    finally:
        s.close()
    assert code == 2 and checks["ports"]["level"] == "FAIL"
    assert checks["ports"]["detail"].startswith(f"taken by another program: {cfg.sip.udp_port}/udp (SIP)")
    assert checks["database"] == {"check": "database", "level": "OK", "detail": f"integrity ok ({cfg.db_path})"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the data directory")
    mnt = tmp_path / "var"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_filled_disk_is_fail(make_config: Callable[..., Path], small_disk: Path) -> None:
    config = make_config(data_dir=str(small_disk), calls={"min_free_mb": 1}, alerts={"disk_min_free_mb": 2})
    code, checks = doctor(config)  # 3 MB, the new database in it: about 2.9 MB free -> OK
    assert checks["disk"]["level"] == "OK", checks["disk"]
    with open(small_disk / "filler", "wb") as f:  # the disk fills up
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    code, checks = doctor(config)
    assert code == 2 and checks["disk"]["level"] == "FAIL"
    assert "below [calls] min_free_mb (1 MB), recordings stop" in checks["disk"]["detail"]
