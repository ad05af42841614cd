"""Randomised invariants of the engine, and the simulator: determinism, accounting, and
the proof that our wait estimate beats Asterisk's formula on simulated clinic days."""

from __future__ import annotations

import json
import random

import pytest

from acd.engine import AcdEngine
from acd.model import (
    CALLER_OUTCOMES,
    Agent,
    AgentState,
    Caller,
    EventKind,
    OverflowRule,
    Party,
    PauseReason,
    QueueConfig,
    Relaxation,
    Strategy,
    Target,
    TargetKind,
)
from acd.simulator import PRESETS, SimConfig, clinic_day, format_report, simulate

# ---------------------------------------------------------------- randomised engine


def check_invariants(eng: AcdEngine) -> None:
    load: dict[str, int] = {}
    for e in eng._entries.values():
        for aid in e.ringing:
            load[aid] = load.get(aid, 0) + 1
            assert eng.agents[aid].state is AgentState.RINGING
        if e.cb_dialing:
            load[e.cb_agent] = load.get(e.cb_agent, 0) + 1
    for aid in eng.connected_calls().values():
        load[aid] = load.get(aid, 0) + 1
    for aid, n in load.items():
        assert n <= 1, f"agent {aid} double-booked"
    for a in eng.agents.values():
        assert (a.id in eng._free) == a.offerable
        if a.state is AgentState.RINGING:
            assert load.get(a.id) == 1
        if a.state is AgentState.ON_CALL:
            assert load.get(a.id) == 1
        if a.state in (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT, AgentState.WRAP_UP):
            assert a.id not in load


def fuzz(seed: int, steps: int = 400) -> None:
    rng = random.Random(seed)
    strategies = list(Strategy)
    queues = [
        QueueConfig(
            "main",
            strategy=rng.choice(strategies),
            ring_timeout=10,
            wrap_up=rng.choice([0, 5]),
            max_wait=rng.choice([None, 200]),
            max_length=rng.choice([None, 6]),
            overflow=rng.choice([None, OverflowRule(40, Target(TargetKind.QUEUE, "spill"))]),
            rna_misses_before_pause=rng.choice([0, 1, 2]),
            announce_interval=20,
            callback_max_attempts=2,
            callback_retry_delay=15,
        ),
        QueueConfig(
            "skilled",
            {"x": 6},
            strategy=rng.choice(strategies),
            ring_timeout=8,
            relaxation=(Relaxation(30, 2),),
            wrap_up=3,
        ),
        QueueConfig(
            "spill",
            strategy=Strategy.RING_ALL,
            ring_timeout=12,
            wrap_up=0,
            overflow=OverflowRule(60, Target(TargetKind.EXTENSION, "desk")),
        ),
    ]
    agents = [Agent(f"a{i}", skills={"x": rng.randint(1, 10)} if rng.random() < 0.7 else {}) for i in range(6)]
    eng = AcdEngine(queues, agents, rng=random.Random(seed))
    now = 0.0
    n = 0
    for _ in range(steps):
        now += rng.uniform(0, 8)
        r = rng.random()
        entries = list(eng._entries.values())
        ringing = [e for e in entries if e.ringing and not e.cb_dialing]
        live = [e for e in entries if not e.is_callback]
        dialing = [e for e in entries if e.cb_dialing]
        conn = list(eng.connected_calls())
        aid = rng.choice(agents).id
        if r < 0.22:
            n += 1
            eng.call_arrived(
                Caller(f"c{n}", f"n{rng.randint(0, 12)}", rng.choice([0, 0, 0, 1]), rng.choice([{}, {"x": 3}])),
                rng.choice(["main", "main", "skilled", "spill"]),
                now,
            )
        elif r < 0.40 and ringing:
            e = rng.choice(ringing)
            k = rng.random()
            if k < 0.6:
                eng.ring_answered(e.id, rng.choice(e.ringing), now)
            elif k < 0.8:
                eng.ring_failed(e.id, rng.choice(e.ringing), now)
            else:
                eng.ring_timeout(e.id, now)
        elif r < 0.52 and conn:
            c = rng.choice(conn)
            if rng.random() < 0.1:
                eng.call_transferred(c, "ext", now)
            else:
                eng.call_ended(c, rng.choice(list(Party)), now)
        elif r < 0.58 and live:
            eng.caller_abandoned(rng.choice(live).id, now)
        elif r < 0.63 and live:
            e = rng.choice(live)
            eng.callback_requested(e.id, e.number, now)
        elif r < 0.68 and dialing:
            e = rng.choice(dialing)
            (eng.callback_answered if rng.random() < 0.5 else eng.callback_failed)(e.id, now)
        elif r < 0.74:
            eng.agent_login(aid, now)
        elif r < 0.77:
            eng.agent_logout(aid, now)
        elif r < 0.81:
            eng.agent_pause(aid, rng.choice(list(PauseReason)), now)
        elif r < 0.86:
            eng.agent_unpause(aid, now)
        elif r < 0.89:
            eng.agent_busy(aid, now)
        elif r < 0.93:
            eng.agent_free(aid, now)
        else:
            dl = eng.next_deadline()
            if dl is not None:
                now = max(now, dl)
        eng.tick(now)
        check_invariants(eng)
    eng.close_waiting_calls(now + 1)
    events = eng.drain_events()
    visits: dict[tuple, list] = {}
    refused: dict[tuple, list] = {}
    cb_final: dict[str, int] = {}
    for ev in events:
        key = (ev.call_id, ev.queue)
        if ev.kind is EventKind.ENTER:
            assert key not in visits, f"{key} entered twice"
            visits[key] = []
        elif ev.kind in (EventKind.EXITEMPTY, EventKind.FULL):
            refused.setdefault(key, []).append(ev.kind)
        elif ev.kind in CALLER_OUTCOMES:
            assert key in visits, f"outcome {ev.kind} without ENTER for {key}"
            visits[key].append(ev.kind)
        if ev.kind is EventKind.CALLBACK_REQUESTED and not ev.data.get("merged_into"):
            cb_final.setdefault(ev.call_id, 0)
        if ev.kind is EventKind.CALLBACK_CONNECTED or (ev.kind is EventKind.CALLBACK_FAILED and ev.data.get("final")):
            cb_final[ev.call_id] += 1
    bad = {k: v for k, v in visits.items() if len(v) != 1}
    assert not bad, bad
    assert all(len(v) == 1 for v in refused.values())
    pending = {w.call_id for w in eng.waiting() if w.is_callback}
    for cid, nfinal in cb_final.items():
        assert nfinal == (0 if cid in pending else 1), cid


