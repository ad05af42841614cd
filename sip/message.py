"""Sans-I/O SIP message layer (RFC 3261 §7, §8, §18.3, §19, §20, §25).

Parsing is split in two stages for speed:

* ``parse_message`` does one pass over the bytes: start line, header split
  (with folding, compact-form expansion), body framing by Content-Length, and
  the mandatory-header checks of RFC 3261 §8.1.1 / §8.2 (which parse Via,
  From, To, CSeq, Call-ID and cache the results).
* everything else (Contact, Route, ...) is parsed lazily on first access and
  cached on the (frozen, slot-less) dataclass instance.

Text is decoded as UTF-8 with ``surrogateescape`` so that arbitrary bytes in
header values survive a parse -> serialise round trip byte-exactly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Self, TypeVar, overload
from urllib.parse import unquote

__all__ = [
    "KNOWN_METHODS",
    "MAX_MESSAGE",
    "URI",
    "FramingError",
    "Headers",
    "Keepalive",
    "Message",
    "Method",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Via",
    "is_keepalive",
    "make_response",
    "parse_message",
    "reason_phrase",
    "unsupported_extensions",
    "validate_request",
]

MAX_MESSAGE = 65536
_MAX_UINT32 = 2**32 - 1


# ---------------------------------------------------------------------------
# errors


class SipParseError(ValueError):
    """A message could not be parsed / accepted.

    status:  response code to send if the message was a request we can answer
    reason:  short reason phrase naming the problem
    drop:    True when the message must be dropped silently (unanswerable)
    partial: best-effort Request (start line + headers) so a response can be built
    """

    def __init__(self, reason: str, status: int = 400, *, drop: bool = False, partial: Request | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.drop = drop
        self.partial = partial

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"SipParseError({self.reason!r}, status={self.status}, drop={self.drop})"


class FramingError(SipParseError):
    """The byte stream cannot be framed any more (RFC 3261 §18.3): close the connection."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason, status, drop=True)
        self.messages: list[bytes | Keepalive] = []  # frames completed before the error (StreamFramer.feed)


# ---------------------------------------------------------------------------
# methods


class Method(StrEnum):
    """The methods this stack knows (RFC 3261 and extensions). A StrEnum: a member is the
    method's wire token, so ``request.method == Method.INVITE`` works on the plain ``str``
    a parsed request carries (which may be an extension method not listed here: 501)."""

    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    REGISTER = "REGISTER"
    OPTIONS = "OPTIONS"
    INFO = "INFO"
    PRACK = "PRACK"
    UPDATE = "UPDATE"
    SUBSCRIBE = "SUBSCRIBE"
    NOTIFY = "NOTIFY"
    REFER = "REFER"
    MESSAGE = "MESSAGE"
    PUBLISH = "PUBLISH"


KNOWN_METHODS: frozenset[str] = frozenset(m.value for m in Method)

# ---------------------------------------------------------------------------
# character classes (RFC 3261 §25.1)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
_USER_SAFE = frozenset(_UNRESERVED + "&=+$,;?/")  # user-unreserved
_PASSWORD_SAFE = frozenset(_UNRESERVED + "&=+$,")
_PARAM_SAFE = frozenset(_UNRESERVED + "[]/:&+$")  # param-unreserved
_HEADER_SAFE = frozenset(_UNRESERVED + "[]/?:+$")  # hnv-unreserved
_BAD_URI_CHARS_RE = re.compile(r'[\s<>"]')
_HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+")


def _unescape(s: str) -> str:
    # RFC 3261 §19.1.2 / §25.1 escaped = "%" HEXDIG HEXDIG; invalid escapes kept literally.
    if "%" not in s:
        return s
    return unquote(s, errors="surrogateescape")


def _escape(s: str, safe: frozenset[str]) -> str:
    for ch in s:
        if ch not in safe:
            break
    else:
        return s
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        c = chr(b)
        out.append(c if c in safe else f"%{b:02X}")
    return "".join(out)


_TOKEN_CACHE: dict[str, bool] = {}


def _is_token(s: str) -> bool:
    r = _TOKEN_CACHE.get(s)
    if r is None:
        r = _TOKEN_RE.fullmatch(s) is not None
        if len(_TOKEN_CACHE) < 4096 and len(s) < 64:
            _TOKEN_CACHE[s] = r
    return r


_T = TypeVar("_T")


