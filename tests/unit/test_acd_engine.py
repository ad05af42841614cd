"""ACD engine: states, ring-no-answer, wrap-up, priority, limits, overflow, relaxation,
callbacks, restart."""

from __future__ import annotations

import pytest

from acd.engine import AcdEngine
from acd.model import (
    CALLER_OUTCOMES,
    Agent,
    AgentState,
    Announce,
    CallbackFailed,
    Caller,
    CancelRing,
    Connect,
    DialCallback,
    EndWrapUp,
    EventKind,
    ExitEmpty,
    ExitFull,
    JoinEmpty,
    Overflow,
    OverflowRule,
    Party,
    PauseAgent,
    PauseReason,
    QueueConfig,
    Relaxation,
    RingAgents,
    StartWrapUp,
    Strategy,
    Target,
    TargetKind,
    Timeout,
)


def rings(actions) -> list[RingAgents]:
    return [a for a in actions if isinstance(a, RingAgents)]


def of(actions, cls):
    return [a for a in actions if isinstance(a, cls)]


def kinds(eng: AcdEngine) -> list[EventKind]:
    return [e.kind for e in eng.drain_events()]


def engine(agents=("a", "b"), **qkw) -> AcdEngine:
    qkw.setdefault("wrap_up", 0)
    eng = AcdEngine([QueueConfig("q", **qkw)], [Agent(x) for x in agents])
    for i, x in enumerate(agents):
        eng.agent_login(x, float(i))
    return eng


# ---------------------------------------------------------------- agent states


def test_agent_state_transitions_and_events():
    eng = AcdEngine([QueueConfig("q", wrap_up=30)], [Agent("a")])
    a = eng.agents["a"]
    assert a.state is AgentState.LOGGED_OUT
    eng.agent_login("a", 0)
    assert a.state is AgentState.AVAILABLE
    out = eng.call_arrived(Caller("c1"), "q", 10)
    assert rings(out)[0].agent_ids == ("a",) and a.state is AgentState.RINGING
    assert eng.ring_answered("c1", "a", 13) == [Connect("c1", "a")]
    assert a.state is AgentState.ON_CALL
    out = eng.call_ended("c1", Party.AGENT, 100)
    assert out == [StartWrapUp("a", 130)]
    assert a.state is AgentState.WRAP_UP and a.calls_taken == 1 and a.total_talk_time == 87
    assert eng.next_deadline() == 130
    assert eng.tick(129) == []
    assert eng.tick(130) == [EndWrapUp("a")]
    assert a.state is AgentState.AVAILABLE and a.idle_since == 130
    eng.agent_pause("a", PauseReason.LUNCH, 200)
    assert a.state is AgentState.PAUSED and a.pause_reason is PauseReason.LUNCH
    eng.agent_unpause("a", 300)
    eng.agent_logout("a", 400)
    assert a.state is AgentState.LOGGED_OUT
    assert kinds(eng) == [
        EventKind.LOGIN,
        EventKind.ENTER,
        EventKind.RING,
        EventKind.CONNECT,
        EventKind.COMPLETE_AGENT,
        EventKind.PAUSE,
        EventKind.UNPAUSE,
        EventKind.LOGOUT,
    ]


def test_no_call_offered_during_wrap_up_then_offered_after():
    eng = AcdEngine([QueueConfig("q", wrap_up=20)], [Agent("a")])
    eng.agent_login("a", 0)
    eng.call_arrived(Caller("c1"), "q", 1)
    eng.ring_answered("c1", "a", 2)
    eng.call_ended("c1", Party.CALLER, 50)
    assert not rings(eng.call_arrived(Caller("c2"), "q", 55))
    assert rings(eng.tick(70))[0].agent_ids == ("a",)


def test_agent_wrap_up_override():
    eng = AcdEngine([QueueConfig("q", wrap_up=20)], [Agent("a", wrap_up=5)])
    eng.agent_login("a", 0)
    eng.call_arrived(Caller("c1"), "q", 1)
    eng.ring_answered("c1", "a", 2)
    assert eng.call_ended("c1", Party.CALLER, 50) == [StartWrapUp("a", 55)]


