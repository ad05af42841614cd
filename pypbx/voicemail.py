"""Voicemail: mailboxes, leaving a message, listening to one's own box, the store and files.

* A **mailbox** belongs to an extension or a queue (``box`` = its number or name); options:
  a number that reaches it directly (the internal dialplan: ``pypbx voicemail box 1001
  --number 801``), ``on_no_answer`` (an extension nobody answers, or one not registered,
  goes to its box instead of a 480), the maximum message length.
* **Leaving a message** (:class:`VoicemailCall`, a call flow like the IVR's): the caller
  is answered (unless the IVR did already), hears ``leave_message`` and the beep
  (``ivr_prompts/tones/beep.wav``), and is recorded (the engine's recorder on the caller's
  leg) until ``#``, the maximum length, or hang-up. The message is filed under
  ``<data_dir>/voicemail/<box>/<YYYY-MM-DD>/<id>.wav`` with a JSON sidecar ``<id>.json``
  (caller, time, duration, DID, call id) and a row in ``voicemail``; the call ends with the
  disposition ``voicemail``. A caller who hangs up before the beep: ``abandoned_ivr``
  (``after_hours`` when the call came through the after-hours branch).
* **Listening** (:class:`MailboxCall`): dialling ``*98`` plays the caller's own box's new
  messages, oldest first, and marks them heard.
* CLI: ``pypbx voicemail box|boxes|list BOX|play ID|heard ID|delete ID`` (``--json``).
* A mailbox's e-mail addresses (``pypbx voicemail box BOX --email a@b,c@d``) are told of each
  new message by :mod:`pypbx.notify` (a FrontLine voicemail listener), with the webhook.

MWI: phones subscribed to a box are told its new/old counts (pypbx.mwi, RFC 3842).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from media import protocol as P
from media.client import WorkerError
from pypbx.calllog import Disposition
from pypbx.db import Database, IntegrityError

log = logging.getLogger(__name__)

ACCESS_NUMBER = "*98"
BEEP = Path(__file__).resolve().parents[1] / "ivr_prompts" / "tones" / "beep.wav"
BOX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_MAX_SECONDS = 120.0


class VoicemailError(ValueError):
    pass


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


async def set_box(db: Database, box: str, *, number: str | None = None, on_no_answer: bool = False,
                  max_seconds: float = DEFAULT_MAX_SECONDS, email: str | None = None,
                  clock: Callable[[], float] = time.time) -> dict:
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


async def get_box(db: Database, box: str) -> dict[str, Any]:
    row = await db.get_voicemail_box_row(box)
    if row is None:
        raise VoicemailError(f"no mailbox {box!r} (create it: pypbx voicemail box {box})")
    row["on_no_answer"] = bool(row["on_no_answer"])
    return row


async def list_boxes(db: Database) -> list[dict[str, Any]]:
    out = []
    for r in await db.list_voicemail_box_rows():
        msgs = await db.list_voicemail_rows(r["box"])
        out.append({**r, "on_no_answer": bool(r["on_no_answer"]), "messages": len(msgs),
                    "new": sum(1 for m in msgs if not m["heard"])})
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

def _msg(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "heard": bool(row["heard"])}


async def list_messages(db: Database, box: str | None = None, unheard_only: bool = False) -> list[dict[str, Any]]:
    return [_msg(r) for r in await db.list_voicemail_rows(box, unheard_only=unheard_only)]


async def get_message(db: Database, msg_id: str) -> dict[str, Any]:
    row = await db.get_voicemail_row(msg_id)
    if row is None:
        rows = [r for r in await db.list_voicemail_rows(include_deleted=True) if r["id"].startswith(msg_id)]
        if len(rows) == 1 and len(msg_id) >= 6:
            row = rows[0]
    if row is None or row["deleted_at"] is not None:
        raise VoicemailError(f"no voicemail message {msg_id!r}")
    return _msg(row)


async def mark_heard(db: Database, msg_id: str, heard: bool = True) -> dict[str, Any]:
    m = await get_message(db, msg_id)
    await db.update_voicemail_row(m["id"], heard=int(heard))
    return {**m, "heard": heard}


async def delete_message(db: Database, msg_id: str, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The row is kept (deleted_at) for the books; the audio and its sidecar are removed."""
    m = await get_message(db, msg_id)
    for p in (Path(m["path"]), Path(m["path"]).with_suffix(".json")):
        p.unlink(missing_ok=True)
    await db.update_voicemail_row(m["id"], deleted_at=clock())
    return m


