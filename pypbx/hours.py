"""Opening hours: weekly schedules plus dated exceptions (holidays), in the clinic's time zone.

A :class:`Schedule` has a name, an IANA time zone (``zoneinfo``), a week (for each weekday
a list of ``(start, end)`` minute ranges) and dated exceptions: a date closed all day, or
open with special hours (``2026-12-24 08:00-12:00``). :func:`is_open` answers for one
instant; the instant is taken in the schedule's zone, so daylight-saving changes are
handled by ``zoneinfo``.

Text forms (what the CLI takes)::

    week:     "mon-fri 08:00-18:00, sat 09:00-12:00"
              "mon-fri 08:00-12:00 13:30-18:00, sat 09:00-12:00"   (several ranges a day)
              "mon/wed/fri 08:00-12:00"                            (a list of days)
              "24:00" is allowed as an end (until midnight)
    holiday:  "2026-12-25" (closed) or "2026-12-24 08:00-12:00" (special hours)

Stored in the ``schedules`` table (week and holidays as JSON). ``pypbx hours set|holiday|
list|show|remove`` manage them.

Test / demo aid: when the environment variable ``PYPBX_FAKE_NOW`` holds an ISO time
(``2026-12-25T10:00`` in the schedule's zone, or with an offset ``...+01:00``), :func:`now`
returns it — only this module honours it, so a test can check after-hours routing against
a real running PBX with a fixed clock. Never set it in production.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pypbx import sitetime
from pypbx.db import Database
from pypbx.db.rows import ScheduleRow
from pypbx.errors import PbxError, PbxUsageError

FAKE_NOW_ENV = "PYPBX_FAKE_NOW"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class HoursError(PbxError, ValueError):
    pass


class HoursUsageError(HoursError, PbxUsageError):
    """Bad hours typed by the admin (exit status 2), e.g. overlapping ranges."""


Range = tuple[int, int]  # minutes from midnight, [start, end)


def _parse_range(text: str) -> Range:
    m = _RANGE_RE.match(text.strip())
    if not m:
        raise HoursError(f"bad time range {text!r} (want HH:MM-HH:MM)")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise HoursError(f"bad time in {text!r}")
    a, b = h1 * 60 + m1, h2 * 60 + m2
    if b <= a:
        raise HoursError(f"range {text!r} ends before it starts")
    return a, b


def _fmt_range(r: Range) -> str:
    return f"{r[0] // 60:02d}:{r[0] % 60:02d}-{r[1] // 60:02d}:{r[1] % 60:02d}"


def _parse_days(text: str) -> list[int]:
    out: list[int] = []
    for part in text.lower().split("/"):
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise HoursError(f"bad days {text!r} (mon..sun)")
            i, j = DAYS.index(a), DAYS.index(b)
            out += list(range(i, j + 1)) if i <= j else list(range(i, 7)) + list(range(j + 1))
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise HoursError(f"bad day {part!r} (mon..sun)")
    return out


def parse_week(text: str) -> dict[int, list[Range]]:
    """``"mon-fri 08:00-18:00, sat 09:00-12:00"`` -> {0: [(480, 1080)], ..., 5: [(540, 720)]}."""
    week: dict[int, list[Range]] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        words = entry.split()
        if len(words) < 2:
            raise HoursError(f"bad entry {entry!r} (want e.g. 'mon-fri 08:00-18:00')")
        ranges = [_parse_range(w) for w in words[1:]]
        for d in _parse_days(words[0]):
            week.setdefault(d, []).extend(ranges)
    for d in week:
        week[d] = sorted(set(week[d]))
        for (a1, b1), (a2, b2) in zip(week[d], week[d][1:], strict=False):
            if a2 < b1:
                raise HoursUsageError(
                    f"overlapping ranges on {DAYS[d]}: {_fmt_range((a1, b1))} and {_fmt_range((a2, b2))} "
                    f"(write one range, e.g. {_fmt_range((a1, max(b1, b2)))})"
                )
    return week


def format_week(week: dict[int, list[Range]]) -> str:
    """Inverse of :func:`parse_week` (consecutive days with the same hours joined)."""
    parts: list[str] = []
    d = 0
    while d < 7:
        ranges = week.get(d)
        if not ranges:
            d += 1
            continue
        e = d
        while e + 1 < 7 and week.get(e + 1) == ranges:
            e += 1
        days = DAYS[d] if d == e else f"{DAYS[d]}-{DAYS[e]}"
        parts.append(f"{days} " + " ".join(_fmt_range(r) for r in ranges))
        d = e + 1
    return ", ".join(parts)


def parse_exception(text: str) -> tuple[str, list[Range]]:
    """``"2026-12-25"`` -> closed; ``"2026-12-24 08:00-12:00"`` -> special hours."""
    words = text.split()
    if not words:
        raise HoursError("empty date")
    try:
        day = dt.date.fromisoformat(words[0]).isoformat()
    except ValueError:
        raise HoursError(f"bad date {words[0]!r} (want YYYY-MM-DD)") from None
    return day, [_parse_range(w) for w in words[1:]]


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"unknown time zone {tz!r} (e.g. Europe/Paris)") from None


def _ranges(v: object) -> list[Range]:
    """A stored JSON list of ``[start, end]`` pairs -> ranges."""
    if not isinstance(v, list):
        raise HoursError(f"bad stored hours {v!r}")
    out: list[Range] = []
    for r in v:
        a, b = r
        out.append((int(a), int(b)))
    return out


@dataclass
class Schedule:
    name: str
    tz: str = "UTC"
    week: dict[int, list[Range]] = field(default_factory=dict)
    exceptions: dict[str, list[Range]] = field(default_factory=dict)  # date -> [] (closed) / hours
    updated_at: float | None = None

    def ranges_on(self, day: dt.date) -> list[Range]:
        if day.isoformat() in self.exceptions:
            return self.exceptions[day.isoformat()]
        return self.week.get(day.weekday(), [])

    def to_dict(self) -> dict[str, Any]:  # pypbx/cli/hours.py indexes the parts
        return {
            "name": self.name,
            "tz": self.tz,
            "week": format_week(self.week),
            "days": {DAYS[d]: [_fmt_range(r) for r in rs] for d, rs in sorted(self.week.items())},
            "exceptions": {k: [_fmt_range(r) for r in v] for k, v in sorted(self.exceptions.items())},
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_row(cls, row: ScheduleRow) -> Schedule:
        week = {int(k): _ranges(v) for k, v in json.loads(row["week"] or "{}").items()}
        exc = (
            {k: _ranges(v) for k, v in json.loads(row["holidays"] or "{}").items()}
            if (row["holidays"] or "").startswith("{")
            else {}
        )
        return cls(
            name=row["name"],
            tz=row["tz"],
            week=week,
            exceptions=exc,
            updated_at=row.get("updated_at"),
        )


def now(tz: str | None = None) -> dt.datetime:
    """The current time (aware). ``PYPBX_FAKE_NOW`` overrides it (tests and demos only)."""
    fake = os.environ.get(FAKE_NOW_ENV)
    if fake:
        try:
            t = dt.datetime.fromisoformat(fake)
        except ValueError:
            raise HoursError(f"{FAKE_NOW_ENV}={fake!r} is not an ISO time") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=zone(tz) if tz else dt.UTC)
        return t
    return dt.datetime.now(dt.UTC)


def local_time(schedule: Schedule, when: dt.datetime | float | None = None) -> dt.datetime:
    z = zone(schedule.tz)
    if when is None:
        when = now(schedule.tz)
    if isinstance(when, (int, float)):
        return dt.datetime.fromtimestamp(when, z)
    if when.tzinfo is None:
        return when.replace(tzinfo=z)
    return when.astimezone(z)


def is_open(schedule: Schedule, when: dt.datetime | float | None = None) -> bool:
    """Is the clinic open at ``when`` (aware datetime, UNIX time, or None = now)?"""
    t = local_time(schedule, when)
    minute = t.hour * 60 + t.minute
    return any(a <= minute < b for a, b in schedule.ranges_on(t.date()))


# ------------------------------------------------------------------ the store


def _row_values(s: Schedule) -> tuple[str, str]:
    return (json.dumps({str(k): v for k, v in s.week.items()}), json.dumps(dict(s.exceptions)))


async def set_schedule(
    db: Database, name: str, week: str, tz: str | None = None, clock: Callable[[], float] = time.time
) -> Schedule:
    """Create or replace ``name``'s week. ``tz`` None keeps an existing schedule's zone; a
    new schedule then takes the site's (``[site] timezone``)."""
    if not NAME_RE.match(name):
        raise HoursError(f"bad schedule name {name!r}")
    old = await get_schedule(db, name, missing_ok=True)
    if tz is None:
        tz = old.tz if old else sitetime.zone_name()
    zone(tz)
    t = clock()
    s = Schedule(name=name, tz=tz, week=parse_week(week), exceptions=old.exceptions if old else {}, updated_at=t)
    await db.upsert_schedule_row(name, tz, *_row_values(s), t)
    return s


