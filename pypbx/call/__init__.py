"""The call layer: one owner per call.

* :class:`CallManager` owns every live :class:`Call` (one per media worker) and is the one
  door to act on a call: the public call-control API (``answer``, ``originate``, ``play``,
  ``stop_play``, ``bridge``/``unbridge``, ``connect``, ``record``/``stop_record``,
  ``send_dtmf``, ``hold``/``unhold``, ``hangup``, ``finish``, ``close_recording``,
  ``worker_lost``, ``spawn``) and :meth:`CallManager.hand_over` / ``hand_back``, the only
  place a call changes hands;
* every flow implements :class:`Flow` and is fed :data:`CallInput`, one closed union.
"""

from pypbx.call.flow import (
    AcdOrder,
    CallInput,
    Closing,
    Flow,
    FlowBase,
    RingOrder,
    Shutdown,
    Tick,
    WorkerEvent,
    WorkerGone,
)
from pypbx.call.manager import DEFAULT_MOH, RESERVATION_TIMEOUT, CallManager, NoMediaWorker
from pypbx.call.session import Call, CallState, Transfer, TransferKind, user_of

__all__ = [
    "DEFAULT_MOH",
    "RESERVATION_TIMEOUT",
    "AcdOrder",
    "Call",
    "CallInput",
    "CallManager",
    "CallState",
    "Closing",
    "Flow",
    "FlowBase",
    "NoMediaWorker",
    "RingOrder",
    "Shutdown",
    "Tick",
    "Transfer",
    "TransferKind",
    "WorkerEvent",
    "WorkerGone",
    "user_of",
]
