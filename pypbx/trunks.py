"""SIP trunks, DIDs and the outbound guard: the store (CLI) and the live service (PBX).

Store (async functions over :class:`pypbx.db.Database`, used by ``cli.py``):

* **Trunks**: name, ``host:port``, transport, optional registration credentials
  (``username``/``password``, ``auth_username``, ``domain``), ``register`` (registration
  trunk) or not (IP-authenticated trunk), ``priority`` (lower first), outbound
  ``caller_id``, number rewriting (``number_format`` e164 | e164_no_plus | national |
  international | as_dialled, then ``strip_prefix`` / ``add_prefix``), ``max_channels``
  (0 = unlimited) and ``inbound_ips``: the addresses the provider may call in from (its
  host's address is always accepted). The password is stored **in clear** in the
  database: digest answers need it (or an HA1 bound to a realm the provider only tells in
  its challenge). The database file's mode is its protection: :func:`protect_db` makes
  the file and its WAL files 0600 whenever a trunk has a password. It is never printed by
  ``trunk show`` / ``--json``.
* **DIDs**: number -> destination (``extension:1001``, ``queue:NAME``, ``ivr:MENU``,
  ``voicemail:BOX``, ``group:NAME`` -- a ring group, :mod:`pypbx.groups` -- or
  ``external:NUMBER``, forwarded out through a trunk, or ``route:NAME``, routing rules:
  :mod:`pypbx.routing`) and a service-line name
  ("Appointments line") that goes into the call's record. Smart routing: ``known`` /
  ``new`` destinations for returning patients (:func:`pypbx.callers.known`) and new
  callers (:meth:`Did.route`).
* **Permissions**: the number classes an extension may call (``pypbx.numbers``) and its
  own concurrent outside-call limit; default from ``[numbers]`` in the config file.

Live (:class:`TrunkService`, owned by ``pypbx.app``):

* recognises trunk traffic: :meth:`peer` (source address is a trunk's host / inbound IP
  / registrar), :meth:`did_for` (the DID an inbound INVITE is for: Request-URI user, or To
  user when the Request-URI is the registration contact);
* the outbound guard: :meth:`check_outbound` (class permitted? limits?), channel counting
  (:meth:`acquire` / :meth:`release`), :meth:`candidates` (trunks by priority with a free
  channel), :meth:`outbound_target` (the rewritten Request-URI and address of a trunk);
* registrations: one :class:`sip.trunk.TrunkRegistration` per registering trunk, driven by
  :meth:`run` through ``SipServer.send_own``; :meth:`status` for ``pypbx trunk list`` and
  ``pypbx status``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, TypedDict, cast

from media import protocol as P
from pypbx import callers as C
from pypbx import destinations as D
from pypbx.call import Call, CallInput, CallManager, FlowBase, NoMediaWorker, Shutdown
from pypbx.calllog import CallExtras, Direction, Disposition, disposition_for_status
from pypbx.db import Database, IntegrityError
from pypbx.db.rows import TrunkRow
from pypbx.errors import PbxError
from pypbx.flows.route import resolve
from pypbx.logs import call_log
from pypbx.numbers import (
    DEFAULT_REGION,
    FORMATS,
    NumberClass,
    NumberPlan,
    allowed,
    classify,
    e164,
    expand_classes,
    is_emergency,
    parse_classes,
    rewrite,
)
from sip.identity import asserted_caller
from sip.message import Request
from sip.proxy import RouteDecision
from sip.server import OwnCallback, OwnEvent, SipServer, TlsPeer
from sip.transaction import Addr, ResponseReceived, Timeout, TransportError
from sip.trunk import RegState, TrunkRegistration

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive

log = logging.getLogger(__name__)

TRANSPORTS = ("udp", "tcp", "tls")
#: Numbers shorter than this (emergency numbers aside) are never sent to a trunk: they
#: are mistyped extensions and get the internal answer (404).
MIN_EXTERNAL_DIGITS = D.MIN_EXTERNAL_DIGITS
DEST_KINDS = D.DEST_KINDS


class TrunkError(PbxError):
    """A one-line, user-facing problem with a trunk, DID or permission."""


class Permission(TypedDict):
    """An extension's outside-call permission: number classes, simultaneous outside calls."""

    classes: tuple[str, ...]
    max_outbound: int | None


@dataclass
class Trunk:
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = None
    auth_username: str | None = None
    domain: str | None = None
    register: bool = False
    expires: int = 3600
    priority: int = 10
    caller_id: str | None = None
    number_format: str = "e164"
    strip_prefix: str = ""
    add_prefix: str = ""
    max_channels: int = 0
    inbound_ips: list[str] = field(default_factory=list)
    enabled: bool = True
    tls_verify: bool = True  # TLS: check the provider's certificate (off = logged opt-out)
    created_at: float | None = None
    updated_at: float | None = None

    def to_row(self) -> TrunkRow:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "transport": self.transport,
            "username": self.username,
            "password": self.password,
            "auth_username": self.auth_username,
            "domain": self.domain,
            "register": int(self.register),
            "expires": self.expires,
            "priority": self.priority,
            "caller_id": self.caller_id,
            "number_format": self.number_format,
            "strip_prefix": self.strip_prefix,
            "add_prefix": self.add_prefix,
            "max_channels": self.max_channels,
            "inbound_ips": json.dumps(self.inbound_ips),
            "enabled": int(self.enabled),
            "tls_verify": int(self.tls_verify),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_row(cls, row: TrunkRow) -> Trunk:
        """A stored row; a column the row lacks (a database from before it) takes its default."""
        d = cls(row["name"], row["host"])
        return cls(
            name=row["name"],
            host=row["host"],
            port=row.get("port", d.port),
            transport=row.get("transport", d.transport),
            username=row.get("username", d.username),
            password=row.get("password", d.password),
            auth_username=row.get("auth_username", d.auth_username),
            domain=row.get("domain", d.domain),
            register=bool(row.get("register")),
            expires=row.get("expires", d.expires),
            priority=row.get("priority", d.priority),
            caller_id=row.get("caller_id", d.caller_id),
            number_format=row.get("number_format", d.number_format),
            strip_prefix=row.get("strip_prefix", d.strip_prefix),
            add_prefix=row.get("add_prefix", d.add_prefix),
            max_channels=row.get("max_channels", d.max_channels),
            inbound_ips=json.loads(row.get("inbound_ips") or "[]"),
            enabled=bool(row.get("enabled", 1)),
            tls_verify=bool(row.get("tls_verify", 1)),
            created_at=row.get("created_at", d.created_at),
            updated_at=row.get("updated_at", d.updated_at),
        )

    def public(self) -> dict[str, object]:
        """What the CLI shows: everything but the password."""
        d = asdict(self)
        d["password"] = "(set)" if self.password else None
        return d


