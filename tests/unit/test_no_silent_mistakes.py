"""Issue 12, the admin's side: every filter and reference checked against what exists (one
line naming the bad value and the closest valid ones, exit 2), dangling destinations refused
at creation, one exit-code convention, ``--json`` on mutating commands, ``pypbx check``."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from pypbx.config import load_config
from pypbx.db import open_db


@pytest.fixture
def pbx(invoke_cli: Callable[..., Any], tmp_config: Path) -> Callable[..., Any]:
    def run(*args: str) -> Any:
        return invoke_cli(*args, "--config", str(tmp_config))

    return run


def usage_error(r: Any, *needles: str) -> None:
    """Exit 2, exactly one line on stderr, naming what is wrong."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ")
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "Usage:" not in r.output and "Traceback" not in r.output


def test_calls_list_unknown_disposition_suggests_the_closest(pbx: Callable[..., Any]) -> None:
    usage_error(pbx("calls", "list", "--disposition", "answerd"), "answerd", "did you mean answered")


def test_calls_list_unknown_queue(pbx: Callable[..., Any]) -> None:
    assert pbx("queue", "add", "front").exit_code == 0
    usage_error(pbx("calls", "list", "--queue", "nosuchqueue"), "unknown queue 'nosuchqueue'")
    usage_error(pbx("calls", "list", "--queue", "fromt"), "did you mean front?")


def test_calls_list_unknown_agent(pbx: Callable[..., Any]) -> None:
    usage_error(pbx("calls", "list", "--agent", "ghost"), "unknown agent 'ghost'")


def test_empty_but_valid_filters_exit_0(pbx: Callable[..., Any]) -> None:
    assert pbx("queue", "add", "front").exit_code == 0
    r = pbx("calls", "list", "--queue", "front", "--disposition", "answered")
    assert r.exit_code == 0 and "No calls match." in r.output


def test_report_queues_unknown_queue(pbx: Callable[..., Any]) -> None:
    usage_error(pbx("report", "queues", "--queue", "nosuchqueue"), "unknown queue 'nosuchqueue'")


def test_since_after_until_refused(pbx: Callable[..., Any]) -> None:
    usage_error(
        pbx("calls", "list", "--since", "2026-11-23 10:00", "--until", "2026-11-23 09:00"), "--since", "--until"
    )
    usage_error(pbx("report", "queues", "--since", "2026-11-24", "--until", "2026-11-23"), "--since")


def test_did_to_unknown_queue_refused(pbx: Callable[..., Any]) -> None:
    usage_error(pbx("did", "add", "0144556677", "--to", "queue:nope"), "unknown queue 'nope'")
    assert json.loads(pbx("did", "list", "--json").output) == []
    assert pbx("queue", "add", "front").exit_code == 0
    assert pbx("did", "add", "0144556677", "--to", "queue:front").exit_code == 0
    usage_error(pbx("did", "edit", "0144556677", "--to", "queue:frnt"), "did you mean front?")


def test_ivr_unknown_prompt_and_queue_refused(pbx: Callable[..., Any]) -> None:
    usage_error(pbx("ivr", "add", "main", "--greeting", "nosuchprompt"), "unknown prompt 'nosuchprompt'")
    usage_error(pbx("ivr", "add", "main", "--option", "1=queue:nope"), "unknown queue 'nope'")
    usage_error(
        pbx("ivr", "add", "main", "--greeting", "nosuchprompt", "--option", "1=queue:nope"), "unknown queue 'nope'"
    )
    assert json.loads(pbx("ivr", "list", "--json").output) == []


