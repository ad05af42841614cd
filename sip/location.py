"""Location service: the registrar's bindings (sans-I/O, in memory).

An address of record (AoR) here is the extension's user part (``'1001'``), as in the
``registrations`` table. ``now`` / ``expires_at`` / ``registered_at`` are **wall-clock**
UNIX seconds (``time.time()``) because bindings are persisted and survive restarts.

Bindings are identified (RFC 3261 §10.3 step 6, RFC 5626 §6):

- by ``+sip.instance`` (and ``reg-id``) when the REGISTER carries one, so a rebooted phone
  (new Call-ID, maybe a new port or a new Zoiper ``rinstance``) replaces its old binding;
- otherwise by the Contact URI compared loosely per RFC 3261 §19.1.4: scheme, user, host
  (case-insensitive), port (default 5060/5061 filled in) and ``transport`` param; other
  URI parameters (``rinstance``, ``ob`` ...) do not take part in the comparison.

The stored ``contact`` is always the Contact URI text exactly as the phone sent it.

Mutations return :class:`Changes` (added / updated / removed) so that the caller can
persist them (``Changes.upserts()`` / ``Changes.deletes()`` match the
``pypbx.registrations.save_registrations`` arguments).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Binding", "Changes", "LocationService", "contact_key"]


@dataclass(frozen=True, slots=True)
class Binding:
    aor: str
    contact: str  # Contact URI exactly as given (never rebuilt)
    instance: str | None  # +sip.instance value (as sent, e.g. '"<urn:uuid:...>"' unquoted)
    reg_id: int | None
    call_id: str
    cseq: int
    expires_at: float  # wall clock
    q: float = 1.0
    source: tuple[str, str, int] = ("UDP", "", 0)  # (transport, host, port) the REGISTER came from
    local: str | None = None  # id of the socket / connection it came in on
    user_agent: str | None = None
    registered_at: float = 0.0

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))

    def to_row(self) -> dict[str, Any]:
        t, h, p = self.source
        return {
            "aor": self.aor,
            "contact": self.contact,
            "instance": self.instance,
            "reg_id": self.reg_id,
            "call_id": self.call_id,
            "cseq": self.cseq,
            "expires_at": self.expires_at,
            "q": self.q,
            "source_transport": t,
            "source_host": h,
            "source_port": p,
            "local": self.local,
            "user_agent": self.user_agent,
            "registered_at": self.registered_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Binding:
        reg_id = row.get("reg_id")
        port = row.get("source_port")
        q = row.get("q")
        return cls(
            aor=row["aor"],
            contact=row["contact"],
            instance=row.get("instance"),
            reg_id=None if reg_id is None else int(reg_id),
            call_id=row.get("call_id") or "",
            cseq=int(row.get("cseq") or 0),
            expires_at=float(row.get("expires_at") or 0.0),
            q=1.0 if q is None else float(q),
            source=(
                row.get("source_transport") or "UDP",
                row.get("source_host") or "",
                int(port) if port is not None else 0,
            ),
            local=row.get("local"),
            user_agent=row.get("user_agent"),
            registered_at=float(row.get("registered_at") or 0.0),
        )


@dataclass(slots=True)
class Changes:
    added: list[Binding] = field(default_factory=list)
    updated: list[Binding] = field(default_factory=list)
    removed: list[Binding] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def extend(self, other: Changes) -> Changes:
        self.added += other.added
        self.updated += other.updated
        self.removed += other.removed
        return self

    def upserts(self) -> list[dict[str, Any]]:
        return [b.to_row() for b in self.added] + [b.to_row() for b in self.updated]

    def deletes(self) -> list[tuple[str, str]]:
        return [(b.aor, b.contact) for b in self.removed]


# sip:user@host:port;params  (user part optional; IPv6 host in brackets)
_URI_RE = re.compile(r"\s*<?\s*([A-Za-z][A-Za-z0-9+.-]*):(?:([^@;?>]*)@)?(\[[^\]]*\]|[^:;?>\s]+)(?::(\d+))?([^?>]*)")
_TRANSPORT_RE = re.compile(r";\s*transport\s*=\s*([^;?>\s]+)", re.I)
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")


#: What makes two Contact URIs the same binding (:func:`contact_key`).
ContactKey = (
    tuple[str, str] | tuple[str, str | None, str, int, str]
)  # ("?", raw) | (scheme, user, host, port, transport)


def contact_key(contact: str) -> ContactKey:
    """Loose RFC 3261 §19.1.4 identity of a Contact URI (see the module docstring)."""
    m = _URI_RE.match(contact)
    if m is None:
        return ("?", contact.strip())
    scheme = m.group(1).lower()
    user = m.group(2)
    if user is not None:
        user = user.split(":", 1)[0]  # drop a password
        if "%" in user:
            user = _PCT_RE.sub(lambda x: chr(int(x.group(1), 16)), user)
    host = m.group(3).lower()
    port = m.group(4)
    t = _TRANSPORT_RE.search(m.group(5))
    transport = t.group(1).lower() if t else ("tls" if scheme == "sips" else "udp")
    if port is None:
        port = 5061 if (scheme == "sips" or transport == "tls") else 5060
    return (scheme, user, host, int(port), transport)


def _order(b: Binding) -> tuple[float, float]:
    return (-b.q, -b.registered_at)


class LocationService:
    """In-memory bindings by AoR."""

    __slots__ = ("_by_aor", "_count")

    def __init__(self) -> None:
        self._by_aor: dict[str, list[Binding]] = {}
        self._count = 0

    # ------------------------------------------------------------------ queries
    def bindings(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of an AoR, highest q first (then most recently registered)."""
        lst = self._by_aor.get(aor)
        if not lst:
            return []
        live = [b for b in lst if b.expires_at > now]
        if len(live) > 1:
            live.sort(key=_order)
        return live

    def all_bindings(self, aor: str) -> list[Binding]:
        """Every stored binding of an AoR, including expired ones not purged yet."""
        return list(self._by_aor.get(aor, ()))

    def aors(self) -> list[str]:
        return list(self._by_aor)

    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def find(
        self,
        aor: str,
        contact: str,
        instance: str | None = None,
        reg_id: int | None = None,
        key: ContactKey | None = None,
    ) -> list[Binding]:
        """Stored bindings (expired or not) that a new registration of ``contact`` replaces:
        same instance (+ reg-id), or the same contact per :func:`contact_key`."""
        lst = self._by_aor.get(aor)
        if not lst:
            return []
        if key is None:
            key = contact_key(contact)
        out = []
        for b in lst:
            if (
                (instance is not None and b.instance == instance and b.reg_id == reg_id)
                or b.contact == contact
                or contact_key(b.contact) == key
            ):
                out.append(b)
        return out

    # ------------------------------------------------------------------ mutations
    def upsert(self, new: Binding, replaces: Iterable[Binding] | None = None) -> Changes:
        """Store ``new``; drop the bindings it replaces (default: :meth:`find`)."""
        aor = new.aor
        lst = self._by_aor.get(aor)
        if lst is None:
            lst = self._by_aor[aor] = []
        if replaces is None:
            replaces = self.find(aor, new.contact, new.instance, new.reg_id)
        ch = Changes()
        updated = False
        for old in replaces:
            try:
                lst.remove(old)
            except ValueError:
                continue
            self._count -= 1
            if old.contact == new.contact:
                updated = True
            else:
                ch.removed.append(old)
        # never keep two bindings with the same contact text (the table's primary key)
        for old in [b for b in lst if b.contact == new.contact]:
            lst.remove(old)
            self._count -= 1
            updated = True
        lst.append(new)
        self._count += 1
        (ch.updated if updated else ch.added).append(new)
        return ch

    def remove(self, bindings: Iterable[Binding]) -> Changes:
        ch = Changes()
        for b in bindings:
            lst = self._by_aor.get(b.aor)
            if not lst:
                continue
            try:
                lst.remove(b)
            except ValueError:
                continue
            self._count -= 1
            ch.removed.append(b)
            if not lst:
                del self._by_aor[b.aor]
        return ch

    def remove_all(self, aor: str) -> Changes:
        lst = self._by_aor.pop(aor, None)
        if not lst:
            return Changes()
        self._count -= len(lst)
        return Changes(removed=list(lst))

    def purge(self, now: float) -> list[Binding]:
        """Remove and return the expired bindings."""
        gone: list[Binding] = []
        for aor in list(self._by_aor):
            lst = self._by_aor[aor]
            keep = [b for b in lst if b.expires_at > now]
            if len(keep) != len(lst):
                gone += [b for b in lst if b.expires_at <= now]
                if keep:
                    self._by_aor[aor] = keep
                else:
                    del self._by_aor[aor]
        self._count -= len(gone)
        return gone

    def load(self, bindings: Iterable[Binding | dict[str, Any]]) -> int:
        """Restore persisted bindings at start (rows or Binding objects). Returns how many."""
        n = 0
        for b in bindings:
            if isinstance(b, dict):
                b = Binding.from_row(b)
            self.upsert(b, replaces=[x for x in self._by_aor.get(b.aor, ()) if x.contact == b.contact])
            n += 1
        return n