def _wav_seconds(path: Path) -> float:
    import soundfile as sf
    try:
        info = sf.info(str(path))
        return round(info.frames / float(info.samplerate), 3)
    except Exception:
        return 0.0


async def file_message(db: Database, data_dir: Path | str, box: str, recorded: Path | str | None, *,
                       caller: str, did: str | None, call_id: str | None, received_at: float) -> dict[str, Any]:
    """Move a finished recording into the box's day folder, write its sidecar and row."""
    from media.recording import RecordingError, repair_wav
    msg_id = uuid.uuid4().hex[:16]
    day = dt.datetime.fromtimestamp(received_at).strftime("%Y-%m-%d")
    folder = voicemail_dir(data_dir) / box / day
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{msg_id}.wav"
    seconds = 0.0
    flags = []
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
    meta = {"id": msg_id, "box": box, "caller": caller, "did": did, "call_id": call_id,
            "received_at": received_at,
            "time": dt.datetime.fromtimestamp(received_at).astimezone().isoformat(timespec="seconds"),
            "seconds": seconds, "path": str(out), "flags": flags}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out.with_suffix(".json"))
    await db.insert_voicemail_row({"id": msg_id, "box": box, "caller": caller, "did": did, "call_id": call_id,
                                   "received_at": received_at, "seconds": seconds, "path": str(out)})
    return meta


# ------------------------------------------------------------------ the runtime

class _Tick:
    def __init__(self, gen: int) -> None:
        self.gen = gen