def test_second_ivr_add_refused_edit_or_replace(pbx: Callable[..., Any]) -> None:
    assert pbx("queue", "add", "front").exit_code == 0
    assert pbx("queue", "add", "results").exit_code == 0
    assert pbx("ivr", "add", "main", "--number", "700", "--option", "1=queue:front").exit_code == 0
    usage_error(pbx("ivr", "add", "main", "--option", "2=queue:results"), "already exists", "ivr edit", "--replace")
    assert json.loads(pbx("ivr", "show", "main", "--json").output)["options"] == {"1": "queue:front"}
    r = pbx("ivr", "edit", "main", "--option", "2=queue:results")
    assert r.exit_code == 0, r.output
    assert json.loads(pbx("ivr", "show", "main", "--json").output)["options"] == {
        "1": "queue:front",
        "2": "queue:results",
    }
    r = pbx("ivr", "add", "main", "--replace", "--option", "3=queue:results", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["options"] == {"3": "queue:results"}
    usage_error(pbx("ivr", "edit", "mian", "--timeout", "3"), "unknown IVR menu 'mian'", "did you mean main?")


def test_group_unknown_member_refused(pbx: Callable[..., Any]) -> None:
    assert pbx("ext", "add", "1001").exit_code == 0
    usage_error(pbx("group", "add", "nurses", "--members", "1001,1009"), "unknown extension '1009'")
    usage_error(pbx("group", "add", "nurses", "--members", "1001", "--then", "queue:nope"), "unknown queue 'nope'")
    r = pbx("group", "add", "nurses", "--members", "1001", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["members"] == ["1001"]


def test_bad_choice_same_exit_and_one_line_everywhere(pbx: Callable[..., Any]) -> None:
    a = pbx("queue", "add", "x", "--strategy", "fastest")
    b = pbx("trunk", "add", "t", "--host", "sip.example.com", "--format", "weird")
    usage_error(a, "fastest")
    usage_error(b, "weird", "e164")
    assert a.exit_code == b.exit_code == 2


def test_status_json_with_pbx_down_prints_an_object(pbx: Callable[..., Any]) -> None:
    r = pbx("status", "--json")
    assert r.exit_code == 1
    obj = json.loads(r.stdout)
    assert obj["running"] is False and "not running" in obj["error"]


def test_ext_add_json_returns_generated_password(pbx: Callable[..., Any]) -> None:
    r = pbx("ext", "add", "1006", "--json")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["number"] == "1006" and len(obj["password"]) >= 10


# ------------------------------------------------------------------ pypbx check


def _write_rows(config: Path, *sql: tuple[str, tuple[object, ...]]) -> None:
    """Rows the CLI refuses now, as an old database or a hand edit would hold them."""
    cfg = load_config(config)

    async def go() -> None:
        async with open_db(cfg.db_path, cfg.numbers.region) as db:
            for q, args in sql:
                await db.execute(q, args)

    asyncio.run(go())


def test_check_finds_dangling_did_ivr_option_and_overflow(pbx: Callable[..., Any], tmp_config: Path) -> None:
    assert pbx("queue", "add", "front").exit_code == 0
    r = pbx("check")
    assert r.exit_code == 0, r.output
    _write_rows(
        tmp_config,
        (
            "INSERT INTO dids(number, destination, service_line, created_at) VALUES (?, ?, '', 0)",
            ("+33144556677", "queue:nope"),
        ),
        (
            "INSERT INTO ivr_menus(name, number, config, updated_at) VALUES (?, NULL, ?, 0)",
            ("main", json.dumps({"name": "main", "options": {"1": "queue:gone"}})),
        ),
    )
    cfg = load_config(tmp_config)

    async def overflow() -> None:
        async with open_db(cfg.db_path, cfg.numbers.region) as db:
            row = await db.get_queue_row("front")
            assert row is not None
            c = json.loads(row["config"])
            c["overflow"] = {"after": 20, "target": {"kind": "queue", "target": "vanished"}}
            await db.update_queue_row("front", json.dumps(c), 0)

    asyncio.run(overflow())
    r = pbx("check")
    assert r.exit_code == 1
    assert "DID +33144556677: points to queue:nope" in r.stdout
    assert "IVR menu main option 1: points to queue:gone" in r.stdout
    assert "queue front overflow: points to queue:vanished" in r.stdout
    data = json.loads(pbx("check", "--json").stdout)
    assert {e["where"] for e in data["errors"]} == {
        "DID +33144556677",
        "IVR menu main option 1",
        "queue front overflow",
    }


def test_check_warns_unreachable_queue_and_risky_extension(pbx: Callable[..., Any]) -> None:
    assert pbx("queue", "add", "lonely").exit_code == 0
    r = pbx("check", "--json")
    assert r.exit_code == 0
    warnings = {(w["where"], w["message"]) for w in json.loads(r.stdout)["warnings"]}
    assert ("queue lonely", "unreachable: no DID, IVR option, route or queue sends calls here") in warnings
    assert ("queue lonely", "no agent has the skills to answer it") in warnings


def test_run_refuses_to_start_with_a_dangling_reference(pbx: Callable[..., Any], tmp_config: Path) -> None:
    assert pbx("ext", "list").exit_code == 0  # creates the database
    _write_rows(
        tmp_config,
        (
            "INSERT INTO dids(number, destination, service_line, created_at) VALUES (?, ?, '', 0)",
            ("+33144556677", "queue:nope"),
        ),
    )
    r = pbx("run")
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "not starting: DID +33144556677" in r.stderr


# ------------------------------------------------------------------ help and tests


def _commands(group: click.Group, prefix: str = "pypbx") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out += _commands(cmd, path)
        else:
            out.append((path, cmd))
    return out


def test_every_command_help_has_an_example() -> None:
    from cli import cli

    missing = [path for path, cmd in _commands(cli) if "Example:" not in (cmd.help or "")]
    assert missing == []


def test_no_test_ends_in_or_true() -> None:
    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\bor\s+True\b")
    here = Path(__file__).resolve()
    hits = [
        f"{p.relative_to(root)}:{i}"
        for p in root.rglob("*.py")
        if p.resolve() != here
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


# ------------------------------------------------------------------ report agents: open pauses, h:mm:ss


def test_open_pause_counted_to_now_not_to_midnight() -> None:
    from pypbx import reports
    from pypbx.reports import QueueLogEvent

    midnight = 1_795_000_000.0
    start = midnight - 86400
    pause_at = start + 9 * 3600  # 09:00, still paused
    now = pause_at + 1800  # 09:30

    def ev(seq: int, ts: float, kind: str) -> QueueLogEvent:
        return {"seq": seq, "ts": ts, "queue": None, "call_id": None, "agent": "alice", "kind": kind, "data": {}}

    events = [ev(1, start + 8 * 3600, "LOGIN"), ev(2, pause_at, "PAUSE")]
    r = reports.build([], events, since=start, until=midnight, now=now)
    assert r["agents"]["alice"]["paused_seconds"] == 1800
    ended = reports.build([], events, since=start, until=midnight, now=midnight + 3600)
    assert ended["agents"]["alice"]["paused_seconds"] == midnight - pause_at  # a past day: to its end


def test_durations_in_tables_are_h_mm_ss() -> None:
    from pypbx.cli.output import hms

    assert [hms(None), hms(42), hms(3785), hms(76935)] == ["-", "0:00:42", "1:03:05", "21:22:15"]


def test_report_agents_table_shows_h_mm_ss(invoke_cli: Callable[..., Any], tmp_config: Path) -> None:
    from acd.model import EventKind, QueueEvent
    from pypbx.acdstore import append_queue_events

    cfg = load_config(tmp_config)
    t = time.time() - 3725  # paused 1 h 02 min 05 s ago, still paused

    async def go() -> None:
        async with open_db(cfg.db_path, cfg.numbers.region) as db:
            await append_queue_events(db, [QueueEvent(t, EventKind.PAUSE, None, None, "alice", {})])

    asyncio.run(go())
    since = datetime.datetime.fromtimestamp(t - 60).strftime("%Y-%m-%d %H:%M")
    r = invoke_cli("report", "agents", "--since", since, "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith("alice"))
    assert re.search(r"\b1:02:0[5-9]\b", row), row


# ------------------------------------------------------------------ removing what is still used


def in_use(r: Any, *needles: str) -> None:
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert len(r.stderr.splitlines()) == 1 and "is in use by" in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def test_remove_refused_while_pointed_to(pbx: Callable[..., Any]) -> None:
    assert pbx("ext", "add", "1001").exit_code == 0
    assert pbx("queue", "add", "front").exit_code == 0
    assert pbx("group", "add", "nurses", "--members", "1001", "--then", "queue:front").exit_code == 0
    assert pbx("ivr", "add", "main", "--option", "1=group:nurses", "--option", "2=queue:front").exit_code == 0
    assert pbx("did", "add", "0144556677", "--to", "ivr:main").exit_code == 0
    assert pbx("voicemail", "box", "1001").exit_code == 0
    assert pbx("ivr", "edit", "main", "--option", "3=voicemail:1001").exit_code == 0

    in_use(pbx("queue", "remove", "front", "--yes"), "queue front", "ring group nurses then", "IVR menu main option 2")
    in_use(pbx("group", "remove", "nurses"), "IVR menu main option 1")
    in_use(pbx("ivr", "remove", "main"), "DID +33144556677")
    in_use(pbx("ext", "remove", "1001", "--yes"), "ring group nurses member")
    in_use(pbx("voicemail", "box", "1001", "--remove"), "IVR menu main option 3")
    assert pbx("did", "remove", "+33144556677").exit_code == 0
    assert pbx("ivr", "remove", "main").exit_code == 0
    assert pbx("group", "remove", "nurses").exit_code == 0
    assert pbx("queue", "remove", "front", "--yes").exit_code == 0


def test_schedule_remove_refused_while_a_menu_uses_it(pbx: Callable[..., Any]) -> None:
    assert pbx("hours", "set", "clinic", "--week", "mon-fri 08:00-18:00").exit_code == 0
    assert pbx("ivr", "add", "main", "--schedule", "clinic").exit_code == 0
    in_use(pbx("hours", "remove", "clinic"), "IVR menu main")
    assert pbx("ivr", "remove", "main").exit_code == 0
    assert pbx("hours", "remove", "clinic").exit_code == 0


def test_both_group_spellings_accepted_one_stored(pbx: Callable[..., Any]) -> None:
    assert pbx("ext", "add", "1001").exit_code == 0
    assert pbx("group", "add", "nurses", "--members", "1001").exit_code == 0
    assert pbx("did", "add", "0144556677", "--to", "ring_group:nurses").exit_code == 0
    assert json.loads(pbx("did", "list", "--json").stdout)[0]["destination"] == "group:nurses"
    usage_error(pbx("did", "add", "0144556678", "--to", "ring_group:nurse"), "unknown ring group 'nurse'", "nurses")


# ------------------------------------------------------------------ --json on mutating commands


def test_mutating_commands_print_what_they_made_as_json(pbx: Callable[..., Any]) -> None:
    def made(*args: str) -> Any:
        r = pbx(*args, "--json")
        assert r.exit_code == 0, (args, r.output)
        return json.loads(r.stdout)

    assert made("ext", "add", "1001")["number"] == "1001"
    assert made("agent", "add", "alice", "--name", "Alice", "--skills", "general:5")["id"] == "alice"
    assert made("queue", "add", "front", "--skills", "general:1")["name"] == "front"
    assert made("queue", "edit", "front", "--strategy", "round_robin")["strategy"] == "round_robin"
    assert made("did", "add", "0144556677", "--to", "queue:front")["destination"] == "queue:front"
    assert made("did", "edit", "0144556677", "--name", "Appointments")["service_line"] == "Appointments"
    assert made("group", "add", "nurses", "--members", "1001")["members"] == ["1001"]
    assert made("ivr", "add", "main", "--option", "1=queue:front")["options"] == {"1": "queue:front"}
    t = made("trunk", "add", "prov", "--host", "sip.example.com", "--username", "u", "--password", "pw-1234567")
    assert t["name"] == "prov" and t["password"] == "(set)"
    assert made("trunk", "edit", "prov", "--priority", "3")["priority"] == 3
    assert made("route", "add", "triage")["name"] == "triage"
    assert made("route", "rule", "triage", "--if", "known", "--to", "queue:front")["rules"][0]["to"] == "queue:front"
    assert made("voicemail", "box", "1001")["box"] == "1001"
    assert made("reason", "add", "rdv", "Appointment booked")["code"] == "rdv"
    assert made("ext", "passwd", "1001")["password"]
    assert made("agent", "skills", "alice", "general:6")["skills"] == {"general": 6}
    assert made("agent", "login", "alice", "1001")["extension"] == "1001"
    assert made("agent", "pause", "alice", "--reason", "lunch")["state"] == "paused"
    assert made("agent", "unpause", "alice")["state"] == "available"
    assert made("agent", "logout", "alice")["extension"] is None


def test_callbacks_and_missed_unknown_queue(pbx: Callable[..., Any]) -> None:
    assert pbx("queue", "add", "front").exit_code == 0
    usage_error(pbx("callbacks", "--queue", "fornt"), "unknown queue 'fornt'", "did you mean front?")
    usage_error(pbx("missed", "list", "--queue", "fornt"), "unknown queue 'fornt'", "did you mean front?")
    assert pbx("callbacks", "--queue", "front").exit_code == 0
    assert pbx("missed", "list", "--queue", "front").exit_code == 0


def test_queue_overflow_to_unknown_ring_group_refused(pbx: Callable[..., Any]) -> None:
    usage_error(
        pbx("queue", "add", "front", "--overflow-after", "20", "--overflow-to", "ring_group:nurses"),
        "unknown ring group 'nurses'",
    )
    assert pbx("ext", "add", "1001").exit_code == 0
    assert pbx("group", "add", "nurses", "--members", "1001").exit_code == 0
    r = pbx("queue", "add", "front", "--overflow-after", "20", "--overflow-to", "group:nurses")
    assert r.exit_code == 0, r.output
    assert "after=20,group:nurses" in pbx("queue", "show", "front").stdout  # one spelling shown
    in_use(pbx("group", "remove", "nurses"), "queue front overflow")


def test_route_rule_to_unknown_queue_names_the_closest(pbx: Callable[..., Any]) -> None:
    assert pbx("queue", "add", "front").exit_code == 0
    assert pbx("route", "add", "triage").exit_code == 0
    r = pbx("route", "rule", "triage", "--to", "queue:frnt")
    assert r.exit_code == 2 and r.stderr == "Error: destination queue:frnt: no queue 'frnt' (did you mean front?)\n"


def test_check_warns_risky_settings_and_idle_agents(pbx: Callable[..., Any]) -> None:
    assert pbx("ext", "add", "1001").exit_code == 0
    assert pbx("ext", "perms", "1001", "--allow", "local,national,mobile,international,premium").exit_code == 0
    r = pbx("trunk", "add", "prov", "--host", "sip.example.com", "--transport", "tls", "--tls-no-verify")
    assert r.exit_code == 0, r.output
    assert pbx("queue", "add", "results", "--skills", "results:5").exit_code == 0
    assert pbx("agent", "add", "bob", "--name", "Bob", "--skills", "korean:3").exit_code == 0
    r = pbx("check", "--json")
    assert r.exit_code == 0, r.output
    warnings = {(w["where"], w["message"]) for w in json.loads(r.stdout)["warnings"]}
    assert ("extension 1001", "allowed both international and premium numbers") in warnings
    assert ("trunk prov", "TLS without certificate verification") in warnings
    assert ("agent bob", "has no skills for any queue") in warnings
    text = pbx("check").stdout
    assert text.startswith("Warnings (")
