"""Benchmark: concurrent bridged, recorded calls through a running pypbx, with sipp phones.

Every step starts a fresh ``pypbx run`` (its own config and data directory, via
``tests/integration/harness.py`` ``PbxProcess``), registers extensions 3000..3299 all
pointing at ONE sipp UAS (``tests/sipp/register.xml`` sent from the UAS's port), starts
that UAS (``tests/sipp/bench_uas.xml``: 180 + 200 with PCMA, streams looped PCMA speech
with ``rtp_stream`` until the BYE) and one sipp UAC (``tests/sipp/bench_uac.xml``: INVITE,
407 digest challenge, INVITE with Proxy-Authorization, streams PCMA for ``-d`` ms, BYE).

Two kinds of step:

* **concurrency** (N = 10, 25, 50, ...): N calls at ``--ramp-rate`` calls/s, each lasting
  ramp + ``--hold`` seconds, so all N are up together for ``--hold`` s. CPU of the whole
  PBX (main process + every worker: utime+stime of the process tree from /proc) is taken
  over the hold window, PSS (``/proc/<pid>/smaps_rollup``) in its middle. A step passes
  when sipp saw no failed call, every CDR is ``answered`` (none ``in_progress``), every call
  has a complete recording, and every recording's duration is within 20 ms of the CDR's
  talk time (the recorder starts at bridge time: ``talk_seconds``).
* **set-up rate** (R = 10, 20, ... calls/s): ``R * --cps-seconds`` short calls
  (``--cps-duration`` s of talk) offered at R/s; the highest R with zero failures.

    .venv/bin/python bench/calls/run.py                 # full run, < ~10 min
    .venv/bin/python bench/calls/run.py --steps 10,50 --rates 10,20 --repeats 0   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.integration.harness import PbxProcess, auth_users, free_port, free_range  # noqa: E402

PASSWORD = "bench-password-123"
CLK = os.sysconf("SC_CLK_TCK")
SIPP_DIR = ROOT / "tests/sipp"
PCAP = Path("/usr/share/sip-tester/g711a.pcap")
TOLERANCE = 0.020  # recording vs talk time
CALLERS = [str(2000 + i) for i in range(300)]
CALLEES = [str(3000 + i) for i in range(300)]


# -- /proc ---------------------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of live processes plus cutime+cstime (reaped children) of each."""
    total = 0.0
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])
    return total / CLK


def pss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


# -- sipp helpers -------------------------------------------------------------------------
def make_pcma_raw(dest: Path) -> float:
    """The PCMA payloads of sipp's g711a.pcap, headerless, for rtp_stream. Returns seconds."""
    d = PCAP.read_bytes()
    off, out = 24, bytearray()
    while off + 16 <= len(d):
        incl = struct.unpack("<I", d[off + 8 : off + 12])[0]
        pkt = d[off + 16 : off + 16 + incl]
        off += 16 + incl
        out += pkt[14 + 20 + 8 + 12 :]  # ethernet + IPv4 + UDP + RTP header
    dest.write_bytes(bytes(out))
    return len(out) / 8000


def sipp_stats(work: Path, prefix: str) -> dict[str, str]:
    stats: dict[str, str] = {}
    for p in work.glob(f"{prefix}_*_.csv"):
        lines = p.read_text().splitlines()
        if len(lines) >= 2:
            stats = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    return stats


def sipp_errors(work: Path, prefix: str, limit: int = 2500) -> str:
    text = "".join(p.read_text(errors="replace") for p in work.glob(f"{prefix}_*_errors.log"))
    return text[:limit]


def clean(work: Path) -> None:
    for p in work.glob("bench_*"):
        if p.suffix in (".csv", ".log"):
            p.unlink()


