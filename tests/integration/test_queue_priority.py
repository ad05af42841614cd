"""The urgent line and issue 10's queue settings with a real ``pypbx run``, sipp callers (a
fake provider at 127.0.0.2 sending DID calls, phones of extensions) and sipp agents:

* two normal DID callers wait (the agent is not logged in); an urgent-DID caller
  (``did add --priority 5``) and an IVR caller who keys 1 (``--option 1=queue:front@3``)
  arrive after them; the agent logs in and answers the urgent DID's caller first, then the
  IVR's; the normal callers are still waiting when both are served (they hang up);
* ``queue add --rona-misses 2``: the agent is paused only after the second ring it lets go;
* ``queue add --overflow-when-busy``: while the only agent is on a call, a new caller goes
  straight to the overflow destination (an extension: the answering service).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.harness import SIPP_DIR, PbxProcess, auth_users, free_port, require_tool, run_sipp
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, queue_events, records
from tests.integration.test_trunks import PROVIDER

pytestmark = pytest.mark.slow

NORMAL_DID = "0144556677"
URGENT_DID = "0144556688"
URGENT_DID_E164 = "+33144556688"  # as the books store it (issue 10: E.164)


@pytest.fixture
def pbx(tmp_path: Path):
    procs: list[PbxProcess] = []

    def make(start: bool = True) -> PbxProcess:
        p = PbxProcess(tmp_path / f"pbx{len(procs)}", security={"exempt": ["127.0.0.1"]})
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


class Agent:
    """A registered sipp UAS (``scenario`` from tests/sipp) taking ``calls`` calls in a row."""

    def __init__(self, p: PbxProcess, ext: str, scenario: str, workdir: Path, calls: int, ring_ms: int = 200) -> None:
        sipp = require_tool("sipp")
        self.dir = workdir
        port = free_port("both")
        workdir.mkdir(parents=True, exist_ok=True)
        res = run_sipp(
            "register.xml",
            f"127.0.0.1:{p.port}",
            users=auth_users([ext], PASSWORD),
            workdir=workdir,
            extra=["-p", str(port)],
        )
        assert res.returncode == 0, res.errors or res.stdout[-2000:]
        args = [sipp, "-sf", str(SIPP_DIR / scenario), "-s", ext, "-t", "u1", "-i", "127.0.0.1", "-p", str(port)]
        args += ["-m", str(calls), "-d", str(ring_ms), "-nostdin", "-trace_err", "-timeout", "60s", "-timeout_error"]
        with open(workdir / "uas.out", "w") as out:
            self.proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        time.sleep(0.4)

    def wait(self, timeout: float = 40.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1

    def errors(self) -> str:
        return (
            "".join(f.read_text(errors="replace") for f in self.dir.glob("*_errors.log"))
            + (self.dir / "uas.out").read_text(errors="replace")[-3000:]
        )


class Background:
    """A sipp caller run in a thread; ``result`` when done."""

    def __init__(self, fn) -> None:
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn) -> None:
        self.result = fn()

    def join(self, timeout: float = 60.0):
        self.thread.join(timeout)
        return self.result


def provider_call(p: PbxProcess, workdir: Path, frm: str, did: str, stay_ms: int):
    """The provider sends a call from ``frm`` to ``did``; the caller hangs up ``stay_ms`` after the answer."""
    workdir.mkdir(parents=True, exist_ok=True)
    sf = workdir / "uac.xml"
    text = (SIPP_DIR / "trunk_uac_invite.xml").read_text().replace("+33611223344", frm)
    sf.write_text(text.replace('<pause milliseconds="1000"/>', f'<pause milliseconds="{stay_ms}"/>'))
    return run_sipp(str(sf), f"127.0.0.1:{p.port}", workdir=workdir, local_ip=PROVIDER, timeout=60, extra=["-s", did])


def ivr_call(p: PbxProcess, workdir: Path, frm: str, number: str, stay_ms: int):
    """Extension ``frm`` calls IVR ``number``, keys 1 (SIP INFO) 1.5 s in, hangs up ``stay_ms`` later."""
    workdir.mkdir(parents=True, exist_ok=True)
    sf = workdir / "uac.xml"
    text = (SIPP_DIR / "routing_uac_ivr_dtmf.xml").read_text().replace("Signal=9", "Signal=1")
    sf.write_text(text.replace('<pause milliseconds="4000"/>', f'<pause milliseconds="{stay_ms}"/>'))
    return run_sipp(
        str(sf),
        f"127.0.0.1:{p.port}",
        users=auth_users([frm], PASSWORD),
        workdir=workdir,
        timeout=60,
        extra=["-s", number],
    )


def entered(p: PbxProcess, n: int) -> list[dict]:
    return p.wait_for(lambda: (e := queue_events(p, kind="ENTER")) and len(e) >= n and e, 15, f"{n} callers queued")


def test_urgent_did_and_ivr_callers_arriving_last_are_answered_first(pbx, tmp_path):
    p = pbx(start=False)
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("queue", "add", "front", "--number", "600", "--strategy", "longest_idle", "--wrap-up", "0")
    p.cli("agent", "add", "alice", "--name", "Alice")  # not logged in yet: everyone waits
    p.cli("did", "add", NORMAL_DID, "--to", "queue:front", "--name", "Appointments")
    p.cli("did", "add", URGENT_DID, "--to", "queue:front", "--name", "Urgent", "--priority", "5")
    p.cli("ivr", "add", "main", "--number", "700", "--option", "1=queue:front@3", "--timeout", "15")
    p.start()
    # the normal callers hang up ~11.5 s after their answer: after the urgent one was served
    # (it leaves ~7 s after its answer) and while the IVR's caller talks to the agent
    n1 = Background(lambda: provider_call(p, tmp_path / "n1", "+33611111111", NORMAL_DID, 11500))
    entered(p, 1)
    n2 = Background(lambda: provider_call(p, tmp_path / "n2", "+33622222222", NORMAL_DID, 11500))
    entered(p, 2)
    urgent = Background(lambda: provider_call(p, tmp_path / "u", "+33633333333", URGENT_DID, 7000))
    entered(p, 3)
    ivr = Background(lambda: ivr_call(p, tmp_path / "ivr", "1009", "700", 12000))
    entered(p, 4)
    alice = Agent(p, "1001", "call_uas.xml", tmp_path / "alice", calls=2)
    login(p, "alice", "1001")
    for name, bg in (("urgent", urgent), ("ivr", ivr), ("n1", n1), ("n2", n2)):
        res = bg.join()
        assert res is not None and res.returncode == 0, (name, res and (res.errors or res.stdout[-2000:]))
    assert alice.wait() == 0, alice.errors()
    rows = {r["caller_number"]: r for r in records(p, 4, timeout=30)}
    u, v, a, b = rows["+33633333333"], rows["1009"], rows["+33611111111"], rows["+33622222222"]
    assert u["did"] == URGENT_DID_E164 and u["disposition"] == "answered" and u["agent"] == "alice", u
    assert v["disposition"] == "answered" and v["agent"] == "alice" and v["queue"] == "front", v
    assert a["disposition"] == b["disposition"] == "abandoned_queue", (a, b)
    enter = [(e["call_id"], e["data"]["priority"], e["data"]["position"]) for e in entered(p, 4)]
    # arrival order: the two normal callers first; the urgent ones go to the head of the line
    assert enter == [(a["id"], 0, 1), (b["id"], 0, 2), (u["id"], 5, 1), (v["id"], 3, 2)], enter
    p.wait_for(lambda: len(queue_events(p, kind="ABANDON")) == 2, 10, "two ABANDONs")
    connects = [(e["call_id"], e["agent"]) for e in queue_events(p, kind="CONNECT")]
    assert connects == [(u["id"], "alice"), (v["id"], "alice")], connects
    assert {e["call_id"] for e in queue_events(p, kind="ABANDON")} == {a["id"], b["id"]}


def test_rona_two_misses_pause_only_after_the_second(pbx, tmp_path):
    p = pbx()
    p.cli("queue", "add", "front", "--number", "600", "--wrap-up", "0", "--ring-timeout", "2", "--rona-misses", "2")
    p.cli("agent", "add", "alice", "--name", "Alice")
    alice = Agent(p, "1001", "call_uas_ring.xml", tmp_path / "alice", calls=2)  # rings, never answers
    login(p, "alice", "1001")
    res = caller(p, tmp_path / "caller", stay_ms=9000)
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    assert alice.wait() == 0, alice.errors()
    [cdr] = records(p)
    assert cdr["disposition"] == "abandoned_queue", cdr
    p.wait_for(lambda: "ABANDON" in [e["kind"] for e in queue_events(p, call_id=cdr["id"])], 10, "ABANDON")
    ev = [
        (e["kind"], e["agent"], e["data"].get("missed_in_row"))
        for e in queue_events(p)
        if e["kind"] in ("RING", "RINGNOANSWER", "PAUSE", "ABANDON")
    ]
    assert ev == [
        ("RING", "alice", None),
        ("RINGNOANSWER", "alice", 1),  # the first miss: rung again, not paused
        ("RING", "alice", None),
        ("RINGNOANSWER", "alice", 2),
        ("PAUSE", "alice", None),  # paused after the second
        ("ABANDON", None, None),
    ], ev
    agents = {x["id"]: x for x in json.loads(p.cli("agent", "list", "--json").stdout)}
    assert agents["alice"]["state"] == "paused" and agents["alice"]["pause_reason"] == "ring_no_answer"


def test_all_agents_busy_sends_a_new_caller_to_the_overflow_at_once(pbx, tmp_path):
    p = pbx()
    p.cli("queue", "add", "front", "--number", "600", "--wrap-up", "0")
    p.cli(
        "queue", "edit", "front", "--overflow-after", "120", "--overflow-to", "extension:1002", "--overflow-when-busy"
    )
    p.cli("agent", "add", "alice", "--name", "Alice")
    alice = Agent(p, "1001", "call_uas.xml", tmp_path / "alice", calls=1)
    service = Phone(p, "1002", "call_uas.xml", tmp_path / "service", ring_ms=200)  # the answering service
    login(p, "alice", "1001")
    first = Background(lambda: caller(p, tmp_path / "first", stay_ms=9000, frm="1009"))
    p.wait_for(lambda: queue_events(p, kind="CONNECT"), 15, "the first caller with alice")
    t0 = time.monotonic()
    res = caller(p, tmp_path / "second", stay_ms=3000, frm="1003")
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    assert time.monotonic() - t0 < 8.5  # answered by the service at once, not after 120 s
    assert service.wait() == 0, service.errors()
    res1 = first.join()
    assert res1 is not None and res1.returncode == 0, res1 and (res1.errors or res1.stdout[-2000:])
    assert alice.wait() == 0, alice.errors()
    rows = {r["caller_number"]: r for r in records(p, 2)}
    one, two = rows["1009"], rows["1003"]
    assert one["disposition"] == "answered" and one["agent"] == "alice", one
    assert two["disposition"] == "overflowed_out" and two["agent"] is None and two["extension"] == "1002", two
    ev = queue_events(p, call_id=two["id"])
    assert [e["kind"] for e in ev] == ["ENTER", "OVERFLOW"], ev
    ov = ev[1]["data"]
    assert ov["reason"] == "all_busy" and ov["target"] == "1002" and ov["target_kind"] == "extension", ov
    assert ov["wait"] < 1.0, ov
