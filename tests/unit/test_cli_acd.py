"""cli.py: pypbx queue / agent / callbacks through click's CliRunner, with the error paths."""

from __future__ import annotations

import asyncio
import json
import re
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypbx import acdstore as S
from pypbx.config import load_config
from pypbx.db import open_db


class FakePBX:
    """A Unix-socket server speaking the local API protocol; replies from ``self.replies[cmd]``
    (unknown commands get the real server's 'unknown command' error)."""

    def __init__(self, path: Path):
        self.path = path
        self.requests: list[dict] = []
        self.replies: dict[str, Any] = {}
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                req = json.loads(self.rfile.readline())
                fake.requests.append(req)
                reply = fake.replies.get(req["cmd"], {"ok": False, "error": f"unknown command {req['cmd']!r}"})
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        path.parent.mkdir(parents=True, exist_ok=True)
        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def fake_pbx(tmp_config: Path) -> Iterator[FakePBX]:
    pbx = FakePBX(load_config(tmp_config).socket_path)
    yield pbx
    pbx.close()


@pytest.fixture
def pbx(invoke_cli: Callable, tmp_config: Path) -> Callable[..., Any]:
    """``pbx('queue', 'list')`` = invoke_cli with --config; extensions 1001-1003 exist."""

    def run(*args: str, input: str | None = None) -> Any:
        return invoke_cli(*args, "--config", str(tmp_config), input=input)

    for n in ("1001", "1002", "1003"):
        assert run("ext", "add", n).exit_code == 0
    return run


def store(tmp_config: Path, fn: Callable) -> Any:
    cfg = load_config(tmp_config)

    async def go() -> Any:
        async with open_db(cfg.db_path) as db:
            return await fn(db)

    return asyncio.run(go())


def ok(r: Any) -> str:
    assert r.exit_code == 0, r.output
    return r.stdout


def fails(r: Any, message: str) -> None:
    # issue 12: bad input (a name that does not exist, nothing to change) is exit 2, a failure 1
    assert r.exit_code == (2 if message.startswith(_BAD_INPUT) else 1), r.output
    assert r.stderr == f"Error: {message}\n"
    assert r.stdout == ""


def bad_input(r: Any, message: str) -> None:
    """Issue 12: bad input (a name that does not exist, a value a rule cannot take) is one line, exit 2."""
    assert r.exit_code == 2, r.output
    assert r.stderr == f"Error: {message}\n"
    assert r.stdout == ""


_BAD_INPUT = (
    "bad ",  # a value a setting cannot take
    "unknown ",  # a name or a choice that does not exist
    "nothing to change",
)


def clinic(pbx: Callable) -> None:
    ok(pbx("queue", "add", "front_desk", "--when-empty", "refuse", "--fallback", "extension:1001"))
    ok(
        pbx(
            "queue",
            "add",
            "new_patients",
            "--strategy",
            "best_skill_then_longest_idle",
            "--skills",
            "new_patients:8,korean:5",
            "--overflow-after",
            "20",
            "--overflow-to",
            "queue:front_desk",
            "--relax",
            "30:5,60:1",
            "--language",
            "ko",
        )
    )
    ok(pbx("agent", "add", "alice", "--name", "Alice Kim", "--skills", "new_patients:8,korean:6"))
    ok(pbx("agent", "add", "bob", "--name", "Bob", "--skills", "results:3", "--wrap-up", "30"))


# --------------------------------------------------------------------------- queue


