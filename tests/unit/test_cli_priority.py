"""cli.py, issue 10's urgent line and queue settings: ``queue add/edit --priority
--urgent-prompt --rona-misses --overflow-when-busy``, ``did add/edit --priority``, ``route
rule --priority``, ``ivr add --option 1=queue:NAME@N``; ``show`` / ``--json``; every bad value
is one ``Error:`` line and exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pypbx import acdstore as S
from pypbx.config import load_config
from tests.unit.test_cli_acd import bad_input, fails, ok, pbx, store

__all__ = ["pbx"]  # the fixture


def test_queue_urgent_settings_add_show_json_edit(pbx: Callable, tmp_config: Path) -> None:
    out = ok(
        pbx(
            "queue",
            "add",
            "urgent",
            "--priority",
            "5",
            "--urgent-prompt",
            "call_important",
            "--rona-misses",
            "2",
            "--overflow-after",
            "60",
            "--overflow-to",
            "extension:1003",
            "--overflow-when-busy",
        )
    )
    assert out.startswith("Queue urgent added")
    cfg = store(tmp_config, lambda db: S.get_queue(db, "urgent")).config
    assert (cfg.priority, cfg.urgent_prompt, cfg.rna_misses_before_pause, cfg.overflow_when_busy) == (
        5,
        "call_important",
        2,
        True,
    )
    shown = ok(pbx("queue", "show", "urgent"))
    assert "Priority:       5\n" in shown
    assert "Urgent prompt:  call_important\n" in shown
    assert "Pause after:    2 missed rings in a row\n" in shown
    assert "When all busy:  overflow at once to extension:1003\n" in shown
    data = json.loads(ok(pbx("queue", "show", "urgent", "--json")))
    assert (data["priority"], data["urgent_prompt"], data["rna_misses_before_pause"], data["overflow_when_busy"]) == (
        5,
        "call_important",
        2,
        True,
    )
    [listed] = json.loads(ok(pbx("queue", "list", "--json")))
    assert (listed["priority"], listed["overflow_when_busy"], listed["rna_misses_before_pause"]) == (5, True, 2)
    # defaults: nothing extra in the text
    ok(pbx("queue", "add", "plain"))
    plain = ok(pbx("queue", "show", "plain"))
    assert "Priority" not in plain and "Urgent" not in plain and "Pause after" not in plain
    assert "When all busy" not in plain
    # edit: clear the prompt, no busy trigger, never pause
    out = ok(pbx("queue", "edit", "urgent", "--urgent-prompt", "none", "--no-overflow-when-busy", "--rona-misses", "0"))
    assert "Pause after:    never (missed rings)" in out and "Urgent prompt" not in out and "When all busy" not in out
    cfg = store(tmp_config, lambda db: S.get_queue(db, "urgent")).config
    assert (cfg.priority, cfg.urgent_prompt, cfg.rna_misses_before_pause, cfg.overflow_when_busy) == (5, "", 0, False)
    assert "Priority:" in ok(pbx("queue", "edit", "urgent", "--priority", "7"))


def test_queue_urgent_prompt_imported_by_the_clinic_is_accepted(pbx: Callable, tmp_config: Path) -> None:
    own = load_config(tmp_config).data_dir / "prompts" / "en" / "urgent_help.wav"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_bytes(b"RIFF")
    ok(pbx("queue", "add", "urgent", "--urgent-prompt", "urgent_help"))
    assert store(tmp_config, lambda db: S.get_queue(db, "urgent")).config.urgent_prompt == "urgent_help"


def test_queue_urgent_settings_errors(pbx: Callable) -> None:
    ok(pbx("queue", "add", "front"))
    fails(pbx("queue", "add", "q1", "--priority", "-1"), "bad priority -1: expected 0-100")
    fails(pbx("queue", "add", "q1", "--priority", "high"), "bad priority 'high': expected a whole number")
    fails(pbx("queue", "add", "q1", "--priority", "101"), "bad priority 101: expected 0-100")
    bad_input(pbx("queue", "add", "q1", "--urgent-prompt", "no_such_prompt"), "unknown prompt 'no_such_prompt'")
    bad_input(
        pbx("queue", "add", "q1", "--urgent-prompt", "Bad Prompt"),
        "bad prompt 'Bad Prompt': a prompt id (lower-case letters, digits, _), see pypbx prompts list",
    )
    fails(pbx("queue", "add", "q1", "--rona-misses", "-1"), "bad ring-no-answer misses -1: expected 0-100")
    fails(
        pbx("queue", "add", "q1", "--overflow-when-busy"),
        "queue q1: overflow when busy needs an overflow destination (--overflow-after N --overflow-to TARGET)",
    )
    fails(pbx("queue", "edit", "front", "--priority", "-3"), "bad priority -3: expected 0-100")
    assert [q["name"] for q in json.loads(ok(pbx("queue", "list", "--json")))] == ["front"]  # nothing half-made


def test_did_priority_add_edit_list_and_errors(pbx: Callable) -> None:
    ok(pbx("queue", "add", "front"))
    out = ok(pbx("did", "add", "+33123456789", "--to", "queue:front", "--name", "Urgent line", "--priority", "5"))
    assert out == "DID +33123456789 -> queue:front (Urgent line), priority 5.\n"
    out = ok(pbx("did", "add", "+33123456780", "--to", "queue:front"))
    assert out == "DID +33123456780 -> queue:front.\n"
    rows = {d["number"]: d["priority"] for d in json.loads(ok(pbx("did", "list", "--json")))}
    assert rows == {"+33123456789": 5, "+33123456780": 0}
    table = ok(pbx("did", "list")).splitlines()
    assert table[0].split()[-1] == "PRIORITY" and table[2].split()[-1] == "5"
    assert ok(pbx("did", "edit", "+33123456780", "--priority", "2")).endswith(", priority 2.\n")
    assert (
        ok(pbx("did", "edit", "+33123456789", "--priority", "0")) == "DID +33123456789 -> queue:front (Urgent line).\n"
    )
    rows = {d["number"]: d["priority"] for d in json.loads(ok(pbx("did", "list", "--json")))}
    assert rows == {"+33123456789": 0, "+33123456780": 2}
    fails(
        pbx("did", "add", "+33100000000", "--to", "queue:front", "--priority", "-1"), "bad priority -1: expected 0-100"
    )
    fails(pbx("did", "edit", "+33123456780", "--priority", "x"), "bad priority 'x': expected a whole number")
    bad_input(
        pbx("did", "edit", "+33999", "--priority", "3"), "unknown DID '+33999' (valid: +33123456780, +33123456789)"
    )
    assert len(json.loads(ok(pbx("did", "list", "--json")))) == 2  # the bad one was not added


def test_route_rule_priority(pbx: Callable) -> None:
    ok(pbx("queue", "add", "front"))
    ok(pbx("route", "add", "triage"))
    out = ok(pbx("route", "rule", "triage", "--if", "caller=+336", "--to", "queue:front", "--priority", "4"))
    assert "1. caller=+336 -> queue:front (priority 4)" in out
    rule = json.loads(ok(pbx("route", "show", "triage", "--json")))["rules"][0]
    assert rule["priority"] == 4 and rule["to"] == "queue:front"
    res = json.loads(ok(pbx("route", "test", "triage", "--caller", "+33611111111", "--json")))
    assert res["steps"][0]["priority"] == 4 and "(priority 4)" in res["steps"][0]["trace"][-1]
    bad_input(
        pbx("route", "rule", "triage", "--to", "extension:1001", "--priority", "4"),
        "--priority needs a queue:, ivr: or route: destination (it counts in a queue)",
    )
    bad_input(
        pbx("route", "rule", "triage", "--to", "queue:front", "--priority", "-2"), "bad priority -2: expected 0-100"
    )


def test_ivr_option_with_priority(pbx: Callable) -> None:
    ok(pbx("queue", "add", "urgent"))  # issue 12: an option's queue must exist
    ok(pbx("queue", "add", "front"))
    out = ok(pbx("ivr", "add", "main", "--number", "700", "--option", "1=queue:urgent@5", "--option", "2=queue:front"))
    assert "1=queue:urgent@5" in out
    menu = json.loads(ok(pbx("ivr", "show", "main", "--json")))
    assert menu["options"] == {"1": "queue:urgent@5", "2": "queue:front"}
    assert '"1" = "queue:urgent@5"' in ok(pbx("ivr", "export", "main"))
    fails(
        pbx("ivr", "add", "main", "--option", "3=queue:urgent@high"),
        "bad queue action queue:urgent@high (want queue:NAME or queue:NAME@PRIORITY, e.g. queue:urgent@5)",
    )
    fails(
        pbx("ivr", "add", "main", "--option", "3=queue:urgent@101"),
        "bad priority 101 in queue:urgent@101: expected 0-100",
    )
    fails(
        pbx("ivr", "add", "main", "--option", "3=queue:urgent@-1"), "bad priority -1 in queue:urgent@-1: expected 0-100"
    )
