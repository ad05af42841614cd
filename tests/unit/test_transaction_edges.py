"""Transaction layer: malformed input, helpers, TCP variants of the Accepted state."""

from __future__ import annotations

import pytest

from sip.message import parse_message
from sip.transaction import (
    Addr,
    ClientKey,
    RequestReceived,
    ResponseReceived,
    State,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    Transmit,
)
from tests.unit.test_transaction_support import CLIENT_IP, drive, make_request, make_response, resp

UDP_SRC = Addr("UDP", CLIENT_IP, 5060)
TCP_SRC = Addr("TCP", CLIENT_IP, 40000, conn_id=9)
TCP_DEST = Addr("TCP", "198.51.100.20", 5060, conn_id=3)


def test_updated_request_vias_match_a_fresh_parse():
    layer = TransactionLayer()
    req = make_request(
        "REGISTER", via_host="10.0.0.5", via_params=";rport", extra_vias=["SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKlow"]
    )
    rr = layer.receive(req, Addr("UDP", "203.0.113.9", 41000), False, 0.0)[0]
    fresh = parse_message(rr.request.to_bytes())
    assert rr.request.vias == fresh.vias
    assert (
        str(rr.request.top_via)
        == f"SIP/2.0/UDP 10.0.0.5:5060;branch={req.top_via.branch};rport=41000;received=203.0.113.9"
    )
    assert layer.server_request(rr.key) is rr.request
    assert layer.server_request(("nope",)) is None


def test_send_request_without_branch_is_rejected():
    layer = TransactionLayer()
    with pytest.raises(ValueError):
        layer.send_request(make_request("OPTIONS", branch=None), TCP_DEST, True, 0.0)
    assert len(layer) == 0


class _BrokenResponse:
    status = 200
    method = None

    @property
    def top_via(self):
        raise ValueError("no Via")


def test_unmatchable_response_is_stray():
    layer = TransactionLayer()
    r = _BrokenResponse()
    assert layer.receive(r, UDP_SRC, False, 0.0) == [StrayResponse(r)]


class _ViaLessRequest:
    method = "OPTIONS"

    @property
    def top_via(self):
        raise ValueError("Bad Request - missing Via")


def test_request_without_usable_via_is_dropped():
    layer = TransactionLayer()
    assert layer.receive(_ViaLessRequest(), UDP_SRC, False, 0.0) == []
    assert len(layer) == 0


def test_ict_tcp_2xx_accepted_timer_m():
    layer = TransactionLayer()
    req = make_request("INVITE", transport="TCP")
    key, _ = layer.send_request(req, TCP_DEST, True, 0.0)
    r200 = resp(req, 200, to_tag="a")
    assert layer.receive(r200, TCP_DEST, True, 1.0) == [ResponseReceived(key, r200)]
    assert layer.state(key) == State.ACCEPTED
    assert drive(layer, 100.0) == [(33.0, TransactionTerminated(key))]


def test_ist_tcp_2xx_accepted_timer_l_and_no_retransmission():
    layer = TransactionLayer()
    req = make_request("INVITE", transport="TCP")
    rr = layer.receive(req, TCP_SRC, True, 0.0)[0]
    r200 = make_response(rr.request, 200, to_tag="u")
    assert layer.send_response(rr.key, r200, 0.1) == [Transmit(r200.to_bytes(), TCP_SRC)]
    assert drive(layer, 100.0) == [(pytest.approx(32.1), TransactionTerminated(rr.key))]


def test_nist_tcp_provisional_then_final():
    layer = TransactionLayer()
    req = make_request("SUBSCRIBE", transport="TCP")
    rr = layer.receive(req, TCP_SRC, True, 0.0)[0]
    r100 = make_response(rr.request, 100)
    assert layer.send_response(rr.key, r100, 0.1) == [Transmit(r100.to_bytes(), TCP_SRC)]
    assert layer.state(rr.key) == State.PROCEEDING
    r202 = make_response(rr.request, 202, to_tag="s")
    assert layer.send_response(rr.key, r202, 0.2) == [Transmit(r202.to_bytes(), TCP_SRC), TransactionTerminated(rr.key)]


def test_unknown_method_gets_a_non_invite_server_transaction():
    layer = TransactionLayer()
    req = make_request("FOOBAR")
    rr = layer.receive(req, UDP_SRC, False, 0.0)[0]
    assert isinstance(rr, RequestReceived) and rr.key.method == "FOOBAR"
    assert layer.stats()["non_invite_server"] == 1
    assert layer.tick(1.0) == []  # no automatic 100


def test_client_key_is_branch_and_method():
    layer = TransactionLayer()
    req = make_request("MESSAGE", branch="z9hG4bKmsg")
    key, ev = layer.send_request(req, TCP_DEST, True, 0.0)
    assert key == ClientKey("z9hG4bKmsg", "MESSAGE") == ("z9hG4bKmsg", "MESSAGE")
    assert ev == [Transmit(req.to_bytes(), TCP_DEST)]


def test_public_fix_via_for_stateless_responses():
    from sip.transaction import fix_via, response_destination

    req = make_request("OPTIONS", via_host="pbx-client.example.org", via_port=5062, via_params=";rport")
    src = Addr("UDP", "203.0.113.77", 33333)
    fixed = fix_via(req, src)
    assert fixed.top_via.received == "203.0.113.77" and fixed.top_via.rport == "33333"
    assert response_destination(fixed.top_via, src, False) == Addr("UDP", "203.0.113.77", 33333)
    same = make_request("OPTIONS", via_host=CLIENT_IP, via_port=5060)
    assert fix_via(same, UDP_SRC) is same
