"""Routing rules (pypbx.routing): the pure evaluate(), parsing, the store, dry runs and
the CLI (``pypbx route ...``, ``pypbx did edit``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

import cli
from pypbx import hours as H
from pypbx import routing as R
from pypbx.config import render_config
from pypbx.db import open_db

PARIS = ZoneInfo("Europe/Paris")
MON_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)  # a Monday
MON_20 = dt.datetime(2026, 11, 23, 20, 0, tzinfo=PARIS)
SAT_10 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)


def facts(**kw):
    base = {
        "known": False,
        "now": MON_10,
        "caller": "+33140000000",
        "last_agent": None,
        "last_agent_available": False,
        "last_agent_ext": None,
        "ivr_choices": [],
        "schedules": {},
    }
    base.update(kw)
    return base


def rule(conds, dest, **kw):
    return R.make_rule(conds, dest, **kw)


# ---------------------------------------------------------------- evaluate (pure)


def test_known_and_new():
    rules = [rule(["known"], "queue:returning"), rule(["new"], "queue:new")]
    assert R.evaluate(rules, facts(known=True)).destination == "queue:returning"
    d = R.evaluate(rules, facts(known=False))
    assert (d.rule, d.destination) == (2, "queue:new")


def test_first_match_wins_and_default_rule():
    rules = [rule(["caller=+336"], "queue:mobile"), rule(["caller=+33"], "queue:france"), rule([], "voicemail:1001")]
    assert R.evaluate(rules, facts(caller="+33612345678")).destination == "queue:mobile"
    assert R.evaluate(rules, facts(caller="+33140000000")).destination == "queue:france"
    d = R.evaluate(rules, facts(caller="+4930000000"))
    assert (d.rule, d.destination) == (3, "voicemail:1001")
    assert d.trace[0].startswith("rule 1: caller=+336 does not hold")


def test_no_rule_matches_without_default():
    d = R.evaluate([rule(["known"], "queue:a")], facts(known=False))
    assert not d.matched and d.destination is None and d.trace[-1] == "no rule matched"
    assert not R.evaluate([], facts()).matched


def test_all_conditions_must_hold():
    rules = [rule(["known", "time=mon-fri/08:00-12:00"], "queue:a"), rule([], "queue:b")]
    assert R.evaluate(rules, facts(known=True), "Europe/Paris").destination == "queue:a"
    assert R.evaluate(rules, facts(known=True, now=MON_20), "Europe/Paris").destination == "queue:b"
    assert R.evaluate(rules, facts(known=False), "Europe/Paris").destination == "queue:b"


def test_time_in_the_route_time_zone():
    rules = [rule(["time=mon-fri/08:00-12:00"], "queue:am")]
    # 10:00 in Paris is 09:00 UTC: inside in Paris, inside in UTC too; 07:30 UTC = 08:30 Paris
    utc_0730 = dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC)
    assert R.evaluate(rules, facts(now=utc_0730), "Europe/Paris").matched
    assert not R.evaluate(rules, facts(now=utc_0730), "UTC").matched
    assert not R.evaluate(rules, facts(now=SAT_10), "Europe/Paris").matched
    # end is exclusive
    assert not R.evaluate(rules, facts(now=MON_10.replace(hour=12)), "Europe/Paris").matched


def test_time_forms():
    assert R.evaluate([rule(["time=08:00-12:00"], "queue:a")], facts(now=SAT_10), "Europe/Paris").matched
    assert R.evaluate([rule(["time=sat-sun"], "queue:a")], facts(now=SAT_10), "Europe/Paris").matched
    assert R.evaluate([rule(["time=mon/wed/fri/09:00-11:00"], "queue:a")], facts(), "Europe/Paris").matched
    assert not R.evaluate([rule(["time=tue/wed/09:00-11:00"], "queue:a")], facts(), "Europe/Paris").matched


def test_time_past_midnight():
    rules = [rule(["time=fri/22:00-07:00"], "queue:night")]
    fri = dt.datetime(2026, 11, 27, 0, 0, tzinfo=PARIS)

    def at(d: int, h: int, m: int = 0) -> dt.datetime:
        return fri + dt.timedelta(days=d, hours=h, minutes=m)

    ok = [
        R.evaluate(rules, facts(now=at(d, h, m)), "Europe/Paris").matched
        for d, h, m in [(0, 21, 59), (0, 22, 0), (0, 23, 59), (1, 0, 0), (1, 6, 59), (1, 7, 0), (0, 3, 0)]
    ]
    assert ok == [False, True, True, True, True, False, False]  # Fri 03:00 follows Thursday
    late = [rule(["time=18:00-24:00"], "queue:late")]
    assert R.evaluate(late, facts(now=at(0, 23, 59)), "Europe/Paris").matched
    assert not R.evaluate(late, facts(now=at(1, 0, 0)), "Europe/Paris").matched


def test_open_closed_schedule():
    sched = H.Schedule("clinic", "Europe/Paris", H.parse_week("mon-fri 08:00-18:00"))
    rules = [rule(["closed=clinic"], "voicemail:1001"), rule(["open=clinic"], "queue:front")]
    assert R.evaluate(rules, facts(schedules={"clinic": sched})).destination == "queue:front"
    assert R.evaluate(rules, facts(now=MON_20, schedules={"clinic": sched})).destination == "voicemail:1001"
    # a schedule that does not exist counts as open
    assert R.evaluate(rules, facts(now=MON_20)).destination == "queue:front"


def test_sticky_and_prefer_last():
    rules = [rule(["sticky"], "queue:front", prefer_last=20), rule([], "queue:front")]
    d = R.evaluate(rules, facts(last_agent="nurse", last_agent_available=True))
    assert (d.rule, d.prefer_agent, d.prefer_for) == (1, "nurse", 20.0)
    d = R.evaluate(rules, facts(last_agent="nurse", last_agent_available=False))
    assert (d.rule, d.prefer_agent) == (2, None)
    assert R.evaluate(rules, facts()).rule == 2


def test_agent_last_resolves_to_the_extension_or_is_skipped():
    rules = [rule([], "agent:last"), rule([], "queue:front")]
    d = R.evaluate(rules, facts(last_agent="nurse", last_agent_available=True, last_agent_ext="1002"))
    assert d.destination == "extension:1002"
    d = R.evaluate(rules, facts(last_agent="nurse"))
    assert d.destination == "queue:front" and "not logged in" in d.trace[0]


def test_ivr_choice():
    rules = [rule(["ivr=main:2"], "queue:results"), rule([], "queue:front")]
    assert R.evaluate(rules, facts(ivr_choices=[("main", "1"), ("main", "2")])).destination == "queue:results"
    assert R.evaluate(rules, facts(ivr_choices=[("other", "2")])).destination == "queue:front"


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "bad",
    [
        "foo",
        "known=1",
        "time=",
        "time=25:00-26:00",
        "time=xyz/08:00-09:00",
        "time=mon-fri/08:00-08:00",
        "time=00:00-24:00",
        "time=10:60-11:00",
        "time=8-12",
        "ivr=main",
        "ivr=main:x",
        "caller=abc",
        "open=",
        "open=bad name",
    ],
)
def test_bad_conditions(bad):
    with pytest.raises(R.RoutingError):
        R.parse_condition(bad)


@pytest.mark.parametrize("bad", ["nowhere:1", "queue:", "agent:first", "external:12", "route:bad name"])
def test_bad_destinations(bad):
    with pytest.raises(R.RoutingError):
        R.parse_destination(bad)


def test_rule_checks():
    assert R.parse_destination("menu:main") == "ivr:main"
    assert R.parse_destination("agent:last") == "agent:last"
    assert R.parse_destination("external:+33 6 12 34 56 78") == "external:+33612345678"
    with pytest.raises(R.RoutingError):
        R.make_rule(["known", "new"], "queue:a")
    with pytest.raises(R.RoutingError):
        R.make_rule(["sticky"], "extension:1001", prefer_last=10)
    with pytest.raises(R.RoutingError):
        R.make_rule(["sticky"], "queue:a", prefer_last=0)


# ---------------------------------------------------------------- store + dry run


def test_store_rules_order_positions_and_dry_run(tmp_path: Path):
    async def go():
        async with open_db(tmp_path / "db.sqlite") as db:
            from pypbx import acdstore as S

            for q in ("front", "back"):
                await S.add_queue(db, q)
            await R.add_route(db, "main", "Europe/Paris")
            with pytest.raises(R.RoutingError):
                await R.add_rule(db, "main", [], "queue:ghost")  # no such queue
            with pytest.raises(R.RoutingError):
                await R.add_route(db, "main")
            with pytest.raises(R.RoutingError):
                await R.add_route(db, "x", "Mars/Base")
            await R.add_rule(db, "main", [], "queue:front")
            await R.add_rule(db, "main", ["known"], "queue:back", position=1)
            await R.add_rule(db, "main", ["sticky"], "queue:back", prefer_last=15, position=1)
            r = await R.get_route(db, "main")
            assert [x.destination for x in r.rules] == ["queue:back", "queue:back", "queue:front"]
            assert r.rules[0].prefer_last == 15 and [x.position for x in r.rules] == [1, 2, 3]
            with pytest.raises(R.RoutingError):
                await R.add_rule(db, "main", [], "route:main")  # itself
            with pytest.raises(R.RoutingError):
                await R.add_rule(db, "main", [], "route:nope")  # points nowhere
            with pytest.raises(R.RoutingError):
                await R.add_rule(db, "main", ["open=nope"], "queue:a")  # no schedule
            with pytest.raises(R.RoutingError):
                await R.add_rule(db, "main", [], "queue:a", position=9)
            r = await R.remove_rule(db, "main", 1)
            assert [str(c) for x in r.rules for c in x.conditions] == ["known"]
            with pytest.raises(R.RoutingError):
                await R.remove_rule(db, "main", 5)
            # dry run: known caller (seen before, last agent nurse logged in at 1002)
            await db.caller_seen_row("+33611111111", 1.0, "answered", "nurse", "c1")
            res = await R.dry_run(db, "main", "+33611111111", at=dt.datetime(2026, 11, 23, 10, 0))
            assert res["destination"] == "queue:back" and res["steps"][0]["rule"] == 1
            assert res["steps"][0]["now"].startswith("2026-11-23T10:00+01:00")
            res = await R.dry_run(db, "main", "+33622222222")
            assert res["destination"] == "queue:front"
            # route -> route
            await R.add_route(db, "top")
            await R.add_rule(db, "top", ["caller=+336"], "route:main")
            res = await R.dry_run(db, "top", "+33622222222")
            assert [s["route"] for s in res["steps"]] == ["top", "main"] and res["destination"] == "queue:front"
            assert [x.name for x in await R.list_routes(db)] == ["main", "top"]
            await R.remove_route(db, "main")
            assert await db.list_route_rule_rows("main") == []
            with pytest.raises(R.RoutingError):
                await R.get_route(db, "main")

    asyncio.run(go())


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "pypbx.toml"
    p.write_text(render_config(data_dir=str(tmp_path / "var")))
    return p


def run_cli(cfg_path: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli.cli, ["--config", str(cfg_path), *args])
    return r.exit_code, r.output


def test_cli_route(cfg_path: Path):
    assert run_cli(cfg_path, "queue", "add", "front")[0] == 0
    assert run_cli(cfg_path, "route", "list")[1].startswith("No routes")
    code, out = run_cli(cfg_path, "route", "add", "main", "--tz", "Europe/Paris")
    assert code == 0 and "Route main created" in out, out
    code, out = run_cli(
        cfg_path, "route", "rule", "main", "--if", "known", "--if", "time=mon-fri/08:00-12:00", "--to", "queue:front"
    )
    assert code == 0 and "1. known and time=mon-fri/08:00-12:00 -> queue:front" in out, out
    code, out = run_cli(
        cfg_path,
        "route",
        "rule",
        "main",
        "--if",
        "sticky",
        "--to",
        "queue:front",
        "--prefer-last",
        "20",
        "--position",
        "1",
    )
    assert code == 0 and "1. sticky -> queue:front (prefer last agent 20 s)" in out, out
    code, out = run_cli(cfg_path, "route", "rule", "main", "--to", "voicemail:1001")
    assert code == 0 and "3. (default) -> voicemail:1001" in out, out
    code, out = run_cli(cfg_path, "route", "show", "main", "--json")
    d = json.loads(out)
    assert d["tz"] == "Europe/Paris" and [r["to"] for r in d["rules"]] == [
        "queue:front",
        "queue:front",
        "voicemail:1001",
    ]
    assert d["rules"][0]["prefer_last"] == 20
    code, out = run_cli(cfg_path, "route", "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["main"]
    code, out = run_cli(cfg_path, "route", "list")
    assert "main" in out and "voicemail:1001" in out
    # dry runs
    code, out = run_cli(cfg_path, "route", "test", "main", "--caller", "+33612345678", "--at", "2026-11-23 10:00")
    assert code == 0 and out.strip().endswith("=> voicemail:1001"), out  # new caller
    assert "rule 2: known does not hold" in out
    code, out = run_cli(cfg_path, "route", "test", "main", "--caller", "+33612345678", "--json")
    assert json.loads(out)["destination"] == "voicemail:1001"
    # unrule
    code, out = run_cli(cfg_path, "route", "unrule", "main", "3")
    assert code == 0 and "voicemail" not in out
    code, out = run_cli(cfg_path, "route", "test", "main", "--caller", "+33612345678")
    assert code == 0 and "no rule matched" in out
    code, out = run_cli(cfg_path, "route", "tz", "main", "UTC")
    assert code == 0 and "UTC" in out
    # one-line errors; issue 12: bad input (a rule that cannot be, a route that does not exist) is exit 2
    for args, msg, want in [
        (("route", "rule", "main", "--if", "bogus", "--to", "queue:a"), "bad condition", 2),
        (("route", "rule", "main", "--if", "time=9-5", "--to", "queue:a"), "bad time", 2),
        (("route", "rule", "main", "--to", "route:nope"), "no route 'nope'", 2),
        (("route", "rule", "nope", "--to", "queue:a"), "unknown route 'nope'", 2),
        (("route", "rule", "main", "--to", "nowhere:x"), "bad destination", 2),
        (("route", "rule", "main", "--to", "queue:ghost"), "no queue 'ghost'", 2),
        (("route", "rule", "main", "--to", "extension:1999"), "no extension '1999'", 2),
        (("route", "show", "nope"), "unknown route 'nope'", 2),
        (("route", "remove", "nope"), "unknown route 'nope'", 2),
        (("route", "unrule", "main", "9"), "has no rule 9", 2),
        (("route", "test", "main", "--caller", "1", "--at", "tomorrow"), "bad --at", 2),
        (("route", "test", "main", "--caller", "1", "--ivr", "main"), "bad --ivr", 2),
        (("route", "add", "main"), "already exists", 1),
    ]:
        code, out = run_cli(cfg_path, *args)
        assert code == want and msg in out and "Traceback" not in out, (args, out)
        assert len(out.strip().splitlines()) == 1, out
    run_cli(cfg_path, "did", "add", "+33123456789", "--to", "route:main")
    r = CliRunner().invoke(cli.cli, ["--config", str(cfg_path), "route", "remove", "main"])
    assert r.exit_code == 0 and "removed" in r.stdout
    assert "still pointing to route:main" in r.stderr and "DID +33123456789" in r.stderr


def test_cli_route_test_ivr_choice(cfg_path: Path):
    run_cli(cfg_path, "queue", "add", "results")
    run_cli(cfg_path, "ivr", "add", "main")
    run_cli(cfg_path, "route", "add", "r")
    code, out = run_cli(cfg_path, "route", "rule", "r", "--if", "ivr=main:2", "--to", "queue:results")
    assert code == 0, out
    code, out = run_cli(cfg_path, "route", "rule", "r", "--if", "ivr=ghost:2", "--to", "queue:results")
    assert code == 2 and "no IVR menu 'ghost'" in out  # issue 12: bad input is exit 2
    code, out = run_cli(cfg_path, "route", "test", "r", "--caller", "+33612345678", "--ivr", "main:2")
    assert out.strip().endswith("=> queue:results"), out


def test_cli_did_edit(cfg_path: Path):
    assert run_cli(cfg_path, "ext", "add", "1001")[0] == 0  # issue 12: destinations must exist
    assert run_cli(cfg_path, "queue", "add", "back")[0] == 0
    assert run_cli(cfg_path, "did", "add", "+33123456789", "--to", "extension:1001")[0] == 0
    run_cli(cfg_path, "route", "add", "triage")
    code, out = run_cli(cfg_path, "did", "edit", "+33123456789", "--to", "route:triage", "--name", "Appointments")
    assert code == 0 and "-> route:triage (Appointments)" in out, out
    code, out = run_cli(cfg_path, "did", "edit", "0033123456789".replace("0033", "+33"), "--known", "queue:back")
    assert code == 0 and "known callers -> queue:back, new callers -> route:triage" in out, out
    code, out = run_cli(cfg_path, "did", "edit", "+33123456789", "--known", "")
    assert code == 0 and "-> route:triage" in out and "known" not in out, out
    code, out = run_cli(cfg_path, "did", "list", "--json")
    d = json.loads(out)[0]
    assert d["destination"] == "route:triage" and d["service_line"] == "Appointments" and d["known"] is None
    # issue 12: a DID or destination that does not exist is bad input, exit 2
    for args, msg, want in [
        (("did", "edit", "+33999", "--to", "queue:a"), "unknown DID '+33999'", 2),
        (("did", "edit", "+33123456789"), "nothing to change", 2),
        (("did", "edit", "+33123456789", "--to", "route:ghost"), "unknown route 'ghost'", 2),
        (("did", "edit", "+33123456789", "--to", "bogus:1"), "bad destination", 2),
        (("did", "edit", "+33123456789", "--trunk", "ghost"), "unknown trunk 'ghost'", 2),
    ]:
        code, out = run_cli(cfg_path, *args)
        assert code == want and msg in out and "Traceback" not in out, (args, out)
    code, out = run_cli(cfg_path, "did", "add", "+33111111111", "--to", "route:triage")
    assert code == 0, out
    code, out = run_cli(cfg_path, "did", "add", "+33111111112", "--to", "queue:back", "--known", "route:ghost")
    assert code == 2 and "unknown route 'ghost'" in out and "Traceback" not in out  # issue 12: exit 2
