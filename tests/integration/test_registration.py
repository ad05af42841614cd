"""Phones register to a real pypbx process: sipp over UDP and TCP, baresip.

Each test starts its own PBX (its own ports and data directory) with ``pypbx run``.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.harness import (
    PbxProcess,
    auth_users,
    run_sipp,
    udp_exchange,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"
FIFTY = [str(n) for n in range(2001, 2051)]


def _contacts(p: PbxProcess, aor: str | None = None) -> list[dict]:
    return p.api("registrations", **({"aor": aor} if aor else {}))


@pytest.mark.parametrize("transport", ["u1", "tn"])
def test_fifty_extensions_register_with_digest(pbx, tmp_path, transport):
    p = pbx()
    p.add_extensions(FIFTY, PASSWORD)
    p.start()
    res = run_sipp(
        "register.xml",
        f"127.0.0.1:{p.port}",
        transport=transport,
        calls=50,
        rate=50,
        users=auth_users(FIFTY, PASSWORD),
        workdir=tmp_path / "sipp",
    )
    assert res.returncode == 0, res.errors or res.stdout[-2000:]
    assert res.successful == 50 and res.failed == 0
    regs = _contacts(p)
    assert sorted(r["aor"] for r in regs) == FIFTY
    want = "TCP" if transport == "tn" else "UDP"
    assert {r["source_transport"] for r in regs} == {want}
    assert all(3500 <= r["expires_in"] <= 3600 for r in regs)
    st = p.status()
    assert len(st["registrations"]) == 50
    assert st["counters"]["register_ok"] == 50
    # one line per new registration in the log
    assert p.log().count("registered 20") == 50


def test_unregister_removes_bindings(pbx, tmp_path):
    p = pbx()
    p.add_extensions(["1001"], PASSWORD)
    p.start()
    users = auth_users(["1001"], PASSWORD)
    assert run_sipp("register.xml", f"127.0.0.1:{p.port}", users=users, workdir=tmp_path / "s").returncode == 0
    assert len(_contacts(p, "1001")) == 1
    res = run_sipp("unregister.xml", f"127.0.0.1:{p.port}", users=users, workdir=tmp_path / "s")
    assert res.returncode == 0, res.errors
    assert _contacts(p, "1001") == []
    assert "unregistered 1001" in p.log()


def test_registrations_survive_restart(pbx, tmp_path):
    p = pbx()
    p.add_extensions(FIFTY[:10], PASSWORD)
    p.start()
    res = run_sipp(
        "register.xml",
        f"127.0.0.1:{p.port}",
        calls=10,
        rate=20,
        users=auth_users(FIFTY[:10], PASSWORD),
        workdir=tmp_path / "s",
    )
    assert res.returncode == 0, res.errors
    before = {(r["aor"], r["contact"]) for r in _contacts(p)}
    assert len(before) == 10
    assert p.stop() == 0
    assert "pypbx stopped" in p.log()
    p.start()
    after = {(r["aor"], r["contact"]) for r in _contacts(p)}
    assert after == before


def test_wrong_password_bans_source_then_recovers(pbx, tmp_path):
    # 127.0.0.2 is the attacker: only its address gets banned.
    p = pbx(security={"auth_fail_limit": 3, "auth_fail_window": 60, "ban_time": 3})
    p.add_extensions(["1001"], PASSWORD)
    p.start()
    target = f"127.0.0.1:{p.port}"
    bad = auth_users(["1001"], "wrong-password-1")
    for _ in range(3):
        res = run_sipp("register_wrong_password.xml", target, users=bad, local_ip="127.0.0.2", workdir=tmp_path / "s")
        assert res.returncode == 0, res.errors  # each wrong try is answered 401
    st = p.status()
    assert [b["ip"] for b in st["bans"]] == ["127.0.0.2"]
    assert "SECURITY banned ip=127.0.0.2" in p.log()
    # banned: even the right password gets no answer at all
    good = auth_users(["1001"], PASSWORD)
    res = run_sipp("register.xml", target, users=good, local_ip="127.0.0.2", timeout=2, workdir=tmp_path / "s")
    assert res.returncode != 0 and res.successful == 0
    assert _contacts(p, "1001") == []
    # other sources are not affected
    assert run_sipp("options.xml", target, users=[("Yealink SIP-T54W",)], workdir=tmp_path / "s").returncode == 0
    # the ban ends, the source recovers
    p.wait_for(lambda: not p.status()["bans"], timeout=15, what="the ban to expire")
    res = run_sipp("register.xml", target, users=good, local_ip="127.0.0.2", workdir=tmp_path / "s")
    assert res.returncode == 0, res.errors
    assert len(_contacts(p, "1001")) == 1


def test_unknown_user_gets_the_same_challenge(pbx, tmp_path):
    p = pbx()
    p.add_extensions(["1001"], PASSWORD)
    p.start()

    def challenge(user: str) -> list[str]:
        req = (
            f"REGISTER sip:127.0.0.1:{p.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{user}-{time.monotonic_ns()};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=a1\r\nTo: <sip:{user}@127.0.0.1>\r\n"
            f"Call-ID: enum-{user}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:5999>\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()
        resp = udp_exchange(req, p.port)
        assert resp is not None
        lines = resp.decode().split("\r\n")
        assert lines[0] == "SIP/2.0 401 Unauthorized"
        # strip what legitimately differs per request: nonce, branch, tags, user
        return [
            ln.split("nonce=")[0] for ln in lines if ln.startswith(("WWW-Authenticate", "SIP/2.0", "Content-Length"))
        ]

    assert challenge("1001") == challenge("9999")


def test_options_ping_answered_and_scanner_dropped(pbx, tmp_path):
    p = pbx()
    p.start()
    target = f"127.0.0.1:{p.port}"
    for transport in ("u1", "t1"):
        res = run_sipp(
            "options.xml", target, transport=transport, users=[("Grandstream GXP2170",)], workdir=tmp_path / "s"
        )
        assert res.returncode == 0, res.errors
    res = run_sipp(
        "options.xml", target, users=[("friendly-scanner",)], local_ip="127.0.0.3", timeout=2, workdir=tmp_path / "s"
    )
    assert res.successful == 0
    assert "SECURITY scanner-dropped ip=127.0.0.3" in p.log()


def test_sigterm_stops_cleanly(pbx):
    p = pbx()
    p.start()
    sock = p.cfg.socket_path
    assert sock.exists()
    assert p.stop(signal.SIGTERM) == 0
    assert not sock.exists()
    log = p.log()
    assert "stopping" in log and "pypbx stopped" in log
    assert "Traceback" not in log


def test_bad_config_stops_startup_with_one_line(tmp_path):
    import subprocess

    from tests.integration.harness import BIN

    cfg = tmp_path / "bad.toml"
    cfg.write_text('data_dir = "./var"\n[sip]\nudp_prot = 5060\n')
    res = subprocess.run([str(BIN / "pypbx"), "run", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "sip.udp_prot" in err[0]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers_and_unregisters(pbx, tmp_path, transport):
    from tests.integration.harness import Baresip

    p = pbx()
    p.add_extensions(["1001"], PASSWORD)
    p.start()
    phone = Baresip(tmp_path / "baresip", f"1001@127.0.0.1:{p.port}", PASSWORD, transport=transport)
    phone.start()
    try:
        regs = p.wait_for(lambda: _contacts(p, "1001"), timeout=15, what="baresip to register")
        assert len(regs) == 1
        r = regs[0]
        # baresip's Contact user is not the AoR ("1001-0x..."): kept exactly as sent
        assert r["contact"].startswith("sip:1001-0x")
        assert r["source_transport"] == transport.upper()
        assert r["user_agent"].startswith("baresip")
        p.wait_for(lambda: "200 OK" in phone.log(), timeout=10, what="baresip to see 200 OK")
    finally:
        phone.stop()
    # baresip unregisters on exit
    p.wait_for(lambda: not _contacts(p, "1001"), timeout=10, what="baresip to unregister")


def test_sha256_challenge_is_opt_in(pbx, tmp_path):
    """Offering SHA-256 too (RFC 8760) is a setting: with it, clients that support only
    MD5 still register when MD5 leads (sipp takes the first challenge)."""
    p = pbx(security={"digest_algorithms": ["MD5", "SHA-256"]})
    p.add_extensions(["1001"], PASSWORD)
    p.start()
    res = run_sipp("register.xml", f"127.0.0.1:{p.port}", users=auth_users(["1001"], PASSWORD), workdir=tmp_path / "s")
    assert res.returncode == 0, res.errors
    assert len(_contacts(p, "1001")) == 1


@pytest.mark.parametrize("algorithms", [["MD5"], ["SHA-256", "MD5"]])
def test_pjsua2_phone_registers(pbx, tmp_path, algorithms):
    """pjsip's user agent (what many softphones are built on), with MD5 and with SHA-256
    offered first (RFC 8760): it must pick an algorithm it supports and register -- the one
    offered first, as the PBX's log of the REGISTER it accepted shows (auth=...)."""
    from tests.phone.driver import PjPhone

    p = pbx(security={"digest_algorithms": algorithms})
    p.add_extensions(["1003"], PASSWORD)
    p.start()
    phone = PjPhone("pj1003", tmp_path)
    try:
        phone.cmd("register", server=f"127.0.0.1:{p.port}", user="1003", password=PASSWORD)
        ev = phone.wait_event(lambda e: e.get("event") == "reg", 15, "registration")
        assert ev["code"] == 200 and ev["active"]
        regs = _contacts(p, "1003")
        assert len(regs) == 1 and regs[0]["user_agent"] == "pjphone (pjsua2 test phone)"
        assert regs[0]["contact"].startswith("sip:1003@127.0.0.1:")
        [line] = [ln for ln in p.log().splitlines() if "registered 1003 " in ln and " unregistered" not in ln]
        assert line.endswith(f"auth={algorithms[0]}"), line  # the algorithm used on the wire
        phone.cmd("unregister")
        phone.wait_event(lambda e: e.get("event") == "reg" and not e["active"], 15, "unregistration")
        assert _contacts(p, "1003") == []
    finally:
        phone.close()
