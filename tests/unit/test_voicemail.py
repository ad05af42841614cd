"""pypbx.voicemail: leaving a message (greeting, beep, record until # / max length / hang-up),
filing (folder per day, JSON sidecar, row), mailbox numbers, no answer -> mailbox, *98, the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media import protocol as P
from pypbx import voicemail as V
from tests.unit._frontline_env import Env, plays, pr, press, settle


def run(coro):
    return asyncio.run(coro)


def write_wav(path: str, seconds: float, rate: int = 16000) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (np.sin(np.arange(int(seconds * rate)) / 5) * 8000).astype(np.int16), rate, subtype="PCM_16")


async def to_beep(w) -> None:
    assert plays(w)[-1] == pr("leave_message")
    w.finish_playback("in-1")
    await settle()
    assert plays(w)[-1] == str(V.BEEP)
    w.finish_playback("in-1")
    await settle()


def test_leave_a_message_by_mailbox_number_stop_on_hash(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await V.set_box(env.db, "1001", number="801")
            w, s = await env.call("801")
            rec_id = s.rec.id
            assert any(isinstance(c, P.Answer) and c.code == 200 for c in w.commands)
            await to_beep(w)
            path = w.recording["in-1"]
            assert "/voicemail/1001/.incoming/" in path
            write_wav(path, 2.5)
            await press(w, "#")
            assert plays(w)[-1] == pr("thank_you_goodbye")
            [m] = await V.list_messages(env.db, "1001")
            assert m["caller"] == "1009" and m["did"] == "801" and m["call_id"] == rec_id and not m["heard"]
            assert m["seconds"] == pytest.approx(2.5, abs=0.01)
            p = Path(m["path"])
            assert p.exists() and p.parent.parent.name == "1001" and p.parent.name.count("-") == 2
            side = json.loads(p.with_suffix(".json").read_text())
            assert side["caller"] == "1009" and side["seconds"] == m["seconds"] and side["did"] == "801"
            w.finish_playback("in-1")
            await settle(20)
            row = await env.cdr(rec_id)
            assert row["disposition"] == "voicemail" and m["id"] in row["hangup_cause"]

    run(go())


def test_hangup_while_recording_files_the_message_and_max_length(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await V.set_box(env.db, "1001", number="801", max_seconds=1)
            w, s = await env.call("801")
            await to_beep(w)
            write_wav(w.recording["in-1"], 0.8)
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))  # record_stopped follows
            await settle(20)
            [m] = await V.list_messages(env.db)
            assert m["seconds"] == pytest.approx(0.8, abs=0.01)
            row = await env.cdr(s.rec.id)
            assert row["disposition"] == "voicemail" and row["hangup_side"] == "caller"
            # max length: stops by itself
            w, s = await env.call("801", call_id="c2")
            await to_beep(w)
            write_wav(w.recording["in-1"], 1.0)
            await asyncio.sleep(1.1)
            await settle()
            assert plays(w)[-1] == pr("thank_you_goodbye")
            kinds = [(k, d.get("reason")) for k, d in await env.events(s.rec.id) if k == "voicemail_stop"]
            assert kinds == [("voicemail_stop", "max length")]
            assert len(await V.list_messages(env.db, "1001")) == 2

    run(go())


def test_hangup_before_the_beep_is_no_message(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await V.set_box(env.db, "1001", number="801")
            w, s = await env.call("801")
            w.inject(P.Ended(leg="in-1", cause_code=200, reason="BYE"))
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "abandoned_ivr"
            assert await V.list_messages(env.db) == []

    run(go())


def test_unanswered_extension_goes_to_its_mailbox_when_asked(tmp_path):
    async def go():
        async with Env(tmp_path, ring_time=0.1) as env:
            await V.set_box(env.db, "1001", on_no_answer=True)
            w, s = await env.call("1001")
            assert s.callee_leg == "callee"
            await asyncio.sleep(0.15)  # rings out
            await settle()
            assert plays(w)[-1] == pr("leave_message") and "callee" not in w.legs
            assert any(isinstance(c, P.Answer) and c.leg == "in-1" and c.code == 200 for c in w.commands)
            await to_beep(w)
            write_wav(w.recording["in-1"], 1.0)
            await press(w, "#")
            w.finish_playback("in-1")
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "voicemail"
            # busy: the same; a box without on_no_answer: the ordinary busy
            env.cm.ring_time = 60
            w, s = await env.call("1001", call_id="c2")
            w.inject(P.Ended(leg="callee", cause_code=486, reason="Busy Here"))
            await settle()
            assert plays(w)[-1] == pr("leave_message")
            await V.set_box(env.db, "1002")
            w, s = await env.call("1002", call_id="c3")
            w.inject(P.Ended(leg="callee", cause_code=486, reason="Busy Here"))
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "busy"

    run(go())


def test_not_registered_extension_to_mailbox(tmp_path):
    async def go():
        async with Env(tmp_path, registered=lambda n: False) as env:
            await V.set_box(env.db, "1001", on_no_answer=True)
            w, _s = await env.call("1001")
            assert plays(w)[-1] == pr("leave_message")

    run(go())


def test_star98_plays_new_messages_and_marks_them_heard(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            await V.set_box(env.db, "1009")
            src = tmp_path / "a.wav"
            write_wav(str(src), 0.5)
            m = await V.file_message(
                env.db, tmp_path, "1009", src, caller="555", did=None, call_id=None, received_at=1000.0
            )
            w, s = await env.call("*98")
            assert plays(w)[-1] == m["path"]
            w.finish_playback("in-1")
            await settle()
            assert plays(w)[-1] == pr("thank_you_goodbye")
            assert (await V.get_message(env.db, m["id"]))["heard"]
            w.finish_playback("in-1")
            await settle(20)
            assert (await env.cdr(s.rec.id))["disposition"] == "answered"

    run(go())


def test_store_heard_delete(tmp_path):
    async def go():
        async with Env(tmp_path) as env:
            with pytest.raises(V.VoicemailError):
                await V.set_box(env.db, "bad box")
            await V.set_box(env.db, "front", number="802")
            with pytest.raises(V.VoicemailError):
                await V.set_box(env.db, "other", number="802")
            m = await V.file_message(
                env.db, tmp_path, "front", None, caller="1", did="d", call_id="x", received_at=1000.0
            )
            assert m["flags"] == ["no_audio"] and m["seconds"] == 0
            assert (await V.mark_heard(env.db, m["id"][:8]))["heard"]
            await V.delete_message(env.db, m["id"])
            assert await V.list_messages(env.db) == []
            with pytest.raises(V.VoicemailError):
                await V.get_message(env.db, m["id"])
            assert (await V.list_boxes(env.db))[0]["box"] == "front"

    run(go())


def test_cli_voicemail(invoke_cli, tmp_config, tmp_path):
    from pypbx.config import load_config
    from pypbx.db import open_db

    c = ("--config", str(tmp_config))
    assert invoke_cli("ext", "add", "1001", *c).exit_code == 0  # issue 12: --on-no-answer needs the extension
    r = invoke_cli("voicemail", "box", "1001", "--number", "801", "--on-no-answer", "--max-seconds", "60", *c)
    assert r.exit_code == 0 and "on no answer yes" in r.output, r.output
    cfg = load_config(tmp_config)
    src = tmp_path / "a.wav"
    write_wav(str(src), 1.5)

    async def put():
        async with open_db(cfg.db_path) as db:
            return await V.file_message(
                db, cfg.data_dir, "1001", src, caller="555", did="801", call_id="x", received_at=1000.0
            )

    m = asyncio.run(put())
    rows = json.loads(invoke_cli("voicemail", "list", "1001", "--json", *c).output)
    assert [x["id"] for x in rows] == [m["id"]] and rows[0]["seconds"] == pytest.approx(1.5)
    assert "NEW" in invoke_cli("voicemail", "list", *c).output
    assert invoke_cli("voicemail", "play", m["id"], *c).output.strip() == m["path"]
    assert invoke_cli("voicemail", "heard", m["id"], *c).exit_code == 0
    assert json.loads(invoke_cli("voicemail", "list", "--json", *c).output)[0]["heard"] is True
    boxes = json.loads(invoke_cli("voicemail", "boxes", "--json", *c).output)
    assert boxes[0]["box"] == "1001" and boxes[0]["messages"] == 1 and boxes[0]["new"] == 0
    assert invoke_cli("voicemail", "delete", m["id"], *c).exit_code == 0
    assert not Path(m["path"]).exists()
    r = invoke_cli("voicemail", "play", m["id"], *c)
    assert r.exit_code == 2 and "no voicemail message" in r.output  # issue 12: no such object = exit 2
