"""media.protocol: every command/event round-trips; bad lines are rejected clearly."""

from __future__ import annotations

import json

import pytest

from media import protocol as P

COMMAND_SAMPLES = [
    P.Answer(id=1, leg="in-1"),
    P.Answer(id=2, leg="in-1", code=180),
    P.Hangup(id=3, leg="in-1"),
    P.Hangup(id=4, leg="in-1", code=486),
    P.Originate(id=5, leg_id="agent-1", uri="sip:1001@127.0.0.1:5060",
                from_uri="sip:0101@pbx", headers={"X-PBX-Call": "c1"}),
    P.Play(id=6, leg="in-1", file="/p/hold.wav", loop=True),
    P.StopPlay(id=7, leg="in-1"),
    P.Record(id=8, legs=("in-1", "agent-1"), path_prefix="/var/rec/c1"),
    P.StopRecord(id=9),
    P.StopRecord(id=10, legs=("in-1",)),
    P.Bridge(id=11, leg_a="in-1", leg_b="agent-1"),
    P.Unbridge(id=12, leg_a="in-1", leg_b="agent-1"),
    P.SendDtmf(id=13, leg="in-1", digits="12#"),
    P.Ping(id=14),
    P.Shutdown(id=15),
]

EVENT_SAMPLES = [
    P.Ready(capacity=4, sip_port=25060, rtp_range=(30000, 30016), pid=42),
    P.Incoming(leg="in-1", from_uri="<sip:100@x>", to_uri="<sip:200@y>", call_id="abc",
               headers={"X-Trunk": "t1", "Subject": "ünïcode"}),
    P.Ringing(leg="agent-1"),
    P.Answered(leg="agent-1"),
    P.Answered(leg="agent-1", call_id="a84b4c76e66710@pc33"),
    P.Dtmf(leg="in-1", digit="#"),
    P.PlaybackFinished(leg="in-1", file="/p/x.wav"),
    P.Ended(leg="in-1", cause_code=200, reason="Normal call clearing"),
    P.RecordStopped(leg="in-1", path="/r/x-in-1.wav", reason="leg_ended"),
    P.Error(message="boom"),
    P.Error(message="boom", leg="in-2"),
    P.Held(leg="in-1"),
    P.Unheld(leg="in-1"),
    P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"),
    P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-2",
                        replaces="c2@h;to-tag=a;from-tag=b"),
    P.Replaced(leg="in-1", new_leg="in-2", from_uri="<sip:media@127.0.0.1:25061>", call_id="x1"),
]


@pytest.mark.parametrize("msg", COMMAND_SAMPLES + EVENT_SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    line = P.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert P.decode(line) == msg


def test_every_command_and_event_has_a_sample():
    assert {type(m) for m in COMMAND_SAMPLES} == set(P.COMMANDS.values())
    assert {type(m) for m in EVENT_SAMPLES} == set(P.EVENTS.values())


def test_wire_shape():
    assert json.loads(P.encode(P.Play(id=7, leg="a", file="f"))) == {
        "cmd": "play", "id": 7, "leg": "a", "file": "f", "loop": False}
    assert json.loads(P.encode(P.Dtmf(leg="a", digit="5"))) == {
        "event": "dtmf", "leg": "a", "digit": "5"}
    assert json.loads(P.encode(P.Reply(id=3, result={"x": 1}))) == {
        "reply": 3, "ok": True, "result": {"x": 1}}
    assert json.loads(P.encode(P.Reply(id=3, ok=False, error="no such leg"))) == {
        "reply": 3, "ok": False, "error": "no such leg"}


def test_replies_round_trip():
    for r in (P.Reply(id=1), P.Reply(id=2, result={"files": {"a": "/x"}}),
              P.Reply(id=3, ok=False, error="nope")):
        assert P.decode(P.encode(r)) == r


def test_defaults_fill_missing_fields():
    assert P.decode(b'{"cmd":"answer","id":1,"leg":"in-1"}') == P.Answer(id=1, leg="in-1", code=200)
    assert P.decode('{"cmd":"ping","id":9}') == P.Ping(id=9)


def test_command_builder():
    c = P.command("record", 5, legs=["a", "b"], path_prefix="/r/x")
    assert c == P.Record(id=5, legs=("a", "b"), path_prefix="/r/x")
    assert P.command(P.CommandName.PING, 1) == P.Ping(id=1)


def test_frozen():
    with pytest.raises(Exception):
        P.Ping(id=1).id = 2  # type: ignore[misc]


@pytest.mark.parametrize("line, why", [
    (b"not json", "not JSON"),
    (b"[1,2]", "JSON object"),
    (b'{"cmd":"fly","id":1}', "unknown command"),
    (b'{"cmd":"ping"}', "positive integer"),
    (b'{"cmd":"ping","id":0}', "positive integer"),
    (b'{"cmd":"ping","id":true}', "positive integer"),
    (b'{"cmd":"ping","id":"1"}', "positive integer"),
    (b'{"cmd":"answer","id":1,"leg":"a","bogus":1}', "unknown field"),
    (b'{"cmd":"record","id":1,"legs":"a","path_prefix":"x"}', "must be a list"),
    (b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u","headers":[]}', "must be an object"),
    (b'{"event":"explode"}', "unknown event"),
    (b'{"reply":1}', "ok must be a boolean"),
    (b'{"reply":"1","ok":true}', "reply id"),
    (b'{"hello":1}', "neither"),
    (b"\xff\xfe", "not JSON"),
])
def test_rejects(line, why):
    with pytest.raises(P.ProtocolError, match=why):
        P.decode(line)


def test_enums_are_strings():
    assert P.CommandName.SEND_DTMF == "send_dtmf"
    assert P.EventName("playback_finished") is P.EventName.PLAYBACK_FINISHED


def test_hold_and_transfer_events_wire_shape():
    assert json.loads(P.encode(P.Held(leg="callee"))) == {"event": "held", "leg": "callee"}
    assert json.loads(P.encode(P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"))) == {
        "event": "transfer_requested", "leg": "callee", "target": "sip:1003@pbx", "replaces": None,
        "new_leg": "xfer-1"}
    # an older worker's answered (no call_id) still decodes
    assert P.decode(b'{"event":"answered","leg":"in-1"}') == P.Answered(leg="in-1", call_id="")
    with pytest.raises(P.ProtocolError):
        P.decode(b'{"event":"held","leg":"in-1","dir":"sendonly"}')