class cached_property(Generic[_T]):
    """Non-data descriptor caching in the instance __dict__ (works on frozen, slot-less
    dataclasses because it bypasses __setattr__)."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached_property[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> _T | cached_property[_T]:
        if obj is None:
            return self
        val = self.func(obj)
        obj.__dict__[self.name] = val
        return val


# ---------------------------------------------------------------------------
# URI  (RFC 3261 §19.1, §25.1; RFC 3966 for tel; RFC 5118 for IPv6 references)

_SIP_URI_RE = re.compile(
    r"(?:([^@]*)@)?"  # userinfo
    r"(\[[^\]]*\]|[^:;?\[\]]*)"  # host (IPv6 reference kept with brackets)
    r"(?::([^;?]*))?"  # port
    r"(;[^?]*)?"  # uri-parameters
    r"(?:\?(.*))?\Z",
    re.S,
)  # headers


@dataclass(frozen=True)
class URI:
    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None  # scheme-specific part of an absoluteURI we do not interpret
    raw: str = field(default="", compare=False, repr=False)

    def param(self, name: str, default: str | None = None) -> str | None:
        """Value of a URI parameter (None for a flag parameter or when absent; see has_param)."""
        name = name.lower()
        for k, v in self.params:
            if k == name:
                return v
        return default

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(k == name for k, _ in self.params)

    def with_params(self, **kv: object) -> URI:
        return dataclasses.replace(self, params=_set_params(self.params, kv))

    def without_params(self, *names: str) -> URI:
        drop = {n.lower() for n in names}
        return dataclasses.replace(self, params=tuple(p for p in self.params if p[0] not in drop))

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if not self.scheme:  # placeholder for an unparseable Request-URI
            return self.raw
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(_escape(self.user or "", _PARAM_SAFE))
        else:
            if self.user is not None:
                parts.append(_escape(self.user, _USER_SAFE))
                if self.password is not None:
                    parts.append(":")
                    parts.append(_escape(self.password, _PASSWORD_SAFE))
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts.append(f":{self.port}")
        for k, v in self.params:
            parts.append(";" + _escape(k, _PARAM_SAFE))
            if v is not None:
                parts.append("=" + _escape(v, _PARAM_SAFE))
        if self.headers:
            parts.append(
                "?" + "&".join(_escape(k, _HEADER_SAFE) + "=" + _escape(v, _HEADER_SAFE) for k, v in self.headers)
            )
        return "".join(parts)

    @staticmethod
    def parse(text: str) -> URI:
        """Parse a URI (no surrounding <>, no whitespace).  Raises SipParseError(400).
        Results are immutable and memoised (phones send the same URIs again and again)."""
        u = _URI_CACHE.get(text)
        if u is None:
            u = _parse_uri(text)
            if len(_URI_CACHE) >= 4096:
                _URI_CACHE.clear()
            _URI_CACHE[text] = u
        return u


_URI_CACHE: dict[str, URI] = {}
#: Parameters of a URI, name-addr or Via: (lower-case name, value or None for a flag).
Params = tuple[tuple[str, str | None], ...]


def _parse_uri(text: str) -> URI:
    """RFC 3261 §19.1.1 SIP-URI / SIPS-URI, RFC 3966 tel, otherwise absoluteURI (opaque)."""
    colon = text.find(":")
    if colon <= 0 or _BAD_URI_CHARS_RE.search(text):
        raise SipParseError("Bad Request - malformed URI")
    scheme = text[:colon]
    if not _SCHEME_RE.fullmatch(scheme):
        raise SipParseError("Bad Request - malformed URI scheme")
    scheme = scheme.lower()
    rest = text[colon + 1 :]
    if not rest:
        raise SipParseError("Bad Request - empty URI")
    if scheme == "sip" or scheme == "sips":
        return _parse_sip_uri(scheme, rest, text)
    if scheme == "tel":
        # RFC 3966: telephone-subscriber *par
        num, _, ps = rest.partition(";")
        if not num:
            raise SipParseError("Bad Request - malformed tel URI")
        return URI("tel", _unescape(num), None, "", None, _parse_uri_params(ps) if ps else (), (), None, text)
    return URI(scheme, None, None, "", None, (), (), rest, text)


_obj_new = object.__new__


def _mk_uri(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: Params,
    headers: tuple[tuple[str, str], ...],
    opaque: str | None,
    raw: str,
) -> URI:
    # fast constructor: frozen dataclass __init__ costs ~1 µs per object
    o: URI = _obj_new(URI)
    d = o.__dict__
    d["scheme"] = scheme
    d["user"] = user
    d["password"] = password
    d["host"] = host
    d["port"] = port
    d["params"] = params
    d["headers"] = headers
    d["opaque"] = opaque
    d["raw"] = raw
    return o


def _parse_uri_params(ps: str) -> Params:
    # uri-parameters = *( ";" uri-parameter ); names case-insensitive -> lowercased
    out: list[tuple[str, str | None]] = []
    for p in ps.split(";"):
        name, eq, value = p.partition("=")
        if not name:
            raise SipParseError("Bad Request - empty URI parameter")
        out.append((_unescape(name).lower(), _unescape(value) if eq else None))
    return tuple(out)


def _parse_sip_uri(scheme: str, rest: str, text: str) -> URI:
    m = _SIP_URI_RE.match(rest)
    if m is None:
        raise SipParseError("Bad Request - malformed SIP URI")
    userinfo, host, port, ps, hs = m.groups()
    user = password = None
    if userinfo is not None:
        u, c, pw = userinfo.partition(":")
        user = _unescape(u)
        if c:
            password = _unescape(pw)
    if not host or not _HOST_RE.fullmatch(host):
        raise SipParseError("Bad Request - malformed host in URI")
    host = host.lower()
    portnum = None
    if port is not None:
        if not port.isdigit() or not port.isascii() or len(port) > 5 or int(port) > 65535:
            raise SipParseError("Bad Request - malformed port in URI")
        portnum = int(port)
    params = _parse_uri_params(ps[1:]) if ps else ()
    headers: tuple[tuple[str, str], ...] = ()
    if hs is not None:
        hl = []
        for h in hs.split("&"):
            k, _, v = h.partition("=")
            if not k:
                raise SipParseError("Bad Request - malformed URI header")
            hl.append((_unescape(k), _unescape(v)))
        headers = tuple(hl)
    return _mk_uri(scheme, user, password, host, portnum, params, headers, None, text)


def _set_params(params: Params, kv: dict[str, object]) -> Params:
    out = list(params)
    for k, value in kv.items():
        k = k.lower()  # names with '-' : with_params(**{"reg-id": "1"})
        v = None if value is None or value is True else str(value)
        for i, (pk, _) in enumerate(out):
            if pk == k:
                out[i] = (k, v)
                break
        else:
            out.append((k, v))
    return tuple(out)


# ---------------------------------------------------------------------------
# header parameters / splitting helpers


def _split_top(value: str, sep: str) -> list[str]:
    """Split on `sep` outside quoted strings (with backslash escapes) and <...>."""
    if sep not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return value.split(sep)
    out = []
    start = 0
    inq = False
    depth = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if inq:
            if c == "\\":
                i += 1
            elif c == '"':
                inq = False
        elif c == '"':
            inq = True
        elif c == "<":
            depth += 1
        elif c == ">":
            if depth:
                depth -= 1
        elif c == sep and depth == 0:
            out.append(value[start:i])
            start = i + 1
        i += 1
    out.append(value[start:])
    return out


_GEN_PARAM_RE = re.compile(r'[ \t]*([^;=\s"]+)[ \t]*(?:=[ \t]*("(?:[^"\\]|\\.)*"|[^;"\s]+)[ \t]*)?(;|\Z)', re.S)


def _parse_header_params(s: str, what: str) -> Params:
    """generic-param list after the first ';'
    (RFC 3261 §25.1: generic-param = token [ EQUAL gen-value ]; gen-value = token / host /
    quoted-string).  Names lowercased; quoted values kept with their quotes."""
    out = []
    if '"' not in s and " " not in s and "\t" not in s:
        # fast path: no quoted values, no LWS
        for p in s.split(";"):
            name, eq, value = p.partition("=")
            if not _is_token(name) or (eq and not value):
                raise SipParseError(f"Bad Request - malformed {what} parameter")
            out.append((name.lower(), value if eq else None))
        return tuple(out)
    pos = 0
    n = len(s)
    match = _GEN_PARAM_RE.match
    while True:
        m = match(s, pos)
        if m is None:
            raise SipParseError(f"Bad Request - malformed {what} parameter")
        name, value, sep = m.groups()
        if not _is_token(name):
            raise SipParseError(f"Bad Request - malformed {what} parameter")
        out.append((name.lower(), value))
        pos = m.end()
        if not sep:
            if pos != n:
                raise SipParseError(f"Bad Request - malformed {what} parameter")
            return tuple(out)


_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _quoted_end(s: str, start: int) -> int:
    """Index just past the quoted-string starting at s[start] == '"'; -1 if unterminated."""
    m = _QUOTED_RE.match(s, start)
    return -1 if m is None else m.end()


def _unquote_qs(q: str) -> str:
    # quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE ; quoted-pair = "\" any
    inner = q[1:-1]
    if "\\" not in inner:
        return inner
    return re.sub(r"\\(.)", r"\1", inner, flags=re.S)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params_str(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _get_param(params: Params, name: str) -> str | None:
    name = name.lower()
    for k, v in params:
        if k == name:
            return v
    return None


# ---------------------------------------------------------------------------
# NameAddr  (RFC 3261 §20.10, §25.1 name-addr / addr-spec)

_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*")
_NA_FAST_RE = re.compile(
    r'[ \t]*(?:"((?:[^"\\]|\\.)*)"|((?:[A-Za-z0-9\-.!%*_+`\'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`\'~]+)*)?))'
    r'[ \t]*<([^<>\s"]*)>[ \t]*(?:;(.*))?\Z',
    re.S,
)  # unambiguous: no ReDoS on long LWS runs


@dataclass(frozen=True)
class NameAddr:
    display: str | None
    uri: URI
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(k == name for k, _ in self.params)

    @property
    def tag(self) -> str | None:
        return _get_param(self.params, "tag")

    def with_params(self, **kv: object) -> NameAddr:
        return dataclasses.replace(self, params=_set_params(self.params, kv))

    def with_tag(self, tag: str) -> NameAddr:
        return dataclasses.replace(self, params=_set_params(self.params, {"tag": tag}))

    def __str__(self) -> str:
        s = f"<{self.uri}>"
        if self.display is not None:
            s = _quote(self.display) + " " + s
        return s + _params_str(self.params) if self.params else s

    @staticmethod
    def parse(text: str) -> NameAddr:
        m = _NA_FAST_RE.match(text)
        if m is not None:
            # common form: ["display"|tokens] <uri> [;params]  -- one regex, no loops
            qd, td, ut, ps = m.groups()
            if qd is not None:
                display = _unquote_qs(f'"{qd}"') if "\\" in qd else qd
            else:
                td = td.strip(" \t")
                display = td or None
            o = _obj_new(NameAddr)
            d = o.__dict__
            d["display"] = display
            d["uri"] = URI.parse(ut)
            d["params"] = _parse_header_params(ps, "address") if ps is not None else ()
            return o
        return NameAddr._parse_slow(text)

    @staticmethod
    def _parse_slow(text: str) -> NameAddr:
        s = text.strip(" \t")
        if not s:
            raise SipParseError("Bad Request - empty address")
        display = None
        c0 = s[0]
        if c0 == '"':
            end = _quoted_end(s, 0)
            if end < 0:
                raise SipParseError("Bad Request - unterminated quoted string")
            display = _unquote_qs(s[:end])
            s = s[end:].lstrip(" \t")
            if not s.startswith("<"):
                raise SipParseError("Bad Request - malformed name-addr")
            lt = 0
        else:
            lt = s.find("<")
            q = s.find('"')
            if q >= 0 and (lt < 0 or q < lt):
                raise SipParseError("Bad Request - malformed display name")
        if lt >= 0:
            if c0 != '"':
                dn = s[:lt].strip(" \t")
                # display-name = *(token LWS) / quoted-string
                if dn:
                    if not _DISPLAY_TOKENS_RE.fullmatch(dn):
                        raise SipParseError("Bad Request - non-token characters in display name")
                    display = dn
            gt = s.find(">", lt)
            if gt < 0:
                raise SipParseError("Bad Request - unterminated <")
            uri = URI.parse(s[lt + 1 : gt])
            rest = s[gt + 1 :].strip(" \t")
        else:
            # addr-spec: URIs with ',', ';' or '?' must be enclosed in <> (§20.10)
            semi = s.find(";")
            if semi >= 0:
                ut, rest = s[:semi].rstrip(" \t"), s[semi:]
            else:
                ut, rest = s, ""
            if "?" in ut or "," in ut:
                raise SipParseError("Bad Request - URI with ? or , must be enclosed in <>")
            uri = URI.parse(ut)
        params: Params = ()
        if rest:
            if rest[0] != ";":
                raise SipParseError("Bad Request - garbage after address")
            params = _parse_header_params(rest[1:], "address")
        o: NameAddr = _obj_new(NameAddr)
        d = o.__dict__
        d["display"] = display
        d["uri"] = uri
        d["params"] = params
        return o


# ---------------------------------------------------------------------------
# Via  (RFC 3261 §20.42, §25.1 via-parm; RFC 3581 rport; RFC 5118 §4.5)

_VIA_RE = re.compile(
    r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(?:;(.*))?\Z",
    re.S,
)


@dataclass(frozen=True)
class Via:
    protocol: str
    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(k == name for k, _ in self.params)

    @property
    def branch(self) -> str | None:
        return _get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _get_param(self.params, "received")

    @property
    def rport(self) -> str | None:
        for k, v in self.params:
            if k == "rport":
                return "" if v is None else v
        return None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **kv: object) -> Via:
        """Copy with params set; rport=True or rport='' gives a flag-less 'rport'."""
        kv = {k: (None if (k == "rport" and v == "") else v) for k, v in kv.items()}
        out = list(self.params)
        for k, value in kv.items():
            k = k.lower()
            v = None if value is None or value is True else str(value)
            for i, (pk, _) in enumerate(out):
                if pk == k:
                    out[i] = (k, v)
                    break
            else:
                out.append((k, v))
        return dataclasses.replace(self, params=tuple(out))

    def __str__(self) -> str:
        s = f"{self.protocol}/{self.transport} {self.host}"
        if self.port is not None:
            s += f":{self.port}"
        return s + _params_str(self.params) if self.params else s

    @staticmethod
    def parse(text: str) -> Via:
        m = _VIA_RE.match(text)
        if m is None:
            raise SipParseError("Bad Request - malformed Via")
        name, ver, transport, host, port, ps = m.groups()
        portnum = None
        if port is not None:
            portnum = int(port)
            if portnum > 65535:
                raise SipParseError("Bad Request - malformed Via port")
        params = _parse_header_params(ps, "Via") if ps is not None else ()
        o = _obj_new(Via)
        d = o.__dict__
        d["protocol"] = f"{name.upper()}/{ver}"
        d["transport"] = transport.upper()
        d["host"] = host.lower()
        d["port"] = portnum
        d["params"] = params
        return o


# ---------------------------------------------------------------------------
# Headers

_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "e": "Content-Encoding",
    "s": "Subject",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "u": "Allow-Events",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}
_CANONICAL_LIST = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]
_CANONICAL = {n.lower(): n for n in _CANONICAL_LIST}
for _k, _v in _COMPACT.items():
    _CANONICAL[_k] = _v
del _k, _v

# headers whose values are comma-separated lists (RFC 3261 §7.3.1)
_LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Path",
        "Service-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "In-Reply-To",
        "Content-Encoding",
        "Content-Language",
        "Warning",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Reason",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Privacy",
        "Accept-Contact",
        "Reject-Contact",
        "Request-Disposition",
    )
)


def canonical_name(name: str) -> str:
    return _CANONICAL.get(name.lower(), name)


_KEY_CACHE: dict[str, str] = {}


class Headers:
    """Immutable ordered multi-map of SIP headers; names kept in canonical form."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = (), *, _canon: bool = True):
        if _canon:
            items = tuple((_CANONICAL.get(n.lower(), n), v) for n, v in items)
        else:
            items = tuple(items)
        self._items: tuple[tuple[str, str], ...] = items
        self._index: dict[str, list[str]] | None = None

    def _idx(self) -> dict[str, list[str]]:
        idx = self._index
        if idx is None:
            idx = {}
            for n, v in self._items:
                k = n.lower()
                lst = idx.get(k)
                if lst is None:
                    idx[k] = [v]
                else:
                    lst.append(v)
            self._index = idx
        return idx

    @staticmethod
    def _key(name: str) -> str:
        k = _KEY_CACHE.get(name)
        if k is None:
            k = name.lower()
            c = _COMPACT.get(k)
            if c is not None:
                k = c.lower()
            if len(_KEY_CACHE) < 4096:
                _KEY_CACHE[name] = k
        return k

    def get(self, name: str, default: str | None = None) -> str | None:
        lst = self._idx().get(self._key(name))
        return lst[0] if lst else default

    def get_raw_all(self, name: str) -> list[str]:
        """All header-field values for `name` as they appeared (no comma splitting)."""
        return list(self._idx().get(self._key(name), ()))

    def get_all(self, name: str) -> list[str]:
        key = self._key(name)
        lst = self._idx().get(key)
        if not lst:
            return []
        if key not in _LIST_HEADERS:
            return list(lst)
        out: list[str] = []
        for v in lst:
            if "," in v:
                out.extend(x.strip(" \t") for x in _split_top(v, ",") if x.strip(" \t"))
            elif v:
                out.append(v)
        return out

    def count(self, name: str) -> int:
        return len(self._idx().get(self._key(name), ()))

    def __contains__(self, name: str) -> bool:
        return self._key(name) in self._idx()

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def replace(self, name: str, values: Iterable[str]) -> Headers:
        cname = canonical_name(_COMPACT.get(name.lower(), name))
        key = self._key(name)
        new = [(cname, str(v)) for v in values]
        out = []
        done = False
        for n, v in self._items:
            if n.lower() == key:
                if not done:
                    out.extend(new)
                    done = True
            else:
                out.append((n, v))
        if not done:
            out.extend(new)
        return Headers(out, _canon=False)

    def add(self, name: str, value: str, first: bool = False) -> Headers:
        cname = canonical_name(_COMPACT.get(name.lower(), name))
        if first:
            key = self._key(name)
            out = list(self._items)
            for i, (n, _) in enumerate(out):
                if n.lower() == key:
                    out.insert(i, (cname, str(value)))
                    break
            else:
                out.append((cname, str(value)))
            return Headers(out, _canon=False)
        return Headers((*self._items, (cname, str(value))), _canon=False)

    def remove(self, name: str) -> Headers:
        key = self._key(name)
        return Headers([(n, v) for n, v in self._items if n.lower() != key], _canon=False)


