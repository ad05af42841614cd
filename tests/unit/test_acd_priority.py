"""ACD engine, issue 10's urgent line and queue settings: priority with live arrivals,
the queue's entry priority, ring-no-answer miss counts per agent, overflow when every
agent is busy."""

from __future__ import annotations

import pytest

from acd.engine import AcdEngine
from acd.model import (
    Agent,
    AgentState,
    Caller,
    Connect,
    EventKind,
    Overflow,
    OverflowRule,
    Party,
    PauseAgent,
    PauseReason,
    QueueConfig,
    QueueEvent,
    RingAgents,
    Target,
    TargetKind,
)


def rings(actions) -> list[RingAgents]:
    return [a for a in actions if isinstance(a, RingAgents)]


def engine(agents=("a",), queues=None, **qkw) -> AcdEngine:
    qkw.setdefault("wrap_up", 0)
    eng = AcdEngine(queues or [QueueConfig("q", **qkw)], [Agent(x) for x in agents])
    for i, x in enumerate(agents):
        eng.agent_login(x, float(i))
    return eng


def connect(eng: AcdEngine, call_id: str, agent: str, now: float) -> None:
    out = eng.ring_answered(call_id, agent, now)
    assert Connect(call_id, agent) in out


# ---------------------------------------------------------------- priority


def test_urgent_caller_arriving_last_is_answered_first():
    eng = engine(("a",))
    eng.agent_busy("a", 1)  # on a direct call: everyone waits
    eng.call_arrived(Caller("n1", "+33600000001"), "q", 10)
    eng.call_arrived(Caller("n2", "+33600000002"), "q", 11)
    eng.call_arrived(Caller("u", "+33600000003", priority=5), "q", 12)
    assert [w.call_id for w in eng.waiting("q")] == ["u", "n1", "n2"]
    assert eng.position("u") == 1 and eng.position("n1") == 2
    out = eng.agent_free("a", 20)
    assert [(r.call_id, r.agent_ids) for r in rings(out)] == [("u", ("a",))]
    connect(eng, "u", "a", 21)
    out = eng.call_ended("u", Party.CALLER, 30)  # wrap-up 0: then the others in arrival order
    assert [(r.call_id, r.agent_ids) for r in rings(out)] == [("n1", ("a",))]
    assert [w.call_id for w in eng.waiting("q")] == ["n1", "n2"]


def test_higher_priority_wins_between_urgent_callers_and_ties_keep_arrival_order():
    eng = engine(("a",))
    eng.agent_busy("a", 1)
    eng.call_arrived(Caller("u3", priority=3), "q", 10)
    eng.call_arrived(Caller("u5", priority=5), "q", 11)
    eng.call_arrived(Caller("v3", priority=3), "q", 12)
    eng.call_arrived(Caller("n"), "q", 13)
    assert [w.call_id for w in eng.waiting("q")] == ["u5", "u3", "v3", "n"]
    assert [w.priority for w in eng.waiting("q")] == [5, 3, 3, 0]


def test_queue_entry_priority_is_a_floor_and_the_higher_wins():
    eng = engine(("a",), queues=[QueueConfig("q", wrap_up=0), QueueConfig("urgent", wrap_up=0, priority=4)])
    eng.agent_busy("a", 1)
    eng.call_arrived(Caller("n"), "q", 10)
    eng.call_arrived(Caller("u"), "urgent", 11)  # the queue's 4
    eng.call_arrived(Caller("v", priority=7), "urgent", 12)  # its own 7 is higher
    eng.call_arrived(Caller("w", priority=2), "urgent", 13)  # the queue's 4 is higher
    assert [(w.call_id, w.priority) for w in eng.waiting()] == [("v", 7), ("u", 4), ("w", 4), ("n", 0)]
    enter = {e.call_id: e.data["priority"] for e in eng.drain_events() if e.kind is EventKind.ENTER}
    assert enter == {"n": 0, "u": 4, "v": 7, "w": 4}


def test_negative_priority_is_refused_by_the_model():
    with pytest.raises(ValueError, match="negative"):
        QueueConfig("q", priority=-1)
    with pytest.raises(ValueError, match="negative"):
        QueueConfig("q", rna_misses_before_pause=-2)