def public_holidays(country: str, year: int, subdiv: str | None = None) -> list[tuple[str, str]]:
    """``[(YYYY-MM-DD, name), ...]`` of ``country``'s public holidays in ``year`` (the
    ``holidays`` package; ``subdiv`` a region of it, e.g. ``"6AE"`` Alsace for FR)."""
    # function-level: only `hours holiday --country` needs the holiday tables (~150 ms of import)
    import holidays as hol

    code = country.strip().upper()
    supported = hol.list_supported_countries()
    if code not in supported:
        raise HoursUsageError(f"unknown country {country!r} for public holidays (an ISO 3166 code like FR, KR, US)")
    if not 1900 <= year <= 2200:
        raise HoursUsageError(f"year {year} is outside 1900-2200")
    if subdiv is not None and subdiv not in supported[code]:
        known = ", ".join(supported[code][:12]) + (" ..." if len(supported[code]) > 12 else "")
        raise HoursUsageError(f"unknown subdivision {subdiv!r} of {code}" + (f" (known: {known})" if known else ""))
    try:
        table = hol.country_holidays(code, subdiv=subdiv, years=year)
    except NotImplementedError as e:
        raise HoursUsageError(f"no public holidays for {code}: {e}") from None
    return sorted((d.isoformat(), str(n)) for d, n in table.items())


