"""pypbx.groups: ring groups (store, CLI, the front door's fork, GroupCall over media.fake)
and the DID destinations / smart routing rule of pypbx.trunks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from media import protocol as P
from pypbx import groups as G
from pypbx import ivr as I
from pypbx import trunks as T
from pypbx import voicemail as V
from pypbx.config import render_config
from pypbx.db import open_db
from sip.proxy import RouteDecision
from tests.unit._frontline_env import Env, invite, originates, settle


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------ definitions and store


def test_validation():
    g = G.RingGroup("front", members=["1001", " 1002", "1001", ""], then="vm:1001").validate()
    assert g.members == ["1001", "1002"] and g.then == "voicemail:1001" and g.strategy == "all"
    for bad in (
        G.RingGroup("bad name", ["1001"]),
        G.RingGroup("g", []),
        G.RingGroup("g", ["abc"]),
        G.RingGroup("g", ["1001"], strategy="random"),
        G.RingGroup("g", ["1001"], ring_time=0),
        G.RingGroup("g", ["1001"], then="ivr:main"),
    ):
        with pytest.raises(G.GroupError):
            bad.validate()
    assert G.parse_members("1001, 1002,1003") == ["1001", "1002", "1003"]


def test_store(tmp_path):
    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            await G.add_group(
                db, G.RingGroup("front", ["1001", "1002"], strategy="order", ring_time=10, then="queue:front"), now=5.0
            )
            with pytest.raises(G.GroupError, match="already exists"):
                await G.add_group(db, G.RingGroup("front", ["1003"]))
            g = await G.get_group(db, "front")
            assert (g.members, g.strategy, g.ring_time, g.then, g.created_at) == (
                ["1001", "1002"],
                "order",
                10.0,
                "queue:front",
                5.0,
            )
            assert [x.name for x in await G.list_groups(db)] == ["front"]
            await G.remove_group(db, "front")
            with pytest.raises(G.GroupError):
                await G.get_group(db, "front")
            with pytest.raises(G.GroupError):
                await G.remove_group(db, "front")

    run(go())


def test_did_destinations_and_smart_rule(tmp_path):
    assert T.parse_destination("ivr:main") == "ivr:main"
    assert T.parse_destination("menu:main") == "ivr:main"
    assert T.parse_destination("voicemail:1001") == "voicemail:1001"
    assert T.parse_destination("group:front") == "group:front"
    assert T.parse_destination("external:+33 6 12 34 56 78") == "external:+33612345678"
    for bad in ("external:12", "fax:1", "queue:"):
        with pytest.raises(T.TrunkError):
            T.parse_destination(bad)

    async def go():
        async with open_db(tmp_path / "pbx.db") as db:
            d = await T.add_did(
                db, "0144556677", None, "Appointments", known="queue:front_desk", new="queue:call_centre"
            )
            assert d.smart and d.route(True) == "queue:front_desk" and d.route(False) == "queue:call_centre"
            with pytest.raises(T.TrunkError, match="--to"):
                await T.add_did(db, "0144556678", None, known="queue:front_desk")
            await T.add_did(db, "0144556679", "group:front", "Front desk")
            dids = {x.number: x for x in await T.list_dids(db)}
            assert dids["+33144556677"] == d and dids["+33144556677"].destination == "queue:call_centre"
            assert not dids["+33144556679"].smart and dids["+33144556679"].kind == "group"

    run(go())


def test_cli(tmp_path: Path):
    cfg = tmp_path / "pypbx.toml"
    cfg.write_text(render_config(data_dir=str(tmp_path / "var")))

    def c(*args):
        r = CliRunner().invoke(cli.cli, ["--config", str(cfg), *args])
        return r.exit_code, r.output

    # issue 12: members and destinations must exist
    for n in ("1001", "1002", "1003"):
        assert c("ext", "add", n)[0] == 0
    for q in ("front_desk", "call_centre"):
        assert c("queue", "add", q)[0] == 0
    code, out = c(
        "group",
        "add",
        "front",
        "--members",
        "1001,1002,1003",
        "--strategy",
        "order",
        "--ring-time",
        "15",
        "--then",
        "voicemail:1001",
    )
    assert code == 0 and "1001, 1002, 1003 (order, 15 s), then voicemail:1001" in out, out
    code, out = c("group", "list", "--json")
    assert json.loads(out)[0]["members"] == ["1001", "1002", "1003"]
    code, out = c("group", "show", "front")
    assert code == 0 and "strategy: order" in out
    code, out = c("group", "add", "x", "--members", "1001", "--then", "ivr:main")
    assert code == 2 and "bad --then" in out and "Traceback" not in out
    code, out = c(
        "did",
        "add",
        "0144556677",
        "--known",
        "queue:front_desk",
        "--new",
        "queue:call_centre",
        "--name",
        "Appointments",
    )
    assert code == 0 and "known callers -> queue:front_desk, new callers -> queue:call_centre" in out, out
    code, out = c("did", "add", "0144556688", "--to", "group:front")
    assert code == 0, out
    code, out = c("did", "list", "--json")
    rows = {r["number"]: r for r in json.loads(out)}
    assert rows["+33144556677"]["known"] == "queue:front_desk" and rows["+33144556688"]["destination"] == "group:front"
    code, out = c("did", "add", "0144556699")
    assert code == 1 and "--to" in out
    assert c("did", "remove", "+33144556688")[0] == 0  # issue 12: a group a DID points to stays
    code, out = c("group", "remove", "front")
    assert code == 0 and json.loads(c("group", "list", "--json")[1]) == []


# ------------------------------------------------------------------ the front door


def test_service_routes_a_ring_leg_to_every_member():
    contacts = {"1001": [("sip:a@192.0.2.1", "A1"), ("sip:b@192.0.2.2", "A2")], "1002": [("sip:c@192.0.2.3", "B")]}
    svc = G.GroupService(contacts=lambda e: contacts.get(e, []), answered_by=lambda cid, exts: "1002")
    tok = svc.ring(("1001", "1002"), 20)
    d = svc.route(invite(f"grp-{tok}"))
    assert isinstance(d, RouteDecision) and len(d.targets) == 3 and d.ring_timeout == 20 + G.RING_GRACE
    assert svc.route(invite("1001")) is None
    assert svc.route(invite("grp-nope")).status == 404
    assert svc.who_answered(tok, "x") == "1002"
    tok2 = svc.ring(("1003",), 20)
    assert svc.route(invite(f"grp-{tok2}")).status == 480  # nobody registered
    svc.done(tok)
    assert tok not in svc.rings


# ------------------------------------------------------------------ GroupCall (media.fake)


class GEnv(Env):
    async def __aenter__(self) -> GEnv:
        await super().__aenter__()
        self.svc = G.GroupService(contacts=lambda e: [], answered_by=lambda cid, exts: exts[-1])
        self.cm.groups = self.svc
        return self


def test_ivr_to_an_order_group_then_voicemail(tmp_path):
    async def go():
        async with GEnv(tmp_path) as env:
            await G.add_group(
                env.db, G.RingGroup("desk", ["1001", "1002"], strategy="order", ring_time=0.5, then="voicemail:1003")
            )
            await V.set_box(env.db, "1003")
            await I.save_menu(env.db, I.Menu(name="main", number="700", options={"6": "group:desk"}))
            w, s = await env.call("700")
            w.inject(P.Dtmf(leg="in-1", digit="6"))
            await settle(10)
            o = originates(w)
            assert len(o) == 1 and o[0].uri.startswith("sip:grp-") and env.svc.rings[o[0].uri[8:24]][0] == ("1001",)
            assert w.playing["in-1"] == str(env.cm.moh)
            await asyncio.sleep(0.55)  # 1001 does not answer: 1002's turn
            await settle(10)
            o = originates(w)
            assert len(o) == 2 and env.svc.rings[o[1].uri[8:24]][0] == ("1002",)
            await asyncio.sleep(0.5)  # nor 1002: the mailbox
            await settle(10)
            kinds = [k for k, _ in await env.events(s.rec.id)]
            assert "ring_group_unanswered" in kinds and "voicemail" in " ".join(kinds)
            assert not env.svc.rings

    run(go())


def test_did_style_all_group_answered(tmp_path):
    async def go():
        async with GEnv(tmp_path) as env:
            await G.add_group(env.db, G.RingGroup("desk", ["1001", "1002"], ring_time=5))
            w, s = await env.call("1009")  # stands for a DID call: caller not answered
            env.cm.hand_back(s)
            assert await env.fl.start_destination(s, "group:desk", answered=False)
            await settle()
            [o] = [x for x in originates(w) if x.uri.startswith("sip:grp-")]
            assert env.svc.rings[o.uri[8:24]][0] == ("1001", "1002")
            w.inject(P.Ringing(leg=o.leg_id))
            await settle()
            assert any(isinstance(c, P.Answer) and c.code == 180 for c in w.commands)
            w.inject(P.Answered(leg=o.leg_id, call_id="x1"))
            await settle()
            assert s.flow is None and s.callee == "1002" and s.answered
            assert any(isinstance(c, P.Answer) and c.code == 200 and c.leg == "in-1" for c in w.commands)
            w.inject(P.Answered(leg="in-1", call_id="c1"))
            await settle()
            assert frozenset(("in-1", o.leg_id)) in w.bridges
            rec_id = s.rec.id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "answered" and row["extension"] == "1002"

    run(go())


def test_unanswered_group_without_then_is_480(tmp_path):
    async def go():
        async with GEnv(tmp_path, registered=lambda n: n == "1009") as env:
            await G.add_group(env.db, G.RingGroup("desk", ["1001", "1002"]))
            w, s = await env.call("1009")
            env.cm.hand_back(s)
            assert await env.fl.start_destination(s, "group:desk", answered=False)
            await settle(20)
            assert any(isinstance(c, P.Hangup) and c.code == 480 for c in w.commands)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "no_answer"
            assert not await env.fl.start_destination(s, "group:nope", answered=False)

    run(go())


def test_queue_overflow_to_a_ring_group(tmp_path):
    from pypbx import acdstore as S

    async def go():
        async with GEnv(tmp_path, record=False) as env:
            await G.add_group(env.db, G.RingGroup("desk", ["1001", "1002"], ring_time=5))
            await S.add_queue(env.db, "q2", overflow="after=20,ring_group:desk", wrap_up=0)
            await S.set_queue_number(env.db, "q2", "601")
            await env.live.sync()
            w, s = await env.call("601")
            w.inject(P.Answered(leg="in-1", call_id="c1"))
            await settle()
            assert s.rec.queue == "q2"
            env.clock.t += 20
            env.live.poke()
            await settle(20)
            [o] = [x for x in originates(w) if x.uri.startswith("sip:grp-")]
            assert env.svc.rings[o.uri[8:24]][0] == ("1001", "1002")
            assert w.playing["in-1"] == str(env.cm.moh)
            w.inject(P.Answered(leg=o.leg_id, call_id="x1"))
            await settle()
            assert frozenset(("in-1", o.leg_id)) in w.bridges and s.callee == "1002"
            rec_id = s.rec.id
            w.inject(P.Ended(leg=o.leg_id, cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "answered" and row["queue"] == "q2" and row["extension"] == "1002"

    run(go())


def test_caller_gone_at_the_moment_of_the_answer(tmp_path):
    """The caller hangs up just as a member answers (the worker dropped the caller's leg,
    its Ended event is still on the way): the bridge fails quietly and the call ends
    answered, caller side, instead of an internal error."""

    async def go():
        async with GEnv(tmp_path, record=False) as env:
            await G.add_group(env.db, G.RingGroup("desk", ["1001", "1002"], ring_time=5))
            await I.save_menu(env.db, I.Menu(name="main", number="700", options={"6": "group:desk"}))
            w, s = await env.call("700")
            w.inject(P.Dtmf(leg="in-1", digit="6"))
            await settle(10)
            [o] = [x for x in originates(w) if x.uri.startswith("sip:grp-")]
            w.legs.discard("in-1")  # the caller's BYE reached the worker first
            w.inject(P.Answered(leg=o.leg_id, call_id="x1"))
            await settle()
            assert not w.bridges and not env.cm.sessions[w].ended
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert (row["disposition"], row["hangup_side"], row["extension"]) == ("answered", "caller", "1002")
            assert "bridge_failed" in [k for k, _ in await env.events(s.rec.id)]
            assert any(isinstance(c, P.Hangup) and c.leg == o.leg_id for c in w.commands)

    run(go())
