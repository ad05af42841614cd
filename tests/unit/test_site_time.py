"""The site time zone (issue 12): ``[site] timezone`` drives day ranges (DST-correct),
report day bucketing and the zone of new schedules; ``hours set`` keeps a schedule's zone;
overlapping ranges are refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from pypbx import hours as H
from pypbx import reports, sitetime
from pypbx.calllog import CallLog, Direction
from pypbx.cli.period import day_range, parse_when
from pypbx.config import ConfigError, config_from_dict, load_config
from pypbx.db import open_db

PARIS = ZoneInfo("Europe/Paris")
SEOUL = ZoneInfo("Asia/Seoul")  # no daylight-saving time


@pytest.fixture(autouse=True)
def _system_zone_after():
    yield
    sitetime.set_zone(None)


def test_config_site_timezone_default_and_bad_name():
    cfg = config_from_dict({"site": {"timezone": "Europe/Paris"}})
    assert cfg.site.timezone == "Europe/Paris" and sitetime.zone_name() == "Europe/Paris"
    assert config_from_dict({}).site.timezone == ""
    assert sitetime.zone_name() == sitetime.system_zone_name()
    with pytest.raises(ConfigError) as e:
        config_from_dict({"site": {"timezone": "Mars/Olympus"}})
    assert str(e.value).startswith("config error: site.timezone: unknown time zone 'Mars/Olympus'")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"site\.timezone: expected a string"):
        config_from_dict({"site": {"timezone": 1}})


def test_dst_day_has_23_hours_in_paris_and_24_in_seoul():
    sitetime.set_zone("Europe/Paris")
    lo, hi = day_range("2026-03-29", None, None)  # clocks go forward at 02:00
    assert lo is not None and hi is not None
    assert hi - lo == 23 * 3600
    assert lo == dt.datetime(2026, 3, 29, tzinfo=PARIS).timestamp()
    assert hi == dt.datetime(2026, 3, 30, tzinfo=PARIS).timestamp()
    lo, hi = day_range("2026-10-25", None, None)  # clocks go back
    assert lo is not None and hi is not None and hi - lo == 25 * 3600
    lo, hi = day_range("2026-03-30", None, None)
    assert lo is not None and hi is not None and hi - lo == 24 * 3600
    sitetime.set_zone("Asia/Seoul")
    lo, hi = day_range("2026-03-29", None, None)
    assert lo == dt.datetime(2026, 3, 29, tzinfo=SEOUL).timestamp()
    assert hi is not None and lo is not None and hi - lo == 24 * 3600


def test_times_and_today_are_the_sites():
    sitetime.set_zone("Europe/Paris")
    assert parse_when("2026-03-29 10:00", "--since") == dt.datetime(2026, 3, 29, 10, 0, tzinfo=PARIS).timestamp()
    today = dt.datetime.now(PARIS).date()
    assert parse_when("today", "--date") == dt.datetime(today.year, today.month, today.day, tzinfo=PARIS).timestamp()
    lo, hi = day_range("2026-03-28 12:00", None, None)  # a date with a time: 24 wall-clock hours
    assert lo is not None and hi is not None and hi - lo == 23 * 3600


def test_report_day_and_hour_bucketing_in_the_site_zone():
    ts = dt.datetime(2026, 3, 28, 23, 30, tzinfo=dt.UTC).timestamp()  # 00:30 in Paris, 08:30 in Seoul
    sitetime.set_zone("Europe/Paris")
    assert reports._local_day(ts) == "2026-03-29" and reports._hour(ts) == 0
    sitetime.set_zone("UTC")
    assert reports._local_day(ts) == "2026-03-28" and reports._hour(ts) == 23
    sitetime.set_zone("Asia/Seoul")
    assert reports._local_day(ts) == "2026-03-29" and reports._hour(ts) == 8


def test_overlapping_ranges_refused_with_exit_status_2():
    with pytest.raises(H.HoursUsageError) as e:
        H.parse_week("mon-fri 08:00-12:00 11:00-13:00")
    assert e.value.exit_code == 2
    assert str(e.value) == "overlapping ranges on mon: 08:00-12:00 and 11:00-13:00 (write one range, e.g. 08:00-13:00)"
    with pytest.raises(H.HoursUsageError, match="on mon"):
        H.parse_week("mon-fri 08:00-12:00, mon 09:00-10:00")
    assert H.parse_week("mon 08:00-12:00 12:00-13:00")[0] == [(480, 720), (720, 780)]  # touching is fine


def test_cli_hours_set_keeps_the_schedules_zone_and_new_ones_take_the_sites(invoke_cli, make_config):
    cfg_path = make_config(site={"timezone": "Asia/Seoul"})
    c = ("--config", str(cfg_path))
    r = invoke_cli("hours", "set", "clinic", "--week", "mon-fri 08:00-18:00", "--tz", "Europe/Paris", *c)
    assert r.exit_code == 0, r.output
    r = invoke_cli("hours", "set", "clinic", "--week", "mon 09:00-10:00", *c)
    assert r.exit_code == 0 and "(Europe/Paris)" in r.output
    assert json.loads(invoke_cli("hours", "show", "clinic", "--json", *c).output)["tz"] == "Europe/Paris"
    r = invoke_cli("hours", "set", "clinic", "--week", "mon 09:00-10:00", "--tz", "UTC", *c)
    assert r.exit_code == 0 and "(UTC)" in r.output
    r = invoke_cli("hours", "set", "annex", "--week", "mon 09:00-10:00", *c)
    assert r.exit_code == 0 and "(Asia/Seoul)" in r.output
    assert load_config(cfg_path).site.timezone == "Asia/Seoul"


def test_cli_hours_set_overlap_is_one_line_and_nonzero(invoke_cli, tmp_config):
    r = invoke_cli("hours", "set", "c6", "--week", "mon-fri 08:00-12:00 11:00-13:00", "--config", str(tmp_config))
    assert r.exit_code != 0
    assert r.output.strip().splitlines() == [
        "Error: overlapping ranges on mon: 08:00-12:00 and 11:00-13:00 (write one range, e.g. 08:00-13:00)"
    ]
    assert "c6" not in invoke_cli("hours", "list", "--config", str(tmp_config)).output


def test_cli_bad_site_timezone_is_one_line(invoke_cli, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('data_dir = "./var"\n[site]\ntimezone = "Europe/Pariss"\n', encoding="utf-8")
    r = invoke_cli("hours", "list", "--config", str(p))
    assert r.exit_code != 0
    assert len(r.output.strip().splitlines()) == 1 and "site.timezone: unknown time zone 'Europe/Pariss'" in r.output


def _calls_at(cfg_path, instants: list[dt.datetime]) -> list[str]:
    """One internal call offered at each instant; their ids, in order."""
    cfg = load_config(cfg_path)

    async def go() -> list[str]:
        ids = []
        async with open_db(cfg.db_path) as db:
            for t in instants:
                log = CallLog(db, lambda t=t: t.timestamp())
                c = await log.offer(direction=Direction.INTERNAL, caller_number="1001", callee_number="1003")
                ids.append(c.id)
        return ids

    return asyncio.run(go())


@pytest.mark.parametrize("zone_name", ["Europe/Paris", "Asia/Seoul"])
def test_cli_calls_list_date_is_the_sites_day(invoke_cli, make_config, zone_name):
    """``calls list --date 2026-03-29``: exactly the calls of that day on the clinic's clock
    (23 hours in Paris, where clocks go forward that night; 24 in Seoul)."""
    cfg_path = make_config(site={"timezone": zone_name})
    z = ZoneInfo(zone_name)
    instants = [
        dt.datetime(2026, 3, 28, 23, 59, tzinfo=z),  # the day before
        dt.datetime(2026, 3, 29, 0, 0, tzinfo=z),  # the first minute
        dt.datetime(2026, 3, 29, 3, 30, tzinfo=z),  # after the change in Paris
        dt.datetime(2026, 3, 29, 23, 59, tzinfo=z),  # the last minute
        dt.datetime(2026, 3, 30, 0, 0, tzinfo=z),  # the next day
    ]
    ids = _calls_at(cfg_path, instants)
    r = invoke_cli("calls", "list", "--date", "2026-03-29", "--json", "--config", str(cfg_path))
    assert r.exit_code == 0, r.output
    assert sorted(x["id"] for x in json.loads(r.output)) == sorted(ids[1:4])
    r = invoke_cli(
        "calls", "list", "--since", "2026-03-29 03:00", "--until", "2026-03-30", "--json", "--config", str(cfg_path)
    )
    assert sorted(x["id"] for x in json.loads(r.output)) == sorted(ids[2:4])


def test_cli_route_add_without_tz_takes_the_sites(invoke_cli, make_config):
    c = ("--config", str(make_config(site={"timezone": "Europe/Paris"})))
    r = invoke_cli("route", "add", "main", *c)
    assert r.exit_code == 0 and "(time zone Europe/Paris)" in r.output, r.output
    r = invoke_cli("route", "add", "night", "--tz", "Asia/Seoul", *c)
    assert r.exit_code == 0 and "(time zone Asia/Seoul)" in r.output, r.output
