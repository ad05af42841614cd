"""One call as the call layer sees it: :class:`Call` (its worker, legs, record, hold and
transfer state) and the :class:`Transfer` in progress in it.

A :class:`Call` is owned by :class:`pypbx.call.CallManager`; flows read its state and act
on it through the manager's call-control API. Which flow drives the call
(:attr:`Call.flow`) is changed only by :meth:`CallManager.hand_over` /
:meth:`CallManager.hand_back`.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from media.client import WorkerClient
from pypbx.calllog import CallRecord
from sip.message import URI

if TYPE_CHECKING:
    from pypbx.call.flow import CallInput, Flow
    from pypbx.trunks import TrunkCall


class TransferKind(str, enum.Enum):
    BLIND = "blind"
    ATTENDED = "attended"


class CallState(str, enum.Enum):
    """What ``pypbx status`` shows for a live call."""

    RINGING = "ringing"
    TALKING = "talking"
    HELD = "held"
    TRANSFERRING = "transferring"


#: One transfer in the call's trail (``transferred`` call events, the recording's sidecar):
#: type, side, from, to, at, target, joined_call, role.
TransferEntry = dict[str, str | float | None]


@dataclass
class Transfer:
    """A transfer in progress in one call (REFER accepted, new leg not answered yet)."""

    kind: TransferKind
    transferor: str  # leg whose phone sent the REFER
    remaining: str  # the party being transferred
    new_leg: str  # the call pjsua places to the target
    target: str  # Refer-To URI (without headers)
    replaces: str | None = None
    transferor_gone: bool = False
    joined: Call | None = None  # attended: the call owning the Replaces dialog
    joined_party: str = ""  # attended: who the remaining party will talk to


@dataclass(eq=False)
class Call:
    """One call anchored in one media worker (a phone's call, a callback, a click-to-call)."""

    worker: WorkerClient
    reserved_at: float
    caller: str = ""
    callee: str = ""
    rec: CallRecord | None = None
    caller_leg: str | None = None
    callee_leg: str | None = None
    answered: bool = False
    ended: bool = False
    queue: asyncio.Queue[CallInput] = field(default_factory=asyncio.Queue)
    files: dict[str, str] = field(default_factory=dict)
    record_prefix: Path | None = None
    ring_deadline: float | None = None
    # hold / transfer state
    call_ids: dict[str, str] = field(default_factory=dict)  # leg -> SIP Call-ID (as phones see it)
    held: set[str] = field(default_factory=set)  # legs whose phone holds the call
    moh: set[str] = field(default_factory=set)  # legs hearing music on hold
    bridged: tuple[str, str] | None = None
    xfer: Transfer | None = None
    transfers: list[TransferEntry] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)  # legs no longer part of the call
    pending_replace: dict[str, str] = field(default_factory=dict)  # new leg -> replaced leg
    relay: bool = False  # record closed (attended transfer): only carries audio now
    joined_from: Call | None = None
    record_t0: float | None = None
    segments: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # side -> [(file, offset s)]
    stopped_files: set[str] = field(default_factory=set)
    trunk: TrunkCall | None = None  # an inbound (DID) or outside call (pypbx.trunks)
    screen_pop: str | None = None  # the ringing phone's From display (pypbx.screenpop), once per call
    route_prefer: tuple[str | None, float] | None = None  # routing rule --prefer-last (agent, seconds)
    priority: int = 0  # the urgent line: the highest queue priority a route rule or IVR option gave
    language: str | None = None  # the caller's language the clinic's system knows (pypbx.crm)
    ivr_choices: list[tuple[str, str]] | None = None
    # the PBX itself ends the call (CallManager.end_call: "rtp timeout", "max duration"):
    # the cause booked whoever's leg goes first, and when to stop waiting for the legs
    end_cause: str | None = None
    end_deadline: float | None = None  # (menu, keys) chosen in IVRs, for routing rules
    # the flow driving the call (None: the manager's own two-party logic); set only by
    # CallManager.hand_over / hand_back
    _flow: Flow | None = field(default=None, repr=False)

    @property
    def flow(self) -> Flow | None:
        """The flow that receives this call's events (queue call, IVR, voicemail...)."""
        return self._flow

    @property
    def record(self) -> CallRecord:
        """The call's record (for flows: a call is handed over only once it has one)."""
        if self.rec is None:
            raise RuntimeError("the call has no record yet")
        return self.rec

    @property
    def state(self) -> CallState:
        if not self.answered:
            return CallState.RINGING
        if self.xfer is not None:
            return CallState.TRANSFERRING
        return CallState.HELD if self.held else CallState.TALKING

    def side_of(self, leg: str | None) -> str:
        """``"caller"`` for the caller's leg, else ``"callee"``."""
        return "caller" if leg == self.caller_leg else "callee"


def user_of(uri_text: str) -> str:
    """The user part of a SIP URI or name-addr (``"Bob" <sip:1001@h>`` -> ``1001``); "" if none."""
    text = uri_text.strip()
    if "<" in text:
        text = text[text.index("<") + 1 : text.index(">")] if ">" in text else text[text.index("<") + 1 :]
    try:
        return URI.parse(text).user or ""
    except Exception:
        return ""
