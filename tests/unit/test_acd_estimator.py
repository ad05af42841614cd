"""Wait-time estimator, Asterisk baseline and Erlang C."""

from __future__ import annotations

import itertools
import math

import pytest

from acd import erlang
from acd.engine import AcdEngine
from acd.estimator import AgentLoad, AsteriskHoldtime, WaitEstimator, asterisk_holdtime
from acd.model import Agent, Announce, Caller, Party, PauseReason, QueueConfig


def announces(actions, call_id):
    return [a for a in actions if isinstance(a, Announce) and a.call_id == call_id]


def busy_engine(n_agents=2, callers=5, interval=60.0) -> AcdEngine:
    eng = AcdEngine(
        [QueueConfig("q", wrap_up=0, announce_interval=interval)],
        [Agent(f"a{i}") for i in range(n_agents)],
        estimator=WaitEstimator(prior_handle=120),
    )
    for i in range(n_agents):
        eng.agent_login(f"a{i}", 0)
        eng.call_arrived(Caller(f"x{i}"), "q", 1)
        eng.ring_answered(f"x{i}", f"a{i}", 2)
    for i in range(callers):
        eng.call_arrived(Caller(f"c{i}"), "q", 10 + i)
    return eng


def test_no_figure_when_nobody_logged_in_or_all_paused():
    eng = AcdEngine([QueueConfig("q")], [Agent("a")])
    out = eng.call_arrived(Caller("c1"), "q", 0)
    assert announces(out, "c1")[0].ewt_seconds is None
    eng.agent_login("a", 1)
    eng.ring_answered("c1", "a", 2)
    eng.call_ended("c1", Party.CALLER, 50)
    eng.agent_pause("a", PauseReason.BREAK, 51)
    out = eng.call_arrived(Caller("c2"), "q", 60)
    assert announces(out, "c2")[0].ewt_seconds is None
    eng.agent_busy("a", 69)
    eng.agent_unpause("a", 70)
    assert eng.estimate_wait("c2", 70) is not None  # staffed again: a figure


def test_announced_figure_never_grows_in_a_steady_queue():
    eng = busy_engine()
    figures = []
    for t in range(10, 1200, 5):
        for a in announces(eng.tick(float(t)), "c4"):
            figures.append(a.ewt_seconds)
    assert len(figures) >= 4 and all(f is not None for f in figures)
    assert all(b <= a for a, b in itertools.pairwise(figures)), figures


def test_figure_may_grow_when_the_queue_really_got_slower():
    eng = busy_engine(n_agents=3, callers=6)
    eng.tick(70)
    e0 = eng.estimate_wait("c5", 70)
    # two of three agents leave after their calls: capacity drops
    eng.agent_logout("a1", 80)
    eng.agent_logout("a2", 80)
    eng.call_ended("x1", Party.CALLER, 90)
    eng.call_ended("x2", Party.CALLER, 90)
    eng.caller_abandoned("c0", 90)
    eng.caller_abandoned("c1", 90)  # keep "ahead" roughly the same
    figures = [a.ewt_seconds for t in range(91, 200) for a in announces(eng.tick(float(t)), "c5")]
    assert figures and max(figures) > e0


def test_estimate_basics():
    est = WaitEstimator(prior_handle=100)
    assert est.estimate(0, [], 100) is None
    free = [AgentLoad(False)]
    assert est.estimate(0, free, 100) == 0.0
    busy = [AgentLoad(True, elapsed=0.0) for _ in range(2)]
    e1, e3, e6 = (est.estimate(k, busy, 100) for k in (1, 3, 6))
    assert 0 < e1 < e3 < e6
    # a long call in progress is nearly over: shorter wait than a fresh one
    old = [AgentLoad(True, elapsed=90.0)]
    new = [AgentLoad(True, elapsed=0.0)]
    assert est.estimate(0, old, 100) < est.estimate(0, new, 100)
    # more agents, shorter wait
    assert est.estimate(4, busy * 2, 100) < est.estimate(4, busy, 100)


