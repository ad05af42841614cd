"""What the timed flows (IVR menu, ring group, survey) share: one timer per call.

A flow's timeouts come back through the call's own input queue as
:class:`~pypbx.call.Tick` events, so a call's steps never interleave. Each ``_arm`` or
``_disarm`` moves the generation on, so a tick from an older timer is recognisably stale.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pypbx.call.flow import FlowBase, Tick

if TYPE_CHECKING:
    from pypbx.call.manager import CallManager
    from pypbx.call.session import Call


class TimedFlow(FlowBase):
    s: Call  # the call (its .queue receives the ticks)
    cm: CallManager
    gen: int = 0
    _timer: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self.s.queue.put_nowait, Tick(self.gen))

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.gen += 1

    def _current(self, ev: object) -> bool:
        """``ev`` is the tick of the timer armed last."""
        return isinstance(ev, Tick) and ev.gen == self.gen

    async def event(self, kind: str, **detail: object) -> None:
        await self.cm.event(self.s, kind, **detail)
