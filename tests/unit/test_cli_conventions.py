"""Issue 12, the CLI's one convention: exit 0 ok, 1 failed, 2 bad usage or input -- one line
each, never click's usage block; ``--json`` on every command that lists, shows, creates or
changes something; languages from the prompt catalog; refusals at creation; the site clock
in mailbox/recording folders and e-mails (far from the machine's zone)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pypbx import prompts as P
from pypbx import sitetime
from pypbx.cli import cli
from pypbx.cli.output import prompt_languages

Invoke = Callable[..., Any]

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def pbx(invoke_cli: Invoke, tmp_config: Path) -> Invoke:
    """``pbx(*args)``: the real CLI on a fresh config (click's CliRunner, stderr apart)."""

    def run(*args: str) -> Any:
        return invoke_cli(*args, "--config", str(tmp_config))

    return run


def ok(r: Any) -> str:
    assert r.exit_code == 0, (r.exit_code, r.output)
    return str(r.stdout)


def refused(r: Any, line: str, code: int = 2) -> None:
    """Exactly one line on stderr, nothing on stdout, exit ``code``."""
    assert (r.exit_code, r.stderr, r.stdout) == (code, f"Error: {line}\n", ""), (r.exit_code, r.output)


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["quue", "list"], "No such command 'quue'. Did you mean 'queue'?"),
        (["queue", "lst"], "No such command 'lst'. Did you mean 'list'?"),
        (["queue", "list", "--jsn"], "No such option '--jsn'. Did you mean '--json'?"),
        (["--bogus"], "No such option '--bogus'."),
        (["ext", "add", "1001", "extra"], "Got unexpected extra argument (extra)"),
        (["queue", "add", "x", "--strategy", "fastest"], None),  # one line too (its text: test_cli_errors)
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], line: str | None, tmp_config: Path) -> None:
    r = CliRunner().invoke(cli, [*args, "--config", str(tmp_config)] if args[0] != "--bogus" else args)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and r.stderr.count("\n") == 1 and r.stderr.startswith("Error: "), r.stderr
    assert "Usage:" not in r.output
    if line is not None:
        assert r.stderr == f"Error: {line}\n"


def test_a_group_without_a_command_still_shows_its_help() -> None:
    r = CliRunner().invoke(cli, ["queue"])
    assert "Usage: " in r.output and "Commands:" in r.output


# --------------------------------------------------------------------------- exit codes


def test_unknown_objects_on_single_object_commands_exit_2(pbx: Invoke) -> None:
    ok(pbx("ext", "add", "1001"))
    ok(pbx("queue", "add", "front"))
    ok(pbx("agent", "add", "alice", "--name", "Alice"))
    ok(pbx("route", "add", "triage"))
    ok(pbx("hours", "set", "clinic", "--week", "mon-fri 08:00-18:00"))
    cases = [
        (["ext", "show", "1009"], "unknown extension '1009' (did you mean 1001?)"),
        (["ext", "perms", "1009", "--json"], "unknown extension '1009' (did you mean 1001?)"),
        (["ext", "remove", "1009", "--yes"], "unknown extension '1009' (did you mean 1001?)"),
        (["queue", "show", "frnt"], "unknown queue 'frnt' (did you mean front?)"),
        (["queue", "edit", "frnt", "--wrap-up", "3"], "unknown queue 'frnt' (did you mean front?)"),
        (["agent", "pause", "alcie"], "unknown agent 'alcie' (did you mean alice?)"),
        (
            ["agent", "pause", "alice", "--reason", "nap"],
            "unknown pause reason 'nap' (valid: admin, break, lunch, other)",
        ),
        (["agent", "login", "alice", "1009"], "unknown extension '1009' (did you mean 1001?)"),
        (["route", "show", "triag"], "unknown route 'triag' (did you mean triage?)"),
        (["route", "unrule", "triage", "5"], "route triage has no rule 5"),
        (["route", "tz", "triage", "Mars/Base"], "unknown time zone 'Mars/Base' (e.g. Europe/Paris)"),
        (["hours", "show", "clinc"], "unknown schedule 'clinc' (did you mean clinic?)"),
        (["hours", "holiday", "clinc", "2026-12-24"], "unknown schedule 'clinc' (did you mean clinic?)"),
        (["ivr", "show", "main"], "unknown IVR menu 'main' (there are none yet)"),
        (["group", "remove", "nurses"], "unknown ring group 'nurses' (there are none yet)"),
        (["trunk", "show", "ovh"], "unknown trunk 'ovh' (there are none yet)"),
        (["did", "remove", "0144556677"], "unknown DID '0144556677' (there are none yet)"),
        (["reason", "remove", "appt"], "unknown reason 'appt' (there are none yet)"),
        (["voicemail", "heard", "abcdef12"], "no voicemail message 'abcdef12'"),
        (["voicemail", "list", "desk"], "no mailbox 'desk' (create it: pypbx voicemail box desk)"),
        (["calls", "show", "nocall"], "no call 'nocall'"),
        (["missed", "show", "99"], "task 99 not found"),
        (["notify", "retry", "7"], "no notification 7 (see pypbx notify list)"),
        (["user", "remove", "bob"], "user bob not found"),
        (["token", "remove", "5"], "unknown token '5' (there are none yet)"),
        (["survey", "enable", "--queue", "frnt"], "unknown queue 'frnt' (did you mean front?)"),
    ]
    for args, line in cases:
        refused(pbx(*args), line)


