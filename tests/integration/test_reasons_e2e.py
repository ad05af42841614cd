"""Knowing who calls and why, end to end (issue 10): a real ``pypbx run``, the sipp fake
provider on 127.0.0.2 calling a smart-routed DID (tests/sipp/fl_provider_uac.xml, as in
test_frontline_e2e) and a pjsua2 agent phone:

* a caller on the imported patient list and a new caller: each call records its caller
  kind at arrival, smart routing sends the patient to the returning-patient queue, and
  ``report callers`` counts them (new-patient rate, routing hit rate);
* the agent keys ``*71`` during the first call (RFC 2833 on the agent's leg): reason 1 is
  set and the agent's phone hears the confirmation tone; after the second call the agent
  dials ``*72`` (wrap-up): reason 2 on that call; both show in ``report reasons``;
* ``pypbx reason set`` (the local API) replaces the first call's reason by a complaint, which
  e-mails the manager through the outbox (a local SMTP sink);
* an unhappy survey score (1) then a spoken comment (# ends it): ``survey list --unhappy``
  lists it with its file, which holds the caller's voice (a 440 Hz tone).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.integration.harness import dominant_freq, tone
from tests.integration.test_calls import _state
from tests.integration.test_frontline_e2e import DID, in_thread, nth_incoming, ok, pause, provider_dials, trunk
from tests.integration.test_trunks import call_events, calls_rows, wait_closed
from tests.unit.test_notify import SmtpSink

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx: extensions 1001-1002)."""
    return trunk_pbx


PATIENT = "+33611111111"
NEWCOMER = "+33622222222"


def reasons_of(p, call_id: str) -> list[dict]:
    return [json.loads(e["detail"]) for e in call_events(p, call_id) if e["kind"] == "reason"]


@pytest.fixture
def smtp():
    sink = SmtpSink()
    yield sink
    sink.close()


