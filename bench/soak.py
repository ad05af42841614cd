"""Benchmark (not part of the test suite): a memory soak of a real ``pypbx run``.

One ``pypbx run`` (``tests/integration/harness.py`` ``PbxProcess``, recordings on) takes
recorded calls from sipp for ``--minutes``: extension 1002 is one sipp UAS
(``tests/sipp/call_uas.xml``, registered from its port), 1001 one sipp UAC
(``tests/sipp/call_uac.xml``: INVITE, 407 digest, 200, ACK, 0.5 s, BYE) at ``--rate``
calls/s. Every ``--every`` seconds it samples the RSS of the core process and of every
media worker (``/proc``), the calls booked (the database, read-only) and the long-lived
tables of the core (``status()["tables"]``: SIP transactions, proxy contexts/dialogs, the
call manager's sessions, the call log's active records, the ACD's calls/rings, the event
bus's subscribers ...).

Growth per call is the slope of the core's RSS against the calls booked, fitted after a
warm-up (the first ``--warmup`` fraction of the run: allocator arenas, caches, the nonce
table that lives for ``[security] nonce_lifetime``), in KB per call; the same for the
workers' total. Every table must end at its idle size once the calls are over.

    .venv/bin/python bench/soak.py                       # 10 minutes at 2 calls/s
    .venv/bin/python bench/soak.py --minutes 2 --rate 2  # quick

Results: bench/soak_results.json (the samples and the summary).
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.harness import PbxProcess, auth_users, free_port, run_sipp  # noqa: E402

PASSWORD = "soak-password-123"
SIPP_DIR = ROOT / "tests/sipp"


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


def booked(db: Path) -> tuple[int, int]:
    """(calls closed, calls answered) in the books."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        closed = con.execute("SELECT count(*) FROM calls WHERE disposition != 'in_progress'").fetchone()[0]
        answered = con.execute("SELECT count(*) FROM calls WHERE disposition = 'answered'").fetchone()[0]
    finally:
        con.close()
    return int(closed), int(answered)


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return 0.0 if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=2.0, help="calls per second")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=0.3, help="fraction of the run before the fit")
    ap.add_argument("--events-buffer", type=int, default=None, help="[events] buffer (default: the config's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "soak_results.json")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pypbx-soak-"))
    p = PbxProcess(
        work / "pbx",
        security={"exempt": ["127.0.0.1"]},
        media={"workers_max": 16, "workers_warm": 4},
        registrar={"max_expires": 7200},
        **({"events": {"journal": "events.jsonl", "buffer": a.events_buffer}} if a.events_buffer else {}),
    )
    p.add_extensions(["1001", "1002"], PASSWORD)
    p.start(timeout=60)
    total = int(a.minutes * 60 * a.rate)
    uas_port = free_port("both")
    reg = run_sipp(
        "register.xml",
        f"127.0.0.1:{p.port}",
        users=auth_users(["1002"], PASSWORD),
        workdir=work / "uas",
        extra=["-p", str(uas_port)],
    )
    assert reg.returncode == 0, reg.errors
    seconds = int(a.minutes * 60) + 120
    uas = subprocess.Popen(
        [
            *("sipp", "-sf", str(SIPP_DIR / "call_uas.xml"), "-s", "1002", "-i", "127.0.0.1", "-p", str(uas_port)),
            *("-m", str(total), "-d", "100", "-nostdin", "-timeout", f"{seconds}s", "-trace_err"),
        ],
        cwd=work / "uas",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (work / "uac").mkdir()
    users = work / "uac" / "users.csv"
    users.write_text("SEQUENTIAL\n" + "".join(";".join(u) + "\n" for u in auth_users(["1001"], PASSWORD)))
    uac = subprocess.Popen(
        [
            *("sipp", f"127.0.0.1:{p.port}", "-sf", str(SIPP_DIR / "call_uac.xml"), "-s", "1002", "-inf", str(users)),
            *("-i", "127.0.0.1", "-p", str(free_port("both")), "-m", str(total), "-r", str(a.rate), "-l", "40"),
            *("-nostdin", "-timeout", f"{seconds}s", "-trace_err", "-trace_stat", "-fd", "5"),
        ],
        cwd=work / "uac",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert p.proc is not None
    core = p.proc.pid
    samples: list[dict[str, object]] = []
    t0 = time.monotonic()

    def sample() -> dict[str, object]:
        closed, answered = booked(p.cfg.db_path)
        workers = children(core)
        st = p.status()
        s: dict[str, object] = {
            "t": round(time.monotonic() - t0, 1),
            "calls": closed,
            "answered": answered,
            "core_rss_kb": rss_kb(core),
            "workers": len(workers),
            "workers_rss_kb": sum(rss_kb(w) for w in workers),
            "transactions": st["transactions"]["total"],
            "tables": st.get("tables", {}),
        }
        samples.append(s)
        print(
            f"t={s['t']:>6}s calls={closed:>5} core={s['core_rss_kb'] / 1024:6.1f} MB "
            f"workers={len(workers)} {s['workers_rss_kb'] / 1024:6.1f} MB txn={s['transactions']}",
            flush=True,
        )
        return s

    idle = sample()
    try:
        while uac.poll() is None:
            time.sleep(a.every)
            sample()
        try:
            uas.wait(10)  # it ends after its last call; a call that failed leaves it waiting
        except subprocess.TimeoutExpired:
            uas.kill()
        p.wait_for(lambda: p.api("calls") == [], timeout=30, what="no live call")
        time.sleep(35)  # Timer J / D: the last transactions linger 32 s
        end = sample()
    finally:
        for proc in (uac, uas):
            if proc.poll() is None:
                proc.kill()
        p.stop()
    fit = [s for s in samples if float(s["t"]) >= a.warmup * a.minutes * 60 and s is not end]
    xs = [float(s["calls"]) for s in fit]
    core_kb = slope(xs, [float(s["core_rss_kb"]) for s in fit])
    workers_kb = slope(xs, [float(s["workers_rss_kb"]) / max(1, int(s["workers"])) for s in fit])
    idle_tables = idle["tables"] if isinstance(idle["tables"], dict) else {}
    end_tables = end["tables"] if isinstance(end["tables"], dict) else {}
    grown = {k: (idle_tables.get(k, 0), v) for k, v in end_tables.items() if v > idle_tables.get(k, 0)}
    summary = {
        "minutes": a.minutes,
        "rate": a.rate,
        "calls_booked": end["calls"],
        "calls_answered": end["answered"],
        "core_rss_mb": {
            "idle": round(int(idle["core_rss_kb"]) / 1024, 1),
            "after_warmup": round(float(fit[0]["core_rss_kb"]) / 1024, 1) if fit else None,
            "peak": round(max(int(s["core_rss_kb"]) for s in samples) / 1024, 1),
            "end": round(int(end["core_rss_kb"]) / 1024, 1),
        },
        "core_growth_kb_per_call": round(core_kb, 3),
        "worker_growth_kb_per_call_per_worker": round(workers_kb, 3),
        "tables_above_idle_at_end": grown,
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
    }
    print(json.dumps(summary, indent=2))
    a.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
