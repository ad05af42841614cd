"""The call layer's rules (issue 9): one owner per call, flows behind one protocol, one
closed union of inputs, the call id in log lines."""

from __future__ import annotations

import logging
import re
import typing
from pathlib import Path

import pytest

from media import protocol as P
from pypbx.call import (
    CallInput,
    CallManager,
    Flow,
    FlowBase,
    Shutdown,
    Tick,
    WorkerEvent,
)
from pypbx.flows.callback import CallbackCall
from pypbx.flows.features import FeatureCall
from pypbx.flows.group import GroupCall
from pypbx.flows.ivr import IvrCall
from pypbx.flows.queue import QueueCall
from pypbx.flows.survey import SurveyCall
from pypbx.flows.voicemail import MailboxCall, VoicemailCall
from pypbx.logs import call_log
from pypbx.trunks import ClickToCall

ROOT = Path(__file__).resolve().parents[2]
PYPBX = ROOT / "pypbx"


def _sources() -> dict[Path, str]:
    return {p: p.read_text() for p in PYPBX.rglob("*.py")}


def test_only_the_manager_sets_the_flow_of_a_call() -> None:
    setters = sorted(
        str(p.relative_to(ROOT)) for p, text in _sources().items() if re.search(r"\.(_flow|delegate)\s*=[^=]", text)
    )
    assert setters == ["pypbx/call/manager.py"]


def test_no_private_call_manager_member_is_used_outside_the_call_layer() -> None:
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p, text in _sources().items()
        if "call" not in p.relative_to(PYPBX).parts[:1]
        for m in re.finditer(r"\bcm\._[a-z]\w*|\._hangup_quietly\b", text)
    ]
    assert hits == []


def test_only_the_call_layer_commands_a_calls_worker() -> None:
    """Flows act on a call through CallManager's API (answer, originate, play, hangup ...),
    never by sending the media worker a command themselves."""
    cmd = r"\.(worker|w)\.(answer|hangup|play|stop|originate|bridge|unbridge|record|stop_record|send_dtmf)\("
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p, text in _sources().items()
        if "call" not in p.relative_to(PYPBX).parts[:1]
        for m in re.finditer(cmd, text)
    ]
    assert hits == []


def test_only_the_call_layer_takes_media_workers_and_registers_calls() -> None:
    """A call the PBX places itself goes through CallManager.place: nobody else takes a
    worker from the pool or writes the manager's table of calls."""
    pattern = r"\.pool\.(try_acquire|acquire|release)\(|\b(callmgr|cm)\.sessions\b"
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p, text in _sources().items()
        if "call" not in p.relative_to(PYPBX).parts[:1]
        for m in re.finditer(pattern, text)
    ]
    assert hits == []


def test_every_flow_implements_the_protocol() -> None:
    for cls in (
        IvrCall,
        VoicemailCall,
        MailboxCall,
        SurveyCall,
        GroupCall,
        ClickToCall,
        QueueCall,
        FeatureCall,
        CallbackCall,
    ):
        for name in ("start", "handle", "finished", "transferred"):
            assert callable(getattr(cls, name, None)), (cls.__name__, name)
        assert issubclass(cls, FlowBase), cls.__name__


def test_call_input_is_one_closed_union_of_every_call_event() -> None:
    members = set(typing.get_args(CallInput))
    call_events = {c for c in P.EVENTS.values() if c is not P.Ready}  # Ready: a worker's, not a call's
    assert call_events <= set(typing.get_args(WorkerEvent)) <= members
    assert {Tick, Shutdown} <= members
    assert all(isinstance(m, type) for m in members)


def test_hand_over_and_hand_back() -> None:
    class _Flow(FlowBase):
        async def start(self) -> None:
            return None

        async def handle(self, ev: CallInput) -> None:
            return None

    from pypbx.call import Call

    call = Call(worker=None, reserved_at=0.0)  # type: ignore[arg-type]
    cm = CallManager.__new__(CallManager)
    flow = _Flow()
    assert isinstance(flow, Flow)
    cm.hand_over(call, flow)
    assert call.flow is flow
    cm.hand_back(call)
    assert call.flow is None


def test_call_log_prefixes_the_call_id(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("pypbx.test_call_layer")
    with caplog.at_level(logging.INFO, logger=log.name):
        call_log(log, "0123456789abcdef").info("bridge %s-%s failed", "in-1", "callee")
        call_log(log, None).info("no call yet")
    assert [r.getMessage() for r in caplog.records] == ["call 0123456789ab: bridge in-1-callee failed", "no call yet"]
    assert caplog.records[0].call_id == "0123456789abcdef"  # type: ignore[attr-defined]