def test_missing_route_in_a_did_or_route_rule_exits_2(pbx: Invoke) -> None:
    ok(pbx("route", "add", "triage"))
    refused(pbx("did", "add", "0144556677", "--to", "route:triag"), "unknown route 'triag' (did you mean triage?)")
    refused(
        pbx("did", "add", "0144556677", "--to", "external:+33612345678", "--known", "route:nope"),
        "unknown route 'nope' (valid: triage)",
    )
    ok(pbx("did", "add", "0144556677", "--to", "route:triage"))
    refused(pbx("did", "edit", "0144556677", "--new", "route:nope"), "unknown route 'nope' (valid: triage)")
    refused(
        pbx("route", "rule", "triage", "--to", "route:nope"), "destination route:nope: no route 'nope' (valid: triage)"
    )
    refused(
        pbx("route", "rule", "triage", "--if", "ivr=ghost:1", "--to", "external:+33612345678"),
        "condition ivr=ghost:1: no IVR menu 'ghost'",
    )
    assert json.loads(ok(pbx("route", "show", "triage", "--json")))["rules"] == []


def test_unknown_queue_prompt_exits_2(pbx: Invoke) -> None:
    refused(pbx("queue", "add", "q", "--urgent-prompt", "nosuchprompt"), "unknown prompt 'nosuchprompt'")
    refused(
        pbx("queue", "add", "q", "--urgent-prompt", "Bad Id"),
        "bad prompt 'Bad Id': a prompt id (lower-case letters, digits, _), see pypbx prompts list",
    )
    refused(pbx("queue", "add", "q", "--urgent-prompt", "welcom"), "unknown prompt 'welcom' (did you mean welcome?)")
    assert json.loads(ok(pbx("queue", "add", "q", "--urgent-prompt", "welcome", "--json")))["name"] == "q"


def test_prompts_import_and_say_bad_input_exit_2(pbx: Invoke, tmp_config: Path, tmp_path: Path) -> None:
    from pypbx.config import load_config

    refused(pbx("prompts", "import", str(tmp_path / "nope.wav"), "--id", "x"), f"{tmp_path / 'nope.wav'}: no such file")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    refused(
        pbx("prompts", "import", str(bad), "--id", "x"),
        "bad.wav: not a readable audio file (WAV/FLAC/OGG expected): Format not recognised.",
    )
    refused(
        pbx("prompts", "import", str(bad), "--id", "Bad Id"),
        "--id must be a prompt id like 'welcome' (lower case, digits, _)",
    )
    langs = ", ".join(prompt_languages())
    refused(pbx("prompts", "import", str(bad), "--id", "x", "--lang", "de"), f"unknown language 'de' (valid: {langs})")
    refused(
        pbx("prompts", "say", "--id", "x", "--lang", "de", "--text", "Hallo"), f"unknown language 'de' (valid: {langs})"
    )
    refused(pbx("prompts", "say", "--id", "x", "--text", "   "), "--text is empty")
    refused(
        pbx("prompts", "say", "--id", "x", "--text", "a" * (P.MAX_SAY_CHARS + 1)),
        f"--text is {P.MAX_SAY_CHARS + 1} characters long; at most {P.MAX_SAY_CHARS}",
    )
    refused(pbx("prompts", "list", "--lang", "de"), f"unknown language 'de' (valid: {langs})")
    gone = load_config(tmp_config).data_dir / "prompts" / "en" / "x.wav"
    refused(pbx("prompts", "remove", "--id", "x"), f"no imported recording at {gone}")


