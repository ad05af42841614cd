"""Reason codes: why patients call (appointment, results, cancellation, prices, complaint ...).

The admin keeps a short list (``pypbx reason add CODE "label" [--digit N] [--notify EMAIL]``,
``list``, ``edit``, ``remove``). An agent sets one for a call from the desk phone, in two ways
(both confirmed by a tone on the agent's phone, :data:`CONFIRM_TONE`; an unknown digit gets
:data:`ERROR_TONE`):

* **during the call**: ``*7`` then the reason's digit, keyed on the agent's phone (RFC 2833 /
  INFO DTMF on the agent's leg; :class:`pypbx.flows.features.ReasonKeys`). The caller's
  digits never count, and the media worker relays no DTMF from one leg to the other, so the
  patient hears nothing but the audio of the call;
* **in wrap-up**: dialling ``*7N`` as a call (:class:`pypbx.flows.features.ReasonCall`) sets
  reason N on that extension's (agent's) last answered call.

And through the local API (``set_reason``: a call id or its prefix and a code), which is what
``pypbx reason set CALL CODE`` uses. Each set appends a row to ``call_reasons`` (the last one
counts: an agent may correct it), adds a ``reason`` step to the call's books and puts a
``reason.set`` event on the event stream; a reason marked to notify (``--notify``) e-mails
those addresses through the notification outbox (:mod:`pypbx.notify`).

Removing a reason that no call used deletes it; one that calls used is *retired*: it cannot be
set any more, its digit is free for another reason, and the reports keep its label.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from pypbx.db import Database, IntegrityError
from pypbx.db.rows import CallRow, ReasonRow
from pypbx.errors import PbxError
from pypbx.events import CallStep, EventBus, ReasonSet, frozen_map

#: The feature code: ``*7`` then the reason's digit (in the call, or dialled in wrap-up).
REASON_CODE = "*7"
#: Seconds between two keys of the in-call code before it is forgotten.
KEY_TIMEOUT = 4.0
#: Played to the agent: the reason was set / the digit is not a reason.
CONFIRM_TONE = "tones/confirm.wav"
ERROR_TONE = "tones/error.wav"

_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


class ReasonError(PbxError, ValueError):
    pass


class ReasonVia(enum.StrEnum):
    """How a reason was set."""

    PHONE = "phone"  # *7N keyed during the call
    WRAPUP = "wrapup"  # *7N dialled after the call
    API = "api"  # the local API (pypbx reason set)


@dataclass(frozen=True)
class Reason:
    code: str
    label: str
    digit: str | None = None
    notify: str = ""  # comma-separated e-mail addresses
    retired: bool = False

    @classmethod
    def from_row(cls, r: ReasonRow) -> Reason:
        return cls(r["code"], r["label"], r["digit"], r["notify"] or "", r["retired_at"] is not None)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "label": self.label,
            "digit": self.digit,
            "notify": [a for a in self.notify.split(",") if a],
            "retired": self.retired,
        }


def check_code(code: str) -> str:
    c = (code or "").strip().lower()
    if not _CODE_RE.match(c):
        raise ReasonError(f"bad reason code {code!r}: letters, digits, '-' and '_' (at most 32)")
    return c


def check_label(label: str) -> str:
    text = " ".join((label or "").split())
    if not text or len(text) > 80:
        raise ReasonError(f"bad label {label!r}: 1 to 80 characters")
    return text


def check_digit(digit: str | None) -> str | None:
    if digit is None or digit == "":
        return None
    d = str(digit).strip()
    if len(d) != 1 or not d.isdigit():
        raise ReasonError(f"bad digit {digit!r}: one key 0-9 (the agent keys *7 then it)")
    return d


def check_notify(notify: str | None) -> str:
    addrs = [a.strip() for a in re.split(r"[,;\s]+", notify or "") if a.strip()]
    for a in addrs:
        if not _EMAIL_RE.match(a):
            raise ReasonError(f"bad e-mail address {a!r}")
    return ",".join(addrs)


async def add_reason(
    db: Database,
    code: str,
    label: str,
    digit: str | None = None,
    notify: str = "",
    clock: Callable[[], float] = time.time,
) -> Reason:
    c, lab, d, n = check_code(code), check_label(label), check_digit(digit), check_notify(notify)
    old = await db.get_reason_row(c)
    if old is not None:
        raise ReasonError(
            f"reason {c} exists" + (" (retired: its history is kept; pick another code)" if old["retired_at"] else "")
        )
    if d is not None:
        await _digit_free(db, d, c)
    try:
        await db.insert_reason_row(c, lab, d, n, clock())
    except IntegrityError:
        raise ReasonError(f"reason {c} or digit {d} is taken") from None
    return Reason(c, lab, d, n)


async def _digit_free(db: Database, digit: str, code: str) -> None:
    other = await db.reason_row_for_digit(digit)
    if other is not None and other["code"] != code:
        raise ReasonError(f"digit {digit} is reason {other['code']} already")


async def get_reason(db: Database, code: str) -> Reason:
    r = await db.get_reason_row(check_code(code))
    if r is None or r["retired_at"] is not None:
        raise ReasonError(f"no reason {code}")
    return Reason.from_row(r)


async def edit_reason(
    db: Database,
    code: str,
    *,
    label: str | None = None,
    digit: str | None = None,
    notify: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Reason:
    """Change what is given; ``digit=""`` / ``notify=""`` clear them."""
    old = await get_reason(db, code)
    lab = check_label(label) if label is not None else old.label
    d = old.digit if digit is None else check_digit(digit)
    n = old.notify if notify is None else check_notify(notify)
    if d is not None:
        await _digit_free(db, d, old.code)
    try:
        await db.update_reason_row(old.code, lab, d, n, clock())
    except IntegrityError:
        raise ReasonError(f"digit {d} is taken") from None
    return Reason(old.code, lab, d, n)


async def list_reasons(db: Database, *, retired: bool = False) -> list[Reason]:
    return [Reason.from_row(r) for r in await db.list_reason_rows(retired=retired)]


async def remove_reason(db: Database, code: str, clock: Callable[[], float] = time.time) -> str:
    """ "deleted" (no call used it) or "retired" (calls did: the history keeps it)."""
    done = await db.remove_reason_row(check_code(code), clock())
    if done is None:
        raise ReasonError(f"no reason {code}")
    return done


async def find_call(db: Database, call_id: str) -> CallRow:
    """A call by its id or an unambiguous prefix of it (at least 6 characters)."""
    cid = (call_id or "").strip()
    row = await db.get_call_row(cid) if cid else None
    if row is not None:
        return row
    if len(cid) >= 6:
        ids = await db.call_ids_with_prefix(cid)
        if len(ids) == 1:
            row = await db.get_call_row(ids[0])
            if row is not None:
                return row
        if len(ids) > 1:
            raise ReasonError(f"call id {cid} is ambiguous")
    raise ReasonError(f"no call {call_id}")


async def set_call_reason(
    db: Database,
    bus: EventBus | None,
    call_id: str,
    *,
    code: str | None = None,
    digit: str | None = None,
    agent: str | None = None,
    extension: str | None = None,
    via: ReasonVia = ReasonVia.API,
    clock: Callable[[], float] = time.time,
) -> dict[str, object]:
    """Set the reason (by ``code``, or by the agent's ``digit``) of call ``call_id``: the
    ``call_reasons`` row, then (with a bus) the call's ``reason`` step and ``reason.set``."""
    if code is not None:
        reason = await get_reason(db, code)
    elif digit is not None:
        row = await db.reason_row_for_digit(check_digit(digit) or "")
        if row is None:
            raise ReasonError(f"no reason on digit {digit}")
        reason = Reason.from_row(row)
    else:
        raise ReasonError("give a reason code or digit")
    call = await find_call(db, call_id)
    agent = agent or call.get("agent")
    await db.insert_call_reason_row(call["id"], reason.code, agent, extension, via.value, clock())
    if bus is not None:
        detail = {"code": reason.code, "label": reason.label, "agent": agent, "extension": extension, "via": via.value}
        await bus.emit(CallStep(call_id=call["id"], step="reason", detail=frozen_map(detail)))
        await bus.emit(
            ReasonSet(
                call_id=call["id"],
                code=reason.code,
                label=reason.label,
                agent=agent,
                extension=extension,
                via=via.value,
                notify=reason.notify,
                caller=call.get("caller_number"),
                service_line=call.get("service_line") or call.get("did"),
            )
        )
    return {"call_id": call["id"], "code": reason.code, "label": reason.label, "agent": agent, "via": via.value}
