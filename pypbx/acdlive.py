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
* the engine is driven through typed methods, one per engine entry point (``agent_login``,
  ``call_arrived``, ``ring_answered``, ``caller_abandoned``...): each calls the engine with
  the time now and carries out what it decides;
* it carries out the engine's Actions: those about one call are posted, as orders of the
  call layer's closed input union (:data:`pypbx.call.AcdOrder`: :class:`pypbx.call.RingOrder`
  and the engine's own Action dataclasses), to that call's :class:`pypbx.flows.queue.QueueCall`
  (through its call's input queue, so a call's steps never interleave), agent pauses go to
  the database, callbacks are dialled by :class:`pypbx.flows.callback.CallbackCall`;
* the front door asks it (:meth:`route`) where a worker's ``sip:acd-<token>@...`` ring leg
  goes: every registered contact of every agent being rung, in one fork;
* CallManager tells it about every call (:meth:`on_incoming`, :meth:`call_finished`):
  calls to a queue number and the feature codes (``*45`` log in/out, ``*46`` pause/unpause,
  :class:`pypbx.flows.features.FeatureCall`) are taken over here; direct calls of an
  agent's extension make the agent busy for the engine (``agent_busy`` / ``agent_free``);
* the front line (IVR, DIDs, ring groups' ``then``) and the trunks put a caller in a queue
  with :meth:`enter_queue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple, NotRequired, Protocol, TypedDict

from acd.engine import AcdEngine
from acd.model import (
    Action,
    Agent,
    AgentState,
    Announce,
    CallbackFailed,
    Caller,
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
from media import protocol as P
from pypbx import acdstore as S
from pypbx import hours as H
from pypbx import missed as M
from pypbx.call.flow import AcdOrder, CallInput, Closing, Flow, RingOrder
from pypbx.call.manager import CallManager, NoMediaWorker
from pypbx.call.session import Call
from pypbx.calllog import Disposition
from pypbx.changes import ChangeWatcher, DbChanged
from pypbx.db import Database
from pypbx.dids import did_priority
from pypbx.events import EventBus, from_queue_event
from pypbx.flows.callback import CallbackCall
from pypbx.flows.features import FeatureCall
from pypbx.flows.player import DEFAULT_MOH, PROMPTS_DIR
from pypbx.flows.queue import QueueCall
from pypbx.jsontypes import JSON
from pypbx.numbers import e164
from sip.message import Request
from sip.proxy import RouteDecision
from sip.transaction import Addr

log = logging.getLogger(__name__)

#: How often the database is checked for changes made by the CLI.
RELOAD_INTERVAL = 0.5
#: The proxy's own ring timeout for a ring leg is the queue's plus this (the engine decides).
RING_GRACE = 5.0
#: Prefix of the Request-URI user of a worker's ring leg: ``sip:acd-<token>@front-door``.
RING_PREFIX = "acd-"
LIVE_STATE_KEY = "live_waiting"
#: Engine call ids of the missed-caller worklist's automatic callbacks: ``missed-<task>-<rand>``.
MISSED_PREFIX = "missed-"
#: Their priority: below every live caller's (live callers always go first).
MISSED_PRIORITY = -1000
#: Seconds between two looks at the automatic callbacks (opening hours begin and end).
MISSED_SYNC_INTERVAL = 30.0


def _objects(value: JSON) -> list[dict[str, JSON]]:
    """The objects of a JSON list (the snapshot's lists of records; anything else: none)."""
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


class WaitingStatus(TypedDict):
    """A caller waiting in a queue (``queue_status``)."""

    call_id: str
    number: str
    position: int
    wait: float
    priority: int
    is_callback: bool
    ringing: list[str]
    service_line: str | None


class QueueAgentStatus(TypedDict):
    """An agent qualified for a queue (``queue_status``)."""

    id: str
    name: str
    state: str
    pause_reason: str | None
    extension: str | None
    since: float
    calls_taken: int
    external_busy: bool


class QueueStatus(TypedDict):
    """The local API's ``queue_status`` reply."""

    queue: str
    waiting: list[WaitingStatus]
    agents: list[QueueAgentStatus]
    ewt: float | None


class AgentStatus(TypedDict):
    """The local API's ``agent_state`` reply (an unknown agent: ``agent`` and ``known`` only)."""

    agent: str
    known: bool
    state: NotRequired[str]
    pause_reason: NotRequired[str | None]
    extension: NotRequired[str | None]


#: Feature codes taken over here (pypbx.flows.features).
FEATURE_CODES = ("*45", "*46")


class Ring(NamedTuple):
    """A ring leg in progress: the front door forks ``sip:acd-<token>@...`` to these agents."""

    call_id: str
    agent_ids: tuple[str, ...]
    timeout: float


class OrderTaker(Protocol):
    """A live call the engine gives orders to (a queue call, a callback)."""

    def post(self, order: CallInput) -> None: ...


class AcdLive:
    """The engine driver of one running PBX (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        callmgr: CallManager | None = None,
        contacts: Callable[[str], list[tuple[str, Addr]]] | None = None,
        clock: Callable[[], float] = time.time,
        prompts_dir: Path | str | None = None,
        moh: Path | str | None = None,
        greeting: Iterable[str] = ("welcome",),
        recording_notice: bool = True,
        answered_by: Callable[[str, tuple[str, ...]], str | None] | None = None,
        reload_interval: float = RELOAD_INTERVAL,
        changes: ChangeWatcher | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.db = db
        self.callmgr = callmgr
        self.contacts: Callable[[str], list[tuple[str, Addr]]] = contacts or (lambda ext: [])
        self.clock = clock
        self.prompts_dir = Path(prompts_dir) if prompts_dir else PROMPTS_DIR
        self.moh = Path(moh) if moh else DEFAULT_MOH
        self.greeting = tuple(greeting)
        self.recording_notice = recording_notice
        self.answered_by = answered_by
        self.reload_interval = reload_interval
        self.changes = changes  # pypbx.changes.ChangeWatcher (None: a private one)
        self.events = events  # pypbx.events.EventBus: the queue events are published
        self.engine = AcdEngine()
        self.numbers: dict[str, str] = {}  # dialled number -> queue
        self.agent_ext: dict[str, str] = {}  # agent id -> extension it is logged in at
        self.calls: dict[str, OrderTaker] = {}  # engine call id -> QueueCall / CallbackCall
        self.sessions: dict[int, Flow] = {}  # id(Call) -> QueueCall / FeatureCall
        self.rings: dict[str, Ring] = {}  # token -> the ring leg's call and agents
        self.busy: dict[int, list[str]] = {}  # id(Call) of a direct call -> agents it keeps busy
        self._events: list[QueueEvent] = []
        self._wake = asyncio.Event()
        self._flush_wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._dirty = False
        self._tasks: list[asyncio.Task[None]] = []
        self._bg: set[asyncio.Task[None]] = set()
        self._closing = False
        self._sync_lock = asyncio.Lock()
        self.worklist: M.Worklist | None = None  # the missed-caller worklist (automatic callbacks)
        self._missed_lock = asyncio.Lock()

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
            known = dict(snap)
            callbacks: list[JSON] = [
                c for c in _objects(snap.get("callbacks", [])) if c.get("queue") in self.engine.queues
            ]
            known["callbacks"] = callbacks
            try:
                self.engine.restore(known)
            except Exception:
                log.exception("ACD snapshot could not be restored; starting fresh")
        await self._close_crashed(_objects(snap.get(LIVE_STATE_KEY) or []))
        self._dirty = True
        self._watch = self.changes or ChangeWatcher(self.db, self.reload_interval)
        if self.changes is None:
            await self._watch.prime()
        self._watch.subscribe("ACD queues and agents", self._db_changed)
        if background:
            self._tasks = [
                asyncio.create_task(self._ticker(), name="acd-tick"),
                asyncio.create_task(self._writer(), name="acd-writer"),
            ]
            if self.changes is None:
                self._tasks.append(asyncio.create_task(self._watch.run(), name="acd-reload"))
        log.info(
            "ACD: %d queue(s), %d agent(s), %d number(s), %d callback slot(s) restored",
            len(self.engine.queues),
            len(self.engine.agents),
            len(self.numbers),
            sum(1 for w in self.engine.waiting() if w.is_callback),
        )

    async def _close_crashed(self, rows: list[dict[str, JSON]]) -> None:
        """Callers the previous run left in queue (it crashed): INTERRUPTED, called back."""
        if not rows:
            return
        now = self.clock()
        closed = AcdEngine.close_interrupted(rows, now)
        for c in closed:
            self._events.append(
                QueueEvent(
                    now,
                    EventKind.INTERRUPTED,
                    c.queue,
                    c.call_id,
                    data={"wait": c.wait, "position": c.position, "number": c.number, "reason": "pbx restarted"},
                )
            )
            self._publish(self._events[-1:])
            await self._callback_row(c.number, c.queue, c.call_id)
        log.warning("ACD: %d caller(s) left in queue by the previous run closed as interrupted", len(closed))
        await self.flush()

    async def close(self) -> None:
        """Stop: callers still waiting are closed (INTERRUPTED, kept as callback slots and
        in the callback list) and hung up; the snapshot is saved; tasks stop."""
        if self._closing:
            await self.flush()  # again at the very end: what calls ending since then logged
            return
        self._closing = True
        now = self.clock()
        closed = self.engine.close_waiting_calls(now, as_callbacks=True)
        for c in closed:
            await self._callback_row(c.number, c.queue, c.call_id)
            qc = self.calls.get(c.call_id)
            if qc is not None:
                qc.post(Closing())
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

    # -- the engine's entry points: each calls the engine with the time now and carries
    # -- out what it decides (the Actions are returned too)

    def set_skills(self, agent_id: str, skills: Mapping[str, int]) -> list[Action]:
        return self._apply(self.engine.set_skills(agent_id, skills, self.clock()))

    def agent_login(self, agent_id: str) -> list[Action]:
        return self._apply(self.engine.agent_login(agent_id, self.clock()))

    def agent_logout(self, agent_id: str) -> list[Action]:
        return self._apply(self.engine.agent_logout(agent_id, self.clock()))

    def agent_pause(self, agent_id: str, reason: PauseReason) -> list[Action]:
        return self._apply(self.engine.agent_pause(agent_id, reason, self.clock()))

    def agent_unpause(self, agent_id: str) -> list[Action]:
        return self._apply(self.engine.agent_unpause(agent_id, self.clock()))

    def agent_busy(self, agent_id: str) -> list[Action]:
        """The agent is on a call the ACD did not give (a direct call)."""
        return self._apply(self.engine.agent_busy(agent_id, self.clock()))

    def agent_free(self, agent_id: str) -> list[Action]:
        return self._apply(self.engine.agent_free(agent_id, self.clock()))

    def call_arrived(self, caller: Caller, queue: str) -> list[Action]:
        return self._apply(self.engine.call_arrived(caller, queue, self.clock()))

    def ring_answered(self, call_id: str, agent_id: str) -> list[Action]:
        """``agent_id`` answered the ring leg of ``call_id`` (a ``Connect`` if still wanted)."""
        return self._apply(self.engine.ring_answered(call_id, agent_id, self.clock()))

    def ring_timeout(self, call_id: str) -> list[Action]:
        """The ring leg of ``call_id`` was not answered (or failed): ring-no-answer."""
        return self._apply(self.engine.ring_timeout(call_id, self.clock()))

    def ring_failed(self, call_id: str, agent_id: str, reason: str = "") -> list[Action]:
        """The ring of ``agent_id`` for ``call_id`` failed, not the agent's miss."""
        return self._apply(self.engine.ring_failed(call_id, agent_id, self.clock(), reason))

    def call_ended(self, call_id: str, who: Party) -> list[Action]:
        """A connected queue call (or callback) ended; ``who`` hung up."""
        return self._apply(self.engine.call_ended(call_id, who, self.clock()))

    def agent_transferred(self, call_id: str, target: str) -> list[Action]:
        """The agent of connected queue call ``call_id`` transferred it to ``target``
        (the engine's ``call_transferred``: TRANSFER, the agent freed)."""
        return self._apply(self.engine.call_transferred(call_id, target, self.clock()))

    def caller_abandoned(self, call_id: str) -> list[Action]:
        return self._apply(self.engine.caller_abandoned(call_id, self.clock()))

    def callback_answered(self, call_id: str) -> list[Action]:
        return self._apply(self.engine.callback_answered(call_id, self.clock()))

    def callback_failed(self, call_id: str, reason: str = "") -> list[Action]:
        return self._apply(self.engine.callback_failed(call_id, self.clock(), reason))

    def _apply(self, actions: list[Action]) -> list[Action]:
        evs = self.engine.drain_events()
        if evs:
            self._events.extend(evs)
            self._publish(evs)
        self._dirty = True
        self._flushed.clear()
        self._flush_wake.set()
        for a in actions:
            try:
                self._carry_out(a)
            except Exception:
                log.exception("ACD action %r failed", a)
        self._wake.set()
        return actions

    def _carry_out(self, a: Action) -> None:
        if isinstance(a, RingAgents):
            token = uuid.uuid4().hex[:16]
            self.rings[token] = Ring(a.call_id, a.agent_ids, a.timeout)
            self._post(a.call_id, RingOrder(token, a))
        elif isinstance(a, (CancelRing, Connect, Announce, Overflow, Timeout, ExitEmpty, ExitFull)):
            self._post(a.call_id, a)
        elif isinstance(a, PauseAgent):
            if a.reason is PauseReason.RING_NO_ANSWER:
                self._spawn(self._save_pause(a.agent_id, a.reason))
        elif isinstance(a, DialCallback):
            self._spawn(self._dial_callback(a))
        elif isinstance(a, CallbackFailed):
            self._spawn(self.callback_closed(a.call_id, a.number, a.queue, "failed", f"{a.attempts} attempt(s)"))

    def _post(self, call_id: str, order: AcdOrder) -> None:
        qc = self.calls.get(call_id)
        if qc is None:
            log.debug("ACD action for a call no longer here: %s %r", call_id, order)
            return
        qc.post(order)

    def _spawn(self, coro: Coroutine[object, None, None]) -> None:
        t = asyncio.create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _save_pause(self, agent_id: str, reason: PauseReason) -> None:
        try:
            await S.save_agent_state(
                self.db,
                agent_id,
                AgentState.PAUSED,
                reason,
                now=self.clock(),
                kind="PAUSE",
                reason=reason.value,
                by="acd",
            )
        except Exception:
            log.exception("saving the pause of agent %s", agent_id)

    def snapshot(self) -> dict[str, JSON]:
        snap: dict[str, JSON] = self.engine.snapshot()
        now = self.clock()
        snap[LIVE_STATE_KEY] = [
            {
                "call_id": w.call_id,
                "queue": w.queue,
                "number": w.number,
                "entered_at": w.entered_at,
                "position": w.position,
            }
            for w in self.engine.waiting(now=now)
            if not w.is_callback
        ]
        return snap

    def _publish(self, evs: list[QueueEvent]) -> None:
        """On the event stream as they happen (the books: ``flush`` writes them, in order)."""
        if self.events is not None:
            for e in evs:
                self.events.publish(from_queue_event(e))

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
            except TimeoutError:
                pass

    # ================================================================ database sync

    async def _db_changed(self, change: DbChanged) -> None:
        """The change watcher saw the CLI commit: bring the engine in line."""
        await self.sync()

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
                    self.set_skills(a.id, dict(a.skills))
            self._sync_state(cur, a.state, a.pause_reason)
        for aid, cur in eng.agents.items():
            if aid not in seen and cur.state is not AgentState.LOGGED_OUT:
                self.agent_logout(aid)

    def _sync_state(self, cur: Agent, want: AgentState, reason: PauseReason | None) -> None:
        if want is AgentState.LOGGED_OUT:
            if cur.state is not AgentState.LOGGED_OUT:
                self.agent_logout(cur.id)
            return
        if cur.state is AgentState.LOGGED_OUT:
            self.agent_login(cur.id)
        if want is AgentState.PAUSED:
            if not (cur.state is AgentState.PAUSED and cur.pause_reason is reason):
                self.agent_pause(cur.id, reason or PauseReason.OTHER)
        elif cur.state is AgentState.PAUSED:
            self.agent_unpause(cur.id)

    def agent_at(self, extension: str) -> str | None:
        for aid, ext in self.agent_ext.items():
            if ext == extension:
                return aid
        return None

    # ================================================================ the front door

    def route(self, request: Request) -> RouteDecision | None:
        """A worker's ring leg ``sip:acd-<token>@...``: fork to every registered contact of
        the agents being rung (None: not ours)."""
        user = request.uri.user or ""
        if not user.startswith(RING_PREFIX):
            return None
        ring = self.rings.get(user[len(RING_PREFIX) :])
        if ring is None or request.method != "INVITE":
            return RouteDecision.reject(481 if request.method != "INVITE" else 404)
        _, agents, timeout = ring
        targets: list[tuple[str, Addr]] = []
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

    async def on_incoming(self, s: Call, ev: P.Incoming) -> bool:
        """A phone's call reached a worker. True: taken over (queue number, feature code)."""
        callee = s.callee
        queue = self.numbers.get(callee)
        if queue is not None and queue in self.engine.queues and not self._closing:
            qc = QueueCall(self, s, queue)
            self._take(s, qc)
            await qc.start()
            return True
        if callee.startswith(FEATURE_CODES):
            fc = FeatureCall(self, s)
            self._take(s, fc)
            await fc.start()
            return True
        busy = [a for a in (self.agent_at(s.caller), self.agent_at(callee)) if a]
        if busy:
            self.busy[id(s)] = busy
            for aid in busy:
                if aid in self.engine.agents:
                    self.agent_busy(aid)
        return False

    def _take(self, s: Call, flow: Flow) -> None:
        assert self.callmgr is not None
        self.sessions[id(s)] = flow
        self.callmgr.hand_over(s, flow)

    def has_queue(self, queue: str) -> bool:
        return queue in self.engine.queues

    def accepts(self, queue: str) -> bool:
        """A caller can be put in ``queue`` now (it exists; the PBX is not stopping)."""
        return queue in self.engine.queues and not self._closing

    async def enter_queue(
        self, s: Call, queue: str, *, answered: bool = False, lang: str | None = None, via: str = ""
    ) -> QueueCall:
        """Put the caller of ``s`` in ``queue`` (the front line, the trunks): a caller not
        answered yet is answered first; an answered one (the IVR, ``via``; ``lang`` the
        language chosen there) goes straight in.

        The urgent line: the caller's priority is the highest of its DID's (``pypbx did
        --priority``), the route rules' and IVR options' it went through (``s.priority``)
        and -- in the engine -- the queue's own entry priority."""
        s.priority = max(s.priority, await self._did_priority(s))
        qc = QueueCall(self, s, queue, lang=lang or s.language, priority=s.priority)
        self._take(s, qc)
        if answered:
            await qc.start_answered(via)
        else:
            await qc.start()
        return qc

    async def _did_priority(self, s: Call) -> int:
        """The priority of the DID an inbound call came in on (0: none, or not a DID call)."""
        did = s.trunk.did if s.trunk is not None else None
        if did is None:
            return 0
        try:
            return await did_priority(self.db, did.number)
        except Exception:
            log.exception("reading the priority of DID %s (taken as 0)", did.number)
            return 0

    def call_finished(self, s: Call, disposition: Disposition, side: str) -> None:
        """Every call's end (CallManager.finish)."""
        obj = self.sessions.pop(id(s), None)
        if obj is not None:
            obj.finished(disposition, side)
        for aid in self.busy.pop(id(s), []):
            if aid in self.engine.agents and not any(aid in v for v in self.busy.values()):
                self.agent_free(aid)

    def call_transferred(self, s: Call, side: str, frm: str, to: str) -> None:
        """CallManager completed a transfer in call ``s`` (``side`` handed its place to
        ``to``). A connected queue call whose agent transferred it: TRANSFER, the agent is
        free (wrap-up) and the call is no longer the queue's (no COMPLETE_* at its end)."""
        obj = self.sessions.get(id(s))
        if obj is not None:
            obj.transferred(side, frm, to)

    def register(self, call_id: str, obj: OrderTaker) -> None:
        """``obj`` takes the engine's orders about ``call_id``."""
        self.calls[call_id] = obj

    def unregister(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    def forget(self, call_id: str) -> None:
        """``call_id`` is gone: no more orders, its ring legs are not routed any more."""
        self.calls.pop(call_id, None)
        for tok in [t for t, r in self.rings.items() if r.call_id == call_id]:
            self.rings.pop(tok, None)

    def add_ring(self, token: str, call_id: str, agent_ids: tuple[str, ...], timeout: float) -> None:
        """Route ``sip:acd-<token>@...`` to ``agent_ids`` (a callback's ring leg)."""
        self.rings[token] = Ring(call_id, agent_ids, timeout)

    def party(self, side: str) -> Party:
        return Party.CALLER if side == "caller" else Party.AGENT

    # ================================================================ callbacks

    async def callback_requested(self, call_id: str, number: str, queue: str) -> None:
        """The caller of ``call_id`` asked to be called back at ``number`` (the engine keeps
        its place as a callback slot; the callback list gets a row). A number keyed in national
        form (0612345678) is kept E.164, like every stored number: one number, one slot."""
        number = e164(number, self.db.region)
        self._apply(self.engine.callback_requested(call_id, number, self.clock()))
        await self._callback_row(number, queue, call_id)

    async def _dial_callback(self, a: DialCallback) -> None:
        await self._callback_update(a.call_id, a.number, a.queue, "dialing", agent=a.agent_id)
        cm = self.callmgr
        if cm is None:
            self.ring_timeout(a.call_id)
            return

        def flow(call: Call) -> CallbackCall:
            cb = CallbackCall(self, a, call)
            self.calls[a.call_id] = cb  # the engine's orders about the callback go to it
            return cb

        try:
            await cm.place(flow, what="callback")
        except NoMediaWorker:
            self.callback_failed(a.call_id, "no media worker")
        except Exception:
            log.exception("callback %s could not start", a.call_id)

    async def _callback_update(
        self, call_id: str, number: str, queue: str, status: str, *, agent: str | None = None, result: str | None = None
    ) -> None:
        if call_id.startswith(MISSED_PREFIX):  # the worklist's: no callback list row (the task has it)
            return
        try:
            # any queue: a request merged into the number's open callback of another queue
            rows = await S.list_callbacks(self.db, "pending")
            row = next((r for r in rows if r.call_id == call_id), None) or next(
                (r for r in rows if r.number == number), None
            )
            if row is not None:
                await S.update_callback(self.db, row.id, status, now=self.clock(), agent=agent, result=result)
        except Exception:
            log.exception("updating callback %s (%s)", call_id, number)

    async def callback_closed(self, call_id: str, number: str, queue: str, status: str, result: str) -> None:
        """The callback list's row of ``call_id`` is ``status`` (done / failed) now."""
        await self._callback_update(call_id, number, queue, status, result=result)

    # ================================================================ missed callers

    def attach_worklist(self, worklist: M.Worklist, interval: float = MISSED_SYNC_INTERVAL) -> None:
        """Dial the open tasks of queues with automatic callback (:meth:`sync_missed`: when
        tasks change, when the CLI changes the database, and every ``interval`` seconds for
        the opening hours); a task closed (reached, or by staff) withdraws its callback slots."""
        self.worklist = worklist
        worklist.listeners.append(self._missed_changed)
        self._watch.subscribe("missed-caller callbacks", lambda _c: self.sync_missed())
        self._tasks.append(asyncio.create_task(self._missed_ticker(interval), name="acd-missed"))

    def _missed_changed(self, changes: list[tuple[M.Change, M.Task]]) -> None:
        closed = {t.number: t for c, t in changes if c is M.Change.CLOSED}
        if closed:
            now = self.clock()
            for w in self.engine.waiting(now=now):
                t = closed.get(w.number)
                if w.is_callback and t is not None and not w.ringing:
                    self._apply(self.engine.drop_callback(w.call_id, now, f"task {t.id} closed"))
                    if any(x.call_id == w.call_id for x in self.engine.waiting(w.queue, now)):
                        continue  # its number is being dialled: it ends on its own
                    if not w.call_id.startswith(MISSED_PREFIX):
                        outcome = t.outcome.value if t.outcome else "closed"
                        self._spawn(
                            self.callback_closed(w.call_id, w.number, w.queue, "done", f"task {t.id}: {outcome}")
                        )
        self._spawn(self.sync_missed())

    async def _missed_ticker(self, interval: float) -> None:
        while True:
            await self.sync_missed()
            await asyncio.sleep(interval)

    async def sync_missed(self) -> None:
        """Automatic callback: each open task of a queue with automatic callback on, inside
        its callback hours, not claimed by staff, with attempts left, has one callback slot
        (priority :data:`MISSED_PRIORITY`: behind every live caller); outside the hours the
        slots that are not being dialled are withdrawn."""
        if self.worklist is None or self._closing:
            return
        async with self._missed_lock:
            try:
                await self._sync_missed()
            except Exception:
                log.exception("ACD: automatic callbacks of missed callers")

    async def _sync_missed(self) -> None:
        settings = await M.queue_callback_settings(self.db)
        auto = {q: st for q, st in settings.items() if st["auto_callback"] and q in self.engine.queues}
        now = self.clock()
        open_hours: dict[str, bool] = {}
        for q, st in auto.items():
            sched = await H.get_schedule(self.db, st["callback_hours"], True) if st["callback_hours"] else None
            open_hours[q] = sched is None or H.is_open(sched, now)
        open_tasks = await M.list_tasks(self.db)
        numbers = {t.number for t in open_tasks}
        slots = {w.number: w for w in self.engine.waiting(now=now) if w.is_callback}
        for w in slots.values():
            if not w.call_id.startswith(MISSED_PREFIX) or w.ringing:
                continue
            if not open_hours.get(w.queue, False):
                self._apply(self.engine.drop_callback(w.call_id, now, "outside callback hours"))
            elif w.number not in numbers:  # closed while the PBX was not running
                self._apply(self.engine.drop_callback(w.call_id, now, "task closed"))
        if not auto:
            return
        for t in open_tasks:
            tq = t.queue
            if tq is None or not open_hours.get(tq) or t.claimed_by or t.number in slots:
                continue
            cfg = self.engine.queues[tq]
            if t.attempts >= cfg.callback_max_attempts:
                continue
            not_before = (t.last_attempt_at + cfg.callback_retry_delay) if t.last_attempt_at else 0.0
            call_id = f"{MISSED_PREFIX}{t.id}-{uuid.uuid4().hex[:6]}"
            self._apply(
                self.engine.add_callback(
                    call_id, t.number, tq, now, priority=MISSED_PRIORITY, attempts=t.attempts, not_before=not_before
                )
            )
            log.info("ACD: automatic callback of task %d (%s) in %s", t.id, t.number, tq)

    # ================================================================ local API

    def _service_line(self, call_id: str) -> str | None:
        """The DID's service line of a waiting call (what the agent's screen pop shows)."""
        obj = self.calls.get(call_id)
        return (obj.rec.service_line or None) if isinstance(obj, QueueCall) else None

    def queue_status(self, queue: str) -> QueueStatus:
        if queue not in self.engine.queues:
            raise ValueError(f"queue {queue} not found")
        now = self.clock()
        q = self.engine.queues[queue]
        views = self.engine.waiting(queue, now)
        waiting: list[WaitingStatus] = [
            {
                "call_id": w.call_id,
                "number": w.number,
                "position": w.position,
                "wait": round(w.wait, 1),
                "priority": w.priority,
                "is_callback": w.is_callback,
                "ringing": list(w.ringing),
                "service_line": self._service_line(w.call_id),
            }
            for w in views
        ]
        agents: list[QueueAgentStatus] = []
        for a in sorted(self.engine.agents.values(), key=lambda a: a.id):
            if not AcdEngine._qualifies(a, queue, q.required_skills):
                continue
            agents.append(
                {
                    "id": a.id,
                    "name": a.name,
                    "state": a.state.value,
                    "pause_reason": a.pause_reason.value if a.pause_reason else None,
                    "extension": self.agent_ext.get(a.id),
                    "since": round(now - a.state_since, 1),
                    "calls_taken": a.calls_taken,
                    "external_busy": a.external_busy,
                }
            )
        ewt = None
        live = [w for w in views if not w.is_callback]
        if live:
            ewt = self.engine.estimate_wait(live[-1].call_id, now)
        return {"queue": queue, "waiting": waiting, "agents": agents, "ewt": ewt}

    async def agent_state(self, agent: str) -> AgentStatus:
        await self.sync()
        a = self.engine.agents.get(agent)
        if a is None:
            return {"agent": agent, "known": False}
        return {
            "agent": agent,
            "known": True,
            "state": a.state.value,
            "pause_reason": a.pause_reason.value if a.pause_reason else None,
            "extension": self.agent_ext.get(agent),
        }