def test_caller_kinds_and_reasons_from_the_agents_phone(pbx, phone_pbx, smtp, tmp_path):
    p = pbx(notify={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "mail_from": "pbx@clinic.test"})
    trunk(p)
    p.cli("queue", "add", "returning", "--wrap-up", "0")
    p.cli("queue", "add", "desk", "--wrap-up", "0")
    p.cli("agent", "add", "alice", "--name", "Alice")
    p.cli("did", "add", DID, "--known", "queue:returning", "--new", "queue:desk", "--name", "Appointments")
    patients = tmp_path / "patients.csv"
    patients.write_text(f"number,name,patient_id\n{PATIENT},Marie Dupont,P-1\n")
    p.cli("callers", "import", str(patients))
    p.cli("reason", "add", "appointment", "Appointment", "--digit", "1")
    p.cli("reason", "add", "results", "Test results", "--digit", "2")
    p.cli("reason", "add", "complaint", "Complaint", "--digit", "9", "--notify", "manager@clinic.test")
    p.start()
    alice = phone_pbx.phone(p, "1001")
    p.cli("agent", "login", "alice", "1001")

    # 1. the patient; alice keys *71 during the call and hears the confirmation tone
    t, out = in_thread(provider_dials, p, tmp_path / "prov1", DID, pause(7000), caller=PATIENT)
    inc = nth_incoming(alice, 0)
    alice.cmd("answer", call=inc["call"])
    _state(alice, inc["call"], "CONFIRMED")
    p.wait_for(lambda: any(r["answered_at"] for r in calls_rows(p)), 10, "the call answered")
    heard = tmp_path / "alice.wav"
    alice.cmd("record", call=inc["call"], file=str(heard))
    time.sleep(0.5)
    alice.cmd("dtmf", call=inc["call"], digits="*71")
    first = calls_rows(p)[0]["id"]
    p.wait_for(lambda: reasons_of(p, first), 10, "the reason set from the phone")
    time.sleep(1.2)  # the tone (~0.4 s) plays
    alice.cmd("stop_record", call=inc["call"])
    _state(alice, inc["call"], "DISCONNECTED", timeout=15)  # the provider hangs up
    t.join(30)
    assert ok(out["res"]), out["res"].errors or out["res"].stdout[-3000:]
    data, rate = sf.read(heard, dtype="int16")
    data = data if data.ndim == 1 else data[:, 0]
    loud = np.flatnonzero(np.abs(data.astype(float)) > 1000)
    assert len(loud) > 0.2 * rate, "alice heard no confirmation tone"
    f = dominant_freq(data[loud[0] : loud[-1] + 1], rate)  # the two rising beeps: 880 then 1320 Hz
    assert abs(f - 880) < 15 or abs(f - 1320) < 15, f

    # 2. a new caller; after it alice dials *72 in wrap-up
    t, out = in_thread(provider_dials, p, tmp_path / "prov2", DID, pause(2500), caller=NEWCOMER)
    inc = nth_incoming(alice, 1)
    alice.cmd("answer", call=inc["call"])
    _state(alice, inc["call"], "DISCONNECTED", timeout=15)
    t.join(30)
    assert ok(out["res"]), out["res"].errors or out["res"].stdout[-3000:]
    wait_closed(p, 2)
    code = alice.cmd("call", uri=f"sip:*72@127.0.0.1:{p.port}")["call"]
    _state(alice, code, "CONFIRMED")
    _state(alice, code, "DISCONNECTED", timeout=10)  # the tone, then the PBX hangs up
    rows = wait_closed(p, 3)
    assert [(r["caller_number"], r["caller_kind"], r["queue"], r["disposition"]) for r in rows[:2]] == [
        (PATIENT, "patient", "returning", "answered"),
        (NEWCOMER, "new", "desk", "answered"),
    ], rows
    assert rows[2]["callee_number"] == "*72" and rows[2]["caller_kind"] is None  # an internal call: no kind
    second = rows[1]["id"]
    assert [(r["code"], r["via"], r["agent"], r["extension"]) for r in reasons_of(p, first)] == [
        ("appointment", "phone", "alice", "1001")
    ]
    assert [(r["code"], r["via"], r["agent"]) for r in reasons_of(p, second)] == [("results", "wrapup", "alice")]

    c = json.loads(p.cli("report", "callers", "--json").stdout)
    assert c["total"] == {"calls": 2, "patient": 1, "known": 0, "new": 1, "new_rate": 0.5}
    assert c["lines"]["Appointments"]["calls"] == 2
    assert c["routing"] == {"returning": 1, "recognised": 1, "answered": 1, "hits": 1, "hit_rate": 1.0}
    r = json.loads(p.cli("report", "reasons", "--json").stdout)
    assert [(x["code"], x["calls"]) for x in r["reasons"]] == [("appointment", 1), ("results", 1)]
    assert r["agents"] == {"alice": {"appointment": 1, "results": 1}}
    assert r["lines"] == {"Appointments": {"appointment": 1, "results": 1}}
    assert r["via"] == {"phone": 1, "wrapup": 1}
    assert "Test results" in p.cli("report", "reasons").stdout

    # 3. the local API: the first call was a complaint after all -> the manager is e-mailed
    p.cli("reason", "set", first[:8], "complaint")
    assert [r["via"] for r in reasons_of(p, first)] == ["phone", "api"]
    r = json.loads(p.cli("report", "reasons", "--json").stdout)
    assert [(x["code"], x["calls"]) for x in r["reasons"]] == [("complaint", 1), ("results", 1)]  # the last one counts
    assert r["via"] == {"api": 1, "wrapup": 1}
    p.wait_for(lambda: smtp.messages, 15, "the complaint e-mailed")
    [(frm, rcpts, _raw)] = smtp.messages
    em = smtp.parsed()
    assert frm == "pbx@clinic.test" and rcpts == ["manager@clinic.test"]
    assert em["Subject"] == f"Call reason Complaint: {PATIENT} (Appointments)"
    assert first in em.get_content() and "alice" in em.get_content()


