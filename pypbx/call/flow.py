"""The one small protocol every call flow implements, and the closed union of what a
flow is fed.

A *flow* (queue call, IVR menu, voicemail, mailbox, survey, ring group, feature code,
callback, click-to-call, trunk routing) drives a :class:`~pypbx.call.Call` after
:meth:`CallManager.hand_over` gave it the call: from then on every input of the call —
media worker events, its own timers, shutdown, ACD orders — reaches :meth:`Flow.handle`
in order, on the call's own task, so a call's steps never interleave. A flow acts on the
call only through the manager's public call-control API and hands the call on with
``hand_over`` (another flow) or ``hand_back`` (the manager's own two-party logic).

The manager tells the call's flows how the call ended (:meth:`Flow.finished`) and that a
party was transferred away (:meth:`Flow.transferred`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from acd.model import Announce, CancelRing, Connect, ExitEmpty, ExitFull, Overflow, RingAgents, Timeout
from media import protocol as P
from media.client import WorkerExited
from media.pool import WorkerLost
from pypbx.calllog import Disposition


@dataclass(frozen=True)
class Tick:
    """A flow's own timer fired (:class:`pypbx.flows.base.TimedFlow`); ``gen`` tells a
    stale tick from the current one."""

    gen: int


@dataclass(frozen=True)
class Shutdown:
    """Queued into every call when the PBX stops."""


@dataclass(frozen=True)
class Closing:
    """Posted by the ACD to a queued call when the PBX stops (the caller is kept as a
    callback slot)."""


@dataclass(frozen=True)
class RingOrder:
    """The ACD's order to ring agents for a queued call: one leg to ``acd-<token>``
    (``ring`` is the engine's :class:`acd.model.RingAgents`)."""

    token: str
    ring: RingAgents


#: Media worker events a call receives.
WorkerEvent = (
    P.Incoming
    | P.Ringing
    | P.Answered
    | P.Dtmf
    | P.PlaybackFinished
    | P.Ended
    | P.RecordStopped
    | P.Held
    | P.Unheld
    | P.TransferRequested
    | P.Replaced
    | P.Error
    | P.MediaTimeout
)
#: The worker of the call is gone.
WorkerGone = WorkerLost | WorkerExited
#: The ACD engine's orders about a queued call (:mod:`pypbx.acdlive`).
AcdOrder = RingOrder | CancelRing | Connect | Announce | Overflow | Timeout | ExitEmpty | ExitFull | Closing
#: Everything a call (and so its flow) is fed: one closed union.
CallInput = WorkerEvent | WorkerGone | Tick | Shutdown | AcdOrder


@runtime_checkable
class Flow(Protocol):
    """What drives a call after :meth:`CallManager.hand_over`.

    * ``start()``: take the call (answer, play, originate...); called once by whoever
      handed the call over, right after ``hand_over``;
    * ``handle(ev)``: one input of the call (see :data:`CallInput`);
    * ``finished(disposition, side)``: the call's record was closed by
      :meth:`CallManager.finish` (``side``: "caller" / "callee" / "system" / "agent");
    * ``transferred(side, frm, to)``: the manager completed a transfer in this call:
      ``side``'s party ``frm`` handed its place to ``to``.
    """

    async def start(self) -> object: ...

    async def handle(self, ev: CallInput) -> None: ...

    def finished(self, disposition: Disposition, side: str) -> None: ...

    def transferred(self, side: str, frm: str, to: str) -> None: ...


class FlowBase:
    """No-op ``finished`` / ``transferred`` for flows that do not care."""

    def finished(self, disposition: Disposition, side: str) -> None:
        return None

    def transferred(self, side: str, frm: str, to: str) -> None:
        return None
