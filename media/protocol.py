"""Control protocol between the core (asyncio) and a media worker process.

Transport: JSON lines (UTF-8, one object per ``\\n``-terminated line) over the worker's
stdin (core -> worker) and stdout (worker -> core). The worker's stderr carries its logs.

Three kinds of line:

* **command** (core -> worker)::

      {"id": 7, "cmd": "play", "leg": "in-1", "file": "/p/hold.wav", "loop": true}

  ``id`` is a positive integer chosen by the core, unique per worker connection.
* **reply** (worker -> core), exactly one per command, in any order::

      {"reply": 7, "ok": true, "result": {}}
      {"reply": 7, "ok": false, "error": "no such leg: in-9"}

* **event** (worker -> core), unsolicited::

      {"event": "dtmf", "leg": "in-1", "digit": "5"}

Commands (fields beyond ``id``/``cmd``):

==============  ================================================================
answer          leg, code=200 (1xx codes send a provisional response)
hangup          leg, code=None (None: 603 before answer / BYE after; else code)
originate       leg_id, uri, from_uri=None, headers={}, auth=None -> result {"leg": leg_id}
                auth: digest credentials for this leg only ({"username", "password",
                "realm"}; realm optional, "*" = any) when the far end (a trunk's
                provider) challenges the INVITE with 401/407; never logged (redact())
play            leg, file, loop=False (file: 8 kHz mono 16-bit WAV, see prompts.py)
stop_play       leg
record          legs=[...], path_prefix -> result {"files": {leg: path}} one mono
                WAV per party: ``<path_prefix>-<leg>.wav``
stop_record     legs=None (None: all) -> result {"files": {leg: path}}
bridge          leg_a, leg_b (audio both ways)
unbridge        leg_a, leg_b
send_dtmf       leg, digits (RFC 2833)
ping            -> result {"legs": [...], "uptime": s}
shutdown        (hangs up every leg, releases pjsua2, exits 0)
==============  ================================================================

Events:

==================  ==============================================================
ready               capacity, sip_port, rtp_range [start, end), pid
incoming            leg, from_uri, to_uri, call_id, headers {name: value}
ringing             leg (outgoing leg got 180/183)
answered            leg, call_id (media is up: leg may be played/recorded/bridged;
                    call_id: the SIP Call-ID of the leg's dialog, as the phone sees it)
dtmf                leg, digit
playback_finished   leg, file
ended               leg, cause_code, reason, challenged (an outgoing leg whose INVITE was
                    re-sent with credentials after a 401/407: a final 401/407/403 then
                    means the credentials were refused)
record_stopped      leg, path, reason ("stopped"/"leg_ended"/"error")
held                leg (the phone on ``leg`` put the call on hold: re-INVITE with
                    a=sendonly / a=inactive / c=0.0.0.0)
unheld              leg (the phone on ``leg`` resumed: a=sendrecv again)
transfer_requested  leg, target, replaces, new_leg: the phone on ``leg`` sent REFER
                    (Refer-To ``target``; ``replaces`` "callid;to-tag=..;from-tag=.."
                    for an attended transfer, else None). The worker accepted it (202,
                    NOTIFYs follow the new call) and pjsua is placing the new call to
                    ``target`` through the front door as leg ``new_leg``, which then
                    reports ringing/answered/ended like an originated leg.
replaced            leg, new_leg, from_uri, call_id: an INVITE with Replaces took over
                    ``leg``'s dialog (attended transfer joined into this worker);
                    ``new_leg`` is answered by the worker, ``leg`` is hung up by it.
media_timeout       leg, seconds: no RTP arrived on the answered, unheld ``leg`` for
                    ``seconds`` (the worker's ``--rtp-timeout``; sent once per silence:
                    RTP arriving again re-arms it). The phone probably vanished.
error               message, leg=None
==================  ==============================================================

Leg ids: incoming legs get ``in-<n>`` from the worker; outgoing legs carry the id the
core chose in ``originate``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

__all__ = [
    "COMMANDS",
    "EVENTS",
    "REDACTED",
    "Command",
    "CommandName",
    "Event",
    "EventName",
    "ProtocolError",
    "Reply",
    "decode",
    "encode",
    "redact",
]

#: what a password looks like in logs (:func:`redact`)
REDACTED = "***"


class ProtocolError(ValueError):
    """A line that is not a valid protocol message."""


class CommandName(str, enum.Enum):
    ANSWER = "answer"
    HANGUP = "hangup"
    ORIGINATE = "originate"
    PLAY = "play"
    STOP_PLAY = "stop_play"
    RECORD = "record"
    STOP_RECORD = "stop_record"
    BRIDGE = "bridge"
    UNBRIDGE = "unbridge"
    SEND_DTMF = "send_dtmf"
    PING = "ping"
    SHUTDOWN = "shutdown"


class EventName(str, enum.Enum):
    READY = "ready"
    INCOMING = "incoming"
    RINGING = "ringing"
    ANSWERED = "answered"
    DTMF = "dtmf"
    PLAYBACK_FINISHED = "playback_finished"
    ENDED = "ended"
    RECORD_STOPPED = "record_stopped"
    ERROR = "error"
    HELD = "held"
    UNHELD = "unheld"
    TRANSFER_REQUESTED = "transfer_requested"
    REPLACED = "replaced"
    MEDIA_TIMEOUT = "media_timeout"


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    name: ClassVar[CommandName]
    id: int


@dataclass(frozen=True)
class Answer(Command):
    name: ClassVar[CommandName] = CommandName.ANSWER
    leg: str = ""
    code: int = 200


@dataclass(frozen=True)
class Hangup(Command):
    name: ClassVar[CommandName] = CommandName.HANGUP
    leg: str = ""
    code: int | None = None


@dataclass(frozen=True)
class Originate(Command):
    name: ClassVar[CommandName] = CommandName.ORIGINATE
    leg_id: str = ""
    uri: str = ""
    from_uri: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: digest credentials for this leg (RFC 3261 §22.2/§22.3), see the module docstring;
    #: kept out of repr() so a logged command never shows the password
    auth: dict[str, str] | None = field(default=None, repr=False)


#: the keys of Originate.auth (username and password required)
AUTH_KEYS = frozenset({"username", "password", "realm"})


@dataclass(frozen=True)
class Play(Command):
    name: ClassVar[CommandName] = CommandName.PLAY
    leg: str = ""
    file: str = ""
    loop: bool = False


@dataclass(frozen=True)
class StopPlay(Command):
    name: ClassVar[CommandName] = CommandName.STOP_PLAY
    leg: str = ""


@dataclass(frozen=True)
class Record(Command):
    name: ClassVar[CommandName] = CommandName.RECORD
    legs: tuple[str, ...] = ()
    path_prefix: str = ""


@dataclass(frozen=True)
class StopRecord(Command):
    name: ClassVar[CommandName] = CommandName.STOP_RECORD
    legs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Bridge(Command):
    name: ClassVar[CommandName] = CommandName.BRIDGE
    leg_a: str = ""
    leg_b: str = ""


@dataclass(frozen=True)
class Unbridge(Command):
    name: ClassVar[CommandName] = CommandName.UNBRIDGE
    leg_a: str = ""
    leg_b: str = ""


@dataclass(frozen=True)
class SendDtmf(Command):
    name: ClassVar[CommandName] = CommandName.SEND_DTMF
    leg: str = ""
    digits: str = ""


@dataclass(frozen=True)
class Ping(Command):
    name: ClassVar[CommandName] = CommandName.PING


@dataclass(frozen=True)
class Shutdown(Command):
    name: ClassVar[CommandName] = CommandName.SHUTDOWN


COMMANDS: dict[CommandName, type[Command]] = {
    c.name: c
    for c in (Answer, Hangup, Originate, Play, StopPlay, Record, StopRecord, Bridge, Unbridge, SendDtmf, Ping, Shutdown)
}


# ---------------------------------------------------------------- reply


@dataclass(frozen=True)
class Reply:
    id: int
    ok: bool = True
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    name: ClassVar[EventName]


@dataclass(frozen=True)
class Ready(Event):
    name: ClassVar[EventName] = EventName.READY
    capacity: int = 0
    sip_port: int = 0
    rtp_range: tuple[int, int] = (0, 0)
    pid: int = 0


@dataclass(frozen=True)
class Incoming(Event):
    name: ClassVar[EventName] = EventName.INCOMING
    leg: str = ""
    from_uri: str = ""
    to_uri: str = ""
    call_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ringing(Event):
    name: ClassVar[EventName] = EventName.RINGING
    leg: str = ""


@dataclass(frozen=True)
class Answered(Event):
    name: ClassVar[EventName] = EventName.ANSWERED
    leg: str = ""
    call_id: str = ""


@dataclass(frozen=True)
class Dtmf(Event):
    name: ClassVar[EventName] = EventName.DTMF
    leg: str = ""
    digit: str = ""


@dataclass(frozen=True)
class PlaybackFinished(Event):
    name: ClassVar[EventName] = EventName.PLAYBACK_FINISHED
    leg: str = ""
    file: str = ""


@dataclass(frozen=True)
class Ended(Event):
    name: ClassVar[EventName] = EventName.ENDED
    leg: str = ""
    cause_code: int = 0
    reason: str = ""
    challenged: bool = False


@dataclass(frozen=True)
class RecordStopped(Event):
    name: ClassVar[EventName] = EventName.RECORD_STOPPED
    leg: str = ""
    path: str = ""
    reason: str = "stopped"


@dataclass(frozen=True)
class Error(Event):
    name: ClassVar[EventName] = EventName.ERROR
    message: str = ""
    leg: str | None = None


@dataclass(frozen=True)
class Held(Event):
    name: ClassVar[EventName] = EventName.HELD
    leg: str = ""


@dataclass(frozen=True)
class Unheld(Event):
    name: ClassVar[EventName] = EventName.UNHELD
    leg: str = ""


@dataclass(frozen=True)
class TransferRequested(Event):
    name: ClassVar[EventName] = EventName.TRANSFER_REQUESTED
    leg: str = ""
    target: str = ""
    replaces: str | None = None
    new_leg: str = ""


@dataclass(frozen=True)
class Replaced(Event):
    name: ClassVar[EventName] = EventName.REPLACED
    leg: str = ""
    new_leg: str = ""
    from_uri: str = ""
    call_id: str = ""


@dataclass(frozen=True)
class MediaTimeout(Event):
    name: ClassVar[EventName] = EventName.MEDIA_TIMEOUT
    leg: str = ""
    seconds: float = 0.0


EVENTS: dict[EventName, type[Event]] = {
    e.name: e
    for e in (
        Ready,
        Incoming,
        Ringing,
        Answered,
        Dtmf,
        PlaybackFinished,
        Ended,
        RecordStopped,
        Error,
        Held,
        Unheld,
        TransferRequested,
        Replaced,
        MediaTimeout,
    )
}

Message = Command | Reply | Event

# fields whose JSON list is a tuple in the dataclass
_TUPLE_FIELDS = {"legs", "rtp_range"}


def _to_json(msg: Message) -> dict[str, Any]:
    body = asdict(msg)
    if isinstance(msg, Command):
        return {"cmd": msg.name.value, **body}
    if isinstance(msg, Event):
        return {"event": msg.name.value, **body}
    if isinstance(msg, Reply):
        out: dict[str, Any] = {"reply": msg.id, "ok": msg.ok}
        if msg.ok:
            out["result"] = msg.result
        else:
            out["error"] = msg.error or "error"
        return out
    raise TypeError(f"not a protocol message: {msg!r}")


def encode(msg: Message) -> bytes:
    """One protocol message as a JSON line (bytes, ending with ``\\n``)."""
    return json.dumps(_to_json(msg), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


_M = TypeVar("_M", bound="Command | Reply | Event")


def _build(cls: type[_M], data: dict[str, Any], what: str) -> _M:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ProtocolError(f"{what}: unknown field(s) {sorted(unknown)}")
    kwargs = {}
    for k, v in data.items():
        if k in _TUPLE_FIELDS and v is not None:
            if not isinstance(v, list):
                raise ProtocolError(f"{what}: {k} must be a list")
            v = tuple(v)
        kwargs[k] = v
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ProtocolError(f"{what}: {exc}") from None
    for f in fields(cls):
        val = getattr(obj, f.name)
        if f.name in ("headers", "result") and not isinstance(val, dict):
            raise ProtocolError(f"{what}: {f.name} must be an object")
    if isinstance(obj, Originate) and obj.auth is not None:
        _check_auth(obj.auth, what)
    return obj


def _check_auth(auth: Any, what: str) -> None:
    """Originate.auth: {"username", "password"[, "realm"]}, all strings (values are never
    put into the error message)."""
    if not isinstance(auth, dict):
        raise ProtocolError(f"{what}: auth must be an object")
    unknown = set(auth) - AUTH_KEYS
    if unknown:
        raise ProtocolError(f"{what}: auth: unknown field(s) {sorted(unknown)}")
    if not all(isinstance(auth.get(k), str) and auth.get(k) for k in ("username", "password")):
        raise ProtocolError(f"{what}: auth needs a username and a password")
    if not isinstance(auth.get("realm", "*"), str):
        raise ProtocolError(f"{what}: auth realm must be a string")


def redact(msg: Message | bytes | str | dict[str, Any]) -> str:
    """A message (or an encoded line) as text for logs: the password of an ``auth``
    object replaced by :data:`REDACTED`."""
    if isinstance(msg, (bytes, str)):
        try:
            data = json.loads(msg)
        except (ValueError, UnicodeDecodeError):
            return "<unparsable line>"
    elif isinstance(msg, dict):
        data = dict(msg)
    else:
        data = _to_json(msg)
    if isinstance(data, dict) and isinstance(data.get("auth"), dict):
        data["auth"] = {k: (REDACTED if k == "password" else v) for k, v in data["auth"].items()}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode(line: bytes | str) -> Message:
    """Parse one JSON line into a Command, Reply or Event; ProtocolError if invalid."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("message must be a JSON object")
    if "cmd" in data:
        try:
            name = CommandName(data.pop("cmd"))
        except ValueError:
            raise ProtocolError("unknown command") from None
        cid = data.get("id")
        if not isinstance(cid, int) or isinstance(cid, bool) or cid <= 0:
            raise ProtocolError("command id must be a positive integer")
        return _build(COMMANDS[name], data, name.value)
    if "event" in data:
        try:
            ename = EventName(data.pop("event"))
        except ValueError:
            raise ProtocolError("unknown event") from None
        return _build(EVENTS[ename], data, ename.value)
    if "reply" in data:
        rid = data.pop("reply")
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise ProtocolError("reply id must be an integer")
        ok = data.pop("ok", None)
        if not isinstance(ok, bool):
            raise ProtocolError("reply ok must be a boolean")
        return _build(Reply, {"id": rid, "ok": ok, **data}, "reply")
    raise ProtocolError("neither cmd, event nor reply")


def command(name: str | CommandName, id: int, **kw: Any) -> Command:
    """Build a command by name (used by the client)."""
    cls = COMMANDS[CommandName(name)]
    for k in list(kw):
        if k in _TUPLE_FIELDS and isinstance(kw[k], list):
            kw[k] = tuple(kw[k])
    if cls is Originate and kw.get("auth") is not None:
        _check_auth(kw["auth"], "originate")
    return cls(id=id, **kw)
