"""CallManager (pypbx.call) with media.fake: hold -> MOH to the other party; blind transfer
-> new leg bridged, transferor hung up; attended transfer -> two sessions joined; call
records and events right."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from media import protocol as P
from media.fake import FakePool
from pypbx.call import DEFAULT_MOH, CallManager
from pypbx.calllog import CallLog
from pypbx.db import open_db
from sip.message import parse_message
from sip.transaction import Addr

EXTENSIONS = {"1001", "1002", "1003"}
PHONE = Addr("UDP", "192.0.2.10", 5070)


def invite(to: str, *, frm: str = "1001", call_id: str = "c1", extra: str = ""):
    lines = [
        f"INVITE sip:{to}@pbx.example SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKx1",
        "Max-Forwards: 70",
        f"From: <sip:{frm}@pbx.example>;tag=ft1",
        f"To: <sip:{to}@pbx.example>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        "Contact: <sip:1001@192.0.2.10:5070>",
    ]
    if extra:
        lines.append(extra)
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


async def settle(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0.01)


class Env:
    def __init__(self, tmp: Path, record: bool = False) -> None:
        self.tmp = tmp
        self.record = record

    async def __aenter__(self) -> Env:
        self._db_cm = open_db(self.tmp / "pbx.db")
        self.db = await self._db_cm.__aenter__()
        self.pool = FakePool()
        self.cm = CallManager(
            pool=self.pool,
            calllog=CallLog(self.db),
            db=self.db,
            data_dir=self.tmp,
            front_door="127.0.0.1:5060",
            is_extension=lambda n: n in EXTENSIONS,
            is_registered=lambda n: True,
            record=self.record,
        )
        self.cm.route_to_extension = lambda req: "to-extension"  # type: ignore[assignment,return-value]
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.cm.run(self.stop))
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)
        await self._db_cm.__aexit__(None, None, None)

    async def call(self, frm: str, to: str, call_id: str):
        """A phone's call routed into a worker, answered by the callee: (worker, session)."""
        dec = self.cm.route(invite(to, frm=frm, call_id=call_id), PHONE, frm)
        w = self.pool.busy[-1]
        assert dec.targets[0][1].port == w.sip_port
        w.inject(P.Incoming(leg="in-1", from_uri=f"<sip:{frm}@pbx>", to_uri=f"<sip:{to}@pbx>", call_id=call_id))
        await settle()
        s = self.cm.sessions[w]
        assert s.answered and frozenset(("in-1", "callee")) in w.bridges
        return w, s

    async def events(self, rec_id: str) -> list[tuple[str, dict]]:
        return [(r["kind"], json.loads(r["detail"] or "{}")) for r in await self.db.call_event_rows(rec_id)]


def run(coro):
    return asyncio.run(coro)


