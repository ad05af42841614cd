"""Outside calls through a provider that challenges every INVITE (407, RFC 3261 §22.3),
with a sipp fake provider (tests/sipp/trunk_uas_auth.xml) against a real ``pypbx run``.

The media worker places the trunk leg with the trunk's username/password (originate
``auth``); pjsip answers the 407 itself and re-sends the INVITE (CSeq+1, same Call-ID);
the front door relays the 407, absorbs its ACK hop by hop and routes the re-sent INVITE
to the same trunk with the provider's Proxy-Authorization untouched. A wrong password
(403 after the credentials) fails over to the next trunk (``trunk_auth_failed``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.harness import free_port
from tests.integration.test_media_worker import free_rtp_range
from tests.integration.test_proxy_calls import Phone, call
from tests.integration.test_trunks import PROVIDER, PROVIDER2, Provider, call_events, wait_closed

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx)."""
    return trunk_pbx


SECRET = "trunk-Secret-7q"
WRONG = "not-the-Password-3"
CALLER_ID = "+33100000000"


NONCE = "7f3c9a1e5b2d4c6a8e0f1a2b3c4d5e6f"  # the one in the scenarios' challenge


def _expected_response(ruri: str) -> str:
    """The digest response (MD5, no qop) of the trunk's account to the scenario's 407 for
    a digest-uri equal to the Request-URI the provider gets (RFC 2617 §3.2.2.5)."""
    from sip import digest

    value = digest.build_authorization("clinic", "fake.provider", "INVITE", ruri, NONCE, password=SECRET, qop=None)
    return digest.parse_authorization(value)["response"]


def _challenging(tmp_path, name: str, ip: str = PROVIDER, *, scenario: str = "trunk_uas_auth.xml") -> Provider:
    """A provider challenging with 407 (or 401 with scenario trunk_uas_auth_401.xml) that
    accepts only the trunk account clinic / SECRET."""
    port = free_port("both", ip)
    return Provider(
        scenario,
        tmp_path / name,
        ip,
        port=port,
        subst={
            "__RURI__": r"\+33612345678",
            "__FROM__": r"\+33100000000",
            "__USER__": "clinic",
            "__PASSWORD__": SECRET,
            "__RESPONSE__": _expected_response(f"sip:+33612345678@{ip}:{port}"),
        },
    )


def _add_trunk(p, name: str, prov: Provider, *extra: str, password: str = SECRET) -> None:
    p.cli(
        "trunk",
        "add",
        name,
        "--host",
        f"{prov.ip}:{prov.port}",
        "--caller-id",
        CALLER_ID,
        "--username",
        "clinic",
        "--password",
        password,
        "--no-register",
        *extra,
    )


def test_outbound_call_answers_the_providers_challenge(pbx, tmp_path):
    p = pbx()
    prov = _challenging(tmp_path, "prov")
    _add_trunk(p, "prov", prov)
    p.start()
    try:
        res = call(p, "call_uac.xml", tmp_path / "uac", to="0612345678", caller="1001")
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert prov.wait() == 0, prov.errors() + p.log()[-3000:]
    finally:
        prov.kill()
    [rec] = wait_closed(p)
    assert rec["direction"] == "outbound" and rec["disposition"] == "answered"
    events = call_events(p, rec["id"])
    kinds = [e["kind"] for e in events]
    assert kinds.count("trunk_dial") == 1 and "trunk_auth_failed" not in kinds
    # the password is in no log line and no call event
    assert SECRET not in p.log()
    assert all(SECRET not in (e.get("detail") or "") for e in events)


def test_wrong_password_fails_over_to_the_next_trunk(pbx, tmp_path):
    p = pbx()
    bad = _challenging(tmp_path, "bad", PROVIDER)
    good = Provider(
        "trunk_uas.xml",
        tmp_path / "good",
        PROVIDER2,
        subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"},
    )
    _add_trunk(p, "first", bad, "--priority", "1", password=WRONG)
    p.cli("trunk", "add", "second", "--host", f"{PROVIDER2}:{good.port}", "--priority", "2", "--caller-id", CALLER_ID)
    p.start()
    try:
        res = call(p, "call_uac.xml", tmp_path / "uac", to="0612345678", caller="1001")
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert bad.wait() == 0, bad.errors()
        assert good.wait() == 0, good.errors()
    finally:
        bad.kill()
        good.kill()
    [rec] = wait_closed(p)
    assert rec["disposition"] == "answered"
    events = call_events(p, rec["id"])
    assert [json.loads(e["detail"])["trunk"] for e in events if e["kind"] == "trunk_dial"] == ["first", "second"]
    [failed] = [json.loads(e["detail"]) for e in events if e["kind"] == "trunk_auth_failed"]
    assert failed["trunk"] == "first" and failed["status"] == 403
    assert SECRET not in p.log() and WRONG not in p.log()