@dataclass(frozen=True)
class Did:
    number: str
    destination: str
    service_line: str = ""
    trunk: str | None = None
    known: str | None = None  # smart routing: returning patients go here ...
    new: str | None = None  # ... and new callers here (else ``destination``)

    @property
    def kind(self) -> str:
        return self.destination.split(":", 1)[0]

    @property
    def target(self) -> str:
        return self.destination.split(":", 1)[1]

    @property
    def smart(self) -> bool:
        return bool(self.known or self.new)

    def route(self, known: bool) -> str:
        """The destination for a caller who is (not) a returning patient."""
        if known and self.known:
            return self.known
        if not known and self.new:
            return self.new
        return self.destination


# ----------------------------------------------------------------------------- validation


def _check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or len(name) > 64:
        raise TrunkError(f"bad trunk name {name!r}: letters, digits, '-', '_' and '.' only")
    return name


def _check_ips(ips: list[str]) -> list[str]:
    out = []
    for ip in ips:
        ip = ip.strip()
        if not ip:
            continue
        try:
            ipaddress.ip_network(ip, strict=False) if "/" in ip else ipaddress.ip_address(ip)
        except ValueError:
            raise TrunkError(f"bad inbound address {ip!r}: expected an IP address or network") from None
        out.append(ip)
    return out


def validate_trunk(t: Trunk) -> Trunk:
    _check_name(t.name)
    if not t.host or any(c in t.host for c in " /;@<>\"'"):
        raise TrunkError(f"bad host {t.host!r}")
    if not 1 <= int(t.port) <= 65535:
        raise TrunkError(f"bad port {t.port!r}")
    t.transport = t.transport.lower()
    if t.transport not in TRANSPORTS:
        raise TrunkError(f"bad transport {t.transport!r}: one of {', '.join(TRANSPORTS)}")
    if t.number_format not in FORMATS:
        raise TrunkError(f"bad number format {t.number_format!r}: one of {', '.join(FORMATS)}")
    if t.register and not (t.username and t.password):
        raise TrunkError("a registration trunk needs --username and --password")
    if not 60 <= int(t.expires) <= 86400:
        raise TrunkError("expires must be 60-86400 seconds")
    if int(t.max_channels) < 0:
        raise TrunkError("max channels must be >= 0 (0 = unlimited)")
    t.inbound_ips = _check_ips(t.inbound_ips)
    return t


def parse_destination(dest: str) -> str:
    """A DID's destination (:func:`pypbx.destinations.parse_destination`); TrunkError if bad."""
    try:
        return D.parse_destination(dest)
    except D.DestinationError as e:
        raise TrunkError(str(e)) from None


def normalise_did(number: str, region: str = DEFAULT_REGION) -> str:
    """A DID as stored: E.164 (``01 23 45 67 89`` -> ``+33123456789``); digits kept as
    they came for a number phonenumbers cannot place (a provider's short internal DID)."""
    n = "".join(c for c in (number or "") if c.isdigit() or c == "+")
    if not n or not n.lstrip("+").isdigit():
        raise TrunkError(f"bad DID number {number!r}")
    return e164(n, region)


# ----------------------------------------------------------------------------- store (CLI)


def protect_db(db: Database) -> None:
    """Trunk passwords are in the database: make it (and its WAL files) owner-only."""
    base = str(getattr(db, "path", "") or "")
    if not base:
        return
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(base + suffix, 0o600)
        except OSError:
            pass


async def add_trunk(db: Database, trunk: Trunk, now: float | None = None) -> Trunk:
    validate_trunk(trunk)
    trunk.created_at = trunk.updated_at = now if now is not None else time.time()
    try:
        await db.insert_trunk_row(trunk.to_row())
    except IntegrityError:
        raise TrunkError(f"trunk {trunk.name} already exists") from None
    if trunk.password:
        protect_db(db)
    return trunk


async def get_trunk(db: Database, name: str) -> Trunk:
    row = await db.get_trunk_row(name)
    if row is None:
        raise TrunkError(f"no trunk named {name!r}")
    return Trunk.from_row(row)


async def list_trunks(db: Database) -> list[Trunk]:
    return [Trunk.from_row(r) for r in await db.list_trunk_rows()]


async def edit_trunk(db: Database, name: str, changes: Mapping[str, object], now: float | None = None) -> Trunk:
    t = await get_trunk(db, name)
    for k, v in changes.items():
        if not hasattr(t, k) or k in ("name", "created_at"):
            raise TrunkError(f"cannot change {k!r}")
        setattr(t, k, v)
    validate_trunk(t)
    t.updated_at = now if now is not None else time.time()
    row = {k: v for k, v in t.to_row().items() if k != "name"}
    await db.update_trunk_row(name, row)
    if t.password:
        protect_db(db)
    return t


