"""Abuse guard: bans, rate limiting, scanners, log lines, bounded state."""

from __future__ import annotations

import logging
import re

import pytest

from sip import guard as guard_mod
from sip.guard import DEFAULT_SCANNER_USER_AGENTS, AbuseGuard, Verdict

IP = "203.0.113.7"


@pytest.fixture
def seclog(caplog):
    caplog.set_level(logging.DEBUG, logger="pypbx.security")

    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "pypbx.security"]

    return lines


def test_auth_failures_ban_at_limit(seclog):
    g = AbuseGuard(auth_fail_limit=5, auth_fail_window=60, ban_time=600)
    for i in range(4):
        assert g.auth_failed(IP, 100.0 + i, user="1001") is False
    assert g.allow_datagram(IP, 500, 104.5)
    assert g.auth_failed(IP, 105.0, user="1001") is True
    assert not g.allow_datagram(IP, 500, 106.0)
    assert g.bans(106.0) == [(IP, 705.0)]
    assert g.is_banned(IP, 106.0)
    lines = seclog()
    assert lines.count('SECURITY auth-failed ip=203.0.113.7 user="1001" method=REGISTER') == 5
    assert "SECURITY banned ip=203.0.113.7 for=600s failures=5 reason=auth" in lines
    c = g.counters()
    assert c["banned_ips"] == 1 and c["bans_total"] == 1 and c["auth_failures"] == 5
    assert c["dropped_banned"] == 1


def test_failures_outside_window_do_not_ban():
    g = AbuseGuard(auth_fail_limit=3, auth_fail_window=60)
    assert not g.auth_failed(IP, 0.0)
    assert not g.auth_failed(IP, 30.0)
    assert not g.auth_failed(IP, 61.0)  # the one at 0 fell out of the window
    assert g.auth_failed(IP, 62.0)


def test_auth_ok_resets_failures():
    g = AbuseGuard(auth_fail_limit=3)
    g.auth_failed(IP, 1.0)
    g.auth_failed(IP, 2.0)
    g.auth_ok(IP)
    assert not g.auth_failed(IP, 3.0)
    assert not g.auth_failed(IP, 4.0)
    assert g.auth_failed(IP, 5.0)


def test_ban_expires_and_ip_recovers(seclog):
    g = AbuseGuard(auth_fail_limit=1, ban_time=600)
    assert g.auth_failed(IP, 0.0)
    assert not g.allow_datagram(IP, 100, 599.9)
    assert g.allow_datagram(IP, 100, 600.0)
    assert not g.is_banned(IP, 600.0)
    assert g.bans(600.0) == []
    assert "SECURITY unbanned ip=203.0.113.7" in seclog()
    assert g.counters()["banned_ips"] == 0
    # and can be banned again
    assert g.auth_failed(IP, 601.0)


def test_purge_lifts_bans(seclog):
    g = AbuseGuard()
    g.ban(IP, 0.0, 10)
    g.purge(5.0)
    assert g.is_banned(IP, 5.0)
    g.purge(10.0)
    assert g.counters()["banned_ips"] == 0
    assert seclog().count("SECURITY unbanned ip=203.0.113.7") == 1


def test_manual_ban_and_unban(seclog):
    g = AbuseGuard()
    g.ban(IP, 0.0, 30)
    assert "SECURITY banned ip=203.0.113.7 for=30s failures=0 reason=manual" in seclog()
    assert g.unban(IP)
    assert not g.unban(IP)
    assert g.allow_datagram(IP, 10, 1.0)


def test_oversize_dropped(seclog):
    g = AbuseGuard()
    assert g.allow_datagram(IP, 65536, 0.0)
    assert not g.allow_datagram(IP, 65537, 0.0)
    assert g.counters()["dropped_oversize"] == 1
    assert "SECURITY oversize-dropped ip=203.0.113.7 size=65537 dropped=1" in seclog()