def test_queue_add_list_show_edit_remove(pbx: Callable, tmp_config: Path) -> None:
    assert ok(pbx("queue", "list")) == "No queues. Add one with: pypbx queue add front_desk\n"
    assert ok(pbx("queue", "add", "front_desk")) == "Queue front_desk added (longest_idle, skills -).\n"
    out = ok(
        pbx(
            "queue",
            "add",
            "new_patients",
            "--strategy",
            "best-skill-then-longest-idle",
            "--skills",
            "new_patients:8,korean:5",
            "--ring-timeout",
            "12",
            "--wrap-up",
            "30",
            "--max-wait",
            "600",
            "--max-length",
            "20",
            "--when-empty",
            "refuse",
            "--fallback",
            "ext:1001",
            "--overflow-after",
            "20",
            "--overflow-to",
            "queue:front_desk",
            "--relax",
            "30:5,60:1",
            "--announce-every",
            "45",
            "--no-callback",
            "--language",
            "ko",
        )
    )
    assert out == "Queue new_patients added (best_skill_then_longest_idle, skills korean:5,new_patients:8).\n"
    cfg = store(tmp_config, lambda db: S.get_queue(db, "new_patients")).config
    assert cfg.to_dict() == {
        "name": "new_patients",
        "required_skills": {"new_patients": 8, "korean": 5},
        "strategy": "best_skill_then_longest_idle",
        "ring_timeout": 12.0,
        "wrap_up": 30.0,
        "max_wait": 600.0,
        "max_length": 20,
        "join_empty": "refuse",
        "fallback": {"kind": "extension", "target": "1001"},
        "overflow": {"after": 20.0, "target": {"kind": "queue", "target": "front_desk"}},
        "relaxation": [{"after": 30.0, "min_level": 5}, {"after": 60.0, "min_level": 1}],
        "rna_misses_before_pause": 1,
        "announce_interval": 45.0,
        "callback_allowed": False,
        "callback_max_attempts": 3,
        "callback_retry_delay": 120.0,
        "language": "ko",
        "priority": 0,
        "urgent_prompt": "",
        "overflow_when_busy": False,
    }

    ok(pbx("agent", "add", "alice", "--name", "Alice Kim", "--skills", "new_patients:9,korean:5"))
    ok(pbx("agent", "login", "alice", "1002"))
    lines = ok(pbx("queue", "list")).splitlines()
    assert lines[0].split() == [
        "NAME",
        "STRATEGY",
        "SKILLS",
        "RING",
        "WRAP-UP",
        "OVERFLOW",
        "WHEN",
        "EMPTY",
        "CALLBACK",
        "LANG",
        "AGENTS",
        "IN/ALL",
    ]
    assert lines[1].split() == ["front_desk", "longest_idle", "-", "15s", "10s", "-", "join", "yes", "en", "1/1"]
    assert lines[2].split() == [
        "new_patients",
        "best_skill_then_longest_idle",
        "korean:5,new_patients:8",
        "12s",
        "30s",
        "after=20,queue:front_desk",
        "refuse",
        "no",
        "ko",
        "1/1",
    ]
    data = json.loads(ok(pbx("queue", "list", "--json")))
    assert [(d["name"], d["strategy"], d["agents_logged_in"]) for d in data] == [
        ("front_desk", "longest_idle", 1),
        ("new_patients", "best_skill_then_longest_idle", 1),
    ]
    assert data[1]["overflow"] == {"after": 20.0, "target": {"kind": "queue", "target": "front_desk"}}

    out = ok(pbx("queue", "edit", "new_patients", "--ring-timeout", "20", "--callback", "--overflow-after", "40"))
    assert out.startswith("Queue new_patients updated.\n")
    assert "  Ring timeout:   20s\n" in out and "  Callback:       offered\n" in out
    assert "  Overflow:       after=40,queue:front_desk\n" in out
    assert "  Skills:         korean:5,new_patients:8\n" in out  # untouched
    out = ok(pbx("queue", "edit", "new_patients", "--overflow-to", "none", "--max-wait", "0", "--relax", "none"))
    assert "  Overflow:       -\n" in out and "  Max wait:       no limit\n" in out
    assert "  Relaxation:     -\n" in out

    r = pbx("queue", "remove", "front_desk", input="n\n")
    assert r.exit_code == 1 and "Remove queue front_desk?" in r.output
    r = pbx("queue", "remove", "front_desk", input="y\n")
    assert r.exit_code == 0 and r.stdout.endswith("Queue front_desk removed.\n")
    assert ok(pbx("queue", "remove", "new_patients", "--yes")) == "Queue new_patients removed.\n"
    assert json.loads(ok(pbx("queue", "list", "--json"))) == []


