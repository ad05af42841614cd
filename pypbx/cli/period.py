"""The period options of call listings and reports: ``--date``, ``--since``, ``--until``.

Dates and times are the site's (``[site] timezone``, pypbx.sitetime); a day is from the
site's midnight to the next one (23 or 25 hours on a daylight-saving change).
"""

from __future__ import annotations

import datetime as _dt

import click

from pypbx import sitetime
from pypbx.errors import PbxUsageError


def _day(value: str, name: str) -> _dt.date | None:
    v = value.strip().lower()
    if v == "today":
        return sitetime.today()
    if v == "yesterday":
        return sitetime.today() - _dt.timedelta(days=1)
    try:
        return _dt.datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        return None


def _bad(value: str, name: str) -> click.BadParameter:
    return click.BadParameter(f"expected YYYY-MM-DD [HH:MM], 'today' or 'yesterday', got {value!r}", param_hint=name)


def parse_when(value: str | None, name: str) -> float | None:
    """'2026-11-23', '2026-11-23 14:30', 'today', 'yesterday' (site time) -> UNIX seconds."""
    if value is None:
        return None
    day = _day(value, name)
    if day is not None:
        return sitetime.day_start(day)
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"):
        try:
            return _dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=sitetime.zone()).timestamp()
        except ValueError:
            pass
    raise _bad(value, name)


def day_range(date: str | None, since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """``--date`` (one site day), else ``--since`` / ``--until`` -> (start, end) UNIX seconds."""
    if date is not None:
        day = _day(date, "--date")
        if day is None:  # a date with a time: the next 24 wall-clock hours
            start = parse_when(date, "--date")
            assert start is not None
            end = sitetime.local(start) + _dt.timedelta(days=1)
            return start, end.timestamp()
        return sitetime.day_bounds(day)
    lo, hi = parse_when(since, "--since"), parse_when(until, "--until")
    if lo is not None and hi is not None and lo > hi:
        raise PbxUsageError(f"--since {since} is after --until {until}: swap them")
    return lo, hi
