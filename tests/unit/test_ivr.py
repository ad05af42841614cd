"""pypbx.ivr: menu definitions (validation, TOML, store), the IvrCall runtime over media.fake
(greeting, DTMF, timeouts and retries, sub-menus, info prompts, language, direct dialling,
extension, queue and voicemail hand-offs, after hours) and the CLI."""

from __future__ import annotations

import asyncio
import json

import pytest

from media import protocol as P
from pypbx import acdstore as S
from pypbx import hours as H
from pypbx import ivr as I
from pypbx import voicemail as V
from pypbx.flows.queue import QueueCall
from tests.unit._frontline_env import Env, finish_all_playback, originates, plays, pr, press, settle

MENU = I.Menu(
    name="main",
    number="700",
    greeting=["welcome"],
    timeout=0.15,
    inter_digit=0.1,
    retries=1,
    options={
        "1": "queue:front",
        "2": "menu:info",
        "3": "extension:1001",
        "4": "voicemail:1001",
        "5": "play:after_hours",
        "9": "lang:ru",
        "0": "hangup",
    },
)
INFO = I.Menu(
    name="info",
    greeting=["call_important"],
    timeout=0.15,
    retries=0,
    options={"1": "play:clinic_closed", "*": "menu:main"},
)


def run(coro):
    return asyncio.run(coro)


async def setup(env: Env, *menus: I.Menu) -> None:
    for m in menus or (MENU, INFO):
        await I.save_menu(env.db, m)


# ------------------------------------------------------------------ definitions


def test_validation_and_actions():
    assert I.parse_action("queue:front") == ("queue", "front")
    assert I.parse_action("hangup") == ("hangup", "")
    for bad in ("ring:1001", "queue:", "menu"):
        with pytest.raises(I.IvrError):
            I.parse_action(bad)
    with pytest.raises(I.IvrError):
        I.Menu(name="m", options={"x": "hangup"}).validate()
    with pytest.raises(I.IvrError):
        I.Menu(name="bad name").validate()
    with pytest.raises(I.IvrError):
        I.Menu.from_dict({"name": "m", "colour": "red"})


def test_toml_roundtrip_single_and_many():
    text = I.to_toml(MENU)
    [m] = I.from_toml(text)
    assert m == MENU
    many = I.from_toml(
        '[menus.a]\ngreeting = "welcome"\n[menus.a.options]\n1 = "hangup"\n'
        '[menus.b]\nnumber = 701\n[menus.b.options]\n"#" = "menu:a"\n'
    )
    assert [x.name for x in many] == ["a", "b"] and many[0].greeting == ["welcome"] and many[1].number == "701"
    with pytest.raises(I.IvrError):
        I.from_toml("name = ")


