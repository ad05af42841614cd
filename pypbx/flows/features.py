"""The agents' feature codes, dialled from their desk phones (taken over by :mod:`pypbx.acdlive`):

* ``*45<agent>``: log that agent in at the calling extension;
* ``*45``: log out the agent logged in there;
* ``*46``: pause (break) / unpause the agent logged in there.

The call is answered, the change written (:mod:`pypbx.acdstore`) and the ACD brought in
line with it (``AcdLive.sync``); a short prompt says whether it worked, then the call ends
(``answered`` when it did, ``rejected`` when not, the reason as the cause).

Reason codes (:mod:`pypbx.reasons`, taken over by :mod:`pypbx.frontline`):

* ``*7N`` dialled in wrap-up (:class:`ReasonCall`): reason N on the extension's last answered call;
* ``*7`` then N keyed during a call on the agent's leg (:class:`ReasonKeys`, fed every digit
  of the calls CallManager owns): reason N on this call.

Both answer with a tone on the agent's phone: :data:`pypbx.reasons.CONFIRM_TONE` when the
reason was set, :data:`pypbx.reasons.ERROR_TONE` when not.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from acd.model import PauseReason
from media import protocol as P
from pypbx import acdstore as S
from pypbx import reasons as R
from pypbx.call.flow import CallInput, FlowBase, Shutdown
from pypbx.calllog import CallRecord, Direction, Disposition
from pypbx.db import Database
from pypbx.flows.player import prompt
from pypbx.logs import call_log

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive
    from pypbx.call.manager import CallManager
    from pypbx.call.session import Call

log = logging.getLogger(__name__)


class FeatureState(enum.Enum):
    ANSWERING = "answering"  # answered, the change not made yet
    PLAYING = "playing"  # the change made (or refused): its prompt plays
    DONE = "done"


class FeatureCode(FlowBase):
    """A feature code dialled from a desk phone: answer, act (:meth:`_act`, which sets
    ``ok`` and ``result``), play the feedback (:meth:`_feedback`), hang up; the call ends
    ``answered`` when the change was made, ``rejected`` when not, the result as the cause."""

    def __init__(self, cm: CallManager, s: Call) -> None:
        assert s.rec is not None
        self.s = s
        self.rec: CallRecord = s.rec
        self.cm = cm
        self.state = FeatureState.ANSWERING
        self.result = ""
        self.ok = False

    async def start(self) -> None:
        await self.cm.calllog.event(self.rec, "feature_code", code=self.s.callee)
        await self.cm.answer(self.s, self.s.caller_leg, 200)

    async def _act(self) -> None:
        raise NotImplementedError

    def _feedback(self) -> str:
        """The file the caller hears once :meth:`_act` is done."""
        raise NotImplementedError

    async def handle(self, ev: CallInput) -> None:
        s = self.s
        if self.state is FeatureState.DONE:
            return
        if isinstance(ev, P.Answered) and ev.leg == s.caller_leg and self.state is FeatureState.ANSWERING:
            await self._act()
            self.state = FeatureState.PLAYING
            if not await self.cm.play(s, s.caller_leg, self._feedback(), quiet=True):
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


class FeatureCall(FeatureCode):
    """``*45<agent>`` log in at this extension, ``*45`` log out, ``*46`` pause / unpause."""

    def __init__(self, live: AcdLive, s: Call) -> None:
        assert live.callmgr is not None
        super().__init__(live.callmgr, s)
        self.live = live

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

    def _feedback(self) -> str:
        return prompt("en", "thank_you_goodbye" if self.ok else "invalid_choice", self.live.prompts_dir)


# ============================================================================ reason codes


class ReasonDesk:
    """What setting a reason from a desk phone needs: the database, the call manager (its
    event stream, clock and ACD: which agent is at an extension) and the tones' folder."""

    def __init__(self, db: Database, cm: CallManager, prompts_dir: Path) -> None:
        self.db = db
        self.cm = cm
        self.prompts_dir = prompts_dir

    def agent_at(self, extension: str) -> str | None:
        acd = self.cm.acd
        return acd.agent_at(extension) if acd is not None and extension else None

    def tone(self, ok: bool) -> str:
        return str(self.prompts_dir / (R.CONFIRM_TONE if ok else R.ERROR_TONE))

    async def set(self, call_id: str, digit: str, extension: str, via: R.ReasonVia) -> tuple[bool, str]:
        """(set?, what happened) for reason ``digit`` on call ``call_id`` by ``extension``."""
        try:
            done = await R.set_call_reason(
                self.db,
                self.cm.calllog.bus,
                call_id,
                digit=digit,
                agent=self.agent_at(extension),
                extension=extension,
                via=via,
                clock=self.cm.clock,
            )
        except R.ReasonError as exc:
            return False, str(exc)
        return True, f"reason {done['code']} set on call {call_id[:12]}"


class ReasonKeys:
    """``*7`` then a digit keyed on the agent's leg of a call CallManager owns (answered,
    no flow): the reason of this call. The agent's leg is the callee's, or the caller's for
    an outbound call. Keys more than :data:`pypbx.reasons.KEY_TIMEOUT` apart start over."""

    def __init__(self, desk: ReasonDesk, clock: Callable[[], float]) -> None:
        self.desk = desk
        self.clock = clock
        self.keys: dict[str, tuple[str, float]] = {}  # call id -> (keys so far, time of the last)

    @staticmethod
    def agent_leg(s: Call) -> tuple[str | None, str]:
        """(the agent's leg, the agent's extension) of a call."""
        rec = s.rec
        if rec is not None and rec.direction is Direction.OUTBOUND:
            return s.caller_leg, s.caller
        return s.callee_leg, (rec.extension if rec is not None and rec.extension else s.callee)

    async def dtmf(self, s: Call, leg: str, digit: str) -> None:
        rec = s.rec
        if rec is None or not s.answered:
            return
        agent_leg, ext = self.agent_leg(s)
        if leg != agent_leg:
            return  # the patient's keys never set a reason
        now = self.clock()
        for cid in [c for c, (_, t) in self.keys.items() if now - t > R.KEY_TIMEOUT]:
            del self.keys[cid]
        keys = self.keys.pop(rec.id, ("", now))[0]
        keys = "*" if digit == "*" else keys + digit if keys else ""
        if not keys or not R.REASON_CODE.startswith(keys[: len(R.REASON_CODE)]):
            return
        if len(keys) <= len(R.REASON_CODE):
            self.keys[rec.id] = (keys, now)
            return
        ok, what = await self.desk.set(rec.id, keys[len(R.REASON_CODE) :], ext, R.ReasonVia.PHONE)
        call_log(log, s).info("in-call reason code %s from %s: %s", keys, ext, what)
        await self.desk.cm.play(s, leg, self.desk.tone(ok), quiet=True)


class ReasonCall(FeatureCode):
    """``*7N`` dialled (in wrap-up): reason N on the calling extension's last answered call."""

    def __init__(self, desk: ReasonDesk, s: Call) -> None:
        super().__init__(desk.cm, s)
        self.desk = desk

    async def _act(self) -> None:
        ext, digit = self.s.caller, self.s.callee[len(R.REASON_CODE) :]
        last = await self.desk.db.last_call_of(ext, self.desk.agent_at(ext), exclude=self.rec.id)
        if last is None:
            self.result = f"no answered call at {ext} to set a reason on"
        else:
            self.ok, self.result = await self.desk.set(last["id"], digit, ext, R.ReasonVia.WRAPUP)
        call_log(log, self.s).info("reason code %s from %s: %s", self.s.callee, ext, self.result)

    def _feedback(self) -> str:
        return self.desk.tone(self.ok)
