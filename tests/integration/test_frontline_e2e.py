"""The front line end to end: a real ``pypbx run``, the sipp fake provider on 127.0.0.2
(test_trunks.Provider; its calls to DIDs from tests/sipp/fl_provider_uac.xml, with a tone
streamed by sipp's rtp_stream and RFC 2833 digits), pjsua2 test phones and sipp phones:

* a queue whose maximum wait ends in its mailbox (greeting, beep, message listed by the CLI);
* smart routing of a new caller with the literal 20 s overflow to the front desk, answered;
* ring groups with real phones (all: first to answer wins, the other gets CANCEL; order);
* DID -> an outside number through the trunk, DID -> IVR + DTMF -> extension, DID -> mailbox;
* audio both ways on a DID call (the provider echoes the phone's tone back).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.integration.harness import SIPP_DIR, PbxProcess, dominant_freq, free_port, run_sipp, tone
from tests.integration.test_calls import _state
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import queue_events
from tests.integration.test_trunks import PROVIDER, Provider, call_events, calls_rows, wait_closed

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx)."""
    return trunk_pbx


DID = "0144556677"
DID_E164 = "+33144556677"  # as stored (issue 10)
CALLER = "+33622222222"


# --------------------------------------------------------------------------- helpers


def pause(ms: int) -> str:
    return f'<pause milliseconds="{ms}"/>'


def stream(raw_alaw: Path) -> str:
    """sipp streams this raw A-law file (looped) as RTP payload type 8."""
    return f'<nop><action><exec rtp_stream="{raw_alaw},-1,8"/></action></nop>'


def dtmf(digit: str) -> str:
    """One RFC 2833 digit from sipp's own pcaps (payload type 101)."""
    name = {"#": "pound", "*": "star"}.get(digit, digit)
    return f'<nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_{name}.pcap"/></action></nop>'


def alaw_tone(path: Path, freq: float, seconds: float = 10.0) -> Path:
    """A raw A-law (no header) tone, as sipp's rtp_stream wants it."""
    t = np.arange(int(seconds * 8000)) / 8000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16), 8000, format="RAW", subtype="ALAW")
    return path


def provider_dials(
    p: PbxProcess,
    workdir: Path,
    did: str,
    *body: str,
    caller: str = CALLER,
    extra: tuple[str, ...] = (),
    timeout: float = 40,
    headers: tuple[str, ...] = (),
):
    """The provider calls ``did`` from ``caller`` (plus ``headers`` in its INVITE); after the
    answer: ``body``; then BYE."""
    workdir.mkdir(parents=True, exist_ok=True)
    sfile = workdir / "fl_provider_uac.xml"
    sfile.write_text(
        (SIPP_DIR / "fl_provider_uac.xml")
        .read_text()
        .replace("__CALLER__", caller)
        .replace("__BODY__", "\n  ".join(body))
        .replace("__HEADERS__", "".join("\n      " + h for h in headers))
    )
    return run_sipp(
        str(sfile),
        f"127.0.0.1:{p.port}",
        workdir=workdir,
        local_ip=PROVIDER,
        timeout=timeout,
        extra=["-s", did, "-mp", str(free_port("udp", PROVIDER)), *extra],
    )


def in_thread(fn, *args, **kw) -> tuple[threading.Thread, dict]:
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("res", fn(*args, **kw)), daemon=True)
    t.start()
    return t, out


def ok(res) -> bool:
    return res.returncode == 0 and res.successful == 1


