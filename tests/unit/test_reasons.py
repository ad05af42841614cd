"""Knowing who calls and why (issue 10): the caller's kind at arrival, reason codes (store,
CLI, the agent's in-call ``*7N``, the wrap-up ``*7N`` call, the local API path, the
notification), the callers and reasons reports (figures computed by hand) and the unhappy
survey's recorded comment."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from media import protocol as P
from pypbx import callers as C
from pypbx import reasons as R
from pypbx import reports
from pypbx import survey as Sv
from pypbx.calllog import CallerKind, CallLog, Direction, Disposition
from pypbx.config import NotifyConfig
from pypbx.db import open_db
from pypbx.events import EventBus, ReasonSet
from pypbx.flows.player import PROMPTS_DIR
from pypbx.notify import Notifier, build_email
from tests.unit._frontline_env import Env, plays, pr, press, settle

CONFIRM = str(PROMPTS_DIR / R.CONFIRM_TONE)
ERROR = str(PROMPTS_DIR / R.ERROR_TONE)
DAY = dt.datetime(2026, 11, 23, 0, 0).timestamp()


def run(coro):
    return asyncio.run(coro)


# --------------------------------------------------------------------------- caller kind


def test_caller_kind_patient_known_number_or_new(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            await C.import_csv(
                db, "number,name,patient_id\n0612345679,Marie Dupont,P-1\n0611111111,Jean,\n", clock=lambda: 5.0
            )
            assert await C.caller_kind(db, "0612345679") is CallerKind.PATIENT
            assert await C.caller_kind(db, "0611111111") is CallerKind.KNOWN  # on the list, no id
            assert await C.caller_kind(db, "0699999999") is CallerKind.NEW
            assert await C.caller_kind(db, "") is CallerKind.NEW
            await C.call_ended(db, "0699999999", "answered")  # called before: known from now on
            assert await C.caller_kind(db, "0699999999") is CallerKind.KNOWN
            assert CallerKind.KNOWN.returning and CallerKind.PATIENT.returning and not CallerKind.NEW.returning

    run(go())


def test_caller_kind_is_stored_on_the_call_row(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            log = CallLog(db, lambda: 10.0)
            rec = await log.offer(
                direction=Direction.INBOUND, caller_number="+33611", callee_number="200", caller_kind=CallerKind.NEW
            )
            await log.end(rec, Disposition.ANSWERED, side="caller")
            row = await db.get_call_row(rec.id)
            assert row["caller_kind"] == "new"

    run(go())


# --------------------------------------------------------------------------- the store


def test_reason_store_add_edit_list_remove(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            a = await R.add_reason(db, "Appointment", "  Book an   appointment ", digit="1")
            assert (a.code, a.label, a.digit) == ("appointment", "Book an appointment", "1")
            await R.add_reason(db, "complaint", "Complaint", digit="9", notify="boss@clinic.example; qa@clinic.example")
            with pytest.raises(R.ReasonError, match="digit 1 is reason appointment"):
                await R.add_reason(db, "results", "Results", digit="1")
            with pytest.raises(R.ReasonError, match="exists"):
                await R.add_reason(db, "complaint", "Again")
            for bad in (("bad code", "x", None, ""), ("ok", "", None, ""), ("ok", "x", "12", ""), ("ok", "x", "*", "")):
                with pytest.raises(R.ReasonError):
                    await R.add_reason(db, *bad)
            with pytest.raises(R.ReasonError, match="e-mail"):
                await R.add_reason(db, "ok", "x", notify="not-an-address")
            e = await R.edit_reason(db, "appointment", digit="2")
            assert (e.label, e.digit) == ("Book an appointment", "2")
            e = await R.edit_reason(db, "appointment", digit="")
            assert e.digit is None
            with pytest.raises(R.ReasonError, match="digit 9"):
                await R.edit_reason(db, "appointment", digit="9")
            got = [r.to_dict() for r in await R.list_reasons(db)]
            assert got == [
                {"code": "appointment", "label": "Book an appointment", "digit": None, "notify": [], "retired": False},
                {
                    "code": "complaint",
                    "label": "Complaint",
                    "digit": "9",
                    "notify": ["boss@clinic.example", "qa@clinic.example"],
                    "retired": False,
                },
            ]
            # unused: deleted; used: retired (cannot be set, digit free, history kept)
            assert await R.remove_reason(db, "appointment") == "deleted"
            log = CallLog(db, lambda: 10.0)
            rec = await log.offer(direction=Direction.INBOUND, caller_number="+3361", callee_number="200")
            await R.set_call_reason(db, None, rec.id, code="complaint", via=R.ReasonVia.API)
            assert await R.remove_reason(db, "complaint") == "retired"
            assert await R.list_reasons(db) == []
            assert [r.retired for r in await R.list_reasons(db, retired=True)] == [True]
            with pytest.raises(R.ReasonError, match="no reason complaint"):
                await R.set_call_reason(db, None, rec.id, code="complaint")
            await R.add_reason(db, "results", "Results", digit="9")  # the retired one's digit is free
            with pytest.raises(R.ReasonError, match="retired"):
                await R.add_reason(db, "complaint", "Complaint")
            with pytest.raises(R.ReasonError, match="no reason"):
                await R.remove_reason(db, "nothing")

    run(go())


def test_set_call_reason_books_event_and_prefix(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            bus = EventBus(clock=lambda: 20.0)
            log = CallLog(db, lambda: 10.0, bus=bus)
            seen: list[ReasonSet] = []

            async def writer(ev: ReasonSet) -> None:
                seen.append(ev)

            bus.add_writer(writer, ReasonSet)
            await R.add_reason(db, "complaint", "Complaint", digit="9", notify="boss@clinic.example")
            rec = await log.offer(
                direction=Direction.INBOUND,
                caller_number="+33612345679",
                callee_number="200",
                agent="alice",
                service_line="Appointments",
            )
            out = await R.set_call_reason(db, bus, rec.id[:10], digit="9", extension="1001", via=R.ReasonVia.PHONE)
            assert out == {
                "call_id": rec.id,
                "code": "complaint",
                "label": "Complaint",
                "agent": "alice",
                "via": "phone",
            }
            [ev] = seen
            assert (ev.call_id, ev.code, ev.notify, ev.caller, ev.service_line, ev.via) == (
                rec.id,
                "complaint",
                "boss@clinic.example",
                "+33612345679",
                "Appointments",
                "phone",
            )
            steps = [json.loads(e["detail"]) for e in await db.call_event_rows(rec.id) if e["kind"] == "reason"]
            assert steps == [
                {"code": "complaint", "label": "Complaint", "agent": "alice", "extension": "1001", "via": "phone"}
            ]
            with pytest.raises(R.ReasonError, match="no reason on digit 5"):
                await R.set_call_reason(db, bus, rec.id, digit="5")
            with pytest.raises(R.ReasonError, match="no call"):
                await R.set_call_reason(db, bus, "nope", code="complaint")

    run(go())


def test_a_reason_marked_to_notify_emails_through_the_outbox(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            n = Notifier(db, NotifyConfig(smtp_host="127.0.0.1", mail_from="pbx@clinic.example"), clock=lambda: 30.0)
            ev = ReasonSet(
                call_id="abc",
                code="complaint",
                label="Complaint",
                agent="alice",
                notify="boss@clinic.example,qa@clinic.example",
                caller="+33612345679",
                service_line="Appointments",
            )
            await n.reason_set(ev)
            rows = await db.due_notification_rows(31.0)
            assert sorted((r["kind"], r["channel"], r["target"]) for r in rows) == [
                ("reason", "email", "boss@clinic.example"),
                ("reason", "email", "qa@clinic.example"),
            ]
            msg = build_email(n.cfg, "boss@clinic.example", json.loads(rows[0]["payload"]))
            assert msg["Subject"] == "Call reason Complaint: +33612345679 (Appointments)"
            assert "Agent:         alice" in msg.get_content()
            await n.reason_set(ReasonSet(call_id="x", code="results", label="Results"))  # not marked: nothing
            assert len(await db.due_notification_rows(31.0)) == 2

    run(go())


# --------------------------------------------------------------------------- the CLI


def test_cli_reason_commands(invoke_cli, tmp_config):
    c = ("--config", str(tmp_config))
    r = invoke_cli("reason", "add", "appointment", "Appointment", "--digit", "1", *c)
    assert r.exit_code == 0 and "key *71" in r.output
    r = invoke_cli("reason", "add", "complaint", "Complaint", "--digit", "9", "--notify", "boss@clinic.example", *c)
    assert r.exit_code == 0
    r = invoke_cli("reason", "add", "other", "Other", "--digit", "1", *c)
    assert r.exit_code == 1 and r.output.strip() == "Error: digit 1 is reason appointment already"
    out = invoke_cli("reason", "list", *c).output
    assert "appointment  Appointment  *71" in out and "boss@clinic.example" in out
    r = invoke_cli("reason", "edit", "appointment", "--label", "Appointments", "--digit", "2", "--json", *c)
    assert json.loads(r.output)["digit"] == "2"
    assert [x["code"] for x in json.loads(invoke_cli("reason", "list", "--json", *c).output)] == [
        "appointment",
        "complaint",
    ]
    assert "deleted" in invoke_cli("reason", "remove", "appointment", *c).output
    r = invoke_cli("reason", "remove", "appointment", *c)
    assert r.exit_code == 2 and "unknown reason 'appointment'" in r.output  # issue 12: no such object = exit 2
    r = invoke_cli("reason", "set", "abc", "complaint", *c)
    assert r.exit_code == 1 and "not running" in r.output


# --------------------------------------------------------------------------- reports (by hand)


def _call(i: int, h: int, kind: str | None, disp: str = "answered", line: str | None = "Appointments", **kw) -> dict:
    return {
        "id": f"c{i}",
        "direction": kw.pop("direction", "inbound"),
        "caller_kind": kind,
        "service_line": line,
        "did": "+33100000000",
        "offered_at": DAY + h * 3600 + kw.pop("day", 0) * 86400,
        "disposition": disp,
        **kw,
    }


def test_callers_report_new_rate_per_day_and_line_and_routing_hits():
    calls = [
        _call(1, 9, "new"),
        _call(2, 9, "patient"),  # recognised, answered: a hit
        _call(3, 10, "patient", "abandoned_queue"),  # recognised, not answered
        _call(4, 10, "known", line="Results"),  # answered but not recognised (no smart routing on Results)
        _call(5, 11, "new", line="Results"),
        _call(6, 9, "known", day=1),  # recognised, answered: a hit
        _call(7, 9, "patient", "in_progress"),  # not counted: still going
        _call(8, 9, None),  # no kind recorded (before the migration): not counted
        _call(9, 9, None, direction="internal"),
    ]
    r = reports.build_callers(calls, {"c2", "c3", "c6", "c7"})
    assert r["total"] == {"calls": 6, "patient": 2, "known": 2, "new": 2, "new_rate": 0.333}
    assert r["days"] == {
        "2026-11-23": {"calls": 5, "patient": 2, "known": 1, "new": 2, "new_rate": 0.4},
        "2026-11-24": {"calls": 1, "patient": 0, "known": 1, "new": 0, "new_rate": 0.0},
    }
    assert r["lines"] == {
        "Appointments": {"calls": 4, "patient": 2, "known": 1, "new": 1, "new_rate": 0.25},
        "Results": {"calls": 2, "patient": 0, "known": 1, "new": 1, "new_rate": 0.5},
    }
    # returning: c2 c3 c4 c6 = 4; recognised c2 c3 c6 = 3; answered c2 c4 c6 = 3; both c2 c6 = 2
    assert r["routing"] == {"returning": 4, "recognised": 3, "answered": 3, "hits": 2, "hit_rate": 0.5}
    assert reports.build_callers([], set())["routing"]["hit_rate"] is None


def test_recognised_calls_from_the_routing_steps():
    steps = [
        {"call_id": "a", "kind": "caller_lookup", "detail": json.dumps({"known": True, "destination": "queue:q"})},
        {"call_id": "b", "kind": "caller_lookup", "detail": json.dumps({"known": False})},
        {"call_id": "c", "kind": "route", "detail": json.dumps({"known": True, "destination": "queue:returning"})},
        {"call_id": "d", "kind": "route", "detail": json.dumps({"known": True, "destination": None})},
        {"call_id": "e", "kind": "route", "detail": "not json"},
        {"call_id": "f", "kind": "caller_lookup", "detail": json.dumps({"known": True, "action": "queue:returning"})},
        {"call_id": "g", "kind": "caller_lookup", "detail": json.dumps({"known": True, "action": None})},  # greeting
    ]
    assert reports.recognised_calls(steps) == {"a", "c", "f"}  # type: ignore[arg-type]


def test_reasons_report_per_reason_day_line_agent():
    def row(i, code, h, line, agent, via="phone", day=0):
        return {
            "seq": i,
            "call_id": f"c{i}",
            "code": code,
            "agent": agent,
            "extension": "1001",
            "via": via,
            "set_at": DAY + h * 3600,
            "offered_at": DAY + h * 3600 + day * 86400,
            "service_line": line,
            "did": None,
            "queue": None,
            "call_agent": None,
        }

    rows = [
        row(1, "appointment", 9, "Appointments", "alice"),
        row(2, "appointment", 10, "Appointments", "bob", via="wrapup"),
        row(3, "complaint", 11, "Results", "alice", via="api"),
        row(4, "appointment", 9, None, None, day=1),
    ]
    r = reports.build_reasons(rows, {"appointment": "Appointment", "complaint": "Complaint"})  # type: ignore[arg-type]
    assert r["calls"] == 4
    assert r["reasons"] == [
        {"code": "appointment", "label": "Appointment", "calls": 3, "share": 0.75},
        {"code": "complaint", "label": "Complaint", "calls": 1, "share": 0.25},
    ]
    assert r["days"] == {"2026-11-23": {"appointment": 2, "complaint": 1}, "2026-11-24": {"appointment": 1}}
    assert r["lines"] == {
        "(no line)": {"appointment": 1},
        "Appointments": {"appointment": 2},
        "Results": {"complaint": 1},
    }
    assert r["agents"] == {
        "1001": {"appointment": 1},
        "alice": {"appointment": 1, "complaint": 1},
        "bob": {"appointment": 1},
    }
    assert r["via"] == {"api": 1, "phone": 2, "wrapup": 1}


def test_cli_report_callers_and_reasons(invoke_cli, tmp_config):
    from pypbx.config import load_config

    cfg = load_config(tmp_config)
    t = [dt.datetime(2026, 11, 23, 9, 0).timestamp()]

    async def go():
        async with open_db(cfg.db_path) as db:
            log = CallLog(db, lambda: t[0])
            await R.add_reason(db, "results", "Test results", digit="2")
            for kind, disp in ((CallerKind.NEW, Disposition.ANSWERED), (CallerKind.PATIENT, Disposition.ANSWERED)):
                rec = await log.offer(
                    direction=Direction.INBOUND,
                    caller_number="+3361",
                    callee_number="200",
                    service_line="Appointments",
                    agent="alice",
                    caller_kind=kind,
                )
                await log.end(rec, disp, side="caller")
            await R.set_call_reason(db, None, rec.id, code="results", via=R.ReasonVia.WRAPUP)

    run(go())
    c = ("--config", str(tmp_config), "--date", "2026-11-23")
    out = invoke_cli("report", "callers", *c).output
    assert "Routing hit rate = returning callers" in out and "new-patient rate 50 %" in out
    j = json.loads(invoke_cli("report", "callers", "--json", *c).output)
    assert j["total"] == {"calls": 2, "patient": 1, "known": 0, "new": 1, "new_rate": 0.5}
    assert j["routing"] == {"returning": 1, "recognised": 0, "answered": 1, "hits": 0, "hit_rate": 0.0}
    j = json.loads(invoke_cli("report", "reasons", "--json", *c).output)
    assert j["reasons"] == [{"code": "results", "label": "Test results", "calls": 1, "share": 1.0}]
    assert j["agents"] == {"alice": {"results": 1}}
    assert "results  Test results  1" in invoke_cli("report", "reasons", *c).output
    assert (
        "No call has a reason"
        in invoke_cli("report", "reasons", "--config", str(tmp_config), "--date", "2026-11-22").output
    )


# --------------------------------------------------------------------------- from the desk phone (fake media)


async def answered_call(env: Env, call_id: str = "c1"):
    w, s = await env.call("1001", call_id=call_id)
    w.inject(P.Answered(leg="callee", call_id="cx"))
    await settle()
    w.inject(P.Answered(leg="in-1"))
    await settle()
    assert frozenset(("in-1", "callee")) in w.bridges
    return w, s


def test_in_call_code_on_the_agents_leg_sets_the_reason_with_a_tone(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await R.add_reason(env.db, "appointment", "Appointment", digit="1")
            w, s = await answered_call(env)
            rec_id = s.rec.id
            await press(w, "*71", leg="in-1")  # the caller's keys: never a reason
            assert await env.db.reasons_of_call(rec_id) == [] and CONFIRM not in plays(w)
            await press(w, "*75", leg="callee")  # no reason on 5: the error tone
            assert plays(w)[-1] == ERROR and await env.db.reasons_of_call(rec_id) == []
            await press(w, "4*71", leg="callee")
            assert plays(w)[-1] == CONFIRM and w.playing.get("callee") == CONFIRM
            [r] = await env.db.reasons_of_call(rec_id)
            assert (r["code"], r["extension"], r["via"]) == ("appointment", "1001", "phone")
            assert frozenset(("in-1", "callee")) in w.bridges  # the call goes on
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.cdr(rec_id))["disposition"] == "answered"

    run(go())


def test_wrap_up_code_sets_the_reason_of_the_extensions_last_call(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await R.add_reason(env.db, "results", "Results", digit="2")
            w, s = await answered_call(env)
            first = s.rec.id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            w2, s2 = await env.call("*72", frm="1001", call_id="c2")
            w2.inject(P.Answered(leg="in-1"))
            await settle()
            assert plays(w2)[-1] == CONFIRM
            w2.finish_playback("in-1")
            await settle(20)
            [r] = await env.db.reasons_of_call(first)
            assert (r["code"], r["extension"], r["via"]) == ("results", "1001", "wrapup")
            row = await env.cdr(s2.rec.id)
            assert row["disposition"] == "answered" and "reason results set" in row["hangup_cause"]
            w3, s3 = await env.call("*78", frm="1001", call_id="c3")  # no reason on 8: refused
            w3.inject(P.Answered(leg="in-1"))
            await settle()
            assert plays(w3)[-1] == ERROR
            w3.finish_playback("in-1")
            await settle(20)
            assert (await env.cdr(s3.rec.id))["disposition"] == "rejected"
            assert len(await env.db.reasons_of_call(first)) == 1

    run(go())


# --------------------------------------------------------------------------- the unhappy survey's comment


def test_unhappy_score_records_a_comment_listed_with_the_call(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await Sv.set_enabled(env.db, True)
            w, s = await answered_call(env)
            rec_id = s.rec.id
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle()
            await press(w, "1")
            assert plays(w)[-1] == pr("survey_comment")
            w.finish_playback("in-1")
            await settle()
            assert plays(w)[-1].endswith("tones/beep.wav")
            w.finish_playback("in-1")
            await settle()
            assert "in-1" in w.recording
            path = w.recording["in-1"]
            assert Path(path).parent.parent == tmp_path / "recordings" and Path(path).name.startswith(rec_id)
            await press(w, "#")
            assert plays(w)[-1] == pr("survey_thanks")
            w.finish_playback("in-1")
            await settle(20)
            assert "in-1" not in w.legs
            [a] = await Sv.answers(env.db, unhappy=True)
            assert (a["call_id"], a["score"], a["comment"], a["caller"]) == (rec_id, 1, path, "1009")
            kinds = [k for k, _ in await env.events(rec_id)]
            assert kinds.index("survey") < kinds.index("survey_comment_recording") < kinds.index("survey_comment")
            # a happy score: no comment offered, not in the unhappy list
            w, s = await answered_call(env, "c2")
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle()
            await press(w, "4")
            assert plays(w)[-1] == pr("survey_thanks")
            assert [x["score"] for x in await Sv.answers(env.db)] == [1, 4]
            assert len(await Sv.answers(env.db, unhappy=True)) == 1

    run(go())


def test_unhappy_caller_hanging_up_while_commenting_keeps_the_comment(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await Sv.set_enabled(env.db, True)
            w, s = await answered_call(env)
            w.inject(P.Ended(leg="callee", cause_code=200, reason="BYE"))
            await settle()
            await press(w, "2")
            await press(w, "#")  # skips the prompt: the beep
            w.finish_playback("in-1")
            await settle()
            path = w.recording["in-1"]
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            [a] = await Sv.answers(env.db, unhappy=True)
            assert (a["call_id"], a["score"], a["comment"]) == (s.rec.id, 2, path)
            assert w not in env.pool.busy

    run(go())


def test_cli_survey_list_unhappy(invoke_cli, tmp_config):
    from pypbx.config import load_config

    cfg = load_config(tmp_config)

    async def go():
        async with open_db(cfg.db_path) as db:
            await Sv.record_score(db, "call-1", "alice", "front", 1, DAY + 9 * 3600)
            await Sv.record_comment(db, "call-1", "/data/recordings/2026-11-23/call-1-comment-in-1.wav", 6.2)
            await Sv.record_score(db, "call-2", "bob", "front", 5, DAY + 10 * 3600)

    run(go())
    c = ("--config", str(tmp_config))
    out = invoke_cli("survey", "list", "--unhappy", *c).output
    assert "call-1-comment-in-1.wav (6 s)" in out and "bob" not in out
    j = json.loads(invoke_cli("survey", "list", "--unhappy", "--json", *c).output)
    assert [(x["call_id"], x["score"], x["comment"], x["comment_seconds"]) for x in j] == [
        ("call-1", 1, "/data/recordings/2026-11-23/call-1-comment-in-1.wav", 6.2)
    ]
    assert len(json.loads(invoke_cli("survey", "list", "--json", *c).output)) == 2


def test_inbound_calls_record_the_callers_kind_at_arrival(tmp_path):
    """Trunk calls to a smart DID and to a DID straight to an extension: the kind is on the
    call row from the start (patient, new, then known once the number has called)."""
    from pypbx import trunks as T
    from tests.unit.test_routing_live import did_call, with_trunks

    async def go():
        async with Env(tmp_path) as env:
            svc = with_trunks(env, "prov")
            svc.dids = {
                "+33100000001": T.Did("+33100000001", "queue:front", known="queue:front"),
                "+33100000002": T.Did("+33100000002", "extension:1001"),
            }
            await C.import_csv(env.db, "number,name,patient_id\n+33611111111,Marie,P-1\n")
            kinds = []
            for i, (did, frm) in enumerate(
                [
                    ("+33100000001", "+33611111111"),
                    ("+33100000001", "+33622222222"),
                    ("+33100000002", "+33622222222"),
                ]
            ):
                w, s = await did_call(env, did, frm=frm, call_id=f"d{i}")
                kinds.append((await env.cdr(s.rec.id))["caller_kind"])  # while the call is going on
                w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
                await settle(20)
            assert kinds == ["patient", "new", "known"]
            w, s = await env.call("1001", frm="1009", call_id="internal")  # internal: no kind
            assert (await env.cdr(s.rec.id))["caller_kind"] is None

    run(go())