def test_queue_show_offline_lists_config_and_saved_agent_states(pbx: Callable) -> None:
    clinic(pbx)
    ok(pbx("agent", "login", "alice", "1001"))
    ok(pbx("agent", "pause", "alice", "--reason", "lunch"))
    out = ok(pbx("queue", "show", "new_patients"))
    assert out.startswith(
        "Queue:          new_patients\n"
        "Strategy:       best_skill_then_longest_idle\n"
        "Skills:         korean:5,new_patients:8\n"
        "Ring timeout:   15s\n"
        "Wrap-up:        10s\n"
        "Max wait:       no limit\n"
        "Max length:     no limit\n"
        "When empty:     join\n"
        "Overflow:       after=20,queue:front_desk\n"
        "Relaxation:     30:5,60:1\n"
        "Announce every: 60s\n"
        "Callback:       offered\n"
        "Language:       ko\n"
        "Waiting: unknown (pypbx is not running)\n"
        "Agents: 1 (saved states; pypbx is not running)\n"
    )
    rows = [line.split() for line in out.splitlines()[-2:]]
    assert rows[0] == ["AGENT", "NAME", "STATE", "EXTENSION", "FOR"]
    assert rows[1][:6] == ["alice", "Alice", "Kim", "paused", "(lunch)", "1001"]  # bob lacks the skills
    front = ok(pbx("queue", "show", "front_desk"))
    assert "When empty:     refuse (fallback extension:1001)\n" in front
    assert "Agents: 2 (saved states; pypbx is not running)" in front

    data = json.loads(ok(pbx("queue", "show", "new_patients", "--json")))
    assert data["live"] is False and data["note"] == "pypbx is not running" and data["waiting"] == []
    assert data["required_skills"] == {"new_patients": 8, "korean": 5}
    assert [(a["id"], a["state"], a["pause_reason"], a["extension"]) for a in data["agents"]] == [
        ("alice", "paused", "lunch", "1001")
    ]


def test_queue_show_pbx_without_queue_status(pbx: Callable, fake_pbx: FakePBX) -> None:
    clinic(pbx)
    out = ok(pbx("queue", "show", "front_desk"))
    assert "Waiting: unknown (the running pypbx does not report queue status yet)\n" in out
    assert "Agents: 2 (saved states; the running pypbx does not report queue status yet)\n" in out
    assert fake_pbx.requests[-1] == {"cmd": "queue_status", "queue": "front_desk"}


def test_queue_show_live(pbx: Callable, fake_pbx: FakePBX) -> None:
    clinic(pbx)
    fake_pbx.replies["queue_status"] = {
        "ok": True,
        "result": {
            "waiting": [
                {
                    "call_id": "c2",
                    "number": "+821055512345",
                    "position": 2,
                    "wait": 75,
                    "priority": 0,
                    "is_callback": True,
                    "ringing": [],
                },
                {
                    "call_id": "c1",
                    "number": "+3312345",
                    "position": 1,
                    "wait": 130,
                    "priority": 1,
                    "is_callback": False,
                    "ringing": ["alice"],
                    "service_line": "Appointments",
                },
            ],
            "agents": [
                {"id": "alice", "name": "Alice Kim", "state": "ringing", "extension": "1001", "since": 4},
                {
                    "id": "dora",
                    "name": "Dora",
                    "state": "paused",
                    "pause_reason": "ring_no_answer",
                    "extension": "1003",
                    "since": 65,
                },
            ],
            "ewt": 240,
        },
    }
    out = ok(pbx("queue", "show", "new_patients"))
    assert "Waiting: 2 (estimated wait for a new caller 4m 00s)\n" in out
    lines = out.splitlines()
    i = lines.index("Waiting: 2 (estimated wait for a new caller 4m 00s)")
    assert lines[i + 1].split() == ["POS", "CALLER", "LINE", "WAITING", "PRIORITY", "KIND", "RINGING"]
    assert lines[i + 2].split() == ["1", "+3312345", "Appointments", "0:02:10", "1", "caller", "alice"]
    assert lines[i + 3].split() == ["2", "+821055512345", "-", "0:01:15", "0", "callback", "-"]
    assert lines[i + 4] == "Agents: 2"
    assert lines[i + 6].split() == ["alice", "Alice", "Kim", "ringing", "1001", "0:00:04"]
    assert lines[i + 7].split() == ["dora", "Dora", "paused", "(ring_no_answer)", "1003", "0:01:05"]
    data = json.loads(ok(pbx("queue", "show", "new_patients", "--json")))
    assert data["live"] is True and data["ewt"] == 240 and len(data["waiting"]) == 2
    assert [a["id"] for a in data["agents"]] == ["alice", "dora"]

    fake_pbx.replies["queue_status"] = {"ok": True, "result": {"waiting": []}}
    out = ok(pbx("queue", "show", "new_patients"))
    assert "Waiting: 0\nAgents: 1\n" in out  # no live agents in the reply: saved ones
    fake_pbx.replies["queue_status"] = {"ok": False, "error": "ACD not started"}
    out = ok(pbx("queue", "show", "new_patients"))
    assert "Waiting: unknown (live data unavailable: ACD not started)\n" in out