# -- one PBX -------------------------------------------------------------------------------
class Bench:
    def __init__(self, work: Path, workers_max: int, workers_warm: int, log_level: str) -> None:
        self.work = work
        self.workers_max = workers_max
        self.workers_warm = workers_warm
        self.log_level = log_level
        self.n_pbx = 0

    def start_pbx(self) -> PbxProcess:
        self.n_pbx += 1
        d = self.work / f"pbx{self.n_pbx}"
        if d.exists():
            shutil.rmtree(d)
        per = 8
        pbx = PbxProcess(
            d,
            log_level=self.log_level,
            security={"exempt": ["127.0.0.1"]},
            registrar={"max_contacts": 5},
            events={"journal": ""},  # as installed (the test harness journals every event to check it)
            media={
                "workers_max": self.workers_max,
                "workers_warm": self.workers_warm,
                "sip_port_base": free_range(self.workers_max),
                "rtp_port_base": free_range(per * self.workers_max, step=per),
                "rtp_ports_per_worker": per,
                "media_addr": "127.0.0.1",
            },
        )
        pbx.add_extensions(CALLERS + CALLEES, PASSWORD)
        pbx.start(timeout=60)
        # wait for the warm workers
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(tree(pbx.proc.pid)) < 1 + self.workers_warm:
            time.sleep(0.2)
        time.sleep(1.0)
        return pbx

    def register_and_start_uas(self, pbx: PbxProcess) -> tuple[subprocess.Popen, int]:
        uas_port = free_port("udp")
        csv = self.work / "callees.csv"
        csv.write_text("SEQUENTIAL\n" + "".join(f"{u};{a}\n" for u, a in auth_users(CALLEES, PASSWORD)))
        res = subprocess.run(
            [
                "sipp",
                f"127.0.0.1:{pbx.port}",
                "-sf",
                str(SIPP_DIR / "register.xml"),
                "-inf",
                str(csv),
                "-t",
                "u1",
                "-i",
                "127.0.0.1",
                "-p",
                str(uas_port),
                "-r",
                "300",
                "-m",
                str(len(CALLEES)),
                "-l",
                "300",
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
                "-trace_stat",
                "-fd",
                "1",
            ],
            capture_output=True,
            text=True,
            cwd=self.work,
        )
        regs = pbx.status()["registrations"]
        if res.returncode != 0 or (isinstance(regs, int) and regs < len(CALLEES)):
            raise SystemExit(f"registration failed (rc={res.returncode}, {regs}):\n{res.stdout[-2000:]}")
        with open(self.work / "uas.out", "w") as out:  # the child has its own copy of the descriptor
            uas = subprocess.Popen(
                [
                    "sipp",
                    "-sf",
                    str(SIPP_DIR / "bench_uas.xml"),
                    "-t",
                    "u1",
                    "-i",
                    "127.0.0.1",
                    "-mi",
                    "127.0.0.1",
                    "-p",
                    str(uas_port),
                    "-m",
                    "1000000",
                    "-nostdin",
                    "-trace_err",
                    "-trace_stat",
                    "-fd",
                    "1",
                    "-timeout_error",
                    "-max_socket",
                    "5000",
                ],
                cwd=self.work,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        time.sleep(0.5)
        return uas, uas_port

    def uac(
        self, pbx: PbxProcess, calls: int, rate: float, limit: int, duration_ms: int, timeout: float
    ) -> subprocess.Popen:
        csv = self.work / "callers.csv"
        rows = [
            f"{c};[authentication username={c} password={PASSWORD}];{CALLEES[i % len(CALLEES)]}\n"
            for i, c in enumerate(CALLERS)
        ]
        csv.write_text("SEQUENTIAL\n" + "".join(rows))
        return subprocess.Popen(
            [
                "sipp",
                f"127.0.0.1:{pbx.port}",
                "-sf",
                str(SIPP_DIR / "bench_uac.xml"),
                "-inf",
                str(csv),
                "-t",
                "u1",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                str(free_port("udp")),
                "-r",
                str(rate),
                "-m",
                str(calls),
                "-l",
                str(limit),
                "-d",
                str(duration_ms),
                "-nostdin",
                "-timeout",
                f"{int(timeout)}s",
                "-timeout_error",
                "-trace_err",
                "-trace_stat",
                "-fd",
                "1",
                "-max_socket",
                "5000",
            ],
            cwd=self.work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, pbx: PbxProcess, uas: subprocess.Popen, expected: int) -> dict:
        """Wait for every call to be closed and recorded, read CDRs, stop the PBX, read its log."""
        deadline = time.monotonic() + 30
        rows: list[dict] = []
        while time.monotonic() < deadline:
            active = pbx.api("active_calls")
            rows = self.cdrs(pbx)
            recs = [r for r in rows if r.get("recording_path")]
            if not active and len(rows) >= expected and len(recs) >= expected:
                break
            time.sleep(0.5)
        time.sleep(0.5)
        rows = self.cdrs(pbx)
        stuck = pbx.api("active_calls")
        uas.terminate()
        try:
            uas.wait(10)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()
        uas_stats = sipp_stats(self.work, "bench_uas")
        rc = pbx.stop(signal.SIGTERM, timeout=60)
        log = pbx.log()
        bad = [ln for ln in log.splitlines() if re.search(r"\b(ERROR|CRITICAL|WARNING)\b|Traceback", ln)]
        try:
            lag = recorder_lag(pbx.cfg.db_path)
        except Exception as exc:
            lag = {"error": str(exc)}
        return {
            "rows": rows,
            "stuck_active": stuck,
            "answer_to_recorder_ms": lag,
            "pbx_exit": rc,
            "log_problems": bad,
            "uas_failed": int(uas_stats.get("FailedCall(C)", 0) or 0),
            "uas_errors": sipp_errors(self.work, "bench_uas", 1500),
        }

    def cdrs(self, pbx: PbxProcess) -> list[dict]:
        res = pbx.cli("calls", "list", "--json", "--limit", "100000", check=False)
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError:
            return []


def _dist(values: list[float]) -> dict:
    if not values:
        return {}
    a = sorted(values)
    q = lambda f: round(a[min(len(a) - 1, int(f * len(a)))], 1)  # noqa: E731
    return {
        "min": round(a[0], 1),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": round(a[-1], 1),
        "mean": round(statistics.fmean(a), 1),
        "n": len(a),
    }


def recorder_lag(db_path: Path) -> dict:
    """ms from the CDR's 'answered' event (talk time starts) to 'recording_started'."""
    import sqlite3

    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "select a.ts, r.ts from call_events a join call_events r on a.call_id = r.call_id "
            "where a.kind = 'answered' and r.kind = 'recording_started'"
        ).fetchall()
    finally:
        con.close()
    return _dist([1000 * (r - a) for a, r in rows])


