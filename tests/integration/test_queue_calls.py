"""Calls into ACD queues with a real ``pypbx run`` and sipp phones over real sockets.

Agents' phones are sipp UASes registered as their extensions (``Phone``); agents are logged
in with the CLI; a sipp caller dials the queue's number (600). Checked: the queue answers
and plays its prompts (``playback_finished`` call events), the call goes to the right agent
(longest idle), CONNECT / COMPLETE_* rows in ``queue_events``, the CDR has queue and agent,
ring-no-answer pauses the agent (``pypbx agent list --json``), a caller who hangs up while
queued is an ABANDON with its wait and an ``abandoned_queue`` CDR, press 1 -> a callback.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.integration.harness import PbxProcess, auth_users, run_sipp
from tests.integration.test_proxy_calls import PASSWORD, Phone

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(tmp_path: Path):
    procs: list[PbxProcess] = []

    def make(**overrides) -> PbxProcess:
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", security={"exempt": ["127.0.0.1"]}, **overrides)
        p.add_extensions(["1001", "1002", "1003", "1009"], PASSWORD)
        p.start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
        assert "Traceback" not in p.log(), p.log()[-4000:]


def setup_queue(p: PbxProcess, *opts: str, agents: tuple[str, ...] = ("alice", "bob")) -> None:
    p.cli("queue", "add", "front", "--number", "600", "--strategy", "longest_idle", "--wrap-up", "0", *opts)
    for a in agents:
        p.cli("agent", "add", a, "--name", a.capitalize())


def login(p: PbxProcess, agent: str, ext: str) -> None:
    p.cli("agent", "login", agent, ext)
    time.sleep(0.1)  # distinct idle times: the first logged in is the longest idle


def caller(
    p: PbxProcess,
    workdir: Path,
    *,
    scenario: str = "queue_uac.xml",
    stay_ms: int = 4000,
    frm: str = "1009",
    to: str = "600",
    timeout: float = 40,
):
    return run_sipp(
        scenario,
        f"127.0.0.1:{p.port}",
        users=auth_users([frm], PASSWORD),
        workdir=workdir,
        timeout=timeout,
        extra=["-s", to, "-d", str(stay_ms)],
    )


def queue_events(p: PbxProcess, **kw) -> list[dict]:
    from pypbx.acdstore import list_queue_events
    from pypbx.db import open_db

    async def go():
        async with open_db(p.cfg.db_path) as db:
            return await list_queue_events(db, **kw)

    return asyncio.run(go())


def records(p: PbxProcess, n: int = 1, timeout: float = 20) -> list[dict]:
    def done():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        return rows if len(rows) >= n and all(r["disposition"] != "in_progress" for r in rows) else None

    return sorted(p.wait_for(done, timeout, "the call records to close"), key=lambda r: r["offered_at"])


def call_events(p: PbxProcess, call_id: str) -> list[dict]:
    return json.loads(p.cli("calls", "show", call_id, "--json").stdout)["events"]


def test_queue_call_delivered_to_longest_idle_agent(pbx, tmp_path):
    p = pbx()
    setup_queue(p)
    a1 = Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=300)
    a2 = Phone(p, "1002", "call_uas.xml", tmp_path / "bob", ring_ms=300)
    login(p, "alice", "1001")
    login(p, "bob", "1002")
    res = caller(p, tmp_path / "caller", stay_ms=5000)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    assert a1.wait() == 0, a1.errors()  # alice (longest idle) got it and was hung up
    rows = records(p)
    assert len(rows) == 1
    cdr = rows[0]
    assert cdr["disposition"] == "answered" and cdr["queue"] == "front" and cdr["agent"] == "alice"
    assert cdr["extension"] == "1001" and cdr["callee_number"] == "600"
    p.wait_for(
        lambda: "COMPLETE_CALLER" in [e["kind"] for e in queue_events(p, call_id=cdr["id"])], 10, "COMPLETE_CALLER"
    )
    ev = queue_events(p, call_id=cdr["id"])
    assert [e["kind"] for e in ev] == ["ENTER", "RING", "CONNECT", "COMPLETE_CALLER"]
    assert all(e["agent"] == "alice" for e in ev[1:])
    kinds = [e["kind"] for e in call_events(p, cdr["id"])]
    assert "queue_ring" in kinds and "answered" in kinds and "recording_saved" in kinds
    # bob's phone was never rung
    a2.proc.kill()
    a2.wait(5)
    p.wait_for(
        lambda: [
            a
            for a in json.loads(p.cli("agent", "list", "--json").stdout)
            if a["id"] == "alice" and a["state"] == "available"
        ],
        5,
        "alice available",
    )


def test_queued_caller_hears_prompts_then_abandons(pbx, tmp_path):
    p = pbx()
    setup_queue(p)  # nobody logged in: the caller waits
    # 8.5 s: the greeting (welcome 1.5 s + recording notice 4.1 s) and the first prompt of the
    # position announcement (you_are_caller_number, 1.4 s) are heard in full
    res = caller(p, tmp_path / "caller", stay_ms=8500)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    cdr = records(p)[0]
    assert cdr["disposition"] == "abandoned_queue" and cdr["queue"] == "front" and cdr["agent"] is None
    p.wait_for(lambda: "ABANDON" in [e["kind"] for e in queue_events(p, call_id=cdr["id"])], 10, "ABANDON")
    ev = queue_events(p, call_id=cdr["id"])
    assert [e["kind"] for e in ev] == ["ENTER", "ABANDON"]
    assert 5.0 < ev[1]["data"]["wait"] < 10.0 and ev[1]["data"]["position"] == 1
    played = [
        Path(json.loads(e["detail"])["file"]).name
        for e in call_events(p, cdr["id"])
        if e["kind"] == "playback_finished"
    ]
    assert played[:2] == ["welcome.wav", "call_may_be_recorded.wav"], played
    ann = [json.loads(e["detail"]) for e in call_events(p, cdr["id"]) if e["kind"] == "queue_announce"]
    assert ann and ann[0]["position"] == 1 and ann[0]["ewt"] is None  # nobody logged in: no figure
    missed = json.loads(p.cli("report", "missed", "--json", "--since", "2000-01-01").stdout)
    assert [(m["number"], m["reason"], m["queue"]) for m in missed] == [("1009", "abandoned_queue", "front")]
    assert played[2] == "you_are_caller_number.wav", played  # the position announcement


def test_ring_no_answer_pauses_agent_and_next_agent_answers(pbx, tmp_path):
    p = pbx()
    setup_queue(p, "--ring-timeout", "3")
    a1 = Phone(p, "1001", "call_uas_ring.xml", tmp_path / "alice")  # never answers
    a2 = Phone(p, "1002", "call_uas.xml", tmp_path / "bob", ring_ms=300)
    login(p, "alice", "1001")
    login(p, "bob", "1002")
    res = caller(p, tmp_path / "caller", stay_ms=8000)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    assert a1.wait() == 0, a1.errors()
    assert a2.wait() == 0, a2.errors()
    cdr = records(p)[0]
    assert cdr["disposition"] == "answered" and cdr["agent"] == "bob"
    p.wait_for(
        lambda: "COMPLETE_CALLER" in [e["kind"] for e in queue_events(p, call_id=cdr["id"])], 10, "COMPLETE_CALLER"
    )
    ev = [(e["kind"], e["agent"]) for e in queue_events(p, call_id=cdr["id"])]
    assert ev == [
        ("ENTER", None),
        ("RING", "alice"),
        ("RINGNOANSWER", "alice"),
        ("RING", "bob"),
        ("CONNECT", "bob"),
        ("COMPLETE_CALLER", "bob"),
    ]
    agents = {a["id"]: a for a in json.loads(p.cli("agent", "list", "--json").stdout)}
    assert agents["alice"]["state"] == "paused" and agents["alice"]["pause_reason"] == "ring_no_answer"
    pauses = queue_events(p, kind="PAUSE")
    assert [(e["agent"], e["data"]["reason"]) for e in pauses] == [("alice", "ring_no_answer")]
    # the supervisor's reports over what the live PBX wrote
    q = json.loads(p.cli("report", "queues", "--json", "--since", "2000-01-01").stdout)["front"]
    assert (q["entered"], q["answered"], q["abandoned"]) == (1, 1, 0) and q["asa"] >= 3.0  # rang alice 3 s first
    agents = json.loads(p.cli("report", "agents", "--json", "--since", "2000-01-01").stdout)
    assert agents["bob"]["answered"] == 1 and agents["bob"]["talk_seconds"] > 0
    assert agents["alice"]["ring_no_answer"] == 1 and agents["alice"]["pauses"] == 1
    assert json.loads(p.cli("report", "missed", "--json", "--since", "2000-01-01").stdout) == []


def test_press_1_requests_a_callback(pbx, tmp_path):
    p = pbx()
    setup_queue(p)
    res = caller(p, tmp_path / "caller", scenario="queue_uac_callback.xml", stay_ms=1500)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    cdr = records(p)[0]
    assert cdr["disposition"] == "callback_requested" and cdr["queue"] == "front"
    cbs = json.loads(p.cli("callbacks", "--json").stdout)
    assert [(c["number"], c["queue"], c["status"]) for c in cbs] == [("1009", "front", "pending")]
    ev = [e["kind"] for e in queue_events(p, call_id=cdr["id"])]
    assert ev == ["ENTER", "CALLBACK_REQUESTED"]
    digits = [json.loads(e["detail"])["digit"] for e in call_events(p, cdr["id"]) if e["kind"] == "dtmf"]
    assert digits == ["1", "1"]
    st = p.api("queue_status", queue="front")
    assert len(st["waiting"]) == 1 and st["waiting"][0]["is_callback"]


def test_ring_all_first_answer_wins(pbx, tmp_path):
    """ring_all: ONE leg from the caller's worker, forked by the front door to both agents'
    phones; bob answers, alice's phone gets CANCEL; the CDR and events name bob."""
    p = pbx()
    setup_queue(p)
    p.cli("queue", "edit", "front", "--strategy", "ring_all")
    a1 = Phone(p, "1001", "call_uas_ring.xml", tmp_path / "alice")
    a2 = Phone(p, "1002", "call_uas.xml", tmp_path / "bob", ring_ms=500)
    login(p, "alice", "1001")
    login(p, "bob", "1002")
    res = caller(p, tmp_path / "caller", stay_ms=5000)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    assert a1.wait() == 0, a1.errors()
    assert a2.wait() == 0, a2.errors()
    cdr = records(p)[0]
    assert cdr["disposition"] == "answered" and cdr["agent"] == "bob" and cdr["extension"] == "1002"
    p.wait_for(
        lambda: "COMPLETE_CALLER" in [e["kind"] for e in queue_events(p, call_id=cdr["id"])], 10, "COMPLETE_CALLER"
    )
    ev = [(e["kind"], e["agent"]) for e in queue_events(p, call_id=cdr["id"])]
    assert ev == [("ENTER", None), ("RING", "alice"), ("RING", "bob"), ("CONNECT", "bob"), ("COMPLETE_CALLER", "bob")]
    agents = {a["id"]: a for a in json.loads(p.cli("agent", "list", "--json").stdout)}
    assert agents["alice"]["state"] == "available"  # not a miss: someone answered


