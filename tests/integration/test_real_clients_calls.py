"""What real phones and trunks do on calls (docs: /work/shared/real-clients.md, "Calls"),
each over a real ``pypbx run`` with sipp and/or pjsua2 phones: the call is answered, audio
flows where it matters (the PBX recording's two channels), and the call record is right.

1. late offer (INVITE without SDP, answer in the ACK)      tests/sipp/call_uac_late_offer.xml
2. early media (183 Session Progress with SDP, then 200)   tests/sipp/rc_uas_early_media.xml
3. reliable provisional responses, Supported / Require 100rel (PRACK)
4. session timers: refresh by re-INVITE and by UPDATE
5. telephone-event on PT 96; a pjsua2 phone's last DTMF digit
6. codecs: G.722-only and PCMU-only phones meet a PCMA-only phone (the bridge transcodes)
7. hold with a=sendonly and with c=0.0.0.0, then unhold
8. a phone that accepts SIP only from its registrar
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.integration.harness import SIPP_DIR, PbxProcess, auth_users, dominant_freq, run_sipp, tone
from tests.integration.test_proxy_calls import Phone

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"


@pytest.fixture
def pbx(phone_pbx):
    return phone_pbx


# -- helpers -----------------------------------------------------------------------------
def scenario(tmp_path: Path, name: str, **subs: str) -> str:
    """A scenario from tests/sipp with ``__KEY__`` placeholders filled in, as a path."""
    text = (SIPP_DIR / name).read_text()
    for k, v in subs.items():
        text = text.replace(f"__{k}__", v)
    import re

    assert not re.search(r"__[A-Z_]+__", text), "unfilled placeholder"
    out = tmp_path / f"{Path(name).stem}-{time.monotonic_ns()}.xml"
    out.write_text(text)
    return str(out)


def sipp_call(p: PbxProcess, sc: str, workdir: Path, *, caller: str = "1001", to: str = "1002", timeout: float = 30):
    res = run_sipp(
        sc,
        f"127.0.0.1:{p.port}",
        users=auth_users([caller], PASSWORD),
        workdir=workdir,
        timeout=timeout,
        extra=["-s", to],
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    return res


def records(p: PbxProcess, n: int = 1, timeout: float = 15) -> list[dict]:
    def done():
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        return rows if len(rows) >= n and all(r["disposition"] != "in_progress" for r in rows) else None

    return sorted(p.wait_for(done, timeout, f"{n} closed call records"), key=lambda r: r["offered_at"])


def events(p: PbxProcess, call_id: str) -> list[tuple[str, dict]]:
    evs = json.loads(p.cli("calls", "show", call_id, "--json").stdout)["events"]
    return [(e["kind"], json.loads(e["detail"]) if e.get("detail") else {}) for e in evs]


def recording(p: PbxProcess, call_id: str) -> tuple[np.ndarray, int]:
    def saved():
        recs = [
            x
            for x in json.loads(p.cli("recordings", "--json").stdout)
            if x["recording_status"] == "complete" and x.get("id", x.get("call_id")) == call_id
        ]
        return recs

    rec = p.wait_for(saved, 15, "the recording")[0]
    data, rate = sf.read(rec["recording_path"], dtype="int16")
    assert rate == 8000 and data.ndim == 2 and data.shape[1] == 2
    return data, rate


def speech_seconds(x: np.ndarray, rate: int) -> float:
    """Seconds of a channel with signal in it (20 ms frames above a low RMS)."""
    n = len(x) // (rate // 50)
    frames = x[: n * (rate // 50)].astype(float).reshape(n, rate // 50)
    return float(np.count_nonzero(np.sqrt(np.mean(frames**2, axis=1)) > 100)) / 50


def answered_by_caller_hangup(r: dict, talk_min: float) -> None:
    assert r["disposition"] == "answered", r
    assert r["hangup_side"] == "caller", r
    assert r["talk_seconds"] is not None and r["talk_seconds"] > talk_min, r


# -- 1. late offer ---------------------------------------------------------------------
def test_late_offer_invite_without_sdp(pbx, tmp_path):
    """The phone's INVITE carries no SDP: the PBX offers in its 200 OK, the phone answers
    (PCMA) in the ACK; both parties' speech is recorded."""
    p = pbx()
    callee = Phone(p, "1002", "call_uas_audio.xml", tmp_path / "uas")
    sipp_call(p, "call_uac_late_offer.xml", tmp_path / "uac")
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    answered_by_caller_hangup(r, 3.0)
    data, rate = recording(p, r["id"])
    assert speech_seconds(data[:, 0], rate) > 2.0  # the late-offer caller's speech, left
    assert speech_seconds(data[:, 1], rate) > 2.0  # the callee's, right


