"""Erlang B / Erlang C staffing arithmetic, numerically stable (iterative Erlang B).

Traffic ``a`` in erlangs = arrival rate x mean handle time.  All functions take
``calls_per_hour`` and ``aht`` (seconds) where that reads better for staffing.
"""

from __future__ import annotations

import math


def erlang_b(traffic: float, agents: int) -> float:
    """Blocking probability with ``agents`` servers and ``traffic`` erlangs, by the
    recurrence B(0)=1, B(n) = a B(n-1) / (n + a B(n-1)) -- no factorials, no overflow."""
    if agents < 0:
        raise ValueError("agents must be >= 0")
    if traffic <= 0:
        return 0.0 if agents > 0 else 1.0
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return b


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a call waits (M/M/n).  1.0 when the system is overloaded."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(traffic, agents)
    return agents * b / (agents - traffic * (1.0 - b))


def _traffic(calls_per_hour: float, aht: float) -> float:
    return calls_per_hour * aht / 3600.0


def probability_of_waiting(calls_per_hour: float, aht: float, agents: int) -> float:
    return erlang_c(_traffic(calls_per_hour, aht), agents)


def service_level(calls_per_hour: float, aht: float, agents: int, target: float) -> float:
    """Fraction of calls answered within ``target`` seconds (no abandonment)."""
    a = _traffic(calls_per_hour, aht)
    if a <= 0:
        return 1.0
    if agents <= a:
        return 0.0
    pw = erlang_c(a, agents)
    return max(0.0, 1.0 - pw * math.exp(-(agents - a) * target / aht))


def asa(calls_per_hour: float, aht: float, agents: int) -> float:
    """Average speed of answer (seconds); ``inf`` when overloaded."""
    a = _traffic(calls_per_hour, aht)
    if a <= 0:
        return 0.0
    if agents <= a:
        return math.inf
    return erlang_c(a, agents) * aht / (agents - a)


def occupancy(calls_per_hour: float, aht: float, agents: int) -> float:
    if agents <= 0:
        return 1.0
    return min(1.0, _traffic(calls_per_hour, aht) / agents)


def agents_needed(
    calls_per_hour: float,
    aht: float,
    target_sl: float = 0.8,
    target: float = 20.0,
    max_occupancy: float | None = None,
    limit: int = 10_000,
) -> int:
    """Fewest agents reaching ``target_sl`` of calls answered within ``target`` seconds
    (and at most ``max_occupancy`` if given)."""
    a = _traffic(calls_per_hour, aht)
    if a <= 0:
        return 0
    n = max(1, math.floor(a) + 1)
    while n <= limit:
        ok = service_level(calls_per_hour, aht, n, target) >= target_sl
        if ok and (max_occupancy is None or a / n <= max_occupancy):
            return n
        n += 1
    raise ValueError("target not reachable within limit")


def staffing_by_hour(
    rates: dict[int, float], aht: float, target_sl: float = 0.8, target: float = 20.0
) -> dict[int, int]:
    """Agents needed per hour for per-hour arrival rates."""
    return {h: agents_needed(r, aht, target_sl, target) for h, r in sorted(rates.items())}