# ---------------------------------------------------------------------------
# messages

_CRLF_ANY_RE = re.compile(r"[\r\n]+")


class _MessageMixin:
    """Lazily parsed, cached views of the common headers (shared by Request/Response)."""

    headers: Headers
    body: bytes

    @cached_property
    def call_id(self) -> str:
        vals = self.headers._idx().get("call-id", ())
        if len(vals) != 1 or not vals[0] or " " in vals[0]:
            raise SipParseError("Bad Request - missing or bad Call-ID")
        return vals[0]

    @cached_property
    def cseq(self) -> tuple[int, str]:
        # RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method; number < 2**31 for new requests,
        # we accept up to 2**32-1 (RFC 4475 §3.1.2.4).
        vals = self.headers._idx().get("cseq", ())
        if len(vals) != 1:
            raise SipParseError("Bad Request - missing or multiple CSeq")
        parts = vals[0].split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii() or not _is_token(parts[1]):
            raise SipParseError("Bad Request - malformed CSeq")
        n = int(parts[0]) if len(parts[0]) <= 20 else _MAX_UINT32 + 1
        if n > _MAX_UINT32:
            raise SipParseError("Bad Request - CSeq number too large")
        return (n, parts[1])

    @cached_property
    def vias(self) -> list[Via]:
        vals = self.headers.get_all("Via")
        if not vals:
            raise SipParseError("Bad Request - missing Via")
        return [Via.parse(v) for v in vals]

    @property
    def top_via(self) -> Via:
        return self.vias[0]

    def _single_nameaddr(self, name: str) -> NameAddr:
        vals = self.headers._idx().get(name.lower(), ())
        if len(vals) != 1:
            raise SipParseError(f"Bad Request - missing or multiple {name}")
        try:
            return NameAddr.parse(vals[0])
        except SipParseError as e:
            raise SipParseError(f"Bad Request - bad {name}: {e.reason.split(' - ')[-1]}") from None

    @cached_property
    def from_(self) -> NameAddr:
        return self._single_nameaddr("From")

    @cached_property
    def to(self) -> NameAddr:
        return self._single_nameaddr("To")

    @cached_property
    def contacts(self) -> list[NameAddr] | str:
        vals = self.headers.get_all("Contact")
        if len(vals) == 1 and vals[0] == "*":
            return "*"
        try:
            return [NameAddr.parse(v) for v in vals]
        except SipParseError as e:
            raise SipParseError(f"Bad Request - bad Contact: {e.reason.split(' - ')[-1]}") from None

    @cached_property
    def routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Route")]

    @cached_property
    def record_routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Record-Route")]

    @cached_property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22); None when absent or > 255 (treated as absent, RFC 4475 §3.1.2.4)."""
        vals = self.headers._idx().get("max-forwards")
        if not vals:
            return None
        if len(vals) > 1:
            raise SipParseError("Bad Request - multiple Max-Forwards")
        v = vals[0]
        if not v.isdigit() or not v.isascii():
            raise SipParseError("Bad Request - malformed Max-Forwards")
        n = int(v) if len(v) <= 10 else 256
        return n if n <= 255 else None

    @cached_property
    def expires(self) -> int | None:
        """Expires header (§20.19) as int; None when absent, malformed or > 2**32-1."""
        v = self.headers.get("Expires")
        if v is None or not v.isdigit() or not v.isascii():
            return None
        n = int(v) if len(v) <= 20 else _MAX_UINT32 + 1
        return n if n <= _MAX_UINT32 else None

    @property
    def content_length(self) -> int:
        return len(self.body)

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("Content-Type")
        if v is None:
            return None
        return v.split(";", 1)[0].strip(" \t").lower()

    def _serialise(self, start: str) -> bytes:
        # RFC 3261 §7: CRLF line ends; one header field per line (no folding emitted).
        # CR / LF inside values (only possible in constructed messages or after a bare CR
        # in the input) are replaced by SP so nothing can inject header lines.
        if "\r" in start or "\n" in start:
            start = _CRLF_ANY_RE.sub(" ", start)
        out = [start, "\r\n"]
        body = self.body
        cl_done = False
        for n, v in self.headers._items:
            if n == "Content-Length":
                if cl_done:
                    continue
                v = str(len(body))
                cl_done = True
            elif "\r" in v or "\n" in v:
                v = _CRLF_ANY_RE.sub(" ", v)
            out.append(n)
            out.append(": ")
            out.append(v)
            out.append("\r\n")
        if not cl_done:
            out.append(f"Content-Length: {len(body)}\r\n")
        out.append("\r\n")
        return "".join(out).encode("utf-8", "surrogateescape") + body

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]  # the subclasses are dataclasses


@dataclass(frozen=True, eq=True)
class Request(_MessageMixin):
    method: str
    uri: URI
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def to_bytes(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {self.version}")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace")


@dataclass(frozen=True, eq=True)
class Response(_MessageMixin):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def to_bytes(self) -> bytes:
        return self._serialise(f"{self.version} {self.status} {self.reason}")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace")


Message = Request | Response


# ---------------------------------------------------------------------------
# parsing (RFC 3261 §7, §18.3 for datagram framing)

_HDR_END_RE = re.compile(rb"\r?\n\r?\n")


class _FakeMatch:
    __slots__ = ("_e", "_s")

    def __init__(self, s: int, e: int):
        self._s, self._e = s, e

    def start(self) -> int:
        return self._s

    def end(self) -> int:
        return self._e


_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.I)
_STATUS_RE = re.compile(r"(SIP/\d+\.\d+)[ \t]+(\d+)(?:[ \t](.*))?\Z", re.S | re.I)


def _lenient_via(text: str) -> Via | None:
    """Via parse that skips malformed parameters (for answering a broken request only)."""
    try:
        return Via.parse(text)
    except SipParseError:
        pass
    head, _, ps = text.partition(";")
    try:
        v = Via.parse(head)
    except SipParseError:
        return None
    params: list[tuple[str, str | None]] = []
    for p in ps.split(";"):
        try:
            params.extend(_parse_header_params(p, "Via"))
        except SipParseError:
            continue
    return dataclasses.replace(v, params=tuple(params))


def is_keepalive(data: bytes) -> bool:
    """True for a datagram made only of CR, LF and NUL bytes (RFC 5626 §3.5.1 pings and
    the zero-byte keep-alives some phones send). Such datagrams are dropped silently."""
    return not data.strip(b"\r\n\x00")


_NAME_CACHE: dict[str, tuple[str, str]] = {}  # raw header name (before ':') -> canonical name


# the lookbehind makes a match start only at the beginning of an LWS run (linear time;
# without it a long run of spaces anywhere in the header section is quadratic)
_FOLD_RE = re.compile(r"(?<![ \t])[ \t]*\r?\n[ \t]+")


def _split_headers(text: str) -> tuple[str, list[tuple[str, str]], dict[str, list[str]], str | None]:
    """Split the header section text into start line, (canonical name, value) pairs and
    an index {lower-case canonical name: [values]}.

    Folding (RFC 3261 §7.3.1): CRLF followed by SP/HT is replaced by a single SP.
    Bare LF is accepted as a line end (liberal, RFC 2543 senders).
    Returns (start_line, items, index, error_reason_or_None)."""
    if "\n " in text or "\n\t" in text:
        text = _FOLD_RE.sub(" ", text)
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:  # bare LF line ends (liberal)
        lines = re.split(r"\r?\n", text)
    items: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    err: str | None = None
    names = _NAME_CACHE
    for i in range(1, len(lines)):
        name, colon, value = lines[i].partition(":")
        nk = names.get(name)
        if nk is None:
            if not name:
                continue  # empty line (only possible in the liberal bare-LF case)
            n2 = name.rstrip(" \t")
            if not colon or not n2 or not _TOKEN_RE.fullmatch(n2):
                err = "Bad Request - malformed header line"
                continue
            cname = _CANONICAL.get(n2.lower(), n2)
            nk = (cname, cname.lower())
            if len(names) < 4096 and len(name) < 64:
                names[name] = nk
        value = value.strip(" \t")
        items.append((nk[0], value))
        lst = index.get(nk[1])
        if lst is None:
            index[nk[1]] = [value]
        else:
            lst.append(value)
    return lines[0], items, index, err


def parse_message(data: bytes) -> Message:
    """Parse one complete SIP message (e.g. a UDP datagram, or a frame from StreamFramer).

    Raises SipParseError (status / drop / partial tell the caller how to react)."""
    if len(data) > MAX_MESSAGE:
        # RFC 3261 §18.1.1 / §21.5.14: 513 Message Too Large
        raise SipParseError("Message Too Large", 513, drop=True)
    data = bytes(data)
    # RFC 3261 §7.5: ignore CRLFs before the start line; keep-alives are not messages
    if data[:1] in (b"\r", b"\n", b"\x00"):
        data = data.lstrip(b"\r\n\x00")
        if not data:
            raise SipParseError("keep-alive, not a message", 400, drop=True)
    if not data:
        raise SipParseError("empty message", 400, drop=True)
    idx = data.find(b"\r\n\r\n")
    if idx >= 0 and data.find(b"\n\n", 0, idx) < 0 and data.find(b"\n\r\n", 0, idx) < 0:
        m: _FakeMatch | re.Match[bytes] | None = _FakeMatch(idx, idx + 4)
    else:
        m = _HDR_END_RE.search(data)
    if m is None:
        # no empty line: liberal, the headers run to the end of the datagram (RFC 4475 baddn)
        head, rest = data, b""
        if head.endswith(b"\n"):
            head = head[:-2] if head.endswith(b"\r\n") else head[:-1]
    else:
        head, rest = data[: m.start()], data[m.end() :]
    text = head.decode("utf-8", "surrogateescape")
    start, hlist, index, herr = _split_headers(text)
    headers: Headers = _obj_new(Headers)
    headers._items = tuple(hlist)
    headers._index = index
    if start[:4].upper() == "SIP/":
        return _parse_response(start, headers, herr, rest)
    return _parse_request(start, headers, herr, rest)


def _frame_body(headers: Headers, rest: bytes, partial_factory: Callable[[], Request | None]) -> bytes:
    """Datagram body framing (RFC 3261 §18.3 / §20.14)."""
    cls = headers._idx().get("content-length")
    if not cls:
        return rest  # datagram without Content-Length: body is the rest (§18.3)
    if len(set(cls)) > 1:
        raise SipParseError("Bad Request - multiple Content-Length values", 400, partial=partial_factory())
    v = cls[0]
    if not v.isdigit() or not v.isascii():
        raise SipParseError("Bad Request - malformed Content-Length", 400, partial=partial_factory())
    n = int(v) if len(v) <= 20 else MAX_MESSAGE + len(rest) + 1
    if n > len(rest):
        raise SipParseError("Bad Request - Content-Length larger than message", 400, partial=partial_factory())
    return rest[:n] if n != len(rest) else rest


def _parse_response(start: str, headers: Headers, herr: str | None, rest: bytes) -> Response:
    m = _STATUS_RE.match(start)
    if m is None:
        raise SipParseError("malformed status line", 400, drop=True)
    version, code, reason = m.groups()
    if version.upper() != "SIP/2.0":
        raise SipParseError("SIP Version Not Supported", 505, drop=True)
    if len(code) != 3 or not code.isascii() or not ("100" <= code <= "699"):
        raise SipParseError("bad status code", 400, drop=True)
    if herr:
        raise SipParseError(herr, 400, drop=True)
    try:
        body = _frame_body(headers, rest, lambda: None)
    except SipParseError as e:
        raise SipParseError(e.reason, 400, drop=True) from None
    resp = _obj_new(Response)
    d = resp.__dict__
    d["status"] = int(code)
    d["reason"] = reason or ""
    d["headers"] = headers
    d["body"] = body
    d["version"] = "SIP/2.0"
    # responses are never answered: anything malformed in the transaction identity -> drop
    try:
        resp.vias, resp.cseq, resp.call_id, resp.from_, resp.to  # noqa: B018 (eager check+cache)
    except SipParseError as e:
        raise SipParseError(e.reason, 400, drop=True) from None
    return resp


_BAD_URI = URI("", None, None, "", None, (), (), None, "")


def _parse_request(start: str, headers: Headers, herr: str | None, rest: bytes) -> Request:
    parts = start.split()
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF (§7.1); extra SP tolerated
    if len(parts) < 2 or not _is_token(parts[0]):
        raise SipParseError("malformed start line", 400, drop=True)
    method = parts[0]
    vm = _VERSION_RE.match(parts[-1])
    if vm is None:
        raise SipParseError("not a SIP message", 400, drop=True)

    def partial(uri: URI = _BAD_URI) -> Request:
        return Request(method, uri, headers, b"", "SIP/2.0")

    if parts[-1].upper() != "SIP/2.0":
        raise SipParseError("Version Not Supported", 505, partial=partial())
    if len(parts) != 3:
        raise SipParseError("Bad Request - malformed Request-Line", 400, partial=partial())
    try:
        uri = URI.parse(parts[1])
    except SipParseError:
        p = partial(dataclasses.replace(_BAD_URI, raw=parts[1]))
        raise SipParseError("Bad Request - malformed Request-URI", 400, partial=p) from None
    if herr:
        raise SipParseError(herr, 400, partial=partial(uri))
    body = _frame_body(headers, rest, lambda: partial(uri))
    req = _obj_new(Request)  # fast path for the frozen dataclass __init__
    d = req.__dict__
    d["method"] = method
    d["uri"] = uri
    d["headers"] = headers
    d["body"] = body
    d["version"] = "SIP/2.0"
    # RFC 3261 §8.1.1 / §8.2: mandatory headers. Via first: without a usable Via no
    # response can be sent at all (§18.2.2) -> drop.
    vias = headers.get_all("Via")
    if not vias:
        raise SipParseError("Bad Request - missing Via", 400, drop=True, partial=req)
    try:
        req.vias  # noqa: B018
    except SipParseError as e:
        lenient = [v for v in map(_lenient_via, vias) if v is not None]
        drop = not lenient or _lenient_via(vias[0]) is None
        if not drop:
            # best effort so the 400 can be routed (partial.top_via works; §18.2.2)
            req.__dict__["vias"] = lenient
        raise SipParseError(e.reason, 400, drop=drop, partial=req) from None
    for _name, attr in (
        ("From", "from_"),
        ("To", "to"),
        ("Call-ID", "call_id"),
        ("CSeq", "cseq"),
        ("Max-Forwards", "max_forwards"),
    ):
        try:
            getattr(req, attr)
        except SipParseError as e:
            raise SipParseError(e.reason, 400, partial=req) from None
    if req.cseq[1] != method:
        if method not in KNOWN_METHODS:
            # RFC 4475 §3.1.2.18: unknown method with mismatching CSeq -> 501 preferred
            raise SipParseError("Not Implemented", 501, partial=req)
        raise SipParseError("Bad Request - CSeq method does not match Request-Line", 400, partial=req)
    return req


# ---------------------------------------------------------------------------
# responses

_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
_CLASS_REASONS = {1: "Trying", 2: "OK", 3: "Redirection", 4: "Client Error", 5: "Server Error", 6: "Global Failure"}


def reason_phrase(status: int) -> str:
    r = _REASONS.get(status)
    if r is not None:
        return r
    return _CLASS_REASONS.get(status // 100, "Unknown")


def make_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response per RFC 3261 §8.2.6.2: copy all Via (in order), From, To (adding
    the tag if given and absent), Call-ID and CSeq; Timestamp for 100 (§8.2.6.1).
    Works on partial requests (raw header values are copied, nothing is re-parsed except
    To, and only to check for an existing tag)."""
    src = req.headers
    out: list[tuple[str, str]] = []
    for n, v in src._items:
        if n == "Via":
            out.append((n, v))
    for n in ("From", "To", "Call-ID", "CSeq"):
        for v in src.get_raw_all(n):
            if n == "To" and to_tag is not None and status != 100:
                try:
                    has_tag = NameAddr.parse(v).tag is not None
                except SipParseError:
                    has_tag = True
                if not has_tag:
                    v = f"{v};tag={to_tag}"
            out.append((n, v))
    if status == 100:
        ts = src.get("Timestamp")
        if ts is not None:
            out.append(("Timestamp", ts))
    for n, v in headers:
        out.append((canonical_name(n), str(v)))
    return Response(
        status, reason if reason is not None else reason_phrase(status), Headers(out, _canon=False), bytes(body)
    )


