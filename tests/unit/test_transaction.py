"""RFC 3261 §17 transaction layer: the four state machines, timers, matching.

Injected clock only: every test drives the layer with explicit ``now`` values.
"""

from __future__ import annotations

import dataclasses

import pytest

from sip.transaction import (
    AckReceived,
    Addr,
    ClientKey,
    LegacyServerKey,
    RequestReceived,
    ResponseReceived,
    ServerKey,
    State,
    StrayResponse,
    Timeout,
    TransactionLayer,
    TransactionTerminated,
    Transmit,
    TransportError,
    new_branch,
    response_destination,
)
from tests.unit.test_transaction_support import (
    CLIENT_IP,
    drive,
    make_request,
    make_response,
    parse,
    resp,
)

UDP_SRC = Addr("UDP", CLIENT_IP, 5060)
TCP_SRC = Addr("TCP", CLIENT_IP, 40123, conn_id=7)
UDP_DEST = Addr("UDP", "198.51.100.20", 5060)
TCP_DEST = Addr("TCP", "198.51.100.20", 5060, conn_id=3)


def types(events):
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def test_new_branch_has_magic_cookie_and_is_random():
    a, b = new_branch(), new_branch()
    assert a.startswith("z9hG4bK") and b.startswith("z9hG4bK")
    assert a != b and len(a) > len("z9hG4bK") + 8


def test_addr_is_frozen_and_hashable():
    a = Addr("TCP", "192.0.2.1", 5060, 4)
    assert a == Addr("TCP", "192.0.2.1", 5060, 4)
    assert hash(a) == hash(Addr("TCP", "192.0.2.1", 5060, 4))
    assert Addr("UDP", "192.0.2.1", 5060).conn_id is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.port = 1


# ---------------------------------------------------------------------------
# INVITE client transaction (§17.1.1)
# ---------------------------------------------------------------------------


def test_ict_udp_timer_a_doubles_and_timer_b_times_out():
    layer = TransactionLayer()
    req = make_request("INVITE", branch="z9hG4bKict1")
    key, ev = layer.send_request(req, UDP_DEST, False, 0.0)
    assert key == ClientKey("z9hG4bKict1", "INVITE")
    assert ev == [Transmit(req.to_bytes(), UDP_DEST)]
    assert layer.state(key) == State.CALLING
    assert layer.next_deadline() == 0.5
    out = drive(layer, 100.0)
    # Timer A: T1, 2T1, 4T1, ... (no T2 cap for INVITE); Timer B = 64*T1 = 32 s
    assert [(t, type(e).__name__) for t, e in out] == [
        (0.5, "Transmit"),
        (1.5, "Transmit"),
        (3.5, "Transmit"),
        (7.5, "Transmit"),
        (15.5, "Transmit"),
        (31.5, "Transmit"),
        (32.0, "Timeout"),
        (32.0, "TransactionTerminated"),
    ]
    assert all(e.data == req.to_bytes() and e.dest == UDP_DEST for _, e in out[:6])
    assert out[6][1] == Timeout(key) and out[7][1] == TransactionTerminated(key)
    assert len(layer) == 0 and layer.next_deadline() is None


def test_ict_custom_t1():
    layer = TransactionLayer(t1=0.1)
    layer.send_request(make_request("INVITE"), UDP_DEST, False, 10.0)
    out = drive(layer, 100.0)
    times = [round(t, 6) for t, e in out if isinstance(e, Transmit)]
    assert times == [10.1, 10.3, 10.7, 11.5, 13.1, 16.3]
    assert [round(t, 6) for t, e in out if isinstance(e, Timeout)] == [16.4]


def test_ict_tcp_no_retransmission_but_timer_b():
    layer = TransactionLayer()
    key, ev = layer.send_request(make_request("INVITE", transport="TCP"), TCP_DEST, True, 0.0)
    assert len(ev) == 1 and ev[0].dest == TCP_DEST
    assert layer.next_deadline() == 32.0
    out = drive(layer, 100.0)
    assert out == [(32.0, Timeout(key)), (32.0, TransactionTerminated(key))]


def test_ict_provisional_moves_to_proceeding_and_stops_a_and_b():
    layer = TransactionLayer()
    req = make_request("INVITE", branch="z9hG4bKp1")
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    r180 = resp(req, 180, to_tag="uas1")
    assert layer.receive(r180, UDP_DEST, False, 0.3) == [ResponseReceived(key, r180)]
    assert layer.state(key) == State.PROCEEDING
    r183 = resp(req, 183, to_tag="uas1")
    assert layer.receive(r183, UDP_DEST, False, 0.4) == [ResponseReceived(key, r183)]
    assert drive(layer, 1000.0) == []  # no A, no B in Proceeding
    assert layer.state(key) == State.PROCEEDING


