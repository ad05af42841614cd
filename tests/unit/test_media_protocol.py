"""media.protocol: every command/event round-trips; bad lines are rejected clearly."""

from __future__ import annotations

import dataclasses
import json

import pytest

from media import protocol as P

COMMAND_SAMPLES = [
    P.Answer(id=1, leg="in-1"),
    P.Answer(id=2, leg="in-1", code=180),
    P.Hangup(id=3, leg="in-1"),
    P.Hangup(id=4, leg="in-1", code=486),
    P.Originate(
        id=5, leg_id="agent-1", uri="sip:1001@127.0.0.1:5060", from_uri="sip:0101@pbx", headers={"X-PBX-Call": "c1"}
    ),
    P.Originate(
        id=16,
        leg_id="trunk-1",
        uri="sip:0612345678@127.0.0.1:5060",
        headers={"X-PBX-Trunk": "prov"},
        auth={"username": "clinic", "password": 's3cr\u00e9t "x"', "realm": "*"},
    ),
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
    P.Incoming(
        leg="in-1",
        from_uri="<sip:100@x>",
        to_uri="<sip:200@y>",
        call_id="abc",
        headers={"X-Trunk": "t1", "Subject": "ünïcode"},
    ),
    P.Ringing(leg="agent-1"),
    P.Answered(leg="agent-1"),
    P.Answered(leg="agent-1", call_id="a84b4c76e66710@pc33"),
    P.Dtmf(leg="in-1", digit="#"),
    P.PlaybackFinished(leg="in-1", file="/p/x.wav"),
    P.Ended(leg="in-1", cause_code=200, reason="Normal call clearing"),
    P.Ended(leg="trunk-1", cause_code=403, reason="Forbidden", challenged=True),
    P.RecordStopped(leg="in-1", path="/r/x-in-1.wav", reason="leg_ended"),
    P.Error(message="boom"),
    P.Error(message="boom", leg="in-2"),
    P.Held(leg="in-1"),
    P.Unheld(leg="in-1"),
    P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"),
    P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-2", replaces="c2@h;to-tag=a;from-tag=b"),
    P.Replaced(leg="in-1", new_leg="in-2", from_uri="<sip:media@127.0.0.1:25061>", call_id="x1"),
    P.MediaTimeout(leg="in-1", seconds=60.0),
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
        "cmd": "play",
        "id": 7,
        "leg": "a",
        "file": "f",
        "loop": False,
    }
    assert json.loads(P.encode(P.Dtmf(leg="a", digit="5"))) == {"event": "dtmf", "leg": "a", "digit": "5"}
    assert json.loads(P.encode(P.Reply(id=3, result={"x": 1}))) == {"reply": 3, "ok": True, "result": {"x": 1}}
    assert json.loads(P.encode(P.Reply(id=3, ok=False, error="no such leg"))) == {
        "reply": 3,
        "ok": False,
        "error": "no such leg",
    }


def test_replies_round_trip():
    for r in (P.Reply(id=1), P.Reply(id=2, result={"files": {"a": "/x"}}), P.Reply(id=3, ok=False, error="nope")):
        assert P.decode(P.encode(r)) == r


def test_defaults_fill_missing_fields():
    assert P.decode(b'{"cmd":"answer","id":1,"leg":"in-1"}') == P.Answer(id=1, leg="in-1", code=200)
    assert P.decode('{"cmd":"ping","id":9}') == P.Ping(id=9)