def test_pause_while_on_call_applies_after_the_call_and_logout_too():
    eng = engine(("a",), wrap_up=10)
    eng.call_arrived(Caller("c1"), "q", 1)
    eng.ring_answered("c1", "a", 2)
    eng.agent_pause("a", PauseReason.ADMIN, 5)
    assert eng.agents["a"].state is AgentState.ON_CALL
    out = eng.call_ended("c1", Party.CALLER, 50)
    assert PauseAgent("a", PauseReason.ADMIN) in out
    assert eng.agents["a"].state is AgentState.PAUSED
    eng.agent_unpause("a", 60)
    eng.call_arrived(Caller("c2"), "q", 61)
    eng.ring_answered("c2", "a", 62)
    eng.agent_logout("a", 63)
    eng.call_ended("c2", Party.AGENT, 90)
    assert eng.agents["a"].state is AgentState.LOGGED_OUT


def test_agent_on_direct_call_is_never_offered():
    eng = engine(("a", "b"))
    eng.agent_busy("a", 5)
    assert rings(eng.call_arrived(Caller("c1"), "q", 10))[0].agent_ids == ("b",)
    assert not rings(eng.call_arrived(Caller("c2"), "q", 11))
    out = eng.agent_free("a", 20)
    assert rings(out)[0].agent_ids == ("a",) and rings(out)[0].call_id == "c2"


# ---------------------------------------------------------------- ring no answer


def test_ring_no_answer_pauses_and_call_goes_to_next_agent_keeping_place():
    eng = engine(("a", "b"), strategy=Strategy.LONGEST_IDLE, ring_timeout=15)
    eng.agent_busy("b", 0)
    assert rings(eng.call_arrived(Caller("c1"), "q", 10))[0].agent_ids == ("a",)
    eng.call_arrived(Caller("c2"), "q", 11)
    eng.call_arrived(Caller("c3"), "q", 12)
    eng.drain_events()
    out = eng.tick(25)  # ring timeout
    assert CancelRing("c1", ("a",)) in out
    assert PauseAgent("a", PauseReason.RING_NO_ANSWER) in out
    assert eng.agents["a"].state is AgentState.PAUSED
    ev = eng.drain_events()
    assert [e.kind for e in ev][:2] == [EventKind.RINGNOANSWER, EventKind.PAUSE]
    assert eng.position("c1") == 1  # still first
    out = eng.agent_free("b", 30)
    assert rings(out)[0].call_id == "c1" and rings(out)[0].agent_ids == ("b",)


def test_ring_no_answer_after_n_misses_only():
    eng = engine(("a", "b"), rna_misses_before_pause=2, ring_timeout=10)
    eng.agent_busy("b", 0)
    eng.call_arrived(Caller("c1"), "q", 10)
    out = eng.tick(20)
    assert not of(out, PauseAgent)
    # same agent is retried (the only one free) and misses again -> paused
    assert rings(out)[0].agent_ids == ("a",)
    assert eng.agents["a"].missed_in_row == 1
    out = eng.tick(30)
    assert PauseAgent("a", PauseReason.RING_NO_ANSWER) in out
    # answering resets the count
    eng.agent_unpause("a", 40)
    eng.ring_answered("c1", "a", 41)
    assert eng.agents["a"].missed_in_row == 0


def test_untried_agent_preferred_after_a_miss():
    eng = engine(("a", "b", "c"), rna_misses_before_pause=0, ring_timeout=10, strategy=Strategy.LONGEST_IDLE)
    assert rings(eng.call_arrived(Caller("c1"), "q", 10))[0].agent_ids == ("a",)
    assert rings(eng.tick(20))[0].agent_ids == ("b",)
    assert rings(eng.tick(30))[0].agent_ids == ("c",)
    assert eng.agents["a"].state is AgentState.AVAILABLE  # 0 = never pause