@pytest.mark.parametrize("in_calling", [True, False])
def test_ict_non2xx_generates_ack_and_timer_d(in_calling):
    layer = TransactionLayer()
    req = make_request("INVITE", branch="z9hG4bKnack", routes=["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"])
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    if not in_calling:
        layer.receive(resp(req, 180, to_tag="t9"), UDP_DEST, False, 0.1)
    r486 = resp(req, 486, to_tag="t9")
    ev = layer.receive(r486, UDP_DEST, False, 1.0)
    assert types(ev) == ["ResponseReceived", "Transmit"]
    assert ev[0] == ResponseReceived(key, r486)
    assert ev[1].dest == UDP_DEST
    ack = parse(ev[1].data)
    assert ack.method == "ACK"
    assert str(ack.uri) == str(req.uri)
    assert ack.cseq == (req.cseq[0], "ACK")
    assert ack.call_id == req.call_id
    assert ack.headers.get("From") == req.headers.get("From")
    assert ack.to.tag == "t9"
    assert len(ack.vias) == 1 and ack.top_via.branch == "z9hG4bKnack"
    assert ack.headers.get_all("Route") == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    assert ack.max_forwards == 70
    assert layer.state(key) == State.COMPLETED
    # retransmitted final: ACK re-sent, nothing passed up
    ev2 = layer.receive(r486, UDP_DEST, False, 2.0)
    assert ev2 == [Transmit(ev[1].data, UDP_DEST)]
    # no more request retransmissions; Timer D (32 s) terminates
    out = drive(layer, 100.0)
    assert out == [(33.0, TransactionTerminated(key))]
    assert len(layer) == 0


def test_ict_non2xx_over_tcp_acks_and_terminates_at_once():
    layer = TransactionLayer()
    req = make_request("INVITE", transport="TCP")
    _key, _ = layer.send_request(req, TCP_DEST, True, 0.0)
    ev = layer.receive(resp(req, 603, to_tag="x"), TCP_DEST, True, 1.0)
    assert types(ev) == ["ResponseReceived", "Transmit", "TransactionTerminated"]
    assert parse(ev[1].data).method == "ACK" and ev[1].dest == TCP_DEST
    assert len(layer) == 0 and layer.next_deadline() is None


def test_ict_2xx_accepted_passes_retransmissions_and_forks_up_timer_m():
    layer = TransactionLayer()
    req = make_request("INVITE")
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    r200a = resp(req, 200, to_tag="a")
    assert layer.receive(r200a, UDP_DEST, False, 1.0) == [ResponseReceived(key, r200a)]
    assert layer.state(key) == State.ACCEPTED
    # 2xx retransmission and a forked 2xx reach the TU (which ACKs them); no ACK from layer
    r200b = resp(req, 200, to_tag="b")
    assert layer.receive(r200a, UDP_DEST, False, 2.0) == [ResponseReceived(key, r200a)]
    assert layer.receive(r200b, UDP_DEST, False, 2.5) == [ResponseReceived(key, r200b)]
    # non-2xx in Accepted ignored
    assert layer.receive(resp(req, 500, to_tag="c"), UDP_DEST, False, 3.0) == []
    assert drive(layer, 100.0) == [(33.0, TransactionTerminated(key))]  # Timer M = 64*T1


def test_ict_2xx_without_rfc6026_terminates_immediately():
    layer = TransactionLayer(rfc6026=False)
    req = make_request("INVITE")
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    r200 = resp(req, 200, to_tag="a")
    assert layer.receive(r200, UDP_DEST, False, 1.0) == [ResponseReceived(key, r200), TransactionTerminated(key)]
    assert layer.receive(r200, UDP_DEST, False, 1.5) == [StrayResponse(r200)]


def test_ack_cannot_be_sent_as_transaction_and_duplicates_rejected():
    layer = TransactionLayer()
    with pytest.raises(ValueError):
        layer.send_request(make_request("ACK"), UDP_DEST, False, 0.0)
    req = make_request("OPTIONS", branch="z9hG4bKdup")
    layer.send_request(req, UDP_DEST, False, 0.0)
    with pytest.raises(ValueError):
        layer.send_request(req, UDP_DEST, False, 0.1)
    ack = make_request("ACK")
    assert TransactionLayer.send_stateless(ack, UDP_DEST) == [Transmit(ack.to_bytes(), UDP_DEST)]


# ---------------------------------------------------------------------------
# non-INVITE client transaction (§17.1.2)
# ---------------------------------------------------------------------------


def test_nict_udp_timer_e_capped_at_t2_and_timer_f():
    layer = TransactionLayer()
    req = make_request("OPTIONS", branch="z9hG4bKnict")
    key, ev = layer.send_request(req, UDP_DEST, False, 0.0)
    assert key == ClientKey("z9hG4bKnict", "OPTIONS")
    assert ev == [Transmit(req.to_bytes(), UDP_DEST)]
    out = drive(layer, 100.0)
    assert [t for t, e in out if isinstance(e, Transmit)] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [e for t, e in out if not isinstance(e, Transmit)] == [Timeout(key), TransactionTerminated(key)]
    assert out[-1][0] == 32.0
    assert len(layer) == 0