# -- 2. early media ----------------------------------------------------------------------
def test_early_media_183_from_the_callee(pbx, tmp_path):
    """The callee sends 183 Session Progress with SDP and speech for 1.2 s, then 200: the
    caller gets its ringing, then the call; the record has the ring time and both parties."""
    p = pbx()
    callee = Phone(p, "1002", "rc_uas_early_media.xml", tmp_path / "uas", ring_ms=1200)
    caller = tmp_path / "uac_must_ring.xml"  # the caller must get its 180 first
    text = (SIPP_DIR / "call_uac_audio.xml").read_text()
    assert '<recv response="180" optional="true"/>' in text
    caller.write_text(text.replace('<recv response="180" optional="true"/>', '<recv response="180"/>'))
    sipp_call(p, str(caller), tmp_path / "uac")
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    answered_by_caller_hangup(r, 3.0)
    assert r["ring_seconds"] > 1.0, r
    kinds = [k for k, _ in events(p, r["id"])]
    assert "ringing" in kinds and kinds.index("ringing") < kinds.index("answered")
    data, rate = recording(p, r["id"])
    assert speech_seconds(data[:, 0], rate) > 2.0
    assert speech_seconds(data[:, 1], rate) > 2.0  # the callee's stream goes on after 200


# -- 3. 100rel / PRACK -------------------------------------------------------------------
def test_reliable_provisional_responses_supported_and_required(pbx, tmp_path):
    p = pbx()
    for sc in ("rc_uac_100rel_supported.xml", "rc_uac_100rel_required.xml"):
        callee = Phone(p, "1002", "call_uas_audio.xml", tmp_path / f"uas-{sc}", ring_ms=500)
        sipp_call(p, sc, tmp_path / f"uac-{sc}")
        assert callee.wait() == 0, callee.errors()
    rows = records(p, 2)
    assert len(rows) == 2
    for r in rows:
        answered_by_caller_hangup(r, 1.5)
        data, rate = recording(p, r["id"])
        assert speech_seconds(data[:, 0], rate) > 1.0 and speech_seconds(data[:, 1], rate) > 1.0


# -- 4. session timers -----------------------------------------------------------------
def test_session_timer_refreshes_by_reinvite_and_update(pbx, tmp_path):
    """Session-Expires: 90;refresher=uac: the 200 carries Session-Expires, a re-INVITE and an
    UPDATE refresh are answered 200 (with Session-Expires), and the call is not torn down."""
    p = pbx()
    callee = Phone(p, "1002", "call_uas_audio.xml", tmp_path / "uas")
    sipp_call(p, "rc_uac_session_timer.xml", tmp_path / "uac")
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    answered_by_caller_hangup(r, 4.5)
    kinds = [k for k, _ in events(p, r["id"])]
    assert "held" not in kinds  # a refresh is not a hold
    data, rate = recording(p, r["id"])
    assert speech_seconds(data[:, 0], rate) > 2.0 and speech_seconds(data[:, 1], rate) > 2.0


# -- 5. DTMF -------------------------------------------------------------------------------
def _pt96_pcaps(folder: Path) -> Path:
    """sipp's RFC 2833 pcaps (PT 101) rewritten to telephone-event PT 96."""
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("1", "9", "star"):
        d = bytearray(Path(f"/usr/share/sip-tester/dtmf_2833_{name}.pcap").read_bytes())
        off = 24
        while off < len(d):
            incl = struct.unpack("<I", d[off + 8 : off + 12])[0]
            rtp = off + 16 + 14 + 20 + 8  # pcap record, Ethernet, IPv4, UDP
            assert d[rtp + 1] & 0x7F == 101
            d[rtp + 1] = (d[rtp + 1] & 0x80) | 96
            d[off + 16 + 14 + 20 + 6 : off + 16 + 14 + 20 + 8] = b"\0\0"  # UDP checksum: none
            off += 16 + incl
        (folder / f"dtmf_2833_{name}.pcap").write_bytes(bytes(d))
    return folder


def _digits(p: PbxProcess, call_id: str) -> list[tuple[str, str]]:
    return [(d["leg"], d["digit"]) for k, d in events(p, call_id) if k == "dtmf"]


def test_telephone_event_on_payload_type_96(pbx, tmp_path):
    p = pbx()
    callee = Phone(p, "1002", "call_uas.xml", tmp_path / "uas")
    sc = scenario(tmp_path, "rc_uac_dtmf_pt96.xml", PCAP_DIR=str(_pt96_pcaps(tmp_path / "pcap")))
    sipp_call(p, sc, tmp_path / "uac")
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    assert r["disposition"] == "answered"
    assert _digits(p, r["id"]) == [("caller", "1"), ("caller", "*"), ("caller", "9")]


