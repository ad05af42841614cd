"""Discrete-event simulator of a clinic day, driving the same :class:`AcdEngine`.

A virtual clock (seconds since midnight) replaces the wall clock.  Patients arrive by
hour (Poisson, per-hour rates), talk for a lognormal handle time, hang up after a
patience time if still waiting (exponential or lognormal), sometimes press 1 for a
callback; agents follow shifts and breaks, answer rings after a few seconds (or miss
them), and unpause themselves a while after a ring-no-answer pause.

``simulate(config, seed)`` -> :class:`SimReport` (service level, ASA, abandonment,
occupancy, per-hour counts, and the wait estimator's mean absolute error next to
Asterisk's formula on the same answered calls).  Deterministic for a seed.
``PRESETS`` holds three clinic profiles (``clinic_day(name)``).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .engine import AcdEngine
from .estimator import WaitEstimator
from .model import (
    Action,
    Agent,
    AgentState,
    Announce,
    Caller,
    CancelRing,
    Connect,
    DialCallback,
    EventKind,
    OverflowRule,
    Party,
    PauseAgent,
    PauseReason,
    QueueConfig,
    QueueEvent,
    Relaxation,
    RingAgents,
    Strategy,
    Target,
    TargetKind,
)

HOUR = 3600.0


# =========================================================================== config


@dataclass
class AgentSpec:
    id: str
    skills: dict[str, int] = field(default_factory=dict)
    shifts: list[tuple[float, float]] = field(default_factory=lambda: [(8.0, 17.0)])  # hours
    breaks: list[tuple[float, float, str]] = field(default_factory=list)  # (start h, end h, reason)
    queues: list[str] | None = None
    wrap_up: float | None = None
    answer_prob: float = 0.97  # answers a ring (else lets it ring out)
    answer_delay: tuple[float, float] = (2.0, 7.0)  # seconds, uniform

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AgentSpec:
        kw = dict(d)
        if "shifts" in kw:
            kw["shifts"] = [tuple(s) for s in kw["shifts"]]
        if "breaks" in kw:
            kw["breaks"] = [tuple(b) for b in kw["breaks"]]
        if "answer_delay" in kw:
            kw["answer_delay"] = tuple(kw["answer_delay"])
        return cls(**kw)


@dataclass
class ArrivalSpec:
    queue: str
    rates: dict[int, float]  # hour of day -> calls per hour
    handle_mean: float = 180.0  # seconds of talk
    handle_sigma: float = 0.6  # lognormal shape
    patience_mean: float = 240.0
    patience_dist: str = "exponential"  # or "lognormal"
    patience_sigma: float = 0.8
    priority_share: float = 0.0  # share of callers with priority 1
    skill_mix: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (share, extra skills)
    callback_prob: float = 0.0  # asks for a callback when told a long wait
    callback_threshold: float = 120.0  # seconds announced before callers think of it
    language: str = "en"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArrivalSpec:
        kw = dict(d)
        kw["rates"] = {int(h): float(r) for h, r in kw["rates"].items()}
        if "skill_mix" in kw:
            kw["skill_mix"] = [(float(p), dict(s)) for p, s in kw["skill_mix"]]
        return cls(**kw)


@dataclass
class SimConfig:
    name: str
    queues: list[QueueConfig]
    agents: list[AgentSpec]
    arrivals: list[ArrivalSpec]
    service_target: float = 20.0  # seconds, for service level
    prior_handle: float = 180.0
    rna_recover: float = 45.0  # an RNA-paused agent unpauses after this long
    callback_answer_prob: float = 0.8
    callback_ring: tuple[float, float] = (8.0, 25.0)
    number_pool: int = 5000  # callers' numbers drawn from this many (repeat callers)
    horizon_after: float = 4 * HOUR  # keep running after the last arrival at most this long

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | SimConfig) -> SimConfig:
        if isinstance(d, SimConfig):
            return d
        kw = dict(d)
        kw["queues"] = [QueueConfig.from_dict(q) for q in kw["queues"]]
        kw["agents"] = [a if isinstance(a, AgentSpec) else AgentSpec.from_dict(a) for a in kw["agents"]]
        kw["arrivals"] = [a if isinstance(a, ArrivalSpec) else ArrivalSpec.from_dict(a) for a in kw["arrivals"]]
        if "callback_ring" in kw:
            kw["callback_ring"] = tuple(kw["callback_ring"])
        return cls(**kw)


# =========================================================================== report


@dataclass
class SimReport:
    name: str
    seed: int
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    overflowed: int
    timed_out: int
    refused: int
    callbacks_requested: int
    callbacks_merged: int
    callbacks_connected: int
    callbacks_failed: int
    callbacks_pending: int
    interrupted: int
    service_target: float
    service_level: float
    asa: float
    abandonment_rate: float
    occupancy: float
    per_hour: dict[int, dict[str, int]]
    per_queue: dict[str, dict[str, float]]
    estimator_mae: float | None
    asterisk_mae: float | None
    estimator_samples: int
    estimator_silent: int  # callers told no figure
    max_agent_overlap: int  # max simultaneous calls of one agent (must be <= 1)
    outcome_errors: list[str]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_hour"] = {str(h): v for h, v in self.per_hour.items()}
        return d


def format_report(r: SimReport) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:5.1f}%"

    lines = [
        f"Simulated day: {r.name} (seed {r.seed})",
        f"  offered {r.offered}, answered {r.answered}, abandoned {r.abandoned}, "
        f"overflowed {r.overflowed}, timed out {r.timed_out}, refused {r.refused}, "
        f"interrupted {r.interrupted}",
        f"  callbacks: requested {r.callbacks_requested} (merged {r.callbacks_merged}), "
        f"connected {r.callbacks_connected}, failed {r.callbacks_failed}, pending {r.callbacks_pending}",
        f"  service level ({r.service_target:.0f} s): {pct(r.service_level)}   ASA {r.asa:.1f} s   "
        f"abandonment {pct(r.abandonment_rate)}   occupancy {pct(r.occupancy)}",
    ]
    if r.estimator_mae is not None:
        ratio = (r.estimator_mae / r.asterisk_mae) if r.asterisk_mae else float("nan")
        lines.append(
            f"  wait estimate MAE on {r.estimator_samples} answered calls: pypbx {r.estimator_mae:.1f} s, "
            f"Asterisk formula {r.asterisk_mae:.1f} s (ratio {ratio:.2f}); "
            f"no figure given {r.estimator_silent} times"
        )
    lines.append("  hour  offered answered abandoned")
    for h in sorted(r.per_hour):
        v = r.per_hour[h]
        lines.append(f"  {h:02d}:00 {v['offered']:8d} {v['answered']:8d} {v['abandoned']:9d}")
    for qn, qv in sorted(r.per_queue.items()):
        lines.append(
            f"  queue {qn}: offered {int(qv['offered'])}, answered {int(qv['answered'])}, "
            f"SL {pct(qv['service_level'])}, ASA {qv['asa']:.1f} s, abandoned {int(qv['abandoned'])}"
        )
    if r.outcome_errors:
        lines.append(f"  ACCOUNTING ERRORS: {len(r.outcome_errors)}: {r.outcome_errors[:5]}")
    return "\n".join(lines)


# =========================================================================== engine run


@dataclass
class _Call:
    id: str
    queue: str
    number: str
    arrival: float
    patience: float
    handle: float
    priority: int
    skills: dict[str, int]
    language: str
    cb_prob: float
    cb_threshold: float
    outcome: str | None = None
    answered_at: float | None = None
    answer_queue: str | None = None


def _present(value: str | None, ev: QueueEvent) -> str:
    """An id that the engine sets on every event of this kind (call, queue or agent)."""
    if value is None:
        raise ValueError(f"queue event {ev.kind.value} lacks an id it always carries: {ev}")
    return value


def _call_key(ev: QueueEvent) -> tuple[str, str]:
    """(call id, queue) of a caller's queue event."""
    return _present(ev.call_id, ev), _present(ev.queue, ev)