def test_nict_proceeding_retransmits_every_t2_until_f():
    layer = TransactionLayer()
    req = make_request("REGISTER")
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    drive(layer, 0.6)  # one retransmission at 0.5
    r100 = resp(req, 100)
    assert layer.receive(r100, UDP_DEST, False, 0.7) == [ResponseReceived(key, r100)]
    assert layer.state(key) == State.PROCEEDING
    out = drive(layer, 100.0)
    # pending E at 1.5 fires, then every T2
    assert [t for t, e in out if isinstance(e, Transmit)] == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert out[-2:] == [(32.0, Timeout(key)), (32.0, TransactionTerminated(key))]


def test_nict_final_completed_absorbs_and_timer_k():
    layer = TransactionLayer()
    req = make_request("REGISTER")
    key, _ = layer.send_request(req, UDP_DEST, False, 0.0)
    r401 = resp(req, 401, to_tag="r")
    assert layer.receive(r401, UDP_DEST, False, 0.2) == [ResponseReceived(key, r401)]
    assert layer.state(key) == State.COMPLETED
    assert layer.receive(r401, UDP_DEST, False, 0.3) == []  # absorbed
    assert layer.receive(resp(req, 180), UDP_DEST, False, 0.4) == []
    assert drive(layer, 100.0) == [(5.2, TransactionTerminated(key))]  # Timer K = T4


def test_nict_tcp_no_e_final_terminates_f_still_applies():
    layer = TransactionLayer()
    req = make_request("OPTIONS", transport="TCP")
    key, _ = layer.send_request(req, TCP_DEST, True, 0.0)
    assert layer.next_deadline() == 32.0
    r200 = resp(req, 200, to_tag="z")
    assert layer.receive(r200, TCP_DEST, True, 1.0) == [ResponseReceived(key, r200), TransactionTerminated(key)]
    key2, _ = layer.send_request(make_request("OPTIONS", transport="TCP"), TCP_DEST, True, 2.0)
    assert drive(layer, 100.0) == [(34.0, Timeout(key2)), (34.0, TransactionTerminated(key2))]


def test_client_matching_branch_and_cseq_method():
    layer = TransactionLayer()
    inv = make_request("INVITE", branch="z9hG4bKsame")
    cancel = make_request("CANCEL", branch="z9hG4bKsame", call_id=inv.call_id)
    k_inv, _ = layer.send_request(inv, UDP_DEST, False, 0.0)
    k_can, _ = layer.send_request(cancel, UDP_DEST, False, 0.1)
    assert k_inv != k_can and len(layer) == 2
    r200c = resp(cancel, 200, to_tag="q")
    assert layer.receive(r200c, UDP_DEST, False, 0.2) == [ResponseReceived(k_can, r200c)]
    assert layer.state(k_inv) == State.CALLING
    r487 = resp(inv, 487, to_tag="q")
    ev = layer.receive(r487, UDP_DEST, False, 0.3)
    assert ev[0] == ResponseReceived(k_inv, r487)
    # unknown branch, or known branch with other CSeq method: stray
    other = resp(make_request("OPTIONS", branch="z9hG4bKnope"), 200, to_tag="x")
    assert layer.receive(other, UDP_DEST, False, 0.4) == [StrayResponse(other)]
    bye_like = resp(make_request("BYE", branch="z9hG4bKsame"), 200, to_tag="x")
    assert layer.receive(bye_like, UDP_DEST, False, 0.5) == [StrayResponse(bye_like)]


def test_client_transport_error():
    layer = TransactionLayer()
    key, _ = layer.send_request(make_request("OPTIONS", transport="TCP"), TCP_DEST, True, 0.0)
    assert layer.transport_error(key, 0.1) == [TransportError(key), TransactionTerminated(key)]
    assert layer.transport_error(key, 0.2) == []
    assert len(layer) == 0


# ---------------------------------------------------------------------------
# INVITE server transaction (§17.2.1)
# ---------------------------------------------------------------------------


def _recv_invite(layer, src=UDP_SRC, reliable=False, now=0.0, **kw):
    req = make_request("INVITE", **kw)
    ev = layer.receive(req, src, reliable, now)
    assert len(ev) == 1 and isinstance(ev[0], RequestReceived)
    return req, ev[0]


def test_ist_new_invite_and_automatic_100_trying_after_200ms():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, branch="z9hG4bKist1")
    assert rr.key == ServerKey("z9hG4bKist1", CLIENT_IP, 5060, "INVITE")
    assert rr.source == UDP_SRC
    assert layer.state(rr.key) == State.PROCEEDING
    assert layer.next_deadline() == pytest.approx(0.2)
    assert layer.tick(0.19) == []
    ev = layer.tick(0.2)
    assert len(ev) == 1 and isinstance(ev[0], Transmit)
    assert ev[0].dest == Addr("UDP", CLIENT_IP, 5060)
    trying = parse(ev[0].data)
    assert trying.status == 100 and trying.cseq == (1, "INVITE")
    assert trying.call_id == req.call_id and trying.to.tag is None
    assert trying.top_via.branch == "z9hG4bKist1"
    # retransmitted INVITE re-sends the 100, no new RequestReceived
    assert layer.receive(req, UDP_SRC, False, 0.5) == [Transmit(ev[0].data, ev[0].dest)]
    assert layer.next_deadline() is None  # IST in Proceeding has no timers


