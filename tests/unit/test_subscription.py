"""sip/subscription.py: the sans-I/O message-summary notifier (RFC 6665 + RFC 3842)."""

from __future__ import annotations

import pytest

from sip.message import NameAddr, parse_message
from sip.subscription import (
    CONTENT_TYPE,
    Ended,
    ExpiresPolicy,
    MessageSummary,
    Notifier,
    Respond,
    SendNotify,
    SubState,
    event_package,
)
from sip.transaction import Addr

SRC = Addr("UDP", "192.0.2.7", 40123)  # where the phone's packets really come from (NAT)
LOCAL = ("203.0.113.1", 5060)
EMPTY = MessageSummary("sip:1001@clinic", 0, 0)


def subscribe(
    *,
    expires: int | None = 600,
    event: str | None = "message-summary",
    to_tag: str | None = None,
    cseq: int = 1,
    accept: str | None = "application/simple-message-summary",
    contact: str = "<sip:1001@10.0.0.5:5062;transport=udp>",
    extra: str = "",
    call_id: str = "cid-1@phone",
) -> object:
    lines = [
        "SUBSCRIBE sip:801@clinic SIP/2.0",
        f"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-sub{cseq};rport",
        "Max-Forwards: 70",
        'From: "Desk" <sip:1001@clinic>;tag=ph1',
        "To: <sip:801@clinic>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: {contact}",
    ]
    if event is not None:
        lines.append(f"Event: {event}")
    if accept is not None:
        lines.append(f"Accept: {accept}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if extra:
        lines.append(extra)
    lines += ["Content-Length: 0", "", ""]
    return parse_message("\r\n".join(lines).encode())


def split(actions):
    resp = [a.response for a in actions if type(a) is Respond]
    notes = [a for a in actions if type(a) is SendNotify]
    ended = [a for a in actions if type(a) is Ended]
    return resp, notes, ended


def start(n: Notifier, now: float = 100.0, summary: MessageSummary = EMPTY, **kw):
    resp, notes, _ = split(n.accept(subscribe(**kw), SRC, now, box="1001", summary=summary, local=LOCAL, user="1001"))
    assert resp[0].status == 200
    [sub] = n.subs.values()
    return resp[0], notes[0], sub


def body_lines(note: SendNotify) -> list[str]:
    return note.request.body.decode().split("\r\n")


# ------------------------------------------------------------------ checks of a new SUBSCRIBE


def test_other_event_packages_get_489_with_allow_events():
    n = Notifier()
    for ev in ("presence", "dialog", None):
        r = n.check_new(subscribe(event=ev)).response
        assert r.status == 489 and r.headers.get("Allow-Events") == "message-summary"


def test_event_id_parameter_is_parsed_and_echoed():
    req = subscribe(event="message-summary;id=7")
    assert event_package(req) == ("message-summary", "7")
    n = Notifier()
    _, note, _ = start(n, event="message-summary;id=7")
    assert note.request.headers.get("Event") == "message-summary;id=7"


def test_accept_must_admit_simple_message_summary():
    n = Notifier()
    assert n.check_new(subscribe(accept="application/pidf+xml")).response.status == 406
    for ok in (
        None,
        "application/simple-message-summary",
        "application/*",
        "*/*",
        "application/pidf+xml, application/simple-message-summary",
    ):
        assert n.check_new(subscribe(accept=ok)) is None, ok


def test_expires_negotiation_default_clamp_and_423():
    n = Notifier(policy=ExpiresPolicy(minimum=60, maximum=3600, default=1800))
    r = n.check_new(subscribe(expires=30)).response
    assert r.status == 423 and r.reason == "Interval Too Brief" and r.headers.get("Min-Expires") == "60"
    ok, note, sub = start(n, expires=None)  # absent -> default
    assert ok.headers.get("Expires") == "1800" and sub.expires_at == 100 + 1800
    assert note.request.headers.get("Subscription-State") == "active;expires=1800"
    n2 = Notifier(policy=ExpiresPolicy(minimum=60, maximum=3600, default=1800))
    ok, note, _ = start(n2, expires=86400)  # too long -> the maximum
    assert ok.headers.get("Expires") == "3600"
    with pytest.raises(ValueError):
        ExpiresPolicy(minimum=100, default=50)


def test_subscribe_needs_one_sip_contact_and_a_from_tag():
    n = Notifier()
    assert n.check_new(subscribe(contact="<tel:+123>")).response.status == 400
    raw = subscribe().to_bytes().replace(b";tag=ph1", b"")
    assert n.check_new(parse_message(raw)).response.status == 400


def test_too_many_subscriptions_503():
    n = Notifier(max_subscriptions=1)
    start(n)
    r = n.check_new(subscribe(call_id="other")).response
    assert r.status == 503 and r.headers.get("Retry-After")


# ------------------------------------------------------------------ dialog and NOTIFY


def test_accept_answers_200_with_tag_contact_expires_and_sends_the_first_notify():
    n = Notifier(user_agent="pypbx-test")
    ok, note, sub = start(n, summary=MessageSummary("sip:1001@clinic", 2, 3))
    to_tag = NameAddr.parse(ok.headers.get("To")).tag
    assert to_tag and len(to_tag) == 24 and to_tag == sub.local_tag
    assert ok.headers.get("Contact") == "<sip:1001@203.0.113.1:5060>"
    assert ok.headers.get("Expires") == "600"
    req = note.request
    assert req.method == "NOTIFY"
    assert str(req.uri) == "sip:1001@10.0.0.5:5062;transport=udp"  # remote target = Contact
    assert note.dest == SRC  # but sent to the real source
    assert req.from_.tag == to_tag and req.from_.uri.user == "801"  # our From = their To + our tag
    assert req.to.tag == "ph1" and req.to.display == "Desk"  # our To = their From
    assert req.call_id == "cid-1@phone" and req.cseq == (1, "NOTIFY")
    assert req.headers.get("Event") == "message-summary"
    assert req.headers.get("Subscription-State") == "active;expires=600"
    assert req.headers.get("Content-Type") == CONTENT_TYPE
    assert req.headers.get("User-Agent") == "pypbx-test"
    assert req.headers.get("Contact") == "<sip:1001@203.0.113.1:5060>"
    via = req.top_via
    assert via.transport == "UDP" and via.host == "203.0.113.1" and via.branch.startswith("z9hG4bK")
    assert via.has_param("rport")
    assert body_lines(note) == [
        "Messages-Waiting: yes",
        "Message-Account: sip:1001@clinic",
        "Voice-Message: 2/3 (0/0)",
        "",
    ]
    assert sub.state is SubState.ACTIVE and n.counters["subscribes"] == 1


def test_summary_body_no_messages():
    assert MessageSummary("sip:7@r", 0, 4).body() == (
        b"Messages-Waiting: no\r\nMessage-Account: sip:7@r\r\nVoice-Message: 0/4 (0/0)\r\n"
    )


def test_record_route_becomes_the_route_set_and_is_echoed_in_the_200():
    n = Notifier()
    ok, note, sub = start(n, extra="Record-Route: <sip:edge.example;lr>")
    assert ok.headers.get_all("Record-Route") == ["<sip:edge.example;lr>"]
    assert note.request.headers.get_all("Route") == ["<sip:edge.example;lr>"]
    assert str(note.request.uri) == "sip:1001@10.0.0.5:5062;transport=udp"
    assert sub.route_set == ["<sip:edge.example;lr>"]


def test_strict_route_first_hop_becomes_the_request_uri():
    n = Notifier()
    _, note, _ = start(n, extra="Record-Route: <sip:old.example>")
    assert str(note.request.uri) == "sip:old.example"
    assert note.request.headers.get_all("Route") == ["<sip:1001@10.0.0.5:5062;transport=udp>"]


def test_tcp_subscriber_gets_transport_in_contact_and_via():
    n = Notifier()
    src = Addr("TCP", "192.0.2.7", 40123, conn_id=9)
    resp, notes, _ = split(n.accept(subscribe(), src, 0.0, box="1001", summary=EMPTY, local=LOCAL))
    assert resp[0].headers.get("Contact") == "<sip:1001@203.0.113.1:5060;transport=tcp>"
    assert notes[0].dest == src and notes[0].request.top_via.transport == "TCP"


def test_changes_notify_with_increasing_cseq_and_unchanged_counts_send_nothing():
    n = Notifier()
    _, first, _sub = start(n)
    assert n.update("1001", EMPTY, 110.0) == []  # nothing changed
    assert n.update("9999", MessageSummary("sip:9999@clinic", 1, 0), 110.0) == []  # another box
    [note] = n.update("1001", MessageSummary("sip:1001@clinic", 1, 0), 110.0)
    assert note.request.cseq == (2, "NOTIFY")
    assert note.request.headers.get("Subscription-State") == "active;expires=590"
    assert body_lines(note)[0] == "Messages-Waiting: yes" and body_lines(note)[2] == "Voice-Message: 1/0 (0/0)"
    [note3] = n.update("1001", MessageSummary("sip:1001@clinic", 0, 1), 120.0)
    assert note3.request.cseq == (3, "NOTIFY") and body_lines(note3)[0] == "Messages-Waiting: no"
    assert note3.branch != note.branch != first.branch


def test_two_subscribers_of_one_box_both_notified():
    n = Notifier()
    start(n)
    n.accept(subscribe(call_id="cid-2"), SRC, 100.0, box="1001", summary=EMPTY, local=LOCAL)
    notes = n.update("1001", MessageSummary("sip:1001@clinic", 1, 0), 101.0)
    assert sorted(x.request.call_id for x in notes) == ["cid-1@phone", "cid-2"]


# ------------------------------------------------------------------ in-dialog SUBSCRIBE


def test_refresh_extends_expiry_refreshes_target_and_notifies():
    n = Notifier()
    _, _, sub = start(n)
    req = subscribe(to_tag=sub.local_tag, cseq=2, expires=300, contact="<sip:1001@10.0.0.6:5070>")
    assert n.find(req) is sub
    new_src = Addr("UDP", "192.0.2.7", 40999)
    resp, notes, _ = split(n.refresh(sub, req, new_src, 200.0))
    assert resp[0].status == 200 and resp[0].headers.get("Expires") == "300"
    assert NameAddr.parse(resp[0].headers.get("To")).tag == sub.local_tag
    assert sub.expires_at == 500.0 and n.counters["refreshes"] == 1
    [note] = notes  # RFC 6665 §4.2.1.2: NOTIFY after a refresh
    assert str(note.request.uri) == "sip:1001@10.0.0.6:5070" and note.dest == new_src
    assert note.request.cseq == (2, "NOTIFY")
    assert note.request.headers.get("Subscription-State") == "active;expires=300"


def test_refresh_too_brief_423_and_old_cseq_500():
    n = Notifier()
    _, _, sub = start(n)
    r = split(n.refresh(sub, subscribe(to_tag=sub.local_tag, cseq=2, expires=5), SRC, 110.0))[0][0]
    assert r.status == 423 and r.headers.get("Min-Expires") == "60"
    r = split(n.refresh(sub, subscribe(to_tag=sub.local_tag, cseq=2, expires=600), SRC, 110.0))[0][0]
    assert r.status == 500  # CSeq 2 already seen
    assert sub.expires_at == 700.0  # unchanged


def test_unknown_dialog_is_not_found():
    n = Notifier()
    start(n)
    assert n.find(subscribe(to_tag="not-ours", cseq=2)) is None
    assert n.wants(subscribe(to_tag="not-ours", cseq=2))  # still message-summary
    assert not n.wants(subscribe(event="presence"))


def test_unsubscribe_sends_terminated_and_forgets():
    n = Notifier()
    _, _, sub = start(n)
    resp, notes, ended = split(n.refresh(sub, subscribe(to_tag=sub.local_tag, cseq=2, expires=0), SRC, 150.0))
    assert resp[0].status == 200 and resp[0].headers.get("Expires") == "0"
    [note] = notes
    assert note.request.headers.get("Subscription-State") == "terminated"
    assert note.request.cseq == (2, "NOTIFY")
    assert ended == [Ended(sub.id, "1001", "unsubscribed")]
    assert n.subs == {} and n.by_id == {} and n.next_deadline() is None
    assert n.update("1001", MessageSummary("sip:1001@clinic", 1, 0), 151.0) == []


def test_fetch_expires_zero_one_terminated_notify_nothing_kept():
    n = Notifier()
    resp, notes, _ = split(
        n.accept(
            subscribe(expires=0), SRC, 0.0, box="1001", summary=MessageSummary("sip:1001@clinic", 1, 0), local=LOCAL
        )
    )
    assert resp[0].status == 200 and resp[0].headers.get("Expires") == "0"
    assert notes[0].request.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert body_lines(notes[0])[0] == "Messages-Waiting: yes"
    assert n.subs == {} and n.counters["fetches"] == 1


# ------------------------------------------------------------------ timers and NOTIFY results


def test_expiry_timer_final_notify_then_gone():
    n = Notifier()
    _, _, _sub = start(n, expires=120)
    assert n.next_deadline() == 220.0
    assert n.tick(219.9) == []
    _, notes, ended = split(n.tick(220.0))
    assert notes[0].request.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert ended[0].reason == "expired" and n.subs == {} and n.next_deadline() is None
    assert n.counters["expired"] == 1


def test_notify_481_or_timeout_ends_the_subscription():
    n = Notifier()
    _, first, sub = start(n)
    assert n.on_notify_result(first.branch, 200, 101.0) == []
    assert n.subs
    [note] = n.update("1001", MessageSummary("sip:1001@clinic", 1, 0), 102.0)
    assert n.on_notify_result(note.branch, 481, 103.0) == [Ended(sub.id, "1001", "NOTIFY answered 481")]
    assert n.subs == {}
    _, first2, sub2 = start(n)
    assert n.on_notify_result(first2.branch, None, 140.0) == [Ended(sub2.id, "1001", "no answer to NOTIFY")]
    assert n.subs == {} and n.counters["notify_failures"] == 2


def test_notify_401_or_500_keeps_the_subscription():
    n = Notifier()
    _, first, _sub = start(n)
    assert n.on_notify_result(first.branch, 401, 101.0) == []
    [note] = n.update("1001", MessageSummary("sip:1001@clinic", 1, 0), 102.0)
    assert n.on_notify_result(note.branch, 500, 103.0) == []
    assert n.subs and n.on_notify_result("unknown-branch", 481, 104.0) == []


def test_status_lists_subscriptions():
    n = Notifier()
    start(n)
    [row] = n.status(160.0)
    assert row["box"] == "1001" and row["user"] == "1001" and row["expires_in"] == 540
    assert row["dest"] == "UDP:192.0.2.7:40123" and row["notifies"] == 1
