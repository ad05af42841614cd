"""The running PBX: wires config, database, the SIP front door and the local API.

The PBX's one event stream (:mod:`pypbx.events`) is created here: the call log emits the
call events (the books are its durable subscriber), the ACD its queue events; this module
publishes registration added / expired, worker lost, trunk up / down and voicemail left
(MWI and the notification outbox are that event's durable subscribers), and keeps the
optional ``[events] journal``. CLI changes reach the components through the one change
watcher (:class:`pypbx.changes.ChangeWatcher`).

Resources are entered in order on an ``AsyncExitStack`` and closed in reverse; the
background loops run in a ``TaskGroup``; SIGTERM/SIGINT stop listening, let in-flight
transactions finish, flush the registrations and close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from media.client import WorkerClient
from media.pool import MediaPool, WorkerLost
from pypbx import __version__, prompts, reload, runlock, sitetime
from pypbx import events as E
from pypbx import reasons as R
from pypbx.acdlive import AcdLive
from pypbx.call import DEFAULT_MOH, Call, CallManager
from pypbx.calllog import CallLog
from pypbx.changes import ChangeWatcher, DbChanged
from pypbx.config import Config, ConfigError, load_config
from pypbx.crm import CrmLookup
from pypbx.db import Database, DBError, open_db
from pypbx.errors import PbxError
from pypbx.extensions import credentials_map
from pypbx.flows.callback import missed_call
from pypbx.frontline import FrontLine
from pypbx.groups import GroupService
from pypbx.localapi import LocalApiServer, missed_commands
from pypbx.missed import Worklist
from pypbx.mwi import MwiService
from pypbx.notify import Notifier
from pypbx.recordings import repair_interrupted
from pypbx.registrations import load_registrations, purge_expired, save_registrations
from pypbx.trunks import TrunkError, TrunkRouter, TrunkService, click_to_call
from pypbx.upkeep import run_upkeep
from pypbx.voicemail import VoicemailMeta
from pypbx.webhooks import Webhooks
from sip.auth import ProxyAuthenticator
from sip.digest import NonceManager
from sip.guard import AbuseGuard
from sip.location import Binding, Changes, LocationService
from sip.message import Request
from sip.proxy import AckMissing, ExtensionRouter, Proxy, RouteDecision, binding_addr
from sip.registrar import Registrar
from sip.server import ListenSpec, SipServer
from sip.transaction import Addr
from sip.transport import Listener

if TYPE_CHECKING:
    from pypbx.web.server import WebServer

log = logging.getLogger(__name__)

#: How often registration changes are written to SQLite (batched).
FLUSH_INTERVAL = 0.1
#: How often the database is checked for changes made by the CLI (pypbx.changes).
RELOAD_INTERVAL = 0.5
#: How often expired bindings and old guard state are purged.
PURGE_INTERVAL = 5.0


class BindingWriter:
    """Batches registration changes and writes them in one transaction per interval."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._upserts: dict[tuple[str, str], dict[str, object]] = {}
        self._deletes: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()

    def add(self, changes: Changes) -> None:
        for b in changes.removed:
            key = (b.aor, b.contact)
            self._upserts.pop(key, None)
            self._deletes.add(key)
        for b in (*changes.added, *changes.updated):
            key = (b.aor, b.contact)
            self._deletes.discard(key)
            self._upserts[key] = b.to_row()
        self._wake.set()

    async def flush(self) -> None:
        if not self._upserts and not self._deletes:
            return
        pending, dels = self._upserts, list(self._deletes)
        self._upserts, self._deletes = {}, set()
        try:
            await save_registrations(self.db, list(pending.values()), dels)
        except Exception:
            log.exception("could not save %d registration changes; will retry", len(pending) + len(dels))
            for key, row in pending.items():  # key: the row's (aor, contact)
                self._upserts.setdefault(key, row)
            self._deletes.update(dels)
            raise

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(FLUSH_INTERVAL)
            with contextlib.suppress(Exception):
                await self.flush()