def test_ist_no_100_when_tu_answers_first():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer)
    # retransmission before any response: nothing to re-send
    assert layer.receive(req, UDP_SRC, False, 0.05) == []
    r180 = make_response(rr.request, 180, to_tag="uas")
    assert layer.send_response(rr.key, r180, 0.1) == [Transmit(r180.to_bytes(), UDP_SRC)]
    assert layer.tick(0.3) == [] and layer.tick(10.0) == []
    assert layer.receive(req, UDP_SRC, False, 0.5) == [Transmit(r180.to_bytes(), UDP_SRC)]
    r183 = make_response(rr.request, 183, to_tag="uas")
    layer.send_response(rr.key, r183, 0.6)
    assert layer.receive(req, UDP_SRC, False, 0.7) == [Transmit(r183.to_bytes(), UDP_SRC)]


def test_ist_non2xx_timer_g_capped_and_timer_h_timeout():
    layer = TransactionLayer()
    _req, rr = _recv_invite(layer)
    r486 = make_response(rr.request, 486, to_tag="uas")
    assert layer.send_response(rr.key, r486, 1.0) == [Transmit(r486.to_bytes(), UDP_SRC)]
    assert layer.state(rr.key) == State.COMPLETED
    out = drive(layer, 100.0)
    assert [t for t, e in out if isinstance(e, Transmit)] == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert all(e.data == r486.to_bytes() for t, e in out if isinstance(e, Transmit))
    assert out[-2:] == [(33.0, Timeout(rr.key)), (33.0, TransactionTerminated(rr.key))]
    assert len(layer) == 0


def test_ist_completed_resends_final_on_retransmission_then_ack_confirms_timer_i():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, branch="z9hG4bKack1")
    r404 = make_response(rr.request, 404, to_tag="uas")
    layer.send_response(rr.key, r404, 0.1)
    assert layer.receive(req, UDP_SRC, False, 0.3) == [Transmit(r404.to_bytes(), UDP_SRC)]
    # later TU responses are ignored once final has been sent
    assert layer.send_response(rr.key, make_response(rr.request, 500, to_tag="uas"), 0.35) == []
    ack = make_request("ACK", branch="z9hG4bKack1", call_id=req.call_id, to_tag="uas")
    assert layer.receive(ack, UDP_SRC, False, 0.4) == []  # absorbed
    assert layer.state(rr.key) == State.CONFIRMED
    assert layer.receive(ack, UDP_SRC, False, 0.5) == []  # retransmitted ACK absorbed
    assert layer.receive(req, UDP_SRC, False, 0.6) == []  # INVITE absorbed in Confirmed
    out = drive(layer, 100.0)
    assert out == [(5.4, TransactionTerminated(rr.key))]  # Timer I = T4, no G/H


def test_ist_tcp_final_no_g_but_h_and_ack_terminates_immediately():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, src=TCP_SRC, reliable=True, transport="TCP")
    r486 = make_response(rr.request, 486, to_tag="uas")
    assert layer.send_response(rr.key, r486, 0.1) == [Transmit(r486.to_bytes(), TCP_SRC)]
    assert layer.next_deadline() == pytest.approx(32.1)
    ack = make_request("ACK", transport="TCP", branch=req.top_via.branch, call_id=req.call_id, to_tag="uas")
    assert layer.receive(ack, TCP_SRC, True, 0.5) == [TransactionTerminated(rr.key)]
    # and without an ACK: Timer H
    _req2, rr2 = _recv_invite(layer, src=TCP_SRC, reliable=True, transport="TCP", now=1.0)
    layer.send_response(rr2.key, make_response(rr2.request, 486, to_tag="u"), 1.0)
    out = drive(layer, 100.0)
    assert out == [(33.0, Timeout(rr2.key)), (33.0, TransactionTerminated(rr2.key))]


def test_ist_tcp_100_trying_goes_back_over_connection():
    layer = TransactionLayer()
    _, _rr = _recv_invite(layer, src=TCP_SRC, reliable=True, transport="TCP")
    ev = layer.tick(0.2)
    assert len(ev) == 1 and ev[0].dest == TCP_SRC and ev[0].dest.conn_id == 7
    assert parse(ev[0].data).status == 100