async def remove_trunk(db: Database, name: str) -> None:
    if not await db.delete_trunk_row(name):
        raise TrunkError(f"no trunk named {name!r}")


async def add_did(
    db: Database,
    number: str,
    destination: str | None,
    service_line: str = "",
    trunk: str | None = None,
    now: float | None = None,
    *,
    known: str | None = None,
    new: str | None = None,
) -> Did:
    """``destination`` (``--to``) for every caller, or ``known`` / ``new`` (smart routing:
    returning patients / new callers; the other one falls back to ``destination``)."""
    number = normalise_did(number, db.region)
    known = parse_destination(known) if known else None
    new = parse_destination(new) if new else None
    if not destination and not (known and new):
        raise TrunkError("a DID needs --to DESTINATION, or both --known and --new")
    destination = parse_destination(destination) if destination else new
    assert destination is not None
    for d in cast("set[str]", {destination, known, new} - {None}):
        if d.startswith("route:") and await db.get_route_row(d[6:]) is None:
            raise TrunkError(f"destination {d}: no route {d[6:]!r} (pypbx route add {d[6:]})")
    if trunk is not None and await db.get_trunk_row(trunk) is None:
        raise TrunkError(f"no trunk named {trunk!r}")
    try:
        await db.insert_did_row(number, destination, service_line, trunk, now if now is not None else time.time())
    except IntegrityError:
        raise TrunkError(f"DID {number} already exists") from None
    if known or new:
        await db.set_did_rule_row(number, known, new)
    return Did(number, destination, service_line, trunk, known, new)


async def list_dids(db: Database) -> list[Did]:
    return [
        Did(
            r["number"],
            r["destination"],
            r["service_line"] or "",
            r["trunk"],
            r.get("known_dest") or None,
            r.get("new_dest") or None,
        )
        for r in await db.list_did_rows()
    ]


async def remove_did(db: Database, number: str) -> None:
    if not await db.delete_did_row(normalise_did(number, db.region)):
        raise TrunkError(f"no DID {number}")


async def set_permissions(
    db: Database, extension: str, classes: str, max_outbound: int | None = None, now: float | None = None
) -> tuple[str, ...]:
    try:
        parsed = parse_classes(classes)
    except ValueError as e:
        raise TrunkError(str(e)) from None
    if "internal" not in parsed:
        parsed = ("internal", *parsed)
    await db.set_extension_permissions_row(
        extension, ",".join(parsed), max_outbound, now if now is not None else time.time()
    )
    return parsed


async def permissions(db: Database) -> dict[str, Permission]:
    return {
        r["number"]: {
            "classes": expand_classes([c for c in r["classes"].split(",") if c]),
            "max_outbound": r["max_outbound"],
        }
        for r in await db.list_extension_permission_rows()
    }


# ----------------------------------------------------------------------------- live service


def _resolve(host: str) -> set[str]:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return {host.strip("[]")}
    except ValueError:
        pass
    try:
        return {str(ai[4][0]) for ai in socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)}
    except OSError:
        return set()


@dataclass
class OutboundCheck:
    ok: bool
    status: int = 0
    reason: str = ""
    cls: str = ""


