"""Benchmark: REGISTER-with-digest transactions per second, sipp against a running pypbx.

Each sipp "call" is one phone registering from scratch: REGISTER → 401 challenge →
REGISTER with digest → 200 (two transactions). The script starts pypbx (its own config
and data directory, ``pypbx run`` exactly as an admin would), creates the extensions,
then offers increasing rates and reports, for each, the transactions per second the PBX
completed, failures, and the PBX's CPU (one process = at most one core). The headline is
the highest rate completed with zero failures.

    .venv/bin/python bench/register/run.py [--users 2000] [--seconds 8] [--rates 500,1000,...]
    .venv/bin/python bench/register/run.py --profile   # cProfile of the PBX at one rate
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.integration.harness import BIN, PbxProcess, auth_users, free_port  # noqa: E402

PASSWORD = "bench-password-123"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_step(pbx: PbxProcess, users: list[str], rate: int, seconds: float, work: Path) -> dict:
    calls = int(rate * seconds)
    csv = work / "users.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(f"{u};{a}\n" for u, a in auth_users(users, PASSWORD)))
    args = [
        "sipp",
        f"127.0.0.1:{pbx.port}",
        "-sf",
        str(ROOT / "tests/sipp/register.xml"),
        "-inf",
        str(csv),
        "-t",
        "u1",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port("udp")),
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(max(rate, 100) * 4),
        "-nostdin",
        "-timeout",
        f"{int(seconds * 4 + 30)}s",
        "-timeout_error",
        "-trace_stat",
        "-fd",
        "1",
        "-max_socket",
        "100",
    ]
    pid = pbx.proc.pid
    c0, t0 = cpu_seconds(pid), time.monotonic()
    for p in work.glob("register_*"):
        p.unlink()
    res = subprocess.run(args, capture_output=True, text=True, cwd=work)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    stats = {}
    for p in work.glob("register_*_.csv"):
        lines = p.read_text().splitlines()
        stats = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    ok = int(stats.get("SuccessfulCall(C)", 0) or 0)
    failed = int(stats.get("FailedCall(C)", 0) or 0)
    wall = t1 - t0
    return {
        "offered_per_s": rate,
        "registrations": ok,
        "failed": failed,
        "sipp_rc": res.returncode,
        "wall_s": round(wall, 2),
        "transactions_per_s": round(2 * ok / wall, 1),
        "pbx_cpu_pct": round(100 * (c1 - c0) / wall, 1),
        "cpu_us_per_transaction": round(1e6 * (c1 - c0) / max(1, 2 * ok), 1),
        "pbx_rss_mb": round(rss_mb(pid), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rates", default="250,500,750,1000,1250,1500,2000")
    ap.add_argument("--profile", action="store_true", help="run the PBX under cProfile at the first rate")
    ap.add_argument("--workdir", default=str(ROOT / "bench/register/work"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    for p in work.glob("pbx/var/*"):
        p.unlink()
    pbx = PbxProcess(
        work / "pbx",
        log_level="WARNING",
        security={"exempt": ["127.0.0.1"]},
        registrar={"max_contacts": 5},
        events={"journal": ""},  # as installed (the test harness journals every event to check it)
    )
    users = [str(10000 + i) for i in range(args.users)]
    pbx.add_extensions(users, PASSWORD)
    if args.profile:
        prof = work / "pbx.prof"
        pbx_cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), str(BIN / "pypbx")]
        _start_with(pbx, pbx_cmd)
    else:
        pbx.start()
    results = []
    try:
        for rate in [int(r) for r in args.rates.split(",")]:
            r = run_step(pbx, users, rate, args.seconds, work)
            results.append(r)
            if not args.json:
                print(json.dumps(r), flush=True)
            if args.profile or r["failed"] or r["sipp_rc"] != 0:
                break
    finally:
        pbx.stop(signal.SIGTERM, timeout=60)
    best = max(
        (r for r in results if not r["failed"] and r["sipp_rc"] == 0),
        key=lambda r: r["transactions_per_s"],
        default=None,
    )
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "cpu": _cpu_model(),
        "users": args.users,
        "steps": results,
        "best_zero_failure": best,
    }
    out = work / "results.json"
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary if args.json else {"best_zero_failure": best}, indent=2))
    if args.profile:
        st = pstats.Stats(str(work / "pbx.prof"))
        st.sort_stats("tottime").print_stats(25)
    return 0


def _start_with(pbx: PbxProcess, cmd: list[str]) -> None:
    import time as _t

    from pypbx.localapi_client import LocalAPIError

    with open(pbx.log_path, "ab") as log:  # the child has its own copy of the descriptor
        pbx.proc = subprocess.Popen(
            [*cmd, "run", "--config", str(pbx.config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=pbx.workdir
        )
    deadline = _t.monotonic() + 20
    while _t.monotonic() < deadline:
        try:
            pbx.status()
            return
        except LocalAPIError:
            _t.sleep(0.1)
    raise SystemExit("PBX did not start:\n" + pbx.log())


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
