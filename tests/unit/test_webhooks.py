"""Call-event webhooks (pypbx.webhooks + the outbox's ``hook`` channel), against a real local
HTTP server: the stream's events become outbox rows with the call record's figures; deliveries
to one endpoint go in order, a failing one holds back the rest and is retried with backoff on
an injected clock; signatures verify; the failing episode is one error line; the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from pypbx import events as E
from pypbx import notify as N
from pypbx import webhooks as W
from pypbx.config import NotifyConfig
from pypbx.db import open_db
from pypbx.errors import PbxUsageError
from tests.unit.test_notify import Clock, WebhookServer, run


@pytest.fixture
def server():
    s = WebhookServer()
    yield s
    s.close()


def test_signature_verifies_and_refuses_replays_and_tampering() -> None:
    b = b'{"event": "call.ended"}'
    sig = W.sign("s3cret", 1_800_000_000, b)
    assert W.verify("s3cret", "1800000000", b, sig, now=1_800_000_100)
    assert not W.verify("s3cret", "1800000000", b, sig, now=1_800_000_400)  # 400 s old: a replay
    assert not W.verify("s3cret", "1800000000", b + b" ", sig, now=1_800_000_000)
    assert not W.verify("other", "1800000000", b, sig, now=1_800_000_000)
    assert not W.verify("s3cret", "soon", b, sig, now=1_800_000_000)


def test_event_names_are_checked() -> None:
    assert W.parse_events("call.ended, call.missed") == ["call.ended", "call.missed"]
    assert W.parse_events("all") == list(W.EVENTS)
    with pytest.raises(PbxUsageError, match=r"unknown webhook event .call\.endd. .*did you mean call\.ended"):
        W.parse_events("call.endd")
    with pytest.raises(W.WebhookError, match="name at least one"):
        W.parse_events(" , ")


def _record(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "c1",
        "direction": "inbound",
        "caller_number": "+33612345679",
        "caller_name": "",
        "callee_number": "+33144556677",
        "did": "+33144556677",
        "service_line": "Appointments",
        "queue": "front",
        "agent": None,
        "extension": None,
        "offered_at": 100.0,
        "answered_at": None,
        "ended_at": None,
        "ring_seconds": None,
        "talk_seconds": None,
        "disposition": "in_progress",
        "caller_kind": "patient",
    }
    return {**base, **kw}


def test_call_events_become_ordered_signed_deliveries_with_the_records_figures(tmp_path: Path, server) -> None:
    clock = Clock()

    async def go() -> None:
        async with open_db(tmp_path / "pypbx.db", "FR") as db:
            await db.upsert_patient_rows([("+33612345679", "Marie Dupont", "P-1042")], 1.0)
            hook = await W.add(db, server.url, "call.ringing,call.answered,call.ended", "s3cret", clock)
            other = await W.add(db, server.url + "/missed", "call.missed", "", clock)
            n = N.Notifier(db, NotifyConfig(timeout=5.0, retry_first=30.0), clock=clock)
            hooks = W.Webhooks(db, n.enqueue_hooks, "FR")
            await hooks.on_event(
                E.CallOffered(call_id="c1", direction=E.Direction.INBOUND, caller="x", callee="y", record=_record())
            )
            await hooks.on_event(E.CallRinging(call_id="c1", callee="1001"))
            await hooks.on_event(
                E.CallAnswered(call_id="c1", record=_record(answered_at=104.0, agent="alice", ring_seconds=4.0))
            )
            end = _record(
                answered_at=104.0,
                ended_at=164.5,
                agent="alice",
                ring_seconds=4.0,
                talk_seconds=60.5,
                disposition="answered",
            )
            await hooks.on_event(
                E.CallEnded(call_id="c1", disposition=E.Disposition.ANSWERED, side="caller", cause="BYE", record=end)
            )
            assert hooks._calls == {}  # nothing kept per call once it ended
            # the endpoint fails three times: the first delivery is retried, the others wait
            server.code = 500
            for _ in range(3):
                await n.run_due()
                clock.t += 3600
            assert [json.loads(r["body"])["event"] for r in server.requests] == ["call.ringing"] * 3
            [h] = [x for x in await W.list_hooks(db) if x["id"] == hook["id"]]
            assert h["failing_since"] is not None and h["last_error"].startswith("HTTP 500")
            server.code = 200
            await n.run_due()
            [h] = [x for x in await W.list_hooks(db) if x["id"] == hook["id"]]
            assert h["failing_since"] is None and h["last_ok_at"] == clock.t
            assert other["id"] not in {int(r["target"]) for r in await db.list_notification_rows()}

    with_log = logging.getLogger("pypbx.notify")
    with_log.setLevel(logging.INFO)
    run(go())
    got = [(json.loads(r["body"]), r["headers"]) for r in server.requests[3:]]
    assert [b["event"] for b, _ in got] == ["call.ringing", "call.answered", "call.ended"]
    first = server.requests[0]["headers"]
    assert first["X-Pypbx-Delivery"] == server.requests[3]["headers"]["X-Pypbx-Delivery"]  # the same delivery
    for b, h in got:
        raw = json.dumps(b, sort_keys=True).encode()
        assert W.verify(
            "s3cret", h["X-Pypbx-Timestamp"], raw, h["X-Pypbx-Signature"], now=float(h["X-Pypbx-Timestamp"])
        )
        assert h["X-Pypbx-Event"] == b["event"] and int(h["X-Pypbx-Delivery"]) == b["delivery_id"]
    ringing, _answered, ended = (b["data"] for b, _ in got)
    assert ringing["ringing"] == "1001" and ringing["queue"] == "front"
    assert ringing["caller"] == {"e164": "+33612345679", "national": "06 12 34 56 79"}
    assert ended["patient_id"] == "P-1042" and ended["caller_kind"] == "patient"
    assert (ended["disposition"], ended["agent"], ended["wait_seconds"], ended["talk_seconds"]) == (
        "answered",
        "alice",
        4.0,
        60.5,
    )
    assert ended["did"] == {"e164": "+33144556677", "national": "01 44 55 66 77"} and ended["recording"] == "c1"


def test_the_failing_episode_is_one_error_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port('tcp')}/hook"

    async def go() -> None:
        async with open_db(tmp_path / "pypbx.db", "FR") as db:
            await W.add(db, dead, "agent.state", "", clock)
            n = N.Notifier(db, NotifyConfig(timeout=2.0), clock=clock)
            hooks = W.Webhooks(db, n.enqueue_hooks, "FR")
            for _ in range(3):
                await hooks.on_event(E.AgentStateChanged(agent="alice", queue="front", change=E.AgentChange.PAUSE))
            for _ in range(4):
                await n.run_due()
                clock.t += 3600
            rows = await db.list_notification_rows()
            assert sorted((r["status"], r["attempts"]) for r in rows) == [
                ("pending", 0),
                ("pending", 0),
                ("pending", 4),
            ]

    caplog.set_level(logging.INFO, "pypbx.notify")
    run(go())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"webhook 1 ({dead}) is failing: cannot reach")


def test_cli_add_list_test_log_remove(tmp_path: Path, make_config, server) -> None:
    from cli import cli

    cfg = make_config()
    r = CliRunner()

    def pypbx(*args: str, code: int = 0) -> str:
        res = r.invoke(cli, [*args, "--config", str(cfg)])
        assert res.exit_code == code, res.output
        return res.output

    added = json.loads(
        pypbx("webhook", "add", server.url, "--events", "call.ended,call.missed", "--secret", "k", "--json")
    )
    assert added["events"] == ["call.ended", "call.missed"] and added["signed"] is True
    assert "Error: unknown webhook event 'call.endd'" in pypbx(
        "webhook", "add", server.url, "--events", "call.endd", code=2
    )
    assert "Error: bad URL 'ftp://x': expected an http:// or https:// address" in pypbx(
        "webhook", "add", "ftp://x", "--events", "all", code=2
    )
    assert "ok" in pypbx("webhook", "list")
    assert pypbx("webhook", "test", "1") == "Webhook 1: delivered (HTTP 200).\n"
    h = server.requests[-1]["headers"]
    assert h["X-Pypbx-Event"] == "webhook.test"
    assert W.verify(
        "k",
        h["X-Pypbx-Timestamp"],
        server.requests[-1]["body"],
        h["X-Pypbx-Signature"],
        now=float(h["X-Pypbx-Timestamp"]),
    )
    assert pypbx("webhook", "log", "1") == "Webhook 1 has sent nothing yet.\n"
    assert "Error: unknown webhook '9' (valid: 1)" in pypbx("webhook", "test", "9", code=2)
    pypbx("webhook", "remove", "1")
    assert json.loads(pypbx("webhook", "list", "--json")) == []