@pytest.mark.parametrize("seed", range(40))
def test_randomised_engine_invariants(seed):
    fuzz(seed)


# ---------------------------------------------------------------- simulator


def test_simulation_is_deterministic_and_serialisable():
    a = simulate("small_gp", seed=5).to_dict()
    b = simulate("small_gp", seed=5).to_dict()
    assert a == b
    assert simulate("small_gp", seed=6).to_dict() != a
    json.dumps(a)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_simulated_day_accounting(preset):
    r = simulate(preset, seed=3)
    assert r.outcome_errors == []
    assert r.max_agent_overlap <= 1
    assert r.offered > 100 and r.answered > 0.7 * r.offered
    assert 0 < r.service_level <= 1 and 0 < r.occupancy < 1 and r.asa >= 0
    closed = r.answered + r.abandoned + r.overflowed + r.timed_out + r.refused + r.interrupted + r.callbacks_requested
    assert closed == r.offered  # every offered call has exactly one outcome
    assert sum(h["offered"] for h in r.per_hour.values()) == r.offered
    text = format_report(r)
    assert "service level" in text and "Asterisk" in text


def test_estimator_beats_asterisk_by_half_on_three_clinic_days():
    days = [simulate(name, seed=seed) for name, seed in (("small_gp", 101), ("mid_clinic", 102), ("large_centre", 103))]
    for r in days:
        assert r.estimator_samples > 100
        assert r.estimator_mae <= 0.5 * r.asterisk_mae, format_report(r)
    ours = sum(r.estimator_mae * r.estimator_samples for r in days)
    theirs = sum(r.asterisk_mae * r.estimator_samples for r in days)
    assert ours <= 0.5 * theirs


def test_simconfig_from_plain_dict():
    cfg = {
        "name": "tiny",
        "queues": [
            {
                "name": "q",
                "strategy": "ring_all",
                "wrap_up": 5,
                "overflow": {"after": 20, "target": {"kind": "extension", "target": "desk"}},
            }
        ],
        "agents": [{"id": "a", "shifts": [[8, 12]]}, {"id": "b", "shifts": [[8, 12]]}],
        "arrivals": [{"queue": "q", "rates": {"8": 30, "9": 20}, "handle_mean": 120}],
    }
    r = simulate(cfg, seed=1)
    assert r.offered > 20 and r.outcome_errors == []
    assert isinstance(clinic_day("mid_clinic"), SimConfig)
    with pytest.raises(KeyError):
        clinic_day("nope")
