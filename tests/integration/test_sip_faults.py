"""Faults at the SIP front door, on a real ``pypbx run`` with sipp phones (issue 12).

* A phone's BYE for a call the restarted PBX no longer knows gets 481, not silence.
* A phone that never ACKs a 200 is booked failed ("no ACK") and its call freed at Timer H.
* Under a flood of unauthenticated INVITEs from many addresses a registered phone still
  registers and calls (stateless challenges, global admission control).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.harness import (
    SIPP_DIR,
    PbxProcess,
    auth_users,
    free_port,
    require_tool,
    run_sipp,
    wait_workers_gone,
)
from tests.integration.test_proxy_calls import Phone, call

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(proxy_pbx):
    """The PBX factory of the proxy tests (conftest.proxy_pbx)."""
    return proxy_pbx


def test_bye_after_a_restart_gets_481(pbx, tmp_path):
    p = pbx()
    callee = Phone(p, "1002", "call_uas_long.xml", tmp_path / "uas")
    result: dict = {}
    caller = threading.Thread(
        target=lambda: result.setdefault(
            "res", call(p, "call_uac_bye_after_restart.xml", tmp_path / "uac", timeout=45)
        ),
        daemon=True,
    )
    caller.start()
    p.wait_for(lambda: [c for c in p.api("calls") if c["state"] == "talking"], timeout=20, what="the call answered")
    time.sleep(0.5)  # the ACK through
    assert p.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_workers_gone(p)  # the killed PBX's media workers exit on their own
    p.start()  # same data directory, same route secret: the phone's route set still checks
    caller.join(45)
    assert not caller.is_alive(), "the caller never finished"
    res = result["res"]
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert p.api("calls") == []
    assert p.status()["counters"]["proxy_no_dialog"] >= 1
    callee.proc.kill()
    callee.wait()
    rows = json.loads(p.cli("calls", "list", "--json").stdout)
    assert len(rows) == 1


def _callee(p, workdir, scenario="call_uas.xml", seconds=60):
    """A sipp UAS registered as 1002 (like test_proxy_calls.Phone, with a longer life)."""
    port = free_port("both")
    workdir.mkdir(parents=True, exist_ok=True)
    res = run_sipp(
        "register.xml",
        f"127.0.0.1:{p.port}",
        users=auth_users(["1002"], PASSWORD),
        workdir=workdir,
        extra=["-p", str(port)],
    )
    assert res.returncode == 0, res.errors or res.stdout[-2000:]
    args = [require_tool("sipp"), "-sf", str(SIPP_DIR / scenario), "-s", "1002", "-i", "127.0.0.1"]
    args += ["-p", str(port), "-m", "1", "-d", "200", "-nostdin", "-trace_err", "-timeout", f"{seconds}s"]
    with open(workdir / "uas.out", "w") as out:
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(0.4)
    return proc


def test_caller_that_never_acks_is_failed_at_timer_h(pbx, tmp_path):
    """The caller's phone never ACKs the 200: at Timer H (30 s after the 200) the call is
    booked failed, cause "no ACK" (not answered), both phones get a BYE and the worker is
    free again -- not ~64 s later as an answered call with no talk."""
    p = pbx()
    callee = _callee(p, tmp_path / "uas")
    t0 = time.monotonic()
    res = call(p, "call_uac_no_ack.xml", tmp_path / "uac", timeout=60)
    took = time.monotonic() - t0
    assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]
    assert took < 45, took
    assert callee.wait(30) == 0
    rows = p.wait_for(
        lambda: [r for r in json.loads(p.cli("calls", "list", "--json").stdout) if r["disposition"] != "in_progress"],
        timeout=10,
        what="the call record closed",
    )
    [row] = rows
    assert row["disposition"] == "failed", row
    assert row["hangup_cause"] == "no ACK", row
    assert p.status()["counters"]["proxy_no_ack"] == 1
    p.wait_for(lambda: p.api("calls") == [], timeout=5, what="the worker released")
    assert "no ACK from 127.0.0.1" in p.log()


class Flooder:
    """Unauthenticated INVITEs (never ACKed, never answered) from several loopback
    addresses (127.0.0.2 ...), each under the per-address rate limit, in a thread."""

    def __init__(self, port: int, sources: int, per_source_rate: float) -> None:
        self.port = port
        self.socks = []
        for i in range(sources):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((f"127.0.0.{2 + i}", 0))
            s.setblocking(False)
            self.socks.append(s)
        self.interval = 1.0 / (per_source_rate * sources)
        self.sent = 0
        self.answers = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            s = self.socks[n % len(self.socks)]
            host = s.getsockname()[0]
            data = (
                f"INVITE sip:1002@127.0.0.1:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{s.getsockname()[1]};branch=z9hG4bKfl{n};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=fl{n}\r\nTo: <sip:1002@127.0.0.1>\r\n"
                f"Call-ID: flood-{n}@{host}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{host}>\r\n"
                "User-Agent: flood-test\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            s.sendto(data, ("127.0.0.1", self.port))
            self.sent += 1
            n += 1
            if n % 50 == 0:
                for r in self.socks:
                    while True:
                        try:
                            r.recv(65536)
                            self.answers += 1
                        except BlockingIOError:
                            break
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def __enter__(self) -> Flooder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


def test_registered_phone_registers_and_calls_under_a_distributed_flood(tmp_path):
    """40 addresses each send 15 unauthenticated INVITEs/s (under the per-address limit of
    50/s; 600/s in all, never ACKed): the global admission limit (100/s) drops most of
    them, the rest are challenged with no transaction kept, and a phone registered from
    another address still re-registers and places a call that is answered."""
    p = PbxProcess(tmp_path / "pbx", security={"max_new_requests_per_second": 100})
    p.add_extensions(["1001", "1002"], PASSWORD)
    p.start()
    try:
        first = run_sipp(
            "register.xml", f"127.0.0.1:{p.port}", users=auth_users(["1001"], PASSWORD), workdir=tmp_path / "reg0"
        )
        assert first.returncode == 0, first.errors
        with Flooder(p.port, sources=40, per_source_rate=15.0) as flood:
            time.sleep(3.0)
            during = p.status()
            reg = run_sipp(
                "register.xml", f"127.0.0.1:{p.port}", users=auth_users(["1001"], PASSWORD), workdir=tmp_path / "reg1"
            )
            callee = Phone(p, "1002", "call_uas.xml", tmp_path / "uas")
            res = call(p, "call_uac.xml", tmp_path / "uac")
            assert callee.wait() == 0, callee.errors()
            after = p.status()
        assert reg.returncode == 0 and reg.successful == 1, reg.errors or reg.stdout[-2000:]
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-2000:]
        assert flood.sent > 2000  # ~600/s for ~5 s, less on a loaded machine
        c = after["counters"]
        assert c["guard_dropped_admission"] > 1000  # the global limit worked ...
        assert c["stateless_challenges"] > 300  # ... and what passed was challenged statelessly
        assert c["guard_dropped_rate"] == 0  # every flooding address stayed under its own limit
        assert during["transactions"]["server"] < 20 and after["transactions"]["server"] < 20
        assert "SECURITY admission-dropped" in p.log()
        rows = json.loads(p.cli("calls", "list", "--json").stdout)
        assert [r["disposition"] for r in rows] == ["answered"]
    finally:
        assert p.stop() == 0
        assert "Traceback" not in p.log()