def test_pjsua2_phone_dtmf_every_digit_arrives(pbx, tmp_path):
    """A pjsua2 phone dials "19*" (RFC 2833 as negotiated): all three digits, the last one
    too, become call events; and the PBX-side digits reach the phone the other way."""
    p = pbx()
    a, b = pbx.phone(p, "1001"), pbx.phone(p, "1002")
    c = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    inc = b.wait_event(lambda e: e.get("event") == "incoming", 15, "1002 to ring")
    b.cmd("answer", call=inc["call"])
    a.wait_event(lambda e: e.get("event") == "state" and e["call"] == c and e["state"] == "CONFIRMED", 15)
    time.sleep(0.5)
    a.cmd("dtmf", call=c, digits="19*")
    b.cmd("dtmf", call=inc["call"], digits="#7")
    time.sleep(2.0)
    a.cmd("hangup", call=c)
    b.wait_event(lambda e: e.get("event") == "state" and e["state"] == "DISCONNECTED", 15)
    r = records(p)[0]
    assert r["disposition"] == "answered"
    got = _digits(p, r["id"])
    assert [d for leg, d in got if leg == "caller"] == ["1", "9", "*"], got
    assert [d for leg, d in got if leg == "callee"] == ["#", "7"], got


# -- 6. codecs --------------------------------------------------------------------------------
@pytest.mark.parametrize("codec", ["G722/16000", "PCMU/8000"])
def test_codec_phone_meets_a_pcma_only_phone(pbx, tmp_path, codec):
    """A phone offering only G.722 (or only PCMU) calls a PCMA-only phone: each leg keeps
    its codec, the bridge transcodes, and audio flows both ways."""
    p = pbx()
    a = pbx.phone(p, "1001", codecs=[codec])
    callee = Phone(p, "1002", "call_uas_audio.xml", tmp_path / "uas", ring_ms=300)
    c = a.cmd("call", uri=f"sip:1002@127.0.0.1:{p.port}")["call"]
    a.cmd("play", call=c, file=str(tone(tmp_path / "440.wav", 440)))
    a.cmd("record", call=c, file=str(tmp_path / "heard.wav"))
    a.wait_event(lambda e: e.get("event") == "state" and e["call"] == c and e["state"] == "CONFIRMED", 15)
    media = a.wait_event(lambda e: e.get("event") == "media" and e["call"] == c and e["active"], 10)
    assert media["codec"] == codec.split("/")[0], media
    time.sleep(4.0)
    a.cmd("hangup", call=c)
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    answered_by_caller_hangup(r, 3.0)
    data, rate = recording(p, r["id"])
    mid = data[len(data) // 4 : 3 * len(data) // 4]
    assert np.sqrt(np.mean(mid[:, 0].astype(float) ** 2)) > 300
    assert abs(dominant_freq(mid[:, 0], rate) - 440) < 15  # the G.722/PCMU caller's tone
    assert speech_seconds(data[:, 1], rate) > 2.0  # the PCMA phone's speech
    heard, hr = sf.read(tmp_path / "heard.wav", dtype="int16")
    assert speech_seconds(heard, hr) > 2.0  # and it reached the caller


# -- 7. hold styles ---------------------------------------------------------------------
@pytest.mark.parametrize("style", ["sendonly", "c=0.0.0.0"])
def test_hold_and_unhold_styles(pbx, tmp_path, style):
    p = pbx()
    callee = Phone(p, "1002", "call_uas_audio.xml", tmp_path / "uas")
    if style == "sendonly":
        subs = {"HOLD_KIND": "a=sendonly", "HOLD_CONN": "IN IP4 127.0.0.1", "HOLD_ATTR": "sendonly"}
    else:
        subs = {"HOLD_KIND": "c=0.0.0.0 (RFC 2543)", "HOLD_CONN": "IN IP4 0.0.0.0", "HOLD_ATTR": "sendrecv"}
    sipp_call(p, scenario(tmp_path, "rc_uac_hold.xml", **subs), tmp_path / "uac")
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    answered_by_caller_hangup(r, 4.5)
    evs = events(p, r["id"])
    hold = [(k, d.get("side")) for k, d in evs if k in ("held", "unheld")]
    assert hold == [("held", "caller"), ("unheld", "caller")], evs
    kinds = [k for k, _ in evs]
    assert kinds.index("answered") < kinds.index("held") < kinds.index("unheld") < kinds.index("ended")


# -- 8. registrar-only phone ------------------------------------------------------------
def test_phone_accepting_sip_only_from_its_registrar(pbx, tmp_path):
    """The callee checks the INVITE's top Via: it must be the PBX's own SIP address and
    port (where it registered), not a media worker's or another socket's."""
    p = pbx()
    sc = scenario(tmp_path, "rc_uas_registrar_only.xml", PBX_PORT=str(p.port))
    callee = Phone(p, "1002", sc, tmp_path / "uas")
    sipp_call(p, "call_uac_audio.xml", tmp_path / "uac")
    assert callee.wait() == 0, callee.errors()
    r = records(p)[0]
    answered_by_caller_hangup(r, 3.0)