def test_in_use_is_still_a_failure_exit_1(pbx: Invoke) -> None:
    ok(pbx("queue", "add", "front"))
    ok(pbx("did", "add", "0144556677", "--to", "queue:front"))
    r = pbx("queue", "remove", "front", "--yes")
    assert r.exit_code == 1 and r.stderr.startswith("Error: queue front is in use by DID +33144556677")


# --------------------------------------------------------------------------- --json


# Commands without --json, each for a reason. Everything else that lists, shows, creates or
# changes something has it (a script can always capture what it did).
NO_JSON = {
    "run": "runs the PBX in the foreground; its output is the log",
    "ivr export": "its output is the menu as TOML, the format ivr import reads back",
    "recordings play": "its output is the audio (to the speaker, or --out FILE)",
    "service unit": "its output is the systemd unit file itself",
    "service fail2ban": "its output is the fail2ban filter and jail themselves (or --install)",
}


def test_every_command_has_json_but_the_allow_list() -> None:
    missing = [
        path
        for path, cmd in leaves(cli)
        if path not in NO_JSON and not any("--json" in getattr(p, "opts", ()) for p in cmd.params)
    ]
    assert missing == []
    paths = {p for p, _ in leaves(cli)}
    assert set(NO_JSON) <= paths  # the allow-list names real commands only
    for path in (
        "ext perms",
        "ext remove",
        "hours set",
        "route tz",
        "route unrule",
        "survey enable",
        "user add",
        "token add",
    ):
        assert path in paths and path not in NO_JSON


def test_json_of_the_commands_issue_12_named(pbx: Invoke) -> None:
    ok(pbx("ext", "add", "1001"))
    perms = json.loads(ok(pbx("ext", "perms", "1001", "--allow", "mobile", "--json")))
    assert perms["extension"] == "1001" and perms["allowed"] == ["internal", "mobile"] and perms["default"] is False
    assert json.loads(ok(pbx("ext", "remove", "1001", "--yes", "--json"))) == {"number": "1001", "removed": True}
    s = json.loads(ok(pbx("hours", "set", "clinic", "--week", "mon 09:00-10:00", "--tz", "Europe/Paris", "--json")))
    assert s["name"] == "clinic" and s["tz"] == "Europe/Paris"
    ok(pbx("route", "add", "triage"))
    assert json.loads(ok(pbx("route", "tz", "triage", "Asia/Seoul", "--json")))["tz"] == "Asia/Seoul"
    ok(pbx("route", "rule", "triage", "--to", "external:+33612345678"))
    r = json.loads(ok(pbx("route", "unrule", "triage", "1", "--json")))
    assert r["name"] == "triage" and r["rules"] == []
    ok(pbx("queue", "add", "front"))
    assert json.loads(ok(pbx("survey", "enable", "--queue", "front", "--json"))) == {"all": False, "queues": ["front"]}
    assert json.loads(ok(pbx("survey", "disable", "--queue", "front", "--json"))) == {"all": False, "queues": []}
    u = json.loads(ok(pbx("user", "add", "boss", "--role", "admin", "--json")))
    assert u["name"] == "boss" and u["role"] == "admin" and isinstance(u["password"], str) and len(u["password"]) >= 10
    given = json.loads(
        ok(pbx("user", "add", "nurse", "--role", "supervisor", "--password", "a-long-secret-1", "--json"))
    )
    assert given["password"] is None  # a password the admin typed is never echoed
    t = json.loads(ok(pbx("token", "add", "--role", "wallboard", "--name", "TV", "--json")))
    assert t["role"] == "wallboard" and t["name"] == "TV" and isinstance(t["token"], str) and len(t["token"]) >= 20
    listed = json.loads(ok(pbx("token", "list", "--json")))
    assert [x["id"] for x in listed] == [t["id"]] and "token" not in listed[0]
    assert json.loads(ok(pbx("token", "remove", str(t["id"]), "--json"))) == {"id": t["id"], "removed": True}
    assert json.loads(ok(pbx("user", "remove", "nurse", "--json"))) == {"name": "nurse", "removed": True}


