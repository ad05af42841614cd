"""Voicemail, live: leaving a message (:class:`VoicemailCall`) and listening to one's own box
(:class:`MailboxCall`); the boxes, messages and files are stored by :mod:`pypbx.voicemail`.

* **Leaving a message** (:class:`VoicemailCall`, a call flow like the IVR's): the caller
  is answered (unless the IVR did already), hears ``leave_message`` and the beep
  (``ivr_prompts/tones/beep.wav``), and is recorded (the engine's recorder on the caller's
  leg) until ``#``, the maximum length, or hang-up. The message is filed by
  :func:`pypbx.voicemail.file_message`; the call ends with the disposition ``voicemail``.
  A caller who hangs up before the beep: ``abandoned_ivr`` (``after_hours`` when the call
  came through the after-hours branch).
* **Listening** (:class:`MailboxCall`): dialling ``*98`` plays the caller's own box's new
  messages, oldest first, and marks them heard.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from typing import TYPE_CHECKING

from media import protocol as P
from media.client import WorkerError
from pypbx.call import Call, CallInput, FlowBase, Shutdown, Tick
from pypbx.calllog import Disposition
from pypbx.flows.player import prompt
from pypbx.logs import call_log
from pypbx.voicemail import (
    BEEP,
    VoicemailBox,
    VoicemailMessage,
    VoicemailMeta,
    file_message,
    list_messages,
    mark_heard,
    voicemail_dir,
)

if TYPE_CHECKING:
    from pypbx.frontline import FrontLine

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the runtime


class VoicemailState(enum.Enum):
    """Where a caller leaving a message is."""

    ANSWERING = "answering"
    GREETING = "greeting"
    BEEP = "beep"
    RECORDING = "recording"
    SAVING = "saving"
    GOODBYE = "goodbye"
    DONE = "done"


class VoicemailCall(FlowBase):
    """A caller leaving a message in ``box`` (see the module docstring)."""

    def __init__(self, fl: FrontLine, s: Call, box: VoicemailBox, lang: str = "en", after_hours: bool = False) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.box = box
        self.lang = lang
        self.after_hours = after_hours
        self.state = VoicemailState.ANSWERING
        self.playing: str | None = None
        self.file: str | None = None
        self.started_at: float | None = None
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.caller_gone = False
        self.meta: VoicemailMeta | None = None

    def p(self, pid: str) -> str:
        return prompt(self.lang, pid, self.fl.prompts_dir)

    async def start(self, answered: bool = False) -> None:
        s = self.s
        s.ring_deadline = None
        await self.cm.event(s, "voicemail", box=self.box["box"], after_hours=self.after_hours)
        call_log(log, s).info("%s -> voicemail %s", s.caller, self.box["box"])
        if answered:
            await self._greet()
        else:
            await self.cm.answer(self.s, s.caller_leg, 200)

    async def _play(self, f: str) -> bool:
        self.playing = f
        try:
            await self.cm.play(self.s, self.s.caller_leg, f)
            return True
        except WorkerError:
            self.playing = None
            return False

    async def _greet(self) -> None:
        self.state = VoicemailState.GREETING
        if not await self._play(self.p("leave_message")):
            await self._beep()

    async def _beep(self) -> None:
        self.state = VoicemailState.BEEP
        if not await self._play(str(BEEP)):
            await self._record()

    async def _record(self) -> None:
        s = self.s
        self.state = VoicemailState.RECORDING
        self.playing = None
        folder = voicemail_dir(self.fl.data_dir) / self.box["box"] / ".incoming"
        folder.mkdir(parents=True, exist_ok=True)
        prefix = folder / s.record.id
        try:
            leg = s.caller_leg
            assert leg is not None
            files = await self.cm.record_legs(self.s, [leg], prefix)
            self.file = files.get(leg)
        except (WorkerError, OSError) as exc:
            call_log(log, s).error("voicemail recording failed: %s", exc)
            await self.cm.event(s, "voicemail_failed", error=str(exc))
            await self._goodbye()
            return
        self.started_at = self.cm.clock()
        await self.cm.event(s, "voicemail_recording", box=self.box["box"], file=self.file)
        self.gen += 1
        self._timer = asyncio.get_running_loop().call_later(
            float(self.box["max_seconds"]), s.queue.put_nowait, Tick(self.gen)
        )

    async def _stop_recording(self, why: str) -> None:
        if self.state is not VoicemailState.RECORDING:
            return
        self.state = VoicemailState.SAVING
        if self._timer:
            self._timer.cancel()
        await self.cm.event(self.s, "voicemail_stop", reason=why)
        if not self.caller_gone:
            try:
                leg = self.s.caller_leg
                assert leg is not None
                await self.cm.stop_record(self.s, [leg])
            except WorkerError:
                pass
        # the worker reports record_stopped once the file is flushed
        if self.file is None or self.file in self.s.stopped_files:
            await self._save()
        else:
            self._timer = asyncio.get_running_loop().call_later(3.0, self.s.queue.put_nowait, Tick(-1))

    async def _save(self) -> None:
        if self.meta is not None:
            return
        s = self.s
        self.meta = meta = await file_message(
            self.fl.db,
            self.fl.data_dir,
            self.box["box"],
            self.file,
            caller=s.caller,
            did=s.record.did or s.callee,
            call_id=s.record.id,
            received_at=self.started_at or self.cm.clock(),
        )
        await self.cm.event(
            s, "voicemail_saved", id=meta["id"], box=meta["box"], path=meta["path"], seconds=meta["seconds"]
        )
        call_log(log, s).info("voicemail %s (%.1f s) in box %s", meta["id"], meta["seconds"], self.box["box"])
        await self.fl.voicemail_filed(self.box["box"], meta)
        if self.caller_gone:
            await self._finish("caller")
        else:
            await self._goodbye()

    async def _goodbye(self) -> None:
        self.state = VoicemailState.GOODBYE
        if not await self._play(self.p("thank_you_goodbye")):
            await self._hangup()

    async def _hangup(self) -> None:
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        await self._finish("system")

    async def _finish(self, side: str) -> None:
        if self.state is VoicemailState.DONE:
            return
        self.state = VoicemailState.DONE
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

    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is VoicemailState.DONE:
            return
        if isinstance(ev, Tick):
            if ev.gen == -1 and self.state is VoicemailState.SAVING:
                await self._save()  # the recorder never reported: file what is there
            elif ev.gen == self.gen and self.state is VoicemailState.RECORDING:
                await self._stop_recording("max length")
        elif isinstance(ev, P.Answered):
            if ev.leg == s.caller_leg and self.state is VoicemailState.ANSWERING:
                await self._greet()
        elif isinstance(ev, P.PlaybackFinished):
            if ev.leg != s.caller_leg or ev.file != self.playing:
                return
            self.playing = None
            if self.state is VoicemailState.GREETING:
                await self._beep()
            elif self.state is VoicemailState.BEEP:
                await self._record()
            elif self.state is VoicemailState.GOODBYE:
                await self._hangup()
        elif isinstance(ev, P.Dtmf):
            if ev.leg == s.caller_leg:
                await self.cm.event(s, "dtmf", leg="caller", digit=ev.digit)
                if ev.digit == "#" and self.state is VoicemailState.RECORDING:
                    await self._stop_recording("#")
                elif ev.digit == "#" and self.state is VoicemailState.GREETING:
                    try:
                        await self.cm.stop_play(self.s, s.caller_leg)  # skip the greeting
                    except WorkerError:
                        pass
                    await self._beep()
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
            if ev.path == self.file and self.state is VoicemailState.SAVING:
                await self._save()
        elif isinstance(ev, P.Ended):
            if ev.leg != s.caller_leg:
                return
            self.caller_gone = True
            if self.state is VoicemailState.RECORDING:
                await self._stop_recording("hang-up")
            elif self.state is VoicemailState.SAVING:
                pass
            else:
                await self._finish("caller")
        elif isinstance(ev, Shutdown):
            if self.state is VoicemailState.RECORDING:
                self.caller_gone = True
                await self.cm.hangup(self.s, s.caller_leg, None)
                await self._stop_recording("shutdown")
                if self.state is not VoicemailState.DONE:
                    await self._save()
            else:
                await self.cm.hangup(self.s, s.caller_leg, None)
                self.state = VoicemailState.DONE
                self.fl.forget(s)
                await self.cm.finish(s, Disposition.INTERRUPTED, side="system", cause="pbx shutting down")
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self.state = VoicemailState.DONE
            self.fl.forget(s)
            await self.cm.worker_lost(s, ev)

    def finished(self, disposition: Disposition, side: str) -> None:
        self.state = VoicemailState.DONE


class MailboxCall(FlowBase):
    """``*98``: the caller's own box: new messages played oldest first, marked heard."""

    def __init__(self, fl: FrontLine, s: Call, box: str) -> None:
        self.fl = fl
        self.s = s
        self.cm = fl.cm
        self.box = box
        self.queue: list[VoicemailMessage] = []
        self.playing: str | None = None
        self.current: VoicemailMessage | None = None
        self.done = False
        self.heard = 0

    async def start(self) -> None:
        self.queue = await list_messages(self.fl.db, self.box, unheard_only=True)
        await self.cm.event(self.s, "voicemail_access", box=self.box, new=len(self.queue))
        await self.cm.answer(self.s, self.s.caller_leg, 200)

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
        if self.playing != "bye" and await self._play(prompt("en", "thank_you_goodbye", self.fl.prompts_dir), bye=True):
            return
        await self._end("system")

    async def _play(self, f: str, bye: bool = False) -> bool:
        try:
            await self.cm.play(self.s, self.s.caller_leg, f)
            self.playing = "bye" if bye else f
            return True
        except WorkerError:
            return False

    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.done:
            return
        if isinstance(ev, P.Answered) and ev.leg == s.caller_leg:
            if s.record.answered_at is None:
                await self.cm.calllog.answered(s.record, voicemail_access=self.box)
            await self._next()
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg:
            if self.playing == "bye":
                await self.cm.hangup(self.s, s.caller_leg, None)
                await self._end("system")
            else:
                await self._next()
        elif isinstance(ev, P.Dtmf) and ev.leg == s.caller_leg and ev.digit == "#" and self.current is not None:
            try:
                await self.cm.stop_play(self.s, s.caller_leg)  # # skips to the next message
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
        await self.cm.finish(
            self.s, Disposition.ANSWERED, side=side, cause=f"voicemail access {self.box}: {self.heard} heard"
        )

    def finished(self, disposition: Disposition, side: str) -> None:
        self.done = True
