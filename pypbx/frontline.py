"""The front line's seam in CallManager: the internal dialplan, voicemail on no answer,
the post-call survey and the callers table.

CallManager holds one :class:`FrontLine` (``CallManager.frontline``, set by the app) and
calls it at these small hooks:

* :meth:`on_incoming` (``_incoming``, before the ACD): a number that belongs to an IVR menu
  (``pypbx ivr add NAME --number 700``) -> :class:`pypbx.ivr.IvrCall`; to a mailbox
  (``pypbx voicemail box 1001 --number 801``) -> :class:`pypbx.voicemail.VoicemailCall`;
  ``*98`` -> the caller's own mailbox (:class:`pypbx.voicemail.MailboxCall`).
* :meth:`unanswered` (an extension rang out, refused the call, or is not registered): if
  its mailbox has ``on_no_answer``, the caller leaves a message instead of hearing 480.
* :meth:`callee_left` (the callee hung up first in an answered call): the post-call survey
  when enabled (:mod:`pypbx.survey`).
* :meth:`call_finished` (``_finish``): the caller's number is counted in the callers table.
* :meth:`caller_kind` (``_incoming``, inbound calls, before the record is offered): patient /
  known number / new (:func:`pypbx.callers.caller_kind`), stored on the call's record.
* :meth:`dtmf` (a digit of a call CallManager owns): the agent's in-call reason code
  (``*7`` N, :class:`pypbx.flows.features.ReasonKeys`); ``*7N`` dialled is taken over by
  :meth:`on_incoming` (:class:`pypbx.flows.features.ReasonCall`).

The front door asks :meth:`is_internal` (through the app's ``_is_internal``) whether a dialled
number is ours (never sent to a trunk): IVR menu numbers, mailbox numbers, ``*98``; the
numbers are cached and re-read by :meth:`reload`, which the app's change watcher calls on
every change.

Each flow takes the call over the way :class:`pypbx.flows.queue.QueueCall` does
(``CallManager.hand_over``). The IVR hands calls on with :meth:`to_queue` and :meth:`to_voicemail`.
Everything is read from the database per call, so CLI changes apply to the next call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from media import protocol as P
from pypbx import callers as C
from pypbx import groups as G
from pypbx import ivr as I
from pypbx import reasons as R
from pypbx import survey as Sv
from pypbx import voicemail as V
from pypbx.call import Call, CallManager, Flow
from pypbx.calllog import CallerKind, Disposition
from pypbx.crm import CrmLookup
from pypbx.db import Database
from pypbx.flows.features import ReasonCall, ReasonDesk, ReasonKeys
from pypbx.flows.group import GroupCall
from pypbx.flows.ivr import IvrCall
from pypbx.flows.route import resolve
from pypbx.flows.survey import SurveyCall
from pypbx.flows.voicemail import MailboxCall, VoicemailCall
from pypbx.logs import call_log
from pypbx.numbers import e164
from pypbx.prompts import LANGUAGES

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive
    from pypbx.trunks import TrunkRouter

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "ivr_prompts"


class FrontLine:
    def __init__(
        self,
        db: Database,
        cm: CallManager,
        data_dir: Path | str,
        prompts_dir: Path | str | None = None,
        survey_timeout: float | None = None,
    ) -> None:
        self.db = db
        self.cm = cm
        self.data_dir = Path(data_dir)
        self.prompts_dir = Path(prompts_dir) if prompts_dir else PROMPTS_DIR
        self.survey_timeout = survey_timeout
        self.calls: dict[int, Flow] = {}
        self.numbers: set[str] = {V.ACCESS_NUMBER}
        # called with (box, message metadata) after a voicemail message is filed: MWI
        # (pypbx.mwi) and the notification hook (pypbx.notify) register here
        self.voicemail_listeners: list[Callable[[str, V.VoicemailMeta], Awaitable[None]]] = []
        # reason codes from the agents' phones (pypbx.reasons): *7N dialled, *7 N keyed in a call
        self.reason_desk = ReasonDesk(db, cm, self.prompts_dir)
        self.reason_keys = ReasonKeys(self.reason_desk, cm.clock)
        self.crm: CrmLookup | None = None  # the clinic's system (pypbx.crm), set by the app

    async def voicemail_filed(self, box: str, meta: V.VoicemailMeta) -> None:
        for cb in list(self.voicemail_listeners):
            try:
                await cb(box, meta)
            except Exception:
                log.exception("voicemail listener %r failed for box %s", cb, box)

    async def reload(self) -> None:
        nums = {V.ACCESS_NUMBER}
        nums |= {r["number"] for r in await self.db.list_ivr_menu_rows() if r["number"]}
        nums |= {r["number"] for r in await self.db.list_voicemail_box_rows() if r["number"]}
        self.numbers = nums

    async def close(self) -> None:
        """Nothing to release: the numbers are re-read by :meth:`reload` (the app's change
        watcher calls it). Kept so the app's shutdown stack can still call it."""

    def is_internal(self, number: str) -> bool:
        """An IVR menu / mailbox number or ``*98``: the cache, else a quick read-only look in
        the database (a number the CLI added a moment ago)."""
        if number in self.numbers:
            return True
        if not number or not hasattr(self.db, "is_front_line_number_sync"):
            return False
        hit = self.db.is_front_line_number_sync(number)
        if hit:
            self.numbers.add(number)
        return bool(hit)

    def forget(self, s: Call) -> None:
        self.calls.pop(id(s), None)

    def _take(self, s: Call, obj: Flow) -> None:
        self.calls[id(s)] = obj
        self.cm.hand_over(s, obj)

    # ------------------------------------------------------------ hooks
    async def on_incoming(self, s: Call, ev: P.Incoming) -> bool:
        """True: the call is taken over here (IVR number, mailbox number, ``*98``)."""
        number = s.callee
        if number.startswith(R.REASON_CODE) and s.trunk is None:
            rc = ReasonCall(self.reason_desk, s)  # *7N: the reason of the agent's last call
            self._take(s, rc)
            await rc.start()
            return True
        try:
            menu = await I.menu_for_number(self.db, number)
            if menu is not None:
                call = IvrCall(self, s, menu)
                self._take(s, call)
                await call.start()
                return True
            if number == V.ACCESS_NUMBER:
                mc = MailboxCall(self, s, s.caller)
                self._take(s, mc)
                await mc.start()
                return True
            box = await V.box_for_number(self.db, number)
        except Exception:
            log.exception("front line: routing %s failed", number)
            self.cm.hand_back(s)
            self.forget(s)
            return False
        if box is not None:
            return await self.to_voicemail(s, box, answered=False)
        return False

    async def unanswered(self, s: Call, why: str) -> bool:
        """The dialled extension did not take the call: its mailbox, if it wants that."""
        box = await self.voicemail_box(s.callee)
        if box is None or not box["on_no_answer"]:
            return False
        if s.callee_leg:
            s.dropped.add(s.callee_leg)
        s.ring_deadline = None
        await self.cm.event(s, "no_answer_to_voicemail", extension=s.callee, reason=why)
        return await self.to_voicemail(s, box["box"], answered=False)

    async def callee_left(self, s: Call) -> bool:
        """An answered call whose callee hung up first: the survey, when enabled."""
        if s.relay or s.xfer is not None or not s.caller_leg or s.rec is None:
            return False
        if not await Sv.enabled_for(self.db, s.rec.queue):
            return False
        # close the call as usual (answered, callee hung up: record, recording, agent) ...
        if s.callee_leg:
            s.dropped.add(s.callee_leg)
        await self.cm.finish(s, Disposition.ANSWERED, side="callee", cause="BYE")
        # ... but keep the session (and the caller's leg) for the question
        s.ended = False
        s.bridged = None
        lang = "en"
        q = getattr(getattr(self.cm, "acd", None), "engine", None)
        if s.rec.queue and q is not None and s.rec.queue in q.queues:
            lang = q.queues[s.rec.queue].language or "en"
        if self.survey_timeout:
            sc = SurveyCall(self, s, timeout=self.survey_timeout, lang=lang)
        else:
            sc = SurveyCall(self, s, lang=lang)
        self._take(s, sc)
        await sc.start()
        return True

    async def call_finished(self, s: Call, disposition: Disposition, side: str) -> None:
        rec = s.rec
        if rec is None:
            return
        try:
            await C.call_ended(
                self.db,
                rec.caller_number,
                getattr(disposition, "value", str(disposition)),
                rec.agent,
                rec.id,
                clock=self.cm.clock,
            )
        except Exception:
            call_log(log, rec.id).exception("callers table: counting the call failed")
        obj = self.calls.get(id(s))
        if obj is not None and hasattr(obj, "finished"):
            obj.finished(disposition, side)

    async def ask_crm(self, s: Call) -> None:
        """An inbound caller at arrival: what the clinic's system knows (pypbx.crm), if one
        is configured, written into the callers table (so known/new, the caller kind and the
        screen pop see it) and onto the call (sticky agent, urgent line, prompt language).
        Never longer than ``[crm] timeout_ms``; a failure leaves the local table alone."""
        if self.crm is None:
            return
        ans = await self.crm.lookup(s.caller)
        if ans is None or not ans.found:
            return
        cfg = self.crm.cfg
        try:
            await self.db.remember_crm_row(e164(s.caller, self.db.region), ans.name, ans.patient_id, self.cm.clock())
        except Exception:
            call_log(log, s).exception("callers table: storing the CRM's answer failed")
        if ans.agent and s.route_prefer is None and cfg.prefer_seconds > 0:
            s.route_prefer = (ans.agent, float(cfg.prefer_seconds))
        if ans.urgent:
            s.priority = max(s.priority, cfg.urgent_priority)
        if ans.language in LANGUAGES:
            s.language = ans.language
        call_log(log, s).info(
            "CRM: %s is %s%s%s%s",
            s.caller,
            ans.name or ans.patient_id or "a patient",
            f", agent {ans.agent}" if ans.agent else "",
            ", urgent" if ans.urgent else "",
            f", language {ans.language}" if ans.language else "",
        )

    async def caller_kind(self, number: str) -> CallerKind | None:
        """An inbound caller at arrival (CallManager records it on the call): patient / known / new."""
        try:
            return await C.caller_kind(self.db, number)
        except Exception:
            log.exception("callers table: looking up %s failed (kind not recorded)", number)
            return None

    async def dtmf(self, s: Call, leg: str, digit: str) -> None:
        """A digit of a call CallManager owns: the agent's in-call reason code (``*7`` N)."""
        try:
            await self.reason_keys.dtmf(s, leg, digit)
        except Exception:
            call_log(log, s).exception("in-call reason code failed")

    # ------------------------------------------------------------ hand-offs
    async def start_destination(self, s: Call, dest: str, *, answered: bool = False) -> bool:
        """For other routers (e.g. a DID's destination, a ring group's ``then``):
        ``ivr:NAME`` (or ``menu:NAME``), ``voicemail:BOX``, ``group:NAME`` (a ring group),
        ``queue:NAME`` or ``extension:NUMBER`` (rung as a one-member group) takes the session
        over; ``route:NAME`` (:mod:`pypbx.routing`) -> the matching rule's destination (an
        ``external:`` one only for an unanswered trunk call). False: unknown destination kind /
        target, or no rule matched."""
        kind, _, target = (dest or "").partition(":")
        if kind == "route":  # routing rules (pypbx.routing): the rule's destination
            nxt = await resolve(self.cm, s, target)
            if (
                nxt is not None
                and nxt.startswith("external:")
                and not answered
                and s.trunk is not None
                and getattr(self.cm, "trunks", None) is not None
            ):
                self.forget(s)
                self.cm.hand_back(s)  # CallManager bridges on the trunk leg's answer
                router = cast("TrunkRouter", self.cm.trunks)
                return await router.to_destination(self.cm, s, nxt)
            return nxt is not None and await self.start_destination(s, nxt, answered=answered)
        if kind in ("group", "ring_group"):
            return await self.to_group(s, target, answered=answered)
        if kind == "queue":
            return await (self.to_queue(s, target) if answered else self._queue_unanswered(s, target))
        if kind == "extension":
            if not self.cm.is_extension(target) or getattr(self.cm, "groups", None) is None:
                return False
            g = G.RingGroup(name=f"extension-{target}", members=[target], ring_time=self.cm.ring_time)
            box = await self.voicemail_box(target)
            if box is not None and box["on_no_answer"]:
                g.then = f"voicemail:{target}"
            return await self._group_call(s, g, answered)
        if kind in ("ivr", "menu"):
            try:
                menu = await I.get_menu(self.db, target)
            except I.IvrError:
                return False
            call = IvrCall(self, s, menu)
            self._take(s, call)
            await call.start(answered=answered)
            return True
        if kind == "voicemail":
            return await self.to_voicemail(s, target, answered=answered)
        return False

    async def to_group(self, s: Call, name: str, *, answered: bool) -> bool:
        """Ring group ``name`` (:mod:`pypbx.groups`). False: no such group."""
        try:
            g = await G.get_group(self.db, name)
        except G.GroupError:
            call_log(log, s).warning("no ring group %s", name)
            return False
        return await self._group_call(s, g, answered)

    async def _group_call(self, s: Call, g: G.RingGroup, answered: bool) -> bool:
        svc = getattr(self.cm, "groups", None)
        if svc is None:
            return False
        gc = GroupCall(self, s, g, svc, answered=answered)
        self._take(s, gc)
        await gc.start()
        return True

    def _acd(self) -> AcdLive | None:
        # CallManager.acd is the narrow AcdHooks protocol; queue entry (accepts, enter_queue)
        # is AcdLive's, which is what the app sets there
        return cast("AcdLive | None", self.cm.acd)

    async def _queue_unanswered(self, s: Call, queue: str) -> bool:
        """A caller not answered yet (a DID, a ring group's ``then``) into a queue."""
        live = self._acd()
        if live is None or not live.accepts(queue):
            return False
        self.forget(s)
        await live.enter_queue(s, queue)
        return True

    async def voicemail_box(self, box: str) -> V.VoicemailBox | None:
        try:
            return await V.get_box(self.db, box)
        except V.VoicemailError:
            return None

    async def to_voicemail(
        self, s: Call, box: str, *, answered: bool, lang: str = "en", after_hours: bool = False
    ) -> bool:
        b = await self.voicemail_box(box)
        if b is None:
            call_log(log, s).warning("no mailbox %s", box)
            return False
        vm = VoicemailCall(self, s, b, lang=lang, after_hours=after_hours)
        self._take(s, vm)
        await vm.start(answered=answered)
        return True

    async def to_queue(self, s: Call, queue: str, lang: str | None = None) -> bool:
        """An answered caller (the IVR) into an ACD queue, in the call's language."""
        live = self._acd()
        if live is None or not live.accepts(queue):
            return False
        self.forget(s)
        await live.enter_queue(s, queue, answered=True, lang=lang, via="ivr")  # in the language chosen
        return True
