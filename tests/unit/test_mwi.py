"""pypbx/mwi.py: counts from the voicemail table, who may watch which mailbox, the front
door's SUBSCRIBE handling (401, 403, 404, claim), NOTIFYs on new / heard / deleted messages
(listener, another process's commit, this process's own write), NOTIFY failures.

The SIP server is a recording fake here (the real one is exercised by
tests/integration/test_mwi.py); the database and the authenticator are real."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pypbx import mwi as M
from pypbx import voicemail as V
from pypbx.db import open_db
from sip import digest
from sip.auth import ProxyAuthenticator
from sip.message import make_response, parse_message
from sip.server import SipServer
from sip.transaction import Addr, ResponseReceived, Timeout

REALM = "clinic"
PW = "secret-pass-123"
CREDS = {u: {"MD5": digest.ha1(u, REALM, PW, "MD5")} for u in ("1001", "1002")}
SRC = Addr("UDP", "127.0.0.1", 40000)


class Guard:
    def __init__(self) -> None:
        self.failed: list = []
        self.ok: list = []

    def auth_failed(self, ip, now, user=None, method=None) -> None:
        self.failed.append((ip, user, method))

    def auth_ok(self, ip) -> None:
        self.ok.append(ip)


class FakeSip:
    """What MwiService uses of SipServer: claim (the real code), respond, send_own."""

    claim = SipServer.claim
    allow = "SUBSCRIBE"

    def __init__(self) -> None:
        self.handlers: dict = {}
        self._claims: dict = {}  # SipServer.claim records what each claim wants
        self.responses: list = []
        self.sent: list = []  # (request, dest, on_event)
        self.counters = {"auth_failures": 0, "auth_challenges": 0}
        self.guard = Guard()

    def respond(self, key, response) -> None:
        self.responses.append((key, response))

    def send_own(self, req, dest, on_event) -> None:
        self.sent.append((req, dest, on_event))

    def local_address(self, transport, host):
        return ("127.0.0.1", 5060)

    def notifies(self) -> list:
        return [r for r, _, _ in self.sent]


def subscribe(
    target: str = "801",
    user: str = "1002",
    *,
    nonces=None,
    auth_user: str | None = None,
    password: str = PW,
    event: str = "message-summary",
    to_tag: str | None = None,
    cseq: int = 1,
    expires: int = 600,
    call_id: str = "c1",
) -> object:
    uri = f"sip:{target}@{REALM}"
    lines = [
        f"SUBSCRIBE {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK{call_id}{cseq};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{REALM}>;tag=ft",
        f"To: <{uri}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{user}@127.0.0.1:40000>",
        f"Event: {event}",
        f"Expires: {expires}",
    ]
    if nonces is not None:
        nonce = nonces.make(time.time(), SRC.host)
        lines.append(
            "Authorization: "
            + digest.build_authorization(auth_user or user, REALM, "SUBSCRIBE", uri, nonce, password=password)
        )
    lines += ["Content-Length: 0", "", ""]
    return parse_message("\r\n".join(lines).encode())


async def settle(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def until(pred, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    async def __aenter__(self) -> World:
        self._cm = open_db(self.tmp / "pbx.db")
        self.db = await self._cm.__aenter__()
        await V.set_box(self.db, "1002", number="801")
        await V.set_box(self.db, "1001")
        await V.set_box(self.db, "front")  # a queue's box: nobody's extension
        self.nonces = digest.NonceManager(b"k" * 32, lifetime=300)
        auth = ProxyAuthenticator(REALM, self.nonces, CREDS.get, header="Authorization", status=401)
        self.sip = FakeSip()
        self.previous: list = []
        self.sip.handlers["SUBSCRIBE"] = lambda server, key, req, source: self.previous.append(req)
        self.mwi = M.MwiService(self.db, self.sip, realm=REALM, authenticator=auth)

        class FL:
            def __init__(self) -> None:
                self.voicemail_listeners: list = []

        self.fl = FL()
        self.mwi.attach(self.fl)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.mwi.close()
        await self._cm.__aexit__(*exc)

    def handle(self, req, key: str = "k") -> None:
        self.sip.handlers["SUBSCRIBE"](self.sip, key, req, SRC)

    async def subscribed(self, **kw):
        n = len(self.sip.sent)
        self.handle(subscribe(nonces=self.nonces, **kw))
        await until(lambda: len(self.sip.sent) > n)
        _, ok = self.sip.responses[-1]
        assert ok.status == 200, ok
        return ok

    async def message(self, box: str = "1002", msg_id: str = "m1") -> None:
        await self.db.insert_voicemail_row(
            {
                "id": msg_id,
                "box": box,
                "caller": "1001",
                "did": None,
                "call_id": None,
                "received_at": time.time(),
                "seconds": 1.0,
                "path": str(self.tmp / f"{msg_id}.wav"),
            }
        )


def body(req) -> str:
    return req.body.decode()


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------ counts and ownership


def test_counts_new_old_and_deleted_left_out(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            assert await M.mailbox_counts(w.db, "1002") == (0, 0)
            for i in range(4):
                await w.message(msg_id=f"m{i}")
            await V.mark_heard(w.db, "m0")
            await V.mark_heard(w.db, "m1")
            await V.delete_message(w.db, "m1")
            assert await M.mailbox_counts(w.db, "1002") == (2, 1)
            assert (await M.mailbox_for(w.db, "801"))["box"] == "1002"
            assert (await M.mailbox_for(w.db, "1002"))["box"] == "1002"
            assert await M.mailbox_for(w.db, "999") is None and await M.mailbox_for(w.db, "") is None
            box = await M.mailbox_for(w.db, "801")
            assert M.owns("1002", box) and not M.owns("1001", box) and not M.owns("", box)
            assert M.owns("801", box)  # the box's own number

    run(go())


# ------------------------------------------------------------------ the front door


def test_subscribe_is_challenged_then_accepted_with_a_first_notify(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            w.handle(subscribe())
            [(_, r)] = w.sip.responses
            assert r.status == 401 and r.headers.get("WWW-Authenticate").startswith("Digest ")
            assert r.to.tag  # RFC 3261 §8.2.6.2
            assert w.sip.counters["auth_challenges"] == 1 and not w.sip.sent
            w.sip.responses.clear()
            ok = await w.subscribed()
            assert ok.headers.get("Expires") == "600" and w.sip.guard.ok == ["127.0.0.1"]
            [(note, dest, _)] = w.sip.sent
            assert dest == SRC and note.method == "NOTIFY"
            assert body(note) == (
                "Messages-Waiting: no\r\nMessage-Account: sip:1002@clinic\r\nVoice-Message: 0/0 (0/0)\r\n"
            )
            [row] = w.mwi.status()["subscriptions"]
            assert row["box"] == "1002" and row["user"] == "1002"
            assert w.previous == []

    run(go())


def test_the_voicemail_code_names_the_own_box(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            await w.subscribed(target="*98", user="1001")
            assert [s["box"] for s in w.mwi.status()["subscriptions"]] == ["1001"]
            assert "Message-Account: sip:1001@clinic" in body(w.sip.notifies()[0])

    run(go())


def test_wrong_password_feeds_the_guard(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            w.handle(subscribe(nonces=w.nonces, password="wrong"))
            [(_, r)] = w.sip.responses
            assert r.status == 401 and w.sip.guard.failed == [("127.0.0.1", "1002", "SUBSCRIBE")]
            assert w.sip.counters["auth_failures"] == 1

    run(go())


@pytest.mark.parametrize(
    "kw,status",
    [
        ({"target": "801", "user": "1001"}, 403),  # someone else's box (by number)
        ({"target": "1002", "user": "1001"}, 403),  # ... by name
        ({"target": "front", "user": "1001"}, 403),  # a queue's box
        ({"target": "999", "user": "1001"}, 404),  # no such box
        ({"target": "801", "user": "1002", "auth_user": "1001"}, 403),  # From is not the authenticated user
    ],
)
def test_refusals(tmp_path, kw, status):
    async def go():
        async with World(tmp_path) as w:
            w.handle(subscribe(nonces=w.nonces, **kw))
            await until(lambda: w.sip.responses)
            [(_, r)] = w.sip.responses
            assert r.status == status and not w.sip.sent and w.mwi.notifier.subs == {}

    run(go())


def test_other_packages_go_where_they_went_before(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            w.handle(subscribe(event="presence"))
            assert len(w.previous) == 1 and w.sip.responses == []
            w.handle(subscribe(expires=10))  # message-summary: ours -> 423
            [(_, r)] = w.sip.responses
            assert r.status == 423 and r.headers.get("Min-Expires") == "60"

    run(go())


def test_claim_without_a_previous_handler_answers_405():
    sip = FakeSip()
    sip.claim("SUBSCRIBE", lambda req: False, lambda *a: None)
    sip.handlers["SUBSCRIBE"](sip, "k", subscribe(event="presence"), SRC)
    assert sip.responses[0][1].status == 405


def test_refresh_unsubscribe_and_unknown_dialog(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            ok = await w.subscribed()
            tag = ok.to.tag
            w.sip.responses.clear()
            w.handle(subscribe(to_tag=tag, cseq=2, expires=300), "k2")  # not challenged again
            [(key, r)] = w.sip.responses
            assert key == "k2" and r.status == 200 and r.headers.get("Expires") == "300"
            assert w.sip.notifies()[-1].headers.get("Subscription-State") == "active;expires=300"
            w.handle(subscribe(to_tag="stale", cseq=2), "k3")  # e.g. after a restart
            assert w.sip.responses[-1][1].status == 481
            w.handle(subscribe(to_tag=tag, cseq=3, expires=0), "k4")
            assert w.sip.responses[-1][1].status == 200
            assert w.sip.notifies()[-1].headers.get("Subscription-State") == "terminated"
            assert w.mwi.notifier.subs == {}

    run(go())


# ------------------------------------------------------------------ changes


def test_new_message_through_the_frontline_listener(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            assert w.fl.voicemail_listeners == [w.mwi.on_voicemail]
            await w.subscribed()
            await w.message()
            await w.mwi.on_voicemail("1001", {})  # another box: nobody listens
            assert len(w.sip.sent) == 1
            await w.mwi.on_voicemail("1002", {"id": "m1"})
            note = w.sip.notifies()[-1]
            assert "Messages-Waiting: yes" in body(note) and "Voice-Message: 1/0 (0/0)" in body(note)
            assert note.cseq == (2, "NOTIFY")
            await w.mwi.on_voicemail("1002", {"id": "m1"})  # same counts: no NOTIFY
            assert len(w.sip.sent) == 2

    run(go())


def test_changes_by_another_process_and_by_this_one_are_noticed(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "POLL_INTERVAL", 0.05)

    async def go():
        async with World(tmp_path) as w:
            await w.message()
            await w.subscribed()
            assert "Voice-Message: 1/0" in body(w.sip.notifies()[0])
            stop = asyncio.Event()
            task = asyncio.get_running_loop().create_task(w.mwi.run(stop))
            await asyncio.sleep(0.15)
            async with open_db(tmp_path / "pbx.db") as cli_db:  # the CLI: another connection
                await V.mark_heard(cli_db, "m1")
            await until(lambda: len(w.sip.sent) == 2)
            assert "Messages-Waiting: no" in body(w.sip.notifies()[-1])
            assert "Voice-Message: 0/1" in body(w.sip.notifies()[-1])
            await V.delete_message(w.db, "m1")  # this process (*98): total_changes
            await until(lambda: len(w.sip.sent) == 3)
            assert "Voice-Message: 0/0" in body(w.sip.notifies()[-1])
            stop.set()
            await asyncio.wait_for(task, 2)

    run(go())


def test_expiry_by_the_run_loop(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            w.mwi.notifier.policy = M.ExpiresPolicy(minimum=1, maximum=3600, default=3600)
            await w.subscribed(expires=1)
            stop = asyncio.Event()
            task = asyncio.get_running_loop().create_task(w.mwi.run(stop))
            await until(lambda: len(w.sip.sent) == 2, 3.0)
            assert w.sip.notifies()[-1].headers.get("Subscription-State") == "terminated;reason=timeout"
            assert w.mwi.notifier.subs == {}
            stop.set()
            await asyncio.wait_for(task, 2)

    run(go())


def test_notify_481_or_timeout_ends_the_subscription(tmp_path):
    async def go():
        async with World(tmp_path) as w:
            await w.subscribed()
            note, _, on_event = w.sip.sent[0]
            on_event(ResponseReceived(None, make_response(note, 180)))  # provisional: nothing
            on_event(ResponseReceived(None, make_response(note, 200)))
            assert w.mwi.notifier.subs
            await w.message()
            await w.mwi.recount("1002")
            note2, _, on_event2 = w.sip.sent[1]
            on_event2(ResponseReceived(None, make_response(note2, 481)))
            assert w.mwi.notifier.subs == {}
            await w.subscribed(call_id="c2")
            _, _, on_event3 = w.sip.sent[-1]
            on_event3(Timeout(None))
            assert w.mwi.notifier.subs == {}

    run(go())