class VoicemailCall:
    """A caller leaving a message in ``box`` (see the module docstring)."""

    def __init__(self, fl: Any, s: Any, box: dict[str, Any], lang: str = "en", after_hours: bool = False) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.w = s.worker
        self.box = box
        self.lang = lang
        self.after_hours = after_hours
        self.state = "answering"     # answering, greeting, beep, recording, saving, goodbye, done
        self.playing: str | None = None
        self.file: str | None = None
        self.started_at: float | None = None
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.caller_gone = False
        self.meta: dict[str, Any] | None = None

    def p(self, pid: str) -> str:
        from pypbx.flows.player import prompt
        return prompt(self.lang, pid, self.fl.prompts_dir)

    async def start(self, answered: bool = False) -> None:
        s = self.s
        s.ring_deadline = None
        await self.cm.calllog.event(s.rec, "voicemail", box=self.box["box"], after_hours=self.after_hours)
        log.info("call %s: %s -> voicemail %s", s.rec.id[:12], s.caller, self.box["box"])
        if answered:
            await self._greet()
        else:
            await self.w.answer(s.caller_leg, 200)

    async def _play(self, f: str) -> bool:
        self.playing = f
        try:
            await self.w.play(self.s.caller_leg, f)
            return True
        except WorkerError:
            self.playing = None
            return False

    async def _greet(self) -> None:
        self.state = "greeting"
        if not await self._play(self.p("leave_message")):
            await self._beep()

    async def _beep(self) -> None:
        self.state = "beep"
        if not await self._play(str(BEEP)):
            await self._record()

    async def _record(self) -> None:
        s = self.s
        self.state = "recording"
        self.playing = None
        folder = voicemail_dir(self.fl.data_dir) / self.box["box"] / ".incoming"
        folder.mkdir(parents=True, exist_ok=True)
        prefix = folder / s.rec.id
        try:
            files = await self.w.record([s.caller_leg], prefix)
            self.file = files.get(s.caller_leg)
        except (WorkerError, OSError) as exc:
            log.error("call %s: voicemail recording failed: %s", s.rec.id[:12], exc)
            await self.cm.calllog.event(s.rec, "voicemail_failed", error=str(exc))
            await self._goodbye()
            return
        self.started_at = self.cm.clock()
        await self.cm.calllog.event(s.rec, "voicemail_recording", box=self.box["box"], file=self.file)
        self.gen += 1
        self._timer = asyncio.get_running_loop().call_later(float(self.box["max_seconds"]),
                                                            s.queue.put_nowait, _Tick(self.gen))

    async def _stop_recording(self, why: str) -> None:
        if self.state != "recording":
            return
        self.state = "saving"
        if self._timer:
            self._timer.cancel()
        await self.cm.calllog.event(self.s.rec, "voicemail_stop", reason=why)
        if not self.caller_gone:
            try:
                await self.w.stop_record([self.s.caller_leg])
            except WorkerError:
                pass
        # the worker reports record_stopped once the file is flushed
        if self.file is None or self.file in self.s.stopped_files:
            await self._save()
        else:
            self._timer = asyncio.get_running_loop().call_later(3.0, self.s.queue.put_nowait, _Tick(-1))

    async def _save(self) -> None:
        if self.meta is not None:
            return
        s = self.s
        self.meta = await file_message(self.fl.db, self.fl.data_dir, self.box["box"], self.file, caller=s.caller,
                                       did=s.rec.did or s.callee, call_id=s.rec.id,
                                       received_at=self.started_at or self.cm.clock())
        await self.cm.calllog.event(s.rec, "voicemail_saved", **{k: self.meta[k] for k in
                                                                  ("id", "box", "path", "seconds")})
        log.info("call %s: voicemail %s (%.1f s) in box %s", s.rec.id[:12], self.meta["id"],
                 self.meta["seconds"], self.box["box"])
        await self.fl.voicemail_filed(self.box["box"], self.meta)
        if self.caller_gone:
            await self._finish("caller")
        else:
            await self._goodbye()

    async def _goodbye(self) -> None:
        self.state = "goodbye"
        if not await self._play(self.p("thank_you_goodbye")):
            await self._hangup()

    async def _hangup(self) -> None:
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        await self._finish("system")

    async def _finish(self, side: str) -> None:
        if self.state == "done":
            return
        self.state = "done"
        if self._timer:
            self._timer.cancel()
        self.fl.forget(self.s)
        if self.meta is not None:
            disp, cause = Disposition.VOICEMAIL, f"message {self.meta['id']} in box {self.box['box']}"
        elif self.after_hours:
            disp, cause = Disposition.AFTER_HOURS, "after hours: no message left"
        else:
            disp, cause = Disposition.ABANDONED_IVR, f"voicemail {self.box['box']}: no message left"
        await self.cm.finish(self.s, disp, side=side, cause=cause)

    async def handle(self, ev: Any) -> None:
        from pypbx.call import Shutdown
        s = self.s
        if self.state == "done":
            return
        if isinstance(ev, _Tick):
            if ev.gen == -1 and self.state == "saving":
                await self._save()                    # the recorder never reported: file what is there
            elif ev.gen == self.gen and self.state == "recording":
                await self._stop_recording("max length")
        elif isinstance(ev, P.Answered):
            if ev.leg == s.caller_leg and self.state == "answering":
                await self._greet()
        elif isinstance(ev, P.PlaybackFinished):
            if ev.leg != s.caller_leg or ev.file != self.playing:
                return
            self.playing = None
            if self.state == "greeting":
                await self._beep()
            elif self.state == "beep":
                await self._record()
            elif self.state == "goodbye":
                await self._hangup()
        elif isinstance(ev, P.Dtmf):
            if ev.leg == s.caller_leg:
                await self.cm.calllog.event(s.rec, "dtmf", leg="caller", digit=ev.digit)
                if ev.digit == "#" and self.state == "recording":
                    await self._stop_recording("#")
                elif ev.digit == "#" and self.state == "greeting":
                    try:
                        await self.w.stop_play(s.caller_leg)       # skip the greeting
                    except WorkerError:
                        pass
                    await self._beep()
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
            if ev.path == self.file and self.state == "saving":
                await self._save()
        elif isinstance(ev, P.Ended):
            if ev.leg != s.caller_leg:
                return
            self.caller_gone = True
            if self.state == "recording":
                await self._stop_recording("hang-up")
            elif self.state == "saving":
                pass
            else:
                await self._finish("caller")
        elif isinstance(ev, Shutdown):
            if self.state == "recording":
                self.caller_gone = True
                await self.cm.hangup(self.s, s.caller_leg, None)
                await self._stop_recording("shutdown")
                if self.state != "done":
                    await self._save()
            else:
                await self.cm.hangup(self.s, s.caller_leg, None)
                self.state = "done"
                self.fl.forget(s)
                await self.cm.finish(s, Disposition.INTERRUPTED, side="system", cause="pbx shutting down")
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self.state = "done"
            self.fl.forget(s)
            await self.cm.worker_lost(s, ev)

    def finished(self, disposition: Any, side: str) -> None:
        self.state = "done"


