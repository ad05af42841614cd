"""The missed-caller worklist with a real ``pypbx run`` and sipp callers and agents (issue 10):

* a caller who abandons the queue is a task in ``pypbx missed list``; ``missed call TASK
  --from EXT`` rings the agent first (who hears "calling back <number>" and the time), then
  the patient; the task closes as reached, with its time to callback;
* a caller who pressed 1 in two queues has one task and one open callback; closing the task
  withdraws the callback, nothing is left pending and both queues can be removed;
* automatic callback: a queue's abandoned caller is dialled once the agent is idle, after
  the live caller who was waiting.

``[missed] reached_after`` is 2 s here; the patients' phones talk 3 s (missed_uas_talks.xml).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.integration.harness import PbxProcess
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import call_events, caller, login, queue_events, records, setup_queue
from tests.integration.test_queue_more import AgentPhone

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(tmp_path: Path):
    procs: list[PbxProcess] = []

    def make(**overrides) -> PbxProcess:
        p = PbxProcess(
            tmp_path / f"pbx{len(procs)}",
            security={"exempt": ["127.0.0.1"]},
            missed={"reached_after": 2.0},
            **overrides,
        )
        p.add_extensions(["1001", "1002", "1003", "1009"], PASSWORD)
        p.start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
        assert "Traceback" not in p.log(), p.log()[-4000:]


def tasks(p: PbxProcess, *args: str) -> list[dict]:
    return json.loads(p.cli("missed", "list", "--json", *args).stdout)


def wait_task(p: PbxProcess, pred, what: str, timeout: float = 15) -> list[dict]:
    return p.wait_for(lambda: (lambda ts: ts if pred(ts) else None)(tasks(p, "--all")), timeout, what)


def test_abandoned_caller_is_called_back_agent_first(pbx, tmp_path):
    p = pbx()
    setup_queue(p)  # nobody logged in: the caller waits, then hangs up
    res = caller(p, tmp_path / "caller", stay_ms=2500)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    missed = records(p)[0]
    assert missed["disposition"] == "abandoned_queue"
    [t] = wait_task(p, lambda ts: len(ts) == 1, "the abandoned caller's task")
    assert (t["number"], t["reasons"], t["queue"], t["state"], t["attempts"]) == (
        "1009",
        ["abandoned"],
        "front",
        "open",
        0,
    )
    listing = p.cli("missed", "list").stdout
    assert "1009" in listing and "abandoned" in listing
    assert "claimed by alice" in p.cli("missed", "claim", str(t["id"]), "--by", "alice").stdout

    patient = Phone(p, "1009", "missed_uas_talks.xml", tmp_path / "patient", ring_ms=300)
    agent = Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=300)
    out = p.cli("missed", "call", str(t["id"]), "--from", "1001").stdout
    assert out.startswith(f"Calling 1001, then 1009 (task {t['id']})")
    assert agent.wait() == 0, agent.errors()
    assert patient.wait() == 0, patient.errors()
    cb = records(p, 2)[1]
    assert (cb["direction"], cb["caller_number"], cb["callee_number"], cb["disposition"]) == (
        "outbound",
        "1001",
        "1009",
        "answered",
    )
    assert cb["hangup_side"] == "callee" and cb["talk_seconds"] >= 2.0
    [done] = wait_task(p, lambda ts: ts[0]["state"] == "closed", "the task closed")
    assert (done["outcome"], done["closing_call_id"], done["claimed_by"]) == ("reached", cb["id"], "alice")
    assert done["attempts"] == 1
    assert done["waiting"] >= cb["ended_at"] - missed["offered_at"] - 1  # time to callback
    # the agent's phone rang first and heard the announcement, then the patient was dialled
    ev = call_events(p, cb["id"])
    kinds = [e["kind"] for e in ev]
    assert kinds.index("extension_answered") < kinds.index("callback_dial") < kinds.index("answered")
    heard = [
        Path(json.loads(e["detail"])["file"]).stem
        for e in ev[: kinds.index("callback_dial")]
        if e["kind"] == "playback_finished"
    ]
    missed_at = time.localtime(missed["offered_at"])
    hour, minute = f"num_{missed_at.tm_hour}", f"num_{missed_at.tm_min}"
    assert heard == ["calling_back", "num_1", "num_0", "num_0", "num_9", "missed_at", hour, minute], heard
    show = json.loads(p.cli("missed", "show", str(t["id"]), "--json").stdout)
    assert [(a["by"], a["outcome"], a["call_id"]) for a in show["attempts"]] == [("alice", "answered", cb["id"])]
    fig = json.loads(p.cli("report", "callbacks", "--json", "--since", "2000-01-01").stdout)["total"]
    assert (fig["opened"], fig["reached"], fig["callback_rate"], fig["still_open"]) == (1, 1, 1.0, 0)
    assert fig["median_to_callback"] == pytest.approx(done["waiting"], abs=0.2)
    assert "1 reached (100 %)" in p.cli("report", "missed", "--since", "2000-01-01").stdout
    journal = [json.loads(line) for line in (p.cfg.data_dir / "events.jsonl").read_text().splitlines()]
    names = [e["event"] for e in journal if e["event"].startswith("missed.")]
    assert names == ["missed.opened", "missed.claimed", "missed.attempted", "missed.closed"], names


def test_callback_asked_in_two_queues_is_one_task_and_nothing_stays_pending(pbx, tmp_path):
    p = pbx()
    setup_queue(p)
    p.cli("queue", "add", "lab", "--number", "601", "--wrap-up", "0")
    for to, d in (("600", "a"), ("601", "b")):
        res = caller(p, tmp_path / d, scenario="queue_uac_callback.xml", stay_ms=1500, to=to)
        assert res.returncode == 0, res.errors or res.stdout[-3000:]
    rows = records(p, 2)
    assert [r["disposition"] for r in rows] == ["callback_requested", "callback_requested"]
    [t] = wait_task(p, lambda ts: bool(ts) and ts[0]["missed_count"] == 2, "one task, both calls")
    assert (t["number"], t["reasons"], t["queue"]) == ("1009", ["callback-requested"], "lab")
    pending = json.loads(p.cli("callbacks", "--json").stdout)
    assert [(c["number"], c["queue"], c["merged_count"]) for c in pending] == [("1009", "front", 1)]
    waiting = p.api("queue_status", queue="front")["waiting"] + p.api("queue_status", queue="lab")["waiting"]
    assert [(w["number"], w["is_callback"]) for w in waiting] == [("1009", True)]
    out = p.cli("missed", "close", str(t["id"]), "--outcome", "not-needed", "--by", "1002").stdout
    assert out.startswith(f"Task {t['id']} (1009) closed: not-needed")
    p.wait_for(lambda: json.loads(p.cli("callbacks", "--json").stdout) == [], 10, "no pending callback")
    assert p.api("queue_status", queue="front")["waiting"] == []
    done = json.loads(p.cli("callbacks", "--status", "done", "--json").stdout)
    assert [(c["number"], c["result"]) for c in done] == [("1009", f"task {t['id']}: not-needed")]
    p.cli("queue", "remove", "lab", "--yes")
    p.cli("queue", "remove", "front", "--yes")
    assert tasks(p) == []


def test_automatic_callback_after_the_live_caller(pbx, tmp_path):
    p = pbx()
    setup_queue(p, "--auto-callback", "--callback-spacing", "30", agents=("alice",))
    res = caller(p, tmp_path / "gone", stay_ms=2000)  # 1009 abandons: a task, dialled automatically
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    wait_task(p, lambda ts: len(ts) == 1, "the task")
    p.wait_for(lambda: p.api("queue_status", queue="front")["waiting"] or None, 10, "the automatic callback waiting")
    live, live_out = _bg_caller(p, tmp_path / "live", frm="1003", stay_ms=4000)
    p.wait_for(lambda: len(p.api("queue_status", queue="front")["waiting"]) == 2 or None, 10, "the live caller in")
    [first, second] = p.api("queue_status", queue="front")["waiting"]
    assert (first["number"], first["is_callback"], second["number"], second["is_callback"]) == (
        "1003",
        False,
        "1009",
        True,
    )  # the live caller first, though the abandoned one came earlier
    patient = Phone(p, "1009", "missed_uas_talks.xml", tmp_path / "patient", ring_ms=300)
    agent = AgentPhone(p, "1001", tmp_path / "alice", calls=2, ring_ms=200)
    login(p, "alice", "1001")
    live.join(45)
    assert live_out["res"].returncode == 0, live_out["res"].errors
    assert patient.wait() == 0, patient.errors()
    assert agent.wait() == 0, agent.errors()
    rows = records(p, 3)
    live_rec = next(r for r in rows if r["caller_number"] == "1003")
    cb = next(r for r in rows if r["direction"] == "outbound")
    assert live_rec["agent"] == "alice" and live_rec["disposition"] == "answered"
    assert cb["callee_number"] == "1009" and cb["agent"] == "alice" and cb["disposition"] == "answered"
    assert cb["offered_at"] > live_rec["answered_at"]  # never ahead of the live caller
    [done] = wait_task(p, lambda ts: ts[0]["state"] == "closed", "the task closed")
    assert (done["outcome"], done["closing_call_id"], done["attempts"]) == ("reached", cb["id"], 1)
    rings = queue_events(p, kind="RING")
    assert rings[0]["call_id"] == live_rec["id"]
    assert rings[-1]["call_id"].startswith("missed-") and rings[-1]["agent"] == "alice"
    assert p.api("queue_status", queue="front")["waiting"] == []


def _bg_caller(p: PbxProcess, workdir: Path, *, frm: str, stay_ms: int):
    """A sipp caller from ``frm`` into queue 600, in a thread: ``.join()``, then ``out["res"]``."""
    out: dict = {}
    t = threading.Thread(
        target=lambda: out.setdefault("res", caller(p, workdir, stay_ms=stay_ms, frm=frm, timeout=40)), daemon=True
    )
    t.start()
    return t, out