def test_ist_2xx_accepted_absorbs_invite_passes_ack_timer_l():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, branch="z9hG4bKok")
    r200 = make_response(rr.request, 200, to_tag="uas")
    assert layer.send_response(rr.key, r200, 1.0) == [Transmit(r200.to_bytes(), UDP_SRC)]
    assert layer.state(rr.key) == State.ACCEPTED
    assert layer.receive(req, UDP_SRC, False, 1.2) == []  # absorbed, no 200 re-send
    # TU retransmits 2xx through the transaction
    assert layer.send_response(rr.key, r200, 1.5) == [Transmit(r200.to_bytes(), UDP_SRC)]
    # ACK for 2xx (new branch) and an ACK reusing the INVITE branch both reach the TU
    ack = make_request("ACK", branch="z9hG4bKnew", call_id=req.call_id, to_tag="uas")
    assert layer.receive(ack, UDP_SRC, False, 1.6) == [AckReceived(ack, UDP_SRC)]
    ack2 = make_request("ACK", branch="z9hG4bKok", call_id=req.call_id, to_tag="uas")
    assert layer.receive(ack2, UDP_SRC, False, 1.7) == [AckReceived(ack2, UDP_SRC)]
    assert drive(layer, 100.0) == [(33.0, TransactionTerminated(rr.key))]  # Timer L


def test_ist_2xx_without_rfc6026_terminates():
    layer = TransactionLayer(rfc6026=False)
    req, rr = _recv_invite(layer)
    r200 = make_response(rr.request, 200, to_tag="uas")
    assert layer.send_response(rr.key, r200, 0.1) == [Transmit(r200.to_bytes(), UDP_SRC), TransactionTerminated(rr.key)]
    # a retransmitted INVITE now looks new (the TU must detect it by dialog)
    assert types(layer.receive(req, UDP_SRC, False, 0.2)) == ["RequestReceived"]


def test_stray_ack_passed_up_and_send_response_unknown_key():
    layer = TransactionLayer()
    ack = make_request("ACK", branch="z9hG4bKorphan", to_tag="t")
    assert layer.receive(ack, UDP_SRC, False, 0.0) == [AckReceived(ack, UDP_SRC)]
    bogus = ServerKey("z9hG4bKx", "h", 1, "INVITE")
    assert layer.send_response(bogus, resp(make_request("INVITE"), 200, to_tag="a"), 0.0) == []


def test_server_transport_error():
    layer = TransactionLayer()
    _, rr = _recv_invite(layer, src=TCP_SRC, reliable=True, transport="TCP")
    assert layer.transport_error(rr.key, 0.1) == [TransportError(rr.key), TransactionTerminated(rr.key)]
    assert len(layer) == 0 and layer.tick(1.0) == []


# ---------------------------------------------------------------------------
# non-INVITE server transaction (§17.2.2)
# ---------------------------------------------------------------------------


def test_nist_full_cycle_udp():
    layer = TransactionLayer()
    req = make_request("REGISTER", branch="z9hG4bKreg")
    ev = layer.receive(req, UDP_SRC, False, 0.0)
    assert types(ev) == ["RequestReceived"]
    key = ev[0].key
    assert key == ServerKey("z9hG4bKreg", CLIENT_IP, 5060, "REGISTER")
    assert layer.state(key) == State.TRYING
    assert layer.next_deadline() is None  # never an automatic 100
    assert layer.tick(5.0) == []
    assert layer.receive(req, UDP_SRC, False, 0.5) == []  # Trying: retransmission discarded
    r100 = make_response(ev[0].request, 100)
    assert layer.send_response(key, r100, 0.6) == [Transmit(r100.to_bytes(), UDP_SRC)]
    assert layer.state(key) == State.PROCEEDING
    assert layer.receive(req, UDP_SRC, False, 0.7) == [Transmit(r100.to_bytes(), UDP_SRC)]
    r200 = make_response(ev[0].request, 200, to_tag="reg")
    assert layer.send_response(key, r200, 1.0) == [Transmit(r200.to_bytes(), UDP_SRC)]
    assert layer.state(key) == State.COMPLETED
    assert layer.receive(req, UDP_SRC, False, 1.5) == [Transmit(r200.to_bytes(), UDP_SRC)]
    assert layer.send_response(key, make_response(ev[0].request, 500), 1.6) == []
    assert drive(layer, 100.0) == [(33.0, TransactionTerminated(key))]  # Timer J = 64*T1
    assert types(layer.receive(req, UDP_SRC, False, 40.0)) == ["RequestReceived"]


def test_nist_tcp_final_terminates_immediately():
    layer = TransactionLayer()
    req = make_request("OPTIONS", transport="TCP")
    ev = layer.receive(req, TCP_SRC, True, 0.0)
    key = ev[0].key
    r200 = make_response(ev[0].request, 200, to_tag="o")
    assert layer.send_response(key, r200, 0.1) == [Transmit(r200.to_bytes(), TCP_SRC), TransactionTerminated(key)]
    assert len(layer) == 0 and layer.next_deadline() is None


# ---------------------------------------------------------------------------
# matching (§17.2.3)
# ---------------------------------------------------------------------------


def test_server_matching_uses_branch_sent_by_and_method():
    layer = TransactionLayer()
    a = make_request("OPTIONS", branch="z9hG4bKm", via_host=CLIENT_IP)
    b = make_request("OPTIONS", branch="z9hG4bKm", via_host="192.0.2.99")
    c = make_request("OPTIONS", branch="z9hG4bKm", via_host=CLIENT_IP, via_port=5070)
    d = make_request("INFO", branch="z9hG4bKm", via_host=CLIENT_IP)
    for r in (a, b, c, d):
        assert types(layer.receive(r, UDP_SRC, False, 0.0)) == ["RequestReceived"]
    assert len(layer) == 4
    assert layer.receive(a, UDP_SRC, False, 0.1) == []


