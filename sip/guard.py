r"""Abuse guard: bans, rate limits and scanner filtering (sans-I/O).

Time comes in as ``now`` (float seconds, any monotonic-ish clock, the same for all calls).
The server calls:

- :meth:`AbuseGuard.allow_datagram` for every datagram / stream message *before parsing*
  (banned source, token-bucket rate limit, size > 65536 bytes);
- :meth:`AbuseGuard.check_request` after parsing a request (scanner User-Agent, ban);
- :meth:`AbuseGuard.auth_failed` / :meth:`AbuseGuard.auth_ok` with the registrar's or
  the authenticator's outcome;
- :meth:`AbuseGuard.purge` now and then (e.g. every 10 s) to expire bans and bound state.

Scanner User-Agents match case-insensitively as whole words anywhere in the header
(``sipcli`` matches ``sipcli/v1.8`` but not ``MySIPClient``). ``rate_limit <= 0`` disables
rate limiting; ``exempt`` takes IPs and CIDR networks (no rate limit, no auth bans, no
scanner check) — e.g. a load generator on 127.0.0.1, or a trunk provider's addresses.

Log lines
---------
Every security event produces exactly one line on the ``pypbx.security`` logger (level
WARNING), always starting with ``SECURITY <event> ip=<ip>``. Quoted values are sanitised
(``"`` and ``\`` escaped, control and non-ASCII characters as ``\xNN``, cut at 64 chars),
so an attacker cannot forge or split lines::

    SECURITY auth-failed ip=<ip> user="<user>" method=<METHOD>
    SECURITY banned ip=<ip> for=<seconds>s failures=<n> reason=<auth|scanner|flood|manual>
    SECURITY unbanned ip=<ip>
    SECURITY scanner-dropped ip=<ip> ua="<user agent>" dropped=<n>
    SECURITY rate-limited ip=<ip> dropped=<n>
    SECURITY dropped-banned ip=<ip> dropped=<n>
    SECURITY oversize-dropped ip=<ip> size=<bytes> dropped=<n>
    SECURITY malformed ip=<ip> status=<code|drop> reason="<why>" suppressed=<n>
    SECURITY admission-dropped ip=<ip> limit=<n>/s dropped=<n>

The last four are themselves rate-limited: at most one line per IP and event kind per
``log_interval`` (10 s) — ``dropped=<n>`` counts the drops since the previous line for that
IP, this one included — so a flood cannot fill the disk. A source over its rate limit
``flood_ban_after`` times within ``log_interval`` (``[security] flood_ban_after``; 0 = never)
is banned for ``ban_time`` (``reason=flood``, ``failures`` = the drops counted): one
``banned`` line, then its packets are ``dropped-banned``. (A scanner is banned on its first
request by default, so its later packets show up as ``dropped-banned``.)

Global admission control (:meth:`AbuseGuard.admit_new`): new requests without credentials
from sources that are not known (a registered contact's address, an address that
authenticated within ``known_ttl``, an exempt or trusted one: the server says which) share
one token bucket of ``max_new_per_second`` (burst 2x); over it they are dropped, so a
flood spread over many addresses, each under the per-IP limit, cannot crowd out the
phones. Known sources are never refused by it (only by their own per-IP limit). The
``admission-dropped`` line is written at most once per ``log_interval`` for all sources
together (``ip`` = the latest one dropped).

``malformed`` (:meth:`AbuseGuard.malformed`: a message that does not parse, or a request
the server refuses as invalid) is logged at most once per IP per ``malformed_log_interval``
(60 s, ``[security] malformed_log_interval``); ``suppressed=<n>`` counts the malformed
messages from that IP not logged since its previous line, so an admin sees a broken phone
or a scanner without the log filling up.

fail2ban
--------
pypbx bans by itself; to ban at the firewall too (the shipped files: ``pypbx service
fail2ban``, pypbx/contrib), a filter
(``/etc/fail2ban/filter.d/pypbx.conf``)::

    [Definition]
    failregex = ^.*SECURITY auth-failed ip=<HOST> user=
                ^.*SECURITY scanner-dropped ip=<HOST> ua=
    ignoreregex =

and a jail (``/etc/fail2ban/jail.d/pypbx.conf``)::

    [pypbx]
    enabled  = true
    filter   = pypbx
    backend  = systemd
    maxretry = 5
    findtime = 60
    bantime  = 600
    port     = 5060,5061
    protocol = all
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_SCANNER_USER_AGENTS", "MAX_DATAGRAM", "AbuseGuard", "Verdict"]

log = logging.getLogger("pypbx.security")

MAX_DATAGRAM = 65536

DEFAULT_SCANNER_USER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sundayddr",
    "iWar",
    "VaxSIPUserAgent",
    "SIVuS",
    "smap",
    "pplsip",
    "siparmyknife",
)


class Verdict(enum.Enum):
    ALLOW = "allow"
    DROP_SCANNER = "drop-scanner"
    DROP_BANNED = "drop-banned"

    @property
    def allowed(self) -> bool:
        return self is Verdict.ALLOW

    def __bool__(self) -> bool:
        return self is Verdict.ALLOW


_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _sanitize(s: str | None, limit: int = 64) -> str:
    if s is None:
        return ""
    s = s[:limit]
    return _UNSAFE.sub(
        lambda m: (
            "\\" + m.group()
            if m.group() in '"\\'
            else f"\\x{ord(m.group()) & 0xFF:02x}"
            if ord(m.group()) < 256
            else f"\\u{ord(m.group()):04x}"
        ),
        s,
    )


class AbuseGuard:
    """Per-source-IP abuse protection. See the module docstring for the log formats."""

    def __init__(
        self,
        auth_fail_limit: int = 5,
        auth_fail_window: float = 60.0,
        ban_time: float = 600.0,
        rate_limit: float = 50.0,
        rate_burst: float = 200.0,
        scanner_user_agents: Iterable[str] = DEFAULT_SCANNER_USER_AGENTS,
        exempt: Iterable[str] = (),
        *,
        ban_scanners: bool = True,
        max_size: int = MAX_DATAGRAM,
        log_interval: float = 10.0,
        max_tracked: int = 100_000,
        malformed_log_interval: float = 60.0,
        max_new_per_second: float = 200.0,
        known_ttl: float = 3600.0,
        flood_ban_after: int = 0,
    ) -> None:
        self.ban_scanners = ban_scanners
        self.max_size = max_size
        self.log_interval = log_interval
        self.max_tracked = max_tracked
        self._malformed: dict[str, list[float]] = {}  # ip -> [last logged, suppressed since]
        self.known_ttl = float(known_ttl)
        self._known: dict[str, float] = {}  # ip -> when it last authenticated
        self._exempt_ips: set[str] = set()
        self._exempt_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._exempt_cache: dict[str, bool] = {}
        self._bans: dict[str, float] = {}  # ip -> until
        # the limits (SIGHUP changes them the same way); a source over its rate limit
        # ``flood_ban_after`` times within ``log_interval`` is banned for ``ban_time``
        # (reason=flood): one line per ban, not a throttled trickle; max_new_per_second <= 0:
        # no global limit
        self.reconfigure(
            auth_fail_limit=auth_fail_limit,
            auth_fail_window=auth_fail_window,
            ban_time=ban_time,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            scanner_user_agents=scanner_user_agents,
            exempt=exempt,
            malformed_log_interval=malformed_log_interval,
            max_new_per_second=max_new_per_second,
            flood_ban_after=flood_ban_after,
        )
        self._global = [2.0 * self.max_new_per_second, -1.0]  # [tokens, last] of the global bucket
        self._buckets: dict[str, list[float]] = {}  # ip -> [tokens, last, drops, first drop at]
        self._failures: dict[str, list[float]] = {}  # ip -> recent failure times
        self._lastlog: dict[tuple[str, str], list[float]] = {}  # (kind, ip) -> [last, suppressed]
        self._c = {
            "dropped_banned": 0,
            "dropped_scanner": 0,
            "dropped_rate": 0,
            "dropped_oversize": 0,
            "malformed": 0,
            "dropped_admission": 0,
            "auth_failures": 0,
            "auth_ok": 0,
            "bans_total": 0,
            "unbans_total": 0,
        }

    # ------------------------------------------------------------------ helpers

    def _set_scanners(self, scanner_user_agents: Iterable[str]) -> None:
        uas = [u for u in scanner_user_agents if u]
        # whole words only: 'sipcli' must not match 'MySIPClient'
        self._scanner_re = (
            re.compile("(?<![A-Za-z0-9])(?:" + "|".join(re.escape(u) for u in uas) + ")(?![A-Za-z0-9])", re.I).search
            if uas
            else None
        )

    def _set_exempt(self, exempt: Iterable[str]) -> None:
        self._exempt_ips, self._exempt_nets = set(), []
        for e in exempt:
            if "/" in e:
                self._exempt_nets.append(ipaddress.ip_network(e, strict=False))
            else:
                self._exempt_ips.add(str(ipaddress.ip_address(e.strip("[]"))))
        self._exempt_cache = {}

    def reconfigure(
        self,
        *,
        auth_fail_limit: int,
        auth_fail_window: float,
        ban_time: float,
        rate_limit: float,
        rate_burst: float,
        scanner_user_agents: Iterable[str],
        exempt: Iterable[str],
        malformed_log_interval: float,
        max_new_per_second: float,
        flood_ban_after: int,
    ) -> None:
        """New limits (SIGHUP), keeping what the guard knows: bans in force, buckets,
        authenticated addresses. A newly exempt address is unbanned."""
        self.auth_fail_limit = int(auth_fail_limit)
        self.auth_fail_window = float(auth_fail_window)
        self.ban_time = float(ban_time)
        self.rate_limit = float(rate_limit)
        self.rate_burst = float(rate_burst)
        self.malformed_log_interval = float(malformed_log_interval)
        self.max_new_per_second = float(max_new_per_second)
        self.flood_ban_after = int(flood_ban_after)
        self._set_scanners(scanner_user_agents)
        self._set_exempt(exempt)
        for ip in [ip for ip in self._bans if self.is_exempt(ip)]:
            del self._bans[ip]

    def is_exempt(self, ip: str) -> bool:
        if not self._exempt_ips and not self._exempt_nets:
            return False
        r = self._exempt_cache.get(ip)
        if r is None:
            r = ip in self._exempt_ips
            if not r:
                try:
                    a = ipaddress.ip_address(ip.strip("[]"))
                    r = str(a) in self._exempt_ips or any(a in n for n in self._exempt_nets)
                except ValueError:
                    r = False
            if len(self._exempt_cache) > 4096:
                self._exempt_cache.clear()
            self._exempt_cache[ip] = r
        return r

    def _log_limited(self, kind: str, ip: str, now: float, fmt: str, *args: object) -> None:
        key = (kind, ip)
        st = self._lastlog.get(key)
        if st is None:
            if len(self._lastlog) >= self.max_tracked:
                self._trim(self._lastlog)
            self._lastlog[key] = [now, 0]
            log.warning(fmt + " dropped=%d", *args, 1)  # noqa: G003 - extends the caller's %-format
            return
        if now - st[0] >= self.log_interval:
            n = st[1] + 1
            st[0] = now
            st[1] = 0
            log.warning(fmt + " dropped=%d", *args, n)  # noqa: G003 - extends the caller's %-format
        else:
            st[1] += 1

    @staticmethod
    def _trim(d: dict[Any, Any]) -> None:
        drop = max(1, len(d) // 8)
        it = iter(d)
        for k in [next(it) for _ in range(drop)]:
            del d[k]

    def _banned(self, ip: str, now: float) -> bool:
        until = self._bans.get(ip)
        if until is None:
            return False
        if until > now:
            return True
        self.unban(ip)
        return False

    # ------------------------------------------------------------------ checks
    def allow_datagram(self, ip: str, size: int, now: float) -> bool:
        """Cheap pre-parse check of one datagram / framed message."""
        if size > self.max_size:
            self._c["dropped_oversize"] += 1
            self._log_limited("oversize", ip, now, "SECURITY oversize-dropped ip=%s size=%d", ip, size)
            return False
        if self._bans and self._banned(ip, now):
            self._c["dropped_banned"] += 1
            self._log_limited("banned", ip, now, "SECURITY dropped-banned ip=%s", ip)
            return False
        if self.rate_limit <= 0 or self.is_exempt(ip):
            return True
        b = self._buckets.get(ip)
        if b is None:
            if len(self._buckets) >= self.max_tracked:
                self._purge_buckets(now)
                if len(self._buckets) >= self.max_tracked:
                    self._trim(self._buckets)
            self._buckets[ip] = [self.rate_burst - 1.0, now, 0.0, now]
            return True
        tokens = b[0] + (now - b[1]) * self.rate_limit
        if tokens > self.rate_burst:
            tokens = self.rate_burst
        b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            self._c["dropped_rate"] += 1
            if self.flood_ban_after > 0:
                if now - b[3] > self.log_interval:
                    b[2], b[3] = 0.0, now
                b[2] += 1
                if b[2] >= self.flood_ban_after:
                    self.ban(ip, now, failures=int(b[2]), reason="flood")
                    return False
            self._log_limited("rate", ip, now, "SECURITY rate-limited ip=%s", ip)
            return False
        b[0] = tokens - 1.0
        return True

    def check_request(self, ip: str, user_agent: str | None, now: float) -> Verdict:
        """After parsing: banned source or scanner User-Agent -> drop (silently)."""
        if self._bans and self._banned(ip, now):
            self._c["dropped_banned"] += 1
            self._log_limited("banned", ip, now, "SECURITY dropped-banned ip=%s", ip)
            return Verdict.DROP_BANNED
        if user_agent and self._scanner_re is not None and self._scanner_re(user_agent):
            if self.is_exempt(ip):
                return Verdict.ALLOW
            self._c["dropped_scanner"] += 1
            self._log_limited("scanner", ip, now, 'SECURITY scanner-dropped ip=%s ua="%s"', ip, _sanitize(user_agent))
            if self.ban_scanners:
                self.ban(ip, now, reason="scanner")
            return Verdict.DROP_SCANNER
        return Verdict.ALLOW

    def is_known(self, ip: str, now: float) -> bool:
        """An address that authenticated within ``known_ttl`` seconds."""
        t = self._known.get(ip)
        return t is not None and now - t < self.known_ttl

    def admit_new(self, ip: str, now: float, priority: bool = False) -> bool:
        """Global admission of a new request without credentials: True = go on. Sources
        with ``priority`` (the server's knowledge: registered contact, trusted peer), exempt
        or recently authenticated ones always pass; the others share the global bucket."""
        if self.max_new_per_second <= 0 or priority or self.is_exempt(ip) or self.is_known(ip, now):
            return True
        b = self._global
        rate = self.max_new_per_second
        burst = 2.0 * rate
        tokens = burst if b[1] < 0 else min(burst, b[0] + (now - b[1]) * rate)
        b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            self._c["dropped_admission"] += 1
            self._log_limited("admission", "*", now, "SECURITY admission-dropped ip=%s limit=%g/s", ip, rate)
            return False
        b[0] = tokens - 1.0
        return True

    def malformed(self, ip: str, now: float, reason: str, status: int | None = None) -> bool:
        """Record one malformed message from ``ip`` (unparseable, or refused as invalid with
        ``status``; None = dropped unanswered). Logs one line per IP per
        ``malformed_log_interval``; returns True when this one was logged."""
        self._c["malformed"] += 1
        st = self._malformed.get(ip)
        if st is not None and now - st[0] < self.malformed_log_interval:
            st[1] += 1
            return False
        suppressed = 0 if st is None else int(st[1])
        if st is None and len(self._malformed) >= self.max_tracked:
            self._trim(self._malformed)
        self._malformed[ip] = [now, 0]
        log.warning(
            'SECURITY malformed ip=%s status=%s reason="%s" suppressed=%d',
            ip,
            "drop" if status is None else status,
            _sanitize(reason, 120),
            suppressed,
        )
        return True

    # ------------------------------------------------------------------ auth
    def auth_failed(self, ip: str, now: float, user: str | None = None, method: str = "REGISTER") -> bool:
        """Record one failed authentication. Returns True when this failure starts a ban."""
        self._c["auth_failures"] += 1
        log.warning('SECURITY auth-failed ip=%s user="%s" method=%s', ip, _sanitize(user), _sanitize(method, 16))
        if self.is_exempt(ip) or self.auth_fail_limit <= 0:
            return False
        if self._bans and self._banned(ip, now):
            return False
        f = self._failures.get(ip)
        if f is None:
            if len(self._failures) >= self.max_tracked:
                self._purge_failures(now)
                if len(self._failures) >= self.max_tracked:
                    self._trim(self._failures)
            f = self._failures[ip] = []
        horizon = now - self.auth_fail_window
        if f and f[0] <= horizon:
            f[:] = [t for t in f if t > horizon]
        f.append(now)
        if len(f) >= self.auth_fail_limit:
            n = len(f)
            del self._failures[ip]
            self.ban(ip, now, failures=n, reason="auth")
            return True
        return False

    def auth_ok(self, ip: str, now: float | None = None) -> None:
        self._c["auth_ok"] += 1
        if now is not None:
            if ip not in self._known and len(self._known) >= self.max_tracked:
                self._trim(self._known)
            self._known[ip] = now
        if self._failures:
            self._failures.pop(ip, None)

    # ------------------------------------------------------------------ bans
    def ban(
        self, ip: str, now: float, duration: float | None = None, *, failures: int = 0, reason: str = "manual"
    ) -> None:
        d = self.ban_time if duration is None else float(duration)
        if ip not in self._bans and len(self._bans) >= self.max_tracked:
            self._purge_bans(now)
            if len(self._bans) >= self.max_tracked:
                self._trim(self._bans)
        self._bans[ip] = now + d
        self._buckets.pop(ip, None)
        self._c["bans_total"] += 1
        log.warning("SECURITY banned ip=%s for=%ds failures=%d reason=%s", ip, round(d), failures, reason)

    def unban(self, ip: str) -> bool:
        if self._bans.pop(ip, None) is None:
            return False
        self._c["unbans_total"] += 1
        self._lastlog.pop(("banned", ip), None)
        log.warning("SECURITY unbanned ip=%s", ip)
        return True

    def is_banned(self, ip: str, now: float) -> bool:
        return bool(self._bans) and self._banned(ip, now)

    def bans(self, now: float) -> list[tuple[str, float]]:
        """Active bans as (ip, until), soonest-ending first (expired ones are lifted)."""
        self._purge_bans(now)
        return sorted(self._bans.items(), key=lambda kv: kv[1])

    # ------------------------------------------------------------------ housekeeping
    def _purge_bans(self, now: float) -> None:
        for ip in [ip for ip, until in self._bans.items() if until <= now]:
            self.unban(ip)

    def _purge_buckets(self, now: float) -> None:
        full = self.rate_burst
        rate = self.rate_limit
        for ip in [ip for ip, b in self._buckets.items() if b[0] + (now - b[1]) * rate >= full]:
            del self._buckets[ip]

    def _purge_failures(self, now: float) -> None:
        horizon = now - self.auth_fail_window
        for ip in [ip for ip, f in self._failures.items() if not f or f[-1] <= horizon]:
            del self._failures[ip]

    def purge(self, now: float) -> None:
        """Lift expired bans and drop state that no longer matters (call every few s)."""
        self._purge_bans(now)
        self._purge_buckets(now)
        self._purge_failures(now)
        horizon = now - self.log_interval
        for k in [k for k, (last, _sup) in self._lastlog.items() if last <= horizon]:
            del self._lastlog[k]
        khorizon = now - self.known_ttl
        for ip in [ip for ip, t in self._known.items() if t <= khorizon]:
            del self._known[ip]
        # an IP's suppressed count is kept until its next line could be written
        mhorizon = now - self.malformed_log_interval
        for ip in [ip for ip, (last, sup) in self._malformed.items() if last <= mhorizon and not sup]:
            del self._malformed[ip]

    def tracked(self) -> int:
        return len(self._bans) + len(self._buckets) + len(self._failures) + len(self._lastlog) + len(self._malformed)

    def counters(self) -> dict[str, int]:
        c = dict(self._c)
        c["banned_ips"] = len(self._bans)
        c["tracked_sources"] = len(self._buckets)
        c["known_sources"] = len(self._known)
        return c
