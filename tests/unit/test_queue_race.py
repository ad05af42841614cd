"""The agent's answer crossing the caller's hang-up (issue 12): whatever order the two
events reach the queue call in, the call ends with exactly one outcome in both books (the
call record and the queue event log) and the agent is freed."""

from __future__ import annotations

from media import protocol as P
from tests.unit.test_acdlive import Env, originates, run, settle

OUTCOMES = {"ABANDON", "COMPLETE_CALLER", "COMPLETE_AGENT", "TRANSFER", "EXITWITHTIMEOUT", "EXITEMPTY", "EXITFULL"}


async def _race(env: Env, answer_first: bool):
    await env.login("alice", "1001")
    w, s = await env.call()
    leg = originates(w)[0].leg_id
    answered = P.Answered(leg=leg, call_id="ring1")
    hung_up = P.Ended(leg="in-1", cause_code=200, reason="BYE")
    # both reach the call's queue before it handles either (no settle in between)
    for ev in (answered, hung_up) if answer_first else (hung_up, answered):
        w.inject(ev)
    await settle(40)
    kinds = await env.kinds(s.rec.id)
    row = await env.cdr(s.rec.id)
    agent = env.live.engine.agents["alice"].state.value
    return kinds, row, agent, s.ended


def test_answer_then_hang_up_is_one_answered_call_and_frees_the_agent(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            return await _race(env, answer_first=True)

    kinds, row, agent, ended = run(go())
    assert ended
    assert [k for k in kinds if k in OUTCOMES] == ["COMPLETE_CALLER"], kinds
    assert "CONNECT" in kinds
    assert row["disposition"] == "answered" and row["agent"] == "alice", row
    assert row["hangup_side"] == "caller" and row["talk_seconds"] is not None
    assert agent == "available"


def test_hang_up_then_answer_is_one_abandoned_call_and_frees_the_agent(tmp_path):
    async def go():
        async with Env(tmp_path, record=False) as env:
            return await _race(env, answer_first=False)

    kinds, row, agent, ended = run(go())
    assert ended
    assert [k for k in kinds if k in OUTCOMES] == ["ABANDON"], kinds
    assert "CONNECT" not in kinds
    assert row["disposition"] == "abandoned_queue" and not row["agent"], row
    assert agent == "available"
