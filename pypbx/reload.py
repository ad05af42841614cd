"""``SIGHUP``: re-read the config file without dropping a call.

:func:`changes` lists the dotted keys that differ between the running config and the file;
:func:`merge` builds the config the PBX runs with from now on: the new values of what can
change while calls are up (:data:`LIVE`), the running values of everything else — those need
a restart, and the PBX says so in one line. A file that does not load (a typo, a bad value)
changes nothing: one error line, the running config stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from pypbx.config import Config

#: keys (``section.key``; a bare ``section`` = all its keys) applied at once on SIGHUP
LIVE: frozenset[str] = frozenset(
    {
        "log_level",
        "security",  # limits, bans, exempt, scanners (the guard keeps its state)
        "notify",
        "crm",
        "site.timezone",
        "web.board_wait_warn",
        "web.board_wait_alarm",
        "web.lock_after",
        "web.lock_minutes",
        "web.session_hours",
    }
)
#: within a live section, what still needs a restart (objects built once at start)
NOT_LIVE: frozenset[str] = frozenset({"security.nonce_lifetime", "security.digest_algorithms"})


def _flat(cfg: Config) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(cfg):
        if f.name == "config_path":  # where it was read from, not a setting
            continue
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            for g in dataclasses.fields(v):
                out[f"{f.name}.{g.name}"] = getattr(v, g.name)
        else:
            out[f.name] = v
    return out


def changes(old: Config, new: Config) -> list[str]:
    """The keys whose values differ, in the config's order."""
    a, b = _flat(old), _flat(new)
    return [k for k in a if a[k] != b.get(k)]


def is_live(key: str) -> bool:
    return key not in NOT_LIVE and (key in LIVE or key.split(".", 1)[0] in LIVE)


def split(keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """(applied now, needing a restart)."""
    keys = list(keys)
    return [k for k in keys if is_live(k)], [k for k in keys if not is_live(k)]


def merge(old: Config, new: Config) -> Config:
    """The running config with the live keys taken from ``new``."""
    sections: dict[str, object] = {}
    for f in dataclasses.fields(old):
        o, n = getattr(old, f.name), getattr(new, f.name)
        if not (dataclasses.is_dataclass(o) and not isinstance(o, type)):
            if is_live(f.name):
                sections[f.name] = n
            continue
        live = {g.name: getattr(n, g.name) for g in dataclasses.fields(o) if is_live(f"{f.name}.{g.name}")}
        if live:
            sections[f.name] = dataclasses.replace(o, **live)
    return dataclasses.replace(old, **sections)  # type: ignore[arg-type]
