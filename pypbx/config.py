"""Process settings: one TOML file loaded into frozen dataclasses and validated.

Every problem is reported as a one-line :class:`ConfigError`, e.g.::

    config error: sip.udp_port: expected an integer 0-65535, got 'abc'
    config error: unknown key 'sip.udpport'

Relative paths in the file (``data_dir``, ``sip.tls_cert``, ``sip.tls_key``) are
relative to the directory of the config file, not to the current directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from pypbx import sitetime
from pypbx.errors import PbxError
from pypbx.numbers import (
    ALIASES,
    CLASSES,
    DEFAULT_ALLOWED,
    DEFAULT_REGION,
    NumberPlan,
    check_region,
    expand_classes,
    region_for_country_code,
)

DEFAULT_CONFIG_NAME = "pypbx.toml"
ENV_VAR = "PYPBX_CONFIG"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_SCANNER_USER_AGENTS = (
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


class ConfigError(PbxError):
    """A one-line, user-facing configuration problem. ``str(e)`` starts with 'config error: '."""

    def __init__(self, message: str, key: str | None = None, at: str | None = None):
        self.key = key
        self.problem = message
        #: the dotted key (or section) of the file the problem is at, to find its line
        self.at = at or key
        super().__init__(f"config error: {key}: {message}" if key else f"config error: {message}")

    def located(self, path: Path, text: str) -> ConfigError:
        """The same error, naming the file and (when found) the line it is at."""
        line = _line_of(text, self.at) if self.at else None
        where = f"{path}, line {line}" if line else str(path)
        e = ConfigError(f"{self.problem} ({where})", self.key, self.at)
        return e


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _line_of(text: str, dotted: str) -> int | None:
    """1-based line of ``dotted`` (``key``, ``section.key`` or ``section``) in TOML ``text``."""
    section, _, key = dotted.rpartition(".") if "." in dotted else ("", "", dotted)
    current = ""
    for n, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            current = m.group(1)
            if not section and current == key:
                return n  # a whole section
            continue
        m = _ASSIGN.match(line)
        if m and current == section and m.group(1) == key:
            return n
    return None


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class SipConfig:
    bind: str = "0.0.0.0"
    udp_port: int = 5060  # 0 = transport off
    tcp_port: int = 5060  # 0 = transport off
    tls_port: int = 5061  # only used when tls_cert and tls_key are set
    tls_cert: Path | None = None  # absolute path, or None when TLS is off
    tls_key: Path | None = None
    realm: str = "pypbx"
    user_agent: str = "pypbx"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None and self.tls_port != 0


@dataclass(frozen=True)
class RegistrarConfig:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 5


@dataclass(frozen=True)
class SecurityConfig:
    nonce_lifetime: int = 300
    digest_algorithms: tuple[str, ...] = ("MD5",)
    auth_fail_limit: int = 5
    auth_fail_window: int = 60
    ban_time: int = 600
    rate_limit: float = 50.0  # requests/s per source IP
    rate_burst: int = 200
    exempt: tuple[str, ...] = ()  # IP addresses or networks (CIDR), never banned or rate-limited
    scanner_user_agents: tuple[str, ...] = DEFAULT_SCANNER_USER_AGENTS
    malformed_log_interval: float = 60.0  # at most one "malformed" log line per IP per this many s
    max_new_requests_per_second: float = 200.0  # all unknown sources together (0 = no limit)
    flood_ban_after: int = 500  # rate-limited this many times within 10 s -> banned (0 = never)

    def is_exempt(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        return any(addr in ipaddress.ip_network(net, strict=False) for net in self.exempt)


@dataclass(frozen=True)
class MediaConfig:
    workers_warm: int = 2  # pjsua2 worker processes kept ready
    workers_max: int = 40  # one per call in progress
    sip_port_base: int = 25060  # worker i listens for SIP on 127.0.0.1:(base + i)
    rtp_port_base: int = 30000  # worker i uses RTP ports base + i*rtp_ports_per_worker ...
    rtp_ports_per_worker: int = 16
    media_addr: str = "0.0.0.0"  # where workers bind RTP
    public_addr: str = ""  # address put in SDP ("" = the address phones reach)
    rtp_timeout: int = 60  # an answered call whose phone sends no RTP this long is ended (0 = never)
    session_expires: int = 1800  # SIP session timer (RFC 4028) offered to phones, s (0 = off)


@dataclass(frozen=True)
class CallsConfig:
    ring_time: int = 60  # seconds an extension rings before the call gives up
    record: bool = True  # record every answered call
    min_free_mb: int = 200  # below this free space recordings stop, calls go on
    max_duration: int = 14400  # a call is ended after this many seconds (0 = no limit)


@dataclass(frozen=True)
class NumbersConfig:
    """The site's region (pypbx.numbers, phonenumbers) and the outbound limits (toll-fraud guard)."""

    region: str = DEFAULT_REGION
    emergency: tuple[str, ...] = ()  # always allowed, in addition to 112 and the region's own
    default_allowed: tuple[str, ...] = DEFAULT_ALLOWED
    max_outbound_per_extension: int = 2
    max_outbound_total: int = 10

    def plan(self) -> NumberPlan:
        return NumberPlan(region=self.region, emergency=self.emergency, default_allowed=self.default_allowed)