def test_handle_time_learning_robust_fallback_and_snapshot():
    est = WaitEstimator(prior_handle=200, min_samples=4)
    assert est.talk_time("q") == 200
    est.observe_talk("q", "-", 100)
    assert 100 < est.talk_time("q") < 200  # blended with the prior while few samples
    for _ in range(10):
        est.observe_talk("q", "-", 100)
    assert est.talk_time("q") == pytest.approx(100)
    est.observe_talk("q", "-", 100_000)  # winsorised outlier
    assert est.talk_time("q") < 150
    est.observe_talk("other", "korean", 300)
    assert est.talk_time("other", "korean") > 100  # falls back past thin skill data
    snap = est.snapshot()
    est2 = WaitEstimator()
    est2.restore(snap)
    assert est2.talk_time("q") == est.talk_time("q")
    for _ in range(20):
        est.observe_abandon("q", 30)
    assert est.abandon_rate("q") > 0.3


def test_smoothing_rules():
    est = WaitEstimator()
    assert est.smooth(300, None, 0, False) == 300
    assert est.smooth(300, 240, 60, False) == 180
    assert est.smooth(100, 240, 60, False) == 100
    assert est.smooth(400, 240, 60, True) == 400
    assert est.smooth(None, 240, 60, False) is None
    assert est.is_slower((3, 100, 2), (2, 100, 2))
    assert est.is_slower((3, 100, 2), (3, 130, 2))
    assert not est.is_slower((3, 100, 2), (3, 105, 1))


def test_asterisk_baseline_and_its_sign_error():
    assert asterisk_holdtime([40, 40, 40, 40], start=0) == pytest.approx(40 * (1 - 0.75**4))
    ast = AsteriskHoldtime()
    for w in (60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60):
        ast.observe_answer("q", w)
    h = ast.holdtime["q"]
    assert ast.estimate("q", 3) == pytest.approx(3 * h)
    # elapsed wait is subtracted; past the figure it goes negative and is read out as
    # its magnitude, so a caller who waited long hears a figure that grows again
    early, late, later = (ast.announced("q", 2, e) for e in (30, 300, 600))
    assert early < 2 * h and later > late > 2 * h - 300


# ---------------------------------------------------------------- Erlang


def _erlang_c_direct(a: float, n: int) -> float:
    top = a**n / math.factorial(n) * n / (n - a)
    bottom = sum(a**k / math.factorial(k) for k in range(n)) + top
    return top / bottom


@pytest.mark.parametrize("a,n", [(2.0, 3), (10.0, 11), (10.0, 14), (25.5, 30)])
def test_erlang_c_matches_direct_formula(a, n):
    assert erlang.erlang_c(a, n) == pytest.approx(_erlang_c_direct(a, n), rel=1e-9)


def test_erlang_b_known_value_and_stability():
    assert erlang.erlang_b(10, 10) == pytest.approx(0.2146, abs=1e-4)
    big = erlang.erlang_c(1000.0, 1040)
    assert 0.0 < big < 1.0
    assert erlang.erlang_c(5, 5) == 1.0 and erlang.erlang_c(0, 3) == 0.0


def test_service_level_asa_and_agents_needed():
    # 120 calls/h, 180 s AHT = 6 erlangs
    sl7 = erlang.service_level(120, 180, 7, 20)
    sl9 = erlang.service_level(120, 180, 9, 20)
    assert 0 < sl7 < sl9 < 1
    assert erlang.asa(120, 180, 9) < erlang.asa(120, 180, 7)
    assert erlang.asa(120, 180, 6) == math.inf
    n = erlang.agents_needed(120, 180, 0.8, 20)
    assert erlang.service_level(120, 180, n, 20) >= 0.8 > erlang.service_level(120, 180, n - 1, 20)
    assert erlang.agents_needed(0, 180) == 0
    assert erlang.probability_of_waiting(120, 180, 9) == pytest.approx(erlang.erlang_c(6, 9))
    assert erlang.occupancy(120, 180, 8) == pytest.approx(0.75)
    staff = erlang.staffing_by_hour({8: 120, 9: 60}, 180)
    assert staff[8] > staff[9]
