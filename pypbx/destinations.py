"""Where a call can be sent: the destination strings shared by DIDs (:mod:`pypbx.trunks`),
routing rules (:mod:`pypbx.routing`), IVR actions (:mod:`pypbx.ivr`), ring groups' and
queues' fallbacks. :func:`parse_destination` is pure; :func:`require_destination` (the one
validator every creation path calls) and :func:`known_names` read the database.

One spelling is stored and shown: ``group:NAME`` (``ring_group:NAME`` is accepted on input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pypbx.errors import InUseError, UnknownNameError

if TYPE_CHECKING:
    from pypbx.db import Database

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


async def referrers(db: Database, dest: str) -> list[str]:
    """Everything that points at ``dest`` (``kind:name``): ``DID +331..., IVR menu main option 1``.
    Used to refuse removing an object still in use, and by ``pypbx check``."""
    from pypbx.check import references  # the reference walk lives with the checker

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
    if used:
        kind, _, name = canonical(dest).partition(":")
        shown = ", ".join(used[:5]) + (f" and {len(used) - 5} more" if len(used) > 5 else "")
        raise InUseError(f"{KIND_NAMES.get(kind, kind)} {name} is in use by {shown}: point them elsewhere first")