def test_store(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            assert (await I.get_menu(env.db, "main")) == MENU
            assert (await I.menu_for_number(env.db, "700")).name == "main"
            with pytest.raises(I.IvrError):
                await I.save_menu(env.db, I.Menu(name="other", number="700"))
            warn = await I.check_references(env.db, I.Menu(name="x", schedule="nope", options={"1": "menu:ghost"}))
            assert len(warn) == 2
            await I.remove_menu(env.db, "info")
            assert [m.name for m in await I.list_menus(env.db)] == ["main"]

    run(go())


# ------------------------------------------------------------------ runtime


def test_navigate_to_an_extension_bridged_recorded_and_counted(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            w, s = await env.call("700")
            assert any(isinstance(c, P.Answer) and c.code == 200 for c in w.commands)
            assert plays(w) == [pr("welcome")]
            await press(w, "3")  # barge-in: the greeting stops, 1001 rings
            o = originates(w)
            assert len(o) == 1 and o[0].uri == "sip:1001@127.0.0.1:5060" and o[0].from_uri == "sip:1009@127.0.0.1"
            assert w.playing["in-1"] == str(env.cm.moh)  # MOH while it rings
            w.inject(P.Ringing(leg=o[0].leg_id))
            w.inject(P.Answered(leg=o[0].leg_id, call_id="x1"))
            await settle()
            assert frozenset(("in-1", o[0].leg_id)) in w.bridges and "in-1" not in w.playing
            assert s.flow is None and s.callee == "1001" and set(w.recording) == {"in-1", o[0].leg_id}
            rec_id = s.rec.id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "answered" and row["extension"] == "1001" and row["answered_at"]
            kinds = [k for k, _ in await env.events(rec_id)]
            assert "ivr" in kinds and "ivr_choice" in kinds and "ivr_dial" in kinds
            c = await env.db.get_caller_row("1009")
            assert c["calls"] == 1 and c["last_outcome"] == "answered"

    run(go())


def test_invalid_then_no_input_then_hangup_is_abandoned_ivr(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            w, s = await env.call("700")
            rec_id = s.rec.id
            w.finish_playback("in-1")
            await settle()
            await press(w, "7")  # no such option: invalid, greeting again
            assert plays(w)[-1] == pr("invalid_choice")
            assert await finish_all_playback(w) == [pr("invalid_choice"), pr("welcome")]
            await asyncio.sleep(0.3)  # no input, retries (1) used up -> goodbye
            await settle()
            assert plays(w)[-1] == pr("thank_you_goodbye")
            w.finish_playback("in-1")
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "abandoned_ivr" and row["hangup_cause"] == "no input"
            kinds = [k for k, _ in await env.events(rec_id)]
            assert kinds.count("ivr_invalid") == 1 and kinds.count("ivr_no_input") == 1

    run(go())


def test_caller_hangs_up_in_menu(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            w, s = await env.call("700")
            rec_id = s.rec.id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "abandoned_ivr" and row["hangup_side"] == "caller"

    run(go())


def test_submenu_info_prompt_back_and_language(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            w, s = await env.call("700")
            await press(w, "9")  # Russian from now on
            assert plays(w)[-1] == pr("welcome", "ru")
            await press(w, "5")  # information prompt, then the menu again
            assert plays(w)[-1] == pr("after_hours", "ru")
            w.finish_playback("in-1")
            await settle()
            assert plays(w)[-1] == pr("welcome", "ru")
            await press(w, "2")  # sub-menu
            assert plays(w)[-1] == pr("call_important", "ru")
            await press(w, "*")  # back to main
            assert plays(w)[-1] == pr("welcome", "ru")
            await press(w, "0")
            assert plays(w)[-1] == pr("thank_you_goodbye", "ru")
            rec_id = s.rec.id
            w.finish_playback("in-1")
            await settle(20)
            assert (await env.cdr(rec_id))["disposition"] == "answered"
            langs = [d for k, d in await env.events(rec_id) if k == "language"]
            assert langs == [{"language": "ru"}]

    run(go())


def test_direct_dial_with_hash(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(
                env,
                I.Menu(name="dd", number="701", direct_dial=True, timeout=1, inter_digit=0.5, options={"1": "hangup"}),
            )
            w, _s = await env.call("701")
            await press(w, "1002#")
            o = originates(w)
            assert [x.uri for x in o] == ["sip:1002@127.0.0.1:5060"]

    run(go())


def test_extension_not_answering_goes_to_its_mailbox_else_back_to_menu(tmp_path):
    async def go():
        async with Env(tmp_path, ring_time=0.1) as env:
            await setup(env)
            w, s = await env.call("700")
            await press(w, "3")
            await asyncio.sleep(0.2)  # rings out: no mailbox -> menu again
            await settle()
            assert plays(w)[-1] == pr("all_staff_busy")
            assert await finish_all_playback(w) == [pr("all_staff_busy"), pr("welcome")]
            assert s.flow is not None
            await V.set_box(env.db, "1001")
            await press(w, "3")
            o = originates(w)[-1]
            w.inject(P.Ended(leg=o.leg_id, cause_code=486, reason="Busy Here"))
            await settle()
            assert plays(w)[-1] == pr("leave_message")

    run(go())


def test_queue_choice_enters_the_acd_in_the_callers_language(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            w, s = await env.call("700")
            await press(w, "9")
            await press(w, "1")
            assert s.rec.queue == "front"
            assert plays(w)[-1] == pr("welcome", "ru")  # the queue's greeting, in Russian
            assert isinstance(env.live.sessions[id(s)], QueueCall)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "abandoned_queue"

    run(go())


def test_after_hours_branch(tmp_path, monkeypatch):
    async def go():
        async with Env(tmp_path) as env:
            await H.set_schedule(env.db, "clinic", "mon-fri 08:00-18:00", "Europe/Paris")
            m = I.Menu(
                name="day",
                number="702",
                schedule="clinic",
                after_hours="play:clinic_closed",
                options={"1": "queue:front"},
            )
            await setup(env, m)
            monkeypatch.setenv(H.FAKE_NOW_ENV, "2026-11-28T10:00")  # a Saturday
            w, s = await env.call("702")
            rec_id = s.rec.id
            assert plays(w) == [pr("clinic_closed")]
            w.finish_playback("in-1")
            await settle()
            assert plays(w)[-1] == pr("thank_you_goodbye")
            w.finish_playback("in-1")
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "after_hours" and "after_hours" in row["flags"]
            monkeypatch.setenv(H.FAKE_NOW_ENV, "2026-11-27T10:00")  # Friday: open
            w, s = await env.call("702", call_id="c2")
            assert plays(w)[-1] == pr("welcome")

    run(go())


# ------------------------------------------------------------------ CLI


def test_cli_ivr(invoke_cli, tmp_config, tmp_path):
    c = ("--config", str(tmp_config))
    for q in ("front", "desk"):  # issue 12: an option's queue must exist
        assert invoke_cli("queue", "add", q, *c).exit_code == 0
    r = invoke_cli(
        "ivr",
        "add",
        "main",
        "--number",
        "700",
        "--greeting",
        "welcome",
        "--option",
        "1=queue:front",
        "--option",
        "2=menu:info",
        "--timeout",
        "4",
        *c,
    )
    assert r.exit_code == 0, r.output
    assert "menu 'info' does not exist" in r.output
    d = json.loads(invoke_cli("ivr", "show", "main", "--json", *c).output)
    assert d["number"] == "700" and d["options"] == {"1": "queue:front", "2": "menu:info"} and d["timeout"] == 4
    text = invoke_cli("ivr", "export", "main", *c).output
    f = tmp_path / "m.toml"
    f.write_text(text.replace('"700"', '"710"').replace('name = "main"', 'name = "copy"'))
    r = invoke_cli("ivr", "import", str(f), *c)
    assert r.exit_code == 0 and "copy" in r.output
    rows = json.loads(invoke_cli("ivr", "list", "--json", *c).output)
    assert [(x["name"], x["number"]) for x in rows] == [("copy", "710"), ("main", "700")]
    assert "main" in invoke_cli("ivr", "list", *c).output
    r = invoke_cli("ivr", "add", "smart", "--known-caller", "queue:desk", "--new-caller", "menu:main", *c)
    assert r.exit_code == 0, r.output
    d = json.loads(invoke_cli("ivr", "show", "smart", "--json", *c).output)
    assert (d["known_caller"], d["new_caller"]) == ("queue:desk", "menu:main")
    assert invoke_cli("ivr", "remove", "smart", *c).exit_code == 0
    r = invoke_cli("ivr", "add", "x", "--option", "1=dance:now", *c)
    assert r.exit_code == 2 and "bad action" in r.output
    assert invoke_cli("ivr", "remove", "copy", *c).exit_code == 0
    r = invoke_cli("ivr", "show", "copy", *c)
    assert r.exit_code == 2 and "unknown IVR menu 'copy'" in r.output  # issue 12: no such object = exit 2


def test_frontline_numbers_are_internal(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            await V.set_box(env.db, "1001", number="801")
            assert env.fl.is_internal("*98") and not env.fl.is_internal("799")
            assert env.fl.is_internal("700")  # not cached yet: read from the database
            await env.fl.reload()  # what the app's change watcher calls on every change
            assert env.fl.is_internal("700") and env.fl.is_internal("801")
            await I.remove_menu(env.db, "main")
            await env.fl.reload()
            assert not env.fl.is_internal("700")

    run(go())


def test_start_destination_for_other_routers(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            await V.set_box(env.db, "1001")
            w, s = await env.call("1001")  # an ordinary call, then handed over
            assert await env.fl.start_destination(s, "ivr:info", answered=True)
            assert plays(w)[-1] == pr("call_important")
            w2, s2 = await env.call("1002", call_id="c2")
            assert await env.fl.start_destination(s2, "voicemail:1001", answered=True)
            assert plays(w2)[-1] == pr("leave_message")
            assert not await env.fl.start_destination(s2, "ivr:ghost")
            assert not await env.fl.start_destination(s2, "fax:1")

    run(go())


def test_known_and_new_callers_routed_differently(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await S.add_queue(env.db, "desk", strategy="longest_idle", ring_timeout=15, wrap_up=0)
            await env.live.sync()
            await setup(
                env,
                I.Menu(
                    name="smart",
                    number="703",
                    known_caller="queue:desk",
                    new_caller="queue:front",
                    options={"1": "hangup"},
                ),
            )
            w, s = await env.call("703", frm="0612345670")
            assert s.rec.queue == "front"  # never called before
            ev = [d for k, d in await env.events(s.rec.id) if k == "caller_lookup"]
            assert ev == [{"number": "0612345670", "known": False, "action": "queue:front"}]
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            w, s = await env.call("703", frm="0612345670", call_id="c2")
            assert s.rec.queue == "desk"  # counted once: returning
            # a caller that is not a phone number (anonymous, an extension) is never "known"
            w, s = await env.call("703", frm="anonymous", call_id="c3")
            assert s.rec.queue == "front"
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            w, s = await env.call("703", frm="anonymous", call_id="c4")
            assert s.rec.queue == "front"

    run(go())


def test_caller_hangs_up_while_the_extension_rings(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await setup(env)
            w, s = await env.call("700")
            await press(w, "3")
            leg = originates(w)[-1].leg_id
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "abandoned_ringing" and leg not in w.legs

    run(go())