def test_priority_survives_an_overflow_to_another_queue():
    eng = engine(
        ("a",),
        queues=[
            QueueConfig("q", wrap_up=0, overflow=OverflowRule(5, Target(TargetKind.QUEUE, "r"))),
            QueueConfig("r", wrap_up=0),
        ],
    )
    eng.agent_busy("a", 1)
    eng.call_arrived(Caller("n"), "r", 9)
    eng.call_arrived(Caller("u", priority=2), "q", 10)
    eng.tick(15)
    assert [(w.call_id, w.queue, w.priority) for w in eng.waiting()] == [("u", "r", 2), ("n", "r", 0)]


# ---------------------------------------------------------------- ring-no-answer count


def test_rona_two_misses_pause_only_after_the_second():
    eng = engine(("a",), rna_misses_before_pause=2, ring_timeout=5)
    eng.call_arrived(Caller("c1"), "q", 10)
    out = eng.tick(15)  # miss 1: rung again (the only agent)
    assert not [a for a in out if isinstance(a, PauseAgent)]
    assert eng.agents["a"].missed_in_row == 1 and eng.agents["a"].state is AgentState.RINGING
    out = eng.tick(20)  # miss 2: paused
    assert PauseAgent("a", PauseReason.RING_NO_ANSWER) in out
    ev = [(e.kind, e.data.get("missed_in_row")) for e in eng.drain_events() if e.kind is EventKind.RINGNOANSWER]
    assert ev == [(EventKind.RINGNOANSWER, 1), (EventKind.RINGNOANSWER, 2)]


def test_rona_count_is_per_agent_and_an_answer_resets_it():
    eng = engine(("a", "b"), rna_misses_before_pause=2, ring_timeout=5)
    eng.call_arrived(Caller("c1"), "q", 10)  # a (longest idle) rung
    eng.tick(15)  # a misses once; b rung
    assert eng.agents["a"].missed_in_row == 1 and eng.agents["b"].missed_in_row == 0
    connect(eng, "c1", "b", 16)
    eng.call_arrived(Caller("c2"), "q", 17)  # a rung again
    assert eng.agents["a"].state is AgentState.RINGING
    connect(eng, "c2", "a", 18)  # a answers: the count starts over
    assert eng.agents["a"].missed_in_row == 0
    eng.call_ended("c1", Party.CALLER, 20)
    eng.call_ended("c2", Party.CALLER, 21)
    eng.call_arrived(Caller("c3"), "q", 30)  # b is the longest idle now
    eng.tick(35)  # b misses once: not paused, a rung
    assert eng.agents["b"].state is AgentState.AVAILABLE and eng.agents["b"].missed_in_row == 1
    eng.tick(40)  # a misses once: not paused either (1 < 2)
    assert eng.agents["a"].state is not AgentState.PAUSED and eng.agents["a"].missed_in_row == 1


def test_rona_zero_never_pauses():
    eng = engine(("a",), rna_misses_before_pause=0, ring_timeout=5)
    eng.call_arrived(Caller("c1"), "q", 10)
    for t in (15, 20, 25, 30):
        assert not [a for a in eng.tick(t) if isinstance(a, PauseAgent)]
    assert eng.agents["a"].missed_in_row == 4


# ---------------------------------------------------------------- overflow when busy


def busy_engine(**qkw) -> AcdEngine:
    ov = OverflowRule(60, Target(TargetKind.EXTENSION, "1009"))
    return engine(("a", "b"), overflow=ov, overflow_when_busy=True, **qkw)


def test_all_busy_overflows_a_new_caller_at_once():
    eng = busy_engine()
    eng.call_arrived(Caller("c1"), "q", 10)
    connect(eng, "c1", "a", 11)
    eng.call_arrived(Caller("c2"), "q", 12)
    connect(eng, "c2", "b", 13)
    eng.drain_events()
    out = eng.call_arrived(Caller("c3"), "q", 14)
    assert out == [Overflow("c3", Target(TargetKind.EXTENSION, "1009"))]
    ev = eng.drain_events()
    assert [e.kind for e in ev] == [EventKind.ENTER, EventKind.OVERFLOW]
    assert ev[1].data["reason"] == "all_busy" and ev[1].data["wait"] == 0
    assert eng.waiting("q") == []


