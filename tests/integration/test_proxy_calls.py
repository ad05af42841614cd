"""Calls through the front door's forking proxy, with real SIP clients over real sockets.

sipp plays the phones: a phone registers (tests/sipp/register.xml) from the port its UAS
scenario then listens on, and a caller (another sipp, authenticated with a 407 digest
challenge) calls it through a real ``pypbx run``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.harness import (
    SIPP_DIR,
    PbxProcess,
    auth_users,
    free_port,
    require_tool,
    run_sipp,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"


@pytest.fixture
def pbx(proxy_pbx):
    """The PBX factory of the proxy tests (conftest.proxy_pbx)."""
    return proxy_pbx


class Phone:
    """A sipp UAS registered as an extension from the port it answers on."""

    def __init__(
        self, pbx: PbxProcess, ext: str, scenario: str, workdir: Path, *, ring_ms: int = 200, transport: str = "u1"
    ) -> None:
        self.sipp = require_tool("sipp")
        self.pbx = pbx
        self.ext = ext
        self.port = free_port("both")
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.transport = transport
        res = run_sipp(
            "register.xml",
            f"127.0.0.1:{pbx.port}",
            transport=transport,
            users=auth_users([ext], PASSWORD),
            workdir=workdir,
            extra=["-p", str(self.port)],
        )
        assert res.returncode == 0, res.errors or res.stdout[-2000:]
        args = [
            self.sipp,
            "-sf",
            str(SIPP_DIR / scenario),
            "-s",
            ext,
            "-t",
            transport,
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            "1",
            "-d",
            str(ring_ms),
            "-nostdin",
            "-trace_err",
            "-timeout",
            "30s",
            "-timeout_error",
        ]
        if transport != "u1":  # a TCP UAS must reach the PBX itself: give it the target
            args.insert(1, f"127.0.0.1:{pbx.port}")
        with open(workdir / "uas.out", "w") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        time.sleep(0.4)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -1
        return rc

    def errors(self) -> str:
        return (
            "".join(p.read_text(errors="replace") for p in self.dir.glob("*_errors.log"))
            + (self.dir / "uas.out").read_text(errors="replace")[-3000:]
        )


def call(
    pbx: PbxProcess,
    scenario: str,
    workdir: Path,
    *,
    to: str = "1002",
    caller: str = "1001",
    status: int | None = None,
    timeout: float = 30.0,
):
    sf = scenario
    if status is not None:
        text = (SIPP_DIR / scenario).read_text().replace("__STATUS__", str(status))
        sf = str(workdir / f"rejected_{status}.xml")
        workdir.mkdir(parents=True, exist_ok=True)
        Path(sf).write_text(text)
    return run_sipp(
        sf,
        f"127.0.0.1:{pbx.port}",
        users=auth_users([caller], PASSWORD),
        workdir=workdir,
        timeout=timeout,
        extra=["-s", to],
    )


def test_call_answered_caller_hangs_up(pbx, tmp_path):
    p = pbx()
    phone = Phone(p, "1002", "call_uas.xml", tmp_path / "uas")
    res = call(p, "call_uac.xml", tmp_path / "uac")
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert phone.wait() == 0, phone.errors()
    st = p.status()
    assert st["counters"]["auth_challenges"] >= 1


def test_call_answered_callee_hangs_up(pbx, tmp_path):
    p = pbx()
    phone = Phone(p, "1002", "call_uas_hangs_up.xml", tmp_path / "uas")
    res = call(p, "call_uac_callee_hangs_up.xml", tmp_path / "uac")
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert phone.wait() == 0, phone.errors()


def test_unknown_number_404(pbx, tmp_path):
    p = pbx()
    res = call(p, "call_uac_rejected.xml", tmp_path / "uac", to="5555", status=404)
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]


def test_unregistered_extension_480(pbx, tmp_path):
    p = pbx()
    res = call(p, "call_uac_rejected.xml", tmp_path / "uac", to="1003", status=480)
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]


def test_busy_486(pbx, tmp_path):
    p = pbx()
    phone = Phone(p, "1002", "call_uas_busy.xml", tmp_path / "uas")
    res = call(p, "call_uac_rejected.xml", tmp_path / "uac", status=486)
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert phone.wait() == 0, phone.errors()


def test_caller_cancels_while_ringing(pbx, tmp_path):
    p = pbx()
    phone = Phone(p, "1002", "call_uas_ring.xml", tmp_path / "uas")
    res = call(p, "call_uac_cancel.xml", tmp_path / "uac")
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert phone.wait() == 0, phone.errors()


def test_no_answer_ring_timeout(pbx, tmp_path):
    p = pbx(ring_timeout=2)
    phone = Phone(p, "1002", "call_uas_ring.xml", tmp_path / "uas")
    t0 = time.monotonic()
    # the B2BUA gives up after calls.ring_time and tells the caller 480 Temporarily Unavailable
    res = call(p, "call_uac_rejected.xml", tmp_path / "uac", status=480)
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert 1.5 < time.monotonic() - t0 < 10
    assert phone.wait() == 0, phone.errors()


def test_fork_to_two_devices_one_answers_other_cancelled(pbx, tmp_path):
    p = pbx()
    ringer = Phone(p, "1002", "call_uas_ring.xml", tmp_path / "uas-ring")
    answerer = Phone(p, "1002", "call_uas.xml", tmp_path / "uas-answer", ring_ms=1000)
    assert len(p.api("registrations", aor="1002")) == 2
    res = call(p, "call_uac.xml", tmp_path / "uac")
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert answerer.wait() == 0, answerer.errors()
    assert ringer.wait() == 0, ringer.errors()


def test_wrong_password_is_challenged_again(pbx, tmp_path):
    p = pbx()
    # a wrong password gets a fresh 407 (never a routing answer) and counts as a failure
    wd = tmp_path / "w"
    wd.mkdir()
    sf = wd / "bad.xml"
    sf.write_text((SIPP_DIR / "call_uac_rejected.xml").read_text().replace("__STATUS__", "407"))
    res = run_sipp(
        str(sf),
        f"127.0.0.1:{p.port}",
        users=auth_users(["1001"], "wrong"),
        workdir=wd,
        timeout=10,
        extra=["-s", "1002"],
    )
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert p.status()["counters"]["auth_failures"] >= 1


def test_call_to_a_phone_registered_over_tcp(pbx, tmp_path):
    """The callee registered over TCP: the INVITE goes down its own connection (the one it
    registered on), with a double Record-Route for the UDP->TCP hop; BYE from the callee
    comes back up that connection and reaches the UDP caller."""
    p = pbx()
    phone = Phone(p, "1002", "call_uas_hangs_up.xml", tmp_path / "uas", transport="t1")
    res = call(p, "call_uac_callee_hangs_up.xml", tmp_path / "uac")
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert phone.wait() == 0, phone.errors()


def test_baresip_receives_a_call(pbx, tmp_path):
    """baresip registered as 1002 auto-answers a call from a sipp caller; the caller's BYE
    reaches it through the Record-Route and baresip logs the call closed."""
    from tests.integration.harness import Baresip

    p = pbx()
    phone = Baresip(tmp_path / "baresip", f"1002@127.0.0.1:{p.port}", PASSWORD)
    accounts = phone.dir / "accounts"
    accounts.write_text(accounts.read_text().strip() + ";answermode=auto\n")
    phone.start(seconds=40)
    try:
        p.wait_for(lambda: p.api("registrations", aor="1002"), timeout=15, what="baresip to register")
        res = call(p, "call_uac.xml", tmp_path / "uac")
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + phone.log()
        # baresip reports the remote BYE as "session closed: Connection reset by peer"
        p.wait_for(lambda: "session closed" in phone.log(), timeout=10, what="baresip to get the BYE")
        assert "Call established: sip:1001@" in phone.log()
    finally:
        phone.stop()
