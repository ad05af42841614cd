"""An alert raised and resolved by a real ``pypbx run``: a caller waits in a queue while none
of its agents is logged in ([alerts] nobody_answering_after) -> one "raised" alert in
``pypbx alerts list --json`` and the log; the caller gone -> "resolved"."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import PbxProcess, free_port
from tests.integration.test_proxy_calls import PASSWORD
from tests.integration.test_queue_calls import caller, setup_queue

pytestmark = pytest.mark.slow


def test_callers_waiting_with_nobody_logged_in_raise_then_resolve_an_alert(tmp_path: Path) -> None:
    p = PbxProcess(
        tmp_path / "pbx",
        security={"exempt": ["127.0.0.1"]},
        alerts={"nobody_answering_after": 2, "check_seconds": 1},
    )
    p.add_extensions(["1009"], PASSWORD)
    setup_queue(p, agents=("alice",))  # alice never logs in
    p.start()
    results: list[Any] = []
    try:
        t = threading.Thread(target=lambda: results.append(caller(p, tmp_path / "c1", stay_ms=6000)), daemon=True)
        t.start()

        def alerts() -> list[dict[str, Any]]:
            return [a for a in json.loads(p.cli("alerts", "list", "--json").stdout) if a["kind"] == "nobody_answering"]

        [raised] = p.wait_for(alerts, 15, "the alert")
        assert raised["subject"] == "front" and raised["resolved_at"] is None
        assert "no agent logged in" in raised["message"]
        t.join(40)
        assert [r.returncode for r in results] == [0], [r.errors or r.stdout[-2000:] for r in results]
        [done] = p.wait_for(lambda: [a for a in alerts() if a["resolved_at"] is not None], 15, "the resolution")
        assert done["id"] == raised["id"]  # the same episode: one alert, then resolved
    finally:
        p.stop()
    log = p.log()
    assert "Traceback" not in log, log[-4000:]
    assert log.count("ALERT nobody_answering front:") == 1 and log.count("alert nobody_answering front resolved") == 1
    p.check_events()


def test_a_trunk_whose_provider_stops_answering_raises_one_alert_and_one_resolved(tmp_path: Path) -> None:
    """The provider's registrar stops answering (the REGISTER times out after 32 s, RFC 3261
    Timer F), then comes back and accepts the PBX's next try (the trunk's own backoff, 10 s;
    digest as usual): one alert raised, one resolved, for the same episode."""
    from tests.integration.test_trunks import PROVIDER, Provider

    port = free_port("both", PROVIDER)
    bad = Provider("trunk_registrar_silent.xml", tmp_path / "prov1", port=port)
    p = PbxProcess(
        tmp_path / "pbx", security={"exempt": ["127.0.0.1"]}, alerts={"trunk_down_after": 1, "check_seconds": 1}
    )
    p.cli(
        "trunk",
        "add",
        "prov",
        "--host",
        f"{PROVIDER}:{port}",
        "--username",
        "clinic",
        "--password",
        "trunk-secret-1",
        "--domain",
        "fake.provider",
    )
    p.start()
    good = None
    try:

        def alerts() -> list[dict[str, Any]]:
            return [a for a in json.loads(p.cli("alerts", "list", "--json").stdout) if a["kind"] == "trunk_down"]

        [raised] = p.wait_for(alerts, 60, "the trunk alert")
        assert raised["subject"] == "prov" and "timeout" in raised["message"]
        bad.kill()
        good = Provider("trunk_registrar.xml", tmp_path / "prov2", port=port)
        [done] = p.wait_for(lambda: [a for a in alerts() if a["resolved_at"] is not None], 40, "the resolution")
        assert done["id"] == raised["id"]
        assert json.loads(p.cli("trunk", "list", "--json").stdout)[0]["state"] == "registered"
    finally:
        p.stop()
        bad.kill()
        if good is not None:
            good.kill()
    log = p.log()
    assert "Traceback" not in log, log[-4000:]
    assert log.count("ALERT trunk_down prov:") == 1 and log.count("alert trunk_down prov resolved") == 1


def test_doctor_on_a_running_pbx_reports_a_filled_disk_as_fail(tmp_path: Path) -> None:
    """``pypbx doctor --json`` against a running PBX whose data directory is a small tmpfs
    (root only): OK while there is room; the disk filled to the last byte -> disk FAIL, exit 2,
    the PBX itself still reported running; room again -> OK."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the data directory")
    var = tmp_path / "pbx" / "var"
    var.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(var)], check=True)
    p = PbxProcess(tmp_path / "pbx", calls={"min_free_mb": 2}, alerts={"disk_min_free_mb": 4})
    try:
        p.start()

        def doctor() -> tuple[int, dict[str, dict[str, str]]]:
            res = p.cli("doctor", "--json", check=False)
            return res.returncode, {c["check"]: c for c in json.loads(res.stdout)["checks"]}

        code, checks = doctor()
        assert checks["pbx"]["level"] == "OK" and checks["disk"]["level"] == "OK", checks
        filler = var / "filler"
        with open(filler, "wb") as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
        code, checks = doctor()
        assert code == 2 and checks["disk"]["level"] == "FAIL" and checks["pbx"]["level"] == "OK", checks
        assert "recordings stop" in checks["disk"]["detail"]
        filler.unlink()
        code, checks = doctor()
        assert checks["disk"]["level"] == "OK"
    finally:
        p.stop()
        subprocess.run(["umount", str(var)], check=False)
