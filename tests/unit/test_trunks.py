"""pypbx.trunks: store, CLI, the live service (peers, DIDs, outbound guard) and the
proxy hooks it uses (admit, X-PBX-* stripping, headers added to forwarded requests)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from pypbx import trunks as T
from pypbx.config import load_config, render_config
from pypbx.numbers import DEFAULT_ALLOWED, NumberPlan
from sip.message import parse_message
from sip.proxy import Proxy, Respond, RouteDecision, SendRequest
from sip.transaction import Addr


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "pypbx.toml"
    p.write_text(render_config(data_dir=str(tmp_path / "var")))
    return p


def run_cli(cfg_path: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli.cli, ["--config", str(cfg_path), *args])
    return r.exit_code, r.output


def test_trunk_and_did_cli(cfg_path: Path) -> None:
    code, out = run_cli(
        cfg_path,
        "trunk",
        "add",
        "prov",
        "--host",
        "192.0.2.10:5080",
        "--username",
        "clinic",
        "--password",
        "pw-123456",
        "--caller-id",
        "+33123456789",
        "--priority",
        "5",
        "--inbound-ip",
        "192.0.2.0/28",
    )
    assert code == 0, out
    assert "registration" in out and "192.0.2.10:5080" in out
    import os
    import stat

    db_path = load_config(cfg_path).db_path
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600  # the password is in there
    code, out = run_cli(cfg_path, "trunk", "add", "backup", "--host", "198.51.100.1")
    assert code == 0 and "IP-authenticated" in out
    code, out = run_cli(cfg_path, "trunk", "add", "prov", "--host", "x.example")
    assert code == 1 and "already exists" in out
    code, out = run_cli(cfg_path, "trunk", "list", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["prov", "backup"]
    assert rows[0]["password"] == "(set)" and rows[0]["port"] == 5080 and rows[0]["register"] is True
    assert rows[1]["state"] == "ip-auth"
    code, out = run_cli(cfg_path, "trunk", "list")
    assert "pypbx not running" in out and "pw-123456" not in out
    code, out = run_cli(
        cfg_path, "trunk", "edit", "backup", "--priority", "20", "--format", "national", "--max-channels", "4"
    )
    assert code == 0, out
    code, out = run_cli(cfg_path, "trunk", "show", "backup", "--json")
    d = json.loads(out)
    assert d["priority"] == 20 and d["number_format"] == "national" and d["max_channels"] == 4
    code, out = run_cli(cfg_path, "trunk", "edit", "backup", "--transport", "tls", "--register")
    assert code == 1 and "needs --username" in out
    # DIDs
    assert run_cli(cfg_path, "ext", "add", "1001")[0] == 0  # issue 12: a DID's destination must exist
    code, out = run_cli(
        cfg_path, "did", "add", "+33 1 23 45 67 89", "--to", "extension:1001", "--name", "Appointments line"
    )
    assert code == 0 and "+33123456789 -> extension:1001 (Appointments line)" in out
    code, out = run_cli(cfg_path, "did", "add", "+33123456780", "--to", "fax:1")
    assert code == 2 and "bad destination" in out
    code, out = run_cli(cfg_path, "did", "list", "--json")
    assert json.loads(out) == [
        {
            "number": "+33123456789",
            "destination": "extension:1001",
            "service_line": "Appointments line",
            "trunk": None,
            "known": None,
            "new": None,
            "priority": 0,
        }
    ]
    code, out = run_cli(cfg_path, "did", "remove", "+33123456789")
    assert code == 0
    code, out = run_cli(cfg_path, "did", "remove", "+33123456789")
    assert code == 2 and "unknown DID '+33123456789'" in out  # issue 12: no such object = exit 2
    code, out = run_cli(cfg_path, "trunk", "remove", "backup")
    assert code == 0
    code, out = run_cli(cfg_path, "trunk", "show", "backup")
    assert code == 2 and "unknown trunk 'backup'" in out  # issue 12: no such object = exit 2


def test_ext_perms_cli(cfg_path: Path) -> None:
    assert run_cli(cfg_path, "ext", "add", "1001")[0] == 0  # issue 12: the extension must exist
    code, out = run_cli(cfg_path, "ext", "perms", "1001", "--json")
    d = json.loads(out)
    assert d["allowed"] == list(DEFAULT_ALLOWED) and d["default"] and d["max_outbound"] == 2
    assert d["allowed"][:3] == ["internal", "fixed_line", "mobile"] and "international" not in d["allowed"]
    code, out = run_cli(cfg_path, "ext", "perms", "1001", "--allow", "fixed_line,international", "--max-calls", "3")
    assert code == 0 and "internal, fixed_line, international" in out and "3" in out
    # the pre-phonenumbers name "national" is still understood
    code, out = run_cli(cfg_path, "ext", "perms", "1001", "--allow", "national")
    assert code == 0 and "internal, fixed_line, toll_free, shared_cost, voip, uan, emergency" in out
    code, out = run_cli(cfg_path, "ext", "perms", "1001", "--allow", "moon")
    assert code == 2 and "unknown number class" in out


def _svc(**kw) -> T.TrunkService:
    svc = T.TrunkService(plan=NumberPlan(), **kw)
    svc.trunks = {
        "a": T.Trunk("a", "192.0.2.10", priority=1, caller_id="+33100000000", number_format="national"),
        "b": T.Trunk("b", "192.0.2.20", priority=2, inbound_ips=["203.0.113.0/24"], max_channels=1),
    }
    svc._ips = {"a": {"192.0.2.10"}, "b": {"192.0.2.20"}}
    svc.dids = {"+33123456789": T.Did("+33123456789", "extension:1001", "Appointments line")}
    return svc


def test_service_peers_dids_and_guard() -> None:
    svc = _svc(max_per_extension=1, max_total=2)
    assert svc.peer("192.0.2.10").name == "a"
    assert svc.peer("203.0.113.7").name == "b"
    assert svc.peer("10.0.0.1") is None
    for form in ("+33123456789", "0033123456789", "33123456789", "0123456789"):
        assert svc.find_did(form).service_line == "Appointments line", form
    assert svc.find_did("0123456780") is None
    assert svc.check_outbound("1001", "0612345678").ok
    r = svc.check_outbound("1001", "+442071234567")
    assert (r.ok, r.status, r.cls) == (False, 403, "international")
    assert svc.check_outbound("1001", "112").ok
    svc.perms["1002"] = {"classes": ("internal", "international"), "max_outbound": None}
    assert svc.check_outbound("1002", "+442071234567").ok
    assert not svc.check_outbound("1002", "0612345678").ok
    svc.acquire("1001")
    r = svc.check_outbound("1001", "0612345678")
    assert (r.ok, r.status) == (False, 403)
    assert svc.check_outbound("1001", "15").ok  # emergency is never limited
    svc.acquire("1003")
    r = svc.check_outbound("1004", "0612345678")
    assert (r.ok, r.status) == (False, 503)
    svc.release("1001")
    svc.release("1003")
    assert svc.by_extension == {}
    # trunk choice, rewriting, channels
    assert [t.name for t in svc.candidates()] == ["a", "b"]
    assert [t.name for t in svc.candidates(exclude=("a",))] == ["b"]
    svc.trunk_busy("b", +1)
    assert [t.name for t in svc.candidates(exclude=("a",))] == []
    a = svc.trunks["a"]
    assert svc.dial_number(a, "+33612345678") == "0612345678"
    uri, addr = svc.outbound_target(a, "0612345678")
    assert uri == "sip:0612345678@192.0.2.10:5060" and addr == Addr("UDP", "192.0.2.10", 5060)
    assert svc.from_uri(a, "1001") == "sip:+33100000000@192.0.2.10"


def _invite(uri: str, extra: str = "") -> object:
    raw = (
        f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:0611111111@192.0.2.10>;tag=f1\r\nTo: <" + uri + ">\r\n"
        "Call-ID: c1@x\r\nCSeq: 1 INVITE\r\nContact: <sip:0611111111@192.0.2.10>\r\n"
        + extra
        + "Content-Length: 0\r\n\r\n"
    )
    return parse_message(raw.encode())


def test_router_screen_and_admit() -> None:
    svc = _svc()
    router = T.TrunkRouter(svc, is_internal=lambda n: n in ("1001", "1002"))
    trunk_src = Addr("UDP", "192.0.2.10", 5060)
    other = Addr("UDP", "10.1.1.1", 5060)
    inv = _invite("sip:+33123456789@pbx")
    assert router.admit(inv, trunk_src) is True
    d = router.admit(inv, other)
    assert isinstance(d, RouteDecision) and d.status == 403
    assert router.admit(_invite("sip:1001@pbx"), other) is None
    assert router.screen(inv, trunk_src, None) == (("X-PBX-Trunk", "a"), ("X-PBX-DID", "+33123456789"))
    # the caller the trunk asserts (From anonymous or the provider's pilot number) and privacy
    pai = _invite("sip:+33123456789@pbx", "P-Asserted-Identity: <tel:+33612345679>\r\n")
    assert router.screen(pai, trunk_src, None)[2] == ("X-PBX-Caller", "+33612345679")
    hidden = _invite("sip:+33123456789@pbx", "P-Asserted-Identity: <tel:+33612345679>\r\nPrivacy: id\r\n")
    assert router.screen(hidden, trunk_src, None)[2] == ("X-PBX-Caller", "anonymous")
    # the DID in To when the Request-URI is the registration contact
    inv2 = parse_message(
        _invite("sip:clinic@198.51.100.7")
        .to_bytes()
        .replace(b"To: <sip:clinic@198.51.100.7>", b"To: <sip:0123456789@sip.example.net>")
    )
    assert router.screen(inv2, trunk_src, None)[1] == ("X-PBX-DID", "+33123456789")
    assert router.screen(_invite("sip:0999999999@pbx"), trunk_src, None).status == 404
    assert router.screen(_invite("sip:1002@pbx"), other, "1001") == ()
    assert router.screen(_invite("sip:5555@pbx"), other, "1001") == ()  # short: internal 404
    assert router.screen(_invite("sip:15@pbx"), other, "1001")[1] == ("X-PBX-Class", "emergency")
    assert router.screen(_invite("sip:0612345678@pbx"), other, "1001") == (
        ("X-PBX-Outbound", "0612345678"),
        ("X-PBX-Class", "mobile"),
    )
    assert router.screen(_invite("sip:0044207123456@pbx"), other, "1001").status == 403
    # a worker's trunk leg
    leg = _invite("sip:0612345678@127.0.0.1:5060", "X-PBX-Trunk: a\r\n")
    d = router.route_worker_leg(leg)
    assert d.targets == (("sip:0612345678@192.0.2.10:5060", Addr("UDP", "192.0.2.10", 5060)),)
    assert d.headers == (("X-PBX-Trunk", ""),)  # removed before it reaches the provider
    # a trunk's non-INVITE requests are authenticated like anyone's
    bye = parse_message(inv.to_bytes().replace(b"INVITE sip", b"MESSAGE sip").replace(b"1 INVITE", b"1 MESSAGE"))
    assert router.admit(bye, trunk_src) is None
    assert router.route_worker_leg(_invite("sip:1001@127.0.0.1")) is None


def test_proxy_admit_strips_and_adds_headers() -> None:
    seen = {}

    def route(req, source, user):
        seen["req"], seen["user"] = req, user
        return RouteDecision.fork(
            [("sip:x@127.0.0.1:25060", Addr("UDP", "127.0.0.1", 25060))], headers=[("X-PBX-Trunk", "a")]
        )

    def admit(req, source):
        if source.host == "192.0.2.10":
            return True
        if req.uri.user == "did":
            return RouteDecision.reject(403, "Forbidden - DIDs are reached through a trunk")
        return None

    p = Proxy(
        route=route,
        local_address=lambda t, h: ("127.0.0.1", 5060),
        is_local=lambda h, pt: False,
        secret=b"s" * 32,
        authenticator=None,
        admit=admit,
        trusted=lambda a: a.port == 25060,
    )
    inv = _invite("sip:+33123456789@pbx", "X-PBX-Trunk: forged\r\nX-PBX-DID: 999\r\n")
    acts = p.on_request("k1", inv, Addr("UDP", "192.0.2.10", 5060), 0.0)
    assert seen["user"] is None and seen["req"].headers.get("X-PBX-DID") is None
    [send] = [a for a in acts if isinstance(a, SendRequest)]
    assert send.request.headers.get_all("X-PBX-Trunk") == ["a"]
    # an empty value in the decision removes the header
    p.route = lambda req, source, user: RouteDecision.fork(
        [("sip:y@192.0.2.99", Addr("UDP", "192.0.2.99", 5060))], headers=[("X-PBX-Call", "")]
    )
    acts = p.on_request("k3", _invite("sip:y@pbx", "X-PBX-Call: abc\r\n"), Addr("UDP", "127.0.0.1", 25060), 0.0)
    [send] = [a for a in acts if isinstance(a, SendRequest)]
    assert send.request.headers.get("X-PBX-Call") is None
    acts = p.on_request("k2", _invite("sip:did@pbx"), Addr("UDP", "10.0.0.9", 5060), 0.0)
    [resp] = acts
    assert isinstance(resp, Respond) and resp.response.status == 403


def test_service_registrations_status() -> None:
    async def go():
        svc = T.TrunkService()

        class FakeServer:
            def __init__(self) -> None:
                self.sent: list = []

            def local_address(self, t, h):
                return ("127.0.0.1", 5070)

            def send_own(self, req, dest, cb):
                self.sent.append((req, dest, cb))

        srv = FakeServer()
        svc.attach(srv)
        svc.trunks = {"r": T.Trunk("r", "192.0.2.30", username="u", password="p", register=True)}
        svc._ips = {"r": {"192.0.2.30"}}
        svc._sync_registrations()
        [(req, dest, cb)] = srv.sent
        assert req.method == "REGISTER" and dest.host == "192.0.2.30"
        from sip.message import make_response
        from sip.transaction import ResponseReceived

        cb(ResponseReceived(None, parse_message(make_response(req, 200, to_tag="t").to_bytes())))
        [st] = svc.status()
        assert st["state"] == "registered" and st["name"] == "r"

    asyncio.run(go())