def test_wrap_up_and_direct_calls_count_as_busy_paused_agents_do_not_count():
    eng = busy_engine(wrap_up=30)
    eng.call_arrived(Caller("c1"), "q", 10)
    connect(eng, "c1", "a", 11)
    eng.call_ended("c1", Party.CALLER, 12)  # a in wrap-up
    eng.agent_busy("b", 13)  # b on a direct call
    out = eng.call_arrived(Caller("c2"), "q", 14)
    assert [type(a) for a in out] == [Overflow]
    eng.agent_free("b", 15)
    eng.agent_pause("b", PauseReason.LUNCH, 15)  # b paused: not staffed; a still in wrap-up
    out = eng.call_arrived(Caller("c3"), "q", 16)
    assert [type(a) for a in out] == [Overflow]


def test_a_free_or_ringing_agent_means_wait():
    eng = busy_engine()
    eng.call_arrived(Caller("c1"), "q", 10)  # a rung
    connect(eng, "c1", "a", 11)
    eng.call_arrived(Caller("c2"), "q", 12)  # b rung (not answered yet)
    out = eng.call_arrived(Caller("c3"), "q", 13)  # b ringing: c3 waits
    assert not [a for a in out if isinstance(a, Overflow)]
    assert [w.call_id for w in eng.waiting("q")] == ["c2", "c3"]


def test_nobody_staffed_is_not_busy_the_caller_waits():
    eng = busy_engine()
    eng.agent_logout("a", 5)
    eng.agent_logout("b", 5)
    out = eng.call_arrived(Caller("c1"), "q", 10)
    assert not [a for a in out if isinstance(a, Overflow)] and eng.position("c1") == 1


def test_busy_trigger_off_means_the_timer():
    ov = OverflowRule(60, Target(TargetKind.EXTENSION, "1009"))
    eng = engine(("a",), overflow=ov)
    eng.call_arrived(Caller("c1"), "q", 10)
    connect(eng, "c1", "a", 11)
    assert not [a for a in eng.call_arrived(Caller("c2"), "q", 12) if isinstance(a, Overflow)]
    assert Overflow("c2", ov.target) in eng.tick(72)


def test_busy_overflow_between_two_queues_does_not_bounce():
    eng = engine(
        ("a",),
        queues=[
            QueueConfig(
                "q", wrap_up=0, overflow_when_busy=True, overflow=OverflowRule(60, Target(TargetKind.QUEUE, "r"))
            ),
            QueueConfig(
                "r", wrap_up=0, overflow_when_busy=True, overflow=OverflowRule(60, Target(TargetKind.QUEUE, "q"))
            ),
        ],
    )
    eng.call_arrived(Caller("c1"), "q", 10)
    connect(eng, "c1", "a", 11)
    out = eng.call_arrived(Caller("c2"), "q", 12)
    assert [a for a in out if isinstance(a, Overflow)] == [Overflow("c2", Target(TargetKind.QUEUE, "r"))]
    assert [(w.call_id, w.queue) for w in eng.waiting()] == [("c2", "r")]  # waits in r


def test_busy_overflow_is_typed_on_the_event_stream():
    from pypbx.events import OverflowReason, QueueOverflowed, from_queue_event  # the stream, not the engine

    eng = busy_engine()
    for cid, agent, t in (("c1", "a", 10), ("c2", "b", 12)):
        eng.call_arrived(Caller(cid), "q", t)
        connect(eng, cid, agent, t + 1)
    eng.drain_events()
    eng.call_arrived(Caller("c3"), "q", 14)
    ov = [from_queue_event(e) for e in eng.drain_events() if e.kind is EventKind.OVERFLOW]
    assert len(ov) == 1 and isinstance(ov[0], QueueOverflowed) and ov[0].reason is OverflowReason.ALL_BUSY
    plain = from_queue_event(
        QueueEvent(1.0, EventKind.OVERFLOW, "q", "x", data={"wait": 60.0, "target": "1009", "target_kind": "extension"})
    )
    assert isinstance(plain, QueueOverflowed) and plain.reason is OverflowReason.OVERFLOW
