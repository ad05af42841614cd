"""Transaction layer: configurable timers, Timer C, lazy cancellation/compaction,
and a randomised robustness check (state machines never wedge or leak)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sip.transaction import (
    AckReceived,
    Addr,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    State,
    StrayResponse,
    Timeout,
    TransactionLayer,
    TransactionTerminated,
    Transmit,
)
from tests.unit.test_transaction_support import CLIENT_IP, drive, make_request, make_response, resp

UDP_SRC = Addr("UDP", CLIENT_IP, 5060)
UDP_DEST = Addr("UDP", "198.51.100.20", 5060)
TCP_DEST = Addr("TCP", "198.51.100.20", 5060, conn_id=3)


def test_next_deadline_skips_cancelled_timers():
    layer = TransactionLayer()
    req = make_request("INVITE")
    _key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    assert layer.next_deadline() == 0.5
    layer.receive(resp(req, 180, to_tag="a"), UDP_DEST, False, 0.1)
    assert layer.next_deadline() is None  # A and B lazily cancelled
    assert layer.stats()["timers_queued"] == 0


def test_heap_is_compacted_when_cancelled_entries_dominate():
    layer = TransactionLayer()
    base = make_request("OPTIONS", branch="z9hG4bKbase")
    for i in range(3000):
        r = make_request("OPTIONS", branch=f"z9hG4bKh{i}", call_id=base.call_id)
        _key, _ = layer.send_request(r, UDP_DEST, False, 0.0)
        layer.receive(resp(r, 200, to_tag="x"), UDP_DEST, False, 0.1)
    # each has a dead E (0.5) and F (32.0) entry and a live K (5.1)
    assert layer.stats()["timers_queued"] >= 6000
    ev = layer.tick(6.0)
    assert len(ev) == 3000 and len(layer) == 0
    assert layer.stats()["timers_queued"] == 0  # compacted, no wait for F's 32 s


def test_custom_t2_caps_timer_g():
    layer = TransactionLayer(t1=0.5, t2=2.0)
    req = make_request("INVITE")
    ev = layer.receive(req, UDP_SRC, False, 0.0)
    rr = ev[0]
    layer.send_response(rr.key, make_response(rr.request, 503, to_tag="u"), 0.0)
    out = drive(layer, 10.0)
    assert [t for t, e in out if isinstance(e, Transmit)] == [0.5, 1.5, 3.5, 5.5, 7.5, 9.5]


def test_custom_t4_timer_i_and_k_and_timer_d():
    layer = TransactionLayer(t4=1.0, timer_d=40.0)
    req = make_request("INVITE")
    rr = layer.receive(req, UDP_SRC, False, 0.0)[0]
    layer.send_response(rr.key, make_response(rr.request, 486, to_tag="u"), 0.0)
    ack = make_request("ACK", branch=req.top_via.branch, call_id=req.call_id, to_tag="u")
    layer.receive(ack, UDP_SRC, False, 0.25)
    assert drive(layer, 100.0) == [(1.25, TransactionTerminated(rr.key))]  # Timer I = T4
    opt = make_request("OPTIONS")
    k, _ = layer.send_request(opt, UDP_DEST, False, 2.0)
    layer.receive(resp(opt, 200, to_tag="z"), UDP_DEST, False, 2.0)
    assert drive(layer, 100.0) == [(3.0, TransactionTerminated(k))]  # Timer K = T4
    inv = make_request("INVITE")
    k2, _ = layer.send_request(inv, UDP_DEST, False, 10.0)
    layer.receive(resp(inv, 404, to_tag="n"), UDP_DEST, False, 10.0)
    assert drive(layer, 100.0) == [(50.0, TransactionTerminated(k2))]  # Timer D


def test_ist_ack_in_proceeding_is_dropped():
    layer = TransactionLayer()
    req = make_request("INVITE")
    rr = layer.receive(req, UDP_SRC, False, 0.0)[0]
    ack = make_request("ACK", branch=req.top_via.branch, call_id=req.call_id)
    assert layer.receive(ack, UDP_SRC, False, 0.1) == []
    assert layer.state(rr.key) == State.PROCEEDING


def test_timer_c_reports_timeout_then_allows_487_then_expires():
    layer = TransactionLayer(timer_c=180.0)
    req = make_request("INVITE")
    key, _ = layer.send_request(req, TCP_DEST, True, 0.0)
    layer.receive(resp(req, 180, to_tag="r"), TCP_DEST, True, 10.0)  # resets C -> 190
    out = drive(layer, 189.9)
    assert out == []
    assert layer.tick(190.0) == [Timeout(key)]
    assert layer.state(key) == State.PROCEEDING  # still there for the 487 after CANCEL
    r487 = resp(req, 487, to_tag="r")
    ev = layer.receive(r487, TCP_DEST, True, 191.0)
    assert [type(e) for e in ev] == [ResponseReceived, Transmit, TransactionTerminated]
    # and if nothing ever comes: gone 64*T1 after Timer C
    req2 = make_request("INVITE")
    key2, _ = layer.send_request(req2, TCP_DEST, True, 200.0)
    layer.receive(resp(req2, 183, to_tag="r"), TCP_DEST, True, 201.0)
    assert drive(layer, 1000.0) == [(381.0, Timeout(key2)), (413.0, TransactionTerminated(key2))]
    assert len(layer) == 0


def test_timer_c_off_by_default_proceeding_lives_on():
    layer = TransactionLayer()
    req = make_request("INVITE")
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    layer.receive(resp(req, 180, to_tag="r"), UDP_DEST, False, 0.1)
    assert drive(layer, 10_000.0) == [] and layer.state(key) == State.PROCEEDING


# ---------------------------------------------------------------------------
# randomised: any interleaving of network input, TU actions and time keeps the
# layer consistent, and once every server transaction got a final response and
# every INVITE client a final, everything is freed.
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.booleans())
def test_random_interleavings_never_leak(seed, reliable):
    rnd = random.Random(seed)
    layer = TransactionLayer(timer_c=200.0)
    src = Addr("TCP", CLIENT_IP, 5060, 1) if reliable else UDP_SRC
    dest = TCP_DEST if reliable else UDP_DEST
    transport = "TCP" if reliable else "UDP"
    now = 0.0
    client = []  # (key, request)
    server = {}  # key -> (original request, updated request)
    terminated = set()

    def absorb(events):
        for e in events:
            assert isinstance(
                e,
                (
                    Transmit,
                    RequestReceived,
                    ResponseReceived,
                    AckReceived,
                    CancelReceived,
                    Timeout,
                    TransactionTerminated,
                    StrayResponse,
                ),
            )
            if isinstance(e, Transmit):
                assert isinstance(e.data, bytes) and e.data and isinstance(e.dest, Addr)
            if isinstance(e, TransactionTerminated):
                assert layer.state(e.key) is None  # really gone
                terminated.add(e.key)

    for _ in range(60):
        op = rnd.randrange(8)
        if op == 0:
            m = rnd.choice(["INVITE", "OPTIONS", "BYE"])
            r = make_request(m, transport=transport)
            k, ev = layer.send_request(r, dest, reliable, now)
            absorb(ev)
            client.append((k, r))
        elif op == 1 and client:
            k, r = rnd.choice(client)
            status = rnd.choice([100, 180, 200, 404, 487, 503])
            absorb(layer.receive(resp(r, status, to_tag="t"), dest, reliable, now))
        elif op == 2:
            m = rnd.choice(["INVITE", "REGISTER", "OPTIONS"])
            r = make_request(m, transport=transport)
            ev = layer.receive(r, src, reliable, now)
            absorb(ev)
            server[ev[0].key] = (r, ev[0].request)
        elif op == 3 and server:
            k = rnd.choice(list(server))
            status = rnd.choice([100, 180, 200, 486, 500])
            absorb(layer.send_response(k, make_response(server[k][1], status, to_tag="s"), now))
        elif op == 4 and server:
            k = rnd.choice(list(server))
            absorb(layer.receive(server[k][0], src, reliable, now))  # retransmission
        elif op == 5 and server:
            k = rnd.choice(list(server))
            orig = server[k][0]
            ack = make_request("ACK", transport=transport, branch=orig.top_via.branch, call_id=orig.call_id, to_tag="s")
            absorb(layer.receive(ack, src, reliable, now))
        elif op == 6 and server:
            k = rnd.choice(list(server))
            orig = server[k][0]
            cancel = make_request("CANCEL", transport=transport, branch=orig.top_via.branch, call_id=orig.call_id)
            absorb(layer.receive(cancel, src, reliable, now))
        else:
            now += rnd.choice([0.1, 0.5, 2.0, 10.0])
            absorb(layer.tick(now))
        assert len(layer) == layer.stats()["total"] >= 0
        nd = layer.next_deadline()
        assert nd is None or nd >= 0

    # finish: every server transaction gets a final response, every client a final
    for k, (_orig, upd) in list(server.items()):
        absorb(layer.send_response(k, make_response(upd, 500, to_tag="s"), now))
    for _k, r in client:
        absorb(layer.receive(resp(r, 408, to_tag="t"), dest, reliable, now))
    for _ in range(3):
        now += 1000.0
        absorb(layer.tick(now))
    assert len(layer) == 0
    assert layer.next_deadline() is None
    st_ = layer.stats()
    assert (st_["invite_client"], st_["non_invite_client"], st_["invite_server"], st_["non_invite_server"]) == (
        0,
        0,
        0,
        0,
    )