class TrunkService:
    """The running PBX's view of trunks and DIDs (see the module docstring)."""

    def __init__(
        self,
        *,
        plan: NumberPlan = NumberPlan(),
        max_per_extension: int = 2,
        max_total: int = 10,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "pypbx",
    ) -> None:
        self.plan = plan
        self.max_per_extension = max_per_extension
        self.max_total = max_total
        self.clock = clock
        self.user_agent = user_agent
        self.trunks: dict[str, Trunk] = {}
        self.dids: dict[str, Did] = {}
        self.perms: dict[str, Permission] = {}
        self._ips: dict[str, set[str]] = {}  # trunk -> addresses it may call from
        self.active: dict[str, int] = {}  # trunk -> outside calls in progress
        self.by_extension: dict[str, int] = {}  # extension -> outside calls in progress
        self.registrations: dict[str, TrunkRegistration] = {}
        self._reg_keys: dict[str, tuple[object, ...]] = {}  # trunk -> the settings its registration uses
        self.server: SipServer | None = None
        self._wake = asyncio.Event()
        self._signature: str | None = None
        # (trunk, state before, state now, reason) on every registration state change
        self.on_state: Callable[[str, RegState, RegState, str], None] | None = None

    # -- loading -----------------------------------------------------------------------
    async def emergency_clashes(self, db: Database) -> list[str]:
        """Extensions, queue, IVR menu and mailbox numbers that are emergency numbers of the
        region (they would never be reached: an emergency number always goes out)."""
        plan = self.plan
        found = [f"extension {r['number']}" for r in await db.list_extension_rows()]
        found += [f"queue {r['name']} number {r['number']}" for r in await db.queue_number_rows()]
        found += [f"IVR menu {r['name']} number {r['number']}" for r in await db.list_ivr_menu_rows() if r["number"]]
        found += [f"mailbox {r['box']} number {r['number']}" for r in await db.list_voicemail_box_rows() if r["number"]]
        return [f for f in found if is_emergency(f.rsplit(" ", 1)[-1], plan.region, plan.emergency)]

    async def load(self, db: Database) -> None:
        if self._signature is None:  # the first load, at start
            clashes = await self.emergency_clashes(db)
            if clashes:
                log.warning(
                    "emergency numbers of region %s used internally (never reached, they always go out): %s",
                    self.plan.region,
                    ", ".join(clashes),
                )
        trunks = {t.name: t for t in await list_trunks(db)}
        dids = {d.number: d for d in await list_dids(db)}
        perms = await permissions(db)
        sig = json.dumps(
            [[t.to_row() for t in trunks.values()], [asdict(d) for d in dids.values()], perms],
            sort_keys=True,
            default=str,
        )
        if sig == self._signature:
            return
        self._signature = sig
        if any(t.password for t in trunks.values()):
            protect_db(db)
        ips = await asyncio.to_thread(lambda: {n: _resolve(t.host) for n, t in trunks.items()})
        self.trunks, self.dids, self.perms, self._ips = trunks, dids, perms, ips
        self._sync_registrations()
        log.info("trunks: %d (%s), DIDs: %d", len(trunks), ", ".join(trunks) or "-", len(dids))

    # -- inbound -----------------------------------------------------------------------
    def peer(self, source_host: str) -> Trunk | None:
        """The enabled trunk a request from ``source_host`` belongs to, if any."""
        host = source_host.strip("[]")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return None
        for t in sorted(self.trunks.values(), key=lambda t: (t.priority, t.name)):
            if not t.enabled:
                continue
            if host in self._ips.get(t.name, ()):
                return t
            for net in t.inbound_ips:
                try:
                    if addr in ipaddress.ip_network(net, strict=False):
                        return t
                except ValueError:
                    continue
        return None

    def find_did(self, number: str | None) -> Did | None:
        """A DID by the number as a provider sends it (+33..., 0033..., 33..., national)."""
        if not number:
            return None
        n = "".join(c for c in number if c.isdigit() or c == "+")
        if n in self.dids:
            return self.dids[n]
        return self.dids.get(e164(n, self.plan.region)) if n else None

    def did_for(self, request: Request, trunk: Trunk | None = None) -> Did | None:
        """The DID an INVITE is for: the Request-URI user, else the To user (providers
        that send calls to the registration contact put the DID in To)."""
        did = self.find_did(request.uri.user)
        if did is None:
            try:
                did = self.find_did(request.to.uri.user)
            except Exception:
                did = None
        if did is not None and did.trunk and trunk is not None and did.trunk != trunk.name:
            return None
        return did

    def is_did(self, number: str | None) -> bool:
        return self.find_did(number) is not None

    # -- outbound ----------------------------------------------------------------------
    def allowed_classes(self, extension: str) -> tuple[str, ...]:
        p = self.perms.get(extension)
        return tuple(p["classes"]) if p else tuple(self.plan.default_allowed)

    def check_outbound(self, extension: str, number: str) -> OutboundCheck:
        c = classify(number, self.plan)
        if c.cls is NumberClass.INVALID:
            return OutboundCheck(False, 403, f"Forbidden - {c.number or number!r} is not a valid number", c.cls)
        if not allowed(c.cls, self.allowed_classes(extension)):
            return OutboundCheck(False, 403, f"Forbidden - {c.cls} calls not allowed for {extension}", c.cls)
        if c.cls != "emergency":
            p = self.perms.get(extension)
            limit = p["max_outbound"] if p is not None else None
            limit = self.max_per_extension if limit is None else limit
            if self.by_extension.get(extension, 0) >= limit:
                return OutboundCheck(False, 403, f"Forbidden - {extension} has {limit} outside call(s) already", c.cls)
            if sum(self.by_extension.values()) >= self.max_total:
                return OutboundCheck(False, 503, "Service Unavailable - outside lines busy", c.cls)
        if not self.candidates():
            return OutboundCheck(False, 503, "Service Unavailable - no trunk available", c.cls)
        return OutboundCheck(True, cls=c.cls)

    def candidates(self, exclude: tuple[str, ...] = ()) -> list[Trunk]:
        """Enabled trunks with a free channel, best (lowest priority number) first; a
        registration trunk that is not registered comes after the others."""
        out = []
        for t in self.trunks.values():
            if not t.enabled or t.name in exclude:
                continue
            if t.max_channels and self.active.get(t.name, 0) >= t.max_channels:
                continue
            out.append(t)

        def key(t: Trunk) -> tuple:
            reg = self.registrations.get(t.name)
            down = reg is not None and reg.state is not RegState.REGISTERED
            return (down, t.priority, t.name)

        return sorted(out, key=key)

    def acquire(self, extension: str) -> None:
        self.by_extension[extension] = self.by_extension.get(extension, 0) + 1

    def release(self, extension: str) -> None:
        n = self.by_extension.get(extension, 0) - 1
        if n > 0:
            self.by_extension[extension] = n
        else:
            self.by_extension.pop(extension, None)

    def trunk_busy(self, name: str, delta: int) -> None:
        n = self.active.get(name, 0) + delta
        if n > 0:
            self.active[name] = n
        else:
            self.active.pop(name, None)

    def dial_number(self, trunk: Trunk, number: str) -> str:
        return rewrite(
            number, self.plan, fmt=trunk.number_format, strip_prefix=trunk.strip_prefix, add_prefix=trunk.add_prefix
        )

    def outbound_target(self, trunk: Trunk, user: str) -> tuple[str, Addr]:
        """(Request-URI, Addr) of a call to ``user`` (already rewritten) through ``trunk``."""
        host = trunk.host
        ips = sorted(self._ips.get(trunk.name) or {host})
        tp = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
        h = f"[{host}]" if ":" in host else host
        return (f"sip:{user}@{h}:{trunk.port}{tp}", Addr(trunk.transport.upper(), ips[0], int(trunk.port)))

    def leg_auth(self, trunk: Trunk | str | None) -> dict[str, str] | None:
        """Digest credentials for a leg a worker places through ``trunk``: providers that
        challenge outbound INVITEs (401/407, RFC 3261 §22.2/§22.3) get the trunk's
        ``auth_username`` (else ``username``) and password, for any realm. None for a
        trunk without a password (IP-authenticated). Goes only to the worker
        (``WorkerClient.originate(auth=...)``), never into logs or call events."""
        t = self.trunks.get(trunk) if isinstance(trunk, str) else trunk
        if t is None or not t.password or not (t.auth_username or t.username):
            return None
        return {"username": t.auth_username or t.username or "", "password": t.password, "realm": "*"}

    def from_uri(self, trunk: Trunk, fallback: str) -> str:
        """The From URI of a call through ``trunk``: its caller ID at its domain."""
        user = trunk.caller_id or trunk.username or fallback
        return f"sip:{user}@{trunk.domain or trunk.host}"

    # -- registrations -----------------------------------------------------------------
    def _sync_registrations(self) -> None:
        want = {n: t for n, t in self.trunks.items() if t.enabled and t.register}
        now = self.clock()
        for name in list(self.registrations):
            t = want.get(name)
            reg = self.registrations[name]
            if t is None or (t.username, t.password, t.host, t.port, t.transport, t.expires) != self._reg_keys.get(
                name
            ):
                self._send(reg.stop(now))
                self._untrack(reg)
                del self.registrations[name]
        for name, t in want.items():
            if name in self.registrations:
                continue
            ips = sorted(self._ips.get(name) or {t.host})
            local = self.server.local_address if self.server is not None else (lambda tr, h: ("127.0.0.1", 5060))
            reg = TrunkRegistration(
                name,
                registrar=Addr(t.transport.upper(), ips[0], int(t.port)),
                domain=t.domain or t.host,
                username=t.username or "",
                password=t.password or "",
                auth_username=t.auth_username,
                expires=t.expires,
                local_address=local,
                user_agent=self.user_agent,
            )
            self._reg_keys[name] = (t.username, t.password, t.host, t.port, t.transport, t.expires)
            self.registrations[name] = reg
            if self.server is not None:
                self._send(reg.start(now))
        self._wake.set()

    def _untrack(self, reg: TrunkRegistration) -> None:
        pass

    def _send(self, sends: list) -> None:
        if self.server is None:
            return
        for s in sends:
            reg = next((r for r in self.registrations.values() if r.pending == s.branch), None)
            self.server.send_own(s.request, s.dest, self._on_event(reg))

    def _on_event(self, reg: TrunkRegistration | None) -> OwnCallback:
        def handle(ev: OwnEvent) -> None:
            if reg is None:
                return
            now = self.clock()
            if type(ev) is ResponseReceived:
                before = reg.state
                sends = reg.on_response(ev.response, now)
            elif type(ev) in (Timeout, TransportError):
                before = reg.state
                sends = reg.on_timeout(now, transport_error=type(ev) is TransportError)
            else:
                return
            if reg.state is not before or reg.state is RegState.FAILED:
                log.info("trunk %s: %s (%s)", reg.name, reg.state.value, reg.last_reason)
            if reg.state is not before and self.on_state is not None:
                self.on_state(reg.name, before, reg.state, reg.last_reason)
            self._send(sends)
            self._wake.set()

        return handle

    def tls_peer(self, addr: Addr) -> TlsPeer | None:
        """``SipServer.tls_policy``: how to check the certificate of a TLS trunk at ``addr``
        (its host name; unverified if the trunk says ``tls_verify`` off)."""
        for t in self.trunks.values():
            if t.transport == "tls" and int(t.port) == addr.port and addr.host in (self._ips.get(t.name) or {t.host}):
                return TlsPeer(t.host, verify=t.tls_verify, label=f"trunk {t.name}")
        return None

    def attach(self, server: SipServer) -> None:
        self.server = server
        server.tls_policy = self.tls_peer
        now = self.clock()
        for reg in self.registrations.values():
            if reg.state is RegState.UNREGISTERED:
                self._send(reg.start(now))

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh and retry registrations when due."""
        while not stop.is_set():
            now = self.clock()
            for reg in list(self.registrations.values()):
                self._send(reg.tick(now))
            deadlines = [d for d in (r.next_deadline() for r in self.registrations.values()) if d is not None]
            delay = min([max(0.05, d - self.clock()) for d in deadlines] + [1.0])
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    def unregister_all(self) -> None:
        now = self.clock()
        for reg in self.registrations.values():
            self._send(reg.stop(now))

    def status(self) -> list[dict[str, object]]:
        now = self.clock()
        out = []
        for t in sorted(self.trunks.values(), key=lambda t: (t.priority, t.name)):
            reg = self.registrations.get(t.name)
            d = {
                "name": t.name,
                "host": f"{t.host}:{t.port}",
                "transport": t.transport,
                "priority": t.priority,
                "enabled": t.enabled,
                "active_calls": self.active.get(t.name, 0),
                "max_channels": t.max_channels,
            }
            if reg is not None:
                st = reg.status(now)
                d.update(
                    state=st["state"], last_reason=st["last_reason"], expires_in=st["expires_in"], next_in=st["next_in"]
                )
            else:
                d.update(state="ip-auth", last_reason="", expires_in=None, next_in=None)
            out.append(d)
        return out


# ----------------------------------------------------------------------------- calls


def _header(headers: dict[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in (headers or {}).items():
        if k.lower() == low:
            return v
    return None


@dataclass
class TrunkCall:
    """Trunk context of one call session (``Call.trunk``)."""

    direction: str  # "inbound" | "outbound"
    trunk: str | None = None  # inbound: the trunk it came in on
    did: Did | None = None
    number: str = ""  # outbound: the number dialled
    cls: str = ""
    extension: str = ""  # outbound: the caller
    tried: list[str] = field(default_factory=list)
    current: str | None = None  # outbound: trunk of the leg in progress
    legs: int = 0
    counted: bool = False
    forward: bool = False  # inbound, forwarded out to ``number`` (DID ``external:``)


class TrunkRouter:
    """The trunk parts of call routing and call sessions, used by ``pypbx.call`` through
    small hooks (``CallManager.trunks``)."""

    def __init__(self, svc: TrunkService, *, is_internal: Callable[[str], bool]) -> None:
        self.svc = svc
        self.is_internal = is_internal

    # -- front door (sans-I/O, called by the proxy) ------------------------------------
    def admit(self, request: Request, source: Addr) -> bool | RouteDecision | None:
        """Proxy ``admit``: a trunk's requests are not challenged; an INVITE for a DID from
        anywhere else is refused at once (403)."""
        if request.method != "INVITE":
            return None  # a trunk only sends calls; anything else is authenticated
        if self.svc.peer(source.host) is not None:
            return True
        if request.method == "INVITE":
            n = request.uri.user or ""
            if n and not self.is_internal(n) and self.svc.is_did(n):
                return RouteDecision.reject(403, "Forbidden - DIDs are reached through a trunk")
        return None

    def screen(self, request: Request, source: Addr, user: str | None) -> RouteDecision | tuple[tuple[str, str], ...]:
        """For an INVITE about to be anchored in a worker: a RouteDecision (reject) or the
        headers to add for the worker (``X-PBX-Trunk``/``X-PBX-DID`` inbound,
        ``X-PBX-Outbound`` for an outside call)."""
        if user is None:
            trunk = self.svc.peer(source.host)
            if trunk is None:
                return RouteDecision.reject(403, "Forbidden")
            did = self.svc.did_for(request, trunk)
            if did is None:
                return RouteDecision.reject(404, "Not Found - no such DID")
            asserted = asserted_caller(request)  # a configured trunk is trusted to assert
            who = (("X-PBX-Caller", asserted),) if asserted else ()
            return (("X-PBX-Trunk", trunk.name), ("X-PBX-DID", did.number), *who)
        target = request.uri.user or ""
        if not target or self.is_internal(target) or not self.svc.trunks:
            return ()
        c = classify(target, self.svc.plan)
        if c.cls != "emergency" and len(c.number.lstrip("+")) < MIN_EXTERNAL_DIGITS:
            return ()  # a short unknown number is a wrong extension (404), not a call out
        chk = self.svc.check_outbound(user, target)
        if not chk.ok:
            log.warning("outside call %s -> %s refused: %s %s", user, target, chk.status, chk.reason)
            return RouteDecision.reject(chk.status, chk.reason)
        return (("X-PBX-Outbound", target), ("X-PBX-Class", chk.cls))

    def route_worker_leg(self, request: Request) -> RouteDecision | None:
        """A worker's leg marked ``X-PBX-Trunk``: to that trunk (Request-URI user is the
        number already rewritten for it)."""
        name = request.headers.get("X-PBX-Trunk")
        if not name:
            return None
        trunk = self.svc.trunks.get(name)
        if trunk is None:
            return RouteDecision.reject(503, "Service Unavailable - trunk gone")
        uri, addr = self.svc.outbound_target(trunk, request.uri.user or "")
        # the PBX's own headers stay inside
        strip = {n for n, _ in request.headers if n.lower().startswith("x-pbx-")}
        return RouteDecision.fork([(uri, addr)], headers=[(n, "") for n in sorted(strip)])

    # -- call sessions (CallManager hooks) ---------------------------------------------
    def context(self, s: Call, ev: P.Incoming) -> tuple[TrunkCall, Direction, str, CallExtras] | None:
        """(trunk context, direction, callee number, other CallLog.offer fields) of a call a
        worker reported, or None for an internal call. Sets ``s.callee`` to the destination."""
        hdrs = getattr(ev, "headers", {}) or {}
        trunk, did_no = _header(hdrs, "X-PBX-Trunk"), _header(hdrs, "X-PBX-DID")
        if trunk and did_no:
            # the provider's caller number (its P-Asserted-Identity, else the From user)
            # becomes the call's caller, E.164; a caller who asked for privacy is anonymous
            s.caller = e164(_header(hdrs, "X-PBX-Caller") or s.caller, self.svc.plan.region)
            did = self.svc.dids.get(did_no) or Did(did_no, "extension:" + s.callee)
            tc = TrunkCall("inbound", trunk=trunk, did=did)
            offer: CallExtras = {"did": did.number, "service_line": did.service_line or None}
            if did.smart:
                s.callee = did.number  # the rule decides in start()
            elif did.kind == "queue":
                offer["queue"] = did.target
            elif did.kind == "extension":
                s.callee = did.target
                offer["extension"] = did.target
            else:
                s.callee = did.number
            return tc, Direction.INBOUND, did.number, offer
        number = _header(hdrs, "X-PBX-Outbound")
        if number:
            tc = TrunkCall("outbound", number=number, cls=_header(hdrs, "X-PBX-Class") or "", extension=s.caller)
            return tc, Direction.OUTBOUND, e164(number, self.svc.plan.region), {"extension": s.caller}
        return None

    async def start(self, cm: CallManager, s: Call, ev: P.Incoming) -> bool:
        """After the record is offered. True: handled here (queue takeover, outbound leg)."""
        tc = s.trunk
        assert tc is not None
        await cm.event(
            s,
            "trunk_call",
            direction=tc.direction,
            trunk=tc.trunk,
            did=tc.did.number if tc.did else None,
            service_line=tc.did.service_line if tc.did else None,
            number=tc.number or None,
            number_class=tc.cls or None,
        )
        if tc.direction == "inbound":
            did = tc.did
            if did is None:
                return False
            dest = did.destination
            if did.smart:
                try:
                    known = await C.known(cm.db, s.caller)
                except Exception:
                    call_log(log, s).exception("caller lookup failed (treated as new)")
                    known = False
                dest = did.route(known)
                await cm.event(s, "caller_lookup", number=s.caller, known=known, destination=dest, did=did.number)
                call_log(log, s).info(
                    "DID %s, %s caller %s -> %s", did.number, "known" if known else "new", s.caller, dest
                )
            return await self.to_destination(cm, s, dest)
        self.svc.acquire(tc.extension)
        tc.counted = True
        return await self.dial_next(cm, s)

    async def to_destination(self, cm: CallManager, s: Call, dest: str) -> bool:
        """An inbound call (caller not answered yet) to a DID destination. False: an
        extension -- CallManager rings it as usual (``s.callee`` set)."""
        kind, _, target = dest.partition(":")
        if kind == "route":  # routing rules (pypbx.routing)
            nxt = await resolve(cm, s, target)
            own = s.trunk.did.destination if s.trunk is not None and s.trunk.did is not None else ""
            if nxt is None and own and not own.startswith("route:"):
                nxt = own  # no rule matched: the DID's own destination
            if nxt is None:
                return await self._fail(cm, s, 480, f"route {target}: no rule matched")
            return await self.to_destination(cm, s, nxt)
        if kind == "queue":
            return await self._to_queue(cm, s, target)
        if kind == "extension":
            s.callee = target
            if s.record.extension != target:
                s.record.extension = target
                await cm.calllog.update(s.record, "did_route", destination=dest)
            return False
        if kind == "external":
            tc = s.trunk
            assert tc is not None
            tc.forward = True
            tc.number = target
            tc.cls = classify(target, self.svc.plan).cls
            s.callee = target
            await cm.event(s, "did_forward", number=target, number_class=tc.cls)
            return await self.dial_next(cm, s)
        fl = getattr(cm, "frontline", None)
        if fl is not None and await fl.start_destination(s, dest, answered=False):
            return True
        return await self._fail(cm, s, 480, f"destination {dest} not available")

    async def _to_queue(self, cm: CallManager, s: Call, queue: str) -> bool:
        # CallManager.acd is the narrow AcdHooks protocol; queue entry (has_queue, enter_queue)
        # is AcdLive's, which is what the app sets there
        acd = cast("AcdLive | None", cm.acd)
        if acd is None or not acd.has_queue(queue):
            await cm.hangup(s, s.caller_leg, 480)
            await cm.finish(s, Disposition.FAILED, side="system", cause=f"queue {queue} not available")
            return True
        await acd.enter_queue(s, queue)
        return True

    async def dial_next(self, cm: CallManager, s: Call) -> bool:
        """Originate the trunk leg through the next candidate trunk. False: none left."""
        tc = s.trunk
        assert tc is not None and s.rec is not None
        cands = self.svc.candidates(exclude=tuple(tc.tried))
        if not cands:
            return False if tc.tried else await self._fail(cm, s, 503, "no trunk available")
        trunk = cands[0]
        try:
            dialled = self.svc.dial_number(trunk, tc.number)
        except ValueError:  # only numbers phonenumbers validated go to a trunk
            call_log(log, s).warning("outside call to %s refused: not a valid number", tc.number)
            return await self._fail(cm, s, 403, f"not a valid number: {tc.number}")
        tc.tried.append(trunk.name)
        tc.current = trunk.name
        tc.legs += 1
        leg = f"trunk-{tc.legs}"
        s.callee_leg = leg
        s.ring_deadline = cm.clock() + cm.ring_time
        self.svc.trunk_busy(trunk.name, +1)
        await cm.event(s, "trunk_dial", trunk=trunk.name, number=dialled, caller_id=trunk.caller_id, attempt=tc.legs)
        call_log(log, s).info("%s -> %s via trunk %s as %s", s.caller, tc.number, trunk.name, dialled)
        try:
            # the provider's own Request-URI (sent via the front door, the worker's outbound
            # proxy): the digest-uri of the credentials then matches the Request-URI the
            # provider gets (RFC 2617 §3.2.2.5)
            await cm.originate(
                s,
                leg,
                self.svc.outbound_target(trunk, dialled)[0],
                from_uri=self.svc.from_uri(trunk, s.caller),
                headers={"X-PBX-Call": s.rec.id, "X-PBX-Trunk": trunk.name},
                auth=self.svc.leg_auth(trunk),
            )
        except Exception as exc:
            self.svc.trunk_busy(trunk.name, -1)
            call_log(log, s).warning("originate via %s failed: %s", trunk.name, exc)
            s.callee_leg = None
            return await self.dial_next(cm, s) or await self._fail(cm, s, 503, f"originate failed: {exc}")
        return True

    async def _fail(self, cm: CallManager, s: Call, code: int, cause: str) -> bool:
        await cm.hangup(s, s.caller_leg, code)
        await cm.finish(s, Disposition.FAILED, side="system", cause=f"{code} {cause}")
        return True

    async def on_ended(self, cm: CallManager, s: Call, ev: P.Ended) -> bool:
        """A leg of an outside call ended. True: handled here (failover to the next trunk)."""
        tc: TrunkCall | None = s.trunk
        if (
            tc is None
            or (tc.direction != "outbound" and not tc.forward)
            or ev.leg != s.callee_leg
            or tc.current is None
        ):
            return False
        self.svc.trunk_busy(tc.current, -1)
        trunk = tc.current
        tc.current = None
        code = ev.cause_code or 0
        if s.answered:
            return False
        # the worker answers a provider's 401/407 itself (leg_auth); one that still ends the
        # leg, or a 403 after the credentials, means they were refused: next trunk
        auth_failed = code in (401, 407) or (code == 403 and getattr(ev, "challenged", False))
        if auth_failed:
            await cm.event(s, "trunk_auth_failed", trunk=trunk, status=code, reason=ev.reason)
            call_log(log, s).warning("trunk %s refused our credentials (%s %s)", trunk, code, ev.reason)
            if not self.svc.candidates(exclude=tuple(tc.tried)):
                return await self._fail(cm, s, 503, f"trunk {trunk}: authentication failed ({code} {ev.reason})")
        elif not (code >= 500 or code == 408):
            return False
        if not self.svc.candidates(exclude=tuple(tc.tried)):
            return False
        await cm.event(s, "trunk_failover", trunk=trunk, status=code, reason=ev.reason)
        call_log(log, s).info("trunk %s answered %s: trying the next trunk", trunk, code)
        return await self.dial_next(cm, s)

    def finished(self, s: Call) -> None:
        tc: TrunkCall | None = s.trunk
        if tc is None:
            return
        if tc.current is not None:
            self.svc.trunk_busy(tc.current, -1)
            tc.current = None
        if tc.counted:
            tc.counted = False
            self.svc.release(tc.extension)


# ----------------------------------------------------------------------------- click-to-call


class ClickToCall(FlowBase):
    """``pypbx call EXTENSION NUMBER``: ring the extension's phones first; when it answers,
    dial the number through the best trunk (failover as for any outside call) and bridge.
    Runs as the call's flow (all worker events of the call come here)."""

    def __init__(self, router: TrunkRouter, cm: CallManager, s: Call, extension: str, number: str, cls: str) -> None:
        self.router = router
        self.cm = cm
        self.s = s
        self.extension = extension
        self.number = number
        self.cls = cls
        self.ext_answered = False

    async def start(self) -> str:
        s, cm = self.s, self.cm
        s.caller, s.callee, s.caller_leg = self.extension, self.number, "ext"
        s.trunk = TrunkCall("outbound", number=self.number, cls=self.cls, extension=self.extension)
        s.rec = await cm.calllog.offer(
            direction=Direction.OUTBOUND,
            caller_number=self.extension,
            callee_number=e164(self.number, self.router.svc.plan.region),
            extension=self.extension,
            worker=str(s.worker.pid),
        )
        await cm.event(s, "click_to_call", extension=self.extension, number=self.number, number_class=self.cls)
        self.router.svc.acquire(self.extension)
        s.trunk.counted = True
        s.ring_deadline = cm.clock() + cm.ring_time
        host = cm.front_door.split(":")[0]
        await cm.originate(
            s,
            "ext",
            f"sip:{self.extension}@{cm.front_door}",
            from_uri=f"sip:{self.number}@{host}",
            headers={"X-PBX-Call": s.rec.id},
        )
        call_log(log, s).info("click-to-call %s -> %s", self.extension, self.number)
        return s.rec.id

    async def handle(self, ev: CallInput) -> None:
        s, cm = self.s, self.cm
        if s.ended:
            return
        if isinstance(ev, Shutdown):
            for leg in (s.callee_leg, s.caller_leg):
                if leg:
                    await cm.hangup(s, leg, None)
            await cm.finish(
                s,
                Disposition.ANSWERED if s.answered else Disposition.INTERRUPTED,
                side="system",
                cause="pbx shutting down",
            )
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            await cm.worker_lost(s, ev)
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
        elif isinstance(ev, P.Answered):
            if ev.leg == "ext" and not self.ext_answered:
                self.ext_answered = True
                await cm.event(s, "extension_answered", extension=self.extension)
                await cm.play(s, "ext", cm.moh, loop=True, quiet=True)  # while the number rings
                if not await self.router.dial_next(cm, s):
                    await cm.hangup(s, "ext", None)
            elif ev.leg == s.callee_leg and not s.answered:
                s.answered = True
                s.ring_deadline = None
                await cm.stop_play(s, "ext", quiet=True)
                await cm.connect(s)
        elif isinstance(ev, P.Ringing) and ev.leg == s.callee_leg:
            await cm.event(s, "ringing", callee=self.number)
        elif isinstance(ev, P.Ended):
            code = ev.cause_code or 0
            if ev.leg == "ext":
                if s.callee_leg:
                    await cm.hangup(s, s.callee_leg, None)
                if s.answered:
                    await cm.finish(s, Disposition.ANSWERED, side="caller", cause="BYE")
                elif self.ext_answered:
                    await cm.finish(
                        s, Disposition.ABANDONED_RINGING, side="caller", cause=f"{code} {ev.reason}".strip()
                    )
                else:
                    await cm.finish(
                        s,
                        disposition_for_status(code or 480),
                        side="caller",
                        cause=f"extension: {code} {ev.reason}".strip(),
                    )
            elif ev.leg == s.callee_leg:
                if await self.router.on_ended(cm, s, ev):
                    return
                await cm.hangup(s, "ext", None)
                if s.answered:
                    await cm.finish(s, Disposition.ANSWERED, side="callee", cause="BYE")
                else:
                    await cm.finish(
                        s, disposition_for_status(code or 480), side="callee", cause=f"{code} {ev.reason}".strip()
                    )


async def click_to_call(router: TrunkRouter, cm: CallManager, extension: str, number: str) -> dict[str, object]:
    """Local API ``call``: start a click-to-call session; returns the call record's id."""
    if not cm.is_extension(extension):
        raise TrunkError(f"no extension {extension}")
    if not cm.is_registered(extension):
        raise TrunkError(f"extension {extension} has no registered phone")
    chk = router.svc.check_outbound(extension, number)
    if not chk.ok:
        raise TrunkError(f"{chk.status} {chk.reason}")
    try:
        call_id = await cm.place(lambda s: ClickToCall(router, cm, s, extension, number, chk.cls), what="click-to-call")
    except NoMediaWorker as e:
        raise TrunkError(str(e)) from None
    return {"call_id": call_id, "extension": extension, "number": number, "class": chk.cls}
