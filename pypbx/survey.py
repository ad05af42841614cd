"""The post-call satisfaction survey.

Optional, globally or per queue (``pypbx survey enable [--queue Q]`` / ``disable``; stored
as JSON under the ``survey`` key of the ``meta`` table: ``{"all": bool, "queues": [...]}``).

When the callee (the agent, or the extension that was dialled) hangs up first in an
answered call, CallManager (through :meth:`pypbx.frontline.FrontLine.callee_left`) closes
the call's record as usual — answered, hung up by the callee, recording saved, agent
freed — and instead of hanging up the caller hands the caller's leg to
:class:`SurveyCall`: the caller hears ``survey_question`` (in the queue's language) and presses 1-5; the score is
stored with the call (call event ``survey``) and in the ``surveys`` table (call id, agent,
queue, score, time), then ``survey_thanks`` and goodbye. No key within the timeout, or any
other key twice: the caller is released without a score.

``pypbx survey report [--json]``: the number of answers and the average score per agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from media import protocol as P
from media.client import WorkerError
from pypbx.db import Database
from pypbx.call import Tick
from pypbx.flows.base import TimedFlow

log = logging.getLogger(__name__)

META_KEY = "survey"
#: Seconds the caller has to press a key after the question.
ANSWER_TIMEOUT = 8.0


class SurveyError(ValueError):
    pass


async def get_settings(db: Database) -> dict[str, Any]:
    raw = await db.get_meta(META_KEY)
    d = json.loads(raw) if raw else {}
    return {"all": bool(d.get("all", False)), "queues": sorted(d.get("queues", []))}


async def set_enabled(db: Database, enabled: bool, queue: str | None = None) -> dict[str, Any]:
    d = await get_settings(db)
    if queue is None:
        d["all"] = enabled
        if not enabled:
            d["queues"] = []
    else:
        qs = set(d["queues"])
        (qs.add if enabled else qs.discard)(queue)
        d["queues"] = sorted(qs)
    await db.set_meta(META_KEY, json.dumps(d))
    return d


async def enabled_for(db: Database, queue: str | None) -> bool:
    d = await get_settings(db)
    return d["all"] or (queue is not None and queue in d["queues"])


async def record_score(db: Database, call_id: str, agent: str | None, queue: str | None, score: int,
                       ts: float) -> None:
    if not 1 <= score <= 5:
        raise SurveyError(f"score {score} out of 1..5")
    await db.insert_survey_row(call_id, agent, queue, score, ts)


async def report(db: Database, since: float | None = None, until: float | None = None) -> dict[str, Any]:
    rows = await db.survey_rows(since, until)
    per: dict[str, list[int]] = {}
    for r in rows:
        per.setdefault(r["agent"] or "-", []).append(r["score"])
    agents = [{"agent": a, "answers": len(v), "average": round(sum(v) / len(v), 2),
               "distribution": {str(k): v.count(k) for k in range(1, 6)}} for a, v in sorted(per.items())]
    allv = [r["score"] for r in rows]
    return {"answers": len(allv), "average": round(sum(allv) / len(allv), 2) if allv else None,
            "agents": agents}



class SurveyCall(TimedFlow):
    """The caller's leg after the callee hung up (see the module docstring)."""

    def __init__(self, fl: Any, s: Any, timeout: float = ANSWER_TIMEOUT, lang: str = "en") -> None:
        self.fl = fl
        self.lang = lang
        self.s = s
        self.cm = fl.cm
        self.w = s.worker
        self.timeout = timeout
        self.state = "question"     # question, waiting, thanks, done
        self.playing: str | None = None
        self.asked = 0
        self.gen = 0
        self._timer: asyncio.TimerHandle | None = None
        self.score: int | None = None

    def p(self, pid: str) -> str:
        from pypbx.flows.player import prompt
        return prompt(self.lang, pid, self.fl.prompts_dir)

    async def start(self) -> None:
        await self.cm.calllog.event(self.s.rec, "survey_offered", agent=self.s.rec.agent, queue=self.s.rec.queue)
        await self._ask()

    async def _ask(self) -> None:
        self.asked += 1
        self.state = "question"
        if not await self._play(self.p("survey_question")):
            await self._wait()

    async def _play(self, f: str) -> bool:
        try:
            await self.w.play(self.s.caller_leg, f)
            self.playing = f
            return True
        except WorkerError:
            self.playing = None
            return False

    async def _wait(self) -> None:
        self.state = "waiting"
        self._arm(self.timeout)

    async def handle(self, ev: Any) -> None:
        from pypbx.call import Shutdown
        s = self.s
        if self.state == "done":
            return
        if isinstance(ev, Tick):
            if ev.gen == self.gen and self.state == "waiting":
                await self.cm.calllog.event(s.rec, "survey_no_answer")
                await self._bye()
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg and ev.file == self.playing:
            self.playing = None
            if self.state == "question":
                await self._wait()
            elif self.state == "thanks":
                await self._bye()
        elif isinstance(ev, P.Dtmf) and ev.leg == s.caller_leg and self.state in ("question", "waiting"):
            if ev.digit in "12345" and len(ev.digit) == 1:
                await self._scored(int(ev.digit))
            elif self.asked < 2:
                try:
                    await self.w.stop_play(s.caller_leg)
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
            await self.w.stop_play(s.caller_leg)
        except WorkerError:
            pass
        await record_score(self.fl.db, s.rec.id, s.rec.agent or s.rec.extension, s.rec.queue, score, self.cm.clock())
        await self.cm.calllog.event(s.rec, "survey", score=score, agent=s.rec.agent or s.rec.extension,
                                    queue=s.rec.queue)
        log.info("call %s: survey score %d for %s", s.rec.id[:12], score, s.rec.agent or s.rec.extension)
        self.state = "thanks"
        if not await self._play(self.p("survey_thanks")):
            await self._bye()

    async def _bye(self) -> None:
        await self.cm.hangup(self.s, self.s.caller_leg, None)
        self._done()

    def _done(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.state = "done"
        self.fl.forget(self.s)
        self.s.ended = True          # the session (and its worker) is released now