@dataclass(frozen=True)
class NotifyConfig:
    """Voicemail notifications (pypbx.notify): a webhook and/or e-mail through an SMTP server."""

    webhook_url: str = ""  # "" = no webhook
    webhook_secret: str = ""  # "" = unsigned; else X-Pypbx-Signature: sha256=<HMAC-SHA256 hex of the body>
    smtp_host: str = ""  # "" = no e-mail
    smtp_port: int = 0  # 0 = 465 with smtp_ssl, 587 with smtp_starttls, else 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    mail_from: str = ""  # "" = pypbx@<host name>
    attach_audio: bool = True
    attach_max_mb: float = 5.0  # larger messages are not attached (the body says so)
    timeout: float = 10.0  # seconds per delivery attempt
    max_attempts: int = 10  # then the notification is marked failed
    retry_first: float = 30.0  # seconds before the first retry (doubling, at most 1 h)

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def port(self) -> int:
        if self.smtp_port:
            return self.smtp_port
        return 465 if self.smtp_ssl else 587 if self.smtp_starttls else 25


@dataclass(frozen=True)
class EventsConfig:
    """The event stream (pypbx.events): a JSON-lines journal, and how many events are kept
    for consumers resuming from a sequence number."""

    journal: Path | None = None  # absolute; None = no journal
    buffer: int = 10_000


@dataclass(frozen=True)
class MissedConfig:
    """The missed-caller worklist (pypbx.missed)."""

    reached_after: float = 5.0  # seconds of talk after which a number counts as reached


@dataclass(frozen=True)
class SiteConfig:
    """The clinic itself: its time zone (pypbx.sitetime)."""

    timezone: str = ""  # IANA name; "" = the system's

    @property
    def zone_name(self) -> str:
        return self.timezone or sitetime.system_zone_name()


@dataclass(frozen=True)
class WebConfig:
    """The web desk (pypbx.web): HTTP(S) in the PBX's event loop."""

    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None  # absolute; both or neither
    tls_key: Path | None = None
    board_wait_warn: int = 30  # the wallboard turns amber when a caller waits this long (s)
    board_wait_alarm: int = 90  # ... and red
    lock_after: int = 10  # wrong passwords in a row that lock a web login ...
    lock_minutes: int = 15  # ... for this long
    session_hours: int = 12  # a login lasts this long

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class CrmConfig:
    """Who is calling, asked of the clinic's system (pypbx.crm) while the call arrives."""

    lookup_url: str = ""  # "" = no CRM; a template with {e164}, {national} or {digits}
    token: str = ""  # sent as Authorization: Bearer <token>
    header: str = ""  # one more header, "Name: value"
    timeout_ms: int = 300  # a call is never delayed longer than this
    cache_seconds: int = 300  # answers (and "not found") kept this long
    prefer_seconds: int = 30  # a queue waits this long for the CRM's assigned agent
    urgent_priority: int = 5  # a "vip"/"urgent" flag's queue priority


@dataclass(frozen=True)
class RecordingsConfig:
    """Recordings over years (pypbx.retention): retention, disk budget, compression."""

    keep_days: int = 0  # delete recordings older than this many days (0 = keep for ever)
    max_gb: float = 0.0  # and the oldest beyond this many GB in total (0 = no budget)
    queue_keep_days: tuple[str, ...] = ()  # "queue=days" overrides of keep_days
    compress: str = "flac"  # "flac" (lossless), "opus" (Ogg Opus) or "none" (keep WAV)
    compress_after: int = 600  # seconds after the call before its recording is compressed

    def queue_days(self) -> dict[str, int]:
        return {q: int(d) for q, _, d in (x.partition("=") for x in self.queue_keep_days)}


@dataclass(frozen=True)
class AlertsConfig:
    """Alerts to whoever looks after the PBX (pypbx.alerts), through the notification outbox."""

    email: str = ""  # "" = no e-mail (needs [notify] smtp_host)
    webhook_url: str = ""  # "" = no webhook
    remind_hours: int = 24  # an alert still open after this long is sent again (0 = never)
    disk_min_free_mb: int = 2000  # alert when the data directory's disk has less free space
    trunk_down_after: int = 60  # seconds a trunk must be down before its alert
    nobody_answering_after: int = 60  # seconds callers wait in a queue with no agent logged in
    check_seconds: int = 15  # how often the checks run


