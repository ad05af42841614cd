"""Builders shared by the transaction-layer tests (no tests in here)."""

from __future__ import annotations

import itertools

from sip.message import make_response, parse_message

CLIENT_IP = "192.0.2.10"
SERVER = "198.51.100.20"

_counter = itertools.count(1)


def make_request(
    method,
    *,
    branch="auto",
    transport="UDP",
    via_host=CLIENT_IP,
    via_port=5060,
    via_params="",
    extra_vias=(),
    call_id=None,
    cseq=1,
    to_tag=None,
    from_tag="ft1",
    uri="sip:bob@example.com",
    routes=(),
    body=b"",
):
    """A parsed request as it would arrive from / be sent to the network."""
    if branch == "auto":
        branch = f"z9hG4bKt{next(_counter)}"
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    via = f"SIP/2.0/{transport} {sent_by}"
    if branch is not None:
        via += f";branch={branch}"
    via += via_params
    lines = [f"{method} {uri} SIP/2.0", f"Via: {via}"]
    lines += [f"Via: {v}" for v in extra_vias]
    lines += [f"Route: {r}" for r in routes]
    lines += [
        "Max-Forwards: 70",
        f'From: "Alice" <sip:alice@example.com>;tag={from_tag}',
        "To: <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or f'cid{next(_counter)}@{CLIENT_IP}'}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@192.0.2.10:5060>",
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return parse_message("\r\n".join(lines).encode() + body)


def resp(req, status, to_tag=None):
    """A response to ``req`` as a UAS would send it (parsed back from bytes)."""
    return parse_message(make_response(req, status, to_tag=to_tag).to_bytes())


def parse(data: bytes):
    return parse_message(data)


def drive(layer, until):
    """Fire every timer up to ``until`` exactly at its deadline; [(time, event)]."""
    out = []
    while True:
        d = layer.next_deadline()
        if d is None or d > until:
            return out
        for e in layer.tick(d):
            out.append((d, e))
