"""Outbound legs through providers that challenge INVITEs (401/407): the trunk's
credentials go to the worker (TrunkService.leg_auth), the front door passes a provider's
challenge and the credentials answering it through untouched (RFC 3261 §22.3) and routes
the re-sent INVITE to the same trunk; a definitive auth failure fails over."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from media import protocol as P
from media.fake import FakeWorker
from pypbx import trunks as T
from pypbx.calllog import Disposition
from pypbx.numbers import NumberPlan
from sip import digest
from sip.auth import ProxyAuthenticator
from sip.message import parse_message
from sip.proxy import Proxy, Respond, SendRequest
from sip.transaction import Addr

REALM = "pypbx"
PROV_REALM = "fake.provider"
WORKER = Addr("UDP", "127.0.0.1", 25060)
PHONE = Addr("UDP", "192.0.2.50", 5070)
PROV = Addr("UDP", "192.0.2.10", 5060)


def _svc() -> T.TrunkService:
    svc = T.TrunkService(plan=NumberPlan())
    svc.trunks = {
        "a": T.Trunk("a", "192.0.2.10", priority=1, username="clinic", password="pw-a"),
        "b": T.Trunk("b", "192.0.2.20", priority=2, username="reg-user", auth_username="auth-b", password="pw-b"),
        "c": T.Trunk("c", "192.0.2.30", priority=3),  # IP-authenticated
    }
    svc._ips = {"a": {"192.0.2.10"}, "b": {"192.0.2.20"}, "c": {"192.0.2.30"}}
    return svc


def test_leg_auth_is_the_trunks_account_or_none() -> None:
    svc = _svc()
    assert svc.leg_auth("a") == {"username": "clinic", "password": "pw-a", "realm": "*"}
    assert svc.leg_auth(svc.trunks["b"])["username"] == "auth-b"  # auth user wins
    assert svc.leg_auth("c") is None and svc.leg_auth("gone") is None and svc.leg_auth(None) is None
    assert "pw-a" not in repr(svc.trunks["a"].public())


# ----------------------------------------------------------------------------- front door


def _leg(cseq: int = 1, branch: str = "z9hG4bKw1", auth: str | None = None) -> Any:
    lines = [
        "INVITE sip:0612345678@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:25060;rport;branch={branch}",
        "Max-Forwards: 70",
        "From: <sip:+33100000000@192.0.2.10>;tag=wf1",
        "To: <sip:0612345678@127.0.0.1>",
        "Call-ID: leg-1@worker",
        f"CSeq: {cseq} INVITE",
        "Contact: <sip:media@127.0.0.1:25060>",
        "X-PBX-Call: rec1",
        "X-PBX-Trunk: a",
    ]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def _resp(req: Any, status: int, extra: str = "") -> Any:
    lines = [f"SIP/2.0 {status} X"] + [f"Via: {v}" for v in req.headers.get_all("Via")]
    lines += [
        f"From: {req.headers.get('From')}",
        f"To: {req.headers.get('To')};tag=prov1",
        f"Call-ID: {req.call_id}",
        f"CSeq: {req.headers.get('CSeq')}",
    ]
    if extra:
        lines.append(extra)
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def _front_door(router: T.TrunkRouter) -> tuple[Proxy, digest.NonceManager]:
    nonces = digest.NonceManager(b"k" * 32, lifetime=300)
    creds = {"1001": {"MD5": digest.ha1("1001", REALM, "pw", "MD5")}}
    authn = ProxyAuthenticator(REALM, nonces, creds.get)

    def route(req, source, user):
        return router.route_worker_leg(req)

    p = Proxy(
        route=route,
        local_address=lambda t, h: ("127.0.0.1", 5060),
        is_local=lambda h, port: h == "127.0.0.1" and (port or 5060) == 5060,
        secret=b"s" * 32,
        authenticator=authn,
        trusted=lambda a: a == WORKER,
    )
    return p, nonces


def test_provider_challenge_relayed_and_answer_routed_to_the_same_trunk() -> None:
    router = T.TrunkRouter(_svc(), is_internal=lambda n: False)
    p, _ = _front_door(router)
    first = _leg()
    [send] = [a for a in p.on_request("s1", first, WORKER, 0.0) if isinstance(a, SendRequest)]
    assert send.dest == PROV and send.request.headers.get("X-PBX-Trunk") is None
    # the provider's 407 goes back to the worker as it is (its challenge intact)
    challenge = f'Proxy-Authenticate: Digest realm="{PROV_REALM}", nonce="n0nce", algorithm=MD5'
    [out] = [
        a
        for a in p.on_response(_client_key(p, send), _resp(send.request, 407, challenge), 0.1)
        if isinstance(a, Respond)
    ]
    assert out.response.status == 407
    assert out.response.headers.get("Proxy-Authenticate") == challenge.split(": ", 1)[1]
    # pjsip re-sends the INVITE (CSeq+1, new branch, same Call-ID, X-PBX-Trunk kept)
    # with credentials for the provider's realm: routed again to trunk a, credentials
    # forwarded byte for byte (§22.3: not ours to consume), no 407 from the front door
    cred = digest.build_authorization(
        "clinic", PROV_REALM, "INVITE", "sip:0612345678@127.0.0.1:5060", "n0nce", password="pw-a", qop=None
    )
    again = _leg(cseq=2, branch="z9hG4bKw2", auth=cred)
    acts = p.on_request("s2", again, WORKER, 0.2)
    assert not [a for a in acts if isinstance(a, Respond)]
    [send2] = [a for a in acts if isinstance(a, SendRequest)]
    assert send2.dest == PROV and send2.request.cseq == (2, "INVITE")
    assert send2.request.headers.get_all("Proxy-Authorization") == [cred]
    assert str(send2.request.uri) == str(send.request.uri)


def _client_key(p: Proxy, send: SendRequest) -> Any:
    return next(k for k, b in p._branches.items() if b.request is send.request)


def test_phone_credentials_for_our_realm_consumed_others_kept() -> None:
    seen = {}

    def route(req, source, user):
        from sip.proxy import RouteDecision

        seen["user"] = user
        return RouteDecision.fork([("sip:x@127.0.0.1:25061", Addr("UDP", "127.0.0.1", 25061))])

    p, nonces = _front_door(T.TrunkRouter(_svc(), is_internal=lambda n: True))
    p.route = route
    ours = digest.build_authorization(
        "1001", REALM, "INVITE", "sip:1002@pbx", nonces.make(0.0, PHONE.host), password="pw"
    )
    foreign = digest.build_authorization("1001", PROV_REALM, "INVITE", "sip:1002@pbx", "other", password="x")
    raw = (
        "INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5070;branch=z9hG4bKp1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@pbx>;tag=a\r\nTo: <sip:1002@pbx>\r\nCall-ID: ph1\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:1001@192.0.2.50:5070>\r\nProxy-Authorization: {foreign}\r\n"
        f"Proxy-Authorization: {ours}\r\nContent-Length: 0\r\n\r\n"
    )
    acts = p.on_request("s1", parse_message(raw.encode()), PHONE, 0.0)
    [send] = [a for a in acts if isinstance(a, SendRequest)]
    assert seen["user"] == "1001"
    assert send.request.headers.get_all("Proxy-Authorization") == [foreign]


# ----------------------------------------------------------------------------- failover


@dataclass
class _Rec:
    id: str = "rec-0123456789abcdef"


@dataclass
class _Session:
    worker: Any
    rec: _Rec = field(default_factory=_Rec)
    caller: str = "1001"
    caller_leg: str = "in-1"
    callee_leg: str | None = None
    answered: bool = False
    ring_deadline: float | None = None
    trunk: Any = None


class _CM:
    front_door = "127.0.0.1:5060"
    ring_time = 30.0

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.hangups: list[tuple[str, int | None]] = []
        self.finished: list[tuple[Disposition, str]] = []

    def clock(self) -> float:
        return 0.0

    @property
    def calllog(self) -> _CM:
        return self

    async def event(self, rec: Any, kind: str, **detail: Any) -> None:
        self.events.append((kind, detail))

    async def hangup(self, s: Any, leg: str, code: int | None = None) -> None:
        self.hangups.append((leg, code))

    async def finish(self, s: Any, disposition: Disposition, *, side: str, cause: str) -> None:
        self.finished.append((disposition, cause))

    async def originate(self, s: Any, leg: str, uri: str, **kw: Any) -> None:
        await s.worker.originate(leg, uri, **kw)  # as CallManager.originate does


def _outbound(svc: T.TrunkService) -> tuple[T.TrunkRouter, _CM, _Session]:
    router = T.TrunkRouter(svc, is_internal=lambda n: False)
    s = _Session(worker=FakeWorker(auto_answer_originate=False))
    s.trunk = T.TrunkCall("outbound", number="0612345678", cls="mobile", extension="1001")
    return router, _CM(), s


def _originates(w: FakeWorker) -> list[P.Originate]:
    return [c for c in w.commands if isinstance(c, P.Originate)]


def test_auth_failure_fails_over_with_the_next_trunks_credentials() -> None:
    async def go():
        svc = _svc()
        router, cm, s = _outbound(svc)
        assert await router.dial_next(cm, s)
        [o] = _originates(s.worker)
        assert o.headers["X-PBX-Trunk"] == "a" and o.auth == svc.leg_auth("a")
        assert "pw-a" not in repr(o) and "pw-a" not in str(cm.events)
        # pjsip answered the 407 with trunk a's credentials; the provider said 403
        assert await router.on_ended(cm, s, P.Ended(leg="trunk-1", cause_code=403, reason="Forbidden", challenged=True))
        kinds = [k for k, _ in cm.events]
        assert kinds == ["trunk_dial", "trunk_auth_failed", "trunk_failover", "trunk_dial"]
        assert dict(cm.events[1][1]) == {"trunk": "a", "status": 403, "reason": "Forbidden"}
        o2 = _originates(s.worker)[1]
        assert o2.headers["X-PBX-Trunk"] == "b" and o2.auth["username"] == "auth-b"
        # a final 407 (credentials refused again) on b: on to c, which gets no credentials
        assert await router.on_ended(
            cm, s, P.Ended(leg="trunk-2", cause_code=407, reason="Proxy Auth", challenged=True)
        )
        o3 = _originates(s.worker)[2]
        assert o3.headers["X-PBX-Trunk"] == "c" and o3.auth is None
        # ... and when c refuses too, nothing is left: FAILED, the caller gets 503
        assert await router.on_ended(cm, s, P.Ended(leg="trunk-3", cause_code=401, reason="Unauthorized"))
        assert cm.hangups == [("in-1", 503)]
        [(disp, cause)] = cm.finished
        assert disp is Disposition.FAILED and cause.startswith("503 trunk c: authentication failed (401")
        assert svc.active == {}

    asyncio.run(go())


def test_a_plain_403_is_the_providers_answer_not_an_auth_failure() -> None:
    async def go():
        router, cm, s = _outbound(_svc())
        await router.dial_next(cm, s)
        # no challenge before it: the number is refused, no failover (the caller gets it)
        assert not await router.on_ended(cm, s, P.Ended(leg="trunk-1", cause_code=403, reason="Forbidden"))
        assert [k for k, _ in cm.events] == ["trunk_dial"]
        assert len(_originates(s.worker)) == 1 and not cm.finished

    asyncio.run(go())


def test_a_provider_that_never_answers_fails_over_on_the_408() -> None:
    """No response at all: the front door's client transaction times out (Timer B, RFC 3261
    §17.1.1.2) and answers the worker 408 (tests/unit/test_proxy.py), which fails over."""

    async def go():
        router, cm, s = _outbound(_svc())
        await router.dial_next(cm, s)
        assert await router.on_ended(cm, s, P.Ended(leg="trunk-1", cause_code=408, reason="Request Timeout"))
        assert [k for k, _ in cm.events] == ["trunk_dial", "trunk_failover", "trunk_dial"]
        assert dict(cm.events[1][1])["status"] == 408
        assert _originates(s.worker)[1].headers["X-PBX-Trunk"] == "b"

    asyncio.run(go())
