"""Routing rules (pypbx.routing) against a real ``pypbx run`` with the sipp fake provider:
a DID through a route with a time rule (fixed clock, PYPBX_FAKE_NOW, inside and outside
the window), a sticky agent (the caller's last agent gets the queue call though another
agent is the longest idle), and an IVR digit through a route to an outside number that
reaches the fake provider through the trunk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.integration.harness import SIPP_DIR, auth_users, run_sipp
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import login, queue_events
from tests.integration.test_trunks import PROVIDER, Provider, call_events, wait_closed

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx)."""
    return trunk_pbx


DID = "0144556677"
DID_E164 = "+33144556677"  # as stored (issue 10)
PATIENT = "+33611223344"  # the caller of trunk_uac_invite.xml


def provider_call(p, workdir: Path, talk_ms: int = 1000):
    """The provider sends a call from PATIENT to the DID (answered, ``talk_ms``, BYE)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sf = workdir / "uac.xml"
    sf.write_text(
        (SIPP_DIR / "trunk_uac_invite.xml")
        .read_text()
        .replace('<pause milliseconds="1000"/>', f'<pause milliseconds="{talk_ms}"/>')
    )
    return run_sipp(str(sf), f"127.0.0.1:{p.port}", workdir=workdir, local_ip=PROVIDER, timeout=30, extra=["-s", DID])


def route_events(p, call_id: str) -> list[dict]:
    return [json.loads(e["detail"]) for e in call_events(p, call_id) if e["kind"] == "route"]


def test_time_rule_inside_and_outside_the_window(pbx, tmp_path, monkeypatch):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("queue", "add", "morning", "--wrap-up", "0")
    p.cli("queue", "add", "afternoon", "--wrap-up", "0")
    p.cli("route", "add", "clinic", "--tz", "Europe/Paris")
    p.cli("route", "rule", "clinic", "--if", "time=mon-fri/08:00-12:00", "--to", "queue:morning")
    p.cli("route", "rule", "clinic", "--to", "queue:afternoon")
    p.cli("did", "add", DID, "--to", "route:clinic", "--name", "Appointments")
    queues = []
    for i, fake in enumerate(("2026-11-23T10:30", "2026-11-23T14:00")):  # a Monday, Paris time
        monkeypatch.setenv("PYPBX_FAKE_NOW", fake + "+01:00")
        p.start()
        res = provider_call(p, tmp_path / f"prov{i}")
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        rec = wait_closed(p, i + 1)[i]
        p.stop()
        assert rec["did"] == DID_E164 and rec["service_line"] == "Appointments"
        assert rec["disposition"] == "abandoned_queue", rec  # nobody logged in; the caller left
        [ev] = route_events(p, rec["id"])
        assert ev["route"] == "clinic" and ev["destination"] == f"queue:{rec['queue']}"
        queues.append((rec["queue"], ev["rule"]))
    assert queues == [("morning", 1), ("afternoon", 2)]


def _seed_last_agent(p, number: str, agent: str) -> None:
    from pypbx.db import open_db

    async def go():
        async with open_db(p.cfg.db_path) as db:
            await db.caller_seen_row(number, 1.0, "answered", agent, "earlier-call")

    asyncio.run(go())


def test_sticky_agent_gets_the_call_though_another_is_longest_idle(pbx, tmp_path):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("queue", "add", "front", "--strategy", "longest_idle", "--wrap-up", "0")
    for a in ("alice", "bob"):
        p.cli("agent", "add", a, "--name", a.capitalize())
    p.cli("route", "add", "sticky")
    p.cli("route", "rule", "sticky", "--if", "sticky", "--to", "queue:front", "--prefer-last", "20")
    p.cli("route", "rule", "sticky", "--to", "queue:front")
    p.cli("did", "add", DID, "--to", "route:sticky")
    _seed_last_agent(p, PATIENT, "bob")  # bob took this patient's last call
    p.start()
    alice = Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=200)
    bob = Phone(p, "1002", "call_uas.xml", tmp_path / "bob", ring_ms=200)
    try:
        login(p, "alice", "1001")  # alice: the longest idle
        login(p, "bob", "1002")
        res = provider_call(p, tmp_path / "prov", talk_ms=4000)
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert bob.wait() == 0, bob.errors()
    finally:
        alice.proc.kill()
        alice.wait(5)
    [rec] = wait_closed(p)
    assert rec["disposition"] == "answered" and rec["queue"] == "front", rec
    assert rec["agent"] == "bob" and rec["extension"] == "1002"
    [ev] = route_events(p, rec["id"])
    assert ev["rule"] == 1 and ev["prefer_agent"] == "bob" and ev["last_agent"] == "bob"
    qev = p.wait_for(lambda: (e := queue_events(p, call_id=rec["id"])) and len(e) >= 3 and e, 10, "queue events")
    assert [e["kind"] for e in qev[:3]] == ["ENTER", "RING", "CONNECT"]  # in the ACD's statistics
    assert qev[1]["agent"] == "bob" and qev[2]["agent"] == "bob"


def test_ivr_digit_through_a_route_to_an_outside_number(pbx, tmp_path):
    """1001 calls IVR 700 and keys 9 -> route:triage, whose rule ivr=main:9 sends the call
    out to external:+33612345678 through the trunk; the fake provider checks the number and
    the trunk's caller ID and answers; the caller hangs up after 4 s."""
    prov = Provider(
        "trunk_uas.xml", tmp_path / "prov", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"}
    )
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{prov.port}", "--caller-id", "+33100000000")
    p.cli("route", "add", "triage")  # issue 12: a route is made (empty) before an IVR option names it
    p.cli("ivr", "add", "main", "--number", "700", "--option", "9=route:triage", "--timeout", "15")
    p.cli("route", "rule", "triage", "--if", "ivr=main:1", "--to", "voicemail:1001")
    p.cli("route", "rule", "triage", "--if", "ivr=main:9", "--to", "external:+33612345678")
    p.start()
    try:
        res = run_sipp(
            "routing_uac_ivr_dtmf.xml",
            f"127.0.0.1:{p.port}",
            users=auth_users(["1001"], PASSWORD),
            workdir=tmp_path / "uac",
            timeout=30,
            extra=["-s", "700"],
        )
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert prov.wait() == 0, prov.errors()
    finally:
        prov.kill()
    [rec] = wait_closed(p)
    assert rec["disposition"] == "answered" and rec["answered_at"] is not None, rec
    assert rec["hangup_side"] == "caller"
    events = call_events(p, rec["id"])
    kinds = [e["kind"] for e in events]
    assert "ivr_choice" in kinds and "ivr_external" in kinds and "trunk_dial" in kinds
    [ev] = route_events(p, rec["id"])
    assert ev["route"] == "triage" and ev["rule"] == 2 and ev["destination"] == "external:+33612345678"
    dial = [json.loads(e["detail"]) for e in events if e["kind"] == "trunk_dial"]
    assert dial[0]["trunk"] == "prov" and dial[0]["number"] == "+33612345678"
    # the trunk's channel was counted and given back at the end
    p.wait_for(
        lambda: [(t["name"], t["active_calls"]) for t in p.status()["trunks"]] == [("prov", 0)],
        5,
        "the trunk channel given back",
    )
