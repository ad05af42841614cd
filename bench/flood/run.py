"""Benchmark: what a distributed flood of unauthenticated INVITEs costs the front door.

The SIP front door (sip/server.py with the proxy and its 407 digest challenges, as the
PBX wires them) runs in this process on 127.0.0.1; a child process floods it with INVITEs
that carry no credentials and are never ACKed, from ``--sources`` loopback addresses
(127.0.0.2 ...) at ``--rate`` INVITEs/s in all, for ``--seconds``. Measured, for stateful
challenges (the old behaviour: one INVITE server transaction per 407, retransmitting it
for Timer H = 32 s) and for stateless ones (sip/proxy.py ``stateless_challenge``): the live
server transactions (peak and at the end), the Python heap growth (tracemalloc) and the
process RSS growth, and the 407s received.

    .venv/bin/python bench/flood/run.py [--rate 2000] [--sources 100] [--seconds 10]

The global admission limit is off here (``max_new_per_second=0``): this measures what a
challenge costs. Results are written to bench/flood/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import resource
import socket
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sip import digest  # noqa: E402
from sip.auth import ProxyAuthenticator  # noqa: E402
from sip.guard import AbuseGuard  # noqa: E402
from sip.location import LocationService  # noqa: E402
from sip.proxy import Proxy, RouteDecision  # noqa: E402
from sip.registrar import Registrar  # noqa: E402
from sip.server import ListenSpec, SipServer  # noqa: E402
from sip.transaction import Addr  # noqa: E402

REALM = "pypbx"


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def flood(port: int, rate: float, sources: int, seconds: float, out: mp.Queue) -> None:
    socks = []
    for i in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{2 + i}", 0))
        s.setblocking(False)
        socks.append(s)
    interval = 1.0 / rate
    start = next_at = time.monotonic()
    n = got = 0
    while time.monotonic() - start < seconds:
        s = socks[n % sources]
        host, sport = s.getsockname()
        data = (
            f"INVITE sip:1002@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{sport};branch=z9hG4bKfl{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=fl{n}\r\nTo: <sip:1002@127.0.0.1>\r\n"
            f"Call-ID: flood-{n}@{host}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{host}>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        try:
            s.sendto(data, ("127.0.0.1", port))
        except BlockingIOError:
            pass
        n += 1
        if n % 100 == 0:
            for r in socks:
                while True:
                    try:
                        if r.recv(65536).startswith(b"SIP/2.0 407"):
                            got += 1
                    except BlockingIOError:
                        break
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    out.put({"sent": n, "first_407s_seen": got, "seconds": round(time.monotonic() - start, 1)})


async def measure(stateless: bool, rate: float, sources: int, seconds: float, heap: bool) -> dict[str, object]:
    nonces = digest.NonceManager(b"k" * 32)
    registrar = Registrar(REALM, LocationService(), nonces, lambda u: None)
    server = SipServer(registrar=registrar, guard=AbuseGuard(rate_limit=0, max_new_per_second=0))
    server.stateless_challenges = stateless
    (lst,) = await server.start([ListenSpec("UDP", "127.0.0.1", 0)])
    worker = Addr("UDP", "127.0.0.1", 9)
    server.attach_proxy(
        Proxy(
            route=lambda r, s, u: RouteDecision.fork([(f"sip:{r.uri.user}@127.0.0.1:9", worker)]),
            local_address=server.local_address,
            is_local=server.is_local,
            secret=b"s" * 32,
            authenticator=ProxyAuthenticator(REALM, nonces, lambda u: None),
        )
    )
    await asyncio.sleep(0.2)
    if heap:
        tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0] if heap else 0
    rss0 = rss_kb()
    q: mp.Queue = mp.Queue()
    child = mp.Process(target=flood, args=(lst.port, rate, sources, seconds, q))
    child.start()
    peak = 0
    t0 = time.monotonic()
    while child.is_alive():
        await asyncio.sleep(0.1)
        peak = max(peak, len(server.txn))
    flood_res = q.get()
    end_txn = len(server.txn)
    heap1 = tracemalloc.get_traced_memory()[0] if heap else 0
    rss1 = rss_kb()
    if heap:
        tracemalloc.stop()
    elapsed = time.monotonic() - t0
    await server.stop(drain_timeout=0.1)
    return {
        "challenges": "stateless" if stateless else "stateful (one INVITE server transaction per 407)",
        **flood_res,
        "challenges_sent": server.counters["stateless_challenges"]
        + (server.proxy.counters["auth_challenges"] if server.proxy and not stateless else 0),
        "live_server_transactions_peak": peak,
        "live_server_transactions_end": end_txn,
        "heap_growth_mb": round((heap1 - heap0) / 1e6, 1) if heap else None,
        "rss_growth_mb": round((rss1 - rss0) / 1e3, 1),
        "elapsed_s": round(elapsed, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000.0, help="INVITEs per second, all sources together")
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--heap", action="store_true", help="also trace the Python heap (tracemalloc; slows the server)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    a = ap.parse_args()
    results = []
    for stateless in (False, True):  # each in a fresh child so RSS figures do not mix
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=_one, args=(stateless, a.rate, a.sources, a.seconds, a.heap, q))
        p.start()
        r = q.get()
        p.join()
        print(json.dumps(r))
        results.append(r)
    out = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "rate": a.rate,
        "sources": a.sources,
        "seconds": a.seconds,
        "heap_traced": a.heap,
        "max_rss_parent_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "results": results,
    }
    a.out.write_text(json.dumps(out, indent=2) + "\n")


def _one(stateless: bool, rate: float, sources: int, seconds: float, heap: bool, q: mp.Queue) -> None:
    q.put(asyncio.run(measure(stateless, rate, sources, seconds, heap)))


if __name__ == "__main__":
    main()