# ---------------------------------------------------------------------------
# application-level request checks (RFC 3261 §8.2)

_DEFAULT_SCHEMES = ("sip", "sips", "tel")
_SDP_METHODS = frozenset((Method.INVITE, Method.UPDATE, Method.PRACK, Method.ACK))
_DEFAULT_BODY_TYPES = ("application/sdp", "multipart/mixed", "multipart/alternative")


def unsupported_extensions(req: Request, supported: Iterable[str] = (), *, proxy_require: bool = False) -> list[str]:
    """Option tags in Require (and, for a proxy, Proxy-Require) not in `supported`
    (RFC 3261 §8.2.2.3, §16.3): list them in an Unsupported header of the 420."""
    sup = {s.lower() for s in supported}
    tags = req.headers.get_all("Require")
    if proxy_require:
        tags = tags + req.headers.get_all("Proxy-Require")
    return [t for t in tags if t.lower() not in sup]


def validate_request(
    req: Request,
    *,
    supported: Iterable[str] = (),
    schemes: Iterable[str] = _DEFAULT_SCHEMES,
    methods: Iterable[str] | None = None,
    body_types: Iterable[str] = _DEFAULT_BODY_TYPES,
    proxy_require: bool = False,
) -> tuple[int, str] | None:
    """UAS/registrar checks after a successful parse (RFC 3261 §8.2 order: method,
    headers, content).  Returns (status, reason) to answer with, or None when OK.

    * unknown method -> 501 (§8.2.1)       (methods default: the Method enum)
    * missing/bad mandatory headers -> 400 (§8.1.1)
    * Request-URI scheme not in `schemes` -> 416 (§8.2.2.1)
    * headers component in the Request-URI -> 400 (§19.1.1 Table 1)
    * unparseable Contact -> 400 (§20.10)
    * REGISTER with non-SIP To/Request-URI -> 400 (§10.3; RFC 4475 §3.3.4)
    * Require with tags not in `supported` -> 420 (§8.2.2.3; not for ACK/CANCEL;
      put unsupported_extensions(req, supported) in an Unsupported header)
    * body of an offer/answer method with a Content-Type not in `body_types` -> 415 (§8.2.3)
    * INVITE whose Accept excludes application/sdp -> 406 (RFC 4475 §3.3.15)
    Max-Forwards 0 is left to the proxy core (483, §16.3)."""
    meths = KNOWN_METHODS if methods is None else frozenset(methods)
    method = req.method
    if method not in meths:
        return (501, "Not Implemented")
    try:
        req.vias, req.from_, req.to, req.call_id  # noqa: B018
        cseq = req.cseq
        req.max_forwards  # noqa: B018
    except SipParseError as e:
        return (400, e.reason)
    if cseq[1] != method:
        return (400, "Bad Request - CSeq method does not match Request-Line")
    uri = req.uri
    if uri.scheme not in {s.lower() for s in schemes}:
        return (416, "Unsupported URI Scheme")
    if uri.headers:
        return (400, "Bad Request - headers not allowed in Request-URI")
    if "Contact" in req.headers:
        try:
            req.contacts  # noqa: B018
        except SipParseError as e:
            return (400, e.reason)
    if method == Method.REGISTER:
        if not uri.is_sip:
            return (400, "Bad Request - Request-URI must be a SIP URI")
        if not req.to.uri.is_sip:
            return (400, "Bad Request - address-of-record must be a SIP URI")
    if method not in (Method.ACK, Method.CANCEL) and unsupported_extensions(req, supported):
        return (420, "Bad Extension")
    if req.body and method in _SDP_METHODS:
        ct = req.content_type
        if ct is None or ct not in {t.lower() for t in body_types}:
            return (415, "Unsupported Media Type")
    if method == Method.INVITE:
        accept = req.headers.get_all("Accept")
        if accept:
            types = {a.split(";", 1)[0].strip(" \t").lower() for a in accept}
            if not types & {"application/sdp", "application/*", "*/*"}:
                return (406, "Not Acceptable")
    return None


