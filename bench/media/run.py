"""Media engine figures: idle worker CPU/RSS, and CPU/RSS per bridged + recorded call.

    .venv/bin/python bench/media/run.py [--calls 4] [--idle-seconds 10] [--talk-seconds 6]

Each call session gets its own worker (as in production): sipp caller -> worker (answer),
worker originates to a sipp "agent" (answer), bridge, record both parties; both sipps
stream PCMA (g711a.pcap). CPU is read from /proc/<pid>/stat of the workers only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from media import protocol as P  # noqa: E402
from media.pool import MediaPool  # noqa: E402

SIPP_DIR = ROOT / "tests" / "sipp"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_udp() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


async def sipp(
    tmp: Path, scenario: str, port: int, remote: str | None, duration_ms: int, media_port: int
) -> asyncio.subprocess.Process:
    args = [
        shutil.which("sipp") or "sipp",
        "-sf",
        str(SIPP_DIR / scenario),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-d",
        str(duration_ms),
        "-timeout",
        "60s",
        "-nostdin",
    ]
    if remote:
        args.insert(1, remote)
    return await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


async def main(a: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="media-bench-"))
    with open(tmp / "workers.log", "ab") as workers_log:  # open as long as the pool spawns workers
        out = await _bench(a, tmp, workers_log)
    out["tmp"] = str(tmp)
    return out


async def _bench(a: argparse.Namespace, tmp: Path, workers_log: BinaryIO) -> dict:
    caller_ports = [free_udp() for _ in range(a.calls)]
    pool = MediaPool(
        size_warm=a.calls,
        max_workers=a.calls,
        sip_port_base=a.sip_base,
        rtp_port_base=a.rtp_base,
        rtp_ports_per_worker=16,
        trusted=[f"127.0.0.1:{p}" for p in caller_ports],
        worker_stderr=workers_log,
        ping_interval=3600,
    )
    t = time.monotonic()
    await pool.start()
    out: dict = {"workers": a.calls, "start_all_s": round(time.monotonic() - t, 3)}
    ws = [await pool.acquire() for _ in range(a.calls)]
    out["capacity_per_worker"] = ws[0].capacity

    # idle
    c0 = [cpu_seconds(w.pid) for w in ws]
    await asyncio.sleep(a.idle_seconds)
    c1 = [cpu_seconds(w.pid) for w in ws]
    out["idle_cpu_pct_per_worker"] = round(100 * (sum(c1) - sum(c0)) / a.idle_seconds / a.calls, 3)
    out["idle_rss_mb_per_worker"] = round(sum(rss_mb(w.pid) for w in ws) / a.calls, 1)

    # calls
    procs = []
    talk_ms = int(a.talk_seconds * 1000) + 2000
    for i, w in enumerate(ws):
        agent_port = free_udp()
        procs.append(await sipp(tmp, "media_uas_pcma.xml", agent_port, None, talk_ms, a.media_base + 8 * i))
        procs.append(
            await sipp(
                tmp, "media_uac_pcma.xml", caller_ports[i], f"127.0.0.1:{w.sip_port}", talk_ms, a.media_base + 8 * i + 4
            )
        )
        inc = await w.next_event(P.Incoming, timeout=10)
        await w.originate("agent", f"sip:agent@127.0.0.1:{agent_port}")
        await w.next_event(P.Answered, leg="agent")
        await w.answer(inc.leg)
        await w.next_event(P.Answered, leg=inc.leg)
        await w.bridge(inc.leg, "agent")
        await w.record([inc.leg, "agent"], tmp / f"call{i}")
    await asyncio.sleep(0.5)
    c0 = [cpu_seconds(w.pid) for w in ws]
    t0 = time.monotonic()
    await asyncio.sleep(a.talk_seconds)
    dt = time.monotonic() - t0
    c1 = [cpu_seconds(w.pid) for w in ws]
    out["call_cpu_pct_per_call"] = round(100 * (sum(c1) - sum(c0)) / dt / a.calls, 3)
    out["call_rss_mb_per_worker"] = round(sum(rss_mb(w.pid) for w in ws) / a.calls, 1)
    for w in ws:  # caller hangs up (sipp BYE) -> the core hangs up the agent leg
        ended = await w.next_event(P.Ended, timeout=30)
        await w.hangup("agent" if ended.leg != "agent" else "in-1")
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), 15)
        except TimeoutError:
            p.kill()
    await pool.close()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--talk-seconds", type=float, default=5)
    ap.add_argument("--sip-base", type=int, default=41000)
    ap.add_argument("--rtp-base", type=int, default=42000)
    ap.add_argument("--media-base", type=int, default=44000)
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
