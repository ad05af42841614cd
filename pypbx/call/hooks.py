"""The seams through which :class:`~pypbx.call.CallManager` lets the feature services
take part in a call (set by the app). The call layer depends on these protocols only,
never on the services' modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from media import protocol as P
from pypbx.calllog import CallerKind, CallExtras, Direction, Disposition
from sip.message import Request
from sip.proxy import RouteDecision
from sip.transaction import Addr

if TYPE_CHECKING:
    from pypbx.call.flow import Flow
    from pypbx.call.manager import CallManager
    from pypbx.call.session import Call
    from pypbx.trunks import TrunkCall, TrunkService


class TrunkHooks(Protocol):
    """Trunks (:class:`pypbx.trunks.TrunkRouter`): DIDs, outside calls, failover."""

    #: the trunks themselves (the flows' outside legs: candidates, busy counts, credentials)
    svc: TrunkService

    def route_worker_leg(self, request: Request) -> RouteDecision | None: ...

    def screen(
        self, request: Request, source: Addr, user: str | None
    ) -> RouteDecision | tuple[tuple[str, str], ...]: ...

    def context(self, s: Call, ev: P.Incoming) -> tuple[TrunkCall, Direction, str, CallExtras] | None:
        """(trunk context, direction, callee number, other offer fields) of a trunk call."""
        ...

    async def start(self, cm: CallManager, s: Call, ev: P.Incoming) -> bool: ...

    async def on_ended(self, cm: CallManager, s: Call, ev: P.Ended) -> bool: ...

    def finished(self, s: Call) -> None: ...


class AcdHooks(Protocol):
    """The live ACD (:class:`pypbx.acdlive.AcdLive`): queue numbers, feature codes, agents."""

    def route(self, request: Request) -> RouteDecision | None: ...

    async def on_incoming(self, s: Call, ev: P.Incoming) -> bool: ...

    def call_finished(self, s: Call, disposition: Disposition, side: str) -> None: ...

    def call_transferred(self, s: Call, side: str, frm: str, to: str) -> None: ...

    def agent_at(self, extension: str) -> str | None: ...

    def has_queue(self, queue: str) -> bool: ...

    def accepts(self, queue: str) -> bool: ...

    async def enter_queue(
        self, s: Call, queue: str, *, answered: bool = False, lang: str | None = None, via: str = ""
    ) -> Flow: ...


class FrontLineHooks(Protocol):
    """The front line (:class:`pypbx.frontline.FrontLine`): IVR, voicemail, survey, callers."""

    async def on_incoming(self, s: Call, ev: P.Incoming) -> bool: ...

    async def start_destination(self, s: Call, dest: str, *, answered: bool = False) -> bool: ...

    async def unanswered(self, s: Call, why: str) -> bool: ...

    async def callee_left(self, s: Call) -> bool: ...

    async def call_finished(self, s: Call, disposition: Disposition, side: str) -> None: ...

    async def ask_crm(self, s: Call) -> None:
        """An inbound caller at arrival: ask the clinic's system (pypbx.crm) who it is."""
        ...

    async def caller_kind(self, number: str) -> CallerKind | None:
        """An inbound caller at arrival: patient / known number / new (None: lookup failed)."""
        ...

    async def dtmf(self, s: Call, leg: str, digit: str) -> None:
        """A digit on a call the manager owns (answered, no flow): the agent's in-call codes."""
        ...


class GroupHooks(Protocol):
    """Ring groups (:class:`pypbx.groups.GroupService`): their ring legs."""

    def route(self, request: Request) -> RouteDecision | None: ...
