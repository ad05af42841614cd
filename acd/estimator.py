"""Expected-wait-time (EWT) estimation.

:class:`WaitEstimator` -- ours.  It looks at what actually decides a caller's wait:

* the *effective* number of callers ahead among those competing for the same agents
  (a caller ahead who can also be served by other agents only counts for the share of
  agents it has in common with this caller), discounted by how often callers ahead
  abandon;
* the eligible agents logged in and not paused, and for each busy one its elapsed talk
  time (a call that has lasted 4 minutes of a 3-minute average is nearly over) or its
  remaining wrap-up;
* recent handle cycles (talk + wrap-up + ring-to-answer) per queue and per skill set,
  exponentially weighted, winsorised against outliers, with a fallback chain
  (skill set -> queue -> everything -> configured prior) until enough samples exist.

From that it runs a tiny deterministic "who frees up first" replay (a heap of agent
free times) to the slot this caller will take.  It says ``None`` when it cannot know
(no eligible agent logged in).  :meth:`WaitEstimator.smooth` keeps an announced figure
from growing while the caller waits unless the queue really got slower (fewer agents,
longer handle times, someone jumped ahead).

:class:`AsteriskHoldtime` -- the comparison baseline, written from the description of
Asterisk app_queue's behaviour: one queue-wide moving average of the hold time (wait
before answer) of answered calls, ``holdtime = (3*holdtime + new) / 4``, announced as
``position * holdtime``.  app_queue also subtracts the caller's elapsed wait from the
figure it announces on later repeats, so after a long wait the figure goes negative;
it is then printed as its absolute value and "grows" again (the sign error).  The
baseline reproduces both; :meth:`AsteriskHoldtime.estimate` gives the entry figure.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- EWMA


class _Ewma:
    __slots__ = ("mean", "n")

    def __init__(self, mean: float = 0.0, n: int = 0) -> None:
        self.mean = mean
        self.n = n

    def add(self, x: float, alpha: float, clip: float = 4.0) -> None:
        if self.n == 0:
            self.mean = x
        else:
            # winsorise: one 40-minute call doesn't triple the average
            if self.mean > 0:
                x = min(x, clip * self.mean)
            a = max(alpha, 1.0 / (self.n + 1))  # plain mean while few samples
            self.mean += a * (x - self.mean)
        self.n += 1

    def to_list(self) -> list[float]:
        return [self.mean, self.n]


@dataclass(frozen=True)
class AgentLoad:
    """An eligible agent seen by the estimator.  ``busy_for``: seconds left before the
    agent is free at the earliest guess, or None to derive it from ``elapsed``."""

    busy: bool
    elapsed: float = 0.0  # elapsed talk time when on a call
    remaining: float | None = None  # known remaining time (wrap-up, ringing)


def skill_key(required: Mapping[str, int]) -> str:
    return ",".join(sorted(required)) or "-"


class WaitEstimator:
    """Learns handle cycles and abandon rates; estimates the wait of one caller."""

    def __init__(
        self,
        prior_handle: float = 180.0,
        alpha: float = 0.05,
        min_samples: int = 8,
        residual_floor: float = 0.3,
        slower_factor: float = 1.15,
        blend: float = 0.5,
    ) -> None:
        self.abandon_weight = 0.5
        self.blend = blend  # weight of the deterministic replay vs the hazard model
        self.prior_handle = prior_handle
        self.alpha = alpha
        self.min_samples = min_samples
        self.residual_floor = residual_floor
        self.slower_factor = slower_factor
        self._talk: dict[str, _Ewma] = {}  # keys: "q:<queue>", "s:<skills>", "*"
        self._ring: dict[str, _Ewma] = {}  # ring-to-answer per queue
        self._abandon: dict[str, _Ewma] = {}  # 1.0 abandon / 0.0 answered, per queue

    # ---- learning

    def observe_talk(self, queue: str, skills: str, talk: float) -> None:
        for key in (f"q:{queue}", f"s:{skills}", "*"):
            self._talk.setdefault(key, _Ewma()).add(max(0.0, talk), self.alpha)

    def observe_answer(self, queue: str, wait: float, ring: float = 0.0) -> None:
        self._ring.setdefault(queue, _Ewma()).add(max(0.0, ring), self.alpha)
        self._abandon.setdefault(queue, _Ewma()).add(0.0, self.alpha, clip=math.inf)

    def observe_abandon(self, queue: str, wait: float) -> None:
        self._abandon.setdefault(queue, _Ewma()).add(1.0, self.alpha, clip=math.inf)

    # ---- queries

    def talk_time(self, queue: str, skills: str = "-") -> float:
        for key in (f"s:{skills}", f"q:{queue}", "*"):
            e = self._talk.get(key)
            if e is not None and e.n >= self.min_samples:
                return e.mean
        # few samples: blend what we have with the prior
        e = self._talk.get(f"q:{queue}") or self._talk.get("*")
        if e is None or e.n == 0:
            return self.prior_handle
        w = e.n / self.min_samples
        return w * e.mean + (1 - w) * self.prior_handle

    def ring_time(self, queue: str) -> float:
        e = self._ring.get(queue)
        return e.mean if e is not None and e.n else 0.0

    def abandon_rate(self, queue: str) -> float:
        e = self._abandon.get(queue)
        return e.mean if e is not None and e.n >= self.min_samples else 0.0

    def cycle(self, queue: str, skills: str, wrap_up: float) -> float:
        return self.talk_time(queue, skills) + wrap_up + self.ring_time(queue)

    def estimate(
        self,
        ahead: float,
        agents: Sequence[AgentLoad],
        cycle: float,
        abandon_rate: float = 0.0,
        ring: float = 0.0,
    ) -> float | None:
        """Expected wait of a caller with ``ahead`` (effective) callers before it.

        ``agents``: the eligible agents logged in and not paused.  ``cycle``: mean time
        an agent takes per call (talk + wrap-up + ring).  Returns None if nobody can
        answer."""
        if not agents:
            return None
        talk = max(1.0, cycle - ring)
        free_at: list[float] = []
        for a in agents:
            if not a.busy:
                free_at.append(0.0)
            elif a.remaining is not None:
                free_at.append(max(0.0, a.remaining))
            else:
                # expected residual of the call in progress, never quite zero
                free_at.append(max(talk - a.elapsed, self.residual_floor * talk) + (cycle - talk))
        # callers ahead who will hang up before their turn don't delay us
        ahead = max(0.0, ahead) * (1.0 - self.abandon_weight * min(0.8, abandon_rate))
        det = self._replay(free_at, ahead, cycle)
        haz = self._hazard(free_at, ahead, cycle)
        w = self.blend
        return max(0.0, w * det + (1.0 - w) * haz) + ring

    @staticmethod
    def _hazard(free_at: list[float], ahead: float, cycle: float) -> float:
        """Remaining times as exponentials: the k-th free slot comes after the sum of
        1/(total freeing rate) over the stages before it (each stage hands the agent
        most likely to finish first a new call).  Captures that the first of several
        busy agents frees up well before the average one does."""
        if any(f <= 0.0 for f in free_at):
            free = sum(1 for f in free_at if f <= 0.0)
            if ahead < free:
                return 0.0
            ahead -= free
            free_at = [f if f > 0.0 else cycle for f in free_at]
        means = [max(m, 1.0) for m in free_at]
        heapq.heapify(means)
        rate = sum(1.0 / m for m in means)
        t = 0.0
        whole = int(ahead)
        frac = ahead - whole
        for _ in range(whole + 1):
            t += 1.0 / rate
            # the likeliest to finish takes the next caller
            rate += 1.0 / cycle - 1.0 / heapq.heapreplace(means, max(cycle, 1.0))
        if frac:
            t += frac / rate
        return t

    @staticmethod
    def _replay(free_at: list[float], ahead: float, cycle: float) -> float:
        free_at = list(free_at)
        heapq.heapify(free_at)
        whole = int(ahead)
        frac = ahead - whole
        t = 0.0
        for _ in range(whole):
            t = heapq.heappop(free_at)
            heapq.heappush(free_at, t + cycle)
        t_whole = heapq.heappop(free_at)
        if frac > 0.0:
            heapq.heappush(free_at, t_whole + cycle)
            t_next = free_at[0]
            t_whole = t_whole + frac * (t_next - t_whole)
        return max(0.0, t_whole)

    # ---- smoothing

    def smooth(
        self,
        raw: float | None,
        previous: float | None,
        since: float,
        slower: bool,
    ) -> float | None:
        """The figure to announce now.  ``previous``: the figure announced ``since``
        seconds ago (None if none).  Without ``slower`` the figure never grows."""
        if raw is None or previous is None or slower:
            return raw
        remaining = max(0.0, previous - since)
        return min(raw, remaining)

    def is_slower(self, then: tuple[int, float, float], now: tuple[int, float, float]) -> bool:
        """Compare capacity fingerprints ``(agents, cycle, ahead)`` of two moments."""
        agents0, cycle0, ahead0 = then
        agents1, cycle1, ahead1 = now
        return agents1 < agents0 or cycle1 > cycle0 * self.slower_factor or ahead1 > ahead0 + 0.5

    # ---- persistence

    def snapshot(self) -> dict[str, dict[str, list[float]]]:
        return {
            "talk": {k: v.to_list() for k, v in self._talk.items()},
            "ring": {k: v.to_list() for k, v in self._ring.items()},
            "abandon": {k: v.to_list() for k, v in self._abandon.items()},
        }

    def restore(self, d: Mapping[str, Any]) -> None:
        """Load a :meth:`snapshot` (parsed JSON, so not trusted to be of that shape)."""
        self._talk = {k: _Ewma(*v) for k, v in d.get("talk", {}).items()}
        self._ring = {k: _Ewma(*v) for k, v in d.get("ring", {}).items()}
        self._abandon = {k: _Ewma(*v) for k, v in d.get("abandon", {}).items()}


# --------------------------------------------------------------------------- baseline


class AsteriskHoldtime:
    """Asterisk app_queue's estimate, per queue, as a comparison baseline."""

    def __init__(self) -> None:
        self.holdtime: dict[str, float] = {}

    def observe_answer(self, queue: str, wait: float) -> None:
        h = self.holdtime.get(queue, 0.0)
        self.holdtime[queue] = (3.0 * h + wait) / 4.0

    def estimate(self, queue: str, position: int) -> float:
        """Entry figure: position x holdtime."""
        return position * self.holdtime.get(queue, 0.0)

    def announced(self, queue: str, position: int, elapsed: float) -> float:
        """A repeat announcement with the sign error: the caller's elapsed wait is
        subtracted, and the (possibly negative) result is read out as its magnitude."""
        return abs(position * self.holdtime.get(queue, 0.0) - elapsed)

    def snapshot(self) -> dict[str, float]:
        return dict(self.holdtime)

    def restore(self, d: Mapping[str, float]) -> None:
        self.holdtime = {k: float(v) for k, v in d.items()}


def asterisk_holdtime(waits: Iterable[float], start: float = 0.0) -> float:
    """Fold answered calls' waits through ``holdtime = (3*holdtime + new)/4``."""
    h = start
    for w in waits:
        h = (3.0 * h + w) / 4.0
    return h