def test_hold_plays_moh_to_the_other_party_and_unhold_rebridges(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-A")
            w.inject(P.Held(leg="callee"))  # 1002 presses hold
            await settle()
            assert w.playing == {"in-1": str(DEFAULT_MOH)}
            assert not w.bridges
            play = [c for c in w.commands if isinstance(c, P.Play)][-1]
            assert play.loop and Path(play.file).is_file()
            assert env.cm.status()[0]["state"] == "held"
            w.inject(P.Unheld(leg="callee"))
            await settle()
            assert w.playing == {} and frozenset(("in-1", "callee")) in w.bridges
            # the caller holds: the callee hears music
            w.inject(P.Held(leg="in-1"))
            await settle()
            assert w.playing == {"callee": str(DEFAULT_MOH)} and not w.bridges
            w.inject(P.Held(leg="in-1"))  # repeated re-INVITE: no change
            await settle()
            w.inject(P.Unheld(leg="in-1"))
            await settle()
            assert w.playing == {} and frozenset(("in-1", "callee")) in w.bridges
            rec_id = s.rec.id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle()
            row = await env.db.get_call_row(rec_id)
            assert row["disposition"] == "answered"
            kinds = [k for k, _ in await env.events(rec_id)]
            assert kinds.count("held") == 2 and kinds.count("unheld") == 2
            held = [d for k, d in await env.events(rec_id) if k == "held"]
            assert held[0]["side"] == "callee" and held[0]["party"] == "1002"

    run(go())


def test_blind_transfer_bridges_new_leg_and_hangs_up_transferor(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-A")
            rec_id = s.rec.id
            w.inject(P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"))
            await settle()
            assert w.playing == {"in-1": str(DEFAULT_MOH)} and not w.bridges
            assert env.cm.status()[0]["state"] == "transferring"
            w.inject(P.Ringing(leg="xfer-1"))
            w.inject(P.Answered(leg="xfer-1", call_id="x1"))
            await settle()
            assert w.playing == {} and w.bridges == {frozenset(("in-1", "xfer-1"))}
            assert any(isinstance(c, P.Hangup) and c.leg == "callee" for c in w.commands)
            assert s.callee_leg == "xfer-1" and s.callee == "1003"
            # the transferor's late BYE / ended event does not end the call
            assert not s.ended
            w.inject(P.Ended(leg="xfer-1", cause_code=200, reason="BYE"))  # 1003 hangs up
            await settle()
            assert s.ended
            assert any(isinstance(c, P.Hangup) and c.leg == "in-1" for c in w.commands)
            row = await env.db.get_call_row(rec_id)
            assert row["disposition"] == "answered" and row["extension"] == "1003"
            assert row["hangup_side"] == "callee"
            ev = dict(await env.events(rec_id))
            assert ev["transfer_requested"]["type"] == "blind" and ev["transfer_requested"]["by"] == "1002"
            assert ev["transferred"]["from"] == "1002" and ev["transferred"]["to"] == "1003"
            assert ev["transferred"]["transfers"][0]["type"] == "blind"

    run(go())


def test_blind_transfer_transferor_hangs_up_first_then_target_answers(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-A")
            w.inject(P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"))
            await settle()
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))  # phone leaves after 202
            await settle()
            assert not s.ended and w.playing == {"in-1": str(DEFAULT_MOH)}
            w.inject(P.Answered(leg="xfer-1"))
            await settle()
            assert w.bridges == {frozenset(("in-1", "xfer-1"))} and w.playing == {}
            assert not any(isinstance(c, P.Hangup) and c.leg == "callee" for c in w.commands)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle()
            assert s.ended and any(isinstance(c, P.Hangup) and c.leg == "xfer-1" for c in w.commands)

    run(go())


def test_blind_transfer_failure_returns_to_transferor_or_hangs_up(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call("1001", "1002", "call-A")
            w.inject(P.TransferRequested(leg="callee", target="sip:1009@pbx", new_leg="xfer-1"))
            await settle()
            w.inject(P.Ended(leg="xfer-1", cause_code=404, reason="Not Found"))
            await settle()
            assert not s.ended and w.bridges == {frozenset(("in-1", "callee"))} and w.playing == {}
            # second attempt, transferor already gone: the remaining party is hung up
            w.inject(P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-2"))
            await settle()
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            w.inject(P.Ended(leg="xfer-2", cause_code=486, reason="Busy Here"))
            await settle()
            assert s.ended
            row = await env.db.get_call_row(s.rec.id)
            assert row["disposition"] == "answered" and "transfer failed" in row["hangup_cause"]
            kinds = [k for k, _ in await env.events(s.rec.id)]
            assert kinds.count("transfer_failed") == 2

    run(go())


def test_attended_transfer_joins_two_sessions(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w1, s1 = await env.call("1001", "1002", "call-A")  # 1001 -> 1002
            w1.inject(P.Held(leg="callee"))  # 1002 holds 1001
            await settle()
            w2, s2 = await env.call("1002", "1003", "call-B")  # 1002 consults 1003
            assert s1.call_ids["callee"] and s2.call_ids["in-1"] == "call-B"
            # 1002 sends REFER on call A with Replaces=call-B; W1's pjsua places the INVITE
            w1.inject(
                P.TransferRequested(
                    leg="callee", target="sip:1003@pbx", new_leg="xfer-1", replaces="call-B;to-tag=t2;from-tag=f2"
                )
            )
            await settle()
            assert s1.xfer is not None and s1.xfer.joined is s2
            # the front door routes W1's INVITE with Replaces to W2, not to an extension
            req = invite("1003", frm="media", call_id="x-1", extra="Replaces: call-B;to-tag=t2;from-tag=f2")
            dec = env.cm.route(req, Addr("UDP", "127.0.0.1", w1.sip_port), None)
            assert dec.targets[0][1] == Addr("UDP", "127.0.0.1", w2.sip_port)
            # a Replaces naming an unknown dialog goes to the extension as usual
            req = invite("1003", frm="media", call_id="x-2", extra="Replaces: nope;to-tag=a;from-tag=b")
            assert env.cm.route(req, Addr("UDP", "127.0.0.1", w1.sip_port), None) == "to-extension"
            # W2: pjsua replaces the transferor's leg and answers the new one
            w2.inject(P.Replaced(leg="in-1", new_leg="in-2", from_uri="<sip:media@127.0.0.1>", call_id="x-1"))
            w2.inject(P.Ended(leg="in-1", cause_code=410, reason="Gone"))
            w2.inject(P.Answered(leg="in-2", call_id="x-1"))
            await settle()
            assert w2.bridges == {frozenset(("in-2", "callee"))}
            assert not s2.ended and s2.relay
            row2 = await env.db.get_call_row(s2.rec.id)
            assert row2["disposition"] == "answered" and row2["hangup_cause"] == "attended transfer"
            # W1: the new leg answered -> bridged with 1001, transferor hung up
            w1.inject(P.Answered(leg="xfer-1", call_id="x-1"))
            await settle()
            assert w1.bridges == {frozenset(("in-1", "xfer-1"))} and w1.playing == {}
            assert any(isinstance(c, P.Hangup) and c.leg == "callee" for c in w1.commands)
            assert s1.callee == "1003"
            statuses = env.cm.status()
            assert len(statuses) == 1 and statuses[0]["id"] == s1.rec.id
            # 1001 hangs up: W1 hangs up its leg to W2, W2 (relay) hangs up 1003
            w1.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle()
            assert s1.ended and any(isinstance(c, P.Hangup) and c.leg == "xfer-1" for c in w1.commands)
            w2.inject(P.Ended(leg="in-2", cause_code=200, reason="BYE"))
            await settle()
            assert s2.ended and any(isinstance(c, P.Hangup) and c.leg == "callee" for c in w2.commands)
            row1 = await env.db.get_call_row(s1.rec.id)
            assert row1["disposition"] == "answered" and row1["extension"] == "1003"
            ev1 = dict(await env.events(s1.rec.id))
            assert ev1["transferred"]["type"] == "attended"
            assert ev1["transferred"]["joined_call"] == s2.rec.id
            assert ev1["transferred"]["from"] == "1002" and ev1["transferred"]["to"] == "1003"
            ev2 = dict(await env.events(s2.rec.id))
            assert ev2["transferred"]["joined_call"] == s1.rec.id
            assert ev2["transferred"]["role"] == "consultation"
            assert [k for k, _ in await env.events(s2.rec.id)].count("ended") == 1

    run(go())


def test_recording_continues_across_a_transfer_one_stereo_file(tmp_path):
    async def go():
        async with Env(tmp_path, record=True) as env:
            w, s = await env.call("1001", "1002", "call-A")
            prefix = s.record_prefix
            rate = 8000
            # what the worker's recorders would write: 1001 for 1.0 s, 1002, then 1003
            sf.write(f"{prefix}-in-1.wav", np.full(rate, 1000, np.int16), rate, subtype="PCM_16")
            w.inject(P.TransferRequested(leg="callee", target="sip:1003@pbx", new_leg="xfer-1"))
            await settle()
            await asyncio.sleep(0.1)
            w.inject(P.Answered(leg="xfer-1"))
            await settle()
            assert "xfer-1" in w.recording and "callee" not in w.recording and "in-1" in w.recording
            off = s.segments["callee"][1][1]
            n3 = rate - round(off * rate)
            n2 = int(off * rate * 0.5)  # the transferor's recorder ran until it left
            sf.write(f"{prefix}-callee.wav", np.full(n2, 2000, np.int16), rate, subtype="PCM_16")
            sf.write(f"{prefix}-xfer-1.wav", np.full(n3, 3000, np.int16), rate, subtype="PCM_16")
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(30)
            out = prefix.with_suffix(".wav")
            data, r = sf.read(out, dtype="int16")
            assert r == rate and data.shape == (rate, 2)
            assert (data[:, 0] == 1000).all()
            right = data[:, 1]
            assert (right[:n2] == 2000).all() and (right[n2 : rate - n3] == 0).all()
            assert (right[-n3:] == 3000).all()
            assert sorted(p.name for p in prefix.parent.iterdir()) == sorted([out.name, out.with_suffix(".json").name])
            meta = json.loads(out.with_suffix(".json").read_text())
            assert meta["transfers"][0]["to"] == "1003"

    run(go())