@pytest.mark.parametrize(
    "args, error",
    [
        (["queue", "add", "front_desk"], "queue front_desk already exists"),
        (
            ["queue", "add", "Front Desk"],
            "bad queue name 'Front Desk': expected 1-32 lower-case letters, digits, _ or - (starting with a letter)",
        ),
        (["queue", "add", "q", "--skills", "korean"], "bad skill 'korean': expected NAME:LEVEL, e.g. new_patients:8"),
        (["queue", "add", "q", "--skills", "korean:12"], "bad level 12 for skill korean: expected 1-10"),
        (["queue", "add", "q", "--ring-timeout", "abc"], "bad ring timeout 'abc': expected seconds"),
        (["queue", "add", "q", "--wrap-up", "-3"], "bad wrap-up -3: expected 0-3600 seconds"),
        (["queue", "add", "q", "--max-length", "many"], "bad max length 'many': expected a whole number"),
        (
            ["queue", "add", "q", "--when-empty", "refuse"],
            "queue q: when empty 'refuse' needs a fallback destination (e.g. extension:1001)",
        ),
        (["queue", "add", "q", "--when-empty", "wait"], "bad when-empty 'wait': choose join or refuse"),
        (
            ["queue", "add", "q", "--fallback", "1001"],
            "bad destination '1001': expected KIND:TARGET with KIND one of queue, extension, ring_group, external, voicemail "
            "(e.g. extension:1001)",
        ),
        (["queue", "add", "q", "--fallback", "extension:1999"], "fallback destination extension 1999 does not exist"),
        (
            ["queue", "add", "q", "--max-wait", "300", "--fallback", "voicemail"],
            "fallback destination mailbox q does not exist (add it first: pypbx voicemail box q)",
        ),
        (
            ["queue", "add", "q", "--fallback", "voicemail:bad box"],
            "bad destination voicemail:bad box: expected a mailbox name",
        ),
        (
            ["queue", "add", "q", "--overflow-after", "20"],
            "overflow needs both a time and a destination (--overflow-after N --overflow-to TARGET)",
        ),
        (
            ["queue", "add", "q", "--overflow-after", "20", "--overflow-to", "queue:nowhere"],
            "overflow destination queue nowhere does not exist (add it first)",
        ),
        (
            ["queue", "add", "q", "--overflow-after", "20", "--overflow-to", "external:call-me"],
            "bad destination external:call-me: expected a phone number (digits, optional +)",
        ),
        (
            ["queue", "add", "q", "--relax", "30:5,60:6"],
            "relaxation: the level must go down as the wait grows (30:5 then 60:6)",
        ),
        (["queue", "add", "q", "--language", "de"], "unknown language 'de' (valid: en, ko, ru, zh, fr)"),
        (["queue", "show", "nope"], "unknown queue 'nope' (valid: front_desk, new_patients)"),
        (["queue", "edit", "nope", "--wrap-up", "5"], "unknown queue 'nope' (valid: front_desk, new_patients)"),
        (["queue", "edit", "front_desk"], "nothing to change: give at least one option (see pypbx queue edit --help)"),
        (
            ["queue", "edit", "new_patients", "--overflow-to", "queue:new_patients"],
            "queue new_patients cannot overflow to itself",
        ),
        (["queue", "remove", "nope", "--yes"], "unknown queue 'nope' (valid: front_desk, new_patients)"),
        (["queue", "remove", "front_desk", "--yes"], "queue front_desk is in use: queue new_patients overflows to it"),
    ],
)
def test_queue_errors(pbx: Callable, args: list[str], error: str) -> None:
    clinic(pbx)
    fails(pbx(*args), error)