def recording_check(rows: list[dict]) -> dict:
    diffs_ms, incomplete, problems = [], 0, []
    for r in rows:
        path = r.get("recording_path")
        talk = r.get("talk_seconds")
        if not path or talk is None:
            incomplete += 1
            problems.append(f"{r['id'][:12]} {r['disposition']}: no recording/talk ({path}, {talk})")
            continue
        side = Path(path).with_suffix(".json")
        try:
            meta = json.loads(side.read_text())
            secs = meta["recording"]["seconds"]
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            incomplete += 1
            problems.append(f"{r['id'][:12]}: sidecar {side}: {exc}")
            continue
        diffs_ms.append(1000 * (secs - talk))
    dist = _dist(diffs_ms)
    if dist:
        dist["within_20ms"] = sum(1 for x in diffs_ms if abs(x) <= 1000 * TOLERANCE)
    return {"diff_ms": dist, "incomplete": incomplete, "problems": problems[:10]}


def concurrency_step(b: Bench, n: int, ramp_rate: float, hold: float) -> dict:
    clean(b.work)
    pbx = b.start_pbx()
    uas, _port = b.register_and_start_uas(pbx)
    ramp = n / ramp_rate
    duration = ramp + hold
    pid = pbx.proc.pid
    t_start = time.monotonic()
    uac = b.uac(pbx, n, ramp_rate, n, int(duration * 1000), timeout=duration + 60)
    # hold window: every call up
    time.sleep(max(0.0, ramp + 1.5 - (time.monotonic() - t_start)))
    live = len(pbx.api("active_calls"))
    pids = tree(pid)
    c0, w0 = cpu_seconds(pids), time.monotonic()
    time.sleep(max(1.0, hold / 2 - 1.5))
    pids = tree(pid)
    pss = pss_mb(pids)
    procs = len(pids)
    live_mid = len(pbx.api("active_calls"))
    time.sleep(max(0.5, hold / 2 - 2.0))
    c1, w1 = cpu_seconds(tree(pid)), time.monotonic()
    _, err = uac.communicate(timeout=duration + 120)
    wall = time.monotonic() - t_start
    st = sipp_stats(b.work, "bench_uac")
    errors = sipp_errors(b.work, "bench_uac")
    fin = b.finish(pbx, uas, n)
    rows = fin["rows"]
    disp: dict[str, int] = {}
    for r in rows:
        disp[r["disposition"]] = disp.get(r["disposition"], 0) + 1
    rec = recording_check([r for r in rows if r["disposition"] == "answered"])
    ok_calls = int(st.get("SuccessfulCall(C)", 0) or 0)
    failed = int(st.get("FailedCall(C)", 0) or 0)
    cpu_pct = 100 * (c1 - c0) / (w1 - w0)
    res = {
        "kind": "concurrency",
        "calls": n,
        "ramp_rate": ramp_rate,
        "call_seconds": round(duration, 1),
        "sipp_ok": ok_calls,
        "sipp_failed": failed,
        "uac_rc": uac.returncode,
        "uas_failed": fin["uas_failed"],
        "live_at_hold_start": live,
        "live_mid_hold": live_mid,
        "processes": procs,
        "cdr": disp,
        "stuck_active": len(fin["stuck_active"]),
        "recordings": rec,
        "pbx_cpu_pct": round(cpu_pct, 1),
        "cpu_pct_per_call": round(cpu_pct / max(1, live_mid), 2),
        "pss_mb": round(pss, 1),
        "pss_mb_per_call": round(pss / max(1, live_mid), 1),
        "wall_s": round(wall, 1),
        "pbx_exit": fin["pbx_exit"],
        "log_problems": fin["log_problems"][:15],
        "log_problem_count": len(fin["log_problems"]),
    }
    if errors or fin["uas_errors"]:
        res["sipp_errors"] = (errors + fin["uas_errors"])[:3000]
    if err.strip():
        res["uac_stderr"] = err.strip()[-1000:]
    d = rec["diff_ms"]
    res["answer_to_recorder_ms"] = fin["answer_to_recorder_ms"]
    res["calls_ok"] = (
        failed == 0
        and ok_calls == n
        and uac.returncode == 0
        and fin["uas_failed"] == 0
        and disp.get("answered", 0) == n
        and len(rows) == n
        and not fin["stuck_active"]
        and rec["incomplete"] == 0
        and live_mid == n
    )
    res["passed"] = res["calls_ok"] and bool(d) and d["within_20ms"] == n
    return res


