"""Routing rules on live calls over media.fake: the IVR's external:NUMBER action (best
trunk, failover, no answer / no trunk -> back to the menu), the IVR's route:NAME action
with an ivr=MENU:DIGITS condition (choices kept on the session), a route with no match,
FrontLine.start_destination(route:...) and the queue call's sticky agent."""

from __future__ import annotations

import asyncio

from media import protocol as P
from pypbx import acdstore as S
from pypbx import ivr as I
from pypbx import routing as R
from pypbx import trunks as T
from pypbx import voicemail as V
from pypbx.flows.voicemail import VoicemailCall
from tests.unit._frontline_env import PHONE, Env, finish_all_playback, invite, originates, plays, pr, press, settle

MENU = I.Menu(
    name="main",
    number="700",
    greeting=["welcome"],
    timeout=5,
    inter_digit=0.1,
    retries=1,
    options={"7": "external:+33612345678", "8": "route:triage", "6": "route:nomatch", "0": "hangup"},
)


def run(coro):
    return asyncio.run(coro)


def with_trunks(env: Env, *names: str) -> T.TrunkService:
    svc = T.TrunkService()
    svc.trunks = {
        n: T.Trunk(n, f"192.0.2.{20 + i}", priority=i + 1, caller_id="+33100000000") for i, n in enumerate(names)
    }
    env.cm.trunks = T.TrunkRouter(svc, is_internal=lambda n: False)
    return svc


async def kinds(env: Env, rec_id: str) -> list[str]:
    return [k for k, _ in await env.events(rec_id)]