class MailboxCall:
    """``*98``: the caller's own box: new messages played oldest first, marked heard."""

    def __init__(self, fl: Any, s: Any, box: str) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.w = s.worker
        self.box = box
        self.queue: list[dict[str, Any]] = []
        self.playing: str | None = None
        self.current: dict[str, Any] | None = None
        self.done = False
        self.heard = 0

    async def start(self) -> None:
        self.queue = await list_messages(self.fl.db, self.box, unheard_only=True)
        await self.cm.calllog.event(self.s.rec, "voicemail_access", box=self.box, new=len(self.queue))
        await self.w.answer(self.s.caller_leg, 200)

    async def _next(self) -> None:
        if self.current is not None:
            await mark_heard(self.fl.db, self.current["id"])
            self.heard += 1
            self.current = None
        while self.queue:
            m = self.queue.pop(0)
            if os.path.exists(m["path"]):
                self.current = m
                if await self._play(m["path"]):
                    return
                self.current = None
        if self.playing != "bye":
            from pypbx.flows.player import prompt
            if await self._play(prompt("en", "thank_you_goodbye", self.fl.prompts_dir), bye=True):
                return
        await self._end("system")

    async def _play(self, f: str, bye: bool = False) -> bool:
        try:
            await self.w.play(self.s.caller_leg, f)
            self.playing = "bye" if bye else f
            return True
        except WorkerError:
            return False

    async def handle(self, ev: Any) -> None:
        from pypbx.call import Shutdown
        s = self.s
        if self.done:
            return
        if isinstance(ev, P.Answered) and ev.leg == s.caller_leg:
            if s.rec.answered_at is None:
                await self.cm.calllog.answered(s.rec, voicemail_access=self.box)
            await self._next()
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg:
            if self.playing == "bye":
                await self.cm.hangup(self.s, s.caller_leg, None)
                await self._end("system")
            else:
                await self._next()
        elif isinstance(ev, P.Dtmf) and ev.leg == s.caller_leg and ev.digit == "#" and self.current is not None:
            try:
                await self.w.stop_play(s.caller_leg)       # # skips to the next message
            except WorkerError:
                pass
            await self._next()
        elif isinstance(ev, P.Ended) and ev.leg == s.caller_leg:
            await self._end("caller")
        elif isinstance(ev, Shutdown):
            await self.cm.hangup(self.s, s.caller_leg, None)
            await self._end("system")
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self.done = True
            self.fl.forget(s)
            await self.cm.worker_lost(s, ev)

    async def _end(self, side: str) -> None:
        if self.done:
            return
        self.done = True
        self.fl.forget(self.s)
        await self.cm.finish(self.s, Disposition.ANSWERED, side=side,
                              cause=f"voicemail access {self.box}: {self.heard} heard")

    def finished(self, disposition: Any, side: str) -> None:
        self.done = True
