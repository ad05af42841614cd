"""The post-call survey, live: :class:`SurveyCall` asks the caller for a score (see
:mod:`pypbx.survey` for when, and for the settings and scores it stores).

An unhappy score (:data:`pypbx.survey.UNHAPPY`, 1-2) offers a short recorded comment: the
caller hears ``survey_comment`` ("tell us after the tone what we could do better") and the beep and is recorded (the worker's recorder on the
caller's leg) until ``#``, a hang-up or :data:`pypbx.survey.COMMENT_SECONDS`; the file is
kept next to the call's recording (``recordings/<day>/<call id>-comment-<leg>.wav``) and its
path stored on the survey row (``pypbx survey list --unhappy``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING

from media import protocol as P
from media.client import WorkerError
from pypbx import sitetime
from pypbx.call import Call, CallInput, Shutdown, Tick
from pypbx.flows.base import TimedFlow
from pypbx.flows.player import prompt
from pypbx.logs import call_log
from pypbx.survey import ANSWER_TIMEOUT, COMMENT_SECONDS, UNHAPPY, record_comment, record_score
from pypbx.voicemail import BEEP

if TYPE_CHECKING:
    from pypbx.frontline import FrontLine

log = logging.getLogger(__name__)

#: Tick generation of "the recorder never reported the comment's file": save what is there.
_SAVE_ANYWAY = -1


class SurveyState(enum.Enum):
    """Where a caller answering the post-call survey is."""

    QUESTION = "question"
    WAITING = "waiting"
    COMMENT_PROMPT = "comment_prompt"  # unhappy score: "leave a message after the tone"
    COMMENT_BEEP = "comment_beep"
    COMMENT = "comment"  # recording the caller's comment
    SAVING = "saving"  # the recorder stopped: waiting for its file
    THANKS = "thanks"
    DONE = "done"


class SurveyCall(TimedFlow):
    """The caller's leg after the callee hung up (see the module docstring)."""

    def __init__(
        self,
        fl: FrontLine,
        s: Call,
        timeout: float = ANSWER_TIMEOUT,
        lang: str = "en",
        comment_seconds: float = COMMENT_SECONDS,
    ) -> None:
        self.fl = fl
        self.lang = lang
        self.s = s
        self.cm = fl.cm
        self.timeout = timeout
        self.comment_seconds = comment_seconds
        self.state = SurveyState.QUESTION
        self.playing: str | None = None
        self.asked = 0
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.score: int | None = None
        self.comment_file: str | None = None
        self.comment_started: float | None = None
        self.comment_saved = False
        self.caller_gone = False

    def p(self, pid: str) -> str:
        return prompt(self.lang, pid, self.fl.prompts_dir)

    async def start(self) -> None:
        await self.cm.event(self.s, "survey_offered", agent=self.s.record.agent, queue=self.s.record.queue)
        await self._ask()

    async def _ask(self) -> None:
        self.asked += 1
        self.state = SurveyState.QUESTION
        if not await self._play(self.p("survey_question")):
            await self._wait()

    async def _play(self, f: str) -> bool:
        try:
            await self.cm.play(self.s, self.s.caller_leg, f)
            self.playing = f
            return True
        except WorkerError:
            self.playing = None
            return False

    async def _wait(self) -> None:
        self.state = SurveyState.WAITING
        self._arm(self.timeout)

    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is SurveyState.DONE:
            return
        if isinstance(ev, Tick):
            if ev.gen == _SAVE_ANYWAY and self.state is SurveyState.SAVING:
                await self._save_comment()
            elif ev.gen == self.gen and self.state is SurveyState.WAITING:
                await self.cm.event(s, "survey_no_answer")
                await self._bye()
            elif ev.gen == self.gen and self.state is SurveyState.COMMENT:
                await self._stop_comment("max length")
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg and ev.file == self.playing:
            self.playing = None
            if self.state is SurveyState.QUESTION:
                await self._wait()
            elif self.state is SurveyState.COMMENT_PROMPT:
                await self._beep()
            elif self.state is SurveyState.COMMENT_BEEP:
                await self._record()
            elif self.state is SurveyState.THANKS:
                await self._bye()
        elif isinstance(ev, P.Dtmf) and ev.leg == s.caller_leg:
            await self._dtmf(ev.digit)
        elif isinstance(ev, P.RecordStopped):
            s.stopped_files.add(ev.path)
            if ev.path == self.comment_file and self.state is SurveyState.SAVING:
                await self._save_comment()
        elif isinstance(ev, P.Ended) and ev.leg == s.caller_leg:
            self.caller_gone = True
            if self.state is SurveyState.COMMENT:
                await self._stop_comment("hang-up")
            elif self.state is not SurveyState.SAVING:
                self._done()
        elif isinstance(ev, Shutdown):
            await self.cm.hangup(self.s, s.caller_leg, None)
            self.caller_gone = True
            if self.state in (SurveyState.COMMENT, SurveyState.SAVING):
                await self._stop_comment("shutdown")
                await self._save_comment()  # what the file has: the PBX is stopping
            self._done()
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self._done()

    async def _dtmf(self, digit: str) -> None:
        s = self.s
        if self.state in (SurveyState.QUESTION, SurveyState.WAITING):
            if digit in "12345" and len(digit) == 1:
                await self._scored(int(digit))
            elif self.asked < 2:
                await self.cm.stop_play(self.s, s.caller_leg, quiet=True)
                await self._ask()
            else:
                await self._bye()
        elif digit == "#" and self.state is SurveyState.COMMENT:
            await self._stop_comment("#")
        elif digit == "#" and self.state is SurveyState.COMMENT_PROMPT:
            await self.cm.stop_play(self.s, s.caller_leg, quiet=True)  # skip the prompt
            await self._beep()

    async def _scored(self, score: int) -> None:
        s = self.s
        self.score = score
        if self._timer:
            self._timer.cancel()
        await self.cm.stop_play(self.s, s.caller_leg, quiet=True)
        await record_score(
            self.fl.db, s.record.id, s.record.agent or s.record.extension, s.record.queue, score, self.cm.clock()
        )
        await self.cm.event(s, "survey", score=score, agent=s.record.agent or s.record.extension, queue=s.record.queue)
        call_log(log, s).info("survey score %d for %s", score, s.record.agent or s.record.extension)
        if score <= UNHAPPY and self.comment_seconds > 0:
            self.state = SurveyState.COMMENT_PROMPT
            await self.cm.event(s, "survey_comment_offered", score=score)
            if not await self._play(self.p("survey_comment")):
                await self._beep()
            return
        await self._thanks()

    async def _thanks(self) -> None:
        self.state = SurveyState.THANKS
        if not await self._play(self.p("survey_thanks")):
            await self._bye()

    # ---------------------------------------------------------------- the unhappy caller's comment
    async def _beep(self) -> None:
        self.state = SurveyState.COMMENT_BEEP
        if not await self._play(str(BEEP)):
            await self._record()

    async def _record(self) -> None:
        s = self.s
        self.state = SurveyState.COMMENT
        self.playing = None
        day = sitetime.local_day(s.record.offered_at)  # next to the call's recording
        folder = self.cm.rec_dir / day
        try:
            folder.mkdir(parents=True, exist_ok=True)
            leg = s.caller_leg
            assert leg is not None
            files = await self.cm.record_legs(self.s, [leg], folder / f"{s.record.id}-comment")
            self.comment_file = files.get(leg)
        except (WorkerError, OSError) as exc:
            call_log(log, s).error("survey comment: recording failed: %s", exc)
            await self.cm.event(s, "survey_comment_failed", error=str(exc))
            await self._thanks()
            return
        self.comment_started = self.cm.clock()
        await self.cm.event(s, "survey_comment_recording", file=self.comment_file)
        self._arm(self.comment_seconds)

    async def _stop_comment(self, why: str) -> None:
        if self.state is not SurveyState.COMMENT:
            return
        self.state = SurveyState.SAVING
        if self._timer:
            self._timer.cancel()
        await self.cm.event(self.s, "survey_comment_stop", reason=why)
        if not self.caller_gone:
            await self.cm.stop_record(self.s, [self.s.caller_leg or ""], quiet=True)
        if self.comment_file is None or self.comment_file in self.s.stopped_files:
            await self._save_comment()
        else:  # the worker reports record_stopped once the file is flushed
            self._timer = asyncio.get_running_loop().call_later(3.0, self.s.queue.put_nowait, Tick(_SAVE_ANYWAY))

    async def _save_comment(self) -> None:
        if self.comment_saved:
            return
        self.comment_saved = True
        s = self.s
        if self._timer:
            self._timer.cancel()
        seconds = round(self.cm.clock() - self.comment_started, 1) if self.comment_started is not None else None
        if self.comment_file:
            await record_comment(self.fl.db, s.record.id, self.comment_file, seconds)
            await self.cm.event(s, "survey_comment", file=self.comment_file, seconds=seconds)
            call_log(log, s).info("survey comment %s (%.1f s)", self.comment_file, seconds or 0.0)
        if self.caller_gone:
            self._done()
        else:
            await self._thanks()

    async def _bye(self) -> None:
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        self._done()

    def _done(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.state = SurveyState.DONE
        self.fl.forget(self.s)
        self.s.ended = True  # the session (and its worker) is released now