def test_queue_unknown_strategy_is_bad_usage(pbx: Callable) -> None:
    """Issue 12: a bad choice is bad input (exit 2, one line), as for every option."""
    clinic(pbx)
    r = pbx("queue", "add", "q", "--strategy", "fastest")
    assert r.exit_code == 2, r.output
    assert r.stderr == (
        "Error: unknown strategy 'fastest' (valid: best_skill_then_longest_idle, fewest_calls, "
        "least_talk_time, longest_idle, random, ring_all, round_robin)\n"
    )
    assert r.stdout == ""


# --------------------------------------------------------------------------- agent


def test_agent_lifecycle(pbx: Callable, tmp_config: Path) -> None:
    assert (
        ok(pbx("agent", "list"))
        == "No agents. Add one with: pypbx agent add alice --name 'Alice Kim' --skills new_patients:8\n"
    )
    clinic(pbx)
    assert ok(pbx("agent", "add", "carol", "--name", "Carol")) == "Agent carol added (Carol), skills -.\n"
    lines = ok(pbx("agent", "list")).splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "EXTENSION", "FOR", "SKILLS", "WRAP-UP"]
    assert lines[1].split()[:4] == ["alice", "Alice", "Kim", "logged_out"]
    assert lines[1].split()[-2:] == ["korean:6,new_patients:8", "-"]
    assert lines[2].split()[-2:] == ["results:3", "30s"]

    assert ok(pbx("agent", "login", "alice", "1001")) == "Agent alice logged in at 1001 (available).\n"
    assert ok(pbx("agent", "pause", "alice")) == "Agent alice paused (break).\n"
    assert ok(pbx("agent", "pause", "alice", "--reason", "lunch")) == "Agent alice paused (lunch).\n"
    assert ok(pbx("agent", "login", "alice", "1002")) == "Agent alice moved from 1001 to 1002 (paused (lunch)).\n"
    assert ok(pbx("agent", "unpause", "alice")) == "Agent alice available at 1002.\n"
    assert (
        ok(pbx("agent", "skills", "alice", "new_patients:9,results:2"))
        == "Agent alice skills: new_patients:9,results:2\n"
    )

    out = ok(pbx("agent", "show", "alice"))
    assert out.startswith("Agent:      alice\nName:       Alice Kim\nState:      available for ")
    assert "Extension:  1002\nSkills:     new_patients:9,results:2\nWrap-up:    as the queue\n" in out
    assert "Queues:     front_desk\n" in out  # lost korean: no longer fits new_patients
    kinds = [line.split()[2] for line in out.splitlines()[out.splitlines().index("Recent events:") + 2 :]]
    assert kinds == ["SKILLS", "UNPAUSE", "LOGIN", "PAUSE", "PAUSE", "LOGIN"]
    assert re.search(r"  LOGIN +extension=1002 moved_from=1001\n", out)

    data = json.loads(ok(pbx("agent", "show", "alice", "--json")))
    assert (data["id"], data["state"], data["extension"], data["skills"], data["queues"]) == (
        "alice",
        "available",
        "1002",
        {"new_patients": 9, "results": 2},
        ["front_desk"],
    )
    assert [e["kind"] for e in data["events"]][:2] == ["SKILLS", "UNPAUSE"]

    data = json.loads(ok(pbx("agent", "list", "--json")))
    assert [(a["id"], a["state"], a["extension"], a["pause_reason"]) for a in data] == [
        ("alice", "available", "1002", None),
        ("bob", "logged_out", None, None),
        ("carol", "logged_out", None, None),
    ]

    assert ok(pbx("agent", "logout", "alice")) == "Agent alice logged out (was at 1002).\n"
    r = pbx("agent", "remove", "carol", input="n\n")
    assert r.exit_code == 1 and "Remove agent carol (Carol)?" in r.output
    assert ok(pbx("agent", "remove", "carol", "--yes")) == "Agent carol removed.\n"
    assert [a.id for a in store(tmp_config, S.list_agents)] == ["alice", "bob"]
    events = store(tmp_config, lambda db: S.agent_events(db, "alice"))
    assert events[0]["kind"] == "LOGOUT" and events[0]["detail"] == {"extension": "1002"}


