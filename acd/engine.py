"""The ACD state machine, sans I/O.

Feed it what happened (a call arrived, an agent answered, a ring timed out, time
passed...) with the current time; it returns the :mod:`acd.model` Actions the core must
carry out, and records queue_log-style :class:`~acd.model.QueueEvent` rows that the core
drains with :meth:`AcdEngine.drain_events` and persists.  Call :meth:`AcdEngine.tick` at
:meth:`AcdEngine.next_deadline` (or later) -- ring timeouts, wrap-up ends, overflow, max
wait, skill relaxation, re-announcements and callback retries all hang off it.

Invariants kept here:

* an agent in any state but AVAILABLE, or on a direct call (:meth:`agent_busy`), is never
  offered a call;
* every queue visit of a live caller (``ENTER``, or a refusal at the door) ends with
  exactly one of :data:`acd.model.CALLER_OUTCOMES`; every callback slot with exactly
  one ``CALLBACK_CONNECTED`` or final ``CALLBACK_FAILED``;
* order is (priority desc, time entered, arrival sequence) -- a caller's priority is the
  higher of its own (:class:`acd.model.Caller`) and the queue's entry priority -- so an
  urgent caller arriving last is offered first; a callback keeps its entry's
  key, so it keeps its place; a ring that is not answered puts the call back at its
  place, excluding the agents already tried while others are free;
* ``overflow_when_busy``: a caller arriving while every staffed agent who could answer
  is busy (none free, none ringing) leaves at once for the overflow target (``ENTER`` then
  ``OVERFLOW`` with ``reason`` ``all_busy``);
* a ``closed`` queue (staff closed it): a new caller does not wait, it leaves at once for
  the overflow target, else the fallback (``EXITEMPTY`` with ``closed``, no ``ENTER``);
* ring-no-answer: each agent counts the rings it let go unanswered in a row (reset on an
  answer, a login, an unpause); reaching the ringing queue's ``rna_misses_before_pause``
  pauses it (``RING_NO_ANSWER``);
* callbacks are dialled only to agents reserved for them, so never more callbacks are
  dialled than agents are free.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .estimator import AgentLoad, AsteriskHoldtime, WaitEstimator, skill_key
from .model import (
    Action,
    Agent,
    AgentState,
    Announce,
    CallbackFailed,
    Caller,
    CancelRing,
    ClosedCall,
    Connect,
    DialCallback,
    EndWrapUp,
    EntryView,
    EventKind,
    ExitEmpty,
    ExitFull,
    JoinEmpty,
    Overflow,
    Party,
    PauseAgent,
    PauseReason,
    QueueConfig,
    QueueEvent,
    RingAgents,
    StartWrapUp,
    Strategy,
    TargetKind,
    Timeout,
)

#: OVERFLOW's ``reason`` when the caller was sent on at arrival because every agent was busy.
ALL_BUSY = "all_busy"

_Key = tuple[int, float, int]  # (-priority, entered_at, seq)
_ReqSig = tuple[str, tuple[tuple[str, int], ...]]  # (queue, sorted effective requirements)
_Fingerprint = tuple[int, float, float]  # capacity: (eligible agents, cycle, callers ahead)
_Estimate = tuple[float | None, _Fingerprint]  # (raw EWT or None, fingerprint)


@dataclass(eq=False)
class _Entry:
    call: Caller
    queue: str
    key: _Key
    entered_at: float
    enter_position: int
    number: str
    is_callback: bool = False
    ringing: tuple[str, ...] = ()
    ring_started: float = 0.0
    ring_deadline: float | None = None
    tried: set[str] = field(default_factory=set)
    not_before: float = 0.0
    attempts: int = 0
    cb_agent: str | None = None
    cb_dialing: bool = False  # agent answered, patient being dialled
    next_announce: float | None = None
    last_ewt: float | None = None
    last_ewt_at: float = 0.0
    last_fp: _Fingerprint = (0, 0.0, 0.0)
    last_pos: int = 0
    announced: bool = False
    overflow_at: float | None = None
    timeout_at: float | None = None
    # (relaxation floor, queue config, req, signature)
    req_cache: tuple[int | None, QueueConfig, dict[str, int], _ReqSig] | None = None

    @property
    def id(self) -> str:
        return self.call.id


@dataclass
class _Conn:
    call_id: str
    queue: str
    agent_id: str
    entered_at: float
    answered_at: float
    skills: str
    is_callback: bool


class AcdEngine:
    """Queues, agents and waiting calls; decisions as Actions, history as QueueEvents."""

    def __init__(
        self,
        queues: Iterable[QueueConfig] = (),
        agents: Iterable[Agent] = (),
        *,
        rng: random.Random | None = None,
        estimator: WaitEstimator | None = None,
        announce_min_change: float = 30.0,
    ) -> None:
        self.queues: dict[str, QueueConfig] = {}
        self.agents: dict[str, Agent] = {}
        self.rng = rng if rng is not None else random.Random(0)
        self.estimator = estimator if estimator is not None else WaitEstimator()
        self.asterisk = AsteriskHoldtime()
        self.announce_min_change = announce_min_change
        self._entries: dict[str, _Entry] = {}
        self._order: list[_Key] = []  # all waiting entries, global order
        self._by_key: dict[_Key, _Entry] = {}
        self._qorder: dict[str, list[_Key]] = {}
        self._free: dict[str, Agent] = {}  # offerable agents
        self._connected: dict[str, _Conn] = {}
        self._rr: dict[str, str] = {}
        self._seq = 0
        self._timers: list[tuple[float, int, str, str]] = []
        self._tseq = 0
        self._events: list[QueueEvent] = []
        self._pending_pause: dict[str, PauseReason] = {}
        self._pending_logout: set[str] = set()
        self._roster_version = 0
        self._elig_cache: dict[_ReqSig, frozenset[str]] = {}
        self._elig_version = -1
        for q in queues:
            self.add_queue(q)
        for a in agents:
            self.add_agent(a)

    # ================================================================ configuration

    def add_queue(self, queue: QueueConfig) -> None:
        """Add or replace a queue's configuration (waiting callers stay)."""
        self.queues[queue.name] = queue
        self._qorder.setdefault(queue.name, [])
        self._roster_version += 1

    def add_agent(self, agent: Agent) -> None:
        if agent.id in self.agents:
            raise ValueError(f"agent {agent.id} already known")
        self.agents[agent.id] = agent
        if agent.offerable:
            self._free[agent.id] = agent
        self._roster_version += 1

    def set_skills(self, agent_id: str, skills: Mapping[str, int], now: float) -> list[Action]:
        agent = self.agents[agent_id]
        agent.skills = dict(skills)
        agent.__post_init__()
        self._roster_version += 1
        out: list[Action] = []
        self._dispatch(now, out)
        return out

    # ================================================================ read side

    def drain_events(self) -> list[QueueEvent]:
        ev, self._events = self._events, []
        return ev

    def waiting(self, queue: str | None = None, now: float | None = None) -> list[EntryView]:
        keys = self._order if queue is None else self._qorder.get(queue, [])
        out = []
        for k in keys:
            e = self._by_key[k]
            out.append(
                EntryView(
                    call_id=e.id,
                    queue=e.queue,
                    number=e.number,
                    priority=e.call.priority,
                    entered_at=e.entered_at,
                    position=self._position(e),
                    wait=(now - e.entered_at) if now is not None else 0.0,
                    is_callback=e.is_callback,
                    ringing=e.ringing,
                    attempts=e.attempts,
                )
            )
        return out

    def position(self, call_id: str) -> int | None:
        e = self._entries.get(call_id)
        return self._position(e) if e is not None else None

    def connected_calls(self) -> dict[str, str]:
        """call id -> agent id for calls connected to an agent."""
        return {c.call_id: c.agent_id for c in self._connected.values()}

    def connected_queues(self) -> dict[str, str]:
        """call id -> queue for calls connected to an agent."""
        return {c.call_id: c.queue for c in self._connected.values()}

    def estimate_wait(self, call_id: str, now: float) -> float | None:
        e = self._entries[call_id]
        return self._estimate(e, now)[0]

    def next_deadline(self) -> float | None:
        while self._timers:
            t, _, kind, ref = self._timers[0]
            if self._timer_valid(t, kind, ref):
                return t
            heapq.heappop(self._timers)
        return None

    # ================================================================ agents

    def agent_login(self, agent_id: str, now: float, agent: Agent | None = None) -> list[Action]:
        if agent_id not in self.agents:
            if agent is None:
                raise KeyError(agent_id)
            self.add_agent(agent)
        a = self.agents[agent_id]
        out: list[Action] = []
        self._pending_logout.discard(agent_id)
        if a.state is not AgentState.LOGGED_OUT:
            return out
        self._set_state(a, AgentState.AVAILABLE, now)
        a.idle_since = now
        a.missed_in_row = 0
        self._event(now, EventKind.LOGIN, agent_id=agent_id)
        self._dispatch(now, out)
        return out

    def agent_logout(self, agent_id: str, now: float) -> list[Action]:
        a = self.agents[agent_id]
        out: list[Action] = []
        if a.state is AgentState.LOGGED_OUT:
            return out
        if a.state is AgentState.ON_CALL:
            self._pending_logout.add(agent_id)
            return out
        if a.state is AgentState.RINGING:
            self._withdraw_ring(a, now, out)
        self._pending_pause.pop(agent_id, None)
        self._set_state(a, AgentState.LOGGED_OUT, now)
        self._event(now, EventKind.LOGOUT, agent_id=agent_id)
        self._dispatch(now, out)
        return out

    def agent_pause(self, agent_id: str, reason: PauseReason, now: float) -> list[Action]:
        a = self.agents[agent_id]
        out: list[Action] = []
        if a.state is AgentState.LOGGED_OUT:
            return out
        if a.state in (AgentState.ON_CALL, AgentState.RINGING):
            self._pending_pause[agent_id] = reason
            return out
        if a.state is AgentState.PAUSED and a.pause_reason is reason:
            return out
        self._pause(a, reason, now, out)
        return out

    def agent_unpause(self, agent_id: str, now: float) -> list[Action]:
        a = self.agents[agent_id]
        out: list[Action] = []
        self._pending_pause.pop(agent_id, None)
        if a.state is not AgentState.PAUSED:
            return out
        a.missed_in_row = 0
        self._set_state(a, AgentState.AVAILABLE, now)
        self._event(now, EventKind.UNPAUSE, agent_id=agent_id)
        self._dispatch(now, out)
        return out

    def agent_busy(self, agent_id: str, now: float) -> list[Action]:
        """The agent is on a direct (non-queue) call: offer nothing until agent_free."""
        a = self.agents[agent_id]
        if not a.external_busy:
            a.external_busy = True
            a.external_since = now
            self._free.pop(agent_id, None)
            self._roster_version += 1
        return []

    def agent_free(self, agent_id: str, now: float) -> list[Action]:
        a = self.agents[agent_id]
        out: list[Action] = []
        if a.external_busy:
            a.external_busy = False
            if a.offerable:
                self._free[agent_id] = a
            self._roster_version += 1
            self._dispatch(now, out)
        return out

    # ================================================================ calls

    def call_arrived(self, call: Caller, queue: str, now: float) -> list[Action]:
        out: list[Action] = []
        self._enqueue(call, queue, now, out)
        return out

    def ring_answered(self, call_id: str, agent_id: str, now: float) -> list[Action]:
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is None or agent_id not in e.ringing:
            return out  # late answer after cancel: the front door drops it
        agent = self.agents[agent_id]
        others = tuple(x for x in e.ringing if x != agent_id)
        ring = now - e.ring_started
        e.ringing = ()
        e.ring_deadline = None
        if others:
            out.append(CancelRing(call_id, others))
            for oid in others:
                self._back_from_ring(self.agents[oid], now, out)
        agent.missed_in_row = 0
        agent.current_call = call_id
        self._set_state(agent, AgentState.ON_CALL, now)
        if e.is_callback:
            e.cb_dialing = True
            e.attempts += 1
            self._event(
                now,
                EventKind.CALLBACK_DIALED,
                e.queue,
                call_id,
                agent_id,
                number=e.number,
                attempt=e.attempts,
            )
        else:
            wait = now - e.entered_at
            pos = self._position(e)
            self._remove(e)
            self._event(
                now,
                EventKind.CONNECT,
                e.queue,
                call_id,
                agent_id,
                wait=wait,
                position=pos,
                enter_position=e.enter_position,
                ring=ring,
            )
            self.estimator.observe_answer(e.queue, wait, ring)
            self.asterisk.observe_answer(e.queue, wait)
            self._connected[call_id] = _Conn(call_id, e.queue, agent_id, e.entered_at, now, self._skey(e), False)
            out.append(Connect(call_id, agent_id))
        self._dispatch(now, out)
        return out

    def ring_timeout(self, call_id: str, now: float) -> list[Action]:
        """Nobody answered the ring (the front door's fork timed out)."""
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is not None and e.ringing and not e.cb_dialing:
            self._ring_no_answer(e, now, out)
            self._dispatch(now, out)
        return out

    def ring_failed(self, call_id: str, agent_id: str, now: float, reason: str = "") -> list[Action]:
        """Ringing this agent failed (unreachable, busy...): no miss is counted."""
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is None or agent_id not in e.ringing:
            return out
        e.ringing = tuple(x for x in e.ringing if x != agent_id)
        e.tried.add(agent_id)
        a = self.agents[agent_id]
        self._event(
            now,
            EventKind.RINGNOANSWER,
            e.queue,
            call_id,
            agent_id,
            ring=now - e.ring_started,
            failed=True,
            reason=reason,
        )
        self._back_from_ring(a, now, out)
        if not e.ringing:
            e.ring_deadline = None
            if e.is_callback:
                e.cb_agent = None
            self._leave_if_overdue(e, now, out)
        self._dispatch(now, out)
        return out

    def call_ended(self, call_id: str, who: Party, now: float) -> list[Action]:
        out: list[Action] = []
        conn = self._connected.pop(call_id, None)
        if conn is None:
            e = self._entries.get(call_id)
            if e is not None and e.is_callback and e.cb_dialing:
                return self.callback_failed(call_id, now, "hangup")
            if e is not None and not e.is_callback:
                return self.caller_abandoned(call_id, now)
            return out
        self._finish(conn, who, now, out)
        self._dispatch(now, out)
        return out

    def call_transferred(self, call_id: str, target: str, now: float) -> list[Action]:
        out: list[Action] = []
        conn = self._connected.pop(call_id, None)
        if conn is None:
            return out
        self._event(now, EventKind.TRANSFER, conn.queue, call_id, conn.agent_id, target=target)
        self._finish(conn, None, now, out)
        self._dispatch(now, out)
        return out

    def caller_abandoned(self, call_id: str, now: float) -> list[Action]:
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is None or e.is_callback:
            return out
        if e.ringing:
            out.append(CancelRing(call_id, e.ringing))
            ringing, e.ringing = e.ringing, ()
            for aid in ringing:
                self._back_from_ring(self.agents[aid], now, out)
        wait = now - e.entered_at
        pos = self._position(e)
        self._remove(e)
        self._event(now, EventKind.ABANDON, e.queue, call_id, wait=wait, position=pos, enter_position=e.enter_position)
        self.estimator.observe_abandon(e.queue, wait)
        self._dispatch(now, out)
        return out

    def callback_requested(self, call_id: str, number: str, now: float) -> list[Action]:
        """The caller asked to be called back at ``number`` and hangs up; the slot keeps
        its place.  A pending callback for the same number absorbs this one."""
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is None or e.is_callback or not self.queues[e.queue].callback_allowed:
            return out
        if e.ringing:
            out.append(CancelRing(call_id, e.ringing))
            ringing, e.ringing = e.ringing, ()
            e.ring_deadline = None
            for aid in ringing:
                self._back_from_ring(self.agents[aid], now, out)
        wait = now - e.entered_at
        pos = self._position(e)
        dup = next(
            (x for x in self._entries.values() if x.is_callback and x.number == number and x is not e),
            None,
        )
        if dup is not None:
            self._remove(e)
            self._event(
                now,
                EventKind.CALLBACK_REQUESTED,
                e.queue,
                call_id,
                number=number,
                wait=wait,
                position=pos,
                merged_into=dup.id,
            )
            if e.key < dup.key:  # the newer request had the better place: keep it
                self._remove(dup)
                dup.key = e.key
                dup.entered_at = e.entered_at
                self._insert(dup)
        else:
            e.is_callback = True
            e.number = number
            e.tried.clear()
            self._event(now, EventKind.CALLBACK_REQUESTED, e.queue, call_id, number=number, wait=wait, position=pos)
        self._dispatch(now, out)
        return out

    def callback_answered(self, call_id: str, now: float) -> list[Action]:
        """The patient answered the callback: agent and patient are connected."""
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is None or not e.cb_dialing:
            return out
        agent_id = e.cb_agent
        assert agent_id is not None
        self._remove(e)
        self._event(
            now,
            EventKind.CALLBACK_CONNECTED,
            e.queue,
            call_id,
            agent_id,
            number=e.number,
            attempt=e.attempts,
            wait=now - e.entered_at,
        )
        self._connected[call_id] = _Conn(call_id, e.queue, agent_id, e.entered_at, now, self._skey(e), True)
        self.agents[agent_id].state_since = now
        out.append(Connect(call_id, agent_id))
        return out

    def callback_failed(self, call_id: str, now: float, reason: str = "") -> list[Action]:
        """The patient did not answer (busy, no answer...).  Retry later, keeping the
        place, until the queue's attempt limit."""
        out: list[Action] = []
        e = self._entries.get(call_id)
        if e is None or not e.cb_dialing:
            return out
        q = self.queues[e.queue]
        agent = self.agents[e.cb_agent] if e.cb_agent else None
        e.cb_dialing = False
        e.cb_agent = None
        final = e.attempts >= q.callback_max_attempts
        self._event(
            now,
            EventKind.CALLBACK_FAILED,
            e.queue,
            call_id,
            agent.id if agent else None,
            number=e.number,
            attempt=e.attempts,
            final=final,
            reason=reason,
        )
        if final:
            self._remove(e)
            out.append(CallbackFailed(call_id, e.number, e.attempts, e.queue))
        else:
            e.not_before = now + q.callback_retry_delay
            self._timer(e.not_before, "retry", call_id)
        if agent is not None:
            agent.current_call = None
            self._after_call(agent, 0.0, now, out)
        self._dispatch(now, out)
        return out

    def add_callback(
        self,
        call_id: str,
        number: str,
        queue: str,
        now: float,
        *,
        priority: int = 0,
        attempts: int = 0,
        not_before: float = 0.0,
    ) -> list[Action]:
        """A callback slot no live call left (the missed-caller worklist's automatic
        callback): placed by (priority, now) -- a priority below the live callers' keeps it
        behind every one of them -- and dialled like a "press 1" callback, with the queue's
        attempts (``attempts`` already made) and retry delay."""
        if call_id in self._entries or call_id in self._connected:
            raise ValueError(f"call {call_id} already in the ACD")
        if queue not in self.queues:
            raise KeyError(f"unknown queue {queue}")
        self._seq += 1
        e = _Entry(
            Caller(call_id, number, priority),
            queue,
            (-priority, now, self._seq),
            now,
            0,
            number,
            is_callback=True,
            attempts=attempts,
            not_before=not_before,
        )
        self._insert(e)
        self._event(now, EventKind.CALLBACK_REQUESTED, queue, call_id, number=number, wait=0.0, position=0)
        if not_before > now:
            self._timer(not_before, "retry", call_id)
        out: list[Action] = []
        self._dispatch(now, out)
        return out

    def drop_callback(self, call_id: str, now: float, reason: str = "withdrawn") -> list[Action]:
        """Withdraw a waiting callback slot (not while its agent rings or its number is
        dialled): its final ``CALLBACK_FAILED``."""
        e = self._entries.get(call_id)
        if e is None or not e.is_callback or e.cb_dialing or e.ringing:
            return []
        self._remove(e)
        self._event(
            now,
            EventKind.CALLBACK_FAILED,
            e.queue,
            call_id,
            number=e.number,
            attempt=e.attempts,
            final=True,
            reason=reason,
        )
        return []

    # ================================================================ time

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        announce: list[_Entry] = []
        while self._timers and self._timers[0][0] <= now:
            t, _, kind, ref = heapq.heappop(self._timers)
            if not self._timer_valid(t, kind, ref):
                continue
            if kind == "wrap":
                a = self.agents[ref]
                a.wrap_up_until = None
                self._end_wrap(a, now, out)
                continue
            e = self._entries[ref]
            if kind == "ring":
                self._ring_no_answer(e, now, out)
            elif kind in ("overflow", "maxwait"):
                self._leave_if_overdue(e, now, out)
            elif kind == "announce":
                announce.append(e)
            # "relax", "retry" and "prefer" only need the dispatch below
        self._dispatch(now, out)
        for e in announce:  # after routing: a caller about to be rung hears nothing
            if e.id in self._entries:
                self._announce(e, now, out, repeat=True)
        return out

    # ================================================================ restart

    def snapshot(self) -> dict[str, Any]:
        """Waiting callbacks, estimator state and routing memory as plain data."""
        cbs = []
        for k in self._order:
            e = self._by_key[k]
            if e.is_callback:
                cbs.append(
                    {
                        "call_id": e.id,
                        "queue": e.queue,
                        "number": e.number,
                        "priority": e.call.priority,
                        "skills": dict(e.call.skills),
                        "language": e.call.language,
                        "entered_at": e.entered_at,
                        "seq": e.key[2],
                        "attempts": e.attempts,
                        "not_before": e.not_before,
                    }
                )
        return {
            "version": 1,
            "callbacks": cbs,
            "estimator": self.estimator.snapshot(),
            "asterisk": self.asterisk.snapshot(),
            "round_robin": dict(self._rr),
            "seq": self._seq,
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Load a :meth:`snapshot` into a fresh engine (queues configured first)."""
        self.estimator.restore(snap.get("estimator", {}))
        self.asterisk.restore(snap.get("asterisk", {}))
        self._rr.update(snap.get("round_robin", {}))
        self._seq = max(self._seq, int(snap.get("seq", 0)))
        for d in snap.get("callbacks", []):
            if d["queue"] not in self.queues:
                raise KeyError(f"callback {d['call_id']}: unknown queue {d['queue']}")
            call = Caller(
                d["call_id"], d["number"], int(d.get("priority", 0)), dict(d.get("skills", {})), d.get("language")
            )
            e = _Entry(
                call,
                d["queue"],
                (-call.priority, float(d["entered_at"]), int(d["seq"])),
                float(d["entered_at"]),
                0,
                d["number"],
                is_callback=True,
                attempts=int(d.get("attempts", 0)),
                not_before=float(d.get("not_before", 0)),
            )
            self._insert(e)
            if e.not_before:
                self._timer(e.not_before, "retry", e.id)

    def close_waiting_calls(self, now: float, as_callbacks: bool = False) -> list[ClosedCall]:
        """Close every live caller still queued (shutdown/restart): each gets an
        INTERRUPTED outcome; the records carry the numbers for the callback list.  With
        ``as_callbacks`` the engine also keeps a callback slot in their place."""
        closed = []
        for k in list(self._order):
            e = self._by_key[k]
            if e.is_callback:
                continue
            closed.append(ClosedCall(e.id, e.queue, e.number, "interrupted", now - e.entered_at, self._position(e)))
            for aid in e.ringing:
                self._back_from_ring(self.agents[aid], now, [])
            e.ringing = ()
            self._event(
                now,
                EventKind.INTERRUPTED,
                e.queue,
                e.id,
                wait=now - e.entered_at,
                position=self._position(e),
                number=e.number,
            )
            if as_callbacks and e.number:
                e.is_callback = True
            else:
                self._remove(e)
        return closed

    @staticmethod
    def close_interrupted(rows: Iterable[Mapping[str, Any]], now: float) -> list[ClosedCall]:
        """For a core that crashed: given its persisted in-queue rows (``call_id``,
        ``queue``, ``number``, ``entered_at``, optional ``position``), the outcome records
        to write; their numbers go to the callback list."""
        return [
            ClosedCall(
                r["call_id"],
                r["queue"],
                r.get("number", ""),
                "interrupted",
                max(0.0, now - float(r["entered_at"])),
                int(r.get("position", 0)),
            )
            for r in rows
        ]

    # ================================================================ internals

    def _event(
        self,
        now: float,
        kind: EventKind,
        queue: str | None = None,
        call_id: str | None = None,
        agent_id: str | None = None,
        **data: Any,
    ) -> None:
        self._events.append(QueueEvent(now, kind, queue, call_id, agent_id, data))

    def _timer(self, t: float, kind: str, ref: str) -> None:
        self._tseq += 1
        heapq.heappush(self._timers, (t, self._tseq, kind, ref))

    def _timer_valid(self, t: float, kind: str, ref: str) -> bool:
        if kind == "wrap":
            a = self.agents.get(ref)
            return a is not None and a.state is AgentState.WRAP_UP and a.wrap_up_until == t
        e = self._entries.get(ref)
        if e is None:
            return False
        if kind == "ring":
            return bool(e.ringing) and e.ring_deadline == t and not e.cb_dialing
        if kind == "overflow":
            return not e.is_callback and e.overflow_at == t
        if kind == "maxwait":
            return not e.is_callback and e.timeout_at == t
        if kind == "announce":
            return not e.is_callback and e.next_announce == t
        if kind == "retry":
            return e.is_callback and e.not_before == t
        return True  # relax, prefer

    def _set_state(self, a: Agent, state: AgentState, now: float) -> None:
        if state is not AgentState.PAUSED:
            a.pause_reason = None
        staffed = (AgentState.LOGGED_OUT, AgentState.PAUSED)
        if (a.state in staffed) != (state in staffed):
            self._roster_version += 1  # who counts as staffed changed
        a.state = state
        a.state_since = now
        if a.offerable:
            self._free[a.id] = a
        else:
            self._free.pop(a.id, None)

    def _pause(self, a: Agent, reason: PauseReason, now: float, out: list[Action]) -> None:
        a.wrap_up_until = None
        self._set_state(a, AgentState.PAUSED, now)
        a.pause_reason = reason
        self._event(now, EventKind.PAUSE, agent_id=a.id, reason=reason.value)
        out.append(PauseAgent(a.id, reason))

    def _insert(self, e: _Entry) -> None:
        self._entries[e.id] = e
        self._by_key[e.key] = e
        bisect.insort(self._order, e.key)
        bisect.insort(self._qorder[e.queue], e.key)

    def _remove(self, e: _Entry) -> None:
        del self._entries[e.id]
        del self._by_key[e.key]
        i = bisect.bisect_left(self._order, e.key)
        del self._order[i]
        ql = self._qorder[e.queue]
        del ql[bisect.bisect_left(ql, e.key)]

    def _position(self, e: _Entry) -> int:
        return bisect.bisect_left(self._qorder[e.queue], e.key) + 1

    def _base_req(self, e: _Entry) -> dict[str, int]:
        req = dict(self.queues[e.queue].required_skills)
        for s, lvl in e.call.skills.items():
            req[s] = max(req.get(s, 0), int(lvl))
        return req

    def _req_sig(self, e: _Entry, now: float) -> tuple[dict[str, int], _ReqSig]:
        """Effective requirements (after relaxation) and their hashable signature,
        cached on the entry per relaxation step.  Treat the dict as read-only."""
        q = self.queues[e.queue]
        floor = None
        if q.relaxation:
            waited = now - e.entered_at
            for r in q.relaxation:
                if waited >= r.after:
                    floor = r.min_level
        cached = e.req_cache
        if cached is not None and cached[0] == floor and cached[1] is q:
            return cached[2], cached[3]
        req = self._base_req(e)
        if floor is not None:
            req = {s: min(lvl, floor) for s, lvl in req.items()}
        sig: _ReqSig = (e.queue, tuple(sorted(req.items())))
        e.req_cache = (floor, q, req, sig)
        return req, sig

    def _req(self, e: _Entry, now: float) -> dict[str, int]:
        return self._req_sig(e, now)[0]

    def _skey(self, e: _Entry) -> str:
        return skill_key(self._base_req(e))

    @staticmethod
    def _qualifies(a: Agent, queue: str, req: Mapping[str, int]) -> bool:
        if a.queues is not None and queue not in a.queues:
            return False
        skills = a.skills
        return all(skills.get(s, 0) >= lvl for s, lvl in req.items())

    def _eligible_set(self, queue: str, req: Mapping[str, int], sig: _ReqSig | None = None) -> frozenset[str]:
        """Ids of agents logged in, not paused, who qualify (cached per roster)."""
        if self._elig_version != self._roster_version:
            self._elig_cache.clear()
            self._elig_version = self._roster_version
        if sig is None:
            sig = (queue, tuple(sorted(req.items())))
        s = self._elig_cache.get(sig)
        if s is None:
            s = frozenset(
                a.id
                for a in self.agents.values()
                if a.state is not AgentState.LOGGED_OUT
                and a.state is not AgentState.PAUSED
                and self._qualifies(a, queue, req)
            )
            self._elig_cache[sig] = s
        return s

    def _most_relaxed(self, e: _Entry) -> dict[str, int]:
        return self._req(e, e.entered_at + 1e12)

    # ---- enqueue / leave

    def _enqueue(self, call: Caller, queue: str, now: float, out: list[Action], busy_overflow: bool = True) -> None:
        """``busy_overflow`` False: a caller the busy trigger just sent here waits here
        (two queues overflowing to each other when busy do not bounce a caller)."""
        if call.id in self._entries or call.id in self._connected:
            raise ValueError(f"call {call.id} already in the ACD")
        q = self.queues[queue]
        if q.priority > call.priority:  # the queue's entry priority: the higher one wins
            call = replace(call, priority=q.priority)
        self._seq += 1
        e = _Entry(call, queue, (-call.priority, now, self._seq), now, 0, call.number)
        if q.closed:
            dest = q.overflow.target if q.overflow is not None else q.fallback
            self._event(now, EventKind.EXITEMPTY, queue, call.id, number=call.number, closed=True)
            out.append(ExitEmpty(call.id, queue, dest))
            return
        live = sum(1 for k in self._qorder[queue] if not self._by_key[k].is_callback)
        if q.max_length is not None and live >= q.max_length:
            self._event(now, EventKind.FULL, queue, call.id, number=call.number, length=live)
            out.append(ExitFull(call.id, queue, q.fallback))
            return
        if q.join_empty is JoinEmpty.REFUSE and not self._eligible_set(queue, self._most_relaxed(e)):
            self._event(now, EventKind.EXITEMPTY, queue, call.id, number=call.number)
            out.append(ExitEmpty(call.id, queue, q.fallback))
            return
        self._insert(e)
        e.enter_position = self._position(e)
        ewt, fp = self._estimate(e, now)
        self._event(
            now,
            EventKind.ENTER,
            queue,
            call.id,
            number=call.number,
            priority=call.priority,
            position=e.enter_position,
            ewt=ewt,
            asterisk_ewt=self.asterisk.estimate(queue, e.enter_position),
        )
        if busy_overflow and q.overflow is not None and q.overflow_when_busy and self._all_busy(e):
            e.overflow_at = now  # every agent busy: to the overflow destination at once
            self._leave_if_overdue(e, now, out, reason=ALL_BUSY)
            return
        if q.overflow is not None:
            e.overflow_at = now + q.overflow.after
            self._timer(e.overflow_at, "overflow", call.id)
        if q.max_wait is not None:
            e.timeout_at = now + q.max_wait
            self._timer(e.timeout_at, "maxwait", call.id)
        for r in q.relaxation:
            self._timer(now + r.after, "relax", call.id)
        if call.preferred_agent and call.prefer_for > 0:
            self._timer(now + call.prefer_for, "prefer", call.id)  # then anyone: see _preferred
        self._dispatch(now, out)
        if call.id in self._entries and not e.ringing:
            self._announce(e, now, out, repeat=False, precomputed=(ewt, fp))
        elif q.announce_interval > 0:
            e.next_announce = now + q.announce_interval
            self._timer(e.next_announce, "announce", call.id)

    def _all_busy(self, e: _Entry) -> bool:
        """``overflow_when_busy``: someone who could answer ``e`` is staffed (logged in, not
        paused) and every one of them is busy -- on a call, in wrap-up or on a direct call;
        none free, none ringing (a ring may end unanswered). Nobody staffed is not "busy":
        ``join_empty`` decides that case."""
        staffed = self._eligible_set(e.queue, self._most_relaxed(e))
        if not staffed:
            return False
        for aid in staffed:
            a = self.agents[aid]
            if a.offerable or a.state is AgentState.RINGING:
                return False
        return True

    def _leave_if_overdue(self, e: _Entry, now: float, out: list[Action], reason: str = "") -> None:
        """Overflow / max wait, deferred while the call is ringing an agent."""
        if e.ringing or e.is_callback or e.id not in self._entries:
            return
        q = self.queues[e.queue]
        wait = now - e.entered_at
        if e.timeout_at is not None and now >= e.timeout_at:
            pos = self._position(e)
            self._remove(e)
            self._event(now, EventKind.TIMEOUT, e.queue, e.id, wait=wait, position=pos)
            out.append(Timeout(e.id, e.queue, q.fallback))
        elif e.overflow_at is not None and now >= e.overflow_at:
            assert q.overflow is not None
            pos = self._position(e)
            self._remove(e)
            tgt = q.overflow.target
            self._event(
                now,
                EventKind.OVERFLOW,
                e.queue,
                e.id,
                wait=wait,
                position=pos,
                target_kind=tgt.kind.value,
                target=tgt.target,
                **({"reason": reason} if reason else {}),
            )
            out.append(Overflow(e.id, tgt))
            if tgt.kind is TargetKind.QUEUE and tgt.target in self.queues:
                self._enqueue(e.call, tgt.target, now, out, busy_overflow=not reason)

    # ---- announcements

    def _estimate(self, e: _Entry, now: float) -> _Estimate:
        req, mysig = self._req_sig(e, now)
        mine = self._eligible_set(e.queue, req, mysig)
        if not mine:
            return None, (0, 0.0, 0.0)
        ahead = 0.0
        shares: dict[_ReqSig, float] = {}
        by_key = self._by_key
        for k in self._order:
            if k >= e.key:
                break
            o = by_key[k]
            if o.ringing or o.cb_agent or o.not_before > now:
                continue
            oreq, sig = self._req_sig(o, now)
            share = shares.get(sig)
            if share is None:
                theirs = self._eligible_set(o.queue, oreq, sig)
                share = len(theirs & mine) / len(theirs) if theirs else 0.0
                shares[sig] = share
            ahead += share
        q = self.queues[e.queue]
        skey = self._skey(e)
        est = self.estimator
        ring = est.ring_time(e.queue)
        cycle = est.cycle(e.queue, skey, q.wrap_up)
        loads = []
        for aid in mine:
            a = self.agents[aid]
            if a.external_busy:
                loads.append(AgentLoad(True, elapsed=now - a.external_since))
            elif a.state is AgentState.AVAILABLE:
                loads.append(AgentLoad(False))
            elif a.state is AgentState.ON_CALL:
                loads.append(AgentLoad(True, elapsed=now - a.state_since))
            elif a.state is AgentState.WRAP_UP:
                loads.append(AgentLoad(True, remaining=(a.wrap_up_until or now) - now))
            else:  # ringing for someone: about one cycle away
                loads.append(AgentLoad(True, remaining=cycle))
        ewt = est.estimate(ahead, loads, cycle, est.abandon_rate(e.queue), ring)
        return ewt, (len(mine), cycle, ahead)

    def _announce(
        self, e: _Entry, now: float, out: list[Action], repeat: bool, precomputed: _Estimate | None = None
    ) -> None:
        q = self.queues[e.queue]
        if q.announce_interval > 0:
            e.next_announce = now + q.announce_interval
            self._timer(e.next_announce, "announce", e.id)
        if e.ringing:
            return
        raw, fp = precomputed if precomputed is not None else self._estimate(e, now)
        pos = self._position(e)
        lang = e.call.language or q.language
        if not e.announced:
            value = raw
        else:
            slower = self.estimator.is_slower(e.last_fp, fp)
            value = self.estimator.smooth(raw, e.last_ewt, now - e.last_ewt_at, slower)
            changed = (
                pos != e.last_pos
                or (value is None) != (e.last_ewt is None)
                or (
                    value is not None and e.last_ewt is not None and abs(value - e.last_ewt) >= self.announce_min_change
                )
            )
            if not changed:
                return
        e.announced = True
        e.last_ewt, e.last_ewt_at, e.last_fp, e.last_pos = value, now, fp, pos
        out.append(Announce(e.id, pos, value, lang, q.callback_allowed))

    # ---- ringing

    def _dispatch(self, now: float, out: list[Action]) -> None:
        if not self._free or not self._order:
            return
        for k in self._order:
            if not self._free:
                return
            e = self._by_key[k]
            if e.ringing or e.cb_agent or e.not_before > now:
                continue
            req = self._req(e, now)
            queue = e.queue
            pref = self._preferred(e, req, now)
            if pref is not None:
                if pref.id not in self._free:
                    continue  # held for the preferred agent (busy now) for a while
                self._offer(e, [pref], now, out)
                continue
            elig = [a for a in self._free.values() if self._qualifies(a, queue, req)]
            if not elig:
                continue
            if e.tried:
                fresh = [a for a in elig if a.id not in e.tried]
                if fresh:
                    elig = fresh
                else:
                    e.tried.clear()
            self._offer(e, elig, now, out)

    def _preferred(self, e: _Entry, req: Mapping[str, int], now: float) -> Agent | None:
        """The sticky agent this entry waits for (only them offered), or None: anyone.
        Only within ``prefer_for`` seconds of entering, not for callbacks, not after that
        agent let it ring out, and only if the agent is staffed and qualifies."""
        aid = e.call.preferred_agent
        if not aid or e.is_callback or aid in e.tried or now >= e.entered_at + e.call.prefer_for:
            return None
        a = self.agents.get(aid)
        if a is None or a.state in (AgentState.LOGGED_OUT, AgentState.PAUSED):
            return None
        if not self._qualifies(a, e.queue, req):
            return None
        return a

    def _choose(self, q: QueueConfig, e: _Entry, elig: list[Agent]) -> list[Agent]:
        st = q.strategy
        if st is Strategy.RING_ALL:
            return sorted(elig, key=lambda a: a.id)
        if st is Strategy.LONGEST_IDLE:
            return [min(elig, key=lambda a: (a.idle_since, a.id))]
        if st is Strategy.FEWEST_CALLS:
            return [min(elig, key=lambda a: (a.calls_taken, a.idle_since, a.id))]
        if st is Strategy.LEAST_TALK_TIME:
            return [min(elig, key=lambda a: (a.total_talk_time, a.idle_since, a.id))]
        if st is Strategy.BEST_SKILL_THEN_LONGEST_IDLE:
            req = self._base_req(e)
            return [min(elig, key=lambda a: (-sum(a.skills.get(s, 0) for s in req), a.idle_since, a.id))]
        if st is Strategy.ROUND_ROBIN:
            last = self._rr.get(q.name)
            ordered = sorted(elig, key=lambda a: a.id)
            if last is not None:
                for a in ordered:
                    if a.id > last:
                        return [a]
            return [ordered[0]]
        if st is Strategy.RANDOM:
            return [self.rng.choice(sorted(elig, key=lambda a: a.id))]
        raise ValueError(st)

    def _offer(self, e: _Entry, elig: list[Agent], now: float, out: list[Action]) -> None:
        q = self.queues[e.queue]
        chosen = self._choose(q, e, elig)
        if e.is_callback:
            chosen = chosen[:1]  # a callback reserves exactly one agent
        if q.strategy is Strategy.ROUND_ROBIN:
            self._rr[q.name] = chosen[0].id
        ids = tuple(a.id for a in chosen)
        for a in chosen:
            a.current_call = e.id
            self._set_state(a, AgentState.RINGING, now)
        e.ringing = ids
        e.ring_started = now
        e.ring_deadline = now + q.ring_timeout
        self._timer(e.ring_deadline, "ring", e.id)
        if e.is_callback:
            e.cb_agent = ids[0]
            out.append(DialCallback(e.id, ids[0], e.number, e.attempts + 1, e.queue))
        else:
            out.append(RingAgents(e.id, e.queue, ids, q.ring_timeout))
        for aid in ids:
            self._event(now, EventKind.RING, e.queue, e.id, aid, callback=e.is_callback)

    def _ring_no_answer(self, e: _Entry, now: float, out: list[Action]) -> None:
        q = self.queues[e.queue]
        ringing, e.ringing = e.ringing, ()
        e.ring_deadline = None
        if e.is_callback:
            e.cb_agent = None
        out.append(CancelRing(e.id, ringing))
        for aid in ringing:
            a = self.agents[aid]
            e.tried.add(aid)
            a.missed_in_row += 1
            self._event(
                now,
                EventKind.RINGNOANSWER,
                e.queue,
                e.id,
                aid,
                ring=now - e.ring_started,
                missed_in_row=a.missed_in_row,
            )
            a.current_call = None
            if (
                q.rna_misses_before_pause > 0
                and a.missed_in_row >= q.rna_misses_before_pause
                and a.id not in self._pending_logout
            ):
                self._pending_pause.pop(a.id, None)
                self._pause(a, PauseReason.RING_NO_ANSWER, now, out)
            else:
                self._back_from_ring(a, now, out, already_cleared=True)
        self._leave_if_overdue(e, now, out)

    def _back_from_ring(self, a: Agent, now: float, out: list[Action], already_cleared: bool = False) -> None:
        """An agent rung for a call that went elsewhere: available again (or the
        pause/logout asked for while ringing)."""
        a.current_call = None
        if a.id in self._pending_logout:
            self._pending_logout.discard(a.id)
            self._set_state(a, AgentState.LOGGED_OUT, now)
            self._event(now, EventKind.LOGOUT, agent_id=a.id)
        elif a.id in self._pending_pause:
            self._pause(a, self._pending_pause.pop(a.id), now, out)
        else:
            self._set_state(a, AgentState.AVAILABLE, now)

    def _withdraw_ring(self, a: Agent, now: float, out: list[Action]) -> None:
        """The agent leaves while ringing (logout): stop ringing them for that call."""
        e = self._entries.get(a.current_call or "")
        if e is None or a.id not in e.ringing:
            return
        e.ringing = tuple(x for x in e.ringing if x != a.id)
        out.append(CancelRing(e.id, (a.id,)))
        a.current_call = None
        if not e.ringing:
            e.ring_deadline = None
            if e.is_callback:
                e.cb_agent = None

    # ---- after a call

    def _finish(self, conn: _Conn, who: Party | None, now: float, out: list[Action]) -> None:
        a = self.agents[conn.agent_id]
        talk = now - conn.answered_at
        a.calls_taken += 1
        a.total_talk_time += talk
        a.last_call_end = now
        a.current_call = None
        if who is not None:
            kind = EventKind.COMPLETE_CALLER if who is Party.CALLER else EventKind.COMPLETE_AGENT
            self._event(
                now,
                kind,
                conn.queue,
                conn.call_id,
                a.id,
                wait=conn.answered_at - conn.entered_at,
                talk=talk,
                callback=conn.is_callback,
            )
        self.estimator.observe_talk(conn.queue, conn.skills, talk)
        q = self.queues[conn.queue]
        wrap = a.wrap_up if a.wrap_up is not None else q.wrap_up
        self._after_call(a, wrap, now, out)

    def _after_call(self, a: Agent, wrap: float, now: float, out: list[Action]) -> None:
        if a.id in self._pending_logout:
            self._pending_logout.discard(a.id)
            self._set_state(a, AgentState.LOGGED_OUT, now)
            self._event(now, EventKind.LOGOUT, agent_id=a.id)
            return
        if a.id in self._pending_pause:
            self._pause(a, self._pending_pause.pop(a.id), now, out)
            return
        if wrap > 0:
            a.wrap_up_until = now + wrap
            self._set_state(a, AgentState.WRAP_UP, now)
            self._timer(a.wrap_up_until, "wrap", a.id)
            out.append(StartWrapUp(a.id, a.wrap_up_until))
        else:
            a.idle_since = now
            self._set_state(a, AgentState.AVAILABLE, now)

    def _end_wrap(self, a: Agent, now: float, out: list[Action]) -> None:
        a.idle_since = now
        self._set_state(a, AgentState.AVAILABLE, now)
        out.append(EndWrapUp(a.id))