def test_ivr_external_through_the_best_trunk_with_failover(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await I.save_menu(env.db, MENU)
            w, s = await env.call("700")
            svc = with_trunks(env, "first", "second")
            await press(w, "7")
            o1 = originates(w)[-1]
            assert o1.headers["X-PBX-Trunk"] == "first" and o1.uri.startswith("sip:+33612345678@")
            assert o1.from_uri == "sip:+33100000000@192.0.2.20"
            assert plays(w)[-1] == str(env.cm.moh) and svc.active == {"first": 1}
            w.inject(P.Ended(leg=o1.leg_id, cause_code=503, reason="Service Unavailable"))
            await settle()
            o2 = originates(w)[-1]
            assert o2.headers["X-PBX-Trunk"] == "second" and svc.active == {"second": 1}
            w.inject(P.Answered(leg=o2.leg_id, call_id="out-2"))
            await settle()
            assert s.answered and s.flow is None and s.callee == "+33612345678"
            assert s.bridged == ("in-1", o2.leg_id)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "answered" and row["hangup_side"] == "caller"
            assert svc.active == {}
            k = await kinds(env, s.rec.id)
            assert "ivr_external" in k and k.count("trunk_dial") == 2 and "trunk_failover" in k

    run(go())


def test_ivr_external_no_answer_or_no_trunk_back_to_the_menu(tmp_path):
    async def go():
        async with Env(tmp_path, ring_time=0.1) as env:
            await I.save_menu(env.db, MENU)
            w, s = await env.call("700")
            await press(w, "7")  # no trunk at all
            assert plays(w)[-1] == pr("try_again_later")
            assert await finish_all_playback(w) == [pr("try_again_later"), pr("welcome")]
            svc = with_trunks(env, "only")
            await press(w, "7")
            leg = originates(w)[-1].leg_id
            await asyncio.sleep(0.2)  # rings out
            await settle()
            assert plays(w)[-1] == pr("all_staff_busy") and svc.active == {}
            assert leg not in w.legs and s.flow is not None and not s.answered
            w.inject(P.Ended(leg=leg, cause_code=487, reason="Request Terminated"))  # late: ignored
            await settle()
            assert s.flow is not None
            # refused by the provider (486): back to the menu too
            await finish_all_playback(w)
            await press(w, "7")
            leg = originates(w)[-1].leg_id
            w.inject(P.Ended(leg=leg, cause_code=486, reason="Busy Here"))
            await settle()
            assert plays(w)[-1] == pr("all_staff_busy") and svc.active == {}
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "abandoned_ivr"

    run(go())


def test_caller_hangs_up_while_the_outside_number_rings(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await I.save_menu(env.db, MENU)
            w, s = await env.call("700")
            svc = with_trunks(env, "only")
            await press(w, "7")
            leg = originates(w)[-1].leg_id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "abandoned_ringing"
            assert leg not in w.legs and svc.active == {}

    run(go())


def test_ivr_route_action_sees_the_choices(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await I.save_menu(env.db, MENU)
            await R.add_route(env.db, "triage")
            await R.add_rule(env.db, "triage", ["ivr=main:1"], "voicemail:1001")
            await R.add_rule(env.db, "triage", ["ivr=main:8"], "queue:front")
            await R.add_route(env.db, "nomatch")
            await R.add_rule(env.db, "nomatch", ["known"], "queue:front")
            w, s = await env.call("700")
            await press(w, "6")  # no rule matches: try again later, the menu
            assert plays(w)[-1] == pr("try_again_later")
            await finish_all_playback(w)
            await press(w, "8")
            assert s.ivr_choices == [("main", "6"), ("main", "8")]
            assert s.rec.queue == "front"
            ev = [d for k, d in await env.events(s.rec.id) if k == "route"]
            assert [(e["route"], e["rule"], e["destination"]) for e in ev] == [
                ("nomatch", None, None),
                ("triage", 2, "queue:front"),
            ]
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)

    run(go())


def test_start_destination_route_and_sticky_queue_call(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await I.save_menu(env.db, MENU)
            await S.add_agent(env.db, "bob", "Bob")
            await R.add_route(env.db, "r")
            await R.add_rule(env.db, "r", ["sticky"], "queue:front", prefer_last=30)
            await R.add_rule(env.db, "r", [], "ivr:main")
            w, s = await env.call("1002")  # an ordinary call, handed over (a ring group's then)
            assert await env.fl.start_destination(s, "route:r", answered=True)
            assert plays(w)[-1] == pr("welcome")  # bob is not the caller's last agent: the menu
            # the caller's last agent is bob, logged in: the queue call prefers bob
            await env.db.caller_seen_row("1009", 1.0, "answered", "bob", "old")
            await env.live.sync()
            env.live.agent_login("bob")
            _w2, s2 = await env.call("1002", call_id="c2")
            assert await env.fl.start_destination(s2, "route:r", answered=True)
            assert s2.rec.queue == "front" and s2.route_prefer == ("bob", 30.0)
            entry = env.live.engine._entries[s2.rec.id]
            assert entry.call.preferred_agent == "bob" and entry.call.prefer_for == 30.0
            assert not await env.fl.start_destination(s2, "route:ghost")

    run(go())


async def did_call(env: Env, did: str, frm: str = "+33611111111", call_id: str = "d1", asserted: str | None = None):
    """A trunk call to ``did`` as the worker reports it (X-PBX-Trunk / X-PBX-DID, and
    X-PBX-Caller when the trunk asserted the caller)."""
    trunks, env.cm.trunks = env.cm.trunks, None
    env.cm.route(invite(did, frm=frm, call_id=call_id), PHONE, frm)
    env.cm.trunks = trunks
    w = env.pool.busy[-1]
    s = env.cm.sessions[w]
    w.inject(
        P.Incoming(
            leg="in-1",
            from_uri=f"<sip:{frm}@prov>",
            to_uri=f"<sip:{did}@pbx>",
            call_id=call_id,
            headers={"X-PBX-Trunk": "prov", "X-PBX-DID": did, **({"X-PBX-Caller": asserted} if asserted else {})},
        )
    )
    await settle()
    return w, s


def test_the_caller_a_trunk_asserts_is_the_calls_caller_and_routes_it(tmp_path):
    """From: anonymous (or the provider's pilot number) + P-Asserted-Identity: the asserted
    number is the caller (E.164) the route rule and the books see; privacy: anonymous."""

    async def go():
        async with Env(tmp_path) as env:
            svc = with_trunks(env, "prov")
            await R.add_route(env.db, "r")
            await R.add_rule(env.db, "r", ["caller=06"], "queue:front")
            svc.dids = {"+33100000001": T.Did("+33100000001", "route:r")}
            w, s = await did_call(env, "+33100000001", frm="anonymous", asserted="0612345679")
            assert s.caller == "+33612345679" and s.rec.queue == "front"
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.cdr(s.rec.id))["caller_number"] == "+33612345679"
            w, s = await did_call(env, "+33100000001", frm="+33611111111", call_id="d2", asserted="anonymous")
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["caller_number"] == "anonymous" and row["queue"] is None

    run(go())


def test_did_route_no_match_falls_back_to_the_dids_destination_else_480(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            svc = with_trunks(env, "prov")
            await R.add_route(env.db, "r")
            await R.add_rule(env.db, "r", ["caller=+336"], "queue:front")
            svc.dids = {
                "+33100000001": T.Did("+33100000001", "route:r"),
                "+33100000002": T.Did("+33100000002", "voicemail:1001", known="route:r"),
            }
            await V.set_box(env.db, "1001")
            # a rule matches: the queue
            w, s = await did_call(env, "+33100000001", frm="+33611111111")
            assert s.rec.queue == "front"
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            # no rule matches, the DID's destination is the route itself: 480, FAILED
            w, s = await did_call(env, "+33100000001", frm="+33140000000", call_id="d2")
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "failed" and "route r: no rule matched" in row["hangup_cause"]
            assert any(isinstance(c, P.Hangup) and c.code == 480 for c in w.commands)
            ev = [d for k, d in await env.events(s.rec.id) if k == "route"]
            assert ev and ev[0]["rule"] is None and ev[0]["destination"] is None
            # a returning caller (counted above) whose --known route has no match: the DID's --to
            w, s = await did_call(env, "+33100000002", frm="+33140000000", call_id="d3")
            assert isinstance(env.fl.calls.get(id(s)), VoicemailCall), w.commands
            ev = [d for k, d in await env.events(s.rec.id) if k == "route"]
            assert ev and ev[0]["rule"] is None

    run(go())
