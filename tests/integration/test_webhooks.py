"""Issue 14, call-event webhooks, end to end: a real ``pypbx run``, sipp phones, and a small
HTTP receiver (the clinic's other system) that checks nothing itself — the test reads what it
got. The receiver answers 500 to the first three POSTs, then 200; the PBX is stopped and
started again in between. A queue call answered by alice's sipp phone then gives
call.ringing → call.answered → call.ended, each delivered once (by a 200), in order, with a
valid signature and the call record's figures; a caller who gives up gives call.ended
(abandoned) and call.missed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pypbx import webhooks as W
from tests.integration.harness import PbxProcess
from tests.integration.test_frontline_e2e import ok, pause, provider_dials
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, records, setup_queue
from tests.integration.test_trunks import PROVIDER
from tests.unit.test_notify import WebhookServer

pytestmark = pytest.mark.slow

SECRET = "a-long-random-string"
DID = "0144556677"
PATIENT = "+33612345679"


class FlakyReceiver(WebhookServer):
    """Answers 500 to the first ``fail`` POSTs, then 200."""

    def __init__(self, fail: int) -> None:
        super().__init__(code=500)
        self.fail = fail

    def answered(self) -> list[dict[str, Any]]:
        """The POSTs that got a 200 (the first ``fail`` did not)."""
        return self.requests[self.fail :]


def test_call_events_arrive_once_in_order_signed_across_a_restart(tmp_path: Path) -> None:
    rx = FlakyReceiver(fail=3)
    orig = rx.httpd.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def do_post(handler: Any) -> None:
        rx.code = 500 if len(rx.requests) < rx.fail else 200
        orig(handler)

    rx.httpd.RequestHandlerClass.do_POST = do_post  # type: ignore[attr-defined]
    p = PbxProcess(tmp_path / "pbx", security={"exempt": ["127.0.0.1"]}, notify={"retry_first": 1.0})
    p.add_extensions(["1001", "1009"], PASSWORD)
    try:
        p.cli(
            "webhook",
            "add",
            rx.url,
            "--events",
            "call.ringing,call.answered,call.ended,call.missed",
            "--secret",
            SECRET,
        )
        setup_queue(p, agents=("alice",))
        p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
        p.cli("did", "add", DID, "--to", "queue:front")
        p.start()
        Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=300)
        login(p, "alice", "1001")
        res = caller(p, tmp_path / "c1", stay_ms=2000, frm="1009")
        assert res.returncode == 0, res.errors or res.stdout[-2000:]
        [answered] = records(p, 1)
        # the first delivery failed three times (1 s, 2 s apart): stop the PBX with it pending
        p.wait_for(lambda: len(rx.requests) >= 3 or None, 20, "three failed attempts")
        p.stop()
        assert len(rx.requests) == 3 and {json.loads(r["body"])["event"] for r in rx.requests} == {"call.ringing"}
        p.start()
        p.wait_for(lambda: len(rx.answered()) >= 3 or None, 20, "the backlog delivered after the restart")
        # a patient calling through the provider gives up (nobody logged in): call.missed
        p.cli("agent", "logout", "alice")
        res = provider_dials(p, tmp_path / "c2", DID, pause(6500), caller=PATIENT)  # not a short abandon (< 5 s)
        assert ok(res), res.errors or res.stdout[-2000:]
        try:
            p.wait_for(lambda: len(rx.answered()) >= 5 or None, 20, "call.ended and call.missed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {[json.loads(r['body'])['event'] for r in rx.answered()]}") from None
    finally:
        p.stop()
        rx.close()
    assert "Traceback" not in p.log(), p.log()[-4000:]
    got = rx.answered()
    bodies = [json.loads(r["body"]) for r in got]
    assert [b["event"] for b in bodies] == ["call.ringing", "call.answered", "call.ended", "call.ended", "call.missed"]
    assert len({b["delivery_id"] for b in bodies}) == 5  # each once
    assert rx.requests[0]["headers"]["X-Pypbx-Delivery"] == got[0]["headers"]["X-Pypbx-Delivery"]  # retried, same id
    for r in got:
        h = r["headers"]
        assert W.verify(
            SECRET, h["X-Pypbx-Timestamp"], r["body"], h["X-Pypbx-Signature"], now=float(h["X-Pypbx-Timestamp"])
        )
    ended = bodies[2]["data"]
    assert ended["id"] == answered["id"]
    for key, rec_key in (
        ("disposition", "disposition"),
        ("agent", "agent"),
        ("queue", "queue"),
        ("talk_seconds", "talk_seconds"),
        ("wait_seconds", "ring_seconds"),
        ("offered_at", "offered_at"),
        ("answered_at", "answered_at"),
        ("ended_at", "ended_at"),
    ):
        assert ended[key] == answered[rec_key], (key, ended[key], answered[rec_key])
    assert bodies[3]["data"]["disposition"] == "abandoned_queue"
    missed = bodies[4]["data"]
    assert missed["number"] == {"e164": PATIENT, "national": "06 12 34 56 79"} and missed["queue"] == "front"
    p.check_events()