def test_ring_failed_counts_no_miss_and_tries_next():
    eng = engine(("a", "b"))
    eng.call_arrived(Caller("c1"), "q", 10)
    out = eng.ring_failed("c1", "a", 11, "480")
    assert rings(out)[0].agent_ids == ("b",)
    assert eng.agents["a"].missed_in_row == 0 and eng.agents["a"].offerable


def test_late_answer_after_cancel_is_ignored():
    eng = engine(("a",), ring_timeout=10, rna_misses_before_pause=0)
    eng.call_arrived(Caller("c1"), "q", 0)
    eng.caller_abandoned("c1", 5)
    assert eng.ring_answered("c1", "a", 6) == []
    assert eng.agents["a"].offerable


# ---------------------------------------------------------------- order, limits


def test_priority_caller_jumps_ahead():
    eng = engine(("a",))
    eng.agent_busy("a", 0)
    for i in range(3):
        eng.call_arrived(Caller(f"n{i}"), "q", 10 + i)
    out = eng.call_arrived(Caller("urgent", priority=5), "q", 20)
    assert of(out, Announce)[0].position == 1
    assert eng.position("n0") == 2
    assert rings(eng.agent_free("a", 30))[0].call_id == "urgent"


def test_max_wait_timeout_is_one_outcome():
    fb = Target(TargetKind.EXTENSION, "vm")
    eng = engine(("a",), max_wait=300, fallback=fb)
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1"), "q", 10)
    assert Timeout("c1", "q", fb) in eng.tick(310)
    assert eng.position("c1") is None
    ev = eng.drain_events()
    assert [e.kind for e in ev if e.kind in CALLER_OUTCOMES] == [EventKind.TIMEOUT]


def test_max_length_refuses_with_full():
    eng = engine(("a",), max_length=2)
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1"), "q", 1)
    eng.call_arrived(Caller("c2"), "q", 2)
    out = eng.call_arrived(Caller("c3"), "q", 3)
    assert of(out, ExitFull) and eng.position("c3") is None
    assert kinds(eng)[-1] is EventKind.FULL


def test_join_empty_policies():
    fb = Target(TargetKind.EXTENSION, "front")
    eng = AcdEngine(
        [QueueConfig("refuse", join_empty=JoinEmpty.REFUSE, fallback=fb), QueueConfig("join")], [Agent("a")]
    )
    assert eng.call_arrived(Caller("c1"), "refuse", 0) == [ExitEmpty("c1", "refuse", fb)]
    out = eng.call_arrived(Caller("c2"), "join", 0)
    assert out == [Announce("c2", 1, None, "en", True)]  # no figure when nobody logged in
    eng.caller_abandoned("c2", 4)
    eng.agent_login("a", 5)
    eng.agent_pause("a", PauseReason.BREAK, 6)
    assert of(eng.call_arrived(Caller("c3"), "refuse", 7), ExitEmpty)  # paused = nobody
    eng.agent_unpause("a", 8)
    eng.agent_busy("a", 9)
    assert not of(eng.call_arrived(Caller("c4"), "refuse", 10), ExitEmpty)  # busy but staffed


def test_overflow_at_20_seconds_to_front_desk():
    front = Target(TargetKind.EXTENSION, "front_desk")
    eng = engine(("a",), required_skills={"new_patients": 5}, overflow=OverflowRule(20, front))
    eng.agents["a"].skills = {"new_patients": 7}
    eng.set_skills("a", {"new_patients": 7}, 0)
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1"), "q", 100)
    assert eng.next_deadline() <= 120
    assert not of(eng.tick(119.9), Overflow)
    out = eng.tick(120)
    assert Overflow("c1", front) in out
    ev = [e for e in eng.drain_events() if e.kind is EventKind.OVERFLOW]
    assert ev and ev[0].data["wait"] == 20


