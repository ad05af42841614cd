"""pypbx ACD: pure, clock-injected queueing logic (no I/O) shared by the live PBX and
the simulator.

* :mod:`acd.model` -- agents, queue config, callers, Actions, QueueEvents
* :mod:`acd.engine` -- :class:`AcdEngine`, the sans-I/O state machine
* :mod:`acd.estimator` -- :class:`WaitEstimator` and the Asterisk baseline
* :mod:`acd.erlang` -- Erlang B/C staffing arithmetic
* :mod:`acd.simulator` -- ``simulate``, ``PRESETS``, ``clinic_day``, ``format_report``
"""

from .engine import AcdEngine
from .estimator import AsteriskHoldtime, WaitEstimator, asterisk_holdtime
from .model import (
    CALLER_OUTCOMES,
    Agent,
    AgentState,
    Caller,
    EventKind,
    JoinEmpty,
    OverflowRule,
    Party,
    PauseReason,
    QueueConfig,
    QueueEvent,
    Relaxation,
    Strategy,
    Target,
    TargetKind,
)
from .simulator import PRESETS, SimConfig, SimReport, clinic_day, format_report, simulate

__all__ = [
    "CALLER_OUTCOMES",
    "PRESETS",
    "AcdEngine",
    "Agent",
    "AgentState",
    "AsteriskHoldtime",
    "Caller",
    "EventKind",
    "JoinEmpty",
    "OverflowRule",
    "Party",
    "PauseReason",
    "QueueConfig",
    "QueueEvent",
    "Relaxation",
    "SimConfig",
    "SimReport",
    "Strategy",
    "Target",
    "TargetKind",
    "WaitEstimator",
    "asterisk_holdtime",
    "clinic_day",
    "format_report",
    "simulate",
]