@dataclass(frozen=True)
class Config:
    config_path: Path  # absolute path of the file this was loaded from
    data_dir: Path  # absolute
    log_level: str = "INFO"
    sip: SipConfig = field(default_factory=SipConfig)
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    missed: MissedConfig = field(default_factory=MissedConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    web: WebConfig = field(default_factory=WebConfig)
    crm: CrmConfig = field(default_factory=CrmConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pypbx.db"

    @property
    def socket_path(self) -> Path:
        """Unix socket of the running PBX's local API (see pypbx/localapi_client.py)."""
        return self.data_dir / "pypbx.sock"


# --------------------------------------------------------------------------- validators

#: What a validator returns (and what the dataclasses above are built from).
Value = str | int | float | bool | tuple[str, ...]
#: A default in the schema, as written in the TOML file.
Default = str | int | float | bool | list[str]
V = TypeVar("V", bound=Value)
#: ``validator(dotted_key, raw_value)``: the checked value, or ConfigError.
Validator = Callable[[str, object], V]


def _int(lo: int | None = None, hi: int | None = None) -> Validator[int]:
    if lo is not None and hi is not None:
        what = f"an integer {lo}-{hi}"
    elif lo is not None:
        what = f"an integer >= {lo}"
    else:
        what = "an integer"

    def check(key: str, v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"expected {what}, got {v!r}", key)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ConfigError(f"expected {what}, got {v!r}", key)
        return v

    return check


def _positive_float(key: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        raise ConfigError(f"expected a number > 0, got {v!r}", key)
    return float(v)


def _non_negative_float(key: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
        raise ConfigError(f"expected a number >= 0, got {v!r}", key)
    return float(v)


def _str(nonempty: bool = True) -> Validator[str]:
    def check(key: str, v: object) -> str:
        if not isinstance(v, str):
            raise ConfigError(f"expected a string, got {v!r}", key)
        if nonempty and not v.strip():
            raise ConfigError("must not be empty", key)
        if any(c in v for c in "\r\n\0"):
            raise ConfigError(f"must be a single line, got {v!r}", key)
        return v

    return check


def _token(key: str, v: object) -> str:
    v = _str()(key, v)
    if any(c in v for c in ' "\\,:\t'):
        raise ConfigError(f"must not contain spaces, quotes, commas, colons or backslashes, got {v!r}", key)
    return v


def _log_level(key: str, v: object) -> str:
    if not isinstance(v, str) or v.upper() not in LOG_LEVELS:
        raise ConfigError(f"expected one of {', '.join(LOG_LEVELS)}, got {v!r}", key)
    return v.upper()


def _bind(key: str, v: object) -> str:
    v = _str()(key, v)
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise ConfigError(f"expected an IP address (e.g. '0.0.0.0' or '::'), got {v!r}", key) from None
    return v


def _path_or_empty(key: str, v: object) -> str:
    return _str(nonempty=False)(key, v)


def _ip_list(key: str, v: object) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ConfigError(f"expected a list of IP addresses, got {v!r}", key)
    out = []
    for item in v:
        if not isinstance(item, str):
            raise ConfigError(f"expected a list of IP addresses, got {item!r} in the list", key)
        try:
            if "/" in item:
                ipaddress.ip_network(item, strict=False)
            else:
                ipaddress.ip_address(item)
        except ValueError:
            raise ConfigError(f"expected IP addresses or networks, got {item!r}", key) from None
        out.append(item)
    return tuple(out)


def _str_list(key: str, v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(f"expected a list of non-empty strings, got {v!r}", key)
    return tuple(v)


def _digest_algorithms(key: str, v: object) -> tuple[str, ...]:
    algs = _str_list(key, v)
    norm = []
    for a in algs:
        u = a.upper()
        if u not in ("MD5", "SHA-256"):
            raise ConfigError(f"expected MD5 and/or SHA-256, got {a!r}", key)
        if u not in norm:
            norm.append(u)
    if not norm:
        raise ConfigError("at least one digest algorithm is needed", key)
    return tuple(norm)


def _bool(key: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"expected true or false, got {v!r}", key)
    return v


def _addr_or_empty(key: str, v: object) -> str:
    if not isinstance(v, str):
        raise ConfigError(f'expected an IP address or "", got {v!r}', key)
    return _bind(key, v) if v else ""


# (key, default, validator, comment) per section; "" = top level. Order = rendering order.
_SCHEMA: dict[str, list[tuple[str, Default, Validator[Value], str]]] = {
    "": [
        ("data_dir", "./var", _str(), "relative paths are relative to this file's directory"),
        ("log_level", "INFO", _log_level, "DEBUG INFO WARNING ERROR"),
    ],
    "sip": [
        ("bind", "0.0.0.0", _bind, "address to listen on ('::' for IPv6)"),
        ("udp_port", 5060, _int(0, 65535), "0 = transport off"),
        ("tcp_port", 5060, _int(0, 65535), "0 = transport off"),
        ("tls_port", 5061, _int(0, 65535), "only used when tls_cert and tls_key are set (files must exist)"),
        ("tls_cert", "", _path_or_empty, "PEM certificate chain"),
        ("tls_key", "", _path_or_empty, "PEM private key"),
        ("realm", "pypbx", _token, "digest realm; changing it needs new passwords (pypbx ext passwd)"),
        ("user_agent", "pypbx", _str(), "Server / User-Agent header"),
    ],
    "registrar": [
        ("min_expires", 60, _int(1, 86400 * 7), "seconds; shorter requests get 423 Interval Too Brief"),
        ("max_expires", 3600, _int(1, 86400 * 7), "seconds; longer requests are shortened"),
        ("default_expires", 3600, _int(1, 86400 * 7), "seconds, when the phone asks for none"),
        ("max_contacts", 5, _int(1, 1000), "devices per extension"),
    ],
    "security": [
        ("nonce_lifetime", 300, _int(1, 86400), "seconds"),
        (
            "digest_algorithms",
            ["MD5"],
            _digest_algorithms,
            'challenges offered, in order; add "SHA-256" only if every phone copes (baresip 1.0 and sipp fail on it)',
        ),
        ("auth_fail_limit", 5, _int(1), "failed authentications ..."),
        ("auth_fail_window", 60, _int(1), "... within this many seconds ban the source IP"),
        ("ban_time", 600, _int(0), "seconds"),
        ("rate_limit", 50.0, _positive_float, "requests/s per source IP"),
        ("rate_burst", 200, _int(1), "requests"),
        ("exempt", [], _ip_list, 'IPs never banned or rate-limited (e.g. ["127.0.0.1"] for a benchmark)'),
        (
            "scanner_user_agents",
            list(DEFAULT_SCANNER_USER_AGENTS),
            _str_list,
            "requests whose User-Agent contains one of these are dropped",
        ),
        ("malformed_log_interval", 60.0, _positive_float, "seconds: one 'malformed' log line per source IP"),
        (
            "max_new_requests_per_second",
            200.0,
            _non_negative_float,
            "new requests without credentials per second from all unknown sources together (0 = no limit); "
            "registered phones, trunks and exempt addresses are never refused by it",
        ),
        (
            "flood_ban_after",
            500,
            _int(0, 10_000_000),
            "a source over rate_limit this many times within 10 s is banned for ban_time (0 = never)",
        ),
    ],
    "media": [
        ("workers_warm", 2, _int(0, 100), "pjsua2 media worker processes kept ready"),
        ("workers_max", 40, _int(1, 2000), "at most this many calls at once (one worker per call)"),
        ("sip_port_base", 25060, _int(1024, 65000), "worker i takes SIP port base+i on 127.0.0.1 only"),
        ("rtp_port_base", 30000, _int(1024, 65000), "worker i takes RTP ports base + i*rtp_ports_per_worker ..."),
        ("rtp_ports_per_worker", 16, _int(4, 1000), "even number; 2 per call leg"),
        ("media_addr", "0.0.0.0", _bind, "address workers bind RTP to"),
        ("public_addr", "", _addr_or_empty, 'address written in SDP ("" = the address phones reach)'),
        ("rtp_timeout", 60, _int(0, 86400), "end a call whose phone sent no RTP for this many seconds (0 = never)"),
        ("session_expires", 1800, _int(0, 86400), "RFC 4028 session timer offered to phones, s (0 = off)"),
    ],
    "calls": [
        ("ring_time", 60, _int(1, 600), "seconds an extension rings before the caller hears 'unavailable'"),
        ("record", True, _bool, "record every answered call (stereo WAV + JSON sidecar)"),
        ("min_free_mb", 200, _int(0, 10_000_000), "below this much free disk space recordings stop (calls go on)"),
        ("max_duration", 14400, _int(0, 604800), "end any call after this many seconds (0 = no limit)"),
    ],
}


def _digits(allow_empty: bool = True) -> Validator[str]:
    def check(key: str, v: object) -> str:
        if not isinstance(v, str) or not (v.isdigit() or (allow_empty and v == "")):
            raise ConfigError(f"expected a string of digits, got {v!r}", key)
        return v

    return check


def _digit_list(key: str, v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x.isdigit() for x in v):
        raise ConfigError(f"expected a list of digit strings, got {v!r}", key)
    return tuple(v)


def _number_classes(key: str, v: object) -> tuple[str, ...]:
    items = _str_list(key, v) if v != [] else ()
    bad = [x for x in items if x not in CLASSES and x not in ALIASES]
    if bad:
        raise ConfigError(f"unknown number class {bad[0]!r} (known: {', '.join(CLASSES)})", key)
    return expand_classes(items)


def _region(key: str, v: object) -> str:
    if not isinstance(v, str):
        raise ConfigError(f'expected a region code like "FR", got {v!r}', key)
    try:
        return check_region(v)
    except ValueError as e:
        raise ConfigError(str(e), key) from None


_SCHEMA["numbers"] = [
    ("region", DEFAULT_REGION, _region, 'the site\'s country (ISO 3166: "FR", "KR", "RU", "CN", "US" ...)'),
    ("emergency", [], _digit_list, "extra emergency numbers (112 and the region's own are always allowed)"),
    (
        "default_allowed",
        list(DEFAULT_ALLOWED),
        _number_classes,
        "number classes an extension may call unless 'pypbx ext perms' says otherwise",
    ),
    ("max_outbound_per_extension", 2, _int(0, 1000), "concurrent outside calls per extension (0 = none)"),
    ("max_outbound_total", 10, _int(0, 100000), "concurrent outside calls in total"),
]
#: [numbers] keys of the hand-written dialling plan (before phonenumbers): still read, not
#: needed any more. ``country_code`` gives the region when ``region`` is not set.
_LEGACY_NUMBERS = (
    "country_code",
    "national_prefix",
    "international_prefix",
    "mobile_prefixes",
    "local_prefixes",
    "premium_prefixes",
)


def _http_url_or_empty(key: str, v: object) -> str:
    v = _str(nonempty=False)(key, v)
    if v:
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError(f"expected an http:// or https:// URL, got {v!r}", key)
    return v


def _host_or_empty(key: str, v: object) -> str:
    v = _str(nonempty=False)(key, v)
    if any(c in v for c in " /\t"):
        raise ConfigError(f"expected a host name or IP address, got {v!r}", key)
    return v


def _email_or_empty(key: str, v: object) -> str:
    v = _str(nonempty=False)(key, v)
    if v and not re.match(r"^[^@\s<>]+@[^@\s<>]+$", v):
        raise ConfigError(f"expected an e-mail address like pypbx@clinic.example, got {v!r}", key)
    return v


_SCHEMA["notify"] = [
    ("webhook_url", "", _http_url_or_empty, 'voicemail webhook: HTTP POST of a JSON body ("" = none)'),
    (
        "webhook_secret",
        "",
        _str(nonempty=False),
        "if set, header X-Pypbx-Signature: sha256=<HMAC-SHA256 of the body with this key, hex>",
    ),
    ("smtp_host", "", _host_or_empty, 'voicemail e-mail through this SMTP server ("" = no e-mail)'),
    ("smtp_port", 0, _int(0, 65535), "0 = 465 with smtp_ssl, 587 with smtp_starttls, else 25"),
    ("smtp_starttls", False, _bool, "STARTTLS after connecting"),
    ("smtp_ssl", False, _bool, "TLS from the start (SMTPS)"),
    ("smtp_user", "", _str(nonempty=False), 'log in with this user ("" = no login)'),
    ("smtp_password", "", _str(nonempty=False), ""),
    ("mail_from", "", _email_or_empty, 'From address ("" = pypbx@<this host>)'),
    ("attach_audio", True, _bool, "attach the message's WAV to the e-mail ..."),
    ("attach_max_mb", 5.0, _positive_float, "... when it is at most this many MB"),
    ("timeout", 10.0, _positive_float, "seconds per delivery attempt"),
    ("max_attempts", 10, _int(1, 1000), "attempts (backoff 30 s, 1, 2, 4 ... min, at most 1 h) before 'failed'"),
    ("retry_first", 30.0, _positive_float, "seconds before the first retry of a failed delivery (then doubling)"),
]


_SCHEMA["events"] = [
    (
        "journal",
        "",
        _str(nonempty=False),
        'append every event as one JSON line to this file, relative to data_dir ("" = none)',
    ),
    ("buffer", 10_000, _int(100, 10_000_000), "events kept for consumers resuming from a sequence number"),
]

_SCHEMA["missed"] = [
    (
        "reached_after",
        5.0,
        _positive_float,
        "an answered call to or from a missed caller's number with at least this much talk (s) closes its task",
    ),
]

_SCHEMA["web"] = [
    ("enabled", True, _bool, "serve the web desk (wallboard, API) from `pypbx run`"),
    ("bind", "127.0.0.1", _bind, "address the web desk listens on (behind a reverse proxy: keep 127.0.0.1)"),
    ("port", 8080, _int(1, 65535), "HTTP(S) port"),
    ("tls_cert", "", _path_or_empty, "PEM certificate chain: HTTPS (and Secure cookies)"),
    ("tls_key", "", _path_or_empty, "PEM private key"),
    ("board_wait_warn", 30, _int(1, 86400), "wallboard: a wait this long (s) shows amber ..."),
    ("board_wait_alarm", 90, _int(1, 86400), "... and this long red"),
    ("lock_after", 10, _int(1, 1000), "wrong passwords in a row that lock a web login ..."),
    ("lock_minutes", 15, _int(1, 10080), "... for this many minutes"),
    ("session_hours", 12, _int(1, 720), "a web login lasts this many hours"),
]


def _url_template(key: str, v: object) -> str:
    v = _str(nonempty=False)(key, v)
    if not v:
        return v
    try:
        filled = v.format(e164="%2B33612345678", national="0612345678", digits="33612345678")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"expected a URL with {{e164}}, {{national}} or {{digits}} in it, got {v!r} ({exc})", key
        ) from None
    if filled == v:
        raise ConfigError(f"the URL needs {{e164}}, {{national}} or {{digits}} for the caller's number, got {v!r}", key)
    u = urlsplit(filled)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"expected an http:// or https:// URL, got {v!r}", key)
    return v


def _header_line(key: str, v: object) -> str:
    v = _str(nonempty=False)(key, v)
    name, colon, value = v.partition(":")
    if v and (not colon or not re.fullmatch(r"[A-Za-z0-9-]+", name.strip()) or not value.strip()):
        raise ConfigError(f'expected one header like "X-Api-Key: 1234", got {v!r}', key)
    return v


_SCHEMA["crm"] = [
    (
        "lookup_url",
        "",
        _url_template,
        'ask the clinic\'s system who is calling: URL with {e164}, {national} or {digits} ("" = no CRM)',
    ),
    ("token", "", _str(nonempty=False), 'sent as "Authorization: Bearer <token>" ("" = none)'),
    ("header", "", _header_line, 'one more request header, "Name: value" ("" = none)'),
    ("timeout_ms", 300, _int(20, 5000), "a call never waits longer than this for the answer (ms)"),
    ("cache_seconds", 300, _int(0, 86400), "answers (and not-found) are kept this long (s)"),
    ("prefer_seconds", 30, _int(0, 600), "a queue waits this long for the agent the CRM assigns (s)"),
    ("urgent_priority", 5, _int(1, 100), 'queue priority of a caller flagged "vip" or "urgent"'),
]


def _timezone(key: str, v: object) -> str:
    v = _str(nonempty=False)(key, v)
    if v and sitetime.valid_zone(v) is None:
        raise ConfigError(f'unknown time zone {v!r} (an IANA name like "Europe/Paris", or "" for the system\'s)', key)
    return v


_SCHEMA["site"] = [
    (
        "timezone",
        "",
        _timezone,
        'IANA time zone of reports, day ranges and schedules without their own ("" = the system\'s)',
    ),
]


def _queue_days(key: str, v: object) -> tuple[str, ...]:
    items = _str_list(key, v) if v != [] else ()
    for item in items:
        q, eq, d = item.partition("=")
        if not eq or not q.strip() or not d.strip().isdigit():
            raise ConfigError(f'expected "queue=days" entries like "billing=30", got {item!r}', key)
    return tuple(f"{q.strip()}={int(d)}" for q, _, d in (x.partition("=") for x in items))


def _compress(key: str, v: object) -> str:
    if v not in ("flac", "opus", "none"):
        raise ConfigError(f'expected "flac", "opus" or "none", got {v!r}', key)
    return str(v)


_SCHEMA["recordings"] = [
    ("keep_days", 0, _int(0, 36500), "delete recordings older than this many days, daily, oldest first (0 = never)"),
    ("max_gb", 0.0, _non_negative_float, "... and the oldest beyond this many GB in total (0 = no budget)"),
    ("queue_keep_days", [], _queue_days, 'per-queue keep_days, e.g. ["billing=30", "front=365"]'),
    ("compress", "flac", _compress, '"flac" (lossless, ~1/3 of WAV), "opus" (Ogg Opus, ~1/7) or "none" (stereo WAV)'),
    ("compress_after", 600, _int(0, 86400 * 30), "seconds after the call before its recording is compressed"),
]

_SCHEMA["alerts"] = [
    ("email", "", _email_or_empty, 'send alerts to this address (through [notify] smtp_host; "" = none)'),
    ("webhook_url", "", _http_url_or_empty, 'POST alerts as JSON to this URL ("" = none)'),
    ("remind_hours", 24, _int(0, 24 * 365), "an alert still open this long is sent again (0 = never)"),
    ("disk_min_free_mb", 2000, _int(0, 10_000_000), "alert when the data directory's disk has less free space"),
    ("trunk_down_after", 60, _int(0, 86400), "seconds a trunk is down before its alert"),
    (
        "nobody_answering_after",
        60,
        _int(0, 86400),
        "seconds callers wait in a queue while none of its agents is logged in, before the alert",
    ),
    ("check_seconds", 15, _int(1, 3600), "how often the alert checks run"),
]


T = TypeVar("T")


def _get(section: Mapping[str, Value], key: str, kind: type[V]) -> V:
    """A checked value, as the type its validator returns."""
    v = section[key]
    if not isinstance(v, kind):  # the validators make this impossible
        raise TypeError(f"config {key!r}: {type(v).__name__}, not {kind.__name__}")
    return v


def _build(cls: Callable[..., T], values: Mapping[str, Value]) -> T:
    """One section's dataclass from its checked values (the schema's keys are its fields)."""
    return cls(**values)


def _parse(raw: Mapping[str, object], base: Path, config_path: Path) -> Config:
    values: dict[str, dict[str, object]] = {s: {} for s in _SCHEMA}
    legacy: dict[str, object] = {}  # old [numbers] keys (_LEGACY_NUMBERS)
    for key, v in raw.items():
        if key in _SCHEMA and key != "":
            if not isinstance(v, dict):
                raise ConfigError(f"expected a [{key}] table, got {v!r}", key)
            known = {k for k, *_ in _SCHEMA[key]}
            for sub, sv in v.items():
                if key == "numbers" and sub in _LEGACY_NUMBERS:
                    legacy[sub] = sv
                    continue
                if sub not in known:
                    raise ConfigError(f"unknown key '{key}.{sub}'", at=f"{key}.{sub}")
                values[key][sub] = sv
        else:
            known = {k for k, *_ in _SCHEMA[""]}
            if key not in known:
                if isinstance(v, dict):
                    raise ConfigError(f"unknown section '[{key}]'", at=key)
                raise ConfigError(f"unknown key '{key}'", at=key)
            values[""][key] = v

    cc = legacy.get("country_code")
    if "region" not in values["numbers"] and isinstance(cc, str) and region_for_country_code(cc):
        values["numbers"]["region"] = region_for_country_code(cc)  # an old config: its country

    checked: dict[str, dict[str, Value]] = {}
    for section, entries in _SCHEMA.items():
        checked[section] = {}
        for key, default, validator, _comment in entries:
            dotted = f"{section}.{key}" if section else key
            v = values[section].get(key, default)
            checked[section][key] = validator(dotted, v)

    top, sip, reg, sec = checked[""], checked["sip"], checked["registrar"], checked["security"]
    med, ev = checked["media"], checked["events"]
    warm, most = _get(med, "workers_warm", int), _get(med, "workers_max", int)
    if warm > most:
        raise ConfigError(f"must be <= media.workers_max ({most}), got {warm}", "media.workers_warm")
    if 0 < _get(med, "session_expires", int) < 90:
        raise ConfigError("must be 0 (off) or at least 90 (RFC 4028)", "media.session_expires")
    if _get(med, "sip_port_base", int) + most > 65535:
        raise ConfigError("sip_port_base + workers_max exceeds 65535", "media.sip_port_base")
    if _get(med, "rtp_port_base", int) + most * _get(med, "rtp_ports_per_worker", int) > 65535:
        raise ConfigError("rtp_port_base + workers_max*rtp_ports_per_worker exceeds 65535", "media.rtp_port_base")

    data_dir = (base / Path(_get(top, "data_dir", str)).expanduser()).resolve()

    tls_cert, tls_key = _get(sip, "tls_cert", str), _get(sip, "tls_key", str)
    cert: Path | None = None
    key_path: Path | None = None
    if tls_cert or tls_key:
        if not tls_cert:
            raise ConfigError("required when sip.tls_key is set", "sip.tls_cert")
        if not tls_key:
            raise ConfigError("required when sip.tls_cert is set", "sip.tls_key")
        cert = (base / Path(tls_cert).expanduser()).resolve()
        key_path = (base / Path(tls_key).expanduser()).resolve()
        for name, p in (("sip.tls_cert", cert), ("sip.tls_key", key_path)):
            if not p.is_file():
                raise ConfigError(f"file not found: {p}", name)

    tcp_port, tls_port = _get(sip, "tcp_port", int), _get(sip, "tls_port", int)
    ports = [(n, sip[n]) for n in ("udp_port", "tcp_port") if sip[n]]
    if cert is not None and tls_port:
        if tls_port == tcp_port:
            raise ConfigError(f"must differ from sip.tcp_port ({tcp_port})", "sip.tls_port")
        ports.append(("tls_port", tls_port))
    if not ports:
        raise ConfigError("no transport enabled (udp_port, tcp_port and TLS are all off)", "sip")

    min_exp, max_exp = _get(reg, "min_expires", int), _get(reg, "max_expires", int)
    default_exp = _get(reg, "default_expires", int)
    if not min_exp <= max_exp:
        raise ConfigError(f"must be <= registrar.max_expires ({max_exp}), got {min_exp}", "registrar.min_expires")
    if not min_exp <= default_exp <= max_exp:
        raise ConfigError(
            f"must be between registrar.min_expires and registrar.max_expires ({min_exp}-{max_exp}), got {default_exp}",
            "registrar.default_expires",
        )

    journal = _get(ev, "journal", str)
    site = _build(SiteConfig, checked["site"])
    sitetime.set_zone(site.timezone)  # the process's day boundaries are the site's from now on
    return Config(
        config_path=config_path,
        data_dir=data_dir,
        log_level=_get(top, "log_level", str),
        sip=SipConfig(
            bind=_get(sip, "bind", str),
            udp_port=_get(sip, "udp_port", int),
            tcp_port=tcp_port,
            tls_port=tls_port,
            tls_cert=cert,
            tls_key=key_path,
            realm=_get(sip, "realm", str),
            user_agent=_get(sip, "user_agent", str),
        ),
        registrar=_build(RegistrarConfig, reg),
        security=_build(SecurityConfig, sec),
        media=_build(MediaConfig, med),
        calls=_build(CallsConfig, checked["calls"]),
        numbers=_build(NumbersConfig, checked["numbers"]),
        notify=_notify(checked["notify"]),
        events=EventsConfig(
            journal=data_dir / Path(journal).expanduser() if journal else None,
            buffer=_get(ev, "buffer", int),
        ),
        missed=_build(MissedConfig, checked["missed"]),
        site=site,
        web=_web(checked["web"], base),
        crm=_build(CrmConfig, checked["crm"]),
        recordings=_build(RecordingsConfig, checked["recordings"]),
        alerts=_build(AlertsConfig, checked["alerts"]),
    )


def _web(w: Mapping[str, Value], base: Path) -> WebConfig:
    cert_s, key_s = _get(w, "tls_cert", str), _get(w, "tls_key", str)
    if bool(cert_s) != bool(key_s):
        raise ConfigError("web.tls_cert and web.tls_key go together (set both or neither)", "web.tls_cert")
    cert = (base / Path(cert_s).expanduser()).resolve() if cert_s else None
    key = (base / Path(key_s).expanduser()).resolve() if key_s else None
    for name, p in (("web.tls_cert", cert), ("web.tls_key", key)):
        if p is not None and not p.is_file():
            raise ConfigError(f"file not found: {p}", name)
    warn, alarm = _get(w, "board_wait_warn", int), _get(w, "board_wait_alarm", int)
    if alarm < warn:
        raise ConfigError(f"must be >= web.board_wait_warn ({warn}), got {alarm}", "web.board_wait_alarm")
    return WebConfig(
        enabled=_get(w, "enabled", bool),
        bind=_get(w, "bind", str),
        port=_get(w, "port", int),
        tls_cert=cert,
        tls_key=key,
        board_wait_warn=warn,
        board_wait_alarm=alarm,
        lock_after=_get(w, "lock_after", int),
        lock_minutes=_get(w, "lock_minutes", int),
        session_hours=_get(w, "session_hours", int),
    )


def _notify(n: Mapping[str, Value]) -> NotifyConfig:
    if n["smtp_ssl"] and n["smtp_starttls"]:
        raise ConfigError("smtp_ssl and smtp_starttls exclude each other (choose one)", "notify.smtp_starttls")
    if n["smtp_user"] and not n["smtp_host"]:
        raise ConfigError("needs notify.smtp_host", "notify.smtp_user")
    if n["smtp_user"] and not n["smtp_password"]:
        raise ConfigError("required when notify.smtp_user is set", "notify.smtp_password")
    if n["webhook_secret"] and not n["webhook_url"]:
        raise ConfigError("needs notify.webhook_url", "notify.webhook_secret")
    return _build(NotifyConfig, n)


# --------------------------------------------------------------------------- public API


def config_path_from(option_value: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: ``--config`` value, else $PYPBX_CONFIG, else ./pypbx.toml (absolute)."""
    value = option_value or os.environ.get(ENV_VAR) or DEFAULT_CONFIG_NAME
    return Path(value).expanduser().absolute()


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at ``path``. Raises ConfigError (one line)."""
    p = Path(path).expanduser().absolute()
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p} (create one with 'pypbx init')") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {p}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror or e}") from None
    if text.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{p}: the file is UTF-16 text; save it as UTF-8")
    if text.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows Notepad): harmless
        text = text[3:]
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        line = text[: e.start].count(b"\n") + 1
        raise ConfigError(f"{p}: not UTF-8 text (line {line}: byte 0x{text[e.start]:02x}); save it as UTF-8") from None
    try:
        raw = tomllib.loads(decoded)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    try:
        return _parse(raw, p.parent, p)
    except ConfigError as e:
        raise e.located(p, decoded) from None


def config_from_dict(raw: Mapping[str, object], base_dir: str | os.PathLike[str] = ".") -> Config:
    """Validate an already-parsed mapping (tests, embedding). Relative paths resolve against base_dir."""
    base = Path(base_dir).absolute()
    return _parse(raw, base, base / DEFAULT_CONFIG_NAME)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v)
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def render_config(**overrides: object) -> str:
    """The text of a complete, commented config file with the defaults, changed by ``overrides``.

    Overrides: top-level keys by name (``data_dir="./var"``, ``log_level="DEBUG"``); section keys as
    ``<section>_<key>`` (``sip_udp_port=5070``, ``security_exempt=["127.0.0.1"]``) or as a dict
    (``sip={"realm": "clinic"}``); ``sip_port=N`` sets both sip.udp_port and sip.tcp_port.
    An unknown override raises ConfigError; values are validated when the result is loaded.
    """
    values: dict[tuple[str, str], object] = {}
    known = {(s, k) for s, entries in _SCHEMA.items() for k, *_ in entries}
    for name, v in overrides.items():
        if v is None:
            continue
        if name == "sip_port":
            values[("sip", "udp_port")] = v
            values[("sip", "tcp_port")] = v
        elif name in _SCHEMA and name != "" and isinstance(v, dict):
            for k, sv in v.items():
                if (name, k) not in known:
                    raise ConfigError(f"unknown key '{name}.{k}'")
                values[(name, k)] = sv
        elif ("", name) in known:
            values[("", name)] = v
        else:
            section, _, key = name.partition("_")
            if (section, key) not in known:
                raise ConfigError(f"unknown key '{name}'")
            values[(section, key)] = v
    if ("", "data_dir") in values:
        values[("", "data_dir")] = str(values[("", "data_dir")])

    lines = ["# pypbx configuration (TOML). Reference: README.md, 'Admin's guide'.", ""]
    for section, entries in _SCHEMA.items():
        if section:
            lines.append("")
            lines.append(f"[{section}]")
        for key, default, _v, comment in entries:
            v = values.get((section, key), default)
            if key in ("tls_cert", "tls_key") and v is not None:
                v = str(v)
            lines.append(f"{key} = {_toml_value(v)}" + (f"    # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"