def test_rfc2543_matching_without_magic_cookie():
    layer = TransactionLayer()
    req = make_request("INVITE", branch=None, call_id="legacy@h")
    ev = layer.receive(req, UDP_SRC, False, 0.0)
    key = ev[0].key
    assert isinstance(key, LegacyServerKey)
    assert key.call_id == "legacy@h" and key.cseq == 1 and key.method == "INVITE"
    r180 = make_response(ev[0].request, 180, to_tag="lt")
    layer.send_response(key, r180, 0.1)
    # retransmission matched by Request-URI, tags, Call-ID, CSeq, top Via
    assert layer.receive(req, UDP_SRC, False, 0.5) == [Transmit(r180.to_bytes(), UDP_SRC)]
    # a different CSeq is a new transaction
    req2 = make_request("INVITE", branch=None, call_id="legacy@h", cseq=2)
    assert types(layer.receive(req2, UDP_SRC, False, 0.6)) == ["RequestReceived"]
    r486 = make_response(ev[0].request, 486, to_tag="lt")
    layer.send_response(key, r486, 1.0)
    # ACK with a foreign To tag does not match
    ack_bad = make_request("ACK", branch=None, call_id="legacy@h", to_tag="other")
    assert types(layer.receive(ack_bad, UDP_SRC, False, 1.1)) == ["AckReceived"]
    assert layer.state(key) == State.COMPLETED
    ack = make_request("ACK", branch=None, call_id="legacy@h", to_tag="lt")
    assert layer.receive(ack, UDP_SRC, False, 1.2) == []
    assert layer.state(key) == State.CONFIRMED


def test_rfc2543_branch_without_cookie_and_cancel():
    layer = TransactionLayer()
    req = make_request("INVITE", branch="1234abcd", call_id="old@h")
    ev = layer.receive(req, UDP_SRC, False, 0.0)
    key = ev[0].key
    assert isinstance(key, LegacyServerKey)
    cancel = make_request("CANCEL", branch="1234abcd", call_id="old@h")
    cev = layer.receive(cancel, UDP_SRC, False, 0.1)
    assert types(cev) == ["Transmit", "CancelReceived"]
    assert parse(cev[0].data).status == 200
    assert cev[1].invite_key == key


# ---------------------------------------------------------------------------
# CANCEL (§9.2)
# ---------------------------------------------------------------------------


def test_cancel_proceeding_invite_200_and_cancel_received_then_487():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, branch="z9hG4bKcan")
    r180 = make_response(rr.request, 180, to_tag="ring")
    layer.send_response(rr.key, r180, 0.1)
    cancel = make_request("CANCEL", branch="z9hG4bKcan", call_id=req.call_id)
    ev = layer.receive(cancel, UDP_SRC, False, 1.0)
    assert types(ev) == ["Transmit", "CancelReceived"]
    ok = parse(ev[0].data)
    assert ok.status == 200 and ok.cseq == (1, "CANCEL") and ok.to.tag == "ring"
    assert ev[0].dest == UDP_SRC
    cr = ev[1]
    assert cr.invite_key == rr.key and cr.source == UDP_SRC and cr.to_tag == "ring"
    assert cr.cancel_request.method == "CANCEL"
    cancel_key = ServerKey("z9hG4bKcan", CLIENT_IP, 5060, "CANCEL")
    assert layer.state(cancel_key) == State.COMPLETED
    # retransmitted CANCEL: 200 re-sent, no second CancelReceived
    assert layer.receive(cancel, UDP_SRC, False, 1.2) == [Transmit(ev[0].data, UDP_SRC)]
    # TU's job: 487 on the INVITE
    r487 = make_response(rr.request, 487, to_tag="ring")
    assert layer.send_response(rr.key, r487, 1.3) == [Transmit(r487.to_bytes(), UDP_SRC)]
    assert layer.state(rr.key) == State.COMPLETED
    ack = make_request("ACK", branch="z9hG4bKcan", call_id=req.call_id, to_tag="ring")
    assert layer.receive(ack, UDP_SRC, False, 1.4) == []
    out = drive(layer, 100.0)
    assert out == [(6.4, TransactionTerminated(rr.key)), (33.0, TransactionTerminated(cancel_key))]
    assert len(layer) == 0


def test_cancel_before_any_response_uses_fresh_tag_shared_with_tu():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, branch="z9hG4bKc2")
    cancel = make_request("CANCEL", branch="z9hG4bKc2", call_id=req.call_id)
    ev = layer.receive(cancel, UDP_SRC, False, 0.05)
    tag = parse(ev[0].data).to.tag
    assert tag and ev[1].to_tag == tag and layer.server_to_tag(rr.key) == tag