def test_overflow_deferred_while_ringing_then_to_another_queue():
    eng = AcdEngine(
        [
            QueueConfig(
                "new", overflow=OverflowRule(20, Target(TargetKind.QUEUE, "other")), ring_timeout=25, wrap_up=0
            ),
            QueueConfig("other", wrap_up=0),
        ],
        [Agent("a", queues=frozenset({"new"})), Agent("b", queues=frozenset({"other"}))],
    )
    eng.agent_login("a", 0)
    eng.agent_login("b", 0)
    eng.agent_busy("b", 0)
    eng.call_arrived(Caller("c1"), "new", 10)  # rings a 10..35, overflow due at 30
    assert not of(eng.tick(30), Overflow)  # deferred: a might still answer
    out = eng.tick(35)  # ring timeout -> overdue -> overflow into "other"
    assert of(out, Overflow)
    assert eng.waiting("other")[0].call_id == "c1"
    ev = eng.drain_events()
    outcomes = [(e.kind, e.queue) for e in ev if e.kind in CALLER_OUTCOMES]
    assert outcomes == [(EventKind.OVERFLOW, "new")]
    assert [e.queue for e in ev if e.kind is EventKind.ENTER] == ["new", "other"]


def test_skill_relaxation_over_time():
    eng = AcdEngine(
        [QueueConfig("q", {"korean": 8}, wrap_up=0, relaxation=(Relaxation(60, 5), Relaxation(120, 1)))],
        [
            Agent("fluent", skills={"korean": 9}),
            Agent("some", skills={"korean": 5}),
            Agent("basic", skills={"korean": 2}),
        ],
    )
    for x in ("some", "basic"):
        eng.agent_login(x, 0)
    assert not rings(eng.call_arrived(Caller("c1"), "q", 10))
    assert not rings(eng.tick(69))
    out = eng.tick(70)
    assert rings(out)[0].agent_ids == ("some",)
    eng.call_arrived(Caller("c2"), "q", 71)
    eng.ring_answered("c1", "some", 72)
    assert not rings(eng.tick(130))
    assert not rings(eng.tick(131))  # relaxed to 5: basic (2) still too low
    assert rings(eng.tick(191))[0].agent_ids == ("basic",)


# ---------------------------------------------------------------- callbacks


def test_callback_keeps_place_and_connects_agent_first():
    eng = engine(("a",), callback_max_attempts=2, callback_retry_delay=60)
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1", "111"), "q", 10)
    eng.call_arrived(Caller("c2", "222"), "q", 20)
    eng.call_arrived(Caller("c3", "333"), "q", 30)
    eng.callback_requested("c2", "222", 40)
    assert [w.call_id for w in eng.waiting("q")] == ["c1", "c2", "c3"]
    assert eng.waiting("q")[1].is_callback
    eng.caller_abandoned("c1", 50)
    out = eng.agent_free("a", 60)
    assert out == [DialCallback("c2", "a", "222", 1, "q")]
    assert eng.agents["a"].state is AgentState.RINGING
    eng.ring_answered("c2", "a", 63)  # agent first
    assert eng.agents["a"].state is AgentState.ON_CALL
    assert eng.callback_answered("c2", 70) == [Connect("c2", "a")]
    ev = kinds(eng)
    assert ev.count(EventKind.CALLBACK_DIALED) == 1 and ev.count(EventKind.CALLBACK_CONNECTED) == 1
    out = eng.call_ended("c2", Party.CALLER, 200)
    assert rings(out)[0].call_id == "c3" and eng.agents["a"].calls_taken == 1


def test_callback_retries_then_fails_finally():
    eng = engine(("a",), callback_max_attempts=2, callback_retry_delay=60)
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1", "111"), "q", 10)
    eng.callback_requested("c1", "111", 20)
    eng.agent_free("a", 30)
    eng.ring_answered("c1", "a", 31)
    out = eng.callback_failed("c1", 60, "no answer")
    assert not of(out, DialCallback)  # retry later, not now
    assert eng.agents["a"].offerable and eng.position("c1") == 1
    assert of(eng.tick(119), DialCallback) == []
    out = eng.tick(120)
    assert out == [DialCallback("c1", "a", "111", 2, "q")]
    eng.ring_answered("c1", "a", 121)
    out = eng.callback_failed("c1", 150)
    assert out == [CallbackFailed("c1", "111", 2, "q")]
    assert eng.position("c1") is None
    fails = [e for e in eng.drain_events() if e.kind is EventKind.CALLBACK_FAILED]
    assert [e.data["final"] for e in fails] == [False, True]