def cps_step(b: Bench, rate: int, seconds: float, talk: float) -> dict:
    clean(b.work)
    pbx = b.start_pbx()
    uas, _port = b.register_and_start_uas(pbx)
    calls = int(rate * seconds)
    pid = pbx.proc.pid
    c0, t0 = cpu_seconds(tree(pid)), time.monotonic()
    uac = b.uac(pbx, calls, rate, max(calls, 10), int(talk * 1000), timeout=seconds + talk + 60)
    _, err = uac.communicate(timeout=seconds + talk + 180)
    wall = time.monotonic() - t0
    c1 = cpu_seconds(tree(pid))
    st = sipp_stats(b.work, "bench_uac")
    errors = sipp_errors(b.work, "bench_uac")
    fin = b.finish(pbx, uas, calls)
    rows = fin["rows"]
    disp: dict[str, int] = {}
    for r in rows:
        disp[r["disposition"]] = disp.get(r["disposition"], 0) + 1
    rec = recording_check([r for r in rows if r["disposition"] == "answered"])
    ok_calls = int(st.get("SuccessfulCall(C)", 0) or 0)
    failed = int(st.get("FailedCall(C)", 0) or 0)
    rtt = st.get("ResponseTime1(P)") or ""
    res = {
        "kind": "setup_rate",
        "offered_per_s": rate,
        "calls": calls,
        "talk_seconds": talk,
        "sipp_ok": ok_calls,
        "sipp_failed": failed,
        "uac_rc": uac.returncode,
        "uas_failed": fin["uas_failed"],
        "cdr": disp,
        "stuck_active": len(fin["stuck_active"]),
        "recordings": rec,
        "achieved_per_s": round(ok_calls / max(0.001, wall - talk), 1),
        "invite_to_200_avg": rtt,
        "pbx_cpu_pct": round(100 * (c1 - c0) / wall, 1),
        "cpu_ms_per_call": round(1000 * (c1 - c0) / max(1, ok_calls), 1),
        "wall_s": round(wall, 1),
        "log_problems": fin["log_problems"][:15],
        "log_problem_count": len(fin["log_problems"]),
    }
    if errors or fin["uas_errors"]:
        res["sipp_errors"] = (errors + fin["uas_errors"])[:3000]
    if err.strip():
        res["uac_stderr"] = err.strip()[-1000:]
    d = rec["diff_ms"]
    res["answer_to_recorder_ms"] = fin["answer_to_recorder_ms"]
    res["calls_ok"] = (
        failed == 0
        and ok_calls == calls
        and uac.returncode == 0
        and fin["uas_failed"] == 0
        and disp.get("answered", 0) == calls
        and not fin["stuck_active"]
        and rec["incomplete"] == 0
    )
    res["passed"] = res["calls_ok"] and bool(d) and d["within_20ms"] == calls
    return res


