"""Real-process test harness: a pypbx started as its own process, and real SIP clients.

Nothing here fakes the PBX: ``PbxProcess`` runs ``pypbx run`` exactly as an admin does,
and ``run_sipp`` / ``Baresip`` drive it over real sockets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from pypbx.config import load_config, render_config
from pypbx.localapi_client import LocalAPIError, request

SIPP_DIR = Path(__file__).resolve().parents[1] / "sipp"
BIN = Path(sys.executable).parent


def require_tool(name: str) -> str:
    """Path of a test tool; under CI a missing tool fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (CI must install it: see .ci/run)")
        pytest.skip(f"{name} is not installed")
    return path


def self_signed_cert(dirpath: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in ``dirpath``: a self-signed certificate for 127.0.0.1 (in no CA store)."""
    require_tool("openssl")
    cert, key = dirpath / "cert.pem", dirpath / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def free_port(kind: str = "both", host: str = "127.0.0.1") -> int:
    from tests.conftest import free_port as fp

    return fp(kind, host)


def free_range(count: int, step: int = 1, lo: int = 20000, hi: int = 60000) -> int:
    """The first port of ``count`` consecutive ports that are free now (UDP), at random."""
    import random

    for _ in range(200):
        base = random.randrange(lo, hi - count, step)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


#: Every PbxProcess made, until its event stream was checked (tests/integration/conftest.py).
UNCHECKED: list[PbxProcess] = []
#: What the checks covered: PBX directories, calls, events (the session summary prints it).
CHECKED = {"pbxs": 0, "calls": 0, "events": 0}


class PbxProcess:
    """``pypbx run`` in a subprocess, with its own config and data directory. Its event
    stream is journaled (``[events] journal``) and checked against its call records after
    the test (:meth:`check_events`)."""

    def __init__(self, workdir: Path, **overrides: Any) -> None:
        UNCHECKED.append(self)
        overrides.setdefault("events", {"journal": "events.jsonl"})
        overrides.setdefault("web", {})
        overrides["web"].setdefault("port", free_port("tcp"))  # the web desk: never the shared 8080
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port("both")
        sip = {"bind": "127.0.0.1", "udp_port": self.port, "tcp_port": self.port, "tls_port": free_port("tcp")}
        sip.update(overrides.pop("sip", {}))
        security = overrides.pop("security", {})
        media = {
            "sip_port_base": free_range(8),
            "rtp_port_base": free_range(16 * 8, step=16),
            "workers_max": 8,
            "workers_warm": 2,
        }
        media.update(overrides.pop("media", {}))
        overrides["media"] = media
        self.config_path = workdir / "pypbx.toml"
        self.config_path.write_text(
            render_config(sip=sip, security=security, data_dir="./var", **overrides), encoding="utf-8"
        )
        self.cfg = load_config(self.config_path)
        self.log_path = workdir / "pypbx.log"
        self.proc: subprocess.Popen | None = None

    # -- admin actions through the real CLI ---------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(
            [str(BIN / "pypbx"), *args, "--config", str(self.config_path)], capture_output=True, text=True, timeout=60
        )
        if check and res.returncode != 0:
            raise AssertionError(f"pypbx {' '.join(args)} failed: {res.stdout}{res.stderr}")
        return res

    def add_extensions(self, numbers: list[str], password: str) -> None:
        """Create extensions with one known password (fast, through the library)."""
        from pypbx.db import open_db
        from pypbx.extensions import add_extension

        async def go() -> None:
            async with open_db(self.cfg.db_path) as db:
                for n in numbers:
                    await add_extension(db, n, f"Phone {n}", self.cfg.sip.realm, password)

        asyncio.run(go())

    # -- process -------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        with open(self.log_path, "ab") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(BIN / "pypbx"), "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pypbx exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.status()
                return
            except LocalAPIError:
                time.sleep(0.05)
        raise AssertionError(f"pypbx did not come up within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"pypbx did not stop within {timeout}s:\n{self.log()}") from None
        return rc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_events(self) -> int:
        """The event stream's invariant over every run of this PBX (its journal): each run's
        events are numbered 1, 2, 3 ... without a gap, in order; every call in the books has
        a ``call.offered`` and its call events (``call.step`` aside, which may follow: a
        recording saved, a survey), in order, end in exactly one ``call.ended``
        whose disposition is the call record's (a call the books still have in progress, left
        by a killed PBX, has none). Returns the number of calls checked."""
        return check_event_stream(self.cfg.events.journal, self.cfg.db_path)

    def api(self, cmd: str, **args: Any) -> Any:
        return asyncio.run(request(self.cfg.socket_path, cmd, **args))

    def status(self) -> dict:
        return self.api("status")

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


def check_event_stream(journal: Path | None, db_path: Path) -> int:
    """See :meth:`PbxProcess.check_events` (AssertionError with the first violations)."""
    import sqlite3

    from pypbx.events import read_journal

    if journal is None or not Path(journal).exists() or not Path(db_path).exists():
        return 0
    events = read_journal(journal)
    problems: list[str] = []
    expected: dict[str, int] = {}
    for ev in events:
        want = expected.get(ev["run"], 1)
        if ev["seq"] != want:
            problems.append(f"run {ev['run']}: seq {ev['seq']} where {want} was next")
        expected[ev["run"]] = ev["seq"] + 1
    per_call: dict[str, list[dict]] = {}
    for ev in events:
        # the call's life: offered / ringing / answered / held / transferred / ended (its
        # other steps, call.step, may follow the end: the recording saved, the survey ...)
        if ev["event"].startswith("call.") and ev["event"] != "call.step":
            per_call.setdefault(ev["call_id"], []).append(ev)
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        books = dict(con.execute("SELECT id, disposition FROM calls").fetchall())
    finally:
        con.close()
    for call_id in sorted(set(books) | set(per_call)):
        evs = per_call.get(call_id, [])
        names = [e["event"] for e in evs]
        ended = [e for e in evs if e["event"] == "call.ended"]
        disp = books.get(call_id)
        if disp is None:
            problems.append(f"call {call_id}: events {names} but no call record")
            continue
        if not names or names[0] != "call.offered" or names.count("call.offered") != 1:
            problems.append(f"call {call_id} ({disp}): events {names} do not start with one call.offered")
        if disp == "in_progress":
            if ended:
                problems.append(f"call {call_id}: call.ended {ended[0]['disposition']} but the record is open")
            continue
        if len(ended) != 1 or names[-1] != "call.ended":
            problems.append(f"call {call_id} ({disp}): {len(ended)} call.ended, events {names}")
        elif ended[0]["disposition"] != disp:
            problems.append(f"call {call_id}: call.ended {ended[0]['disposition']} but the record says {disp}")
    CHECKED["pbxs"] += 1
    CHECKED["calls"] += len(books)
    CHECKED["events"] += len(events)
    if problems:
        raise AssertionError(f"event stream of {journal} broken ({len(problems)}):\n" + "\n".join(problems[:20]))
    return len(books)


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str
    successful: int
    failed: int


def run_sipp(
    scenario: str,
    target: str,
    *,
    transport: str = "u1",
    calls: int = 1,
    rate: int | None = None,
    users: list[tuple[str, ...]] | None = None,
    workdir: Path,
    local_ip: str = "127.0.0.1",
    timeout: float = 30.0,
    extra: list[str] = (),
) -> SippResult:
    """Run one sipp scenario (from tests/sipp) to completion and read its verdict."""
    sipp = require_tool("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        sipp,
        target,
        "-sf",
        str(SIPP_DIR / scenario),
        "-t",
        transport,
        "-m",
        str(calls),
        "-i",
        local_ip,
        "-p",
        str(free_port("both", local_ip)),
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_err",
        "-trace_stat",
        "-fd",
        "1",
        "-max_socket",
        "2000",
    ]
    if rate:
        args += ["-r", str(rate)]
    if users is not None:
        csv = workdir / f"users-{time.monotonic_ns()}.csv"
        csv.write_text("SEQUENTIAL\n" + "".join(";".join(u) + "\n" for u in users))
        args += ["-inf", str(csv)]
    args += list(extra)
    res = subprocess.run(args, capture_output=True, text=True, cwd=workdir, timeout=timeout + 30)
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    for p in workdir.glob("*_errors.log"):
        p.unlink()
    stats = {}
    for p in workdir.glob("*_.csv"):
        lines = p.read_text().splitlines()
        if len(lines) >= 2:
            head = lines[0].split(";")
            last = lines[-1].split(";")
            stats = dict(zip(head, last, strict=False))
        p.unlink()
    return SippResult(
        res.returncode,
        res.stdout,
        res.stderr,
        errors,
        int(stats.get("SuccessfulCall(C)", 0) or 0),
        int(stats.get("FailedCall(C)", 0) or 0),
    )


def auth_users(numbers: list[str], password: str) -> list[tuple[str, str]]:
    return [(n, f"[authentication username={n} password={password}]") for n in numbers]


def udp_exchange(
    data: bytes, port: int, *, host: str = "127.0.0.1", timeout: float = 1.0, source: str = "127.0.0.1"
) -> bytes | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        try:
            return s.recv(65536)
        except TimeoutError:
            return None
    finally:
        s.close()


class Baresip:
    """A real baresip softphone (Debian's baresip) with its own config directory."""

    def __init__(self, workdir: Path, aor: str, password: str, *, transport: str = "udp", regint: int = 60) -> None:
        self.exe = require_tool("baresip")
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        modules = "/usr/lib/baresip/modules"
        (workdir / "config").write_text(
            "sip_listen 127.0.0.1:0\n"
            f"module_path {modules}\n"
            "module g711.so\nmodule account.so\nmodule_app menu.so\n"
            "audio_player nil\naudio_source nil\n"
        )
        (workdir / "accounts").write_text(f"<sip:{aor};transport={transport}>;auth_pass={password};regint={regint}\n")
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "baresip.log"

    def start(self, seconds: int = 30) -> None:
        with open(self.log_path, "wb") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [self.exe, "-f", str(self.dir), "-t", str(seconds)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# -- audio ---------------------------------------------------------------------------------
def tone(path: Path, freq: float, seconds: float = 20.0, rate: int = 8000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16), rate, subtype="PCM_16")
    return path


def dominant_freq(x: np.ndarray, rate: int) -> float:
    x = x.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec[1:])) + 1])


def wait_workers_gone(p: PbxProcess, timeout: float = 10.0) -> None:
    """Until every media worker SIP port of ``p`` is free again (a PBX killed with -9
    leaves its workers to notice and exit)."""
    base, count = p.cfg.media.sip_port_base, p.cfg.media.workers_max
    deadline = time.monotonic() + timeout
    while True:
        busy = []
        for port in range(base, base + count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
            finally:
                s.close()
        if not busy:
            return
        assert time.monotonic() < deadline, f"media worker ports still bound: {busy}"
        time.sleep(0.1)
