"""The agent's screen pop: what a ringing desk phone shows for a call.

A phone displays the From display name of the INVITE ringing it. For a call that came in
on a DID with a service line the PBX puts ``Appointments: Marie Dupont`` there (the
patient's name from the callers table / imported patient list, else the caller's number
in the national format of the site's region, :func:`pypbx.numbers.display`);
with no service line just the patient's name when known. The From URI user stays the
caller's number so the phone's call-back works.

Pure helpers (:func:`display_name`, :func:`quote`, :func:`from_header`) plus
:func:`caller_from`, which looks the patient's name up once per call and caches the
result on the session. Used by every place that rings a phone: pypbx/call/manager.py (an
extension), pypbx/flows/queue.py (queue agents), pypbx/groups.py (ring groups),
pypbx/ivr.py (IVR -> extension).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pypbx import callers
from pypbx.numbers import display

if TYPE_CHECKING:
    from pypbx.call import Call, CallManager

log = logging.getLogger(__name__)

MAX_DISPLAY = 40  # desk phones truncate long names anyway


def display_name(service_line: str | None, name: str | None, number: str, cap: int = MAX_DISPLAY) -> str:
    """``"<service line>: <name or number>"``; no service line -> the name, or "" if unknown."""
    sl = " ".join((service_line or "").split())
    who = " ".join((name or "").split())
    if sl:
        text = f"{sl}: {who or number}"
    else:
        text = who
    if len(text) > cap:
        text = text[: max(cap - 1, 0)].rstrip() + "…"
    return text


def quote(text: str) -> str:
    """RFC 3261 §25.1 quoted-string: ``"`` and ``\\`` escaped as quoted-pairs; control
    characters (CR/LF/NUL... which a quoted-pair cannot carry, §25.1) dropped. UTF-8 is
    allowed as-is (UTF8-NONASCII in qdtext)."""
    clean = "".join(c for c in text if c == "\t" or (ord(c) >= 0x20 and ord(c) != 0x7F))
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def from_header(display: str, user: str, host: str) -> str:
    """The From a ring leg carries (RFC 3261 §20.20 name-addr), or a bare URI without a display."""
    uri = f"sip:{user}@{host}"
    return f"{quote(display)} <{uri}>" if display else uri


async def caller_from(cm: CallManager, s: Call) -> str:
    """The From for a leg ringing a phone for session ``s`` of CallManager ``cm``: the
    display built from the call's service line and the patient's name (looked up once
    per call, cached on the session)."""
    host = cm.front_door.split(":")[0]
    if getattr(s, "screen_pop", None) is None:
        name = ""
        shown = s.caller
        db = getattr(cm, "db", None)
        if db is not None and s.caller:
            shown = display(s.caller, db.region)
            try:
                row = await callers.get(db, s.caller)
                name = (row["name"] if row is not None else None) or ""
            except Exception as exc:  # a screen pop never fails a call
                log.warning("screen pop: caller lookup for %s failed: %s", s.caller, exc)
        sl = getattr(s.rec, "service_line", None) if s.rec is not None else None
        s.screen_pop = display_name(sl, name, shown)
    return from_header(s.screen_pop or "", s.caller, host)