@pytest.mark.parametrize(
    "args, error",
    [
        (["agent", "add", "alice", "--name", "Again"], "agent alice already exists"),
        (
            ["agent", "add", "Dr Who", "--name", "Who"],
            "bad agent id 'Dr Who': expected 1-32 lower-case letters, digits, '.', '_' or '-'",
        ),
        (["agent", "add", "dora", "--name", ""], "an agent needs a name (--name)"),
        (
            ["agent", "add", "dora", "--name", "Dora", "--skills", "korean:0"],
            "bad level 0 for skill korean: expected 1-10",
        ),
        (["agent", "add", "dora", "--name", "Dora", "--wrap-up", "soon"], "bad wrap-up 'soon': expected seconds"),
        (["agent", "show", "zed"], "unknown agent 'zed' (valid: alice, bob)"),
        (["agent", "skills", "zed", "a:1"], "unknown agent 'zed' (valid: alice, bob)"),
        (["agent", "skills", "alice", "a:11"], "bad level 11 for skill a: expected 1-10"),
        (["agent", "login", "zed", "1001"], "unknown agent 'zed' (valid: alice, bob)"),
        (["agent", "login", "bob", "1009"], "unknown extension '1009' (did you mean 1003 or 1002 or 1001?)"),
        (["agent", "login", "bob", "1001"], "extension 1001 is in use by agent alice (log them out first)"),
        (["agent", "login", "alice", "1001"], "agent alice is already logged in at 1001"),
        (["agent", "logout", "bob"], "agent bob is not logged in"),
        (["agent", "pause", "bob"], "agent bob is not logged in"),
        (
            ["agent", "pause", "alice", "--reason", "nap"],
            "unknown pause reason 'nap' (valid: admin, break, lunch, other)",
        ),
        (
            ["agent", "pause", "alice", "--reason", "ring_no_answer"],
            "unknown pause reason 'ring_no_answer' (valid: admin, break, lunch, other)",
        ),
        (["agent", "unpause", "alice"], "agent alice is not paused"),
        (["agent", "remove", "zed", "--yes"], "unknown agent 'zed' (valid: alice, bob)"),
    ],
)
def test_agent_errors(pbx: Callable, args: list[str], error: str) -> None:
    clinic(pbx)
    ok(pbx("agent", "login", "alice", "1001"))
    fails(pbx(*args), error)


def test_agent_add_needs_name(pbx: Callable) -> None:
    r = pbx("agent", "add", "dora")
    assert r.exit_code == 2 and "Missing option '--name'" in r.stderr


def test_agent_changes_reach_the_running_pbx(pbx: Callable, fake_pbx: FakePBX) -> None:
    clinic(pbx)  # the fake does not know agent_state: quiet
    ok(pbx("agent", "login", "alice", "1001"))
    assert fake_pbx.requests[-1] == {"cmd": "agent_state", "agent": "alice"}
    fake_pbx.replies["agent_state"] = {"ok": True, "result": None}
    for args in (
        ["agent", "pause", "alice", "--reason", "admin"],
        ["agent", "unpause", "alice"],
        ["agent", "skills", "alice", "korean:2"],
        ["agent", "logout", "alice"],
        ["agent", "remove", "bob", "--yes"],
    ):
        r = pbx(*args)
        assert r.exit_code == 0 and r.stderr == "", r.output
        assert fake_pbx.requests[-1] == {"cmd": "agent_state", "agent": args[2]}
    fake_pbx.replies["agent_state"] = {"ok": False, "error": "agent alice is on a call"}
    r = pbx("agent", "login", "alice", "1002")
    assert r.exit_code == 0 and r.stdout == "Agent alice logged in at 1002 (available).\n"
    assert r.stderr == (
        "Note: the running PBX did not take the change now (agent alice is on a call); "
        "it will pick it up from the database.\n"
    )


def test_agent_changes_when_pbx_not_running_are_quiet(pbx: Callable) -> None:
    clinic(pbx)
    r = pbx("agent", "login", "alice", "1001")
    assert r.exit_code == 0 and r.stderr == ""


# --------------------------------------------------------------------------- callbacks


