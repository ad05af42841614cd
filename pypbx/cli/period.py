"""The period options of call listings and reports: ``--date``, ``--since``, ``--until``."""

from __future__ import annotations

import datetime as _dt

import click

from pypbx.errors import PbxUsageError


def parse_when(value: str | None, name: str) -> float | None:
    """'2026-11-23', '2026-11-23 14:30', 'today', 'yesterday' (local time) -> UNIX seconds."""
    if value is None:
        return None
    v = value.strip().lower()
    today = _dt.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    if v == "today":
        return today.timestamp()
    if v == "yesterday":
        return (today - _dt.timedelta(days=1)).timestamp()
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(value.strip(), fmt).timestamp()
        except ValueError:
            pass
    raise click.BadParameter(f"expected YYYY-MM-DD [HH:MM], 'today' or 'yesterday', got {value!r}", param_hint=name)


def day_range(date: str | None, since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """``--date`` (one day), else ``--since`` / ``--until`` -> (start, end) UNIX seconds."""
    if date is not None:
        start = parse_when(date, "--date")
        assert start is not None
        return start, start + 86400
    lo, hi = parse_when(since, "--since"), parse_when(until, "--until")
    if lo is not None and hi is not None and lo > hi:
        raise PbxUsageError(f"--since {since} is after --until {until}: swap them")
    return lo, hi
