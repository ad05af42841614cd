"""Admin actions on a running PBX: CLI changes apply without a restart; status; TLS;
rate limits and oversize messages."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from tests.integration.harness import auth_users, run_sipp, self_signed_cert

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"


def test_cli_changes_take_effect_without_restart(pbx, tmp_path):
    p = pbx()
    p.start()
    target = f"127.0.0.1:{p.port}"
    # an extension added while running can register at once (after the reload tick)
    p.cli("ext", "add", "1005", "--name", "Triage", "--password", PASSWORD)
    p.wait_for(lambda: p.status()["extensions"] == 1, what="reload of extensions")
    res = run_sipp("register.xml", target, users=auth_users(["1005"], PASSWORD), workdir=tmp_path / "s")
    assert res.returncode == 0, res.errors
    # a new password: the old one is refused, the new one works
    p.cli("ext", "passwd", "1005", "--password", "a-brand-new-password")
    p.wait_for(lambda: "new password 1005" in p.log(), what="password reload")
    res = run_sipp("register_wrong_password.xml", target, users=auth_users(["1005"], PASSWORD), workdir=tmp_path / "s")
    assert res.returncode == 0, res.errors  # answered 401
    res = run_sipp("register.xml", target, users=auth_users(["1005"], "a-brand-new-password"), workdir=tmp_path / "s")
    assert res.returncode == 0, res.errors
    # removing the extension drops its live registrations
    assert p.api("registrations", aor="1005")
    p.cli("ext", "remove", "1005", "--yes")
    p.wait_for(lambda: not p.api("registrations", aor="1005"), what="bindings of a removed extension to go")
    assert p.status()["extensions"] == 0


def test_status_command_against_running_pbx(pbx, tmp_path):
    p = pbx()
    p.add_extensions(["1001", "1002"], PASSWORD)
    p.start()
    assert (
        run_sipp(
            "register.xml",
            f"127.0.0.1:{p.port}",
            calls=2,
            users=auth_users(["1001", "1002"], PASSWORD),
            workdir=tmp_path / "s",
        ).returncode
        == 0
    )
    out = json.loads(p.cli("status", "--json").stdout)
    assert {r["aor"] for r in out["registrations"]} == {"1001", "1002"}
    assert {(t["transport"], t["port"]) for t in out["transports"]} == {("UDP", p.port), ("TCP", p.port)}
    assert out["counters"]["register_ok"] == 2
    text = p.cli("status").stdout
    assert "1001" in text and "1002" in text
    show = p.cli("ext", "show", "1001").stdout
    assert "sip:1001@127.0.0.1" in show
    p.stop()
    res = p.cli("status", check=False)
    assert res.returncode == 1 and "not running" in (res.stderr + res.stdout)


def test_tls_transport_with_configured_certificate(pbx, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    p = pbx(sip={"tls_cert": str(cert), "tls_key": str(key)})
    p.add_extensions(["1001"], PASSWORD)
    p.start()
    tls_port = p.cfg.sip.tls_port
    assert any(t["transport"] == "TLS" for t in p.status()["transports"])
    ctx = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as c:
            c.sendall(b"\r\n\r\n")
            assert c.recv(2) == b"\r\n"
            c.sendall(
                (
                    f"OPTIONS sip:127.0.0.1:{tls_port} SIP/2.0\r\n"
                    "Via: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bK-tls-1\r\nMax-Forwards: 70\r\n"
                    "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tls-1\r\n"
                    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                ).encode()
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(4096)
    assert buf.startswith(b"SIP/2.0 200 ")
    # a real softphone registers over TLS
    from tests.integration.harness import Baresip

    phone = Baresip(tmp_path / "baresip", f"1001@127.0.0.1:{tls_port}", PASSWORD, transport="tls")
    cfg = phone.dir / "config"
    cfg.write_text(cfg.read_text() + f"sip_cafile {cert}\nsip_verify_server no\n")
    phone.start()
    try:
        regs = p.wait_for(lambda: p.api("registrations", aor="1001"), timeout=15, what="TLS registration")
        assert regs[0]["source_transport"] == "TLS"
    finally:
        phone.stop()


def test_rate_limit_drops_a_flood_and_logs_once(pbx, tmp_path):
    p = pbx(security={"rate_limit": 5.0, "rate_burst": 10})
    p.start()
    res = run_sipp(
        "options.xml",
        f"127.0.0.1:{p.port}",
        calls=60,
        rate=200,
        users=[("flood",)],
        local_ip="127.0.0.5",
        timeout=3,
        workdir=tmp_path / "s",
        extra=["-recv_timeout", "1000"],
    )
    assert 10 <= res.successful < 60
    log = p.log()
    assert "SECURITY rate-limited ip=127.0.0.5" in log
    assert log.count("SECURITY rate-limited ip=127.0.0.5") <= 2  # not one line per packet
    assert p.status()["counters"]["guard_dropped_rate"] > 0


def test_oversize_stream_message_closes_connection(pbx):
    p = pbx()
    p.start()
    c = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    head = b"OPTIONS sip:x SIP/2.0\r\nX-Filler: " + b"a" * 70000
    closed = False
    try:
        c.sendall(head)
        c.settimeout(5)
        closed = c.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    c.close()
    assert closed
    # and the server still answers
    res = run_sipp("options.xml", f"127.0.0.1:{p.port}", users=[("Yealink",)], workdir=p.workdir / "s")
    assert res.returncode == 0
