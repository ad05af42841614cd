"""The agents' feature codes, dialled from their desk phones (taken over by :mod:`pypbx.acdlive`):

* ``*45<agent>``: log that agent in at the calling extension;
* ``*45``: log out the agent logged in there;
* ``*46``: pause (break) / unpause the agent logged in there.

The call is answered, the change written (:mod:`pypbx.acdstore`) and the ACD brought in
line with it (``AcdLive.sync``); a short prompt says whether it worked, then the call ends
(``answered`` when it did, ``rejected`` when not, the reason as the cause).
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

from acd.model import PauseReason
from media import protocol as P
from media.client import WorkerError
from pypbx import acdstore as S
from pypbx.call.flow import CallInput, FlowBase, Shutdown
from pypbx.calllog import CallRecord, Disposition
from pypbx.flows.player import prompt

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive
    from pypbx.call.manager import CallManager
    from pypbx.call.session import Call

log = logging.getLogger(__name__)


class FeatureState(enum.Enum):
    ANSWERING = "answering"  # answered, the change not made yet
    PLAYING = "playing"  # the change made (or refused): its prompt plays
    DONE = "done"


class FeatureCall(FlowBase):
    """``*45<agent>`` log in at this extension, ``*45`` log out, ``*46`` pause / unpause."""

    def __init__(self, live: AcdLive, s: Call) -> None:
        assert s.rec is not None and live.callmgr is not None
        self.live = live
        self.s = s
        self.rec: CallRecord = s.rec
        self.cm: CallManager = live.callmgr
        self.state = FeatureState.ANSWERING
        self.result = ""
        self.ok = False

    async def start(self) -> None:
        await self.cm.calllog.event(self.rec, "feature_code", code=self.s.callee)
        await self.cm.answer(self.s, self.s.caller_leg, 200)

    async def _act(self) -> None:
        db = self.live.db
        ext = self.s.caller
        code = self.s.callee
        try:
            here = await db.get_agent_row_at_extension(ext)
            if code.startswith("*45"):
                agent = code[3:]
                if agent:
                    await S.login(db, agent, ext)
                    self.result = f"agent {agent} logged in at {ext}"
                elif here is not None:
                    await S.logout(db, here["id"])
                    self.result = f"agent {here['id']} logged out"
                else:
                    raise S.AcdError(f"no agent logged in at {ext}")
            else:
                if here is None:
                    raise S.AcdError(f"no agent logged in at {ext}")
                if here["state"] == "paused":
                    await S.unpause(db, here["id"])
                    self.result = f"agent {here['id']} unpaused"
                else:
                    await S.pause(db, here["id"], PauseReason.BREAK)
                    self.result = f"agent {here['id']} paused"
            self.ok = True
            await self.live.sync()
        except S.AcdError as exc:
            self.result = str(exc)
        log.info("feature code %s from %s: %s", code, ext, self.result)

    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is FeatureState.DONE:
            return
        if isinstance(ev, P.Answered) and ev.leg == s.caller_leg and self.state is FeatureState.ANSWERING:
            await self._act()
            self.state = FeatureState.PLAYING
            playing = prompt("en", "thank_you_goodbye" if self.ok else "invalid_choice", self.live.prompts_dir)
            try:
                await self.cm.play(s, s.caller_leg, playing)
            except WorkerError:
                await self._end("system")
        elif isinstance(ev, P.PlaybackFinished) and ev.leg == s.caller_leg:
            await self.cm.hangup(s, s.caller_leg, None)
            await self._end("system")
        elif isinstance(ev, P.Ended) and ev.leg == s.caller_leg:
            await self._end("caller")
        elif isinstance(ev, Shutdown):
            await self.cm.hangup(s, s.caller_leg, None)
            await self._end("system")

    async def _end(self, side: str) -> None:
        if self.state is FeatureState.DONE:
            return
        self.state = FeatureState.DONE
        if self.rec.answered_at is None:
            await self.cm.calllog.answered(self.rec, feature=self.s.callee)
        await self.cm.finish(
            self.s,
            Disposition.ANSWERED if self.ok else Disposition.REJECTED,
            side=side,
            cause=f"feature code: {self.result}",
        )

    def finished(self, disposition: Disposition, side: str) -> None:
        self.state = FeatureState.DONE
