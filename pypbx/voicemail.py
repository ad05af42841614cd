"""Voicemail: mailboxes, leaving a message, listening to one's own box, the store and files.

* A **mailbox** belongs to an extension or a queue (``box`` = its number or name); options:
  a number that reaches it directly (the internal dialplan: ``pypbx voicemail box 1001
  --number 801``), ``on_no_answer`` (an extension nobody answers, or one not registered,
  goes to its box instead of a 480), the maximum message length.
* **Leaving a message** (:class:`pypbx.flows.voicemail.VoicemailCall`, a call flow like the IVR's): the caller
  is answered (unless the IVR did already), hears ``leave_message`` and the beep
  (``ivr_prompts/tones/beep.wav``), and is recorded (the engine's recorder on the caller's
  leg) until ``#``, the maximum length, or hang-up. The message is filed under
  ``<data_dir>/voicemail/<box>/<YYYY-MM-DD>/<id>.wav`` with a JSON sidecar ``<id>.json``
  (caller, time, duration, DID, call id) and a row in ``voicemail``; the call ends with the
  disposition ``voicemail``. A caller who hangs up before the beep: ``abandoned_ivr``
  (``after_hours`` when the call came through the after-hours branch).
* **Listening** (:class:`pypbx.flows.voicemail.MailboxCall`): dialling ``*98`` plays the caller's own box's new
  messages, oldest first, and marks them heard.
* CLI: ``pypbx voicemail box|boxes|list BOX|play ID|heard ID|delete ID`` (``--json``).
* A mailbox's e-mail addresses (``pypbx voicemail box BOX --email a@b,c@d``) are told of each
  new message by :mod:`pypbx.notify` (a FrontLine voicemail listener), with the webhook.

MWI: phones subscribed to a box are told its new/old counts (pypbx.mwi, RFC 3842).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from pypbx import sitetime
from pypbx.db import Database, IntegrityError
from pypbx.db.rows import VoicemailBoxRow, VoicemailRow
from pypbx.errors import PbxError

log = logging.getLogger(__name__)

ACCESS_NUMBER = "*98"
BEEP = Path(__file__).resolve().parents[1] / "ivr_prompts" / "tones" / "beep.wav"
BOX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_MAX_SECONDS = 120.0


class VoicemailError(PbxError, ValueError):
    pass


class VoicemailBox(TypedDict):
    """A mailbox (the ``voicemail_box`` row, ``on_no_answer`` as a bool)."""

    box: str
    number: str | None
    on_no_answer: bool
    max_seconds: float
    created_at: float | None
    email: str


class VoicemailBoxSummary(VoicemailBox):
    """A mailbox with its message counts (:func:`list_boxes`)."""

    messages: int
    new: int


class VoicemailMessage(TypedDict):
    """A message (the ``voicemail`` row, ``heard`` as a bool)."""

    id: str
    box: str
    caller: str | None
    did: str | None
    call_id: str | None
    received_at: float
    seconds: float | None
    path: str
    heard: bool
    deleted_at: float | None


class VoicemailMeta(TypedDict):
    """A filed message's metadata: the JSON sidecar, what :func:`file_message` returns and
    what FrontLine's voicemail listeners are given."""

    id: str
    box: str
    caller: str
    did: str | None
    call_id: str | None
    received_at: float
    time: str
    seconds: float
    path: str
    flags: list[str]


def voicemail_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / "voicemail"


# ------------------------------------------------------------------ mailboxes