def test_init_json_prints_the_demo_passwords(invoke_cli: Invoke, tmp_path: Path) -> None:
    cfg = tmp_path / "site" / "pypbx.toml"
    d = json.loads(ok(invoke_cli("init", "--demo", "--json", "--config", str(cfg))))
    assert d["config"] == str(cfg) and [e["number"] for e in d["extensions"]] == ["1001", "1002", "1003", "1004"]
    assert all(len(e["password"]) >= 10 for e in d["extensions"])


# --------------------------------------------------------------------------- languages


def test_languages_come_from_the_prompt_catalog() -> None:
    manifest = tomllib.loads((P.SHIPPED / "manifest.toml").read_text(encoding="utf-8"))
    assert prompt_languages() == tuple(manifest["voices"]) and "fr" in prompt_languages()
    for lang in prompt_languages():  # every catalog language has its shipped prompts
        assert (P.SHIPPED / lang / "welcome.wav").is_file(), lang


@pytest.mark.parametrize("path", ["queue add", "queue edit", "ivr add", "ivr edit", "prompts import", "prompts say"])
def test_language_help_lists_every_accepted_language(path: str) -> None:
    cmd: click.Command = cli
    for name in path.split():
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    opt = next(p for p in cmd.params if {"--language", "--lang"} & set(getattr(p, "opts", ())))
    assert isinstance(opt, click.Option) and opt.help is not None
    for lang in prompt_languages():
        assert f" {lang}" in opt.help, (path, opt.help)


def test_every_listed_language_is_accepted(pbx: Invoke) -> None:
    for i, lang in enumerate(prompt_languages()):
        assert json.loads(ok(pbx("queue", "add", f"q{i}", "--language", lang, "--json")))["language"] == lang
        assert (
            json.loads(ok(pbx("ivr", "add", f"m{i}", "--language", lang, "--option", f"1=lang:{lang}", "--json")))[
                "language"
            ]
            == lang
        )
    langs = ", ".join(prompt_languages())
    refused(pbx("queue", "add", "qx", "--language", "de"), f"unknown language 'de' (valid: {langs})")
    refused(pbx("ivr", "add", "mx", "--language", "de"), f"unknown language 'de' (valid: {langs})")
    refused(pbx("ivr", "add", "mx", "--option", "9=lang:de"), f"unknown language 'de' (valid: {langs})")


# --------------------------------------------------------------------------- refused at creation


def test_ivr_route_refused_sub_menu_noted(pbx: Invoke) -> None:
    refused(pbx("ivr", "add", "main", "--option", "9=route:triage"), "unknown route 'triage' (there are none yet)")
    ok(pbx("route", "add", "triage"))  # a route can always come first (an empty one)
    ok(pbx("ivr", "add", "main", "--option", "9=route:triage"))
    # a sub-menu may not exist yet: menus point to each other ("back to main"), one comes first
    r = pbx("ivr", "add", "info", "--option", "1=menu:hours", "--option", "9=menu:main")
    assert r.exit_code == 0 and r.stderr == "Note: menu 'hours' does not exist (yet)\n"
    c = pbx("check")
    assert c.exit_code == 1 and "IVR menu info option 1: points to ivr:hours: unknown IVR menu 'hours'" in c.stdout


def test_mailbox_on_no_answer_needs_its_extension(pbx: Invoke) -> None:
    ok(pbx("ext", "add", "1001"))
    refused(
        pbx("voicemail", "box", "1009", "--on-no-answer"),
        "--on-no-answer: no extension 1009 (did you mean 1001?); add it first (pypbx ext add 1009)",
    )
    ok(pbx("voicemail", "box", "1001", "--on-no-answer"))
    # a queue's or a shared box may come before what sends calls to it (queue add --fallback voicemail)
    ok(pbx("voicemail", "box", "front"))
    ok(pbx("queue", "add", "front", "--max-wait", "300", "--fallback", "voicemail"))
    ok(pbx("voicemail", "box", "desk"))
    c = json.loads(pbx("check", "--json").stdout)
    desk = [f for f in c["warnings"] if f["where"] == "mailbox desk"]
    assert desk == [
        {
            "level": "warning",
            "where": "mailbox desk",
            "message": "unreachable: no extension or queue of that name, no --number, "
            "and no DID, IVR option, route or ring group sends calls to it",
        }
    ]
    assert not [f for f in c["warnings"] + c["errors"] if f["where"] in ("mailbox front", "mailbox 1001")]