def test_overflow_to_an_extension(pbx, tmp_path):
    p = pbx()
    setup_queue(p, "--overflow-after", "3", "--overflow-to", "extension:1003")
    desk = Phone(p, "1003", "call_uas.xml", tmp_path / "desk", ring_ms=300)
    res = caller(p, tmp_path / "caller", stay_ms=7000)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    assert desk.wait() == 0, desk.errors()
    cdr = records(p)[0]
    assert cdr["disposition"] == "overflowed_out" and cdr["queue"] == "front" and cdr["extension"] == "1003"
    ev = queue_events(p, call_id=cdr["id"])
    assert [e["kind"] for e in ev] == ["ENTER", "OVERFLOW"]
    assert 2.9 < ev[1]["data"]["wait"] < 5 and ev[1]["data"]["target"] == "1003"


def test_feature_codes_log_in_pause_log_out(pbx, tmp_path):
    p = pbx()
    setup_queue(p)

    def agent() -> dict:
        return {a["id"]: a for a in json.loads(p.cli("agent", "list", "--json").stdout)}["alice"]

    for i, code in enumerate(("*45alice", "*46", "*46", "*45")):
        res = caller(p, tmp_path / f"fc{i}", stay_ms=600, frm="1009", to=code)
        assert res.returncode == 0, res.errors or res.stdout[-3000:]
        if i == 0:
            p.wait_for(lambda: agent()["state"] == "available" and agent()["extension"] == "1009", 5, "login")
            st = p.api("queue_status", queue="front")
            assert [a["state"] for a in st["agents"] if a["id"] == "alice"] == ["available"]
        elif i == 1:
            p.wait_for(lambda: agent()["state"] == "paused", 5, "pause")
        elif i == 2:
            p.wait_for(lambda: agent()["state"] == "available", 5, "unpause")
        else:
            p.wait_for(lambda: agent()["state"] == "logged_out", 5, "logout")
    st = p.api("queue_status", queue="front")
    assert [a["state"] for a in st["agents"] if a["id"] == "alice"] == ["logged_out"]


