"""cli.py through click's CliRunner: every command, and the error paths."""

from __future__ import annotations

import asyncio
import json
import re
import socketserver
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypbx import extensions as E
from pypbx import registrations as R
from pypbx.config import load_config, render_config
from pypbx.db import open_db


def creds(cfg_path: Path) -> dict:
    cfg = load_config(cfg_path)

    async def go():
        async with open_db(cfg.db_path) as db:
            return await E.credentials_map(db, cfg.sip.realm)

    return asyncio.run(go())


def demo_passwords(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(100[1-4])\s+\S+\s+\S+\s+\d+\s+\1\s+(\S+)\s*$", output, re.M))


# --------------------------------------------------------------------------- fake PBX local API


class FakePBX:
    """A Unix-socket server speaking the local API protocol; replies from ``self.replies[cmd]``."""

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
                if callable(reply):
                    reply = reply(req)
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


STATUS = {
    "version": "0.1.0",
    "pid": 4242,
    "uptime": 3723.0,
    "transports": [
        {"transport": "UDP", "host": "127.0.0.1", "port": 5060},
        {"transport": "TCP", "host": "127.0.0.1", "port": 5060},
    ],
    "registrations": [
        {
            "aor": "1001",
            "contact": "sip:1001@192.0.2.10:5062",
            "source_transport": "UDP",
            "source_host": "192.0.2.10",
            "source_port": 5062,
            "expires_in": 3540,
            "user_agent": "Yealink SIP-T46S",
        }
    ],
    "bans": [{"ip": "203.0.113.9", "reason": "auth failures", "expires_in": 540}],
    "counters": {"auth_failures": 7, "requests": 120},
}


# --------------------------------------------------------------------------- init


def test_init_demo_then_idempotent(invoke_cli: Callable, tmp_path: Path) -> None:
    cfg_path = tmp_path / "pypbx.toml"
    r = invoke_cli("init", "--config", str(cfg_path), "--demo", "--sip-port", "5070")
    assert r.exit_code == 0, r.output
    assert f"Wrote {cfg_path}" in r.stdout
    assert f"Database {tmp_path / 'var' / 'pypbx.db'} ready" in r.stdout
    assert "port 5070 (UDP/TCP), realm pypbx" in r.stdout
    assert "EXTENSION  NAME       SERVER" in r.stdout
    pws = demo_passwords(r.stdout)
    assert sorted(pws) == ["1001", "1002", "1003", "1004"]
    assert all(len(p) >= 16 for p in pws.values())
    cfg = load_config(cfg_path)
    assert (cfg.sip.udp_port, cfg.sip.tcp_port, cfg.data_dir) == (5070, 5070, tmp_path / "var")
    c = creds(cfg_path)
    for n, pw in pws.items():
        assert c[n]["SHA-256"] == E.ha1(n, "pypbx", pw, "SHA-256")

    # second run: clear error, nothing reprinted or reset
    r2 = invoke_cli("init", "--config", str(cfg_path), "--demo")
    assert r2.exit_code == 1
    assert r2.stderr == (
        f"Error: {cfg_path} already exists and its database has extensions; nothing to do "
        f"(use --force to overwrite the config and reset the demo passwords)\n"
    )
    assert demo_passwords(r2.output) == {}
    assert creds(cfg_path) == c

    r3 = invoke_cli("init", "--config", str(cfg_path))
    assert r3.exit_code == 1
    assert r3.stderr == f"Error: {cfg_path} already exists (use --force to overwrite it)\n"

    # --force: rewrites the config (default port again) and resets the demo passwords
    r4 = invoke_cli("init", "--config", str(cfg_path), "--demo", "--force")
    assert r4.exit_code == 0, r4.output
    new = demo_passwords(r4.stdout)
    assert sorted(new) == sorted(pws) and all(new[n] != pws[n] for n in new)
    assert load_config(cfg_path).sip.udp_port == 5060
    assert creds(cfg_path)["1001"]["MD5"] == E.ha1("1001", "pypbx", new["1001"])


def test_init_demo_with_existing_config_and_empty_db(invoke_cli: Callable, tmp_config: Path) -> None:
    r = invoke_cli("init", "--config", str(tmp_config), "--demo")
    assert r.exit_code == 0, r.output
    assert f"Using existing config {tmp_config}" in r.stdout
    assert sorted(demo_passwords(r.stdout)) == ["1001", "1002", "1003", "1004"]
    assert "SERVER" in r.stdout and "127.0.0.1" in r.stdout  # bind address of tmp_config


def test_init_plain_and_data_dir(invoke_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = invoke_cli("init", "--data-dir", "data")
    assert r.exit_code == 0, r.output
    assert "Wrote " + str(tmp_path / "pypbx.toml") in r.stdout
    assert "Start the PBX with: pypbx run\n" in r.stdout
    assert 'data_dir = "./data"' in (tmp_path / "pypbx.toml").read_text()
    assert (tmp_path / "data" / "pypbx.db").exists()
    assert demo_passwords(r.stdout) == {}
    r = invoke_cli("ext", "list")
    assert r.stdout == "No extensions. Add one with: pypbx ext add 1001 --name Reception\n"

    other = tmp_path / "etc" / "pbx.toml"
    r = invoke_cli("init", "--config", str(other), "--data-dir", str(tmp_path / "elsewhere"))
    assert r.exit_code == 0, r.output
    assert f'data_dir = "{tmp_path / "elsewhere"}"' in other.read_text()
    assert f"Start the PBX with: pypbx run --config {other}" in r.stdout


# --------------------------------------------------------------------------- --config handling


def test_config_option_before_after_and_env(
    invoke_cli: Callable, tmp_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke_cli("--config", str(tmp_config), "ext", "add", "1001", "--password", "0123456789ab").exit_code == 0
    for args in (
        ["--config", str(tmp_config), "ext", "list"],
        ["ext", "list", "--config", str(tmp_config)],
        ["ext", "--config", str(tmp_config), "list"],
        ["--config", "nope.toml", "ext", "list", "--config", str(tmp_config)],
    ):  # last one wins
        r = invoke_cli(*args)
        assert r.exit_code == 0, (args, r.output)
        assert r.stdout.splitlines()[1].split()[0] == "1001"
    r = invoke_cli("ext", "list", env={"PYPBX_CONFIG": str(tmp_config)})
    assert r.exit_code == 0 and "1001" in r.stdout
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pypbx.toml").unlink(missing_ok=True)
    r = invoke_cli("ext", "list")
    assert r.exit_code == 1
    assert r.stderr == (
        f"Error: config error: config file not found: {tmp_path / 'pypbx.toml'} (create one with 'pypbx init')\n"
    )


def test_unknown_key_in_config(invoke_cli: Callable, tmp_path: Path) -> None:
    p = tmp_path / "pypbx.toml"
    p.write_text(render_config().replace("udp_port", "udpport"))
    for args in (["ext", "list"], ["status"], ["run"], ["ext", "add", "1001"]):
        r = invoke_cli(*args, "--config", str(p))
        assert r.exit_code == 1
        line = p.read_text().splitlines().index("udpport = 5060    # 0 = transport off") + 1
        assert r.stderr == f"Error: config error: unknown key 'sip.udpport' ({p}, line {line})\n"


def test_bad_value_in_config(invoke_cli: Callable, tmp_path: Path) -> None:
    p = tmp_path / "pypbx.toml"
    p.write_text(render_config().replace("udp_port = 5060", 'udp_port = "abc"'))
    r = invoke_cli("ext", "list", "--config", str(p))
    assert r.exit_code == 1
    line = p.read_text().splitlines().index('udp_port = "abc"    # 0 = transport off') + 1
    assert r.stderr == f"Error: config error: sip.udp_port: expected an integer 0-65535, got 'abc' ({p}, line {line})\n"


# --------------------------------------------------------------------------- ext


def test_ext_lifecycle(invoke_cli: Callable, tmp_config: Path) -> None:
    c = ["--config", str(tmp_config)]
    r = invoke_cli("ext", "add", "1001", "--name", "Reception", *c)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Extension 1001 added (Reception)."
    pw = re.fullmatch(r"Password: (\S+)", lines[1]).group(1)
    assert len(pw) >= 16
    assert creds(tmp_config)["1001"]["MD5"] == E.ha1("1001", "pypbx", pw)

    r = invoke_cli("ext", "add", "1002", "--password", "a-good-long-one", *c)
    assert r.stdout == "Extension 1002 added.\n"  # given password is not echoed

    r = invoke_cli("ext", "list", *c)
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["NUMBER", "NAME", "ENABLED", "CREATED", "UPDATED"]
    assert [(row[0], row[1], row[2]) for row in rows[1:]] == [("1001", "Reception", "yes"), ("1002", "-", "yes")]

    r = invoke_cli("ext", "list", "--json", *c)
    data = json.loads(r.stdout)
    assert [(d["number"], d["name"], d["enabled"], d["realm"]) for d in data] == [
        ("1001", "Reception", True, "pypbx"),
        ("1002", "", True, "pypbx"),
    ]
    assert not any("ha1" in k for d in data for k in d)

    r = invoke_cli("ext", "passwd", "1002", *c)
    assert r.exit_code == 0
    new = re.search(r"^Password: (\S+)$", r.stdout, re.M).group(1)
    assert r.stdout.startswith("Password of extension 1002 changed.\n")
    assert creds(tmp_config)["1002"]["SHA-256"] == E.ha1("1002", "pypbx", new, "SHA-256")
    r = invoke_cli("ext", "passwd", "1002", "--password", "another-long-one", *c)
    assert r.stdout == "Password of extension 1002 changed.\n"
    assert creds(tmp_config)["1002"]["MD5"] == E.ha1("1002", "pypbx", "another-long-one")

    r = invoke_cli("ext", "remove", "1002", *c, input="n\n")
    assert r.exit_code == 1 and "Remove extension 1002?" in r.output
    r = invoke_cli("ext", "remove", "1002", *c, input="y\n")
    assert r.exit_code == 0 and r.stdout.endswith("Extension 1002 removed.\n")
    r = invoke_cli("ext", "remove", "1001", "--yes", *c)
    assert r.stdout == "Extension 1001 removed.\n"
    assert creds(tmp_config) == {}


@pytest.mark.parametrize(
    "args, error",
    [
        (["ext", "add", "1001"], "extension 1001 already exists"),
        (
            ["ext", "add", "1005", "--password", "short"],
            "password too weak: at least 10 characters needed (omit --password to generate a strong one)",
        ),
        (["ext", "add", "1"], "bad extension number '1': expected 2-8 digits"),
        (["ext", "add", "abc"], "bad extension number 'abc': expected 2-8 digits"),
        (["ext", "show", "1009"], "unknown extension '1009' (did you mean 1001?)"),
        (["ext", "passwd", "1009"], "unknown extension '1009' (did you mean 1001?)"),
        (
            ["ext", "passwd", "1001", "--password", "123"],
            "password too weak: at least 10 characters needed (omit --password to generate a strong one)",
        ),
        (["ext", "remove", "1009", "--yes"], "unknown extension '1009' (did you mean 1001?)"),
    ],
)
def test_ext_errors(invoke_cli: Callable, tmp_config: Path, args: list[str], error: str) -> None:
    assert invoke_cli("ext", "add", "1001", "--config", str(tmp_config)).exit_code == 0
    r = invoke_cli(*args, "--config", str(tmp_config))
    assert r.exit_code == (2 if error.startswith(("unknown extension", "bad ")) else 1)  # issue 12: bad input is exit 2
    assert r.stderr == f"Error: {error}\n"
    assert r.stdout == ""


def test_ext_show_offline_uses_saved_registrations(invoke_cli: Callable, tmp_config: Path) -> None:
    cfg = load_config(tmp_config)
    invoke_cli("ext", "add", "1001", "--name", "Reception", "--config", str(tmp_config))
    now = time.time()

    async def save():
        async with open_db(cfg.db_path) as db:
            await R.save_registrations(
                db,
                [
                    {
                        "aor": "1001",
                        "contact": "sip:1001@192.0.2.10:5062",
                        "expires_at": now + 600,
                        "source_transport": "TCP",
                        "source_host": "192.0.2.10",
                        "source_port": 5062,
                        "user_agent": "Grandstream",
                    },
                    {"aor": "1001", "contact": "sip:old@192.0.2.11", "expires_at": now - 5},
                ],
                [],
            )

    asyncio.run(save())
    r = invoke_cli("ext", "show", "1001", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Extension:  1001\nName:       Reception\nEnabled:    yes\nRealm:      pypbx\n" in out
    assert "Registrations: 1 (pypbx is not running; as last saved)" in out
    row = out.splitlines()[-1].split()
    assert row[:4] == ["1001", "sip:1001@192.0.2.10:5062", "TCP", "192.0.2.10:5062"]
    assert row[-1] == "Grandstream" and row[4].startswith("0:")  # h:mm:ss (issue 12)
    assert "sip:old@" not in out

    r = invoke_cli("ext", "show", "1001", "--json", "--config", str(tmp_config))
    data = json.loads(r.stdout)
    assert data["live"] is False and data["number"] == "1001"
    assert [x["contact"] for x in data["registrations"]] == ["sip:1001@192.0.2.10:5062"]


def test_ext_show_live(invoke_cli: Callable, tmp_config: Path, fake_pbx: FakePBX) -> None:
    invoke_cli("ext", "add", "1001", "--config", str(tmp_config))
    fake_pbx.replies["registrations"] = {"ok": True, "result": STATUS["registrations"]}
    r = invoke_cli("ext", "show", "1001", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    assert fake_pbx.requests == [{"cmd": "registrations", "aor": "1001"}]
    assert "Registrations: 1\n" in r.stdout
    assert "sip:1001@192.0.2.10:5062  UDP 192.0.2.10:5062  0:59:00     Yealink SIP-T46S" in r.stdout
    data = json.loads(invoke_cli("ext", "show", "1001", "--json", "--config", str(tmp_config)).stdout)
    assert data["live"] is True and data["registrations"][0]["user_agent"] == "Yealink SIP-T46S"


def test_ext_show_falls_back_when_live_query_fails(invoke_cli: Callable, tmp_config: Path, fake_pbx: FakePBX) -> None:
    invoke_cli("ext", "add", "1001", "--config", str(tmp_config))
    r = invoke_cli("ext", "show", "1001", "--config", str(tmp_config))  # fake knows no 'registrations'
    assert r.exit_code == 0, r.output
    assert "Registrations: 0 (live data unavailable: unknown command 'registrations'; as last saved)" in r.stdout


def test_ext_list_flags_other_realm(invoke_cli: Callable, tmp_config: Path) -> None:
    cfg = load_config(tmp_config)

    async def add():
        async with open_db(cfg.db_path) as db:
            await E.add_extension(db, "1001", "", "old-realm")

    asyncio.run(add())
    r = invoke_cli("ext", "list", "--config", str(tmp_config))
    assert (
        "Note: 1001 were created for another realm and cannot log in; give them new passwords "
        "with 'pypbx ext passwd NUMBER'."
    ) in r.stdout


# --------------------------------------------------------------------------- status


def test_status_not_running(invoke_cli: Callable, tmp_config: Path) -> None:
    r = invoke_cli("status", "--config", str(tmp_config))
    assert r.exit_code == 1
    sock = load_config(tmp_config).socket_path
    assert r.stderr == f"Error: pypbx is not running (no socket at {sock})\n"


def test_status_stale_socket_file(invoke_cli: Callable, tmp_config: Path) -> None:
    import socket

    sock = load_config(tmp_config).socket_path
    sock.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))  # bound but not listening -> connection refused
    try:
        r = invoke_cli("status", "--config", str(tmp_config))
    finally:
        s.close()
    assert r.exit_code == 1
    assert r.stderr == f"Error: pypbx is not running (no socket at {sock})\n"


def test_status_human(invoke_cli: Callable, tmp_config: Path, fake_pbx: FakePBX) -> None:
    fake_pbx.replies["status"] = {"ok": True, "result": STATUS}
    r = invoke_cli("status", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    assert fake_pbx.requests == [{"cmd": "status"}]
    lines = r.stdout.splitlines()
    assert lines[0] == "pypbx 0.1.0 running (pid 4242), up 1h 02m 03s"
    assert lines[1] == "Listening: UDP 127.0.0.1:5060, TCP 127.0.0.1:5060"
    assert lines[2] == "Registered contacts: 1"
    assert lines[3].split() == ["AOR", "CONTACT", "SOURCE", "EXPIRES", "IN", "USER", "AGENT"]
    assert lines[4].split() == [
        "1001",
        "sip:1001@192.0.2.10:5062",
        "UDP",
        "192.0.2.10:5062",
        "0:59:00",
        "Yealink",
        "SIP-T46S",
    ]
    assert lines[5] == "Active bans: 1"
    assert lines[7].split() == ["203.0.113.9", "auth", "failures", "0:09:00"]
    assert lines[8] == "Security counters: auth_failures=7, requests=120"


def test_status_json_and_empty(invoke_cli: Callable, tmp_config: Path, fake_pbx: FakePBX) -> None:
    fake_pbx.replies["status"] = {"ok": True, "result": STATUS}
    r = invoke_cli("status", "--json", "--config", str(tmp_config))
    assert json.loads(r.stdout) == STATUS
    fake_pbx.replies["status"] = {
        "ok": True,
        "result": {"uptime": 5, "transports": [], "registrations": [], "bans": [], "counters": {}},
    }
    r = invoke_cli("status", "--config", str(tmp_config))
    assert r.stdout == ("pypbx running, up 5s\nListening: nothing\nRegistered contacts: 0\nActive bans: none\n")
    fake_pbx.replies["status"] = {"ok": True, "result": {"uptime": 5, "extensions": 4, "connections": 2}}
    r = invoke_cli("status", "--config", str(tmp_config))
    assert r.stdout == (
        "pypbx running, up 5s\nListening: nothing\nExtensions: 4, TCP/TLS connections: 2\n"
        "Registered contacts: 0\nActive bans: none\n"
    )


def test_status_error_reply(invoke_cli: Callable, tmp_config: Path, fake_pbx: FakePBX) -> None:
    fake_pbx.replies["status"] = {"ok": False, "error": "shutting down"}
    r = invoke_cli("status", "--config", str(tmp_config))
    assert r.exit_code == 1 and r.stderr == "Error: shutting down\n"
    fake_pbx.replies["status"] = lambda req: "not an object"
    r = invoke_cli("status", "--config", str(tmp_config))
    assert r.exit_code == 1 and r.stderr == "Error: pypbx sent a malformed reply (no 'ok')\n"


# --------------------------------------------------------------------------- run


def test_run_calls_app_run_with_config_path(
    invoke_cli: Callable, tmp_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    fake = types.ModuleType("pypbx.app")
    fake.run = lambda path: calls.append(path) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pypbx.app", fake)
    r = invoke_cli("run", "--config", str(tmp_config))
    assert r.exit_code == 3
    assert calls == [tmp_config]


def test_run_missing_config(invoke_cli: Callable, tmp_path: Path) -> None:
    r = invoke_cli("run", "--config", str(tmp_path / "x.toml"))
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: config error: config file not found: ")


def test_help_lists_commands(invoke_cli: Callable) -> None:
    r = invoke_cli("--help")
    for cmd in ("init", "run", "status", "ext"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M), cmd
    r = invoke_cli("ext", "--help")
    for cmd in ("add", "list", "show", "passwd", "remove"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M), cmd
