"""pypbx.hours: weekly schedules, holidays, time zones, PYPBX_FAKE_NOW, the store and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from pypbx import hours as H
from pypbx.db import open_db

PARIS = ZoneInfo("Europe/Paris")


def sched(week: str = "mon-fri 08:00-18:00, sat 09:00-12:00", tz: str = "Europe/Paris") -> H.Schedule:
    return H.Schedule("clinic", tz, H.parse_week(week))


def test_parse_and_format_week():
    w = H.parse_week("mon-fri 08:00-12:00 13:30-18:00, sat 09:00-12:00")
    assert w[0] == [(480, 720), (810, 1080)] and w[4] == w[0] and w[5] == [(540, 720)] and 6 not in w
    assert H.format_week(w) == "mon-fri 08:00-12:00 13:30-18:00, sat 09:00-12:00"
    assert H.parse_week("fri-mon 10:00-11:00").keys() == {4, 5, 6, 0}
    assert H.parse_week("mon/wed 00:00-24:00")[2] == [(0, 1440)]
    for bad in ("mon 18:00-08:00", "funday 08:00-09:00", "mon", "mon 8-9", "mon 25:00-26:00"):
        with pytest.raises(H.HoursError):
            H.parse_week(bad)


def test_is_open_weekdays_weekend_edges_in_the_clinic_zone():
    s = sched()
    assert H.is_open(s, dt.datetime(2026, 11, 23, 8, 0, tzinfo=PARIS))  # Monday 08:00
    assert not H.is_open(s, dt.datetime(2026, 11, 23, 7, 59, tzinfo=PARIS))
    assert not H.is_open(s, dt.datetime(2026, 11, 23, 18, 0, tzinfo=PARIS))  # end is exclusive
    assert H.is_open(s, dt.datetime(2026, 11, 28, 11, 0, tzinfo=PARIS))  # Saturday
    assert not H.is_open(s, dt.datetime(2026, 11, 29, 11, 0, tzinfo=PARIS))  # Sunday
    # the same instant seen from UTC: 07:30 UTC = 08:30 Paris (winter)
    assert H.is_open(s, dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC))
    assert H.is_open(s, dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC).timestamp())
    # summer time: 06:30 UTC = 08:30 Paris
    assert H.is_open(s, dt.datetime(2026, 6, 22, 6, 30, tzinfo=dt.UTC))
    assert not H.is_open(s, dt.datetime(2026, 6, 22, 5, 30, tzinfo=dt.UTC))


def test_holidays_and_special_hours():
    s = sched()
    day, r = H.parse_exception("2026-12-25")
    s.exceptions[day] = r
    day, r = H.parse_exception("2026-12-24 08:00-12:00")
    s.exceptions[day] = r
    assert not H.is_open(s, dt.datetime(2026, 12, 25, 10, 0, tzinfo=PARIS))  # a Friday, but a holiday
    assert H.is_open(s, dt.datetime(2026, 12, 24, 11, 0, tzinfo=PARIS))
    assert not H.is_open(s, dt.datetime(2026, 12, 24, 14, 0, tzinfo=PARIS))
    with pytest.raises(H.HoursError):
        H.parse_exception("2026-13-01")


def test_fake_now_env(monkeypatch):
    s = sched()
    monkeypatch.setenv(H.FAKE_NOW_ENV, "2026-11-23T10:00")  # naive: the schedule's zone
    assert H.now("Europe/Paris") == dt.datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)
    assert H.is_open(s)
    monkeypatch.setenv(H.FAKE_NOW_ENV, "2026-11-23T22:00+01:00")
    assert not H.is_open(s)
    monkeypatch.setenv(H.FAKE_NOW_ENV, "garbage")
    with pytest.raises(H.HoursError):
        H.is_open(s)


def test_store_roundtrip(tmp_path):
    async def go():
        async with open_db(tmp_path / "x.db") as db:
            await H.set_schedule(db, "clinic", "mon-fri 08:00-18:00", "Europe/Paris", clock=lambda: 5.0)
            await H.add_exception(db, "clinic", "2026-12-25")
            s = await H.set_schedule(db, "clinic", "mon-sat 08:00-18:00", "Europe/Paris")  # holidays kept
            assert "2026-12-25" in s.exceptions
            got = await H.get_schedule(db, "clinic")
            assert got.week == s.week and got.exceptions == {"2026-12-25": []} and got.tz == "Europe/Paris"
            await H.add_exception(db, "clinic", "2026-12-25", remove=True)
            assert (await H.get_schedule(db, "clinic")).exceptions == {}
            with pytest.raises(H.HoursError):
                await H.set_schedule(db, "x", "mon 08:00-09:00", "Mars/Olympus")
            with pytest.raises(H.HoursError):
                await H.get_schedule(db, "nope")
            assert [x.name for x in await H.list_schedules(db)] == ["clinic"]
            await H.remove_schedule(db, "clinic")
            assert await H.list_schedules(db) == []

    asyncio.run(go())


def test_cli_hours(invoke_cli, tmp_config, monkeypatch):
    c = ("--config", str(tmp_config))
    r = invoke_cli(
        "hours", "set", "clinic", "--week", "mon-fri 08:00-18:00, sat 09:00-12:00", "--tz", "Europe/Paris", *c
    )
    assert r.exit_code == 0, r.output
    assert invoke_cli("hours", "holiday", "clinic", "2026-12-25", *c).exit_code == 0
    monkeypatch.setenv(H.FAKE_NOW_ENV, "2026-12-25T10:00")
    r = invoke_cli("hours", "show", "clinic", "--json", *c)
    d = json.loads(r.output)
    assert d["open_now"] is False and d["exceptions"] == {"2026-12-25": []} and d["tz"] == "Europe/Paris"
    monkeypatch.setenv(H.FAKE_NOW_ENV, "2026-12-23T10:00")
    d = json.loads(invoke_cli("hours", "list", "--json", *c).output)
    assert [x["open_now"] for x in d] == [True]
    assert "clinic" in invoke_cli("hours", "list", *c).output
    r = invoke_cli("hours", "set", "x", "--week", "mon 9-10", *c)
    assert r.exit_code == 2 and "bad time range" in r.output
    r = invoke_cli("hours", "show", "nope", *c)
    assert r.exit_code == 2 and "unknown schedule 'nope'" in r.output  # issue 12: no such object = exit 2