def events(p: PbxProcess, call_id: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in call_events(p, call_id):
        out.setdefault(e["kind"], []).append(json.loads(e["detail"] or "{}"))
    return out


def nth_incoming(ph, k: int, timeout: float = 15) -> dict:
    """The ``k``-th (0-based) incoming call of pjsua2 phone ``ph``."""
    got: list[dict] = []
    return ph.wait_event(
        lambda e: e.get("event") == "incoming" and (got.append(e) or len(got) > k),
        timeout,
        f"{ph.name}: incoming call #{k + 1}",
    )


def wait_kind(p: PbxProcess, kind: str, n: int = 1, timeout: float = 15) -> None:
    """Wait until ``n`` call events ``kind`` are in the books (over all calls)."""
    p.wait_for(
        lambda: sum(e["kind"] == kind for r in calls_rows(p) for e in call_events(p, r["id"])) >= n,
        timeout,
        f"{n} call event(s) {kind}",
    )


def trunk(p: PbxProcess, port: int = 5060, *opts: str) -> None:
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{port}", *opts)


# --------------------------------------------------------------------------- queue -> mailbox


def test_queue_max_wait_ends_in_its_mailbox(pbx, tmp_path):
    """Nobody answers within the queue's 3 s maximum wait: the caller hears the mailbox
    greeting and the beep and leaves a message (a 1 kHz tone), listed by the CLI in the
    queue's box; the record keeps the queue and says where the call went."""
    p = pbx()
    trunk(p)
    p.cli("voicemail", "box", "front")
    p.cli("queue", "add", "front", "--wrap-up", "0", "--max-wait", "3", "--fallback", "voicemail")
    p.cli("agent", "add", "alice", "--name", "Alice")  # not logged in: nobody answers
    p.cli("did", "add", DID, "--to", "queue:front", "--name", "Appointments")
    p.start()
    res = provider_dials(p, tmp_path / "prov", DID, stream(alaw_tone(tmp_path / "1k.alaw", 1000)), pause(9000))
    assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    [r] = wait_closed(p)
    assert r["disposition"] == "voicemail" and r["queue"] == "front" and r["did"] == DID_E164
    assert "queue_timeout" in r["flags"].split(",") and r["service_line"] == "Appointments"
    ev = events(p, r["id"])
    assert ev["queue_leave"] == [{"reason": "timeout", "target": {"kind": "voicemail", "target": "front"}}]
    assert ev["voicemail"][0]["box"] == "front" and "voicemail_recording" in ev  # greeting + beep played out
    qe = queue_events(p, call_id=r["id"])
    assert [e["kind"] for e in qe] == ["ENTER", "TIMEOUT"] and 2.9 < qe[1]["data"]["wait"] < 4.5
    rep = json.loads(p.cli("calls", "report", "--json").stdout)
    assert rep["answered"] == 0 and rep["dispositions"]["voicemail"] == 1 and rep["balanced"]
    [m] = p.wait_for(lambda: json.loads(p.cli("voicemail", "list", "front", "--json").stdout), 10, "the message")
    assert m["box"] == "front" and m["caller"] == CALLER and m["call_id"] == r["id"] and not m["heard"]
    assert 1.5 < m["seconds"] < 4.5, m
    data, rate = sf.read(m["path"], dtype="int16")
    mid = data[len(data) // 4 : 3 * len(data) // 4]
    assert abs(dominant_freq(mid, rate) - 1000) < 20


# --------------------------------------------------------------------------- 1. smart routing + 20 s overflow


def test_new_caller_overflows_after_20_s_to_the_front_desk_and_is_answered(pbx, tmp_path):
    """DID --known queue:front_desk --new queue:call_centre, each overflowing to the other
    after 20 s. A new caller enters call_centre, where its only agent (bob) is logged out;
    after 20 s it overflows to front_desk, where alice's phone (a sipp UAS) answers."""
    p = pbx()
    trunk(p)
    p.cli("queue", "add", "front_desk", "--wrap-up", "0")
    p.cli(
        "queue",
        "add",
        "call_centre",
        "--wrap-up",
        "0",
        "--skills",
        "new_patients:5",
        "--overflow-after",
        "20",
        "--overflow-to",
        "queue:front_desk",
    )
    p.cli("queue", "edit", "front_desk", "--overflow-after", "20", "--overflow-to", "queue:call_centre")
    p.cli("agent", "add", "alice", "--name", "Alice")  # front desk: no skills
    p.cli("agent", "add", "bob", "--name", "Bob", "--skills", "new_patients:8")  # stays logged out
    p.cli("did", "add", DID, "--known", "queue:front_desk", "--new", "queue:call_centre", "--name", "Appointments")
    p.start()
    alice = Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=300)
    p.cli("agent", "login", "alice", "1001")
    res = provider_dials(p, tmp_path / "prov", DID, pause(23500))
    assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    assert alice.wait() == 0, alice.errors()
    [r] = wait_closed(p)
    assert r["direction"] == "inbound" and r["did"] == DID_E164 and r["service_line"] == "Appointments"
    assert r["caller_number"] == CALLER and r["disposition"] == "answered" and r["hangup_side"] == "caller"
    assert r["queue"] == "front_desk" and r["agent"] == "alice" and r["extension"] == "1001"
    ev = events(p, r["id"])
    assert ev["queue_overflow"] == [{"from_queue": "call_centre", "to_queue": "front_desk"}]
    assert "caller_lookup" in ev
    p.wait_for(
        lambda: "COMPLETE_CALLER" in [e["kind"] for e in queue_events(p, call_id=r["id"])], 10, "COMPLETE_CALLER"
    )
    qe = queue_events(p, call_id=r["id"])
    assert [(e["kind"], e["queue"], e["agent"]) for e in qe] == [
        ("ENTER", "call_centre", None),
        ("OVERFLOW", "call_centre", None),
        ("ENTER", "front_desk", None),
        ("RING", "front_desk", "alice"),
        ("CONNECT", "front_desk", "alice"),
        ("COMPLETE_CALLER", "front_desk", "alice"),
    ], qe
    ov = qe[1]["data"]
    assert 20.0 <= ov["wait"] < 22 and ov["target"] == "front_desk", ov
    assert qe[4]["ts"] - qe[0]["ts"] >= 20.0


# --------------------------------------------------------------------------- 2. ring groups


def test_ring_groups_with_real_phones(pbx, phone_pbx, tmp_path):
    """all: an internal call (through an IVR key) and a DID call ring 1001 and 1002 at once;
    the first to answer gets the call, the other phone's ringing is cancelled. order: 1001
    does not answer within its 3 s, then 1002 rings and answers."""
    p = pbx()
    p.add_extensions(["1003"], PASSWORD)
    trunk(p)
    p.cli("group", "add", "desk_all", "--members", "1001,1002", "--strategy", "all", "--ring-time", "15")
    p.cli("group", "add", "desk_order", "--members", "1001,1002", "--strategy", "order", "--ring-time", "3")
    p.cli(
        "ivr",
        "add",
        "main",
        "--number",
        "700",
        "--option",
        "1=group:desk_all",
        "--option",
        "2=group:desk_order",
        "--timeout",
        "15",
    )
    p.cli("did", "add", DID, "--to", "group:desk_all", "--name", "Reception")
    p.start()
    a, b, c = (phone_pbx.phone(p, e) for e in ("1001", "1002", "1003"))

    def via_ivr(key: str, n: int) -> int:
        call = c.cmd("call", uri=f"sip:700@127.0.0.1:{p.port}")["call"]
        _state(c, call, "CONFIRMED")
        wait_kind(p, "ivr_menu", n)
        c.cmd("dtmf", call=call, digits=key)
        return call

    # all, internal: both ring, 1001 answers, 1002's ringing is cancelled
    call = via_ivr("1", 1)
    ia, ib = nth_incoming(a, 0), nth_incoming(b, 0)
    a.cmd("answer", call=ia["call"])
    _state(c, call, "CONFIRMED")
    cancelled = _state(b, ib["call"], "DISCONNECTED")
    assert cancelled["code"] == 487, cancelled  # CANCEL -> 487 Request Terminated
    _state(a, ia["call"], "CONFIRMED")
    wait_kind(p, "answered", 1)  # bridged by the PBX: now the caller leaves
    c.cmd("hangup", call=call)
    _state(a, ia["call"], "DISCONNECTED")
    # all, from the DID: 1002 is the first to answer this time
    t, out = in_thread(provider_dials, p, tmp_path / "prov", DID, pause(3000))
    ia, ib = nth_incoming(a, 1), nth_incoming(b, 1)
    b.cmd("answer", call=ib["call"])
    cancelled = _state(a, ia["call"], "DISCONNECTED")
    assert cancelled["code"] == 487, cancelled
    _state(b, ib["call"], "DISCONNECTED", timeout=15)  # the provider hangs up
    t.join(30)
    assert ok(out["res"]), out["res"].errors or out["res"].stdout[-3000:]
    # order: 1001 rings 3 s unanswered, then 1002 rings and answers
    call = via_ivr("2", 2)
    ia = nth_incoming(a, 2)
    t1 = time.monotonic()
    ib = nth_incoming(b, 2, timeout=10)
    assert time.monotonic() - t1 >= 2.5
    assert a.wait_event(
        lambda e: e.get("event") == "state" and e.get("call") == ia["call"] and e["state"] == "DISCONNECTED",
        1,
        "1001's turn over",
    )
    b.cmd("answer", call=ib["call"])
    _state(c, call, "CONFIRMED")
    _state(b, ib["call"], "CONFIRMED")
    wait_kind(p, "answered", 3)
    c.cmd("hangup", call=call)
    _state(b, ib["call"], "DISCONNECTED")
    rows = wait_closed(p, 3)
    assert [(r["disposition"], r["extension"], r["direction"]) for r in rows] == [
        ("answered", "1001", "internal"),
        ("answered", "1002", "inbound"),
        ("answered", "1002", "internal"),
    ], rows
    assert rows[1]["did"] == DID_E164 and rows[1]["service_line"] == "Reception" and rows[1]["caller_number"] == CALLER
    evs = [events(p, r["id"]) for r in rows]
    assert [e["ring_group"][0]["group"] for e in evs] == ["desk_all", "desk_all", "desk_order"]
    assert [e["ring_group_answered"][0]["extension"] for e in evs] == ["1001", "1002", "1002"]
    assert [d["extensions"] for d in evs[2]["ring_group_dial"]] == [["1001"], ["1002"]]
    assert evs[2]["ring_group_no_answer"][0]["extensions"] == ["1001"]
    assert evs[0]["ring_group_dial"][0]["extensions"] == ["1001", "1002"]


# --------------------------------------------------------------------------- 3. DID destinations live


def test_did_destinations_external_ivr_and_voicemail(pbx, tmp_path):
    """From the provider: a DID forwarded back out through the trunk (the provider's UAS
    gets the number with the trunk's caller ID), a DID to an IVR where the caller's DTMF 3
    reaches extension 1002 (a sipp phone), a DID to a mailbox (a message, listed)."""
    uas = Provider(
        "trunk_uas.xml", tmp_path / "uas", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"}
    )
    p = pbx()
    trunk(p, uas.port, "--caller-id", "+33100000000")
    p.cli("ivr", "add", "main", "--option", "3=extension:1002", "--timeout", "15")
    p.cli("voicemail", "box", "desk")
    p.cli("did", "add", "0144556601", "--to", "external:+33612345678", "--name", "Forwarded")
    p.cli("did", "add", "0144556602", "--to", "ivr:main", "--name", "Menu")
    p.cli("did", "add", "0144556603", "--to", "voicemail:desk", "--name", "Messages")
    p.start()
    try:
        res = provider_dials(p, tmp_path / "fwd", "0144556601", pause(2000))
        assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert uas.wait() == 0, uas.errors()
    finally:
        uas.kill()
    desk = Phone(p, "1002", "call_uas.xml", tmp_path / "desk", ring_ms=200)
    res = provider_dials(p, tmp_path / "ivr", "0144556602", pause(1500), dtmf("3"), pause(3000))
    assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    assert desk.wait() == 0, desk.errors()
    res = provider_dials(p, tmp_path / "vm", "0144556603", stream(alaw_tone(tmp_path / "440.alaw", 440)), pause(6000))
    assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    fwd, ivr, vm = wait_closed(p, 3)
    # forwarded out: answered by the outside number, the trunk's caller ID, channel given back
    assert (fwd["did"], fwd["service_line"], fwd["callee_number"]) == ("+33144556601", "Forwarded", "+33144556601")
    assert fwd["direction"] == "inbound" and fwd["disposition"] == "answered", fwd
    ev = events(p, fwd["id"])
    assert ev["did_forward"][0]["number"] == "+33612345678"
    assert ev["trunk_dial"][0]["trunk"] == "prov" and ev["trunk_dial"][0]["caller_id"] == "+33100000000"
    assert [(t["name"], t["active_calls"]) for t in p.status()["trunks"]] == [("prov", 0)]
    # IVR: the key reached the extension
    assert (ivr["did"], ivr["disposition"], ivr["extension"]) == ("+33144556602", "answered", "1002"), ivr
    ev = events(p, ivr["id"])
    assert ev["ivr_choice"][0]["digits"] == "3" and ev["ivr_choice"][0]["action"] == "extension:1002"
    assert "ivr_dial" in ev and "dtmf" in ev
    # mailbox: the message, with the DID and the caller
    assert (vm["did"], vm["disposition"]) == ("+33144556603", "voicemail"), vm
    [m] = json.loads(p.cli("voicemail", "list", "desk", "--json").stdout)
    assert m["box"] == "desk" and m["caller"] == CALLER and m["call_id"] == vm["id"] and 2 < m["seconds"] < 4.5, m
    data, rate = sf.read(m["path"], dtype="int16")
    assert abs(dominant_freq(data[len(data) // 4 : 3 * len(data) // 4], rate) - 440) < 15


# --------------------------------------------------------------------------- 4. audio both ways on a DID call


def test_did_call_audio_both_ways(pbx, phone_pbx, tmp_path):
    """A DID call answered by a pjsua2 phone playing 440 Hz; the provider echoes every RTP
    packet it gets (sipp -rtp_echo): the phone hears its own tone back (phone -> PBX ->
    provider -> PBX -> phone), and the PBX's recording has it on both channels."""
    p = pbx()
    trunk(p)
    p.cli("did", "add", DID, "--to", "extension:1001", "--name", "Appointments")
    p.start()
    ph = phone_pbx.phone(p, "1001")
    t, out = in_thread(provider_dials, p, tmp_path / "prov", DID, pause(4000), extra=("-rtp_echo",))
    inc = nth_incoming(ph, 0)
    ph.cmd("answer", call=inc["call"])
    ph.cmd("play", call=inc["call"], file=str(tone(tmp_path / "440.wav", 440)))
    ph.cmd("record", call=inc["call"], file=str(tmp_path / "heard.wav"))
    ph.wait_event(
        lambda e: e.get("event") == "media" and e.get("call") == inc["call"] and e["active"], 10, "the phone's media"
    )
    time.sleep(2.5)  # listen a while (the provider stays 4 s)
    ph.cmd("stop_record", call=inc["call"])  # the WAV is complete on disk
    _state(ph, inc["call"], "DISCONNECTED", timeout=15)  # the provider hangs up
    t.join(30)
    assert ok(out["res"]), out["res"].errors or out["res"].stdout[-3000:]
    [r] = wait_closed(p)
    assert r["did"] == DID_E164 and r["disposition"] == "answered" and r["extension"] == "1001"
    heard, rate = sf.read(tmp_path / "heard.wav", dtype="int16")
    mid = heard[len(heard) // 4 : 3 * len(heard) // 4]
    assert np.sqrt(np.mean(mid.astype(float) ** 2)) > 300 and abs(dominant_freq(mid, rate) - 440) < 15

    def saved():
        recs = json.loads(p.cli("recordings", "--json").stdout)
        return recs if recs and recs[0]["recording_status"] == "complete" else None

    rec = p.wait_for(saved, 15, "the recording")[0]
    data, rate = sf.read(rec["recording_path"], dtype="int16")
    assert data.ndim == 2
    for ch in (0, 1):  # left: the provider (the echo), right: the phone
        x = data[len(data) // 4 : 3 * len(data) // 4, ch]
        assert np.sqrt(np.mean(x.astype(float) ** 2)) > 300 and abs(dominant_freq(x, rate) - 440) < 15, ch
