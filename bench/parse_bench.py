"""Micro-benchmark: µs per parse of a typical ~500-byte REGISTER plus access to the
fields a registrar touches (call_id, cseq, vias, from_, to, contacts, expires).

    .venv/bin/python bench/parse_bench.py [iterations]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sip.message import StreamFramer, parse_message

REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.23:5060;rport;branch=z9hG4bK-524287-1---a5b2f1c0d3e4f5a6\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:1001@192.168.1.23:5060;rinstance=9f8e7d6c5b4a3928;transport=UDP>"
    b';+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1\r\n'
    b'To: "Front Desk" <sip:1001@pbx.example.com>\r\n'
    b'From: "Front Desk" <sip:1001@pbx.example.com>;tag=8a7b6c5d\r\n'
    b"Call-ID: ZDk4YjU5NGE0ZTc2YjFkMWI0ZjA5ZGFkYjE2Njc4ZDk.\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Expires: 3600\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Supported: replaces, outbound, path, gruu\r\n"
    b"User-Agent: Zoiper rv2.10.19.6\r\n"
    b"Allow-Events: presence, kpml, talk\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


# the ~500-byte REGISTER of the performance target (no Allow/Supported/User-Agent noise)
REGISTER_500 = b"".join(
    ln + b"\r\n" for ln in REGISTER.split(b"\r\n") if not ln.startswith((b"Allow:", b"Allow-Events:", b"Supported:"))
)[:-2]


def varied(count: int = 2000) -> list[bytes]:
    """`count` distinct REGISTERs (users, branches, tags, Call-IDs, ports all differ)."""
    out = []
    text = REGISTER.decode()
    for i in range(count):
        ext = str(1000 + i % 500)
        out.append(
            text.replace("1001", ext)
            .replace("a5b2f1c0d3e4f5a6", f"{i:016x}")
            .replace("8a7b6c5d", f"{i * 7919:08x}")
            .replace("ZDk4YjU5NGE0ZTc2YjFkMWI0ZjA5ZGFkYjE2Njc4ZDk", f"{i * 104729:040x}")
            .replace("192.168.1.23:5060", f"10.0.{i % 250}.{i % 200 + 2}:{5060 + i % 7}")
            .encode()
        )
    return out


def bench(n: int, msgs: list[bytes] | None = None) -> float:
    msgs = msgs or [REGISTER]
    k = len(msgs)
    t0 = time.perf_counter()
    for i in range(n):
        m = parse_message(msgs[i % k])
        m.call_id, m.cseq, m.vias, m.from_, m.to, m.contacts, m.expires  # noqa: B018
    return (time.perf_counter() - t0) / n * 1e6


def bench_framer(n: int) -> float:
    stream = REGISTER * 100
    t0 = time.perf_counter()
    for _ in range(n // 100):
        f = StreamFramer()
        assert len(f.feed(stream)) == 100
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    bench(1000)  # warm-up
    best = min(bench(n, [REGISTER_500]) for _ in range(3))
    print(f"REGISTER ({len(REGISTER_500)} bytes) parse + field access: {best:.1f} µs/msg ({1e6 / best:,.0f} msg/s)")
    best = min(bench(n) for _ in range(3))
    print(f"REGISTER ({len(REGISTER)} bytes) parse + field access: {best:.1f} µs/msg ({1e6 / best:,.0f} msg/s)")
    msgs = varied()
    best = min(bench(n, msgs) for _ in range(3))
    print(f"{len(msgs)} distinct REGISTERs, parse + field access: {best:.1f} µs/msg ({1e6 / best:,.0f} msg/s)")
    fr = min(bench_framer(n) for _ in range(3))
    print(f"StreamFramer: {fr:.1f} µs/msg")


if __name__ == "__main__":
    main()