def test_callbacks_paced_to_free_agents():
    eng = engine(("a", "b", "c"))
    for x in "abc":
        eng.agent_busy(x, 0)
    for i in range(6):
        eng.call_arrived(Caller(f"c{i}", f"n{i}"), "q", 10 + i)
        eng.callback_requested(f"c{i}", f"n{i}", 20 + i)
    out = eng.agent_free("b", 30)
    assert of(out, DialCallback) == [DialCallback("c0", "b", "n0", 1, "q")]
    out = eng.agent_free("a", 31) + eng.agent_free("c", 31)
    assert [d.call_id for d in of(out, DialCallback)] == ["c1", "c2"]
    assert sum(1 for w in eng.waiting() if w.ringing) == 3


def test_duplicate_callbacks_from_same_number_are_merged():
    eng = engine(("a",))
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1", "555"), "q", 10)
    eng.callback_requested("c1", "555", 15)
    eng.call_arrived(Caller("c2", "555"), "q", 20)
    eng.callback_requested("c2", "555", 25)
    assert [w.call_id for w in eng.waiting()] == ["c1"]
    req = [e for e in eng.drain_events() if e.kind is EventKind.CALLBACK_REQUESTED]
    assert req[1].data["merged_into"] == "c1"


def test_callback_not_offered_when_queue_disallows():
    eng = engine(("a",), callback_allowed=False)
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1", "1"), "q", 0)
    assert eng.callback_requested("c1", "1", 5) == []
    assert not eng.waiting()[0].is_callback


# ---------------------------------------------------------------- restart


def test_snapshot_restore_keeps_callbacks_and_estimator():
    eng = engine(("a",))
    eng.call_arrived(Caller("x", "9"), "q", 1)
    eng.ring_answered("x", "a", 3)
    eng.call_ended("x", Party.CALLER, 200)
    eng.agent_busy("a", 200)
    eng.call_arrived(Caller("c1", "111"), "q", 210)
    eng.call_arrived(Caller("c2", "222"), "q", 220)
    eng.callback_requested("c2", "222", 230)
    snap = eng.snapshot()
    import json

    snap = json.loads(json.dumps(snap))  # plain data
    closed = eng.close_waiting_calls(240)
    assert [(c.call_id, c.number, c.outcome) for c in closed] == [("c1", "111", "interrupted")]
    assert kinds(eng)[-1] is EventKind.INTERRUPTED

    fresh = AcdEngine([QueueConfig("q", wrap_up=0)], [Agent("a")])
    fresh.restore(snap)
    assert [(w.call_id, w.is_callback) for w in fresh.waiting()] == [("c2", True)]
    assert fresh.estimator.snapshot() == eng.estimator.snapshot()
    fresh.agent_login("a", 300)
    assert [e.kind for e in fresh.drain_events()] == [EventKind.LOGIN, EventKind.RING]
    assert fresh.waiting()[0].ringing == ("a",)
    rows = [{"call_id": "z", "queue": "q", "number": "7", "entered_at": 100}]
    assert AcdEngine.close_interrupted(rows, 160)[0].wait == 60


def test_close_waiting_calls_as_callbacks_keeps_place():
    eng = engine(("a",))
    eng.agent_busy("a", 0)
    eng.call_arrived(Caller("c1", "111"), "q", 1)
    eng.call_arrived(Caller("c2", "222"), "q", 2)
    eng.close_waiting_calls(10, as_callbacks=True)
    assert [(w.call_id, w.is_callback) for w in eng.waiting()] == [("c1", True), ("c2", True)]


def test_unknown_call_inputs_are_harmless_and_duplicate_call_rejected():
    eng = engine(("a",))
    assert eng.caller_abandoned("nope", 1) == []
    assert eng.ring_timeout("nope", 1) == []
    assert eng.call_ended("nope", Party.CALLER, 1) == []
    eng.call_arrived(Caller("c1"), "q", 1)
    with pytest.raises(ValueError):
        eng.call_arrived(Caller("c1"), "q", 2)