def test_command_builder():
    c = P.command("record", 5, legs=["a", "b"], path_prefix="/r/x")
    assert c == P.Record(id=5, legs=("a", "b"), path_prefix="/r/x")
    assert P.command(P.CommandName.PING, 1) == P.Ping(id=1)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.Ping(id=1).id = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "line, why",
    [
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
        (b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u","auth":"u:p"}', "auth must be an object"),
        (b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u","auth":{"username":"u"}}', "username and a password"),
        (
            b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u","auth":{"username":"u","password":7}}',
            "username and a password",
        ),
        (
            b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u","auth":{"username":"u","password":"p","ha1":"x"}}',
            "unknown field",
        ),
        (
            b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u","auth":{"username":"u","password":"p","realm":1}}',
            "realm must be a string",
        ),
        (b'{"event":"explode"}', "unknown event"),
        (b'{"reply":1}', "ok must be a boolean"),
        (b'{"reply":"1","ok":true}', "reply id"),
        (b'{"hello":1}', "neither"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_rejects(line, why):
    with pytest.raises(P.ProtocolError, match=why):
        P.decode(line)


def test_enums_are_strings():
    assert P.CommandName.SEND_DTMF == "send_dtmf"
    assert P.EventName("playback_finished") is P.EventName.PLAYBACK_FINISHED


def test_hold_and_transfer_events_wire_shape():
    assert json.loads(P.encode(P.Held(leg="callee"))) == {"event": "held", "leg": "callee"}
    assert json.loads(P.encode(P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"))) == {
        "event": "transfer_requested",
        "leg": "callee",
        "target": "sip:1003@pbx",
        "replaces": None,
        "new_leg": "xfer-1",
    }
    # an older worker's answered (no call_id) still decodes
    assert P.decode(b'{"event":"answered","leg":"in-1"}') == P.Answered(leg="in-1", call_id="")
    with pytest.raises(P.ProtocolError):
        P.decode(b'{"event":"held","leg":"in-1","dir":"sendonly"}')


# ----------------------------------------------------------------------------- originate auth

SECRET = "trunk-secret-\u00e9-42"
AUTH = {"username": "clinic", "password": SECRET, "realm": "fake.provider"}


def test_originate_auth_defaults_and_wire():
    assert P.decode(b'{"cmd":"originate","id":1,"leg_id":"a","uri":"u"}').auth is None  # older cores
    line = P.encode(P.command("originate", 3, leg_id="t", uri="sip:1@x", auth=AUTH))
    assert json.loads(line)["auth"] == AUTH  # on the pipe to the worker: in full
    with pytest.raises(P.ProtocolError, match="password"):
        P.command("originate", 4, leg_id="t", uri="sip:1@x", auth={"username": "u", "password": ""})
    assert P.decode(b'{"event":"ended","leg":"a","cause_code":487,"reason":"x"}').challenged is False


def test_redaction_hides_the_password_everywhere_it_is_printed():
    cmd = P.Originate(id=9, leg_id="t", uri="sip:1@x", auth=AUTH)
    line = P.encode(cmd)
    for text in (
        P.redact(cmd),
        P.redact(line),
        P.redact(line.decode()),
        P.redact(json.loads(line)),
        repr(cmd),
        str(cmd),
    ):
        assert SECRET not in text, text
    red = json.loads(P.redact(cmd))
    assert red["auth"] == {"username": "clinic", "password": P.REDACTED, "realm": "fake.provider"}
    assert json.loads(P.redact(P.Ping(id=1))) == {"cmd": "ping", "id": 1}
    assert P.redact(b"garbage " + SECRET.encode()) == "<unparsable line>"


def test_worker_client_logs_commands_without_the_password(caplog):
    """A stand-in worker process (no pjsua2): a ready event, then ok to every command."""
    import asyncio
    import logging
    import sys

    from media.client import WorkerClient

    script = (
        "import json, sys\n"
        "out = sys.stdout\n"
        "out.write(json.dumps({'event': 'ready', 'capacity': 4, 'sip_port': 1, 'rtp_range': [2, 4], 'pid': 5}) + '\\n')\n"
        "out.flush()\n"
        "for line in sys.stdin:\n"
        "    c = json.loads(line)\n"
        "    sys.stderr.write('got ' + c['cmd'] + (' with auth' if c.get('auth') else '') + '\\n')\n"
        "    out.write(json.dumps({'reply': c['id'], 'ok': True, 'result': {'leg': c.get('leg_id')}}) + '\\n')\n"
        "    out.flush()\n"
        "    if c['cmd'] == 'shutdown':\n"
        "        break\n"
    )

    async def go():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        w = WorkerClient(proc, 1, 2, 2)
        await asyncio.wait_for(w.ready, 5)
        assert (
            await w.originate("trunk-1", "sip:0612345678@127.0.0.1:5060", headers={"X-PBX-Trunk": "p"}, auth=AUTH)
            == "trunk-1"
        )
        await w.shutdown(timeout=2)
        return (await proc.stderr.read()).decode()

    with caplog.at_level(logging.DEBUG, logger="media.client"):
        err = asyncio.run(go())
    assert "got originate with auth" in err  # the worker did get the credentials
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert '"cmd":"originate"' in logged and '"username":"clinic"' in logged
    assert SECRET not in logged and P.REDACTED in logged
