"""Issue 10's toll-fraud holes, as an attacker tries them: an authenticated extension that may not
call abroad dials each through the router (the proxy's screen hook); each is refused with a 403
and one log line. Emergency numbers of the region always go out; only validated numbers reach
a trunk, in the trunk's format. Plus: ``ext add 112`` and emergency queue numbers are refused,
an existing one is reported at start, and the [numbers] config."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pypbx import acdstore as S
from pypbx import routing as R
from pypbx import trunks as T
from pypbx.config import ConfigError, config_from_dict
from pypbx.db import open_db
from pypbx.numbers import NumberPlan
from sip.message import parse_message
from sip.proxy import RouteDecision
from sip.transaction import Addr

HOLES = [
    "00330881612345678",
    "+330442071234567",
    "00330442071234567",
    "+3308991234567",
    "118218",
    "011442071234567",
    "+3300442071234567",
]
PHONE = Addr("UDP", "10.1.1.1", 5060)


def _invite(user: str):
    raw = (
        f"INVITE sip:{user}@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKabc\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@pbx>;tag=f1\r\nTo: <sip:" + user + "@pbx>\r\n"
        "Call-ID: c1@x\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@10.1.1.1>\r\nContent-Length: 0\r\n\r\n"
    )
    return parse_message(raw.encode())


def _router(region: str = "FR") -> T.TrunkRouter:
    svc = T.TrunkService(plan=NumberPlan(region=region))
    svc.trunks = {"a": T.Trunk("a", "192.0.2.10", number_format="national")}
    svc._ips = {"a": {"192.0.2.10"}}
    return T.TrunkRouter(svc, is_internal=lambda n: n in ("1001", "1002"))


@pytest.mark.parametrize("number", HOLES)
def test_toll_fraud_hole_refused_403_with_one_log_line(number, caplog):
    router = _router()
    with caplog.at_level(logging.WARNING, logger="pypbx.trunks"):
        d = router.screen(_invite(number), PHONE, "1001")
    assert isinstance(d, RouteDecision) and d.status == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "pypbx.trunks"]
    assert len(lines) == 1 and f"1001 -> {number} refused: 403" in lines[0]
    # even with every class allowed, none of these is sent (not a validated number), except
    # the premium short number, which an extension allowed premium may call
    router.svc.perms["1001"] = {"classes": ("internal", "premium", "international"), "max_outbound": None}
    d = router.screen(_invite(number), PHONE, "1001")
    if number == "118218":
        assert d == (("X-PBX-Outbound", "118218"), ("X-PBX-Class", "premium"))
    else:
        assert isinstance(d, RouteDecision) and d.status == 403


def test_valid_numbers_go_out_in_the_trunks_format():
    router = _router()
    assert router.screen(_invite("0612345679"), PHONE, "1001") == (
        ("X-PBX-Outbound", "0612345679"),
        ("X-PBX-Class", "mobile"),
    )
    svc = router.svc
    a = svc.trunks["a"]
    for fmt, want in (
        ("national", "0612345679"),
        ("e164", "+33612345679"),
        ("e164_no_plus", "33612345679"),
        ("international", "0033612345679"),
        ("as_dialled", "0033612345679"),
    ):
        a.number_format = fmt
        assert svc.dial_number(a, "0033612345679") == want, fmt
    a.number_format = "national"
    for bad in HOLES[:4]:
        with pytest.raises(ValueError):
            svc.dial_number(a, bad)


@pytest.mark.parametrize(
    "region,number", [("FR", "112"), ("FR", "15"), ("FR", "17"), ("KR", "119"), ("RU", "103"), ("CN", "120")]
)
def test_emergency_always_goes_out(region, number):
    router = _router(region)
    router.svc.perms["1001"] = {"classes": ("internal",), "max_outbound": 0}  # nothing else, no outside line
    assert router.screen(_invite(number), PHONE, "1001")[1] == ("X-PBX-Class", "emergency")
    assert router.svc.dial_number(router.svc.trunks["a"], number) == number


def test_inbound_caller_and_dids_are_e164():
    svc = T.TrunkService(plan=NumberPlan(region="KR"))
    svc.dids = {"+8221234567": T.Did("+8221234567", "queue:front", "Front")}
    for form in ("+8221234567", "021234567", "02-123-4567", "001 82 2 123 4567", "8221234567"):
        assert svc.find_did(form) is not None, form
    assert T.normalise_did("02-123-4567", "KR") == "+8221234567"
    assert T.normalise_did("0123456789") == "+33123456789"


def test_ext_add_emergency_refused(invoke_cli, make_config):
    cfg = make_config()
    for n in ("112", "15", "17", "18"):
        r = invoke_cli("ext", "add", n, "--config", str(cfg))
        assert r.exit_code == 1, n
        assert r.output.strip() == f"Error: {n} is an emergency number in FR: it cannot be an extension"
    assert invoke_cli("ext", "add", "1001", "--config", str(cfg)).exit_code == 0
    kr = make_config("kr.toml", numbers={"region": "KR"})
    r = invoke_cli("ext", "add", "119", "--config", str(kr))
    assert r.exit_code == 1 and "emergency number in KR" in r.output


def test_queue_number_emergency_refused_and_existing_reported(tmp_path: Path, caplog):
    async def go():
        async with open_db(tmp_path / "x.db") as db:
            await S.add_queue(db, "front")
            with pytest.raises(S.AcdError, match="112 is an emergency number in FR"):
                await S.set_queue_number(db, "front", "112")
            # a database from before: an extension 112 and a queue numbered 15
            await db.execute(
                "INSERT INTO extensions(number, name, realm, ha1_md5, ha1_sha256, enabled, created_at, updated_at) "
                "VALUES ('112', '', 'pypbx', 'x', 'y', 1, 0, 0)"
            )
            await db.execute("UPDATE queues SET number = '15' WHERE name = 'front'")
            svc = T.TrunkService()
            assert await svc.emergency_clashes(db) == ["extension 112", "queue front number 15"]
            with caplog.at_level(logging.WARNING, logger="pypbx.trunks"):
                await svc.load(db)
                await svc.load(db)  # reported once, at start
            lines = [r.getMessage() for r in caplog.records if "emergency numbers" in r.getMessage()]
            assert lines == [
                "emergency numbers of region FR used internally (never reached, they always go out): "
                "extension 112, queue front number 15"
            ]

    asyncio.run(go())


def test_numbers_config(tmp_path: Path):
    assert config_from_dict({}, tmp_path).numbers.region == "FR"
    assert config_from_dict({"numbers": {"region": "kr"}}, tmp_path).numbers.region == "KR"
    with pytest.raises(ConfigError, match=r"numbers\.region.*unknown region 'XX'"):
        config_from_dict({"numbers": {"region": "XX"}}, tmp_path)
    # an old config: the hand-written plan's keys are still read; country_code gives the region
    old = {
        "numbers": {
            "country_code": "7",
            "national_prefix": "8",
            "international_prefix": "810",
            "mobile_prefixes": ["89"],
            "local_prefixes": [],
            "premium_prefixes": ["8809"],
            "default_allowed": ["internal", "local", "mobile", "national"],
        }
    }
    n = config_from_dict(old, tmp_path).numbers
    assert n.region == "RU"
    assert n.default_allowed == ("internal", "fixed_line", "mobile", "toll_free", "shared_cost", "voip", "uan", "short")
    with pytest.raises(ConfigError, match="unknown number class 'moon'"):
        config_from_dict({"numbers": {"default_allowed": ["moon"]}}, tmp_path)


def test_route_caller_prefix_national_or_e164():
    """caller=06 (written nationally) and caller=+336 both match the E.164 caller number."""
    base = {"known": False, "caller": "+33612345678", "ivr_choices": [], "schedules": {}}
    for prefix in ("06", "+336", "0033 6"):
        rules = [R.make_rule([f"caller={prefix.replace(' ', '')}"], "queue:mobile"), R.make_rule([], "queue:other")]
        assert R.evaluate(rules, {**base, "region": "FR"}).destination == "queue:mobile", prefix
        assert R.evaluate(rules, {**base, "caller": "+33140000000", "region": "FR"}).destination == "queue:other"
    kr = [R.make_rule(["caller=010"], "queue:mobile"), R.make_rule([], "queue:other")]
    assert R.evaluate(kr, {**base, "caller": "+821012345678", "region": "KR"}).destination == "queue:mobile"


def test_gather_facts_makes_the_caller_e164(tmp_path: Path):
    async def go():
        async with open_db(tmp_path / "x.db", "RU") as db:
            route = R.Route("r", "UTC", (R.make_rule(["known"], "queue:a"),))
            facts = await R.gather_facts(db, route, "8 (912) 345-67-89")
            assert facts["caller"] == "+79123456789" and facts["region"] == "RU"

    asyncio.run(go())
