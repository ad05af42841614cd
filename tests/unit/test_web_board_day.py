"""The wallboard's "today" is the site's day ([site] timezone), not the machine's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from pypbx import sitetime
from pypbx.web.board import today_range


@pytest.fixture
def site_zone() -> Iterator[None]:
    yield
    sitetime.set_zone(None)


def test_today_is_the_sites_day_even_far_from_the_machines_zone(site_zone: None) -> None:
    sitetime.set_zone("Pacific/Auckland")
    auckland = ZoneInfo("Pacific/Auckland")
    # 2026-06-01 23:30 UTC is already 2 June, 11:30 in Auckland
    now = dt.datetime(2026, 6, 1, 23, 30, tzinfo=dt.UTC).timestamp()
    lo, hi = today_range(now)
    assert dt.datetime.fromtimestamp(lo, auckland) == dt.datetime(2026, 6, 2, tzinfo=auckland)
    assert hi - lo == 86400


def test_the_day_clocks_go_back_has_25_hours(site_zone: None) -> None:
    sitetime.set_zone("Europe/Paris")
    now = dt.datetime(2026, 10, 25, 12, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    lo, hi = today_range(now)
    assert hi - lo == 25 * 3600