EMAIL_RE = re.compile(r"^[^@\s<>,;\"']+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def parse_emails(value: str) -> list[str]:
    """``'a@b, c@d'`` -> ``['a@b', 'c@d']`` (duplicates dropped); '' -> []."""
    out: list[str] = []
    for a in (x.strip() for x in value.split(",")):
        if not a:
            continue
        if not EMAIL_RE.match(a):
            raise VoicemailError(f"bad e-mail address {a!r}")
        if a not in out:
            out.append(a)
    return out


async def set_box(
    db: Database,
    box: str,
    *,
    number: str | None = None,
    on_no_answer: bool = False,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    email: str | None = None,
    clock: Callable[[], float] = time.time,
) -> VoicemailBox:
    """Create or change ``box``. ``email``: comma-separated addresses told of new messages
    (pypbx.notify); '' = none; None = unchanged."""
    emails = parse_emails(email) if email is not None else None
    if not BOX_RE.match(box):
        raise VoicemailError(f"bad mailbox name {box!r}")
    if number is not None and not re.match(r"^\*?[0-9]{1,16}$", number):
        raise VoicemailError(f"bad number {number!r}")
    if not 1 <= max_seconds <= 3600:
        raise VoicemailError("max length must be 1..3600 s")
    try:
        await db.upsert_voicemail_box_row(box, number, on_no_answer, max_seconds, clock())
    except IntegrityError:
        raise VoicemailError(f"number {number} already belongs to another mailbox") from None
    if emails is not None:
        await db.set_voicemail_box_email_row(box, ",".join(emails))
    return await get_box(db, box)


def _box(row: VoicemailBoxRow) -> VoicemailBox:
    return {
        "box": row["box"],
        "number": row["number"],
        "on_no_answer": bool(row["on_no_answer"]),
        "max_seconds": row["max_seconds"],
        "created_at": row["created_at"],
        "email": row["email"],
    }


async def get_box(db: Database, box: str) -> VoicemailBox:
    row = await db.get_voicemail_box_row(box)
    if row is None:
        raise VoicemailError(f"no mailbox {box!r} (create it: pypbx voicemail box {box})")
    return _box(row)


async def list_boxes(db: Database) -> list[VoicemailBoxSummary]:
    out: list[VoicemailBoxSummary] = []
    for r in await db.list_voicemail_box_rows():
        msgs = await db.list_voicemail_rows(r["box"])
        out.append({**_box(r), "messages": len(msgs), "new": sum(1 for m in msgs if not m["heard"])})
    return out


async def box_for_number(db: Database, number: str) -> str | None:
    for r in await db.list_voicemail_box_rows():
        if r["number"] == number:
            return r["box"]
    return None


async def remove_box(db: Database, box: str) -> None:
    if not await db.delete_voicemail_box_row(box):
        raise VoicemailError(f"no mailbox {box!r}")


# ------------------------------------------------------------------ messages


def _msg(row: VoicemailRow) -> VoicemailMessage:
    return {**row, "heard": bool(row["heard"])}


async def list_messages(db: Database, box: str | None = None, unheard_only: bool = False) -> list[VoicemailMessage]:
    return [_msg(r) for r in await db.list_voicemail_rows(box, unheard_only=unheard_only)]


async def get_message(db: Database, msg_id: str) -> VoicemailMessage:
    row = await db.get_voicemail_row(msg_id)
    if row is None:
        rows = [r for r in await db.list_voicemail_rows(include_deleted=True) if r["id"].startswith(msg_id)]
        if len(rows) == 1 and len(msg_id) >= 6:
            row = rows[0]
    if row is None or row["deleted_at"] is not None:
        raise VoicemailError(f"no voicemail message {msg_id!r}")
    return _msg(row)


async def mark_heard(db: Database, msg_id: str, heard: bool = True) -> VoicemailMessage:
    m = await get_message(db, msg_id)
    await db.update_voicemail_row(m["id"], heard=int(heard))
    return {**m, "heard": heard}


async def delete_message(db: Database, msg_id: str, clock: Callable[[], float] = time.time) -> VoicemailMessage:
    """The row is kept (deleted_at) for the books; the audio and its sidecar are removed."""
    m = await get_message(db, msg_id)
    for p in (Path(m["path"]), Path(m["path"]).with_suffix(".json")):
        p.unlink(missing_ok=True)
    await db.update_voicemail_row(m["id"], deleted_at=clock())
    return m


def _wav_seconds(path: Path) -> float:
    import soundfile as sf  # here, not at the top: the CLI imports this module and needs no audio stack

    try:
        info = sf.info(str(path))
        return round(info.frames / float(info.samplerate), 3)
    except Exception:
        return 0.0


async def file_message(
    db: Database,
    data_dir: Path | str,
    box: str,
    recorded: Path | str | None,
    *,
    caller: str,
    did: str | None,
    call_id: str | None,
    received_at: float,
) -> VoicemailMeta:
    """Move a finished recording into the box's day folder, write its sidecar and row."""
    from media.recording import RecordingError, repair_wav  # the audio stack only when a message is filed (see above)

    msg_id = uuid.uuid4().hex[:16]
    day = sitetime.local_day(received_at)  # the clinic's day, not the machine clock's
    folder = voicemail_dir(data_dir) / box / day
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{msg_id}.wav"
    seconds = 0.0
    flags: list[str] = []
    if recorded is not None and os.path.exists(recorded) and os.path.getsize(recorded) > 44:
        try:
            await asyncio.to_thread(repair_wav, recorded)
        except RecordingError:
            pass
        await asyncio.to_thread(shutil.move, str(recorded), str(out))
        os.chmod(out, 0o640)
        seconds = await asyncio.to_thread(_wav_seconds, out)
    else:
        flags.append("no_audio")
    meta: VoicemailMeta = {
        "id": msg_id,
        "box": box,
        "caller": caller,
        "did": did,
        "call_id": call_id,
        "received_at": received_at,
        "time": sitetime.local(received_at).isoformat(timespec="seconds"),
        "seconds": seconds,
        "path": str(out),
        "flags": flags,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out.with_suffix(".json"))
    await db.insert_voicemail_row(
        {
            "id": msg_id,
            "box": box,
            "caller": caller,
            "did": did,
            "call_id": call_id,
            "received_at": received_at,
            "seconds": seconds,
            "path": str(out),
        }
    )
    return meta
