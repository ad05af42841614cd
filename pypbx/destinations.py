"""Where a call can be sent: the destination strings shared by DIDs (:mod:`pypbx.trunks`),
routing rules (:mod:`pypbx.routing`), IVR actions (:mod:`pypbx.ivr`), ring groups' and
queues' fallbacks. :func:`parse_destination` is pure; :func:`require_destination` (the one
validator every creation path calls), :func:`known_names`, :func:`references` (every
destination the configuration holds) and :func:`refuse_if_used` read the database.

One spelling is stored and shown: ``group:NAME`` (``ring_group:NAME`` is accepted on input).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from acd.model import QueueConfig
from pypbx.errors import InUseError, UnknownNameError

if TYPE_CHECKING:
    from pypbx.db import Database
    from pypbx.db.rows import QueueRow

log = logging.getLogger(__name__)

#: Outside numbers shorter than this are refused (emergency numbers excepted, see trunks).
MIN_EXTERNAL_DIGITS = 6
DEST_KINDS = ("extension", "queue", "ivr", "voicemail", "group", "external", "route")
#: Input spellings -> the one stored and shown.
ALIASES = {"menu": "ivr", "ring_group": "group", "ext": "extension", "number": "external"}
#: What each checkable kind is called in messages.
KIND_NAMES = {
    "extension": "extension",
    "queue": "queue",
    "ivr": "IVR menu",
    "voicemail": "voicemail box",
    "group": "ring group",
    "route": "route",
}


class DestinationError(ValueError):
    """A destination string that is not one."""


def parse_destination(dest: str) -> str:
    """``kind:target`` in canonical form (``menu:`` -> ``ivr:``, ``ring_group:`` -> ``group:``,
    ``ext:`` -> ``extension:``, ``number:`` -> ``external:``; an external number's digits)."""
    kind, _, target = (dest or "").strip().partition(":")
    kind = ALIASES.get(kind, kind)
    target = target.strip()
    if kind not in DEST_KINDS or not target:
        raise DestinationError(
            f"bad destination {dest!r}: extension:NUMBER, queue:NAME, ivr:MENU, voicemail:BOX, "
            "group:NAME, external:NUMBER or route:NAME"
        )
    if kind == "external":
        n = "".join(c for c in target if c.isdigit() or c == "+")
        if not n or not n.lstrip("+").isdigit() or len(n.lstrip("+")) < MIN_EXTERNAL_DIGITS:
            raise DestinationError(f"bad external number {target!r}")
        target = n
    return f"{kind}:{target}"


def canonical(dest: str) -> str:
    """``dest`` with its kind's one spelling (``ring_group:x`` -> ``group:x``); anything
    that is not ``kind:target`` unchanged."""
    kind, sep, target = dest.partition(":")
    return f"{ALIASES.get(kind, kind)}{sep}{target}" if sep else dest


async def known_names(db: Database, kind: str) -> list[str]:
    """The names a destination of ``kind`` may point to (``[]`` for unchecked kinds).
    A voicemail box is a box, or an extension's or queue's (created on first use)."""
    kind = ALIASES.get(kind, kind)
    if kind == "extension":
        return [r["number"] for r in await db.list_extension_rows()]
    if kind == "queue":
        return [r["name"] for r in await db.list_queue_rows()]
    if kind == "ivr":
        return [r["name"] for r in await db.list_ivr_menu_rows()]
    if kind == "group":
        return [r["name"] for r in await db.list_ring_group_rows()]
    if kind == "route":
        return [r["name"] for r in await db.list_route_rows()]
    if kind == "voicemail":
        return [r["box"] for r in await db.list_voicemail_box_rows()] + await known_names(db, "extension")
    return []


def _name(kind: str, target: str) -> str:
    """The object a target names: ``queue:front@5`` -> ``front``."""
    return target.partition("@")[0] if kind == "queue" else target


async def _missing(db: Database, dest: str) -> UnknownNameError | None:
    kind, sep, target = canonical(dest.strip()).partition(":")
    if not sep or kind not in KIND_NAMES or not target:
        return None
    name = _name(kind, target)
    names = await known_names(db, kind)
    if kind == "voicemail":
        names += await known_names(db, "queue")
    return None if name in names else UnknownNameError(KIND_NAMES[kind], name, names)


async def dangling(db: Database, dest: str) -> str | None:
    """Why ``dest`` points nowhere (``unknown queue 'nope' (did you mean front?)``), or None
    (it exists, or its kind is not checkable: external numbers, play:, hangup ...)."""
    err = await _missing(db, dest)
    return None if err is None else str(err)


async def require_destination(db: Database, dest: str) -> None:
    """Refuse (:class:`~pypbx.errors.UnknownNameError`, exit 2) a destination that points at
    nothing: the one check behind DIDs, IVR options, ring groups' ``--then``, route actions,
    queues' overflow/fallback and voicemail boxes."""
    err = await _missing(db, dest)
    if err is not None:
        raise err


# --------------------------------------------------------------------------- who points where


def queue_configs(rows: list[QueueRow]) -> list[QueueConfig]:
    out: list[QueueConfig] = []
    for r in rows:
        try:
            out.append(QueueConfig.from_dict(json.loads(r["config"])))
        except (ValueError, KeyError, TypeError):
            log.warning("queue %s: stored configuration is damaged", r["name"])
    return out


def _ivr_actions(config: str) -> list[tuple[str, str]]:
    """(label, action) of an IVR menu's stored configuration."""
    try:
        raw = json.loads(config)
    except ValueError:
        return []
    out: list[tuple[str, str]] = []
    if not isinstance(raw, dict):
        return out
    for digits, action in sorted((raw.get("options") or {}).items()):
        out.append((f"option {digits}", str(action)))
    for key in ("on_timeout", "on_invalid", "after_hours", "known_caller", "new_caller"):
        if raw.get(key):
            out.append((key.replace("_", "-"), str(raw[key])))
    return out


def _ivr_dest(action: str) -> str | None:
    """An IVR action as a destination (``menu:x`` -> ``ivr:x``); None for play:, lang:, hangup."""
    kind, _, arg = action.partition(":")
    kind = ALIASES.get(kind.strip(), kind.strip())
    if kind in KIND_NAMES:
        return f"{kind}:{arg.strip()}"
    return None


async def references(db: Database) -> list[tuple[str, str]]:
    """Every (where, destination) the configuration holds, destinations in their one spelling."""
    out: list[tuple[str, str]] = []
    for d in await db.list_did_rows():
        for label, dest in (
            ("", d["destination"]),
            (" known callers", d["known_dest"]),
            (" new callers", d["new_dest"]),
        ):
            if dest:
                out.append((f"DID {d['number']}{label}", canonical(dest)))
    for m in await db.list_ivr_menu_rows():
        for label, action in _ivr_actions(m["config"]):
            dest = _ivr_dest(action)
            if dest:
                out.append((f"IVR menu {m['name']} {label}", dest))
    for g in await db.list_ring_group_rows():
        if g["then_dest"]:
            out.append((f"ring group {g['name']} then", canonical(g["then_dest"])))
        try:
            members = json.loads(g["members"])
        except ValueError:
            members = []
        for member in members:
            out.append((f"ring group {g['name']} member", f"extension:{member}"))
    for r in await db.list_route_rule_rows():
        if r["destination"] != "agent:last":
            out.append((f"route {r['route']} rule {r['position']}", canonical(r["destination"])))
    for q in queue_configs(await db.list_queue_rows()):
        if q.overflow is not None:
            t = q.overflow.target
            out.append((f"queue {q.name} overflow", canonical(f"{t.kind.value}:{t.target}")))
        if q.fallback is not None:
            out.append((f"queue {q.name} fallback", canonical(f"{q.fallback.kind.value}:{q.fallback.target}")))
    return out


async def referrers(db: Database, dest: str) -> list[str]:
    """Everything that points at ``dest`` (``kind:name``): ``DID +331..., IVR menu main option 1``.
    Used to refuse removing an object still in use, and by ``pypbx check``."""
    want = canonical(dest)
    out: list[str] = []
    for where, target in await references(db):
        kind, _, t = canonical(target).partition(":")
        if f"{kind}:{_name(kind, t)}" == want:
            out.append(where)
    return out


async def refuse_if_used(db: Database, dest: str) -> None:
    """Refuse (:class:`~pypbx.errors.InUseError`) removing what ``dest`` names while
    something still points to it, naming what does."""
    used = await referrers(db, dest)
    if dest.startswith("queue:"):
        # acdstore.remove_queue refuses another queue's overflow/fallback itself, in its words
        used = [u for u in used if not u.startswith("queue ")]
    if used:
        kind, _, name = canonical(dest).partition(":")
        shown = ", ".join(used[:5]) + (f" and {len(used) - 5} more" if len(used) > 5 else "")
        raise InUseError(f"{KIND_NAMES.get(kind, kind)} {name} is in use by {shown}: point them elsewhere first")