def machine() -> dict:
    model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    sipp_v = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout.strip().splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_mb": mem,
        "python": platform.python_version(),
        "sipp": sipp_v[0].strip() if sipp_v else "?",
        "loadavg_at_start": os.getloadavg(),
    }


def table(results: list[dict]) -> str:
    out = [
        "| step | calls | ok / failed | CDR answered | rec. within 20 ms | rec − talk ms (min/p50/p99/max) "
        "| answer→recorder ms (p50/max) | PBX CPU % | CPU %/call | PSS MB | PSS MB/call | calls ok | ±20 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = r["recordings"]["diff_ms"] or {}
        dist = f"{d.get('min')}/{d.get('p50')}/{d.get('p99')}/{d.get('max')}" if d else "-"
        if r["kind"] == "concurrency":
            step = f"N={r['calls']} @{r['ramp_rate']:g}/s"
            cpu = (r["pbx_cpu_pct"], r["cpu_pct_per_call"], r["pss_mb"], r["pss_mb_per_call"])
        else:
            step = f"{r['offered_per_s']} cps × {r['calls'] // r['offered_per_s']} s"
            cpu = (r["pbx_cpu_pct"], f"{r['cpu_ms_per_call']} ms/call", "-", "-")
        lag = r.get("answer_to_recorder_ms") or {}
        out.append(
            f"| {step} | {r['calls']} | {r['sipp_ok']} / {r['sipp_failed']} | "
            f"{r['cdr'].get('answered', 0)} | {d.get('within_20ms', 0)} | {dist} | "
            f"{lag.get('p50', '-')}/{lag.get('max', '-')} | "
            f"{cpu[0]} | {cpu[1]} | {cpu[2]} | {cpu[3]} | {'yes' if r['calls_ok'] else 'NO'} | "
            f"{'yes' if r['passed'] else 'NO'} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="25,50,100,150,200", help="concurrency steps (calls)")
    ap.add_argument("--ramp-rate", type=float, default=8.0, help="calls/s while ramping up a step")
    ap.add_argument("--hold", type=float, default=8.0, help="seconds all N calls are up together")
    ap.add_argument("--repeats", type=int, default=2, help="re-runs of the best concurrency step")
    ap.add_argument("--rates", default="5,8,10,15,20,30", help="set-up rate steps (calls/s)")
    ap.add_argument("--cps-seconds", type=float, default=5.0)
    ap.add_argument("--cps-duration", type=float, default=2.0, help="talk seconds of a set-up-rate call")
    ap.add_argument("--workers-max", type=int, default=260)
    ap.add_argument("--workers-warm", type=int, default=30)
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--workdir", default=str(ROOT / "bench/calls/work"))
    ap.add_argument("--out", default=str(ROOT / "bench/calls/results.json"))
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    audio_s = make_pcma_raw(work / "bench_pcma.raw")
    b = Bench(work, args.workers_max, args.workers_warm, args.log_level)
    t_all = time.monotonic()
    info = machine()
    results: list[dict] = []

    def emit(r: dict) -> None:
        results.append(r)
        brief = {
            k: r[k]
            for k in (
                "kind",
                "calls",
                "sipp_ok",
                "sipp_failed",
                "cdr",
                "pbx_cpu_pct",
                "calls_ok",
                "passed",
                "log_problem_count",
            )
        }
        brief["rec_diff_ms"] = r["recordings"]["diff_ms"]
        brief["answer_to_recorder_ms"] = r.get("answer_to_recorder_ms")
        print(json.dumps(brief), file=sys.stderr, flush=True)

    # step on "zero failed calls, every call answered and recorded"; the strict 20 ms
    # criterion is reported beside it (see README: the recorder starts late)
    best = best_strict = None
    for n in [int(x) for x in args.steps.split(",") if x]:
        r = concurrency_step(b, n, args.ramp_rate, args.hold)
        emit(r)
        if not r["calls_ok"]:
            break
        best = n
        if r["passed"]:
            best_strict = n
    if best is not None:
        for _ in range(args.repeats):
            emit(concurrency_step(b, best, args.ramp_rate, args.hold))
    best_rate = best_rate_strict = None
    for rate in [int(x) for x in args.rates.split(",") if x]:
        r = cps_step(b, rate, args.cps_seconds, args.cps_duration)
        emit(r)
        if not r["calls_ok"]:
            break
        best_rate = rate
        if r["passed"]:
            best_rate_strict = rate
    conc = [r for r in results if r["kind"] == "concurrency" and r["calls"] == best]
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": info,
        "loadavg_at_end": os.getloadavg(),
        "settings": {
            "ramp_rate": args.ramp_rate,
            "hold_s": args.hold,
            "workers_max": args.workers_max,
            "workers_warm": args.workers_warm,
            "audio": f"PCMA 20 ms, {audio_s:.2f} s loop (g711a.pcap)",
            "cps_seconds": args.cps_seconds,
            "cps_talk_s": args.cps_duration,
            "log_level": args.log_level,
        },
        "max_concurrent_zero_failures": best,
        "max_concurrent_runs_calls_ok": f"{sum(r['calls_ok'] for r in conc)}/{len(conc)}" if conc else "0/0",
        "max_concurrent_zero_failures_and_recordings_within_20ms": best_strict,
        "max_setup_rate_zero_failures": best_rate,
        "max_setup_rate_zero_failures_and_recordings_within_20ms": best_rate_strict,
        "runtime_s": round(time.monotonic() - t_all, 1),
        "steps": results,
    }
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(table(results))
    print(
        f"\nlargest N with zero failed calls (all answered + recorded): {best} "
        f"({summary['max_concurrent_runs_calls_ok']} runs of it clean); with every recording within 20 ms "
        f"of talk time as well: {best_strict}\n"
        f"set-up rate with zero failures: {best_rate} calls/s (with recordings within 20 ms: "
        f"{best_rate_strict}); runtime {summary['runtime_s']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