class Pbx:
    """One running PBX instance (also used in-process by the integration tests)."""

    def __init__(self, cfg: Config, *, wallclock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.wallclock = wallclock
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self._reloads: set[asyncio.Task[None]] = set()  # SIGHUP reloads in progress
        self.started_at = wallclock()
        self.db: Database | None = None
        self.sip: SipServer | None = None
        self.location = LocationService()
        self.credentials: dict[str, dict[str, str]] = {}
        self.listeners: list[Listener] = []
        self.calllog: CallLog | None = None
        self.callmgr: CallManager | None = None
        self.pool: MediaPool | None = None
        self.acd: AcdLive | None = None
        self.mwi: MwiService | None = None  # message-waiting indication
        self.frontline: FrontLine | None = None  # IVR menus, voicemail, survey, callers table
        self.events = E.EventBus(clock=wallclock, buffer=cfg.events.buffer)
        self.changes: ChangeWatcher | None = None
        n = cfg.numbers
        self.trunks = TrunkService(
            plan=n.plan(),
            max_per_extension=n.max_outbound_per_extension,
            max_total=n.max_outbound_total,
            user_agent=cfg.sip.user_agent,
        )
        self.trunk_router = TrunkRouter(self.trunks, is_internal=self._is_internal)
        self.trunks.on_state = self._trunk_state

    # -- the pieces ------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        s = self.cfg.sip
        if not s.tls_enabled:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(s.tls_cert), str(s.tls_key))
        return ctx

    def _listen_specs(self) -> list[ListenSpec]:
        s = self.cfg.sip
        specs = []
        if s.udp_port:
            specs.append(ListenSpec("UDP", s.bind, s.udp_port))
        if s.tcp_port:
            specs.append(ListenSpec("TCP", s.bind, s.tcp_port))
        ctx = self._tls_context()
        if ctx is not None and s.tls_port:
            specs.append(ListenSpec("TLS", s.bind, s.tls_port, ctx))
        return specs

    async def _load_state(self, db: Database) -> None:
        self.credentials = await credentials_map(db, self.cfg.sip.realm)
        now = self.wallclock()
        purged = await purge_expired(db, now)
        rows = await load_registrations(db)
        n = self.location.load(Binding.from_row(dict(r)) for r in rows if r["aor"] in self.credentials)
        log.info("loaded %d extensions, %d saved registrations (%d expired purged)", len(self.credentials), n, purged)

    async def _db_changed(self, change: DbChanged) -> None:
        """The CLI changed the database (the change watcher): trunks and extensions."""
        db = self.db
        assert db is not None
        try:
            await self.trunks.load(db)
            creds = await credentials_map(db, self.cfg.sip.realm)
        except Exception:
            log.exception("reloading extensions failed")
            return
        if creds != self.credentials:
            gone = set(self.credentials) - set(creds)
            changed = {k for k in creds if k in self.credentials and creds[k] != self.credentials[k]}
            self.credentials = creds
            changes = Changes()
            for aor in gone:
                changes.extend(self.location.remove_all(aor))
            if changes and self.writer is not None:
                self.writer.add(changes)
            self._publish_bindings(changes, E.RegistrationEnd.REMOVED)
            log.info(
                "extensions reloaded: %d (removed %s, new password %s)",
                len(creds),
                ",".join(sorted(gone)) or "-",
                ",".join(sorted(changed)) or "-",
            )

    # -- events ------------------------------------------------------------------------
    def _on_bindings(self, changes: Changes) -> None:
        """The registrar changed bindings: saved in batches, and on the event stream."""
        assert self.writer is not None
        self.writer.add(changes)
        self._publish_bindings(changes, E.RegistrationEnd.UNREGISTERED)

    def _publish_bindings(self, changes: Changes, end: E.RegistrationEnd) -> None:
        for b in changes.added:
            t, h, p = b.source
            self.events.publish(
                E.RegistrationAdded(
                    aor=b.aor,
                    contact=b.contact,
                    expires_at=b.expires_at,
                    source=f"{t}:{h}:{p}",
                    user_agent=b.user_agent,
                )
            )
        for b in changes.removed:
            self.events.publish(E.RegistrationExpired(aor=b.aor, contact=b.contact, reason=end))

    def _trunk_state(self, trunk: str, before: object, now: object, reason: str) -> None:
        up = getattr(now, "value", now) == "registered"
        was_up = getattr(before, "value", before) == "registered"
        if up and not was_up:
            self.events.publish(E.TrunkUp(trunk=trunk))
        elif was_up and not up:
            self.events.publish(E.TrunkDown(trunk=trunk, reason=reason or getattr(now, "value", str(now))))

    async def _voicemail_filed(self, box: str, meta: VoicemailMeta) -> None:
        """FrontLine's hook: ``voicemail left`` on the stream (MWI and the outbox write it)."""
        await self.events.emit(
            E.VoicemailLeft(
                box=box,
                message_id=meta.get("id"),
                caller=meta.get("caller"),
                seconds=meta.get("seconds"),
                call_id=meta.get("call_id"),
                meta=E.frozen_map(meta),
            )
        )

    async def _purge(self) -> None:
        assert self.sip is not None
        loop = asyncio.get_running_loop()
        while not self.stop_event.is_set():
            await asyncio.sleep(PURGE_INTERVAL)
            expired = self.location.purge(self.wallclock())
            for b in expired:
                log.info("registration expired %s contact=%s", b.aor, b.contact)
            if expired and self.writer is not None:
                self.writer.add(Changes(removed=list(expired)))
            self._publish_bindings(Changes(removed=list(expired)), E.RegistrationEnd.EXPIRED)
            self.sip.guard.purge(loop.time())

    async def _background_jobs(self, db: Database) -> None:
        """Low-priority upkeep (pypbx.upkeep): recordings' compression and retention, the
        scheduled backup, alerts."""
        await run_upkeep(
            self.cfg,
            db,
            self.stop_event,
            trunks=self.trunks.status,
            notifier=self.notifier,
            events=self.events,
            queues=self._queue_staffing,
        )

    def _queue_staffing(self) -> list[tuple[str, int, int]]:
        """Per queue: (name, callers waiting now, its agents logged in) — the alerts' check."""
        if self.acd is None:
            return []
        out = []
        for q in sorted(self.acd.engine.queues):
            st = self.acd.queue_status(q)
            waiting = sum(1 for w in st["waiting"] if not w["is_callback"])
            logged_in = sum(1 for a in st["agents"] if a["state"] != "logged_out")
            out.append((q, waiting, logged_in))
        return out

    # -- local API -------------------------------------------------------------------
    def _registrations(self, aor: str | None = None) -> list[dict[str, object]]:
        now = self.wallclock()
        aors = [aor] if aor else sorted(self.location.aors())
        out: list[dict[str, object]] = []
        for a in aors:
            for b in self.location.bindings(a, now):
                row = b.to_row()
                row["expires_in"] = b.expires_in(now)
                out.append(row)
        return out

    def _status(self) -> dict[str, object]:
        assert self.sip is not None
        loop = asyncio.get_running_loop()
        mono = loop.time()
        st = self.sip.status()
        counters = dict(st["counters"])
        counters.update({f"guard_{k}": v for k, v in self.sip.guard.counters().items()})
        if self.proxy is not None:
            counters.update({f"proxy_{k}": v for k, v in self.proxy.counters.items()})
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(self.wallclock() - self.started_at, 1),
            "transports": st["listeners"],
            "connections": st["connections"],
            "extensions": len(self.credentials),
            "registrations": self._registrations(),
            "bans": [
                {"ip": ip, "reason": "auth failures or scanner", "expires_in": round(until - mono, 1)}
                for ip, until in self.sip.guard.bans(mono)
            ],
            "counters": counters,
            "transactions": st["transactions"],
            "trunks": self.trunks.status(),
            "mwi": self.mwi.status() if self.mwi is not None else None,
            "events": self.events.status(),
            "workers": self.pool.stats() if self.pool is not None else None,
            "tables": self._tables(),
        }

    def _metrics(self) -> dict[str, object]:
        """The running PBX's figures for the web desk's /metrics (pypbx.web.metrics)."""
        assert self.sip is not None
        mono = asyncio.get_running_loop().time()
        return {
            "uptime": round(self.wallclock() - self.started_at, 1),
            "calls_active": len(self.callmgr.status()) if self.callmgr is not None else 0,
            "registrations": len(self._registrations()),
            "transactions": self.sip.status()["transactions"],
            "bans": len(self.sip.guard.bans(mono)),
            "workers": self.pool.stats() if self.pool is not None else None,
            "trunks": self.trunks.status(),
        }

    def _tables(self) -> dict[str, int]:
        """Sizes of the long-lived tables that hold per-call / per-request state (what a
        memory soak watches: each must go back to its idle size once the calls are over)."""
        holders: dict[str, object] = {
            "sip": self.sip,
            "proxy": getattr(self, "proxy", None),
            "calls": self.callmgr,
            "calllog": self.calllog,
            "acd": self.acd,
            "acd_engine": getattr(self.acd, "engine", None),
            "frontline": self.frontline,
            "pool": self.pool,
            "events": self.events,
        }
        names = {
            "sip": ("own", "_claims", "_tasks", "_connecting", "_src_cache"),
            "proxy": ("_contexts", "_branches", "_heap", "_closing", "_own", "_acks", "flows", "dialogs"),
            "calls": ("sessions", "_starting"),
            "calllog": ("active",),
            "acd": ("calls", "sessions", "rings", "busy", "_events", "_bg"),
            "acd_engine": ("_entries", "_order", "_by_key", "_connected", "_timers", "_events", "_elig_cache"),
            "frontline": ("calls",),
            "pool": ("busy", "_tasks"),
            "events": ("_subs",),
        }
        out: dict[str, int] = {}
        for owner, attrs in names.items():
            obj = holders[owner]
            if obj is None:
                continue
            for a in attrs:
                v = getattr(obj, a, None)
                if isinstance(v, (dict, list, set)):
                    out[f"{owner}.{a.lstrip('_')}"] = len(v)
        return out

    # -- run -------------------------------------------------------------------------
    writer: BindingWriter | None = None
    web: WebServer | None = None  # when [web] enabled (aiohttp is imported only then)

    async def serve(self) -> None:
        cfg = self.cfg
        async with contextlib.AsyncExitStack() as stack:
            db = await stack.enter_async_context(open_db(cfg.db_path, cfg.numbers.region))
            self.db = db
            self.changes = ChangeWatcher(db, RELOAD_INTERVAL)
            await self.changes.prime()  # before anything it reloads is read
            self.changes.subscribe("extensions and trunks", self._db_changed)
            if cfg.events.journal is not None:
                journal = E.Journal(cfg.events.journal, self.events.run)
                self.events.add_sink(journal)
                stack.callback(journal.close)
            secret = await db.get_or_create_meta("nonce_secret", lambda: os.urandom(32).hex())
            await self._load_state(db)
            await self.trunks.load(db)
            self.calllog = CallLog(db, self.wallclock, bus=self.events)
            # missed callers: every call's end goes to the worklist (a sink: never waited for)
            worklist = Worklist(db, self.events, reached_after=cfg.missed.reached_after, clock=self.wallclock)
            interrupted = await self.calllog.close_interrupted(cfg.data_dir / "recordings")
            if interrupted:
                log.warning("closed %d call(s) left open by the previous run as 'interrupted'", len(interrupted))
            self.writer = BindingWriter(db)
            stack.push_async_callback(self.writer.flush)  # last write before the DB closes
            sec = cfg.security
            guard = AbuseGuard(
                auth_fail_limit=sec.auth_fail_limit,
                auth_fail_window=sec.auth_fail_window,
                ban_time=sec.ban_time,
                rate_limit=sec.rate_limit,
                rate_burst=sec.rate_burst,
                scanner_user_agents=sec.scanner_user_agents,
                exempt=sec.exempt,
                malformed_log_interval=sec.malformed_log_interval,
                max_new_per_second=sec.max_new_requests_per_second,
                flood_ban_after=sec.flood_ban_after,
            )
            reg = cfg.registrar
            nonces = NonceManager(bytes.fromhex(secret), lifetime=sec.nonce_lifetime)
            registrar = Registrar(
                cfg.sip.realm,
                self.location,
                nonces,
                self.credentials_for,
                min_expires=reg.min_expires,
                max_expires=reg.max_expires,
                default_expires=reg.default_expires,
                max_contacts=reg.max_contacts,
                algorithms=tuple(sec.digest_algorithms),
            )
            self.sip = SipServer(
                registrar=registrar,
                guard=guard,
                user_agent=cfg.sip.user_agent,
                on_bindings=self._on_bindings,
                wallclock=self.wallclock,
            )
            self.pool = await self._start_media(stack)
            self.listeners = await self.sip.start(self._listen_specs())
            stack.push_async_callback(self.sip.stop)
            self.trunks.attach(self.sip)  # trunk registrations start
            prompts.override_dir = cfg.data_dir / "prompts"  # the clinic's own recordings win
            moh = prompts.moh_file(DEFAULT_MOH)
            self.callmgr = CallManager(
                pool=self.pool,
                calllog=self.calllog,
                db=db,
                data_dir=cfg.data_dir,
                moh=moh,
                front_door=self._front_door(),
                is_extension=lambda n: n in self.credentials,
                is_registered=lambda n: bool(self.location.bindings(n, self.wallclock())),
                ring_time=cfg.calls.ring_time,
                record=cfg.calls.record,
                clock=self.wallclock,
                min_free_mb=cfg.calls.min_free_mb,
                max_duration=cfg.calls.max_duration,
            )
            if interrupted:
                await repair_interrupted(db, cfg.data_dir / "recordings", interrupted)
            self._attach_proxy(nonces, bytes.fromhex(secret))
            self.acd = AcdLive(
                db,
                callmgr=self.callmgr,
                contacts=self._contacts,
                clock=self.wallclock,
                moh=moh,
                recording_notice=cfg.calls.record,
                answered_by=self._answered_by,
                changes=self.changes,
                events=self.events,
            )
            await self.acd.start()
            stack.push_async_callback(self.acd.close)
            self.callmgr.acd = self.acd
            self.callmgr.trunks = self.trunk_router
            # IVR menus, voicemail, survey, callers table
            frontline = FrontLine(db, self.callmgr, cfg.data_dir, prompts_dir=self.acd.prompts_dir)
            self.frontline = self.callmgr.frontline = frontline
            if cfg.crm.lookup_url:  # who is calling, asked of the clinic's system (pypbx.crm)
                frontline.crm = CrmLookup(cfg.crm, db.region)
                stack.push_async_callback(frontline.crm.close)
            # ring groups: their ring legs at the front door
            self.callmgr.groups = GroupService(contacts=self._contacts, answered_by=self._answered_by)
            # its numbers, for _is_internal, re-read on every change (FrontLine.start's own
            # polling loop is not started: the change watcher is the one mechanism)
            await frontline.reload()
            self.changes.subscribe("IVR menu and mailbox numbers", lambda _c: frontline.reload())
            stack.push_async_callback(frontline.close)
            mwi = self._start_mwi(nonces)  # SUBSCRIBE message-summary (pypbx.mwi)
            stack.push_async_callback(mwi.close)
            # voicemail -> webhook / e-mail (a durable outbox)
            self.notifier = Notifier(db, cfg.notify, clock=self.wallclock)
            # voicemail left: on the stream; MWI then the outbox are its durable subscribers
            frontline.voicemail_listeners.append(self._voicemail_filed)
            self.events.add_writer(mwi.voicemail_left, E.VoicemailLeft)
            self.events.add_writer(self.notifier.voicemail_left, E.VoicemailLeft)
            self.events.add_writer(self.notifier.reason_set, E.ReasonSet)  # a reason marked to notify
            # call-event webhooks (pypbx.webhooks): one outbox row per event an endpoint wants
            hooks = Webhooks(db, self.notifier.enqueue_hooks, db.region)
            self.events.add_sink(hooks.on_published, *Webhooks.TYPES)  # queued; never holds a call
            self.changes.subscribe("webhooks", hooks.changed)
            self.acd.attach_worklist(worklist)
            api = LocalApiServer(
                cfg.socket_path,
                {
                    **missed_commands(worklist, self.callmgr),
                    "status": self._status,
                    "registrations": self._registrations,
                    "calls": self.callmgr.status,
                    "active_calls": self.callmgr.active_call_ids,
                    "queue_status": self.acd.queue_status,
                    "agent_state": self.acd.agent_state,
                    "trunks": self.trunks.status,
                    "call": self._click_to_call,
                    "events": self.events.api,
                    "set_reason": self._set_reason,
                },
            )
            await api.start()
            stack.push_async_callback(api.close)
            if cfg.web.enabled:  # the web desk (pypbx.web): a reader of the db, the ACD and the stream
                # here: only `pypbx run` serves the web desk (aiohttp's import weight stays off the CLI)
                from pypbx.web.server import WebServer, make_context

                cm = self.callmgr

                async def call_back(task: str, extension: str) -> dict[str, object]:
                    return await missed_call(worklist, cm, task, extension)

                web_ctx = make_context(
                    cfg,
                    db,
                    self.events,
                    acd=self.acd,
                    worklist=worklist,
                    missed_call=call_back,
                    pbx_status=self._metrics,
                    live_calls=cm.status,
                )
                web_ctx.originate = self._click_to_call  # the agent desk's click-to-call
                # the settings pages' extension changes are this process's own writes: reload now
                web_ctx.extensions_changed = lambda: self._db_changed(DbChanged(external=True, own=True))
                self.web = WebServer(web_ctx)
                await self.web.start()
                stack.push_async_callback(self.web.close)
            log.info("pypbx %s running (data in %s, realm %r)", __version__, cfg.data_dir, cfg.sip.realm)
            _tune_gc()
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.writer.run(self.stop_event)),
                    tg.create_task(self.changes.run(self.stop_event)),
                    tg.create_task(self._purge()),
                    tg.create_task(self.trunks.run(self.stop_event)),
                    tg.create_task(self.notifier.run()),  # until cancelled: also sends while calls drain
                    tg.create_task(mwi.run(self.stop_event)),
                    tg.create_task(worklist.run()),
                    tg.create_task(hooks.run()),  # until cancelled: the calls' last events go out too
                    tg.create_task(self._background_jobs(db)),  # issue 13: recordings, backups, alerts
                ]
                calls_task = tg.create_task(self.callmgr.run(self.stop_event))
                await self.stop_event.wait()
                log.info("stopping: refusing new calls, draining calls in progress")
                await self.acd.close()  # queued callers: interrupted, kept for a callback
                await calls_task
                with contextlib.suppress(TimeoutError):  # the calls' ends are on the worklist
                    await asyncio.wait_for(worklist.drained(), 5.0)
                self.trunks.unregister_all()  # REGISTER Expires: 0 to the providers
                log.info("stopping: draining SIP transactions")
                for t in tasks:
                    t.cancel()
        log.info("pypbx stopped")

    def _attach_proxy(self, nonces: NonceManager, secret: bytes) -> None:
        """Call routing: the stateful forking proxy. Phones' calls are anchored in a media
        worker (CallManager.route); the workers' own legs go to the extension's devices."""
        assert self.sip is not None
        sec = self.cfg.security
        auth = ProxyAuthenticator(
            self.cfg.sip.realm, nonces, self.credentials_for, algorithms=tuple(sec.digest_algorithms)
        )
        extensions = ExtensionRouter(self.location, lambda n: n in self.credentials, self.wallclock)
        assert self.callmgr is not None
        front = self._front_door_addr()

        def route_to_extension(request: Request) -> RouteDecision:
            # the calls the call manager sends to an extension come from the media workers,
            # through the front door's UDP socket (ExtensionRouter does not use the source)
            return extensions(request, front, None)

        self.callmgr.route_to_extension = route_to_extension
        self.proxy = Proxy(
            route=self.callmgr.route,
            local_address=self.sip.local_address,
            is_local=self.sip.is_local,
            secret=hashlib.sha256(b"record-route" + secret).digest(),
            authenticator=auth,
            trusted=self.callmgr.is_worker,
            ring_timeout=float(self.cfg.calls.ring_time) + 5,
            user_agent=self.cfg.sip.user_agent,
            admit=self.trunk_router.admit,
            dialog_gone=self._dialog_gone,
        )
        self.sip.attach_proxy(self.proxy)
        self.sip.on_ack_missing = self._ack_missing
        # trunk providers are never refused by the global admission limit
        self.sip.priority = lambda source: self.trunk_router.svc.peer(source.host) is not None

    def _ack_missing(self, ev: AckMissing) -> bool:
        """A phone never ACKed the 200 it was sent (Timer H): its call is booked failed
        ("no ACK") and both legs hung up now, freeing the worker and any trunk slot."""
        cm = self.callmgr
        s = cm.session_by_call_id(ev.call_id) if cm is not None else None
        if cm is None or s is None or s.rec is None or s.ended:
            return False
        cm.spawn(self._end_unacked(cm, s))
        return True

    @staticmethod
    async def _end_unacked(cm: CallManager, s: Call) -> None:
        await cm.finish(s, E.Disposition.FAILED, side="caller", cause="no ACK")
        for leg in (s.caller_leg, s.callee_leg):
            if leg:
                try:
                    await cm.hangup(s, leg, None)
                except Exception as exc:  # the worker may have hung the leg up itself
                    log.info("hanging up %s after no ACK: %s", leg, exc)

    def _dialog_gone(self, request: Request, dest: Addr) -> bool:
        """An in-dialog request the proxy does not track, bound for a media worker that has
        no call with its Call-ID (e.g. a phone's BYE after a restart): answered 481."""
        cm = self.callmgr
        return cm is not None and cm.is_worker(dest) and cm.session_by_call_id(request.call_id) is None

    def _start_mwi(self, nonces: NonceManager) -> MwiService:
        """Message-waiting indication: SUBSCRIBE message-summary, authenticated like a
        REGISTER (401, same nonces and passwords), NOTIFYs on new / heard / deleted messages."""
        assert self.sip is not None and self.db is not None and self.callmgr is not None
        realm = self.cfg.sip.realm
        auth = ProxyAuthenticator(
            realm,
            nonces,
            self.credentials_for,
            algorithms=tuple(self.cfg.security.digest_algorithms),
            header="Authorization",
            status=401,
        )
        self.mwi = mwi = MwiService(
            self.db,
            self.sip,
            realm=realm,
            authenticator=auth,
            user_agent=self.cfg.sip.user_agent,
            wallclock=self.wallclock,
            changes=self.changes,
        )
        mwi.attach()  # new messages: the event stream's voicemail left (serve)
        return mwi

    def _front_door(self) -> str:
        """Where media workers send their calls: the front door's UDP socket on loopback."""
        s = self.cfg.sip
        if not s.udp_port:
            raise RuntimeError("calls need sip.udp_port: the media workers reach the front door over UDP")
        host = "127.0.0.1" if s.bind in ("0.0.0.0", "::", "127.0.0.1") else s.bind
        return f"{host}:{s.udp_port}"

    def _front_door_addr(self) -> Addr:
        """:meth:`_front_door` as the SIP address the media workers' calls come from."""
        host, _, port = self._front_door().rpartition(":")
        return Addr("UDP", host, int(port))

    async def _start_media(self, stack: contextlib.AsyncExitStack) -> MediaPool:
        m = self.cfg.media
        front = self._front_door()
        public = m.public_addr or ("" if self.cfg.sip.bind in ("0.0.0.0", "::") else self.cfg.sip.bind)
        pool = MediaPool(
            m.workers_warm,
            m.workers_max,
            m.sip_port_base,
            m.rtp_port_base,
            m.rtp_ports_per_worker,
            trusted=[front],
            sip_addr="127.0.0.1",
            media_addr=m.media_addr,
            public_addr=public,
            proxy=f"sip:{front};lr",
            worker_stderr=None,
            worker_args=["--rtp-timeout", str(m.rtp_timeout), "--session-expires", str(m.session_expires)],
        )
        try:
            await pool.start()
        except Exception as exc:
            await pool.close()
            raise RuntimeError(f"media workers failed to start: {exc}") from exc
        stack.push_async_callback(pool.close)
        pool.on_event(self._on_media_event)
        log.info(
            "media: %d warm worker(s), up to %d calls; workers on 127.0.0.1:%d+",
            m.workers_warm,
            m.workers_max,
            m.sip_port_base,
        )
        return pool

    def _on_media_event(self, worker: WorkerClient | None, ev: object) -> None:
        """A worker died: the front door ends the phones' dialogs it carried (BYE with a
        Reason), so nobody is left in a dead call; CallManager closes the record."""
        if isinstance(ev, WorkerLost):
            self.events.publish(
                E.WorkerLost(
                    worker=str(getattr(ev.worker, "sip_port", ev.worker)),
                    legs=tuple(ev.legs),
                    returncode=ev.returncode,
                    reason=ev.reason,
                )
            )
        if isinstance(ev, WorkerLost) and self.sip is not None:
            end = getattr(self.sip, "end_dialogs_with", None)
            if end is not None:
                end("127.0.0.1", ev.worker.sip_port, "media engine failure")

    def _contacts(self, extension: str) -> list[tuple[str, Addr]]:
        """(contact, address) of every live registration of ``extension`` (ACD ring legs)."""
        return [(b.contact, binding_addr(b)) for b in self.location.bindings(extension, self.wallclock())]

    def _answered_by(self, sip_call_id: str, extensions: tuple[str, ...]) -> str | None:
        """Which of ``extensions`` answered the forked ring leg ``sip_call_id`` (ring-all):
        the proxy's dialog for it names the flow of the device that sent the 2xx."""
        dialogs = getattr(getattr(self, "proxy", None), "dialogs", None) or {}
        now = self.wallclock()
        for d in reversed(list(dialogs.values())):
            if d.call_id != sip_call_id:
                continue
            addr, target = d.callee.addr, str(d.callee.target or "")
            for ext in extensions:
                for b in self.location.bindings(ext, now):
                    ba = binding_addr(b)
                    if (ba.host, ba.port) == (addr.host, addr.port) or (target and b.contact.strip("<>") == target):
                        return ext
        return None

    async def _click_to_call(self, extension: str, number: str) -> dict[str, object]:
        """Local API ``call``: ring ``extension``, then dial ``number`` through a trunk."""
        assert self.callmgr is not None
        try:
            return await click_to_call(self.trunk_router, self.callmgr, str(extension), str(number))
        except TrunkError as exc:  # refused: a reason for the admin, not a fault
            return {"error": str(exc)}

    async def _set_reason(self, call_id: str, code: str, agent: str | None = None) -> dict[str, object]:
        """Local API ``set_reason``: reason ``code`` on call ``call_id`` (pypbx.reasons)."""
        assert self.db is not None
        return await R.set_call_reason(
            self.db, self.events, call_id, code=code, agent=agent, via=R.ReasonVia.API, clock=self.wallclock
        )

    def _is_internal(self, number: str) -> bool:
        """Extensions, queue numbers and feature codes: never sent to a trunk."""
        if number in self.credentials or number.startswith("*"):
            return True
        fl = self.frontline
        if fl is not None and fl.is_internal(number):
            return True  # IVR menu and mailbox numbers (pypbx.frontline)
        acd = self.acd
        return acd is not None and number in getattr(acd, "numbers", {})

    def credentials_for(self, username: str) -> dict[str, str] | None:
        return self.credentials.get(username)

    def stop(self) -> None:
        self.stop_event.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the config file (pypbx.reload) in a tracked task."""
        if not self.ready.is_set() or self.stop_event.is_set():
            log.warning("config reload ignored: the PBX is %s", "stopping" if self.stop_event.is_set() else "starting")
            return
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Apply what can change while calls are up; name what needs a restart (one line
        each way); a file that does not load changes nothing."""
        try:
            new = await asyncio.to_thread(load_config, self.cfg.config_path)
        except ConfigError as exc:
            log.error("config reload refused, the running config stays: %s", exc)
            return
        now, later = reload.split(reload.changes(self.cfg, new))
        merged = reload.merge(self.cfg, new)
        if "log_level" in now:
            logging.getLogger().setLevel(getattr(logging, merged.log_level))
        if any(k.startswith("security.") for k in now) and self.sip is not None:
            sec = merged.security
            self.sip.guard.reconfigure(
                auth_fail_limit=sec.auth_fail_limit,
                auth_fail_window=sec.auth_fail_window,
                ban_time=sec.ban_time,
                rate_limit=sec.rate_limit,
                rate_burst=sec.rate_burst,
                scanner_user_agents=sec.scanner_user_agents,
                exempt=sec.exempt,
                malformed_log_interval=sec.malformed_log_interval,
                max_new_per_second=sec.max_new_requests_per_second,
                flood_ban_after=sec.flood_ban_after,
            )
        if self.notifier is not None:
            self.notifier.cfg = merged.notify
        if any(k.startswith("crm.") for k in now) and self.frontline is not None:
            old_crm, self.frontline.crm = (
                self.frontline.crm,
                (CrmLookup(merged.crm, merged.numbers.region) if merged.crm.lookup_url else None),
            )
            if old_crm is not None:
                await old_crm.close()
        if "site.timezone" in now:
            sitetime.set_zone(merged.site.timezone)
        if self.web is not None:
            self.web.ctx.cfg = merged  # board thresholds, lockout, session length
        self.cfg = merged
        log.info("config reloaded from %s: %s", merged.config_path, ", ".join(now) if now else "nothing changed")
        if later:
            log.warning(
                "config: %s changed in the file; a restart applies it (systemctl restart pypbx)", ", ".join(later)
            )


def _tune_gc() -> None:
    """Move start-up objects out of the collector's way and collect young objects less
    often: a busy front door keeps tens of thousands of short-lived transactions alive
    (32 s each over UDP), and full collections over them cost more than the messages."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


async def _main(cfg: Config) -> int:
    pbx = Pbx(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pbx.stop)
    loop.add_signal_handler(signal.SIGHUP, pbx.request_reload)
    try:
        await pbx.serve()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except (DBError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    return 0


def run(config_path: str | os.PathLike[str]) -> int:
    """Entry point of ``pypbx run``."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        runlock.acquire(cfg.data_dir)  # already held when started by `pypbx run`
    except PbxError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    setup_logging(cfg.log_level)
    try:
        return _run_loop(cfg)
    finally:
        runlock.release(cfg.data_dir)


def _run_loop(cfg: Config) -> int:
    try:
        import uvloop  # here: only `pypbx run` needs it (the CLI and the tests import this module)
    except ImportError:  # pragma: no cover - uvloop is a hard dependency
        return asyncio.run(_main(cfg))
    return uvloop.run(_main(cfg))
