"""Order of distribution for every ACD strategy."""

from __future__ import annotations

import random

import pytest

from acd.engine import AcdEngine
from acd.model import Agent, Caller, Connect, Party, QueueConfig, RingAgents, Strategy


def make(strategy: Strategy, agents: list[Agent], **qkw) -> AcdEngine:
    qkw.setdefault("wrap_up", 0)
    eng = AcdEngine([QueueConfig("q", strategy=strategy, **qkw)], agents, rng=random.Random(7))
    for i, a in enumerate(agents):
        eng.agent_login(a.id, float(i))
    return eng


def ring(actions) -> tuple[str, ...]:
    rings = [a for a in actions if isinstance(a, RingAgents)]
    assert len(rings) == 1, actions
    return rings[0].agent_ids


def serve(eng: AcdEngine, cid: str, now: float, talk: float = 10.0) -> str:
    """Offer a call, answer with the first rung agent, hang up after ``talk``."""
    agents = ring(eng.call_arrived(Caller(cid, "1"), "q", now))
    eng.ring_answered(cid, agents[0], now + 1)
    eng.call_ended(cid, Party.CALLER, now + 1 + talk)
    return agents[0]


def test_ring_all_rings_every_free_eligible_agent_with_one_action():
    eng = make(Strategy.RING_ALL, [Agent("a"), Agent("b"), Agent("c")])
    acts = eng.call_arrived(Caller("c1"), "q", 10)
    assert ring(acts) == ("a", "b", "c")
    out = eng.ring_answered("c1", "b", 12)
    cancels = [a for a in out if not isinstance(a, Connect)]
    assert Connect("c1", "b") in out
    assert cancels and cancels[0].agent_ids == ("a", "c")
    assert eng.agents["a"].offerable and eng.agents["c"].offerable
    assert not eng.agents["b"].offerable


def test_longest_idle_takes_the_agent_idle_longest():
    eng = make(Strategy.LONGEST_IDLE, [Agent("a"), Agent("b"), Agent("c")])
    order = [serve(eng, f"c{i}", 100 + 50 * i) for i in range(6)]
    assert order == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_remembers_last_agent_across_calls():
    eng = make(Strategy.ROUND_ROBIN, [Agent("a"), Agent("b"), Agent("c")])
    order = [serve(eng, f"c{i}", 100 + 50 * i) for i in range(5)]
    assert order == ["a", "b", "c", "a", "b"]
    # memory says b was last; c is busy, so the next free after b wraps round to a
    eng.agent_busy("c", 400)
    assert serve(eng, "x1", 400) == "a"
    eng.agent_free("c", 450)
    assert serve(eng, "x2", 460) == "b"


def test_fewest_calls_prefers_agent_with_fewest_calls():
    agents = [Agent("a", calls_taken=5), Agent("b", calls_taken=2), Agent("c", calls_taken=3)]
    eng = make(Strategy.FEWEST_CALLS, agents)
    assert serve(eng, "c1", 100) == "b"  # 2 calls -> now 3, tied with c
    assert serve(eng, "c2", 200) == "c"  # tie 3-3: c has been idle longer
    assert serve(eng, "c3", 300) == "b"


def test_least_talk_time():
    agents = [Agent("a", total_talk_time=500), Agent("b", total_talk_time=100), Agent("c", total_talk_time=300)]
    eng = make(Strategy.LEAST_TALK_TIME, agents)
    assert serve(eng, "c1", 100, talk=150) == "b"  # b -> 250
    assert serve(eng, "c2", 400, talk=10) == "b"  # 250 < 300
    assert serve(eng, "c3", 500, talk=10) == "b"  # 260 < 300
    assert serve(eng, "c4", 600, talk=100) == "b"  # 270 < 300 -> 370
    assert serve(eng, "c5", 800) == "c"


def test_best_skill_then_longest_idle():
    agents = [
        Agent("a", skills={"results": 4}),
        Agent("b", skills={"results": 9}),
        Agent("c", skills={"results": 9}),
        Agent("d", skills={"results": 2}),
    ]
    eng = make(Strategy.BEST_SKILL_THEN_LONGEST_IDLE, agents, required_skills={"results": 3})
    assert serve(eng, "c1", 100) == "b"  # best skill, idle longest among the 9s
    assert serve(eng, "c2", 200) == "c"  # b was just used
    assert serve(eng, "c3", 300) == "b"
    eng.agent_busy("b", 400)
    eng.agent_busy("c", 400)
    assert serve(eng, "c4", 400) == "a"  # d (level 2) is never eligible


def test_random_is_seeded_and_covers_all_agents():
    def run(seed: int) -> list[str]:
        agents = [Agent(x) for x in "abcd"]
        eng = AcdEngine([QueueConfig("q", strategy=Strategy.RANDOM, wrap_up=0)], agents, rng=random.Random(seed))
        for a in agents:
            eng.agent_login(a.id, 0)
        return [serve(eng, f"c{i}", 10 + 20 * i) for i in range(40)]

    assert run(3) == run(3)
    assert set(run(3)) == set("abcd")
    assert run(3) != run(4)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_skips_busy_paused_and_unskilled_agents(strategy):
    from acd.model import PauseReason

    agents = [
        Agent("a", skills={"x": 5}),
        Agent("b", skills={"x": 5}),
        Agent("c", skills={"x": 1}),
        Agent("d", skills={"x": 6}),
    ]
    eng = make(strategy, agents, required_skills={"x": 3})
    eng.agent_busy("a", 50)
    eng.agent_pause("b", PauseReason.BREAK, 50)
    assert ring(eng.call_arrived(Caller("c1"), "q", 100)) == ("d",)
    acts = eng.call_arrived(Caller("c2"), "q", 101)
    assert not any(isinstance(a, RingAgents) for a in acts)  # d is ringing, nobody else fits
