"""Persisted registrar bindings, so phones stay registered across restarts.

A binding is a dict with the keys of :data:`pypbx.db.REGISTRATION_FIELDS`:

    aor (extension number, e.g. '1001'), contact (Contact URI string), instance (+sip.instance or None),
    reg_id (int or None), call_id, cseq (int), expires_at (wall-clock UNIX seconds), q (float or None),
    source_transport ('UDP'|'TCP'|'TLS'), source_host, source_port (int), local (the local socket the
    REGISTER came in on, free-form string), user_agent, registered_at (wall-clock UNIX seconds)

Missing keys are stored as NULL; unknown keys raise ValueError. The server batches binding
changes and flushes them with one :func:`save_registrations` call every ~100 ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pypbx.db import REGISTRATION_FIELDS, Database, RegistrationRow

_FIELDS = frozenset(REGISTRATION_FIELDS)


def _check(u: dict[str, object]) -> dict[str, object]:
    extra = set(u) - _FIELDS
    if extra:
        raise ValueError(f"unknown registration field(s): {', '.join(sorted(extra))}")
    if not u.get("aor") or not u.get("contact"):
        raise ValueError("a registration needs 'aor' and 'contact'")
    return u


async def load_registrations(db: Database, aor: str | None = None) -> list[RegistrationRow]:
    """All saved bindings (or those of one AOR), including expired ones not yet purged."""
    return await db.load_registration_rows(aor)


async def save_registrations(
    db: Database, upserts: Iterable[Mapping[str, object]], deletes: Iterable[tuple[str, str]]
) -> None:
    """One transaction: delete (aor, contact) pairs, then insert-or-update the upserts."""
    ups = [_check(dict(u)) for u in upserts]
    dels = [(a, c) for a, c in deletes]
    await db.save_registration_rows(ups, dels)


async def purge_expired(db: Database, now: float) -> int:
    """Delete bindings with expires_at <= now (wall clock). Returns how many."""
    return await db.purge_expired_registrations(now)
