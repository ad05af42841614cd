"""The post-call survey, live: :class:`SurveyCall` asks the caller for a score (see
:mod:`pypbx.survey` for when, and for the settings and scores it stores).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING

from media import protocol as P
from media.client import WorkerError
from pypbx.call import Call, CallInput, Shutdown, Tick
from pypbx.flows.base import TimedFlow
from pypbx.flows.player import prompt
from pypbx.logs import call_log
from pypbx.survey import ANSWER_TIMEOUT, record_score

if TYPE_CHECKING:
    from pypbx.frontline import FrontLine

log = logging.getLogger(__name__)


class SurveyState(enum.Enum):
    """Where a caller answering the post-call survey is."""

    QUESTION = "question"
    WAITING = "waiting"
    THANKS = "thanks"
    DONE = "done"


class SurveyCall(TimedFlow):
    """The caller's leg after the callee hung up (see the module docstring)."""

    def __init__(self, fl: FrontLine, s: Call, timeout: float = ANSWER_TIMEOUT, lang: str = "en") -> None:
        self.fl = fl
        self.lang = lang
        self.s = s
        self.cm = fl.cm
        self.timeout = timeout
        self.state = SurveyState.QUESTION
        self.playing: str | None = None
        self.asked = 0
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.score: int | None = None

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
            if ev.gen == self.gen and self.state is SurveyState.WAITING:
                await self.cm.event(s, "survey_no_answer")
                await self._bye()
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg and ev.file == self.playing:
            self.playing = None
            if self.state is SurveyState.QUESTION:
                await self._wait()
            elif self.state is SurveyState.THANKS:
                await self._bye()
        elif (
            isinstance(ev, P.Dtmf)
            and ev.leg == s.caller_leg
            and self.state in (SurveyState.QUESTION, SurveyState.WAITING)
        ):
            if ev.digit in "12345" and len(ev.digit) == 1:
                await self._scored(int(ev.digit))
            elif self.asked < 2:
                try:
                    await self.cm.stop_play(self.s, s.caller_leg)
                except WorkerError:
                    pass
                await self._ask()
            else:
                await self._bye()
        elif isinstance(ev, P.Ended) and ev.leg == s.caller_leg:
            self._done()
        elif isinstance(ev, Shutdown):
            await self.cm.hangup(self.s, s.caller_leg, None)
            self._done()
        elif type(ev).__name__ in ("WorkerLost", "WorkerExited"):
            self._done()

    async def _scored(self, score: int) -> None:
        s = self.s
        self.score = score
        if self._timer:
            self._timer.cancel()
        try:
            await self.cm.stop_play(self.s, s.caller_leg)
        except WorkerError:
            pass
        await record_score(
            self.fl.db, s.record.id, s.record.agent or s.record.extension, s.record.queue, score, self.cm.clock()
        )
        await self.cm.event(s, "survey", score=score, agent=s.record.agent or s.record.extension, queue=s.record.queue)
        call_log(log, s).info("survey score %d for %s", score, s.record.agent or s.record.extension)
        self.state = SurveyState.THANKS
        if not await self._play(self.p("survey_thanks")):
            await self._bye()

    async def _bye(self) -> None:
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        self._done()

    def _done(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.state = SurveyState.DONE
        self.fl.forget(self.s)
        self.s.ended = True  # the session (and its worker) is released now