def test_wrong_password_on_the_only_trunk_is_a_failed_call(pbx, tmp_path):
    p = pbx()
    bad = _challenging(tmp_path, "bad", PROVIDER)
    _add_trunk(p, "only", bad, password=WRONG)
    p.start()
    try:
        # the worker answers 503; the front door turns a 503 into 500 (RFC 3261 §16.7)
        res = call(p, "call_uac_rejected.xml", tmp_path / "uac", to="0612345678", status=500)
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
        assert bad.wait() == 0, bad.errors()
    finally:
        bad.kill()
    [rec] = wait_closed(p)
    assert rec["disposition"] == "failed"
    assert "authentication failed" in rec["hangup_cause"] and "only" in rec["hangup_cause"]
    assert "trunk_auth_failed" in [e["kind"] for e in call_events(p, rec["id"])]


def test_click_to_call_through_a_challenging_provider(pbx, tmp_path):
    p = pbx()
    prov = _challenging(tmp_path, "prov", scenario="trunk_uas_auth_401.xml")  # 401 this time
    _add_trunk(p, "prov", prov)
    p.start()
    phone = Phone(p, "1001", "call_uas_hangs_up.xml", tmp_path / "uas")
    try:
        out = json.loads(p.cli("call", "1001", "0612345678", "--json").stdout)
        assert phone.wait() == 0, phone.errors()
        assert prov.wait() == 0, prov.errors() + p.log()[-3000:]
    finally:
        prov.kill()
    [rec] = wait_closed(p)
    assert rec["id"] == out["call_id"] and rec["disposition"] == "answered"
    assert SECRET not in p.log()


# ----------------------------------------------------------------------------- the worker alone


class _Challenger:
    """A UDP UAS in the test's loop: 407 to an INVITE without Proxy-Authorization, 403 to
    one with it (wrong or right: it only records them); ACKs ignored."""

    def __init__(self) -> None:
        self.invites: list[str] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        text = data.decode("utf-8", "replace")
        if not text.startswith("INVITE "):
            return
        self.invites.append(text)
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [h for h in head[1:] if h.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
        keep = [h + ";tag=uas1" if h.lower().startswith("to:") else h for h in keep]
        authed = any(h.lower().startswith("proxy-authorization:") for h in head)
        status = "403 Forbidden" if authed else "407 Proxy Authentication Required"
        extra = [] if authed else [f'Proxy-Authenticate: Digest realm="fake.provider", nonce="{NONCE}", algorithm=MD5']
        self.transport.sendto(
            ("\r\n".join([f"SIP/2.0 {status}", *keep, *extra, "Content-Length: 0"]) + "\r\n\r\n").encode(), addr
        )

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def _hdr(msg: str, name: str) -> str | None:
    for line in msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def test_worker_uses_a_legs_credentials_for_that_leg_only(tmp_path):
    """originate with auth: pjsip answers the 407 (Proxy-Authorization for the provider's
    realm), the final 403 comes back as ``ended`` with ``challenged``; the next leg without
    auth answers no challenge (no stale credentials); the worker's DEBUG command log shows
    the password as ***."""
    import asyncio

    from media import protocol as P
    from media.client import WorkerClient

    async def go() -> str:
        loop = asyncio.get_running_loop()
        transport, uas = await loop.create_datagram_endpoint(_Challenger, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as err:
            w = await WorkerClient.spawn(
                sip_port=free_port("udp"),
                rtp_start=free_rtp_range(8),
                rtp_count=8,
                trusted=["127.0.0.1:1"],
                stderr=err,
                extra_args=["--log-level", "DEBUG"],
            )
            try:
                auth = {"username": "clinic", "password": SECRET, "realm": "fake.provider"}
                await w.originate("t1", f"sip:0612345678@127.0.0.1:{port}", headers={"X-PBX-Trunk": "prov"}, auth=auth)
                ended = await w.next_event(P.Ended, leg="t1", timeout=10)
                assert (ended.cause_code, ended.challenged) == (403, True)
                assert len(uas.invites) == 2 and "proxy-authorization" not in uas.invites[0].lower()
                assert 'username="clinic"' in uas.invites[1] and 'realm="fake.provider"' in uas.invites[1]
                # the re-sent INVITE: CSeq+1, same Call-ID, still marked for the front door
                c0, c1 = (_hdr(i, "CSeq") for i in uas.invites[:2])
                assert int(c1.split()[0]) == int(c0.split()[0]) + 1
                assert _hdr(uas.invites[0], "Call-ID") == _hdr(uas.invites[1], "Call-ID")
                assert _hdr(uas.invites[1], "X-PBX-Trunk") == "prov"
                await w.originate("t2", f"sip:0612345678@127.0.0.1:{port}")
                ended = await w.next_event(P.Ended, leg="t2", timeout=10)
                assert (ended.cause_code, ended.challenged) == (407, False)
                assert len(uas.invites) == 3 and "authorization" not in uas.invites[2].lower()
            finally:
                await w.shutdown()
                transport.close()
        return log_path.read_text(errors="replace")

    log = asyncio.run(asyncio.wait_for(go(), 60))
    assert '"password":"***"' in log and SECRET not in log
