"""Call quality review (pypbx.quality): the checklist, scoring a recorded call, the reviews and
the per-agent report; the ``pypbx quality`` commands and ``pypbx report quality``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pypbx import quality as Q
from pypbx.config import load_config
from pypbx.db import Database, open_db

ITEMS = ["greeted", "identified the patient", "solved the request", "polite"]


async def add_call(
    db: Database, call_id: str, agent: str | None, offered_at: float, *, recorded: bool = True, **extra: object
) -> None:
    row: dict[str, object] = {
        "id": call_id,
        "direction": "inbound",
        "caller_number": "+33612345678",
        "callee_number": "600",
        "queue": "front",
        "agent": agent,
        "extension": None,
        "offered_at": offered_at,
        "answered_at": offered_at + 2,
        "ended_at": offered_at + 30,
        "talk_seconds": 28.0,
        "disposition": "answered",
        "flags": "",
        **extra,
    }
    await db.insert_call(row, (offered_at, "offered", "{}"))
    if recorded:
        await db.upsert_recording(
            {
                "call_id": call_id,
                "path": f"/nonexistent/{call_id}.wav",
                "status": "complete",
                "seconds": 28.0,
                "created_at": offered_at + 31,
                "detail": "{}",
            }
        )


def on_db(make_config: Callable[..., Path], body: Callable[[Database], Any]) -> Path:
    cfg_path = make_config()
    cfg = load_config(cfg_path)

    async def go() -> None:
        async with open_db(cfg.db_path) as db:
            await body(db)

    asyncio.run(go())
    return cfg_path


def test_checklist_set_replaces_in_order_and_refuses_bad_lists(make_config: Callable[..., Path]) -> None:
    async def body(db: Database) -> None:
        assert await Q.get_checklist(db) == []
        assert await Q.set_checklist(db, ITEMS, clock=lambda: 10.0) == ITEMS
        assert await Q.set_checklist(db, ["polite", "  greeted   warmly "], clock=lambda: 20.0) == [
            "polite",
            "greeted warmly",
        ]
        for bad, msg in (
            ([], "at least one"),
            (["a", "A"], "given twice"),
            ([""], "cannot be empty"),
            (["x" * 81], "too long"),
            ([str(i) for i in range(21)], "at most 20"),
        ):
            with pytest.raises(Q.QualityError, match=msg):
                await Q.set_checklist(db, bad)
        assert await Q.get_checklist(db) == ["polite", "greeted warmly"]

    on_db(make_config, body)


def test_score_a_recorded_call_keeps_the_labels_asked_and_replaces_a_rescore(make_config: Callable[..., Path]) -> None:
    async def body(db: Database) -> None:
        with pytest.raises(Q.QualityError, match="no quality checklist"):
            Q.parse_answers([], {})
        await Q.set_checklist(db, ITEMS)
        await add_call(db, "call-aaaaaaaa", "alice", 1000.0)
        await add_call(db, "call-bbbbbbbb", "bob", 2000.0, recorded=False)
        answers = {"greeted": True, "identified the patient": "yes", "solved the request": "no", "polite": 1}
        r = await Q.score_call(db, "call-aaaa", answers, "sup", " kind but slow ", clock=lambda: 5000.0)
        assert (r["call_id"], r["agent"], r["reviewer"], r["comment"]) == (
            "call-aaaaaaaa",
            "alice",
            "sup",
            "kind but slow",
        )
        assert (r["yes"], r["items"], r["score"]) == (3, 4, 0.75)
        assert [a["ok"] for a in r["answers"]] == [True, True, False, True]
        # the answers in the checklist's order, as a list
        r2 = await Q.score_call(db, "call-aaaaaaaa", ["yes", "yes", "yes", "yes"], "boss", clock=lambda: 6000.0)
        assert (r2["yes"], r2["reviewer"]) == (4, "boss")
        assert [x["reviewer"] for x in await Q.list_reviews(db)] == ["boss"]  # replaced, not added
        # a changed checklist: the old review keeps its labels
        await Q.set_checklist(db, ["polite"])
        old = await Q.get_review(db, "call-aaaaaaaa")
        assert old is not None and [a["item"] for a in old["answers"]] == ITEMS
        with pytest.raises(Q.QualityNotFound, match="no recording"):
            await Q.score_call(db, "call-bbbbbbbb", {"polite": True}, "sup")
        with pytest.raises(Q.QualityNotFound, match="no call"):
            await Q.score_call(db, "nope", {"polite": True}, "sup")
        await add_call(db, "call-aaaazzzz", "alice", 3000.0)
        with pytest.raises(Q.QualityError, match="ambiguous"):
            await Q.score_call(db, "call-aaaa", {"polite": True}, "sup")
        for bad, msg in (
            ({}, "missing: 'polite'"),
            ({"polite": True, "fast": True}, "not on the checklist: 'fast'"),
            ({"polite": "maybe"}, "answer yes or no for 'polite'"),
            (["yes", "no"], "has 1 items, got 2"),
        ):
            with pytest.raises(Q.QualityError, match=msg):
                await Q.score_call(db, "call-aaaaaaaa", bad, "sup")

    on_db(make_config, body)


def test_quality_report_per_agent_and_item(make_config: Callable[..., Path]) -> None:
    async def body(db: Database) -> None:
        await Q.set_checklist(db, ["greeted", "polite"])
        await add_call(db, "c1", "alice", 1000.0)
        await add_call(db, "c2", "alice", 2000.0)
        await add_call(db, "c3", "bob", 3000.0)
        await add_call(db, "c4", "bob", 9000.0)
        await Q.score_call(db, "c1", [True, True], "sup", clock=lambda: 10_000.0)
        await Q.score_call(db, "c2", [False, True], "sup", clock=lambda: 10_001.0)
        await Q.score_call(db, "c3", [False, False], "sup", clock=lambda: 10_002.0)
        await Q.score_call(db, "c4", [True, True], "sup", clock=lambda: 10_003.0)
        r = await Q.quality_report(db, 0.0, 5000.0)  # c4 is outside the period
        assert (r["reviews"], r["score"], r["checklist"]) == (3, round((1 + 0.5 + 0) / 3, 4), ["greeted", "polite"])
        alice, bob = r["agents"]
        assert (alice["agent"], alice["reviews"], alice["score"], alice["last_reviewed_at"]) == (
            "alice",
            2,
            0.75,
            10_001.0,
        )
        assert alice["items"] == [
            {"item": "greeted", "answered": 2, "yes": 1, "rate": 0.5},
            {"item": "polite", "answered": 2, "yes": 2, "rate": 1.0},
        ]
        assert (bob["agent"], bob["reviews"], bob["score"]) == ("bob", 1, 0.0)
        assert [x["call_id"] for x in await Q.list_reviews(db, agent="bob")] == ["c4", "c3"]
        empty = await Q.quality_report(db, 50_000.0, 60_000.0)
        assert (empty["reviews"], empty["score"], empty["agents"]) == (0, None, [])

    on_db(make_config, body)


def test_quality_cli_checklist_score_show_list_and_report(
    make_config: Callable[..., Path], invoke_cli: Callable[..., Any]
) -> None:
    async def body(db: Database) -> None:
        await add_call(db, "call-cli-000001", "alice", 1_700_000_000.0)

    cfg = str(on_db(make_config, body))
    r = invoke_cli("quality", "checklist", "show", "--config", cfg)
    assert r.exit_code == 0 and "No quality checklist yet" in r.output
    r = invoke_cli("quality", "checklist", "set", *ITEMS, "--config", cfg)
    assert r.exit_code == 0 and "4. polite" in r.output
    r = invoke_cli("quality", "checklist", "show", "--json", "--config", cfg)
    assert json.loads(r.output) == ITEMS
    r = invoke_cli(
        "quality", "score", "call-cli", "--answers", "yes,yes,no,yes", "--comment", "ok", "--reviewer", "sup",
        "--config", cfg,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "3/4 (75 %)" in r.output and "[ ] solved the request" in r.output and "Comment: ok" in r.output
    shown = json.loads(invoke_cli("quality", "show", "call-cli-000001", "--json", "--config", cfg).output)
    assert (shown["reviewer"], shown["score"]) == ("sup", 0.75)
    listed = json.loads(invoke_cli("quality", "list", "--agent", "alice", "--json", "--config", cfg).output)
    assert [x["call_id"] for x in listed] == ["call-cli-000001"]
    rep = json.loads(invoke_cli("report", "quality", "--json", "--config", cfg).output)
    assert (rep["reviews"], rep["agents"][0]["agent"], rep["agents"][0]["score"]) == (1, "alice", 0.75)
    text = invoke_cli("report", "quality", "--config", cfg).output
    assert "Reviewed calls 1, mean score 75 %" in text and "identified the patient" in text
    assert "No reviewed calls" in invoke_cli("report", "quality", "--date", "today", "--config", cfg).output


def test_quality_cli_bad_input_is_one_line(make_config: Callable[..., Path], invoke_cli: Callable[..., Any]) -> None:
    async def body(db: Database) -> None:
        await add_call(db, "call-cli-000002", "alice", 1000.0)

    cfg = str(on_db(make_config, body))
    for args, msg in (
        (["quality", "checklist", "set"], "at least one item"),
        (["quality", "score", "call-cli-000002", "--answers", "yes"], "no quality checklist yet"),
        (["quality", "show", "nope-nope"], "no call 'nope-nope'"),
    ):
        r = invoke_cli(*args, "--config", cfg)
        lines = r.output.strip().splitlines()
        assert r.exit_code in (1, 2), r.output
        assert len(lines) == 1 and lines[0].startswith("Error: ") and msg in lines[0], r.output
