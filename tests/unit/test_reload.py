"""SIGHUP's config reload (pypbx.reload): which keys changed, which apply at once, which need
a restart, the merged config; the abuse guard's new limits keep its bans."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pypbx import reload as R
from pypbx import sitetime
from pypbx.config import load_config, render_config
from sip.guard import AbuseGuard


@pytest.fixture(autouse=True)
def machine_zone() -> Iterator[None]:
    """Loading a config sets the process's site zone: back to the machine's afterwards."""
    yield
    sitetime.set_zone(None)


def test_changes_split_and_merge(tmp_path: Path) -> None:
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text(render_config(data_dir="./var"))
    b.write_text(
        render_config(
            data_dir="./var",
            log_level="DEBUG",
            security={"rate_limit": 20.0, "nonce_lifetime": 600},
            web={"board_wait_warn": 10, "port": 8181},
            sip={"udp_port": 5070},
            site={"timezone": "Europe/Paris"},
        )
    )
    old, new = load_config(a), load_config(b)
    keys = R.changes(old, new)
    now, later = R.split(keys)
    assert now == ["log_level", "security.rate_limit", "site.timezone", "web.board_wait_warn"]
    assert later == ["sip.udp_port", "security.nonce_lifetime", "web.port"]
    m = R.merge(old, new)
    assert (m.log_level, m.security.rate_limit, m.web.board_wait_warn, m.site.timezone) == (
        "DEBUG",
        20.0,
        10,
        "Europe/Paris",
    )
    assert (m.sip.udp_port, m.security.nonce_lifetime, m.web.port) == (5060, 300, 8080)  # as running
    assert R.changes(old, old) == []


def test_guard_reconfigure_keeps_bans_and_unbans_the_newly_exempt() -> None:
    g = AbuseGuard(auth_fail_limit=1, ban_time=600)
    g.ban("192.0.2.7", 0.0)
    g.ban("198.51.100.9", 0.0)
    g.reconfigure(
        auth_fail_limit=3,
        auth_fail_window=60,
        ban_time=60,
        rate_limit=10,
        rate_burst=20,
        scanner_user_agents=["friendly-scanner"],
        exempt=["198.51.100.0/24"],
        malformed_log_interval=30,
        max_new_per_second=50,
        flood_ban_after=100,
    )
    assert (g.auth_fail_limit, g.rate_limit, g.flood_ban_after) == (3, 10.0, 100)
    assert [ip for ip, _ in g.bans(1.0)] == ["192.0.2.7"]  # kept; the newly exempt one unbanned
    assert g.is_exempt("198.51.100.20") and not g.is_exempt("192.0.2.7")
