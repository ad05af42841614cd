"""Trunks with a sipp-based fake provider against a real ``pypbx run``.

The provider lives on other loopback addresses (127.0.0.2, 127.0.0.3) than the phones
(127.0.0.1), so the front door tells trunk traffic from phones by source address, as it
does on a real network. Phones are sipp UAS registered as extensions (see
test_proxy_calls.Phone); outside calls come from a sipp phone authenticated by digest.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.harness import SIPP_DIR, PbxProcess, free_port, require_tool, run_sipp
from tests.integration.test_proxy_calls import Phone, call

pytestmark = pytest.mark.slow

PROVIDER = "127.0.0.2"
PROVIDER2 = "127.0.0.3"
DID = "+33123456789"


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx)."""
    return trunk_pbx


class Provider:
    """A sipp UAS playing the provider on ``ip``."""

    def __init__(
        self,
        scenario: str,
        workdir: Path,
        ip: str = PROVIDER,
        *,
        calls: int = 1,
        subst: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        sipp = require_tool("sipp")
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir
        self.ip = ip
        self.port = port or free_port("both", ip)
        sf = SIPP_DIR / scenario
        if subst:
            text = sf.read_text()
            for k, v in subst.items():
                text = text.replace(k, v)
            sf = workdir / scenario
            sf.write_text(text)
        with open(workdir / "provider.out", "w") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sipp,
                    "-sf",
                    str(sf),
                    "-t",
                    "u1",
                    "-i",
                    ip,
                    "-p",
                    str(self.port),
                    "-m",
                    str(calls),
                    "-nostdin",
                    "-trace_err",
                    "-timeout",
                    "40s",
                    "-timeout_error",
                ],
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        time.sleep(0.3)

    def wait(self, timeout: float = 40.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -1
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def errors(self) -> str:
        return (
            "".join(p.read_text(errors="replace") for p in self.dir.glob("*_errors.log"))
            + (self.dir / "provider.out").read_text(errors="replace")[-3000:]
        )


def calls_rows(p: PbxProcess) -> list[dict]:
    from pypbx.db import open_db

    async def go():
        async with open_db(p.cfg.db_path) as db:
            return await db.fetchall("SELECT * FROM calls ORDER BY offered_at")

    return asyncio.run(go())


def call_events(p: PbxProcess, call_id: str) -> list[dict]:
    from pypbx.db import open_db

    async def go():
        async with open_db(p.cfg.db_path) as db:
            return await db.call_event_rows(call_id)

    return asyncio.run(go())


def wait_closed(p: PbxProcess, n: int = 1, timeout: float = 15.0) -> list[dict]:
    return p.wait_for(
        lambda: (
            [r for r in calls_rows(p) if r["disposition"] != "in_progress"][:n]
            if len([r for r in calls_rows(p) if r["disposition"] != "in_progress"]) >= n
            else None
        ),
        timeout=timeout,
        what="the call record to close",
    )


def test_registration_with_digest(pbx, tmp_path):
    prov = Provider("trunk_registrar.xml", tmp_path / "prov")
    p = pbx()
    p.cli(
        "trunk",
        "add",
        "prov",
        "--host",
        f"{PROVIDER}:{prov.port}",
        "--username",
        "clinic",
        "--password",
        "trunk-secret-1",
        "--domain",
        "fake.provider",
        "--expires",
        "300",
    )
    p.start()
    try:
        rows = p.wait_for(
            lambda: [r for r in json.loads(p.cli("trunk", "list", "--json").stdout) if r["state"] == "registered"],
            timeout=10,
            what="the trunk to register",
        )
        assert rows[0]["name"] == "prov" and rows[0]["last_reason"].startswith("200")
        assert 0 < rows[0]["expires_in"] <= 120  # the provider granted 120 s
        assert prov.wait() == 0, prov.errors()
        st = p.status()
        assert st["trunks"][0]["state"] == "registered"
        assert "Trunk prov: registered" in p.cli("status").stdout
    finally:
        prov.kill()


def test_registration_wrong_password_fails(pbx, tmp_path):
    prov = Provider("trunk_registrar.xml", tmp_path / "prov")
    p = pbx()
    p.cli(
        "trunk",
        "add",
        "prov",
        "--host",
        f"{PROVIDER}:{prov.port}",
        "--username",
        "clinic",
        "--password",
        "not-the-password",
        "--domain",
        "fake.provider",
    )
    p.start()
    try:
        rows = p.wait_for(
            lambda: [r for r in json.loads(p.cli("trunk", "list", "--json").stdout) if r["state"] == "failed"],
            timeout=10,
            what="the registration to fail",
        )
        assert rows[0]["last_reason"] == "403 Forbidden"
    finally:
        prov.kill()


def test_inbound_did_to_extension(pbx, tmp_path):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")  # IP-authenticated
    p.cli("did", "add", DID, "--to", "extension:1002", "--name", "Appointments line")
    p.start()
    phone = Phone(p, "1002", "call_uas.xml", tmp_path / "uas")
    res = run_sipp(
        "trunk_uac_invite.xml",
        f"127.0.0.1:{p.port}",
        workdir=tmp_path / "prov",
        local_ip=PROVIDER,
        timeout=30,
        extra=["-s", DID],
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert phone.wait() == 0, phone.errors()
    [rec] = wait_closed(p)
    assert rec["direction"] == "inbound" and rec["did"] == DID
    assert rec["service_line"] == "Appointments line" and rec["extension"] == "1002"
    assert rec["disposition"] == "answered" and rec["caller_number"] == "+33611223344"
    kinds = [e["kind"] for e in call_events(p, rec["id"])]
    assert "trunk_call" in kinds


def test_inbound_from_unknown_source_refused(pbx, tmp_path):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("did", "add", DID, "--to", "extension:1002", "--name", "Appointments line")
    p.start()
    wd = tmp_path / "x"
    wd.mkdir()
    sf = wd / "rej.xml"
    sf.write_text((SIPP_DIR / "trunk_uac_rejected.xml").read_text().replace("__STATUS__", "403"))
    # from a phone's address (not the provider's): 403, no challenge, no call record
    res = run_sipp(str(sf), f"127.0.0.1:{p.port}", workdir=wd, local_ip="127.0.0.1", timeout=10, extra=["-s", DID])
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    # from another unknown address: the same
    res = run_sipp(
        str(sf), f"127.0.0.1:{p.port}", workdir=wd, local_ip="127.0.0.4", timeout=10, extra=["-s", "0123456789"]
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert calls_rows(p) == []


def test_outbound_call_rewritten_with_caller_id(pbx, tmp_path):
    prov = Provider(
        "trunk_uas.xml", tmp_path / "prov", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"}
    )
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{prov.port}", "--caller-id", "+33100000000")
    p.start()
    try:
        res = call(p, "call_uac.xml", tmp_path / "uac", to="0612345678", caller="1001")
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert prov.wait() == 0, prov.errors()
    finally:
        prov.kill()
    [rec] = wait_closed(p)
    assert rec["direction"] == "outbound" and rec["callee_number"] == "+33612345678"  # stored E.164
    assert rec["disposition"] == "answered" and rec["caller_number"] == "1001"
    ev = {e["kind"]: json.loads(e["detail"]) for e in call_events(p, rec["id"])}
    assert ev["trunk_dial"]["trunk"] == "prov" and ev["trunk_dial"]["number"] == "+33612345678"
    assert ev["trunk_call"]["number_class"] == "mobile"


def test_outbound_refused_by_class(pbx, tmp_path):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.start()
    # international is off by default
    res = call(p, "call_uac_rejected.xml", tmp_path / "uac", to="00442071234567", status=403)
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert calls_rows(p) == []
    # per-extension permissions are picked up live: international only -> mobiles refused
    p.cli("ext", "perms", "1001", "--allow", "international")
    assert json.loads(p.cli("ext", "perms", "1001", "--json").stdout)["allowed"] == ["internal", "international"]
    time.sleep(1.5)  # the PBX re-reads the database twice a second
    res = call(p, "call_uac_rejected.xml", tmp_path / "uac2", to="0612345678", status=403)
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]


def test_failover_to_second_trunk(pbx, tmp_path):
    bad = Provider("trunk_uas_503.xml", tmp_path / "bad", PROVIDER)
    good = Provider(
        "trunk_uas.xml", tmp_path / "good", PROVIDER2, subst={"__RURI__": "0612345678", "__FROM__": "0100000002"}
    )
    p = pbx()
    p.cli("trunk", "add", "first", "--host", f"{PROVIDER}:{bad.port}", "--priority", "1", "--caller-id", "0100000001")
    p.cli(
        "trunk",
        "add",
        "second",
        "--host",
        f"{PROVIDER2}:{good.port}",
        "--priority",
        "2",
        "--caller-id",
        "0100000002",
        "--format",
        "national",
    )
    p.start()
    try:
        res = call(p, "call_uac.xml", tmp_path / "uac", to="+33612345678", caller="1001")
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert bad.wait() == 0, bad.errors()
        assert good.wait() == 0, good.errors()
    finally:
        bad.kill()
        good.kill()
    [rec] = wait_closed(p)
    assert rec["direction"] == "outbound" and rec["disposition"] == "answered"
    events = call_events(p, rec["id"])
    dials = [json.loads(e["detail"])["trunk"] for e in events if e["kind"] == "trunk_dial"]
    assert dials == ["first", "second"]
    assert any(e["kind"] == "trunk_failover" for e in events)


def test_click_to_call(pbx, tmp_path):
    """pypbx call 1001 0612345678: the extension's phone rings and answers, then the
    provider gets the number with the trunk's caller ID; the phone hangs up."""
    prov = Provider(
        "trunk_uas.xml", tmp_path / "prov", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"}
    )
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{prov.port}", "--caller-id", "+33100000000")
    p.start()
    phone = Phone(p, "1001", "call_uas_hangs_up.xml", tmp_path / "uas")
    try:
        out = json.loads(p.cli("call", "1001", "0612345678", "--json").stdout)
        assert out["class"] == "mobile" and out["call_id"]
        assert phone.wait() == 0, phone.errors()
        assert prov.wait() == 0, prov.errors()
    finally:
        prov.kill()
    [rec] = wait_closed(p)
    assert rec["id"] == out["call_id"] and rec["direction"] == "outbound"
    assert rec["disposition"] == "answered" and rec["caller_number"] == "1001"
    kinds = [e["kind"] for e in call_events(p, rec["id"])]
    assert "click_to_call" in kinds and "trunk_dial" in kinds
    # refused like a dialled call: international is off for 1001
    res = p.cli("call", "1001", "+442071234567", check=False)
    assert res.returncode == 1 and "international" in res.stderr


def test_inbound_did_to_queue(pbx, tmp_path):
    """A DID whose destination is a queue: the live ACD takes the call (queue answers and
    queues it); the record is inbound with the DID, its service line and the queue."""
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("queue", "add", "results", "--wrap-up", "0")
    p.cli("did", "add", "+33123456780", "--to", "queue:results", "--name", "Results line")
    p.start()
    res = run_sipp(
        "trunk_uac_invite.xml",
        f"127.0.0.1:{p.port}",
        workdir=tmp_path / "prov",
        local_ip=PROVIDER,
        timeout=30,
        extra=["-s", "0123456780"],
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    [rec] = wait_closed(p)
    assert rec["direction"] == "inbound" and rec["did"] == "+33123456780"
    assert rec["service_line"] == "Results line" and rec["queue"] == "results"
    assert rec["disposition"] == "abandoned_queue"  # nobody logged in; the caller left after 1 s
