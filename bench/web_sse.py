"""Benchmark: do 50 browsers on the web desk's event stream slow down call set-up?

One real ``pypbx run`` (bench/calls/run.py's ``Bench``: extensions 2000.. call 3000.. through
the PBX, a sipp UAS answering every callee, a sipp UAC calling with digest auth, PCMA media,
every call bridged and recorded). The same batch of calls (``--calls`` at ``--rate`` calls/s,
``--talk`` s each) is placed with 0 and with ``--listeners`` (50) clients on
``GET /api/v1/events`` (Server-Sent Events, a wallboard bearer token), alternating
0, 50, 0, 50 ... (``--rounds`` each) so drift in the machine's load hits both alike.

The SSE clients are aiohttp clients in this process (one event loop in a thread), each
reading the stream line by line like a browser's EventSource: they stand for browsers
(a browser also refetches ``/api/v1/board`` on events; ``--board`` makes each client do
that too, at most once per 100 ms, as static/board.js does). Each client's ``call.ended``
count is checked: every listener saw every call end.

Set-up time = sipp's response time of the call: first INVITE sent -> 200 OK received
(the 407 challenge round included), per call (``-trace_rtt``). Reported: median, p95, max;
and the PBX's CPU (main process + media workers, /proc) per call in each round, which the
listeners' cost would show in even where the machine's load blurs the latencies. The
listeners run on the same machine as the PBX and sipp (a browser would not).

    .venv/bin/python bench/web_sse.py                       # 4 rounds of 60 calls (~3 min)
    .venv/bin/python bench/web_sse.py --rounds 1 --calls 30 # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.calls.run import (  # noqa: E402
    CALLEES,
    CALLERS,
    PASSWORD,
    SIPP_DIR,
    Bench,
    clean,
    cpu_seconds,
    machine,
    make_pcma_raw,
    sipp_errors,
    sipp_stats,
    tree,
)
from tests.integration.harness import free_port  # noqa: E402


class Listeners:
    """``n`` SSE clients on /api/v1/events (and, with ``board``, refetching the board snapshot)."""

    def __init__(self, base: str, token: str, n: int, board: bool) -> None:
        self.base, self.token, self.n, self.board = base, token, n, board
        self.ended = [0] * n
        self.events = [0] * n
        self.connected = 0
        self.loop = asyncio.new_event_loop()
        self.stop_evt: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.connected < self.n and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.connected < self.n:
            raise SystemExit(f"only {self.connected}/{self.n} SSE clients connected")

    def stop(self) -> None:
        if self.stop_evt is not None:
            self.loop.call_soon_threadsafe(self.stop_evt.set)
        self.thread.join(30)

    def _run(self) -> None:
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.stop_evt = asyncio.Event()
        headers = {"Authorization": f"Bearer {self.token}"}
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=headers, connector=conn) as s:
            tasks = [asyncio.create_task(self._client(s, i)) for i in range(self.n)]
            await self.stop_evt.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, s: aiohttp.ClientSession, i: int) -> None:
        last_fetch = 0.0
        async with s.get(f"{self.base}/api/v1/events", timeout=aiohttp.ClientTimeout(total=None)) as r:
            assert r.status == 200, r.status
            self.connected += 1
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    self.events[i] += 1
                    if line == "event: call.ended":
                        self.ended[i] += 1
                    if self.board and time.monotonic() - last_fetch > 0.1:
                        last_fetch = time.monotonic()
                        async with s.get(f"{self.base}/api/v1/board") as b:
                            await b.read()


def uac(b: Bench, pbx, calls: int, rate: float, talk_ms: int) -> subprocess.Popen:
    csv = b.work / "callers.csv"
    rows = [
        f"{c};[authentication username={c} password={PASSWORD}];{CALLEES[i % len(CALLEES)]}\n"
        for i, c in enumerate(CALLERS)
    ]
    csv.write_text("SEQUENTIAL\n" + "".join(rows))
    args = ["sipp", f"127.0.0.1:{pbx.port}", "-sf", str(SIPP_DIR / "bench_uac.xml"), "-inf", str(csv)]
    args += ["-t", "u1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port("udp"))]
    args += ["-r", str(rate), "-m", str(calls), "-l", str(calls), "-d", str(talk_ms), "-nostdin"]
    args += ["-timeout", "120s", "-timeout_error", "-trace_err", "-trace_stat", "-trace_rtt", "-rtt_freq", "1"]
    args += ["-fd", "1", "-max_socket", "5000"]
    return subprocess.Popen(args, cwd=b.work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def rtts(work: Path) -> list[float]:
    out: list[float] = []
    for p in work.glob("bench_uac_*_rtt.csv"):
        for line in p.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2 and re.match(r"^[0-9.]+$", parts[1]):
                out.append(float(parts[1]))
        p.unlink()
    return out


def dist(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    s = sorted(xs)
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s), 1),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1),
        "max_ms": round(s[-1], 1),
        "mean_ms": round(statistics.fmean(s), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listeners", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each (0 and N listeners), alternating")
    ap.add_argument("--calls", type=int, default=60, help="calls per round")
    ap.add_argument("--rate", type=float, default=5.0, help="calls/s")
    ap.add_argument("--talk", type=float, default=1.0, help="talk seconds per call")
    ap.add_argument("--board", action="store_true", help="each listener also refetches /api/v1/board on events")
    ap.add_argument("--workers-max", type=int, default=40)
    ap.add_argument("--workers-warm", type=int, default=10)
    ap.add_argument("--workdir", default="/tmp/pypbx-bench-web-sse")
    ap.add_argument("--out", default="", help="write the results as JSON here")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    make_pcma_raw(work / "bench_pcma.raw")
    clean(work)
    b = Bench(work, args.workers_max, args.workers_warm, "INFO")
    pbx = b.start_pbx()
    uas, _ = b.register_and_start_uas(pbx)
    tok = pbx.cli("token", "add", "--role", "wallboard", "--name", "bench").stdout
    m = re.search(r"pbx_\S+", tok)
    if m is None:
        raise SystemExit(f"no token in: {tok}")
    base = f"http://127.0.0.1:{pbx.cfg.web.port}"
    per: dict[int, list[float]] = {0: [], args.listeners: []}
    cpu_per: dict[int, list[float]] = {0: [], args.listeners: []}
    rounds: list[dict] = []
    failed = 0
    try:
        for r in range(args.rounds):
            for n in (0, args.listeners):
                ls = Listeners(base, m.group(0), n, args.board) if n else None
                if ls:
                    ls.start()
                c0, t0 = cpu_seconds(tree(pbx.proc.pid)), time.monotonic()
                p = uac(b, pbx, args.calls, args.rate, int(args.talk * 1000))
                _, err = p.communicate(timeout=args.calls / args.rate + args.talk + 180)
                time.sleep(1.0)  # the last call.ended reaches every listener
                cpu, wall = cpu_seconds(tree(pbx.proc.pid)) - c0, time.monotonic() - t0
                if ls:
                    ls.stop()
                st = sipp_stats(work, "bench_uac")
                ok, bad = int(st.get("SuccessfulCall(C)", 0) or 0), int(st.get("FailedCall(C)", 0) or 0)
                failed += bad + (args.calls - ok)
                xs = rtts(work)
                per[n].extend(xs)
                row = {"round": r + 1, "listeners": n, "ok": ok, "failed": bad, **dist(xs)}
                row["pbx_cpu_ms_per_call"] = round(1000 * cpu / max(1, ok), 1)
                row["pbx_cpu_pct"] = round(100 * cpu / wall, 1)
                row["loadavg"] = round(os.getloadavg()[0], 1)
                cpu_per[n].append(row["pbx_cpu_ms_per_call"])
                if ls:
                    row["listener_call_ended_min"] = min(ls.ended)
                    row["listener_call_ended_max"] = max(ls.ended)
                    row["listener_events_min"] = min(ls.events)
                if bad or p.returncode:
                    row["errors"] = (sipp_errors(work, "bench_uac") + err)[:1500]
                clean(work)
                rounds.append(row)
                print(json.dumps(row), flush=True)
    finally:
        fin = b.finish(pbx, uas, 0)
    out = {
        "machine": machine(),
        "calls_per_round": args.calls,
        "rate": args.rate,
        "talk_s": args.talk,
        "board_refetch": args.board,
        "rounds": rounds,
        "setup_0": dist(per[0]),
        f"setup_{args.listeners}": dist(per[args.listeners]),
        "pbx_cpu_ms_per_call_0": cpu_per[0],
        f"pbx_cpu_ms_per_call_{args.listeners}": cpu_per[args.listeners],
        "failed_calls": failed,
        "pbx_log_problems": fin["log_problems"][:10],
    }
    print(json.dumps({k: v for k, v in out.items() if k not in ("rounds",)}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
