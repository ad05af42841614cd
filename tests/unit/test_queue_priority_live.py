"""The urgent line on live calls over media.fake (CallManager + AcdLive + FrontLine): a DID's
priority, a route rule's and an IVR option's reach the ACD's Caller (the highest wins, the
queue's own entry priority is the floor), an urgent caller arriving last is offered first,
the queue's urgent prompt is played to urgent callers only."""

from __future__ import annotations

import asyncio

from media import protocol as P
from pypbx import acdstore as S
from pypbx import dids as DD
from pypbx import ivr as I
from pypbx import routing as R
from pypbx import trunks as T
from tests.unit._frontline_env import Env, finish_all_playback, pr, press, settle
from tests.unit.test_routing_live import did_call, with_trunks


def run(coro):
    return asyncio.run(coro)


def waiting(env: Env) -> list[tuple[str, int]]:
    return [(w.call_id, w.priority) for w in env.live.engine.waiting("front")]


def test_did_route_and_ivr_priorities_reach_the_acd_and_the_urgent_caller_goes_first(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            svc = with_trunks(env, "prov")
            await S.edit_queue(env.db, "front", urgent_prompt="call_important")
            await DD.add_did(env.db, "+33100000001", "queue:front")
            await DD.add_did(env.db, "+33100000002", "queue:front", priority=5)
            await R.add_route(env.db, "r")
            await R.add_rule(env.db, "r", ["caller=+337"], "queue:front", priority=3)
            await R.add_rule(env.db, "r", [], "queue:front")
            await DD.add_did(env.db, "+33100000003", "route:r", priority=1)
            await I.save_menu(
                env.db,
                I.Menu(name="main", number="700", timeout=5, inter_digit=0.1, options={"1": "queue:front@4"}),
            )
            await env.live.sync()
            svc.dids = {d.number: d for d in await T.list_dids(env.db)}
            _w1, s1 = await did_call(env, "+33100000001", frm="+33611111111", call_id="d1")
            w2, s2 = await did_call(env, "+33100000002", frm="+33622222222", call_id="d2")
            _w3, s3 = await did_call(env, "+33100000003", frm="+33711111111", call_id="d3")  # rule 3 > DID 1
            _w4, s4 = await did_call(env, "+33100000003", frm="+33633333333", call_id="d4")  # DID 1 (rule 0)
            w5, s5 = await env.call("700", call_id="c5")  # the IVR: 1 = queue:front@4
            await press(w5, "1")
            await settle(20)
            assert waiting(env) == [
                (s2.rec.id, 5),
                (s5.rec.id, 4),
                (s3.rec.id, 3),
                (s4.rec.id, 1),
                (s1.rec.id, 0),
            ]
            assert (s2.priority, s3.priority, s4.priority, s5.priority, s1.priority) == (5, 3, 1, 4, 0)
            route_ev = [d for k, d in await env.events(s3.rec.id) if k == "route"]
            assert route_ev and route_ev[0]["priority"] == 3
            assert ("priority", {"priority": 4, "queue": "front"}) in await env.events(s5.rec.id)
            q_ev = [d for k, d in await env.events(s2.rec.id) if k == "queue"]
            assert q_ev and q_ev[0]["priority"] == 5
            # the urgent prompt: after the greeting, to urgent callers only
            heard = {n: await finish_all_playback(w, limit=6) for n, w in (("d1", _w1), ("d2", w2), ("c5", w5))}
            assert heard["d2"][:3] == [pr("welcome"), pr("call_may_be_recorded"), pr("call_important")], heard
            assert pr("call_important") in heard["c5"] and pr("call_important") not in heard["d1"], heard
            # the agent logs in: the urgent DID's caller (arrived second) is rung first
            await S.login(env.db, "alice", "1001")
            await env.live.sync()
            await settle()
            ringing = [w for w in env.live.engine.waiting("front") if w.ringing]
            assert [w.call_id for w in ringing] == [s2.rec.id]
            for w in (_w1, w2, _w3, _w4, w5):
                w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(30)

    run(go())


def test_queue_entry_priority_is_the_floor_for_every_caller(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await S.edit_queue(env.db, "front", priority=2)
            await env.live.sync()
            w, s = await env.call("1002", call_id="c1")  # an ordinary call, handed to the queue
            assert await env.fl.start_destination(s, "queue:front", answered=True)
            await settle()
            assert waiting(env) == [(s.rec.id, 2)]
            assert s.priority == 0  # the call's own: the queue gave the 2
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)

    run(go())
