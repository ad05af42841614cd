"""pypbx.survey: settings, the question after the callee hangs up first, scores stored with
the call and the agent, the report and the CLI."""

from __future__ import annotations

import asyncio
import json

from media import protocol as P
from pypbx import survey as Sv
from tests.unit._frontline_env import Env, plays, pr, press, settle


def run(coro):
    return asyncio.run(coro)


async def answered_call(env: Env, call_id: str = "c1"):
    w, s = await env.call("1001", call_id=call_id)
    w.inject(P.Answered(leg="callee", call_id="cx"))
    await settle()
    w.inject(P.Answered(leg="in-1"))
    await settle()
    assert frozenset(("in-1", "callee")) in w.bridges
    return w, s


def test_settings(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            assert not await Sv.enabled_for(env.db, "front")
            await Sv.set_enabled(env.db, True, "front")
            assert await Sv.enabled_for(env.db, "front") and not await Sv.enabled_for(env.db, None)
            await Sv.set_enabled(env.db, True)
            assert await Sv.enabled_for(env.db, None)
            await Sv.set_enabled(env.db, False)
            assert await Sv.get_settings(env.db) == {"all": False, "queues": []}

    run(go())


def test_callee_hangs_up_first_caller_scores(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await Sv.set_enabled(env.db, True)
            w, s = await answered_call(env)
            rec_id = s.rec.id
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle()
            row = await env.cdr(rec_id)
            assert row["disposition"] == "answered" and row["hangup_side"] == "callee"  # closed as usual
            assert "in-1" in w.legs and plays(w)[-1] == pr("survey_question")
            await press(w, "4")
            assert plays(w)[-1] == pr("survey_thanks")
            w.finish_playback("in-1")
            await settle(20)
            assert "in-1" not in w.legs and w not in env.pool.busy
            [r] = await env.db.survey_rows()
            assert (r["call_id"], r["agent"], r["score"]) == (rec_id, "1001", 4)
            ev = [d for k, d in await env.events(rec_id) if k == "survey"]
            assert ev == [{"score": 4, "agent": "1001", "queue": None}]
            rep = await Sv.report(env.db)
            assert rep["answers"] == 1 and rep["agents"][0]["average"] == 4.0

    run(go())


def test_no_answer_releases_caller_and_caller_first_gets_no_survey(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await Sv.set_enabled(env.db, True)
            w, s = await answered_call(env)
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle()
            w.finish_playback("in-1")
            await asyncio.sleep(0.3)  # survey_timeout=0.2 in the test env
            await settle(20)
            assert "in-1" not in w.legs and await env.db.survey_rows() == []
            asked = plays(w).count(pr("survey_question"))
            w, s = await answered_call(env, "c2")
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))  # the caller first
            await settle(20)
            assert plays(w).count(pr("survey_question")) == asked
            assert (await env.cdr(s.rec.id))["hangup_side"] == "caller"

    run(go())


def test_survey_off_hangs_up_the_caller(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            w, _s = await answered_call(env)
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle(20)
            assert "in-1" not in w.legs

    run(go())


def test_cli_survey(invoke_cli, tmp_config):
    from pypbx.config import load_config
    from pypbx.db import open_db

    c = ("--config", str(tmp_config))
    assert "every call" in invoke_cli("survey", "enable", *c).output
    assert "off" in invoke_cli("survey", "disable", *c).output
    assert invoke_cli("queue", "add", "front", *c).exit_code == 0  # issue 12: --queue must name a queue
    assert "queues front" in invoke_cli("survey", "enable", "--queue", "front", *c).output
    cfg = load_config(tmp_config)

    async def put():
        async with open_db(cfg.db_path) as db:
            for agent, score in (("alice", 5), ("alice", 3), ("bob", 2)):
                await Sv.record_score(db, "call", agent, "front", score, 1000.0)

    asyncio.run(put())
    d = json.loads(invoke_cli("survey", "report", "--json", *c).output)
    assert d["answers"] == 3 and [(a["agent"], a["average"]) for a in d["agents"]] == [("alice", 4.0), ("bob", 2.0)]
    out = invoke_cli("survey", "report", *c).output
    assert "alice" in out and "4.00" in out


def test_per_queue_setting_follows_the_calls_queue(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await Sv.set_enabled(env.db, True, "front")
            w, s = await answered_call(env)
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))  # not a queue call: no survey
            await settle(20)
            assert "in-1" not in w.legs
            w, s = await answered_call(env, "c2")
            s.rec.queue, s.rec.agent = "front", "alice"
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle()
            assert plays(w)[-1] == pr("survey_question")
            await press(w, "2")
            [r] = await env.db.survey_rows()
            assert (r["agent"], r["queue"], r["score"]) == ("alice", "front", 2)

    run(go())
