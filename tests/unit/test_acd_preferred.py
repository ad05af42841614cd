"""ACD sticky agent: a caller with a preferred agent (routing rule ``--prefer-last``) is
offered to that agent only for ``prefer_for`` seconds, if the agent is staffed; pure,
injected clock."""

from __future__ import annotations

from acd.engine import AcdEngine
from acd.model import Agent, Caller, EventKind, PauseReason, QueueConfig, RingAgents, Strategy


def rings(actions) -> list[RingAgents]:
    return [a for a in actions if isinstance(a, RingAgents)]


def engine(agents=("a", "b"), **qkw) -> AcdEngine:
    qkw.setdefault("wrap_up", 0)
    eng = AcdEngine([QueueConfig("q", **qkw)], [Agent(x) for x in agents])
    for i, x in enumerate(agents):
        eng.agent_login(x, float(i))  # "a" is the longest idle
    return eng


def test_preferred_agent_rung_though_another_is_longest_idle():
    eng = engine()
    out = eng.call_arrived(Caller("c1", "+331", preferred_agent="b", prefer_for=20), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("b",)]


def test_without_preference_longest_idle_wins():
    eng = engine()
    out = eng.call_arrived(Caller("c1", "+331"), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("a",)]


def test_ring_all_rings_only_the_preferred_agent():
    eng = engine(strategy=Strategy.RING_ALL)
    out = eng.call_arrived(Caller("c1", preferred_agent="b", prefer_for=20), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("b",)]


def test_busy_preferred_agent_holds_the_call_until_prefer_for_then_anyone():
    eng = engine()
    # b takes a call first
    out = eng.call_arrived(Caller("x", preferred_agent="b", prefer_for=20), "q", 5.0)
    eng.ring_answered("x", "b", 6.0)
    # the sticky caller waits for b although a is free ...
    out = eng.call_arrived(Caller("c1", preferred_agent="b", prefer_for=20), "q", 10.0)
    assert rings(out) == []
    assert not rings(eng.tick(29.9))
    assert eng.next_deadline() == 30.0
    # ... then after 20 s anyone
    out = eng.tick(30.0)
    assert [r.agent_ids for r in rings(out)] == [("a",)]


def test_preferred_agent_freed_within_the_window_gets_the_call():
    eng = engine()
    eng.call_arrived(Caller("x", preferred_agent="b", prefer_for=20), "q", 5.0)
    eng.ring_answered("x", "b", 6.0)
    assert rings(eng.call_arrived(Caller("c1", preferred_agent="b", prefer_for=20), "q", 10.0)) == []
    from acd.model import Party

    out = eng.call_ended("x", Party.CALLER, 15.0)  # wrap_up 0: b available again
    assert [r.agent_ids for r in rings(out)] == [("b",)]


def test_logged_out_or_paused_preferred_agent_means_normal_distribution_at_once():
    eng = engine(agents=("a", "b", "c"))
    eng.agent_logout("c", 5.0)
    out = eng.call_arrived(Caller("c1", preferred_agent="c", prefer_for=20), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("a",)]
    eng.agent_pause("b", PauseReason.BREAK, 11.0)
    eng.agent_unpause("c", 11.0)  # not logged in: no effect
    eng.agent_login("c", 11.5)
    out = eng.call_arrived(Caller("c2", preferred_agent="b", prefer_for=20), "q", 12.0)
    assert [r.agent_ids for r in rings(out)] == [("c",)]  # b paused: c, not held for b


def test_unknown_preferred_agent_is_ignored():
    eng = engine()
    out = eng.call_arrived(Caller("c1", preferred_agent="zz", prefer_for=20), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("a",)]


def test_preferred_agent_ring_no_answer_then_others():
    eng = engine(rna_misses_before_pause=0, ring_timeout=5)
    out = eng.call_arrived(Caller("c1", preferred_agent="b", prefer_for=20), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("b",)]
    out = eng.tick(15.0)  # b let it ring out: within the window, but b is tried
    assert [r.agent_ids for r in rings(out)] == [("a",)]


def test_preferred_agent_who_does_not_serve_the_queue_is_ignored():
    eng = AcdEngine([QueueConfig("q", wrap_up=0)], [Agent("a"), Agent("b", queues=frozenset({"other"}))])
    eng.agent_login("a", 0.0)
    eng.agent_login("b", 1.0)
    out = eng.call_arrived(Caller("c1", preferred_agent="b", prefer_for=20), "q", 10.0)
    assert [r.agent_ids for r in rings(out)] == [("a",)]


def test_connect_counts_in_the_queue_statistics():
    eng = engine()
    eng.call_arrived(Caller("c1", preferred_agent="b", prefer_for=20), "q", 10.0)
    eng.ring_answered("c1", "b", 12.0)
    kinds = [e.kind for e in eng.drain_events()]
    assert EventKind.ENTER in kinds and EventKind.CONNECT in kinds
    assert eng.agents["b"].current_call == "c1"