def test_run_prints_check_warnings(pbx: Invoke, tmp_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pypbx.cli.system import preflight
    from pypbx.config import load_config

    ok(pbx("voicemail", "box", "desk"))
    preflight(load_config(tmp_config))
    err = capsys.readouterr().err
    assert (
        "Warning: mailbox desk: unreachable: no extension or queue of that name, no --number, "
        "and no DID, IVR option, route or ring group sends calls to it\n"
    ) in err


# --------------------------------------------------------------------------- the site clock


@pytest.fixture
def far_zones(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine in Pago Pago (UTC-11), the clinic in Kiritimati (UTC+14): 25 hours apart,
    so every instant is on a different calendar day in the two."""
    saved = sitetime.zone_name()
    monkeypatch.setenv("TZ", "Pacific/Pago_Pago")
    time.tzset()
    sitetime.set_zone("Pacific/Kiritimati")
    try:
        yield
    finally:
        sitetime.set_zone(saved)
        monkeypatch.undo()
        time.tzset()


# 2026-06-15 10:30 UTC = 2026-06-16 00:30 in Kiritimati = 2026-06-14 23:30 in Pago Pago
AT = dt.datetime(2026, 6, 15, 10, 30, tzinfo=dt.UTC).timestamp()


def test_voicemail_day_folder_and_time_on_the_site_clock(far_zones: None, tmp_path: Path) -> None:
    from pypbx import voicemail as V
    from pypbx.db import open_db

    assert time.strftime("%Y-%m-%d", time.localtime(AT)) == "2026-06-14"  # the machine's day

    async def go() -> V.VoicemailMeta:
        async with open_db(tmp_path / "db.sqlite") as db:
            await V.set_box(db, "desk")
            return await V.file_message(
                db, tmp_path, "desk", None, caller="555", did=None, call_id="c1", received_at=AT
            )

    meta = asyncio.run(go())
    assert Path(meta["path"]).parent.name == "2026-06-16"
    assert meta["time"] == "2026-06-16T00:30:00+14:00"


def test_recording_day_folder_on_the_site_clock(far_zones: None, tmp_path: Path) -> None:
    from pypbx.recordings import day_folder

    assert day_folder(tmp_path, AT) == tmp_path / "2026-06-16"


def test_email_times_on_the_site_clock(far_zones: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypbx import notify as N
    from pypbx.config import NotifyConfig

    monkeypatch.setattr(N.time, "time", lambda: AT)
    em = N.build_email(NotifyConfig(mail_from="pbx@clinic.test"), "nurse@clinic.test", N.probe_payload())
    assert em["Date"] == "Tue, 16 Jun 2026 00:30:00 +1400"
    assert N.probe_payload()["time"] == "2026-06-16T00:30:00+14:00"
    assert N._when(AT) == "2026-06-16 00:30:00"
    assert os.environ["TZ"] == "Pacific/Pago_Pago"


def test_bad_input_wording_is_exit_2_whatever_the_error_class() -> None:
    """The library words bad input "bad X: expected Y" / "unknown X (choose from ...)"; the
    CLI exits 2 for those even from an error class that says 1 (queue --priority 999,
    missed close --outcome bogus, route test --at tomorrow, did edit --to bogus:1 ...)."""
    from pypbx.cli import exit_code_of
    from pypbx.errors import PbxError, PbxUsageError

    assert exit_code_of(PbxError("bad priority 999: expected 0-100")) == 2
    assert exit_code_of(PbxError("unknown outcome 'bogus' (choose from reached, ...)")) == 2
    assert exit_code_of(PbxError("queue front is in use by DID +33144556677")) == 1
    assert exit_code_of(PbxUsageError("nothing to change")) == 2
