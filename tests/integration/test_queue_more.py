"""More live ACD paths with a real ``pypbx run`` and sipp / pjsua2 phones (issue 4):

* a callback placed AND connected: the caller presses 1, confirms its caller ID and hangs
  up; when an agent logs in the PBX rings the agent first, then dials the patient (an
  extension answered by a sipp UAS) and bridges them;
* the order of distribution through the live PBX for round_robin and fewest_calls;
* a queue call blind-transferred by the agent (REFER): TRANSFER queue event, agent freed;
* overflow to an external number through a trunk (a sipp fake provider).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.harness import PbxProcess
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, queue_events, records, setup_queue

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(tmp_path: Path):
    procs: list[PbxProcess] = []

    def make(start: bool = True, **overrides) -> PbxProcess:
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", security={"exempt": ["127.0.0.1"]}, **overrides)
        p.add_extensions(["1001", "1002", "1003", "1009"], PASSWORD)
        if start:
            p.start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
        assert "Traceback" not in p.log(), p.log()[-4000:]


def kinds(p: PbxProcess, call_id: str) -> list[str]:
    return [e["kind"] for e in queue_events(p, call_id=call_id)]


# --------------------------------------------------------------------------- 1. callback


def test_callback_placed_and_connected(pbx, tmp_path):
    p = pbx()
    setup_queue(p)  # nobody logged in: the caller waits
    res = caller(p, tmp_path / "caller", scenario="queue_uac_callback.xml", stay_ms=1500)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    first = records(p)[0]
    assert first["disposition"] == "callback_requested"
    # the patient (1009) is now reachable as a phone; the agent's phone answers, the
    # patient's phone answers then hangs up after a while
    patient = Phone(p, "1009", "call_uas_hangs_up.xml", tmp_path / "patient", ring_ms=300)
    agent = Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=200)
    login(p, "alice", "1001")
    assert agent.wait() == 0, agent.errors()
    assert patient.wait() == 0, patient.errors()
    rows = records(p, 2)
    cb = rows[1]
    assert cb["direction"] == "outbound" and cb["callee_number"] == "1009"
    assert cb["disposition"] == "answered" and cb["queue"] == "front" and cb["agent"] == "alice"
    assert cb["answered_at"] is not None and cb["caller_number"] == "1001" and cb["extension"] == "1001"
    assert cb["hangup_side"] == "callee"  # the patient hung up
    p.wait_for(
        lambda: (
            "recording_saved"
            in [e["kind"] for e in json.loads(p.cli("calls", "show", cb["id"], "--json").stdout)["events"]]
        ),
        10,
        "the callback's recording",
    )
    ce = json.loads(p.cli("calls", "show", cb["id"], "--json").stdout)["events"]
    cbev = [json.loads(e["detail"]) for e in ce if e["kind"] == "callback"]
    assert cbev and cbev[0]["of_call"] == first["id"] and cbev[0]["number"] == "1009"
    assert "callback_dial" in [e["kind"] for e in ce] and "recording_started" in [e["kind"] for e in ce]
    p.wait_for(lambda: "COMPLETE_CALLER" in kinds(p, first["id"]), 10, "COMPLETE_CALLER")
    ev = [(e["kind"], e["agent"]) for e in queue_events(p, call_id=first["id"])]
    assert ev == [
        ("ENTER", None),
        ("CALLBACK_REQUESTED", None),
        ("RING", "alice"),
        ("CALLBACK_DIALED", "alice"),
        ("CALLBACK_CONNECTED", "alice"),
        ("COMPLETE_CALLER", "alice"),
    ], ev
    done = json.loads(p.cli("callbacks", "--status", "done", "--json").stdout)
    assert [(c["number"], c["queue"], c["status"]) for c in done] == [("1009", "front", "done")]
    assert json.loads(p.cli("callbacks", "--status", "pending", "--json").stdout) == []
    st = p.api("queue_status", queue="front")
    assert st["waiting"] == []
    p.wait_for(
        lambda: [
            a
            for a in json.loads(p.cli("agent", "list", "--json").stdout)
            if a["id"] == "alice" and a["state"] == "available"
        ],
        5,
        "alice available",
    )


# --------------------------------------------------------------------------- 2. distribution order


class AgentPhone(Phone):
    """A registered sipp UAS that answers ``calls`` calls one after another."""

    def __init__(self, pbx: PbxProcess, ext: str, workdir: Path, calls: int = 1, ring_ms: int = 200) -> None:
        import subprocess

        from tests.integration.harness import SIPP_DIR, auth_users, free_port, require_tool, run_sipp

        self.sipp = require_tool("sipp")
        self.pbx, self.ext, self.dir, self.transport = pbx, ext, workdir, "u1"
        self.port = free_port("both")
        workdir.mkdir(parents=True, exist_ok=True)
        res = run_sipp(
            "register.xml",
            f"127.0.0.1:{pbx.port}",
            users=auth_users([ext], PASSWORD),
            workdir=workdir,
            extra=["-p", str(self.port)],
        )
        assert res.returncode == 0, res.errors or res.stdout[-2000:]
        with open(workdir / "uas.out", "w") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    self.sipp,
                    "-sf",
                    str(SIPP_DIR / "call_uas.xml"),
                    "-s",
                    ext,
                    "-t",
                    "u1",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-m",
                    str(calls),
                    "-d",
                    str(ring_ms),
                    "-nostdin",
                    "-trace_err",
                    "-timeout",
                    "60s",
                    "-timeout_error",
                ],
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        time.sleep(0.4)


def agent_of_calls(p: PbxProcess, n: int) -> list[str]:
    """The agent of each queue call so far, in order (CDR and CONNECT event agree)."""
    rows = records(p, n, timeout=30)
    out = []
    for r in rows:
        p.wait_for(lambda cid=r["id"]: "COMPLETE_CALLER" in kinds(p, cid), 10, "COMPLETE_CALLER")
        conn = [e["agent"] for e in queue_events(p, call_id=r["id"]) if e["kind"] == "CONNECT"]
        assert conn == [r["agent"]], (conn, r)
        out.append(r["agent"])
    return out


def one_call(p: PbxProcess, workdir: Path, n: int) -> list[str]:
    res = caller(p, workdir, stay_ms=1200)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    time.sleep(0.3)  # the agent is back to available (wrap-up 0)
    return agent_of_calls(p, n)


def add_agents(p: PbxProcess, strategy: str, agents: tuple[str, ...]) -> None:
    p.cli("queue", "add", "front", "--number", "600", "--strategy", strategy, "--wrap-up", "0")
    for a in agents:
        p.cli("agent", "add", a, "--name", a.capitalize())


def test_round_robin_with_memory_across_a_restart(pbx, tmp_path):
    p = pbx()
    add_agents(p, "round_robin", ("alice", "bob", "carol"))
    phones = {
        "alice": AgentPhone(p, "1001", tmp_path / "alice", calls=2),
        "bob": AgentPhone(p, "1002", tmp_path / "bob"),
        "carol": AgentPhone(p, "1003", tmp_path / "carol"),
    }
    # carol is the longest idle and the first by login: round robin ignores both
    login(p, "carol", "1003")
    login(p, "bob", "1002")
    login(p, "alice", "1001")
    assert one_call(p, tmp_path / "c1", 1) == ["alice"]
    assert one_call(p, tmp_path / "c2", 2) == ["alice", "bob"]
    p.stop()
    p.start()  # the memory (last agent: bob) survives
    assert one_call(p, tmp_path / "c3", 3) == ["alice", "bob", "carol"]
    assert one_call(p, tmp_path / "c4", 4) == ["alice", "bob", "carol", "alice"]
    for name, ph in phones.items():
        assert ph.wait() == 0, (name, ph.errors())


def test_fewest_calls(pbx, tmp_path):
    p = pbx()
    add_agents(p, "fewest_calls", ("alice", "bob", "carol"))
    phones = {
        "alice": AgentPhone(p, "1001", tmp_path / "alice", calls=1),
        "bob": AgentPhone(p, "1002", tmp_path / "bob", calls=2),
        "carol": AgentPhone(p, "1003", tmp_path / "carol", calls=1),
    }
    login(p, "bob", "1002")
    login(p, "alice", "1001")
    # all on 0 calls: the longest idle (bob) first, then alice (fewest calls, though bob has
    # been idle longer since), then carol who logs in last with 0 calls (longest idle would
    # be bob, round robin alice), then bob (1 call each, idle the longest)
    assert one_call(p, tmp_path / "c1", 1) == ["bob"]
    assert one_call(p, tmp_path / "c2", 2) == ["bob", "alice"]
    login(p, "carol", "1003")
    assert one_call(p, tmp_path / "c3", 3) == ["bob", "alice", "carol"]
    assert one_call(p, tmp_path / "c4", 4) == ["bob", "alice", "carol", "bob"]
    for name, ph in phones.items():
        assert ph.wait() == 0, (name, ph.errors())


# --------------------------------------------------------------------------- 3. transfer


def test_agent_blind_transfers_a_queue_call(pbx, tmp_path):
    """The agent (a pjsua2 phone) answers a queue call and transfers it blind (REFER) to
    1003 (a sipp UAS): TRANSFER in queue_events with the target, the agent is available
    again while the caller talks to 1003, no COMPLETE_* for the queue."""
    import threading

    from tests.phone.driver import PjPhone

    p = pbx()
    setup_queue(p, agents=("alice",))
    desk = Phone(p, "1003", "call_uas.xml", tmp_path / "desk", ring_ms=200)
    pj = PjPhone("alice", tmp_path)
    try:
        pj.cmd("register", server=f"127.0.0.1:{p.port}", user="1001", password=PASSWORD)
        ev = pj.wait_event(lambda e: e.get("event") == "reg", 15, "registration")
        assert ev["code"] == 200, ev
        login(p, "alice", "1001")
        out: dict = {}
        t = threading.Thread(
            target=lambda: out.setdefault("res", caller(p, tmp_path / "caller", stay_ms=9000)), daemon=True
        )
        t.start()
        inc = pj.wait_event(lambda e: e.get("event") == "incoming", 20, "the agent's phone rings")
        pj.cmd("answer", call=inc["call"])
        pj.wait_event(
            lambda e: e.get("event") == "state" and e["call"] == inc["call"] and e["state"] == "CONFIRMED",
            15,
            "agent connected",
        )
        time.sleep(0.5)
        pj.cmd("xfer", call=inc["call"], uri=f"sip:1003@127.0.0.1:{p.port}")
        p.wait_for(lambda: list(queue_events(p, kind="TRANSFER")), 15, "TRANSFER")
        # the caller is still talking (to 1003); the agent is free already
        p.wait_for(
            lambda: [
                a
                for a in json.loads(p.cli("agent", "list", "--json").stdout)
                if a["id"] == "alice" and a["state"] == "available"
            ],
            5,
            "alice available",
        )
        assert p.api("queue_status", queue="front")["agents"][0]["state"] == "available"
        t.join(40)
        assert out["res"].returncode == 0, out["res"].errors or out["res"].stdout[-3000:]
        assert desk.wait() == 0, desk.errors()
    finally:
        pj.close()
    cdr = records(p)[0]
    assert cdr["disposition"] == "answered" and cdr["queue"] == "front" and cdr["extension"] == "1003"
    time.sleep(0.5)
    ev = [(e["kind"], e["agent"]) for e in queue_events(p, call_id=cdr["id"])]
    assert ev == [("ENTER", None), ("RING", "alice"), ("CONNECT", "alice"), ("TRANSFER", "alice")], ev
    tr = queue_events(p, kind="TRANSFER")[0]
    assert tr["data"]["target"] == "1003"


# --------------------------------------------------------------------------- 4. overflow out


def test_overflow_to_an_external_number_through_a_trunk(pbx, tmp_path):
    """Nobody answers in 3 s: the caller is sent out through the trunk to +33612345678
    (the provider checks the number and the trunk's caller ID); CDR overflowed_out."""
    from tests.integration.test_trunks import PROVIDER, Provider, call_events

    prov = Provider(
        "trunk_uas.xml", tmp_path / "prov", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"}
    )
    p = pbx(start=False)
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{prov.port}", "--caller-id", "+33100000000")
    p.start()
    try:
        setup_queue(p, "--overflow-after", "3", "--overflow-to", "external:+33612345678")
        res = caller(p, tmp_path / "caller", stay_ms=7000)
        assert res.returncode == 0, res.errors or res.stdout[-3000:]
        assert prov.wait() == 0, prov.errors()
    finally:
        prov.kill()
    cdr = records(p)[0]
    assert cdr["disposition"] == "overflowed_out" and cdr["queue"] == "front", cdr
    assert cdr["answered_at"] is not None and cdr["hangup_side"] == "caller"
    ev = queue_events(p, call_id=cdr["id"])
    assert [e["kind"] for e in ev] == ["ENTER", "OVERFLOW"]
    assert 2.9 < ev[1]["data"]["wait"] < 5 and ev[1]["data"]["target"] == "+33612345678"
    dial = [json.loads(e["detail"]) for e in call_events(p, cdr["id"]) if e["kind"] == "trunk_dial"]
    assert dial and dial[0]["trunk"] == "prov" and dial[0]["number"] == "+33612345678"
    # the trunk's channel was counted for the overflow and given back at its end
    assert [(t["name"], t["active_calls"]) for t in p.status()["trunks"]] == [("prov", 0)]


def test_callback_to_an_outside_number_through_the_trunk(pbx, tmp_path):
    """The caller keys in another number (0612345678); the callback rings the agent, then
    goes out through the trunk: the fake provider gets +33612345678 from the trunk's caller
    ID and answers; the agent hangs up."""
    from tests.integration.test_trunks import PROVIDER, Provider

    prov = Provider(
        "trunk_uas.xml", tmp_path / "prov", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"}
    )
    p = pbx(start=False)
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{prov.port}", "--caller-id", "+33100000000")
    p.start()
    try:
        setup_queue(p)
        res = caller(p, tmp_path / "caller", scenario="queue_more_callback_keyed.xml", stay_ms=1500)
        assert res.returncode == 0, res.errors or res.stdout[-3000:]
        first = records(p)[0]
        assert first["disposition"] == "callback_requested"
        pending = json.loads(p.cli("callbacks", "--json").stdout)
        assert [(c["number"], c["status"]) for c in pending] == [
            ("+33612345678", "pending")
        ]  # keyed 0612345678, stored E.164
        agent = Phone(p, "1001", "call_uas_hangs_up.xml", tmp_path / "alice", ring_ms=200)
        login(p, "alice", "1001")
        assert agent.wait() == 0, agent.errors()
        assert prov.wait() == 0, prov.errors()
    finally:
        prov.kill()
    cb = records(p, 2)[1]
    assert cb["direction"] == "outbound" and cb["callee_number"] == "+33612345678" and cb["agent"] == "alice"
    assert cb["disposition"] == "answered" and cb["caller_number"] == "1001" and cb["hangup_side"] == "caller"
    p.wait_for(lambda: "COMPLETE_AGENT" in kinds(p, first["id"]), 10, "COMPLETE_AGENT")
    assert kinds(p, first["id"])[-3:] == ["CALLBACK_DIALED", "CALLBACK_CONNECTED", "COMPLETE_AGENT"]
    done = json.loads(p.cli("callbacks", "--status", "done", "--json").stdout)
    assert [(c["number"], c["status"]) for c in done] == [("+33612345678", "done")]
    assert [(t["name"], t["active_calls"]) for t in p.status()["trunks"]] == [("prov", 0)]