class _Sim:
    def __init__(self, cfg: SimConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.rng = random.Random(seed)
        self.engine = AcdEngine(
            cfg.queues,
            [
                Agent(a.id, a.id, dict(a.skills), frozenset(a.queues) if a.queues else None, a.wrap_up)
                for a in cfg.agents
            ],
            rng=random.Random(seed + 1),
            estimator=WaitEstimator(prior_handle=cfg.prior_handle),
        )
        self.specs = {a.id: a for a in cfg.agents}
        self.heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.hseq = 0
        self.calls: dict[str, _Call] = {}
        self.ring_token: dict[str, int] = {}
        self.now = 0.0
        # accounting
        self.visits: dict[tuple[str, str], list[str]] = {}
        self.enter_est: dict[tuple[str, str], tuple[float | None, float]] = {}
        self.est_err: list[float] = []
        self.ast_err: list[float] = []
        self.silent = 0
        self.cb_requested = self.cb_merged = self.cb_connected = self.cb_failed = 0
        self.cb_outcomes: dict[str, int] = {}
        self.busy_time = 0.0
        self.staffed_time = 0.0
        self.on_calls: dict[str, int] = {}
        self.max_overlap = 0
        self.last_t = 0.0
        self.interrupted = 0
        self.errors: list[str] = []

    # ---- scheduling

    def push(self, t: float, kind: str, *payload: Any) -> None:
        self.hseq += 1
        heapq.heappush(self.heap, (t, self.hseq, kind, payload))

    def build(self) -> float:
        rng = self.rng
        last = 0.0
        n = 0
        for spec in self.cfg.arrivals:
            for hour, rate in sorted(spec.rates.items()):
                if rate <= 0:
                    continue
                t = hour * HOUR
                end = (hour + 1) * HOUR
                while True:
                    t += rng.expovariate(rate / HOUR)
                    if t >= end:
                        break
                    n += 1
                    cid = f"{spec.queue}-{n}"
                    skills: dict[str, int] = {}
                    u = rng.random()
                    acc = 0.0
                    for share, sk in spec.skill_mix:
                        acc += share
                        if u < acc:
                            skills = dict(sk)
                            break
                    if spec.patience_dist == "lognormal":
                        mu = math.log(spec.patience_mean) - spec.patience_sigma**2 / 2
                        patience = rng.lognormvariate(mu, spec.patience_sigma)
                    else:
                        patience = rng.expovariate(1.0 / spec.patience_mean)
                    mu_h = math.log(spec.handle_mean) - spec.handle_sigma**2 / 2
                    call = _Call(
                        cid,
                        spec.queue,
                        f"+1555{rng.randrange(self.cfg.number_pool):07d}",
                        t,
                        patience,
                        rng.lognormvariate(mu_h, spec.handle_sigma),
                        1 if rng.random() < spec.priority_share else 0,
                        skills,
                        spec.language,
                        spec.callback_prob,
                        spec.callback_threshold,
                    )
                    self.calls[cid] = call
                    self.push(t, "arrive", cid)
                    last = max(last, t)
        for a in self.cfg.agents:
            for start, end in a.shifts:
                self.push(start * HOUR, "login", a.id)
                self.push(end * HOUR, "logout", a.id)
            for start, end, reason in a.breaks:
                self.push(start * HOUR, "pause", a.id, reason)
                self.push(end * HOUR, "unpause", a.id)
        return last

    # ---- main loop

    def run(self) -> SimReport:
        last_arrival = self.build()
        horizon = last_arrival + self.cfg.horizon_after
        eng = self.engine
        while True:
            th = self.heap[0][0] if self.heap else None
            te = eng.next_deadline()
            if th is None and te is None:
                break
            t = min(x for x in (th, te) if x is not None)
            if t > horizon:
                break
            self.advance(t)
            if te is not None and (th is None or te <= th):
                self.apply(eng.tick(t))
                continue
            _, _, kind, payload = heapq.heappop(self.heap)
            getattr(self, "on_" + kind)(*payload)
        self.advance(max(self.now, horizon if self.heap else self.now))
        self.interrupted += len(eng.close_waiting_calls(self.now))
        self.collect_events()
        return self.report()

    def advance(self, t: float) -> None:
        dt = t - self.last_t
        if dt > 0:
            for a in self.engine.agents.values():
                if a.state is AgentState.LOGGED_OUT or a.state is AgentState.PAUSED:
                    continue
                self.staffed_time += dt
                if a.state in (AgentState.ON_CALL, AgentState.WRAP_UP):
                    self.busy_time += dt
        self.last_t = t
        self.now = t

    # ---- inputs

    def on_arrive(self, cid: str) -> None:
        c = self.calls[cid]
        self.push(self.now + c.patience, "abandon", cid)
        self.apply(self.engine.call_arrived(Caller(cid, c.number, c.priority, c.skills, c.language), c.queue, self.now))

    def on_abandon(self, cid: str) -> None:
        self.apply(self.engine.caller_abandoned(cid, self.now))

    def on_answer(self, cid: str, aid: str, token: int) -> None:
        if self.ring_token.get(cid) != token:
            return
        self.apply(self.engine.ring_answered(cid, aid, self.now))

    def on_end(self, cid: str, aid: str) -> None:
        who = Party.CALLER if self.rng.random() < 0.6 else Party.AGENT
        self.apply(self.engine.call_ended(cid, who, self.now))

    def on_cb_request(self, cid: str) -> None:
        self.apply(self.engine.callback_requested(cid, self.calls[cid].number, self.now))

    def on_cb_patient(self, cid: str, answered: bool) -> None:
        if answered:
            self.apply(self.engine.callback_answered(cid, self.now))
        else:
            self.apply(self.engine.callback_failed(cid, self.now, "no answer"))

    def on_login(self, aid: str) -> None:
        self.apply(self.engine.agent_login(aid, self.now))

    def on_logout(self, aid: str) -> None:
        self.apply(self.engine.agent_logout(aid, self.now))

    def on_pause(self, aid: str, reason: str) -> None:
        self.apply(self.engine.agent_pause(aid, PauseReason(reason), self.now))

    def on_unpause(self, aid: str) -> None:
        self.apply(self.engine.agent_unpause(aid, self.now))

    def on_rna_unpause(self, aid: str) -> None:
        a = self.engine.agents[aid]
        if a.state is AgentState.PAUSED and a.pause_reason is PauseReason.RING_NO_ANSWER:
            self.apply(self.engine.agent_unpause(aid, self.now))

    # ---- outputs

    def apply(self, actions: list[Action]) -> None:
        rng = self.rng
        for act in actions:
            if isinstance(act, RingAgents):
                tok = self.ring_token.get(act.call_id, 0) + 1
                self.ring_token[act.call_id] = tok
                best = None
                for aid in act.agent_ids:
                    spec = self.specs[aid]
                    if rng.random() < spec.answer_prob:
                        d = rng.uniform(*spec.answer_delay)
                        if d < act.timeout and (best is None or d < best[0]):
                            best = (d, aid)
                if best is not None:
                    self.push(self.now + best[0], "answer", act.call_id, best[1], tok)
            elif isinstance(act, DialCallback):
                tok = self.ring_token.get(act.call_id, 0) + 1
                self.ring_token[act.call_id] = tok
                spec = self.specs[act.agent_id]
                if rng.random() < spec.answer_prob:
                    self.push(self.now + rng.uniform(*spec.answer_delay), "answer", act.call_id, act.agent_id, tok)
            elif isinstance(act, CancelRing):
                self.ring_token[act.call_id] = self.ring_token.get(act.call_id, 0) + 1
            elif isinstance(act, Connect):
                c = self.calls[act.call_id]
                n = self.on_calls.get(act.agent_id, 0) + 1
                self.on_calls[act.agent_id] = n
                self.max_overlap = max(self.max_overlap, n)
                self.push(self.now + c.handle, "end", act.call_id, act.agent_id)
            elif isinstance(act, Announce):
                c = self.calls[act.call_id]
                if (
                    act.ewt_seconds is not None
                    and act.ewt_seconds >= c.cb_threshold
                    and self.engine.queues[c.queue].callback_allowed
                    and rng.random() < c.cb_prob
                ):
                    c.cb_prob = 0.0
                    self.push(self.now + 8.0, "cb_request", act.call_id)
            elif isinstance(act, PauseAgent) and act.reason is PauseReason.RING_NO_ANSWER:
                self.push(self.now + self.cfg.rna_recover, "rna_unpause", act.agent_id)
        # callbacks: the agent answered -> dial the patient
        self.collect_events()

    def collect_events(self) -> None:
        for ev in self.engine.drain_events():
            k = ev.kind
            if k is EventKind.ENTER:
                key = _call_key(ev)
                self.visits.setdefault(key, [])
                self.enter_est[key] = (ev.data.get("ewt"), ev.data.get("asterisk_ewt", 0.0))
                if ev.data.get("ewt") is None:
                    self.silent += 1
            elif k in (
                EventKind.CONNECT,
                EventKind.ABANDON,
                EventKind.TIMEOUT,
                EventKind.OVERFLOW,
                EventKind.EXITEMPTY,
                EventKind.FULL,
                EventKind.CALLBACK_REQUESTED,
                EventKind.INTERRUPTED,
            ):
                key = _call_key(ev)
                self.visits.setdefault(key, []).append(k.value)
                c = self.calls[key[0]]
                if c.outcome is None or k is EventKind.CONNECT or c.outcome == "OVERFLOW":
                    c.outcome = k.value
                if k is EventKind.CONNECT:
                    c.answered_at = ev.time
                    c.answer_queue = ev.queue
                    est, ast = self.enter_est.get(key, (None, 0.0))
                    if est is not None:
                        wait = ev.data["wait"]
                        self.est_err.append(abs(est - wait))
                        self.ast_err.append(abs(ast - wait))
                elif k is EventKind.CALLBACK_REQUESTED:
                    self.cb_requested += 1
                    if ev.data.get("merged_into"):
                        self.cb_merged += 1
                    else:
                        self.cb_outcomes.setdefault(key[0], 0)
            elif k is EventKind.CALLBACK_DIALED:
                ok = self.rng.random() < self.cfg.callback_answer_prob
                self.push(self.now + self.rng.uniform(*self.cfg.callback_ring), "cb_patient", ev.call_id, ok)
            elif k is EventKind.CALLBACK_CONNECTED:
                self.cb_connected += 1
                cid = _present(ev.call_id, ev)
                self.cb_outcomes[cid] = self.cb_outcomes.get(cid, 0) + 1
            elif k is EventKind.CALLBACK_FAILED and ev.data.get("final"):
                self.cb_failed += 1
                cid = _present(ev.call_id, ev)
                self.cb_outcomes[cid] = self.cb_outcomes.get(cid, 0) + 1
            elif k in (EventKind.COMPLETE_CALLER, EventKind.COMPLETE_AGENT, EventKind.TRANSFER):
                aid = _present(ev.agent_id, ev)
                self.on_calls[aid] = self.on_calls.get(aid, 1) - 1

    # ---- report

    def report(self) -> SimReport:
        cfg = self.cfg
        T = cfg.service_target
        per_hour: dict[int, dict[str, int]] = {}
        per_queue: dict[str, dict[str, float]] = {}
        offered = answered = within = abandoned = overflowed = timed_out = refused = 0
        waits = []
        for c in self.calls.values():
            if c.arrival > self.now:
                continue
            offered += 1
            h = per_hour.setdefault(int(c.arrival // HOUR), {"offered": 0, "answered": 0, "abandoned": 0})
            q = per_queue.setdefault(
                c.queue, {"offered": 0, "answered": 0, "within": 0, "abandoned": 0, "wait_sum": 0.0}
            )
            h["offered"] += 1
            q["offered"] += 1
            if c.outcome == "CONNECT":
                answered += 1
                w = (c.answered_at or 0.0) - c.arrival
                waits.append(w)
                h["answered"] += 1
                q["answered"] += 1
                q["wait_sum"] += w
                if w <= T:
                    within += 1
                    q["within"] += 1
            elif c.outcome == "ABANDON":
                abandoned += 1
                h["abandoned"] += 1
                q["abandoned"] += 1
            elif c.outcome == "OVERFLOW":
                overflowed += 1
            elif c.outcome == "TIMEOUT":
                timed_out += 1
            elif c.outcome in ("EXITEMPTY", "FULL"):
                refused += 1
        for q in per_queue.values():
            q["service_level"] = q["within"] / q["offered"] if q["offered"] else 1.0
            q["asa"] = q["wait_sum"] / q["answered"] if q["answered"] else 0.0
        for key, outs in self.visits.items():
            if len(outs) != 1:
                self.errors.append(f"{key}: {outs}")
        pending = sum(1 for v in self.cb_outcomes.values() if v == 0)
        for cid, v in self.cb_outcomes.items():
            if v > 1:
                self.errors.append(f"callback {cid}: {v} outcomes")
        pending_cb = sum(1 for e in self.engine.waiting() if e.is_callback)
        mae = sum(self.est_err) / len(self.est_err) if self.est_err else None
        amae = sum(self.ast_err) / len(self.ast_err) if self.ast_err else None
        return SimReport(
            name=cfg.name,
            seed=self.seed,
            offered=offered,
            answered=answered,
            answered_within_target=within,
            abandoned=abandoned,
            overflowed=overflowed,
            timed_out=timed_out,
            refused=refused,
            callbacks_requested=self.cb_requested,
            callbacks_merged=self.cb_merged,
            callbacks_connected=self.cb_connected,
            callbacks_failed=self.cb_failed,
            callbacks_pending=max(pending, pending_cb),
            interrupted=self.interrupted,
            service_target=T,
            service_level=within / offered if offered else 1.0,
            asa=sum(waits) / len(waits) if waits else 0.0,
            abandonment_rate=abandoned / offered if offered else 0.0,
            occupancy=self.busy_time / self.staffed_time if self.staffed_time else 0.0,
            per_hour=per_hour,
            per_queue=per_queue,
            estimator_mae=mae,
            asterisk_mae=amae,
            estimator_samples=len(self.est_err),
            estimator_silent=self.silent,
            max_agent_overlap=self.max_overlap,
            outcome_errors=self.errors,
        )


def simulate(config: Mapping[str, Any] | SimConfig | str, seed: int = 1) -> SimReport:
    """Run one simulated day.  ``config``: a SimConfig, its dict form, or a preset name."""
    if isinstance(config, str):
        config = clinic_day(config)
    return _Sim(SimConfig.from_dict(config), seed).run()


# =========================================================================== presets


def _rates(peak: float, shape: Sequence[float], start: int = 8) -> dict[int, float]:
    return {start + i: peak * s for i, s in enumerate(shape)}


# a clinic's phone day: the 8 o'clock rush, a second bump after lunch
_DAY_SHAPE = (1.0, 0.85, 0.6, 0.5, 0.45, 0.35, 0.5, 0.55, 0.45, 0.3)


def _small_gp() -> SimConfig:
    q = QueueConfig(
        "reception",
        strategy=Strategy.LONGEST_IDLE,
        ring_timeout=15,
        wrap_up=20,
        announce_interval=60,
        callback_allowed=True,
    )
    agents = [
        AgentSpec("gp-a1", shifts=[(8, 17)], breaks=[(12, 12.5, "lunch")]),
        AgentSpec("gp-a2", shifts=[(8, 17)], breaks=[(12.5, 13, "lunch")]),
        AgentSpec("gp-a3", shifts=[(8, 13)]),
        AgentSpec("gp-a4", shifts=[(13, 18)]),
    ]
    arr = [
        ArrivalSpec(
            "reception",
            _rates(55, _DAY_SHAPE),
            handle_mean=150,
            handle_sigma=0.6,
            patience_mean=300,
            callback_prob=0.25,
            callback_threshold=180,
        )
    ]
    return SimConfig("small_gp", [q], agents, arr, prior_handle=150)


def _mid_clinic() -> SimConfig:
    front = Target(TargetKind.EXTENSION, "front_desk")
    new = QueueConfig(
        "new_patients",
        {"new_patients": 5},
        Strategy.BEST_SKILL_THEN_LONGEST_IDLE,
        ring_timeout=15,
        wrap_up=30,
        overflow=OverflowRule(20, front),
        callback_allowed=False,
    )
    ret = QueueConfig(
        "returning", {}, Strategy.FEWEST_CALLS, ring_timeout=15, wrap_up=15, relaxation=(), callback_allowed=True
    )
    agents = []
    for i in range(10):
        skills = {"returning": 5}
        if i < 4:
            skills["new_patients"] = 6 + i
        if i in (2, 7):
            skills["korean"] = 6
        shift: list[tuple[float, float]] = [(8, 16)] if i % 2 == 0 else [(9, 18)]
        lunch = (12 + 0.5 * (i % 3), 12.5 + 0.5 * (i % 3), "lunch")
        agents.append(AgentSpec(f"mid-a{i}", skills=skills, shifts=shift, breaks=[lunch]))
    arr = [
        ArrivalSpec("new_patients", _rates(30, _DAY_SHAPE), handle_mean=300, handle_sigma=0.5, patience_mean=240),
        ArrivalSpec(
            "returning",
            _rates(110, _DAY_SHAPE),
            handle_mean=170,
            handle_sigma=0.6,
            patience_mean=300,
            skill_mix=[(0.06, {"korean": 3})],
            callback_prob=0.3,
            callback_threshold=150,
        ),
    ]
    return SimConfig("mid_clinic", [new, ret], agents, arr, prior_handle=200)


def _large_centre() -> SimConfig:
    appt = QueueConfig(
        "appointments",
        {},
        Strategy.LONGEST_IDLE,
        ring_timeout=15,
        wrap_up=20,
        callback_allowed=True,
        max_wait=1800,
        fallback=Target(TargetKind.EXTENSION, "voicemail"),
    )
    results = QueueConfig(
        "results",
        {"results": 6},
        Strategy.BEST_SKILL_THEN_LONGEST_IDLE,
        ring_timeout=15,
        wrap_up=40,
        relaxation=(Relaxation(60, 4), Relaxation(180, 1)),
    )
    urgent = QueueConfig(
        "urgent",
        {"triage": 5},
        Strategy.RING_ALL,
        ring_timeout=20,
        wrap_up=30,
        rna_misses_before_pause=3,
        overflow=OverflowRule(90, Target(TargetKind.QUEUE, "appointments")),
    )
    agents = []
    for i in range(25):
        skills: dict[str, int] = {}
        if i < 8:
            skills["results"] = 4 + (i % 6)
        if 5 <= i < 11:
            skills["triage"] = 5 + (i % 4)
        if i % 6 == 0:
            skills["korean"] = 7
        shift: list[tuple[float, float]] = [(7.5, 15.5)] if i % 3 == 0 else [(8, 16.5)] if i % 3 == 1 else [(9.5, 18)]
        lunch = (11.5 + 0.5 * (i % 4), 12 + 0.5 * (i % 4), "lunch")
        agents.append(AgentSpec(f"lc-a{i:02d}", skills=skills, shifts=shift, breaks=[lunch], answer_prob=0.95))
    arr = [
        ArrivalSpec(
            "appointments",
            _rates(260, _DAY_SHAPE),
            handle_mean=200,
            handle_sigma=0.6,
            patience_mean=360,
            patience_dist="lognormal",
            priority_share=0.03,
            skill_mix=[(0.05, {"korean": 4})],
            callback_prob=0.3,
            callback_threshold=180,
        ),
        ArrivalSpec("results", _rates(60, _DAY_SHAPE), handle_mean=260, handle_sigma=0.5, patience_mean=300),
        ArrivalSpec(
            "urgent", _rates(14, _DAY_SHAPE), handle_mean=240, handle_sigma=0.5, patience_mean=600, priority_share=0.5
        ),
    ]
    return SimConfig("large_centre", [appt, results, urgent], agents, arr, prior_handle=220)


PRESETS = {
    "small_gp": _small_gp,
    "mid_clinic": _mid_clinic,
    "large_centre": _large_centre,
}


def clinic_day(profile: str = "small_gp") -> SimConfig:
    """A fresh SimConfig of one of the built-in clinic profiles (see ``PRESETS``)."""
    try:
        return PRESETS[profile]()
    except KeyError:
        raise KeyError(f"unknown preset {profile!r}; choose from {sorted(PRESETS)}") from None
