"""The site's time zone (``[site] timezone``): calendar days, hours of day and dates typed
on the command line are the clinic's, whatever the machine's clock zone is.

Loading a config (:func:`pypbx.config.load_config`) sets the zone of the process; until
then, and when the config leaves it empty, it is the system's zone (``TZ``, else
``/etc/timezone``, else the ``/etc/localtime`` link, else UTC). Day boundaries come from
``zoneinfo``: a daylight-saving day has 23 or 25 hours, never "midnight + 86400 s".
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "day_bounds",
    "day_start",
    "local",
    "local_day",
    "set_zone",
    "system_zone_name",
    "valid_zone",
    "zone",
    "zone_name",
]

_name: str | None = None
_zone: ZoneInfo | None = None


def valid_zone(name: str) -> ZoneInfo | None:
    """``ZoneInfo(name)``, or None when ``name`` is not an IANA zone on this machine."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def system_zone_name() -> str:
    """The machine's IANA zone name (UTC when it cannot be told)."""
    candidates: list[str] = []
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz)
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for c in candidates:
        if valid_zone(c) is not None:
            return c
    return "UTC"


def set_zone(name: str | None) -> None:
    """Use zone ``name`` (an IANA name already checked; "" or None = the system's)."""
    global _name, _zone
    _name = name or system_zone_name()
    _zone = valid_zone(_name) or ZoneInfo("UTC")


def zone_name() -> str:
    if _name is None:
        set_zone(None)
    assert _name is not None
    return _name


def zone() -> ZoneInfo:
    if _zone is None:
        set_zone(None)
    assert _zone is not None
    return _zone


def local(ts: float) -> dt.datetime:
    """UNIX time -> aware datetime in the site zone."""
    return dt.datetime.fromtimestamp(ts, zone())


def local_day(ts: float) -> str:
    """UNIX time -> the site's calendar day, ``YYYY-MM-DD``."""
    return local(ts).strftime("%Y-%m-%d")


def day_start(day: dt.date) -> float:
    """UNIX time of the site's midnight starting ``day``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone()).timestamp()


def day_bounds(day: dt.date) -> tuple[float, float]:
    """``[start, end)`` of the site's calendar ``day`` (23 or 25 hours on a DST change)."""
    return day_start(day), day_start(day + dt.timedelta(days=1))


def today() -> dt.date:
    return dt.datetime.now(zone()).date()