def test_cancel_after_final_is_answered_200_without_event():
    layer = TransactionLayer()
    req, rr = _recv_invite(layer, branch="z9hG4bKc3")
    layer.send_response(rr.key, make_response(rr.request, 486, to_tag="b"), 0.1)
    cancel = make_request("CANCEL", branch="z9hG4bKc3", call_id=req.call_id)
    ev = layer.receive(cancel, UDP_SRC, False, 0.2)
    assert types(ev) == ["Transmit"]
    ok = parse(ev[0].data)
    assert ok.status == 200 and ok.to.tag == "b"


def test_cancel_without_invite_gets_481():
    layer = TransactionLayer()
    cancel = make_request("CANCEL", branch="z9hG4bKnone")
    ev = layer.receive(cancel, UDP_SRC, False, 0.0)
    assert types(ev) == ["Transmit"]
    r = parse(ev[0].data)
    assert r.status == 481 and r.cseq[1] == "CANCEL" and ev[0].dest == UDP_SRC
    # over TCP the CANCEL transaction ends at once
    tcp_cancel = make_request("CANCEL", branch="z9hG4bKnone2", transport="TCP")
    ev = layer.receive(tcp_cancel, TCP_SRC, True, 0.0)
    assert types(ev) == ["Transmit", "TransactionTerminated"]
    assert ev[0].dest == TCP_SRC


# ---------------------------------------------------------------------------
# RFC 3581 rport / §18.2.1 received, §18.2.2 response destination
# ---------------------------------------------------------------------------


def test_rport_empty_is_filled_and_received_added_even_if_same_ip():
    layer = TransactionLayer()
    src = Addr("UDP", CLIENT_IP, 5060)
    req = make_request("OPTIONS", via_host=CLIENT_IP, via_port=5060, via_params=";rport")
    ev = layer.receive(req, src, False, 0.0)
    via = ev[0].request.top_via
    assert via.received == CLIENT_IP and via.rport == "5060"
    r = make_response(ev[0].request, 200, to_tag="x")
    out = layer.send_response(ev[0].key, r, 0.1)
    assert out[0].dest == Addr("UDP", CLIENT_IP, 5060)
    sent_via = parse(out[0].data).top_via
    assert sent_via.received == CLIENT_IP and sent_via.rport == "5060"


def test_rport_behind_nat_response_goes_to_received_and_rport():
    layer = TransactionLayer()
    src = Addr("UDP", "203.0.113.50", 61000)
    req = make_request(
        "REGISTER",
        via_host="10.0.0.5",
        via_port=5060,
        via_params=";rport",
        extra_vias=["SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp;received=10.9.9.9"],
    )
    ev = layer.receive(req, src, False, 0.0)
    via = ev[0].request.top_via
    assert via.host == "10.0.0.5" and via.received == "203.0.113.50" and via.rport == "61000"
    # other Vias untouched
    assert len(req.vias) == 2 and ev[0].request.vias[1:] == req.vias[1:]
    r = make_response(ev[0].request, 200, to_tag="x")
    assert layer.send_response(ev[0].key, r, 0.1)[0].dest == Addr("UDP", "203.0.113.50", 61000)
    # the key still matches retransmissions (computed from the original Via)
    assert layer.receive(req, src, False, 0.2) == [Transmit(r.to_bytes(), Addr("UDP", "203.0.113.50", 61000))]


def test_no_rport_different_ip_adds_received_only_and_uses_via_port():
    layer = TransactionLayer()
    src = Addr("UDP", "203.0.113.50", 61000)
    req = make_request("OPTIONS", via_host="10.0.0.5", via_port=5070)
    ev = layer.receive(req, src, False, 0.0)
    via = ev[0].request.top_via
    assert via.received == "203.0.113.50" and via.rport is None
    r = make_response(ev[0].request, 200, to_tag="x")
    assert layer.send_response(ev[0].key, r, 0.1)[0].dest == Addr("UDP", "203.0.113.50", 5070)


def test_no_rport_same_ip_leaves_via_alone():
    layer = TransactionLayer()
    req = make_request("OPTIONS", via_host=CLIENT_IP, via_port=5080)
    ev = layer.receive(req, Addr("UDP", CLIENT_IP, 5080), False, 0.0)
    assert ev[0].request is req
    assert ev[0].request.top_via.received is None
    r = make_response(ev[0].request, 200, to_tag="x")
    assert layer.send_response(ev[0].key, r, 0.1)[0].dest == Addr("UDP", CLIENT_IP, 5080)


def test_hostname_in_via_always_gets_received():
    layer = TransactionLayer()
    src = Addr("UDP", "198.51.100.7", 5060)
    req = make_request("OPTIONS", via_host="phone.example.com", via_port=None)
    ev = layer.receive(req, src, False, 0.0)
    via = ev[0].request.top_via
    assert via.host == "phone.example.com" and via.received == "198.51.100.7"
    r = make_response(ev[0].request, 200, to_tag="x")
    # port omitted in Via -> default 5060
    assert layer.send_response(ev[0].key, r, 0.1)[0].dest == Addr("UDP", "198.51.100.7", 5060)