def _caller_in_background(p: PbxProcess, workdir: Path, stay_ms: int = 8000, timeout: float = 40):
    import threading

    out: dict = {}
    t = threading.Thread(
        target=lambda: out.setdefault("res", caller(p, workdir, stay_ms=stay_ms, timeout=timeout)), daemon=True
    )
    t.start()
    p.wait_for(lambda: queue_events(p, kind="ENTER"), 10, "the caller to enter the queue")
    return t


def test_stop_with_a_caller_in_queue_closes_it_and_keeps_a_callback(pbx, tmp_path):
    import signal

    p = pbx()
    setup_queue(p)
    t = _caller_in_background(p, tmp_path / "caller")
    assert p.stop(signal.SIGTERM) == 0
    t.join(40)
    ev = queue_events(p)
    call_id = ev[0]["call_id"]
    assert [e["kind"] for e in ev if e["call_id"] == call_id] == ["ENTER", "INTERRUPTED"]
    cbs = json.loads(p.cli("callbacks", "--json").stdout)
    assert [(c["number"], c["queue"]) for c in cbs] == [("1009", "front")]
    cdr = json.loads(p.cli("calls", "list", "--json").stdout)[0]
    assert cdr["disposition"] == "interrupted" and cdr["queue"] == "front"
    p.start()  # the callback slot survives the restart
    st = p.api("queue_status", queue="front")
    assert [(w["number"], w["is_callback"]) for w in st["waiting"]] == [("1009", True)]


