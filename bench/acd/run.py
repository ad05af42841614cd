"""ACD benchmark.

1. Routing-decision time with 500 waiting callers and 100 agents: all agents busy, 500
   callers of mixed queues/skills/priorities waiting; repeatedly one call ends (wrap-up 0)
   and the engine picks the next caller for that agent (``call_ended`` -> ``RingAgents``).
   Also timed: ``call_arrived`` with 500 ahead (position + wait estimate + routing).
2. The wait estimator's mean absolute error vs Asterisk's formula on three simulated
   clinic days (one per preset).

Prints a markdown table and writes bench/acd/results.json.
Usage: python bench/acd/run.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from acd.engine import AcdEngine  # noqa: E402
from acd.model import Agent, Caller, Party, QueueConfig, RingAgents, Strategy  # noqa: E402
from acd.simulator import simulate  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def routing_bench(rounds: int, waiting: int = 500, n_agents: int = 100, seed: int = 1) -> dict:
    rng = random.Random(seed)
    queues = [
        QueueConfig("general", strategy=Strategy.LONGEST_IDLE, wrap_up=0),
        QueueConfig("results", {"results": 5}, Strategy.BEST_SKILL_THEN_LONGEST_IDLE, wrap_up=0),
        QueueConfig("urgent", {"triage": 5}, Strategy.RING_ALL, wrap_up=0),
        QueueConfig("new", {"new_patients": 4}, Strategy.FEWEST_CALLS, wrap_up=0),
    ]
    agents = []
    for i in range(n_agents):
        skills = {}
        for s in ("results", "triage", "new_patients", "korean"):
            if rng.random() < 0.35:
                skills[s] = rng.randint(1, 10)
        agents.append(Agent(f"a{i:03d}", skills=skills))
    eng = AcdEngine(queues, agents, rng=random.Random(seed))
    for a in agents:
        eng.agent_login(a.id, 0.0)
    now = 1.0
    n = 0

    def new_caller() -> tuple[Caller, str]:
        nonlocal n
        n += 1
        q = rng.choices(["general", "results", "urgent", "new"], [6, 2, 1, 2])[0]
        skills = {"korean": 3} if rng.random() < 0.08 else {}
        return Caller(f"c{n}", f"+1555{n:07d}", 1 if rng.random() < 0.05 else 0, skills), q

    def answer(actions, t):
        for act in actions:
            if isinstance(act, RingAgents):
                eng.ring_answered(act.call_id, act.agent_ids[0], t)

    # fill every agent with a call, then build the waiting line
    while len(eng.connected_calls()) < n_agents:
        c, q = new_caller()
        answer(eng.call_arrived(Caller(c.id, c.number), "general", now), now)
        now += 0.01
    while sum(1 for w in eng.waiting() if not w.ringing) < waiting:
        c, q = new_caller()
        answer(eng.call_arrived(c, q, now), now)
        now += 0.01
    eng.drain_events()

    decide, arrive = [], []
    for _ in range(rounds):
        now += 1.0
        call = rng.choice(sorted(eng.connected_calls()))
        t0 = time.perf_counter_ns()
        out = eng.call_ended(call, Party.CALLER, now)
        decide.append((time.perf_counter_ns() - t0) / 1000)
        answer(out, now + 0.5)
        # keep the line at ~500 waiting
        while sum(1 for _ in eng._order) < waiting:
            c, q = new_caller()
            t0 = time.perf_counter_ns()
            out = eng.call_arrived(c, q, now + 0.6)
            arrive.append((time.perf_counter_ns() - t0) / 1000)
            answer(out, now + 0.7)
        eng.drain_events()
    return {
        "waiting": waiting,
        "agents": n_agents,
        "rounds": rounds,
        "decision_us_p50": round(statistics.median(decide), 1),
        "decision_us_p99": round(pct(decide, 99), 1),
        "decision_us_max": round(max(decide), 1),
        "arrival_us_p50": round(statistics.median(arrive), 1) if arrive else None,
        "arrival_us_p99": round(pct(arrive, 99), 1) if arrive else None,
    }


def estimator_bench() -> list[dict]:
    rows = []
    for name, seed in (("small_gp", 1), ("mid_clinic", 2), ("large_centre", 3)):
        t0 = time.perf_counter()
        r = simulate(name, seed=seed)
        rows.append(
            {
                "day": name,
                "seed": seed,
                "offered": r.offered,
                "answered_samples": r.estimator_samples,
                "pypbx_mae_s": round(r.estimator_mae, 1),
                "asterisk_mae_s": round(r.asterisk_mae, 1),
                "ratio": round(r.estimator_mae / r.asterisk_mae, 3),
                "service_level": round(r.service_level, 3),
                "abandonment": round(r.abandonment_rate, 3),
                "sim_seconds": round(time.perf_counter() - t0, 2),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    routing = routing_bench(args.rounds)
    days = estimator_bench()
    total_ours = sum(d["pypbx_mae_s"] * d["answered_samples"] for d in days)
    total_ast = sum(d["asterisk_mae_s"] * d["answered_samples"] for d in days)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "routing": routing,
        "estimator_days": days,
        "estimator_ratio_overall": round(total_ours / total_ast, 3),
    }
    print("## Routing decision (500 waiting, 100 agents)\n")
    print("| measure | p50 µs | p99 µs | max µs |")
    print("|---|---:|---:|---:|")
    print(
        f"| call ended → next caller rung | {routing['decision_us_p50']} | "
        f"{routing['decision_us_p99']} | {routing['decision_us_max']} |"
    )
    print(f"| call arrived (position + EWT + routing) | {routing['arrival_us_p50']} | {routing['arrival_us_p99']} | |")
    print("\n## Wait estimate: mean absolute error at entry, answered callers\n")
    print("| day | offered | answered | pypbx MAE s | Asterisk MAE s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for d in days:
        print(
            f"| {d['day']} (seed {d['seed']}) | {d['offered']} | {d['answered_samples']} | "
            f"{d['pypbx_mae_s']} | {d['asterisk_mae_s']} | {d['ratio']} |"
        )
    print(f"\noverall ratio (weighted): {result['estimator_ratio_overall']}")
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
