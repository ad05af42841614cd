"""The live ACD: one :class:`acd.engine.AcdEngine` driven by real calls.

:class:`AcdLive` owns the engine of a running PBX:

* at start it loads queues and agents (``pypbx.acdstore.load_engine_config``), restores the
  engine's snapshot from ``acd_state`` (callback slots, estimator, round-robin memory) and
  closes the callers a crash left in queue (``AcdEngine.close_interrupted``: an
  ``INTERRUPTED`` queue event each, their numbers in the callback list);
* it re-reads queues, queue numbers, agents and their states when the CLI changes the
  database (``PRAGMA data_version``, or the local API command ``agent_state``) and turns
  the differences into engine inputs (login, logout, pause, unpause, skills);
* it schedules :meth:`AcdEngine.tick` at :meth:`AcdEngine.next_deadline`, persists every
  :class:`acd.model.QueueEvent` (``append_queue_events``, in order, by one writer task)
  and saves the engine's snapshot (plus the callers waiting now, for crash repair);
* it carries out the engine's Actions: those about one call go to that call's
  :class:`pypbx.flows.queue.QueueCall` (through its session's event queue, so a call's steps
  never interleave), agent pauses go to the database, callbacks are dialled by
  :class:`pypbx.flows.queue.CallbackCall`;
* the front door asks it (:meth:`route`) where a worker's ``sip:acd-<token>@...`` ring leg
  goes: every registered contact of every agent being rung, in one fork;
* CallManager tells it about every call (:meth:`on_incoming`, :meth:`call_finished`):
  calls to a queue number and the feature codes (``*45`` log in/out, ``*46`` pause/unpause)
  are taken over here; direct calls of an agent's extension make the agent busy for the
  engine (``agent_busy`` / ``agent_free``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from acd.engine import AcdEngine
from acd.model import (
    Action,
    Agent,
    AgentState,
    Announce,
    CallbackFailed,
    CancelRing,
    Connect,
    DialCallback,
    EventKind,
    ExitEmpty,
    ExitFull,
    Overflow,
    Party,
    PauseAgent,
    PauseReason,
    QueueEvent,
    RingAgents,
    Timeout,
)
from pypbx import acdstore as S
from pypbx.db import Database

log = logging.getLogger(__name__)

#: How often the database is checked for changes made by the CLI.
RELOAD_INTERVAL = 0.5
#: The proxy's own ring timeout for a ring leg is the queue's plus this (the engine decides).
RING_GRACE = 5.0
#: Prefix of the Request-URI user of a worker's ring leg: ``sip:acd-<token>@front-door``.
RING_PREFIX = "acd-"
LIVE_STATE_KEY = "live_waiting"


class AcdLive:
    """The engine driver of one running PBX (see the module docstring)."""

    def __init__(self, db: Database, *, callmgr: Any = None,
                 contacts: Callable[[str], list] | None = None,
                 clock: Callable[[], float] = time.time,
                 prompts_dir: Path | str | None = None, moh: Path | str | None = None,
                 greeting: Iterable[str] = ("welcome",), recording_notice: bool = True,
                 answered_by: Callable[[str, tuple[str, ...]], str | None] | None = None,
                 reload_interval: float = RELOAD_INTERVAL) -> None:
        from pypbx.flows.queue import DEFAULT_MOH, PROMPTS_DIR
        self.db = db
        self.callmgr = callmgr
        self.contacts = contacts or (lambda ext: [])
        self.clock = clock
        self.prompts_dir = Path(prompts_dir) if prompts_dir else PROMPTS_DIR
        self.moh = Path(moh) if moh else DEFAULT_MOH
        self.greeting = tuple(greeting)
        self.recording_notice = recording_notice
        self.answered_by = answered_by
        self.reload_interval = reload_interval
        self.engine = AcdEngine()
        self.numbers: dict[str, str] = {}         # dialled number -> queue
        self.agent_ext: dict[str, str] = {}       # agent id -> extension it is logged in at
        self.calls: dict[str, Any] = {}           # engine call id -> QueueCall / CallbackCall
        self.sessions: dict[int, Any] = {}        # id(Call) -> QueueCall / FeatureCall
        self.rings: dict[str, tuple[str, tuple[str, ...], float]] = {}  # token -> (call, agents, timeout)
        self.busy: dict[int, list[str]] = {}      # id(Call) of a direct call -> agents it keeps busy
        self._events: list[QueueEvent] = []
        self._wake = asyncio.Event()
        self._flush_wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._dirty = False
        self._tasks: list[asyncio.Task] = []
        self._bg: set[asyncio.Task] = set()
        self._closing = False
        self._last_version: int | None = None
        self._sync_lock = asyncio.Lock()

    # ================================================================ life cycle

    async def start(self, background: bool = True) -> None:
        queues, agents = await S.load_engine_config(self.db)
        for q in queues:
            self.engine.add_queue(q)
        for a in agents:
            self.engine.add_agent(a)
        self.numbers = await S.queue_numbers(self.db)
        self.agent_ext = await S.agent_extensions(self.db)
        snap = await S.load_acd_state(self.db) or {}
        if snap:
            known = {k: v for k, v in snap.items()}
            known["callbacks"] = [c for c in snap.get("callbacks", []) if c.get("queue") in self.engine.queues]
            try:
                self.engine.restore(known)
            except Exception:
                log.exception("ACD snapshot could not be restored; starting fresh")
        await self._close_crashed(snap.get(LIVE_STATE_KEY) or [])
        self._dirty = True
        self._last_version = await self.db.data_version()
        if background:
            self._tasks = [asyncio.create_task(self._ticker(), name="acd-tick"),
                           asyncio.create_task(self._writer(), name="acd-writer"),
                           asyncio.create_task(self._reloader(), name="acd-reload")]
        log.info("ACD: %d queue(s), %d agent(s), %d number(s), %d callback slot(s) restored",
                 len(self.engine.queues), len(self.engine.agents), len(self.numbers),
                 sum(1 for w in self.engine.waiting() if w.is_callback))

    async def _close_crashed(self, rows: list[dict]) -> None:
        """Callers the previous run left in queue (it crashed): INTERRUPTED, called back."""
        if not rows:
            return
        now = self.clock()
        closed = AcdEngine.close_interrupted(rows, now)
        for c in closed:
            self._events.append(QueueEvent(now, EventKind.INTERRUPTED, c.queue, c.call_id,
                                           data={"wait": c.wait, "position": c.position, "number": c.number,
                                                 "reason": "pbx restarted"}))
            await self._callback_row(c.number, c.queue, c.call_id)
        log.warning("ACD: %d caller(s) left in queue by the previous run closed as interrupted", len(closed))
        await self.flush()

    async def close(self) -> None:
        """Stop: callers still waiting are closed (INTERRUPTED, kept as callback slots and
        in the callback list) and hung up; the snapshot is saved; tasks stop."""
        if self._closing:
            await self.flush()      # again at the very end: what calls ending since then logged
            return
        self._closing = True
        now = self.clock()
        closed = self.engine.close_waiting_calls(now, as_callbacks=True)
        for c in closed:
            await self._callback_row(c.number, c.queue, c.call_id)
            qc = self.calls.get(c.call_id)
            if qc is not None:
                qc.post(_Closing())
        self._apply([])
        await self.flush()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    async def _callback_row(self, number: str, queue: str, call_id: str | None) -> None:
        if not number:
            return
        try:
            await S.request_callback(self.db, number, queue, call_id, now=self.clock())
        except S.AcdError as exc:
            log.warning("callback for %s in %s not listed: %s", number, queue, exc)

    # ================================================================ engine I/O

    def now(self) -> float:
        return self.clock()

    def run(self, fn_name: str, *args: Any) -> list[Action]:
        """Call ``engine.<fn_name>(*args, now)`` and carry out what it decides."""
        fn = getattr(self.engine, fn_name)
        actions = fn(*args, self.clock())
        self._apply(actions)
        return actions

    def _apply(self, actions: list[Action]) -> None:
        evs = self.engine.drain_events()
        if evs:
            self._events.extend(evs)
        self._dirty = True
        self._flushed.clear()
        self._flush_wake.set()
        for a in actions:
            try:
                self._carry_out(a)
            except Exception:
                log.exception("ACD action %r failed", a)
        self._wake.set()

    def _carry_out(self, a: Action) -> None:
        if isinstance(a, RingAgents):
            token = uuid.uuid4().hex[:16]
            self.rings[token] = (a.call_id, a.agent_ids, a.timeout)
            self._post(a.call_id, (token, a))
        elif isinstance(a, (CancelRing, Connect, Announce, Overflow, Timeout, ExitEmpty, ExitFull)):
            self._post(a.call_id, a)
        elif isinstance(a, PauseAgent):
            if a.reason is PauseReason.RING_NO_ANSWER:
                self._spawn(self._save_pause(a.agent_id, a.reason))
        elif isinstance(a, DialCallback):
            self._spawn(self._dial_callback(a))
        elif isinstance(a, CallbackFailed):
            self._spawn(self._callback_done(a.call_id, a.number, a.queue, "failed", f"{a.attempts} attempt(s)"))

    def _post(self, call_id: str, item: Any) -> None:
        qc = self.calls.get(call_id)
        if qc is None:
            log.debug("ACD action for a call no longer here: %s %r", call_id, item)
            return
        qc.post(item)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _save_pause(self, agent_id: str, reason: PauseReason) -> None:
        try:
            await S.save_agent_state(self.db, agent_id, AgentState.PAUSED, reason, now=self.clock(),
                                     kind="PAUSE", reason=reason.value, by="acd")
        except Exception:
            log.exception("saving the pause of agent %s", agent_id)

    def snapshot(self) -> dict:
        snap = self.engine.snapshot()
        now = self.clock()
        snap[LIVE_STATE_KEY] = [
            {"call_id": w.call_id, "queue": w.queue, "number": w.number, "entered_at": w.entered_at,
             "position": w.position}
            for w in self.engine.waiting(now=now) if not w.is_callback]
        return snap

    async def flush(self) -> None:
        """Write pending queue events and the snapshot now."""
        evs, self._events = self._events, []
        if evs:
            await S.append_queue_events(self.db, evs)
        if self._dirty:
            self._dirty = False
            await S.save_acd_state(self.db, self.snapshot())
        if not self._events:
            self._flushed.set()

    async def _writer(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("ACD: writing queue events failed; will retry")
                await asyncio.sleep(0.5)
                self._flush_wake.set()

    def poke(self) -> None:
        """Re-read the next deadline (tests that move an injected clock call this)."""
        self._wake.set()

    async def tick(self) -> None:
        self._apply(self.engine.tick(self.clock()))

    async def _ticker(self) -> None:
        while True:
            dl = self.engine.next_deadline()
            delay = None if dl is None else dl - self.clock()
            if delay is not None and delay <= 0:
                await self.tick()
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    # ================================================================ database sync

    async def _reloader(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                v = await self.db.data_version()
                if v != self._last_version:
                    self._last_version = v
                    await self.sync()
            except Exception:
                log.exception("ACD: reloading queues and agents failed")

    async def sync(self) -> None:
        """Bring the engine in line with the database (CLI changes)."""
        async with self._sync_lock:
            queues, agents = await S.load_engine_config(self.db)
            self.numbers = await S.queue_numbers(self.db)
            self.agent_ext = await S.agent_extensions(self.db)
        eng = self.engine
        for q in queues:
            if eng.queues.get(q.name) != q:
                eng.add_queue(q)
        seen = set()
        for a in agents:
            seen.add(a.id)
            cur = eng.agents.get(a.id)
            if cur is None:
                eng.add_agent(Agent(id=a.id, name=a.name, skills=dict(a.skills), wrap_up=a.wrap_up))
                cur = eng.agents[a.id]
            else:
                cur.name = a.name
                cur.wrap_up = a.wrap_up
                if dict(cur.skills) != dict(a.skills):
                    self.run("set_skills", a.id, dict(a.skills))
            self._sync_state(cur, a.state, a.pause_reason)
        for aid, cur in eng.agents.items():
            if aid not in seen and cur.state is not AgentState.LOGGED_OUT:
                self.run("agent_logout", aid)

    def _sync_state(self, cur: Agent, want: AgentState, reason: PauseReason | None) -> None:
        if want is AgentState.LOGGED_OUT:
            if cur.state is not AgentState.LOGGED_OUT:
                self.run("agent_logout", cur.id)
            return
        if cur.state is AgentState.LOGGED_OUT:
            self.run("agent_login", cur.id)
        if want is AgentState.PAUSED:
            if not (cur.state is AgentState.PAUSED and cur.pause_reason is reason):
                self.run("agent_pause", cur.id, reason or PauseReason.OTHER)
        elif cur.state is AgentState.PAUSED:
            self.run("agent_unpause", cur.id)

    def agent_at(self, extension: str) -> str | None:
        for aid, ext in self.agent_ext.items():
            if ext == extension:
                return aid
        return None

    # ================================================================ the front door

    def route(self, request: Any) -> Any:
        """A worker's ring leg ``sip:acd-<token>@...``: fork to every registered contact of
        the agents being rung (None: not ours)."""
        from sip.proxy import RouteDecision
        user = request.uri.user or ""
        if not user.startswith(RING_PREFIX):
            return None
        ring = self.rings.get(user[len(RING_PREFIX):])
        if ring is None or request.method != "INVITE":
            return RouteDecision.reject(481 if request.method != "INVITE" else 404)
        _, agents, timeout = ring
        targets = []
        for aid in agents:
            ext = self.agent_ext.get(aid)
            if ext:
                targets.extend(self.contacts(ext))
        if not targets:
            return RouteDecision.reject(480, "Agent Not Registered")
        return RouteDecision.fork(targets, ring_timeout=timeout + RING_GRACE)

    def who_answered(self, token: str, sip_call_id: str) -> str | None:
        ring = self.rings.get(token)
        if ring is None:
            return None
        _, agents, _ = ring
        if len(agents) == 1:
            return agents[0]
        if self.answered_by is not None:
            try:
                aid = self.answered_by(sip_call_id, tuple(self.agent_ext.get(a, "") for a in agents))
            except Exception:
                aid = None
            if aid:
                # answered_by gives the extension that answered
                for a in agents:
                    if self.agent_ext.get(a) == aid or a == aid:
                        return a
        log.warning("ACD: cannot tell which of %s answered; taking %s", agents, agents[0])
        return agents[0]

    # ================================================================ CallManager's hooks

    async def on_incoming(self, s: Any, ev: Any) -> bool:
        """A phone's call reached a worker. True: taken over (queue number, feature code)."""
        from pypbx.flows.queue import FeatureCall, QueueCall
        callee = s.callee
        queue = self.numbers.get(callee)
        if queue is not None and queue in self.engine.queues and not self._closing:
            qc = QueueCall(self, s, queue)
            self.sessions[id(s)] = qc
            self.callmgr.hand_over(s, qc)
            await qc.start()
            return True
        if callee.startswith("*45") or callee.startswith("*46"):
            fc = FeatureCall(self, s)
            self.sessions[id(s)] = fc
            self.callmgr.hand_over(s, fc)
            await fc.start()
            return True
        busy = [a for a in (self.agent_at(s.caller), self.agent_at(callee)) if a]
        if busy:
            self.busy[id(s)] = busy
            for aid in busy:
                if aid in self.engine.agents:
                    self.run("agent_busy", aid)
        return False

    def call_finished(self, s: Any, disposition: Any, side: str) -> None:
        """Every session's end (CallManager._finish)."""
        obj = self.sessions.pop(id(s), None)
        if obj is not None:
            obj.finished(disposition, side)
        for aid in self.busy.pop(id(s), []):
            if aid in self.engine.agents and not any(aid in v for v in self.busy.values()):
                self.run("agent_free", aid)

    def call_transferred(self, s: Any, side: str, frm: str, to: str) -> None:
        """CallManager completed a transfer in session ``s`` (``side`` handed its place to
        ``to``). A connected queue call whose agent transferred it: TRANSFER, the agent is
        free (wrap-up) and the call is no longer the queue's (no COMPLETE_* at its end)."""
        obj = self.sessions.get(id(s))
        transferred = getattr(obj, "transferred", None)
        if transferred is not None:
            transferred(side, frm, to)

    def register(self, call_id: str, obj: Any) -> None:
        self.calls[call_id] = obj

    def forget(self, call_id: str) -> None:
        self.calls.pop(call_id, None)
        for tok in [t for t, r in self.rings.items() if r[0] == call_id]:
            self.rings.pop(tok, None)

    def party(self, side: str) -> Party:
        return Party.CALLER if side == "caller" else Party.AGENT

    # ================================================================ callbacks

    async def callback_requested(self, call_id: str, number: str, queue: str) -> None:
        self.run("callback_requested", call_id, number)
        await self._callback_row(number, queue, call_id)

    async def _dial_callback(self, a: DialCallback) -> None:
        from pypbx.flows.queue import CallbackCall
        await self._callback_update(a.call_id, a.number, a.queue, "dialing", agent=a.agent_id)
        cb = CallbackCall(self, a)
        self.calls[a.call_id] = cb
        await cb.run()

    async def _callback_update(self, call_id: str, number: str, queue: str, status: str, **kw: Any) -> None:
        try:
            rows = await S.list_callbacks(self.db, "pending", queue)
            row = next((r for r in rows if r.call_id == call_id), None) or \
                next((r for r in rows if r.number == number), None)
            if row is not None:
                await S.update_callback(self.db, row.id, status, now=self.clock(), **kw)
        except Exception:
            log.exception("updating callback %s (%s)", call_id, number)

    async def _callback_done(self, call_id: str, number: str, queue: str, status: str, result: str) -> None:
        await self._callback_update(call_id, number, queue, status, result=result)

    # ================================================================ local API

    def _service_line(self, call_id: str) -> str | None:
        """The DID's service line of a waiting call (what the agent's screen pop shows)."""
        rec = getattr(getattr(self.calls.get(call_id), "s", None), "rec", None)
        return getattr(rec, "service_line", None) or None

    def queue_status(self, queue: str) -> dict:
        if queue not in self.engine.queues:
            raise ValueError(f"queue {queue} not found")
        now = self.clock()
        q = self.engine.queues[queue]
        waiting = [{"call_id": w.call_id, "number": w.number, "position": w.position,
                    "wait": round(w.wait, 1), "priority": w.priority, "is_callback": w.is_callback,
                    "ringing": list(w.ringing), "service_line": self._service_line(w.call_id)}
                   for w in self.engine.waiting(queue, now)]
        agents = []
        for a in sorted(self.engine.agents.values(), key=lambda a: a.id):
            if not AcdEngine._qualifies(a, queue, q.required_skills):
                continue
            agents.append({"id": a.id, "name": a.name, "state": a.state.value,
                           "pause_reason": a.pause_reason.value if a.pause_reason else None,
                           "extension": self.agent_ext.get(a.id), "since": round(now - a.state_since, 1),
                           "calls_taken": a.calls_taken, "external_busy": a.external_busy})
        ewt = None
        live = [w for w in waiting if not w["is_callback"]]
        if live:
            ewt = self.engine.estimate_wait(live[-1]["call_id"], now)
        return {"queue": queue, "waiting": waiting, "agents": agents, "ewt": ewt}

    async def agent_state(self, agent: str) -> dict:
        await self.sync()
        a = self.engine.agents.get(agent)
        if a is None:
            return {"agent": agent, "known": False}
        return {"agent": agent, "known": True, "state": a.state.value,
                "pause_reason": a.pause_reason.value if a.pause_reason else None,
                "extension": self.agent_ext.get(agent)}


class _Closing:
    """Posted to a queued call when the PBX stops."""