def test_unhappy_score_then_a_spoken_comment(phone_pbx, tmp_path):
    p = phone_pbx()
    p.cli("survey", "enable")
    a, b = phone_pbx.phone(p, "1001"), phone_pbx.phone(p, "1002")
    call_a = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "1002 to ring")
    b.cmd("answer", call=inc["call"])
    _state(a, call_a, "CONFIRMED")
    time.sleep(1.0)
    b.cmd("hangup", call=inc["call"])  # the callee first: the survey for the caller

    def step(kind: str) -> bool:
        return any(e["kind"] == kind for r in calls_rows(p) for e in call_events(p, r["id"]))

    p.wait_for(lambda: step("survey_offered"), 10, "the survey question")
    time.sleep(0.5)
    a.cmd("dtmf", call=call_a, digits="1")
    p.wait_for(lambda: step("survey_comment_offered"), 10, "the comment offered")
    time.sleep(0.3)
    a.cmd("dtmf", call=call_a, digits="#")  # skips the prompt: the beep, then the recording
    p.wait_for(lambda: step("survey_comment_recording"), 10, "the comment recording")
    a.cmd("play", call=call_a, file=str(tone(tmp_path / "440.wav", 440)))
    time.sleep(2.5)
    a.cmd("dtmf", call=call_a, digits="#")
    _state(a, call_a, "DISCONNECTED", timeout=15)  # thanks, then the PBX hangs up
    [u] = p.wait_for(
        lambda: (x := json.loads(p.cli("survey", "list", "--unhappy", "--json").stdout)) and x[0]["comment"] and x,
        10,
        "the unhappy answer with its comment",
    )
    [r] = calls_rows(p)
    assert (u["call_id"], u["score"], u["caller"], u["agent"]) == (r["id"], 1, "1001", "1002")
    path = Path(u["comment"])
    assert path.exists() and path.parent.parent == p.cfg.data_dir / "recordings" and r["id"] in path.name
    assert 1.5 < u["comment_seconds"] < 4.5
    data, rate = sf.read(path, dtype="int16")
    mid = data[len(data) // 4 : 3 * len(data) // 4]
    assert np.sqrt(np.mean(mid.astype(float) ** 2)) > 300 and abs(dominant_freq(mid, rate) - 440) < 15
    assert path.name in p.cli("survey", "list", "--unhappy").stdout


def test_the_agents_code_in_a_queue_call_is_not_passed_to_the_patient(phone_pbx, tmp_path):
    """A patient's phone (pjsua2, which reports every RFC 2833 digit it receives) in a queue
    call: the agent keys *71, the reason is set, and the patient's phone got no digit."""
    p = phone_pbx()
    p.cli("queue", "add", "desk", "--number", "600", "--wrap-up", "0")
    p.cli("agent", "add", "alice", "--name", "Alice")
    p.cli("reason", "add", "appointment", "Appointment", "--digit", "1")
    alice, patient = phone_pbx.phone(p, "1001"), phone_pbx.phone(p, "1002")
    p.cli("agent", "login", "alice", "1001")
    call = patient.cmd("call", uri=f"sip:600@127.0.0.1:{p.port}")["call"]
    inc = alice.wait_event(lambda e: e.get("event") == "incoming", 15, "alice to ring")
    alice.cmd("answer", call=inc["call"])
    _state(alice, inc["call"], "CONFIRMED")
    p.wait_for(lambda: any(r["answered_at"] for r in calls_rows(p)), 10, "the queue call answered")
    time.sleep(0.5)
    alice.cmd("dtmf", call=inc["call"], digits="*71")
    [r] = calls_rows(p)
    p.wait_for(lambda: reasons_of(p, r["id"]), 10, "the reason set from the phone")
    time.sleep(1.0)  # time for any relayed digit to arrive
    assert not [e for e in patient.seen if e.get("event") == "dtmf"]
    patient.cmd("hangup", call=call)
    _state(alice, inc["call"], "DISCONNECTED")
    [r] = wait_closed(p, 1)
    assert r["queue"] == "desk" and r["agent"] == "alice" and r["disposition"] == "answered"
    assert [(x["code"], x["via"], x["agent"]) for x in reasons_of(p, r["id"])] == [("appointment", "phone", "alice")]