def test_callbacks_listing(pbx: Callable, tmp_config: Path) -> None:
    clinic(pbx)
    assert ok(pbx("callbacks")) == "No pending callbacks.\n"
    assert ok(pbx("callbacks", "--status", "all")) == "No callbacks.\n"

    async def fill(db: Any) -> None:
        _a, _ = await S.request_callback(db, "+3312345", "new_patients", call_id="c1", now=1_795_000_000.0)
        await S.request_callback(db, "+3312345", "new_patients", now=1_795_000_100.0)
        b, _ = await S.request_callback(db, "+821055512345", "front_desk", now=1_795_000_200.0)
        c, _ = await S.request_callback(db, "+79161234567", "front_desk", now=1_795_000_300.0)
        await S.update_callback(db, b.id, "dialing", agent="alice", now=1_795_000_400.0)
        await S.update_callback(db, b.id, "done", result="connected")
        await S.update_callback(db, c.id, "dialing", agent="bob", now=1_795_000_500.0)
        await S.update_callback(db, c.id, "failed", result="no answer")

    store(tmp_config, fill)
    lines = ok(pbx("callbacks")).splitlines()
    assert lines[0].split() == [
        "ID",
        "NUMBER",
        "QUEUE",
        "REQUESTED",
        "STATUS",
        "ATTEMPTS",
        "LAST",
        "ATTEMPT",
        "AGENT",
        "RESULT",
        "MERGED",
    ]
    assert len(lines) == 2
    row = lines[1].split()
    assert row[:3] == ["1", "+3312345", "new_patients"] and row[5:] == ["pending", "0", "-", "-", "-", "1"]
    done = ok(pbx("callbacks", "--status", "done")).splitlines()
    # numbers of other countries than the site's (FR) shown internationally; --json keeps E.164
    cells = re.split(r"\s{2,}", done[1].strip())
    assert len(done) == 2 and cells[:3] == ["2", "+82 10-5551-2345", "front_desk"]
    assert cells[4:6] == ["done", "1"] and cells[-3:] == ["alice", "connected", "0"]
    failed = ok(pbx("callbacks", "--status", "failed")).splitlines()
    cells = re.split(r"\s{2,}", failed[1].strip())
    assert len(failed) == 2 and cells[1] == "+7 916 123-45-67"
    assert cells[4:6] == ["failed", "1"] and cells[-3:] == ["bob", "no answer", "0"]
    data = json.loads(ok(pbx("callbacks", "--status", "all", "--json")))
    assert [(d["id"], d["status"], d["attempts"], d["merged_count"]) for d in data] == [
        (1, "pending", 0, 1),
        (2, "done", 1, 0),
        (3, "failed", 1, 0),
    ]
    data = json.loads(ok(pbx("callbacks", "--json", "--queue", "front_desk", "--status", "all")))
    assert [d["number"] for d in data] == ["+821055512345", "+79161234567"]
    assert json.loads(ok(pbx("callbacks", "--json"))) == [
        {
            "id": 1,
            "number": "+3312345",
            "queue": "new_patients",
            "requested_at": 1_795_000_000.0,
            "status": "pending",
            "attempts": 0,
            "last_attempt_at": None,
            "call_id": "c1",
            "agent": None,
            "result": None,
            "merged_count": 1,
        }
    ]


def test_callbacks_errors(pbx: Callable) -> None:
    fails(
        pbx("callbacks", "--status", "lost"),
        "unknown callback status 'lost' (choose from pending, dialing, done, failed, all)",
    )


def test_commands_need_a_config(invoke_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["queue", "list"], ["agent", "list"], ["callbacks"]):
        fails(
            invoke_cli(*args),
            f"config error: config file not found: {tmp_path / 'pypbx.toml'} (create one with 'pypbx init')",
        )


def test_queue_fallback_to_its_mailbox(pbx: Callable) -> None:
    """--fallback voicemail = the mailbox named like the queue; voicemail:BOX any box."""
    ok(pbx("voicemail", "box", "front"))
    ok(pbx("voicemail", "box", "1001"))
    ok(pbx("queue", "add", "front", "--max-wait", "300", "--fallback", "voicemail"))
    q = json.loads(ok(pbx("queue", "show", "front", "--json")))
    assert q["max_wait"] == 300 and q["fallback"] == {"kind": "voicemail", "target": "front"}
    ok(pbx("queue", "edit", "front", "--fallback", "voicemail:1001"))
    assert json.loads(ok(pbx("queue", "show", "front", "--json")))["fallback"]["target"] == "1001"
    assert "Max wait:       300s, then voicemail:1001\n" in ok(pbx("queue", "show", "front"))