async def import_holidays(
    db: Database,
    name: str,
    country: str,
    year: int,
    subdiv: str | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Close schedule ``name`` on ``country``'s public holidays of ``year``. Idempotent: a
    date that already has an exception (closed, or special hours the admin set) is kept as
    it is. Returns ``(added, already_there)``, each ``[(date, holiday name), ...]``."""
    s = await get_schedule(db, name)
    days = public_holidays(country, year, subdiv)
    added = [(d, n) for d, n in days if d not in s.exceptions]
    kept = [(d, n) for d, n in days if d in s.exceptions]
    if added:
        for d, _n in added:
            s.exceptions[d] = []
        t = clock()
        s.updated_at = t
        await db.upsert_schedule_row(name, s.tz, *_row_values(s), t)
    return added, kept


async def add_exception(
    db: Database, name: str, text: str, clock: Callable[[], float] = time.time, remove: bool = False
) -> Schedule:
    s = await get_schedule(db, name)
    day, ranges = parse_exception(text)
    if remove:
        if day not in s.exceptions:
            raise HoursError(f"{name} has no exception on {day}")
        del s.exceptions[day]
    else:
        s.exceptions[day] = ranges
    t = clock()
    s.updated_at = t
    await db.upsert_schedule_row(name, s.tz, *_row_values(s), t)
    return s


@overload
async def get_schedule(db: Database, name: str, missing_ok: Literal[False] = False) -> Schedule: ...
@overload
async def get_schedule(db: Database, name: str, missing_ok: bool) -> Schedule | None: ...
async def get_schedule(db: Database, name: str, missing_ok: bool = False) -> Schedule | None:
    row = await db.get_schedule_row(name)
    if row is None:
        if missing_ok:
            return None
        raise HoursError(f"no schedule {name!r} (create it: pypbx hours set {name} --week ...)")
    return Schedule.from_row(row)


async def list_schedules(db: Database) -> list[Schedule]:
    return [Schedule.from_row(r) for r in await db.list_schedule_rows()]


async def remove_schedule(db: Database, name: str) -> None:
    if not await db.delete_schedule_row(name):
        raise HoursError(f"no schedule {name!r}")