def _wait_ports_free(base: int, count: int, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for port in range(base, base + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy = True
            finally:
                sock.close()
        if not busy:
            return
        time.sleep(0.2)


def test_crash_with_a_caller_in_queue_is_closed_at_the_next_start(pbx, tmp_path):
    import signal

    p = pbx()
    setup_queue(p)
    # the PBX dies under the caller: its BYE is never answered, so sipp is cut short
    t = _caller_in_background(p, tmp_path / "caller", timeout=12)
    time.sleep(0.5)  # the snapshot with the waiting caller is written
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait(10)
    _wait_ports_free(p.cfg.media.sip_port_base, p.cfg.media.workers_max)  # the orphaned workers exit
    p.start()
    ev = queue_events(p)
    call_id = ev[0]["call_id"]
    kinds = [e["kind"] for e in ev if e["call_id"] == call_id]
    assert kinds == ["ENTER", "INTERRUPTED"], kinds
    assert next(e for e in ev if e["kind"] == "INTERRUPTED")["data"]["reason"] == "pbx restarted"
    cbs = json.loads(p.cli("callbacks", "--json").stdout)
    assert [(c["number"], c["queue"]) for c in cbs] == [("1009", "front")]
    cdr = json.loads(p.cli("calls", "list", "--json").stdout)[0]
    assert cdr["disposition"] == "interrupted"
    p.stop()
    t.join(40)
