"""The event stream of a running pypbx, read as a consumer does: the local API ``events``
and ``pypbx events`` (resume from a sequence number), against the books."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.harness import PbxProcess
from tests.phone.driver import PjPhone

pytestmark = pytest.mark.slow


def _state(ph: PjPhone, call: int, state: str, timeout: float = 15) -> dict:
    return ph.wait_event(
        lambda e: e.get("event") == "state" and e.get("call") == call and e["state"] == state,
        timeout,
        f"call {call} {state}",
    )


def test_a_call_on_the_stream_and_a_consumer_resuming_from_n(phone_pbx):
    p: PbxProcess = phone_pbx()
    a, b = phone_pbx.phone(p, "1001"), phone_pbx.phone(p, "1002")
    call_a = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "1002 to ring")
    time.sleep(0.3)
    b.cmd("answer", call=inc["call"])
    _state(a, call_a, "CONFIRMED")
    time.sleep(1.0)
    b.cmd("hangup", call=inc["call"])
    _state(a, call_a, "DISCONNECTED")

    def closed():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        return rows if rows and all(r["disposition"] != "in_progress" for r in rows) else None

    row = p.wait_for(closed, 15, "the call record to close")[0]

    everything = p.api("events", since=0)
    evs = everything["events"]
    assert everything["gap"] is None
    assert [e["seq"] for e in evs] == list(range(1, everything["last_seq"] + 1))
    regs = [e for e in evs if e["event"] == "registration.added"]
    assert {e["aor"] for e in regs} == {"1001", "1002"}
    life = [e["event"] for e in evs if e.get("call_id") == row["id"] and e["event"] != "call.step"]
    assert life[0] == "call.offered" and life[-1] == "call.ended" and life.count("call.ended") == 1
    assert "call.answered" in life
    ended = next(e for e in evs if e["event"] == "call.ended")
    assert ended["disposition"] == row["disposition"] == "answered" and ended["side"] == "callee"

    n = evs[len(evs) // 2]["seq"]
    resumed = p.api("events", since=n, run=everything["run"])
    assert resumed["gap"] is None and [e["seq"] for e in resumed["events"]] == list(range(n + 1, evs[-1]["seq"] + 1))
    out = p.cli("events", "--since", str(n), "--json").stdout.splitlines()
    assert [json.loads(x)["seq"] for x in out][: len(resumed["events"])] == [e["seq"] for e in resumed["events"]]
    assert p.status()["events"]["last_seq"] >= evs[-1]["seq"]