def test_rate_limit_token_bucket(seclog):
    g = AbuseGuard(rate_limit=10.0, rate_burst=20)
    ok = sum(g.allow_datagram(IP, 100, 0.0) for _ in range(50))
    assert ok == 20
    assert g.counters()["dropped_rate"] == 30
    # refill: 1 s at 10/s gives 10 more
    ok = sum(g.allow_datagram(IP, 100, 1.0) for _ in range(50))
    assert ok == 10
    # other sources are unaffected
    assert g.allow_datagram("198.51.100.1", 100, 1.0)


def test_rate_limited_log_is_itself_rate_limited(seclog):
    g = AbuseGuard(rate_limit=1.0, rate_burst=1)
    t = 0.0
    for _ in range(10_000):
        g.allow_datagram(IP, 100, t)
        t += 0.001  # 10 s of flood at 1000/s
    lines = [line for line in seclog() if "rate-limited" in line]
    assert 1 <= len(lines) <= 2
    assert lines[0] == "SECURITY rate-limited ip=203.0.113.7 dropped=1"
    g.allow_datagram(IP, 100, 10.5)
    g.allow_datagram(IP, 100, 10.5)
    lines = [line for line in seclog() if "rate-limited" in line]
    m = re.fullmatch(r"SECURITY rate-limited ip=203\.0\.113\.7 dropped=(\d+)", lines[-1])
    assert m and int(m.group(1)) > 1000


def test_dropped_while_banned_log_rate_limited(seclog):
    g = AbuseGuard(ban_time=600)
    g.ban(IP, 0.0)
    for i in range(1000):
        assert not g.allow_datagram(IP, 100, i * 0.005)  # 5 s
    lines = [line for line in seclog() if "dropped-banned" in line]
    assert lines == ["SECURITY dropped-banned ip=203.0.113.7 dropped=1"]
    g.allow_datagram(IP, 100, 11.0)
    lines = [line for line in seclog() if "dropped-banned" in line]
    assert lines[-1] == "SECURITY dropped-banned ip=203.0.113.7 dropped=1000"
    assert g.counters()["dropped_banned"] == 1001


@pytest.mark.parametrize(
    "ua",
    [
        "friendly-scanner",
        "sipvicious 0.3.0",
        "SIPVicious",
        "sipcli/v1.8",
        "sip-scan",
        "sundayddr",
        "iWar",
        "VaxSIPUserAgent/3.1",
        "SIVuS",
        "smap 0.6.0",
        "pplsip",
        "siparmyknife",
    ],
)
def test_scanner_user_agents_dropped(ua, seclog):
    g = AbuseGuard()
    v = g.check_request(IP, ua, 0.0)
    assert v is Verdict.DROP_SCANNER and not v and not v.allowed
    assert g.counters()["dropped_scanner"] == 1
    lines = seclog()
    assert f'SECURITY scanner-dropped ip={IP} ua="{ua}" dropped=1' in lines
    # scanners are banned right away: later datagrams are dropped cheaply
    assert "SECURITY banned ip=203.0.113.7 for=600s failures=0 reason=scanner" in lines
    assert not g.allow_datagram(IP, 100, 1.0)


def test_normal_user_agents_allowed():
    g = AbuseGuard()
    for ua in [
        "Zoiper rv2.10.19.7",
        "baresip v3.10.0 (x86_64/Linux)",
        "Yealink SIP-T46S 66.86.0.15",
        "PJSUA v2.14 Linux",
        "Linphone/5.2",
        "MySIPClient 2.0",
        "Bsmaps",
        None,
        "",
    ]:
        v = g.check_request(IP, ua, 0.0)
        assert v is Verdict.ALLOW and v and v.allowed
    assert g.counters()["dropped_scanner"] == 0


def test_scanner_without_ban():
    g = AbuseGuard(ban_scanners=False)
    assert g.check_request(IP, "friendly-scanner", 0.0) is Verdict.DROP_SCANNER
    assert g.allow_datagram(IP, 10, 0.1)