def test_hostname_with_rport_over_tcp_reply_on_connection():
    layer = TransactionLayer()
    src = Addr("TCP", "198.51.100.7", 49152, conn_id=42)
    req = make_request("REGISTER", transport="TCP", via_host="pc.example.com", via_port=5060, via_params=";rport")
    ev = layer.receive(req, src, True, 0.0)
    via = ev[0].request.top_via
    assert via.received == "198.51.100.7" and via.rport == "49152"
    r = make_response(ev[0].request, 200, to_tag="x")
    out = layer.send_response(ev[0].key, r, 0.1)
    assert out[0].dest == src and out[0].dest.conn_id == 42


def test_response_destination_helper_maddr_and_ipv6():
    from sip.message import Via

    v = Via.parse("SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bKv6")
    assert response_destination(v, Addr("UDP", "2001:db8::5", 5062), False) == Addr("UDP", "2001:db8::5", 5062)
    v2 = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm;maddr=239.1.1.1")
    assert response_destination(v2, Addr("UDP", "192.0.2.9", 5060), False) == Addr("UDP", "239.1.1.1", 5060)
    src = Addr("TLS", "192.0.2.9", 50000, 5)
    assert response_destination(v2, src, True) is src


def test_ipv6_source_same_as_via_no_received():
    layer = TransactionLayer()
    req = make_request("OPTIONS", via_host="[2001:db8::5]", via_port=5060)
    ev = layer.receive(req, Addr("UDP", "2001:db8::5", 5060), False, 0.0)
    assert ev[0].request.top_via.received is None


# ---------------------------------------------------------------------------
# memory / bookkeeping
# ---------------------------------------------------------------------------


def test_10000_non_invite_server_transactions_are_all_freed():
    layer = TransactionLayer()
    base = make_request("REGISTER", branch="z9hG4bKbase")
    reqs = [with_branch(base, f"z9hG4bKm{i}") for i in range(10_000)]
    keys = []
    for i, r in enumerate(reqs):
        now = i * 0.0001
        ev = layer.receive(r, UDP_SRC, False, now)
        rr = ev[0]
        layer.send_response(rr.key, make_response_bytes_stub(rr.request), now)
        keys.append(rr.key)
    assert len(set(keys)) == 10_000
    assert layer.stats()["non_invite_server"] == 10_000 and len(layer) == 10_000
    ev = layer.tick(1.0 + 64 * 0.5)
    assert len(ev) == 10_000 and all(isinstance(e, TransactionTerminated) for e in ev)
    assert len(layer) == 0 and layer.next_deadline() is None
    st = layer.stats()
    assert st["non_invite_server"] == 0 and st["total"] == 0 and st["timers_queued"] == 0


def test_10000_non_invite_client_transactions_are_all_freed():
    layer = TransactionLayer()
    base = make_request("OPTIONS", branch="z9hG4bKbase")
    for i in range(10_000):
        r = with_branch(base, f"z9hG4bKc{i}")
        key, _ = layer.send_request(r, UDP_DEST, False, 0.0)
        layer.receive(_FakeResp(200, key.branch, "OPTIONS"), UDP_DEST, False, 0.1)
    assert layer.stats()["non_invite_client"] == 10_000
    layer.tick(0.1 + 5.0)
    assert len(layer) == 0
    layer.tick(100.0)
    assert layer.next_deadline() is None and layer.stats()["timers_queued"] == 0


def test_stats_counts_by_kind():
    layer = TransactionLayer()
    layer.send_request(make_request("INVITE"), UDP_DEST, False, 0.0)
    layer.send_request(make_request("OPTIONS"), UDP_DEST, False, 0.0)
    layer.receive(make_request("INVITE"), UDP_SRC, False, 0.0)
    layer.receive(make_request("BYE"), UDP_SRC, False, 0.0)
    layer.receive(make_request("MESSAGE"), UDP_SRC, False, 0.0)
    st = layer.stats()
    assert (
        st["invite_client"],
        st["non_invite_client"],
        st["invite_server"],
        st["non_invite_server"],
        st["client"],
        st["server"],
        st["total"],
    ) == (1, 1, 1, 2, 2, 3, 5)


# --- small fast stand-ins for the bulk tests (avoid re-parsing 10k messages) ---


def with_branch(req, branch):
    vias = req.headers.get_all("Via")
    first = vias[0]
    new_first = first.replace(req.top_via.branch, branch)
    return req.replace(headers=req.headers.replace("Via", [new_first, *vias[1:]]))


class _FakeResp:
    """Just what the client side reads from a response."""

    def __init__(self, status, branch, method):
        self.status = status
        self.top_via = _FakeVia(branch)
        self.cseq = (1, method)


class _FakeVia:
    def __init__(self, branch):
        self.branch = branch


class _FakeOut:
    status = 200

    def to_bytes(self):
        return b"SIP/2.0 200 OK\r\n\r\n"

    class to:
        tag = "t"


def make_response_bytes_stub(_request):
    return _FakeOut()
