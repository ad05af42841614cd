"""The live ACD (pypbx.acdlive + pypbx.flows.queue) over CallManager with media.fake:
queue calls answered, announced, rung through one forked leg, connected, recorded,
abandoned, overflowed, called back; agents paused after a ring-no-answer; feature codes;
queue events, CDRs and callbacks in the database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from media import protocol as P
from media.fake import FakePool
from pypbx import acdstore as S
from pypbx import voicemail as V
from pypbx.acdlive import AcdLive
from pypbx.call import CallManager
from pypbx.calllog import CallLog
from pypbx.db import open_db
from pypbx.extensions import add_extension
from pypbx.flows.queue import DEFAULT_MOH, PROMPTS_DIR, announcement_ids, outside_leg
from sip.message import parse_message
from sip.transaction import Addr
from tests.unit._frontline_env import Env as FEnv
from tests.unit._frontline_env import pr
from tests.unit.test_voicemail import write_wav

PHONE = Addr("UDP", "192.0.2.10", 5070)
EXTS = ("1001", "1002", "1003", "1009")


def invite(to: str, *, frm: str = "1009", call_id: str = "c1"):
    lines = [
        f"INVITE sip:{to}@pbx.example SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKx1",
        "Max-Forwards: 70",
        f"From: <sip:{frm}@pbx.example>;tag=ft1",
        f"To: <sip:{to}@pbx.example>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        "Contact: <sip:1009@192.0.2.10:5070>",
    ]
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def ring_invite(uri_user: str):
    lines = [
        f"INVITE sip:{uri_user}@127.0.0.1:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bKw1",
        "Max-Forwards: 70",
        "From: <sip:1009@127.0.0.1>;tag=w1",
        f"To: <sip:{uri_user}@127.0.0.1>",
        "Call-ID: ring1",
        "CSeq: 1 INVITE",
        "Contact: <sip:w@127.0.0.1:25060>",
    ]
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


async def settle(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0.01)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t
        self.auto = False  # at the end: time runs (CallManager's drain has a deadline)

    def __call__(self) -> float:
        if self.auto:
            self.t += 1.0
        return self.t


def en(pid: str) -> str:
    return str(PROMPTS_DIR / "en" / f"{pid}.wav")


class Env:
    def __init__(self, tmp: Path, record: bool = True, **queue_opts) -> None:
        self.tmp = tmp
        self.record = record
        self.queue_opts = {"strategy": "longest_idle", "ring_timeout": 15, "wrap_up": 0, **queue_opts}

    async def __aenter__(self) -> Env:
        self._db_cm = open_db(self.tmp / "pbx.db")
        self.db = await self._db_cm.__aenter__()
        for e in EXTS:
            await add_extension(self.db, e, password="secret-pass-123")
        await S.add_queue(self.db, "front", **self.queue_opts)
        await S.set_queue_number(self.db, "front", "600")
        await S.add_agent(self.db, "alice", "Alice")
        await S.add_agent(self.db, "bob", "Bob")
        self.clock = Clock()
        self.pool = FakePool(auto_answer_originate=False)
        self.cm = CallManager(
            pool=self.pool,
            calllog=CallLog(self.db, self.clock),
            db=self.db,
            data_dir=self.tmp,
            front_door="127.0.0.1:5060",
            is_extension=lambda n: n in EXTS,
            is_registered=lambda n: True,
            record=self.record,
            clock=self.clock,
        )
        self.cm.route_to_extension = lambda req: "to-extension"  # type: ignore[assignment,return-value]
        self.contacts = {
            e: [(f"sip:{e}@192.0.2.{i + 20}:5060", Addr("UDP", f"192.0.2.{i + 20}", 5060))] for i, e in enumerate(EXTS)
        }
        self.live = AcdLive(
            self.db,
            callmgr=self.cm,
            contacts=lambda ext: self.contacts.get(ext, []),
            clock=self.clock,
            reload_interval=0.05,
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.cm.run(self.stop))
        await asyncio.sleep(0)
        await self.live.start()
        self.cm.acd = self.live
        return self

    async def __aexit__(self, *exc) -> None:
        await self.live.close()
        self.clock.auto = True
        self.stop.set()
        await asyncio.wait_for(self.task, 15)
        await self._db_cm.__aexit__(None, None, None)

    async def login(self, agent: str, ext: str) -> None:
        await S.login(self.db, agent, ext)
        await self.live.sync()
        await settle()

    async def call(self, frm: str = "1009", to: str = "600", call_id: str = "c1"):
        dec = self.cm.route(invite(to, frm=frm, call_id=call_id), PHONE, frm)
        w = self.pool.busy[-1]
        assert dec.targets[0][1].port == w.sip_port
        w.inject(P.Incoming(leg="in-1", from_uri=f"<sip:{frm}@pbx>", to_uri=f"<sip:{to}@pbx>", call_id=call_id))
        await settle()
        return w, self.cm.sessions[w]

    async def advance(self, seconds: float) -> None:
        self.clock.t += seconds
        self.live.poke()
        await settle()

    async def qevents(self, **kw) -> list[dict]:
        await self.live.flush()
        return await S.list_queue_events(self.db, **kw)

    async def kinds(self, call_id: str) -> list[str]:
        return [e["kind"] for e in await self.qevents(call_id=call_id)]

    async def cdr(self, rec_id: str) -> dict:
        return await self.db.get_call_row(rec_id)

    async def call_events(self, rec_id: str) -> list[tuple[str, dict]]:
        return [(r["kind"], json.loads(r["detail"] or "{}")) for r in await self.db.call_event_rows(rec_id)]


def run(coro):
    return asyncio.run(coro)


def plays(w) -> list[str]:
    return [c.file for c in w.commands if isinstance(c, P.Play)]


def originates(w) -> list[P.Originate]:
    return [c for c in w.commands if isinstance(c, P.Originate)]


def test_announcement_ids_position_wait_and_offer():
    assert announcement_ids("en", 3, 240, True) == [
        "you_are_caller_number",
        "num_3",
        "estimated_wait_is_about",
        "num_4",
        "minutes",
        "callback_offer",
    ]
    assert announcement_ids("en", 1, 20, False) == ["you_are_caller_number", "num_1", "less_than_one_minute"]
    assert announcement_ids("ko", 2, None, False) == ["you_are_caller_number", "num_2", "caller_number_suffix"]


def test_queue_call_announced_then_moh_then_delivered_bridged_recorded_and_completed(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call()
            rec_id = s.rec.id
            # answered at once; greeting + recording notice, then (nobody logged in) the position
            assert any(isinstance(c, P.Answer) and c.leg == "in-1" and c.code == 200 for c in w.commands)
            assert plays(w) == [en("welcome")]
            w.finish_playback("in-1")
            await settle()
            assert plays(w)[-1] == en("call_may_be_recorded")
            w.finish_playback("in-1")
            await settle()
            # position 1, no figure (nobody logged in), callback offer
            assert plays(w)[-1] == en("you_are_caller_number")
            seq = []
            while w.playing.get("in-1") != str(DEFAULT_MOH):
                seq.append(w.playing["in-1"])
                w.finish_playback("in-1")
                await settle()
            assert seq == [en("you_are_caller_number"), en("num_1"), en("callback_offer")]
            assert [c for c in w.commands if isinstance(c, P.Play)][-1].loop
            assert (await env.kinds(rec_id)) == ["ENTER"]
            # an agent logs in: one leg rung through the front door to the acd fork URI
            await env.login("alice", "1001")
            o = originates(w)
            assert len(o) == 1 and o[0].uri.startswith("sip:acd-") and o[0].uri.endswith("@127.0.0.1:5060")
            token = o[0].uri[len("sip:acd-") :].split("@")[0]
            dec = env.cm.route(ring_invite(f"acd-{token}"), Addr("UDP", "127.0.0.1", w.sip_port), None)
            assert [t[0] for t in dec.targets] == ["sip:1001@192.0.2.20:5060"]
            assert dec.ring_timeout == 15 + 5
            w.inject(P.Ringing(leg=o[0].leg_id))
            w.inject(P.Answered(leg=o[0].leg_id, call_id="ring1"))
            await settle()
            assert "in-1" not in w.playing  # MOH stopped
            assert frozenset(("in-1", o[0].leg_id)) in w.bridges
            assert set(w.recording) == {"in-1", o[0].leg_id}
            for path in w.recording.values():  # the fake worker writes no audio: give each side some
                write_wav(path, 30.0)  # as long as the 30 s talk below: a complete recording
            assert (await env.kinds(rec_id)) == ["ENTER", "RING", "CONNECT"]
            status = env.live.queue_status("front")
            assert [a["state"] for a in status["agents"] if a["id"] == "alice"] == ["on_call"]
            await env.advance(30)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))  # the caller hangs up
            await settle(30)
            kinds = await env.kinds(rec_id)
            assert kinds == ["ENTER", "RING", "CONNECT", "COMPLETE_CALLER"]
            done = (await env.qevents(call_id=rec_id, kind="COMPLETE_CALLER"))[0]
            assert done["agent"] == "alice" and done["data"]["talk"] == pytest.approx(30)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "answered" and row["queue"] == "front" and row["agent"] == "alice"
            assert row["extension"] == "1001"
            rows = await env.db.recording_rows_with_status("complete")
            assert any(r["call_id"] == rec_id for r in rows)

    run(go())


def test_agent_hangs_up_complete_agent(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            await env.login("alice", "1001")
            w, s = await env.call()
            leg = originates(w)[0].leg_id
            w.inject(P.Answered(leg=leg, call_id="r"))
            await settle()
            w.inject(P.Ended(leg=leg, cause_code=200, reason="BYE"))
            await settle(30)
            assert (await env.kinds(s.rec.id))[-1] == "COMPLETE_AGENT"
            assert (await env.cdr(s.rec.id))["disposition"] == "answered"

    run(go())


def test_caller_abandons_while_queued(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, s = await env.call()
            await env.advance(42)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            ab = await env.qevents(call_id=s.rec.id, kind="ABANDON")
            assert len(ab) == 1 and ab[0]["data"]["wait"] == pytest.approx(42) and ab[0]["data"]["position"] == 1
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "abandoned_queue" and row["queue"] == "front"
            assert env.live.queue_status("front")["waiting"] == []

    run(go())


def test_caller_abandons_while_agent_rings(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            await env.login("alice", "1001")
            w, s = await env.call()
            leg = originates(w)[0].leg_id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert any(isinstance(c, P.Hangup) and c.leg == leg for c in w.commands)
            assert (await env.kinds(s.rec.id)) == ["ENTER", "RING", "ABANDON"]
            assert env.live.engine.agents["alice"].state.value == "available"

    run(go())


def test_ring_no_answer_pauses_agent_and_rings_the_next(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            await env.login("alice", "1001")
            env.clock.t += 5
            await env.login("bob", "1002")
            w, s = await env.call()
            first = originates(w)[0]
            token = first.uri[len("sip:acd-") :].split("@")[0]
            assert env.live.rings[token][1] == ("alice",)  # longest idle
            await env.advance(15)  # the queue's ring timeout
            await settle(20)
            assert any(isinstance(c, P.Hangup) and c.leg == first.leg_id for c in w.commands)
            o = originates(w)
            assert len(o) == 2
            token2 = o[1].uri[len("sip:acd-") :].split("@")[0]
            assert env.live.rings[token2][1] == ("bob",)
            kinds = await env.kinds(s.rec.id)
            assert kinds == ["ENTER", "RING", "RINGNOANSWER", "RING"]
            a = await S.get_agent(env.db, "alice")
            assert a.state == "paused" and a.pause_reason == "ring_no_answer"
            w.inject(P.Ended(leg=first.leg_id, cause_code=487, reason="Request Terminated"))  # our CANCEL
            w.inject(P.Answered(leg=o[1].leg_id, call_id="r2"))
            await settle()
            assert (await env.kinds(s.rec.id))[-1] == "CONNECT"
            assert env.live.engine.agents["bob"].state.value == "on_call"

    run(go())


def test_ring_leg_failure_counts_as_no_answer(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            await env.login("alice", "1001")
            w, s = await env.call()
            leg = originates(w)[0].leg_id
            w.inject(P.Ended(leg=leg, cause_code=480, reason="Temporarily Unavailable"))
            await settle(20)
            assert (await env.kinds(s.rec.id)) == ["ENTER", "RING", "RINGNOANSWER"]
            assert env.live.engine.agents["alice"].state.value == "paused"

    run(go())


def test_overflow_after_20_seconds_to_an_extension(tmp_path):
    async def go():
        async with Env(tmp_path, record=False, overflow="after=20,extension:1003") as env:
            w, s = await env.call()
            await env.advance(19)
            assert not originates(w)
            await env.advance(1)
            await settle(20)
            o = originates(w)
            assert len(o) == 1 and o[0].uri == "sip:1003@127.0.0.1:5060"
            ov = await env.qevents(call_id=s.rec.id, kind="OVERFLOW")
            assert len(ov) == 1 and ov[0]["data"]["wait"] == pytest.approx(20)
            w.inject(P.Answered(leg=o[0].leg_id, call_id="o1"))
            await settle()
            assert frozenset(("in-1", o[0].leg_id)) in w.bridges
            w.inject(P.Ended(leg=o[0].leg_id, cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "overflowed_out" and row["queue"] == "front"
            assert row["extension"] == "1003"

    run(go())


def test_press_1_callback_confirmed_keeps_place(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            w, s = await env.call(frm="1009")
            await env.advance(10)
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle()
            assert w.playing["in-1"] == en("callback_number_is")
            seq = []
            for _ in range(6):
                seq.append(w.playing["in-1"])
                w.finish_playback("in-1")
                await settle()
            assert seq == [
                en("callback_number_is"),
                en("num_1"),
                en("num_0"),
                en("num_0"),
                en("num_9"),
                en("callback_confirm"),
            ]
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle()
            assert w.playing["in-1"] == en("callback_scheduled")
            w.finish_playback("in-1")
            await settle(20)
            assert any(isinstance(c, P.Hangup) and c.leg == "in-1" for c in w.commands)
            assert (await env.kinds(s.rec.id)) == ["ENTER", "CALLBACK_REQUESTED"]
            cbs = await S.list_callbacks(env.db)
            assert [(c.number, c.queue, c.call_id) for c in cbs] == [("1009", "front", s.rec.id)]
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "callback_requested"
            waiting = env.live.queue_status("front")["waiting"]
            assert len(waiting) == 1 and waiting[0]["is_callback"] and waiting[0]["position"] == 1

    run(go())


def test_press_2_keys_in_another_number(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            w, s = await env.call()
            for d in "12":
                w.inject(P.Dtmf(leg="in-1", digit=d))
                await settle()
            assert w.playing["in-1"] == en("enter_number")
            for d in "5551234#":
                w.inject(P.Dtmf(leg="in-1", digit=d))
            await settle()
            assert w.playing["in-1"] == en("callback_number_is")
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle()
            # the caller hangs up during "thank you": still a callback
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            cbs = await S.list_callbacks(env.db)
            assert [c.number for c in cbs] == ["5551234"]
            assert (await env.cdr(s.rec.id))["disposition"] == "callback_requested"
            assert (await env.kinds(s.rec.id)) == ["ENTER", "CALLBACK_REQUESTED"]

    run(go())


def test_callback_dialled_agent_first_then_patient(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            w, s = await env.call(frm="1009")
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle()
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle(20)
            await env.login("alice", "1001")
            await settle(20)
            cw = [x for x in env.pool.busy if x is not w][-1]
            o = originates(cw)
            assert o[0].uri.startswith("sip:acd-")
            cw.inject(P.Answered(leg="agent", call_id="a1"))
            await settle()
            o = originates(cw)
            assert o[1].uri == "sip:1009@127.0.0.1:5060"
            cw.inject(P.Answered(leg="patient", call_id="p1"))
            await settle()
            assert frozenset(("agent", "patient")) in cw.bridges
            cw.inject(P.Ended(leg="patient", cause_code=200, reason="BYE"))
            await settle(20)
            kinds = await env.kinds(s.rec.id)
            assert kinds == [
                "ENTER",
                "CALLBACK_REQUESTED",
                "RING",
                "CALLBACK_DIALED",
                "CALLBACK_CONNECTED",
                "COMPLETE_CALLER",
            ]
            cbs = await S.list_callbacks(env.db, "done")
            assert len(cbs) == 1 and cbs[0].status == "done"

    run(go())


def test_direct_call_makes_agent_busy(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            await env.login("alice", "1001")
            env.cm.route(invite("1001", frm="1003", call_id="d1"), PHONE, "1003")
            w = env.pool.busy[-1]
            w.inject(P.Incoming(leg="in-1", from_uri="<sip:1003@pbx>", to_uri="<sip:1001@pbx>", call_id="d1"))
            await settle()
            assert env.live.engine.agents["alice"].external_busy
            w2, _s2 = await env.call(call_id="c2")
            assert not originates(w2)  # alice is busy: nobody rung
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert not env.live.engine.agents["alice"].external_busy
            assert originates(w2)  # now she is offered the queue call

    run(go())


def test_feature_codes_login_pause_logout(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:

            async def dial(code: str) -> None:
                env.cm.route(invite(code, frm="1002", call_id=code), PHONE, "1002")
                w = env.pool.busy[-1]
                w.inject(P.Incoming(leg="in-1", from_uri="<sip:1002@pbx>", to_uri=f"<sip:{code}@pbx>", call_id=code))
                await settle()
                assert w.playing["in-1"] == en("thank_you_goodbye")
                w.finish_playback("in-1")
                await settle()

            await dial("*45bob")
            a = await S.get_agent(env.db, "bob")
            assert a.extension == "1002" and a.state == "available"
            assert env.live.engine.agents["bob"].state.value == "available"
            await dial("*46")
            assert (await S.get_agent(env.db, "bob")).state == "paused"
            assert env.live.engine.agents["bob"].state.value == "paused"
            await dial("*46")
            assert env.live.engine.agents["bob"].state.value == "available"
            await dial("*45")
            assert (await S.get_agent(env.db, "bob")).state == "logged_out"
            assert env.live.engine.agents["bob"].state.value == "logged_out"

    run(go())


def test_cli_changes_picked_up_by_data_version(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            async with open_db(tmp_path / "pbx.db") as other:  # the CLI's connection
                await S.login(other, "alice", "1001")
            for _ in range(50):
                await asyncio.sleep(0.02)
                if env.live.engine.agents["alice"].state.value == "available":
                    break
            assert env.live.engine.agents["alice"].state.value == "available"
            assert env.live.agent_ext == {"alice": "1001"}

    run(go())


def test_restart_closes_callers_left_by_a_crash(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            await S.add_queue(db, "front")
            await S.save_acd_state(
                db,
                {
                    "version": 1,
                    "callbacks": [],
                    "live_waiting": [
                        {
                            "call_id": "lost1",
                            "queue": "front",
                            "number": "5550001",
                            "entered_at": 999_950.0,
                            "position": 1,
                        }
                    ],
                },
            )
            live = AcdLive(db, clock=Clock())
            await live.start(background=False)
            ev = await S.list_queue_events(db, call_id="lost1")
            assert [e["kind"] for e in ev] == ["INTERRUPTED"]
            assert ev[0]["data"]["wait"] == pytest.approx(50)
            assert [c.number for c in await S.list_callbacks(db)] == ["5550001"]
            await live.close()
            snap = await S.load_acd_state(db)
            assert snap["live_waiting"] == []

    run(go())


def test_shutdown_interrupts_waiting_callers_and_keeps_them_as_callbacks(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            _w, s = await env.call(frm="1009")
            await env.live.close()
            await settle(20)
            assert (await env.kinds(s.rec.id)) == ["ENTER", "INTERRUPTED"]
            assert [c.number for c in await S.list_callbacks(env.db)] == ["1009"]
            assert (await env.cdr(s.rec.id))["disposition"] == "interrupted"
            snap = await S.load_acd_state(env.db)
            assert [c["number"] for c in snap["callbacks"]] == ["1009"]

    run(go())


def test_queue_number_validation(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            await add_extension(db, "1001", password="secret-pass-123")
            await S.add_queue(db, "front")
            await S.add_queue(db, "back")
            with pytest.raises(S.AcdError, match="is an extension"):
                await S.set_queue_number(db, "front", "1001")
            await S.set_queue_number(db, "front", "600")
            with pytest.raises(S.AcdError, match="in use by another queue"):
                await S.set_queue_number(db, "back", "600")
            with pytest.raises(S.AcdError, match="bad queue number"):
                await S.set_queue_number(db, "back", "6a")
            assert await S.queue_numbers(db) == {"600": "front"}
            await S.set_queue_number(db, "front", "none")
            assert await S.queue_numbers(db) == {}

    run(go())


# --------------------------------------------------------------------------- transfers, trunks


class FakeTrunkSvc:
    """The parts of pypbx.trunks.TrunkService that outside legs use."""

    def __init__(self) -> None:
        self.trunks = {
            "prov": SimpleNamespace(name="prov", caller_id="+33100000000", domain="fake.provider", host="192.0.2.99")
        }
        self.active: dict[str, int] = {}

    def candidates(self, exclude=()):
        return [t for n, t in self.trunks.items() if n not in exclude]

    def dial_number(self, trunk, number: str) -> str:
        return "00" + number.lstrip("+")

    def from_uri(self, trunk, fallback: str) -> str:
        return f"sip:{trunk.caller_id or fallback}@{trunk.domain}"

    def trunk_busy(self, name: str, delta: int) -> None:
        self.active[name] = self.active.get(name, 0) + delta

    def outbound_target(self, trunk, user: str):
        return f"sip:{user}@{trunk.host}:5060", None

    def leg_auth(self, trunk) -> dict[str, str] | None:
        return {"username": "clinic", "password": "pw", "realm": "*"} if trunk == "prov" else None


def with_trunk(env: Env) -> FakeTrunkSvc:
    svc = FakeTrunkSvc()
    env.cm.trunks = SimpleNamespace(
        svc=svc, route_worker_leg=lambda req: None, screen=lambda *a: (), context=lambda s, ev: None
    )
    return svc


def test_outside_leg_extension_or_trunk():
    cm = SimpleNamespace(front_door="127.0.0.1:5060", trunks=None, is_extension=lambda n: n == "1001")
    assert outside_leg(cm, "1001", "1009") == ("sip:1001@127.0.0.1:5060", "sip:1009@127.0.0.1", {}, None)
    assert outside_leg(cm, "+33612345678", "1009")[3] is None  # no trunk: through the front door
    cm.trunks = SimpleNamespace(svc=FakeTrunkSvc())
    assert outside_leg(cm, "1001", "1009")[3] is None  # an extension never leaves
    assert outside_leg(cm, "+33612345678", "1009") == (
        "sip:0033612345678@192.0.2.99:5060",
        "sip:+33100000000@fake.provider",
        {"X-PBX-Trunk": "prov"},
        "prov",
    )


async def _connected_queue_call(env: Env):
    await env.login("alice", "1001")
    w, s = await env.call()
    o = originates(w)
    w.inject(P.Answered(leg=o[0].leg_id, call_id="ring1"))
    await settle()
    assert (await env.kinds(s.rec.id)) == ["ENTER", "RING", "CONNECT"]
    return w, s, o[0].leg_id


def test_agent_blind_transfer_is_a_transfer_event_and_frees_the_agent(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            w, s, agent_leg = await _connected_queue_call(env)
            w.inject(P.TransferRequested(leg=agent_leg, target="<sip:1003@pbx>", new_leg="x1"))
            await settle()
            w.inject(P.Ended(leg=agent_leg, cause_code=200, reason="BYE"))  # the phone leaves after 202
            await settle()
            assert env.live.engine.agents["alice"].state.value == "on_call"  # not before the target answers
            w.inject(P.Answered(leg="x1", call_id="x1"))
            await settle(20)
            ev = await env.qevents(call_id=s.rec.id)
            assert [(e["kind"], e["agent"]) for e in ev] == [
                ("ENTER", None),
                ("RING", "alice"),
                ("CONNECT", "alice"),
                ("TRANSFER", "alice"),
            ]
            assert ev[-1]["data"]["target"] == "1003"
            assert env.live.engine.agents["alice"].state.value == "available"
            # the transferred call goes on; its end is not the queue's any more
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.kinds(s.rec.id))[-1] == "TRANSFER"
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "answered" and row["extension"] == "1003"

    run(go())


def test_caller_side_transfer_is_not_the_agents(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            w, s, agent_leg = await _connected_queue_call(env)
            w.inject(P.TransferRequested(leg="in-1", target="<sip:1003@pbx>", new_leg="x1"))
            await settle()
            w.inject(P.Answered(leg="x1", call_id="x1"))
            await settle(20)
            assert "TRANSFER" not in await env.kinds(s.rec.id)
            assert env.live.engine.agents["alice"].state.value == "on_call"
            w.inject(P.Ended(leg=agent_leg, cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.kinds(s.rec.id))[-1] == "COMPLETE_AGENT"

    run(go())


def test_overflow_to_an_external_number_goes_out_through_a_trunk(tmp_path):
    async def go():
        async with Env(tmp_path, record=False, overflow="after=20,external:+33612345678") as env:
            svc = with_trunk(env)
            w, s = await env.call()
            await env.advance(20)
            await settle(20)
            o = originates(w)
            assert len(o) == 1 and o[0].uri == "sip:0033612345678@192.0.2.99:5060"
            assert o[0].headers.get("X-PBX-Trunk") == "prov"
            assert o[0].auth == svc.leg_auth("prov")  # the trunk's credentials go with it
            assert svc.active == {"prov": 1}
            w.inject(P.Answered(leg=o[0].leg_id, call_id="o1"))
            await settle()
            assert frozenset(("in-1", o[0].leg_id)) in w.bridges
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "overflowed_out" and row["extension"] is None
            assert svc.active == {"prov": 0}
            dial = [d for k, d in await env.call_events(s.rec.id) if k == "trunk_dial"]
            assert dial and dial[0]["trunk"] == "prov"

    run(go())


def test_callback_to_an_outside_number_through_a_trunk_cdr(tmp_path):
    async def go():
        async with Env(tmp_path, record=True) as env:
            svc = with_trunk(env)
            w, s = await env.call(frm="1009")
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle()
            w.inject(P.Dtmf(leg="in-1", digit="2"))  # key in another number
            await settle()
            for d in "0612345678#":
                w.inject(P.Dtmf(leg="in-1", digit=d))
                await settle(2)
            w.inject(P.Dtmf(leg="in-1", digit="1"))
            await settle(20)
            await env.login("alice", "1001")
            await settle(20)
            cw = [x for x in env.pool.busy if x is not w][-1]
            cw.inject(P.Answered(leg="agent", call_id="a1"))
            await settle()
            o = originates(cw)
            assert o[1].uri == "sip:0033612345678@192.0.2.99:5060" and o[1].headers.get("X-PBX-Trunk") == "prov"
            assert o[1].auth == svc.leg_auth("prov") and o[0].auth is None
            assert svc.active == {"prov": 1}
            cw.inject(P.Answered(leg="patient", call_id="p1"))
            await settle()
            assert frozenset(("agent", "patient")) in cw.bridges
            assert set(cw.recording) == {"agent", "patient"}
            cw.inject(P.Ended(leg="agent", cause_code=200, reason="BYE"))  # the agent hangs up
            await settle(30)
            assert svc.active == {"prov": 0}
            kinds = await env.kinds(s.rec.id)
            assert kinds[-3:] == ["CALLBACK_DIALED", "CALLBACK_CONNECTED", "COMPLETE_AGENT"]
            rows = await env.db.fetchall("SELECT * FROM calls ORDER BY offered_at")
            cb = rows[-1]
            assert cb["id"] != s.rec.id and cb["direction"] == "outbound"
            assert cb["caller_number"] == "1001" and cb["extension"] == "1001" and cb["agent"] == "alice"
            assert cb["callee_number"] == "+33612345678" and cb["queue"] == "front"  # keyed 0612345678
            assert cb["disposition"] == "answered" and cb["hangup_side"] == "caller"
            ev = dict(await env.call_events(cb["id"]))
            assert ev["callback"]["of_call"] == s.rec.id and ev["callback_dial"]["trunk"] == "prov"

    run(go())


def test_max_wait_then_the_queues_mailbox(tmp_path):
    """--max-wait 300 --fallback voicemail: after 300 s nobody answered -> the queue's own
    mailbox takes the caller over (leave_message, beep, record); the record keeps the queue,
    ends ``voicemail`` with flag queue_timeout; the queue counts a TIMEOUT (not answered)."""

    async def go():
        async with FEnv(tmp_path, record=False) as env:
            with pytest.raises(S.AcdError, match="mailbox q2 does not exist"):
                await S.add_queue(env.db, "q2", max_wait=300, fallback="voicemail", wrap_up=0)
            await V.set_box(env.db, "q2")
            await S.add_queue(env.db, "q2", max_wait=300, fallback="voicemail", wrap_up=0)
            assert (await S.get_queue(env.db, "q2")).config.fallback == S.parse_target("voicemail:q2")
            await S.set_queue_number(env.db, "q2", "601")
            await env.live.sync()
            w, s = await env.call("601")
            w.inject(P.Answered(leg="in-1", call_id="c1"))
            await settle()
            rec_id = s.rec.id
            env.clock.t += 299
            env.live.poke()
            await settle(20)
            assert pr("leave_message") not in plays(w)
            env.clock.t += 1
            env.live.poke()
            await settle(20)
            assert plays(w)[-1] == pr("leave_message")  # MOH stopped, the mailbox greets
            w.finish_playback("in-1")
            await settle()
            assert plays(w)[-1] == str(V.BEEP)
            w.finish_playback("in-1")
            await settle()
            path = w.recording["in-1"]
            assert "/voicemail/q2/.incoming/" in path
            write_wav(path, 2.0)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))  # the caller hangs up
            await settle(30)
            [m] = await V.list_messages(env.db, "q2")
            assert m["caller"] == "1009" and m["call_id"] == rec_id
            row = await env.cdr(rec_id)
            assert row["disposition"] == "voicemail" and row["queue"] == "q2" and row["hangup_side"] == "caller"
            assert "queue_timeout" in row["flags"].split(",") and m["id"] in row["hangup_cause"]
            ev = dict(await env.events(rec_id))
            assert ev["queue_leave"] == {"reason": "timeout", "target": {"kind": "voicemail", "target": "q2"}}
            assert ev["queue_to_voicemail"]["box"] == "q2"
            await env.live.flush()
            qev = await S.list_queue_events(env.db, call_id=rec_id)
            assert [e["kind"] for e in qev] == ["ENTER", "TIMEOUT"]
            assert qev[1]["data"]["wait"] == pytest.approx(300)

    run(go())


def test_overflow_to_a_mailbox(tmp_path):
    """--overflow-after 20 --overflow-to voicemail:BOX: the mailbox takes the caller over too
    (flag queue_overflow; the engine's OVERFLOW event names the box)."""

    async def go():
        async with FEnv(tmp_path, record=False) as env:
            await V.set_box(env.db, "1003")
            await S.add_queue(env.db, "q2", overflow="after=20,voicemail:1003", wrap_up=0)
            await S.set_queue_number(env.db, "q2", "601")
            await env.live.sync()
            w, s = await env.call("601")
            w.inject(P.Answered(leg="in-1", call_id="c1"))
            await settle()
            env.clock.t += 20
            env.live.poke()
            await settle(20)
            assert plays(w)[-1] == pr("leave_message")
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))  # gone before the beep
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "abandoned_ivr" and row["queue"] == "q2"
            assert "queue_overflow" in row["flags"].split(",")
            await env.live.flush()
            ov = await S.list_queue_events(env.db, call_id=s.rec.id, kind="OVERFLOW")
            assert ov[0]["data"]["target_kind"] == "voicemail" and ov[0]["data"]["target"] == "1003"

    run(go())