def test_check_request_reports_banned():
    g = AbuseGuard()
    g.ban(IP, 0.0, 10)
    assert g.check_request(IP, "Zoiper", 1.0) is Verdict.DROP_BANNED
    assert g.check_request(IP, "Zoiper", 10.0) is Verdict.ALLOW


def test_exempt_ips_and_networks():
    g = AbuseGuard(auth_fail_limit=2, rate_limit=1, rate_burst=1, exempt=("127.0.0.1", "10.0.0.0/8", "::1"))
    for ip in ("127.0.0.1", "10.1.2.3", "::1"):
        for i in range(5):
            assert g.auth_failed(ip, float(i)) is False
        assert all(g.allow_datagram(ip, 100, 0.0) for _ in range(100))
        assert g.check_request(ip, "friendly-scanner", 0.0) is Verdict.ALLOW
    assert g.bans(10.0) == []
    # non-exempt still limited
    assert g.allow_datagram("192.0.2.1", 100, 0.0)
    assert not g.allow_datagram("192.0.2.1", 100, 0.0)


def test_log_injection_sanitised(seclog):
    g = AbuseGuard()
    g.auth_failed(IP, 0.0, user='1001" ip=6.6.6.6\nSECURITY auth-failed ip=6.6.6.6 user="x', method="REG\rISTER")
    g.check_request(IP, 'friendly-scanner\n"evil"\\', 1.0)
    for line in seclog():
        assert "\n" not in line and "\r" not in line
        assert line.startswith("SECURITY ") and "ip=203.0.113.7" in line
        # quoted values never end early
        for m in re.finditer(r'(user|ua)="((?:[^"\\]|\\.)*)"', line):
            assert "ip=6.6.6.6" not in line.split(m.group(0))[1]


def test_state_is_bounded():
    g = AbuseGuard(max_tracked=100, rate_limit=1, rate_burst=5, auth_fail_limit=1000)
    for i in range(5000):
        ip = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
        g.allow_datagram(ip, 100, 0.0)
        g.allow_datagram(ip, 100, 0.0)
        g.auth_failed(ip, 0.0)
    assert len(g._buckets) <= 100
    assert len(g._failures) <= 100
    for i in range(500):
        g.ban(f"192.168.{i // 256}.{i % 256}", 0.0)
    assert len(g._bans) <= 100
    g.purge(10_000.0)
    assert g.tracked() == 0


def test_purge_forgets_idle_sources():
    g = AbuseGuard(rate_limit=10, rate_burst=20)
    for i in range(50):
        g.allow_datagram(f"10.0.0.{i}", 100, 0.0)
    g.auth_failed("10.0.0.1", 0.0)
    assert g.tracked() > 0
    g.purge(1000.0)
    assert g.tracked() == 0


def test_fail2ban_regex_in_docstring_matches_lines(seclog):
    doc = guard_mod.__doc__
    regexes = re.findall(r"\^\.\*SECURITY [^\n]*", doc)
    assert len(regexes) == 2
    g = AbuseGuard()
    g.auth_failed(IP, 0.0, user="1001")
    g.check_request("198.51.100.9", "friendly-scanner", 0.0)
    hits = set()
    for line in seclog():
        full = "2026-11-23 16:00:00,000 WARNING pypbx.security " + line
        for rx in regexes:
            m = re.search(rx.replace("<HOST>", r"(?P<host>\S+)"), full)
            if m:
                hits.add(m.group("host"))
    assert hits == {IP, "198.51.100.9"}


def test_default_scanner_list():
    assert "friendly-scanner" in DEFAULT_SCANNER_USER_AGENTS and len(DEFAULT_SCANNER_USER_AGENTS) == 11


def test_empty_scanner_list():
    g = AbuseGuard(scanner_user_agents=())
    assert g.check_request(IP, "friendly-scanner", 0.0) is Verdict.ALLOW


def test_rate_limit_disabled():
    g = AbuseGuard(rate_limit=0)
    assert all(g.allow_datagram(IP, 100, 0.0) for _ in range(10_000))