# ---------------------------------------------------------------------------
# stream framing (RFC 3261 §18.3; RFC 5626 §3.5.1 CRLF keep-alives)


@dataclass(frozen=True)
class Keepalive:
    """A CRLFCRLF ping received on a stream: answer with a single CRLF (pong)."""


_CL_LINE_RE = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)")  # on lowered bytes


class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages.

    feed() returns complete message byte strings and Keepalive() markers.  Raises
    FramingError when the stream cannot be framed (missing / bad Content-Length, header
    section or message larger than MAX_MESSAGE); the caller must close the connection.
    """

    def __init__(self, max_message: int = MAX_MESSAGE):
        self._buf = bytearray()
        self._scan = 0  # where to resume the search for the end of the headers
        self._total = 0  # length of the current message once its headers are known
        self._max = max_message
        self._broken = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Keepalive]:
        """Add bytes; return the complete messages / Keepalive() markers now available.
        On FramingError, messages framed before the error in this call are attached to
        the exception as ``e.messages`` (process them, then close the connection)."""
        out: list[bytes | Keepalive] = []
        try:
            self._feed(data, out)
        except FramingError as e:
            e.messages = out
            raise
        return out

    def _feed(self, data: bytes, out: list[bytes | Keepalive]) -> None:
        if self._broken:
            raise FramingError("stream already broken")
        buf = self._buf
        buf += data
        while buf:
            if self._total:
                if len(buf) < self._total:
                    break
                total = self._total
                out.append(bytes(buf[:total]))
                del buf[:total]
                self._scan = self._total = 0
                continue
            if self._scan == 0:
                # at a message boundary: skip CRLFs, detect CRLFCRLF pings (RFC 5626 §3.5.1)
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    out.append(Keepalive())
                    continue
                c = buf[0]
                if c == 13 or c == 10:
                    if buf == b"\r" or buf == b"\r\n" or buf == b"\r\n\r":
                        break  # could still become a CRLFCRLF ping
                    if buf.startswith(b"\r\n"):
                        del buf[:2]
                    else:
                        del buf[:1]
                    continue
            scan = max(0, self._scan - 3)
            i = buf.find(b"\r\n\r\n", scan)
            j = buf.find(b"\n\n", scan, i if i >= 0 else len(buf))  # liberal: bare LF
            if j >= 0:
                hstart, hend = (j - 1, j + 2) if j and buf[j - 1] == 13 else (j, j + 2)
            elif i >= 0:
                hstart, hend = i, i + 4
            else:
                self._scan = max(1, len(buf))
                if len(buf) > self._max:
                    self._broken = True
                    raise FramingError("header section too large", 513)
                break
            if hend > self._max:
                self._broken = True
                raise FramingError("header section too large", 513)
            head = bytes(buf[:hstart]).lower()
            cls = [v.strip() for v in _CL_LINE_RE.findall(head)]
            if not cls:
                self._broken = True
                raise FramingError("missing Content-Length on a stream transport")
            if len(set(cls)) != 1 or not cls[0].isdigit():
                self._broken = True
                raise FramingError("bad Content-Length")
            total = hend + (int(cls[0]) if len(cls[0]) <= 20 else self._max + 1)
            if total > self._max:
                self._broken = True
                raise FramingError("message too large", 513)
            self._total = total  # loop emits it once the body is complete
