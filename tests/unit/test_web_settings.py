"""The settings pages' API (pypbx.web.settings): admins only, CSRF, audited; each change goes
through the library the CLI uses, and a refused value answers ``{"error", "field"}`` with the
CLI's one-line message (did-you-mean included). In-process: aiohttp's test server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pypbx import acdstore
from pypbx import extensions as E
from pypbx import hours as Hr
from pypbx import missed as M
from pypbx.errors import PbxError
from pypbx.web import accounts as A
from pypbx.web import security as S
from tests.unit.test_web import PW, cheap_hashes, csrf_of, desk, login  # noqa: F401 - cheap_hashes: autouse


def run(make_config: Callable[..., Path], body: Callable[[TestClient, Any], Awaitable[None]]) -> None:
    async def go() -> None:
        async with desk(make_config()) as (client, ctx):
            await body(client, ctx)

    asyncio.run(go())


async def admin(client: TestClient) -> dict[str, str]:
    assert (await login(client, "boss")).status == 302
    return {S.CSRF_HEADER: await csrf_of(client)}


async def post(client: TestClient, h: dict[str, str], path: str, body: dict[str, object]) -> tuple[int, Any]:
    r = await client.post(path, json=body, headers=h)
    return r.status, await r.json()


def cli_message(fn: Callable[[], object]) -> str:
    """The message the library (so the CLI) gives for the same bad value."""
    with pytest.raises(PbxError) as exc:
        fn()
    return str(exc.value)


async def lib_message(op: Awaitable[object]) -> str:
    try:
        await op
    except PbxError as exc:
        return str(exc)
    raise AssertionError("the library accepted it")


# --------------------------------------------------------------------------- extensions


def test_admin_adds_an_extension_and_sees_its_password_once(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await admin(client)
        status, data = await post(client, h, "/api/v1/settings/extensions", {"number": "1006", "name": "Reception"})
        assert status == 200, data
        pw = data["password"]
        assert len(pw) >= 16 and data["number"] == "1006" and data["realm"] == ctx.cfg.sip.realm
        row = await ctx.db.get_extension_row("1006")
        assert row is not None and row["ha1_md5"] == E.ha1("1006", ctx.cfg.sip.realm, pw)
        listed = await (await client.get("/api/v1/settings/extensions")).json()
        assert sorted((e["number"], e["name"]) for e in listed) == [
            ("1006", "Reception"),
            ("201", "Desk 201"),
            ("202", "Desk 202"),
        ]
        assert (
            all("password" not in e for e in listed)
            and pw not in await (await client.get("/settings/extensions")).text()
        )
        # a new password: the old one no longer works
        status, data = await post(client, h, "/api/v1/settings/extensions/1006/password", {})
        assert status == 200 and data["password"] != pw
        row = await ctx.db.get_extension_row("1006")
        assert row is not None and row["ha1_md5"] == E.ha1("1006", ctx.cfg.sip.realm, data["password"])
        audit = [(a["who"], a["action"], a["target"], a["ok"]) for a in await A.list_audit(ctx.db)]
        assert ("boss", "settings.ext.add", "1006", True) in audit
        assert ("boss", "settings.ext.passwd", "1006", True) in audit
        assert not any(pw in (a["detail"] or "") for a in await A.list_audit(ctx.db))

    run(make_config, body)


def test_a_wrong_extension_is_one_line_next_to_its_field(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await admin(client)
        status, data = await post(client, h, "/api/v1/settings/extensions", {"number": "12ab", "name": "x"})
        assert status == 400
        assert data == {"field": "number", "error": cli_message(lambda: E.validate_number("12ab"))}
        assert data["error"] == "bad extension number '12ab': expected 2-8 digits"
        status, data = await post(client, h, "/api/v1/settings/extensions", {"number": "201", "name": "x"})
        assert (status, data) == (400, {"field": "number", "error": "extension 201 already exists"})
        status, data = await post(client, h, "/api/v1/settings/extensions", {"number": "112"})
        assert status == 400 and data["field"] == "number" and "emergency number" in data["error"]
        status, data = await post(client, h, "/api/v1/settings/extensions", {"number": "1007", "name": 'a "b"'})
        assert (status, data["field"]) == (400, "name") and "quotes" in data["error"]
        status, data = await post(client, h, "/api/v1/settings/extensions/9999/password", {})
        assert (status, data["field"]) == (400, "number") and "not found" in data["error"]
        refused = [(a["action"], a["target"]) for a in await A.list_audit(ctx.db) if not a["ok"]]
        assert ("settings.ext.add", "12ab") in refused and ("settings.ext.passwd", "9999") in refused
        assert await ctx.db.get_extension_row("1007") is None

    run(make_config, body)


# --------------------------------------------------------------------------- admins only, CSRF


def test_settings_are_for_admins_only_and_need_the_csrf_token(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "sup")).status == 302
        h = {S.CSRF_HEADER: await csrf_of(client)}
        for path in ("/api/v1/settings/extensions", "/api/v1/settings/queues", "/api/v1/settings/hours"):
            assert (await client.get(path)).status == 403
        status, _ = await post(client, h, "/api/v1/settings/extensions", {"number": "1010"})
        assert status == 403
        assert (await client.get("/settings/extensions", allow_redirects=False)).status == 403
        assert "/settings" not in await (await client.get("/board")).text()  # not in a supervisor's menu
        client.session.cookie_jar.clear()
        h = await admin(client)
        assert 'href="/settings"' in await (await client.get("/board")).text()
        r = await client.post("/api/v1/settings/extensions", json={"number": "1010"})  # no CSRF header
        assert r.status == 403
        assert await ctx.db.get_extension_row("1010") is None
        assert (await client.get("/settings", allow_redirects=False)).headers["Location"] == "/settings/extensions"
        for section in ("extensions", "agents", "hours", "queues"):
            page = await client.get(f"/settings/{section}")
            assert page.status == 200, section
            assert '<meta name="csrf"' in await page.text()

    run(make_config, body)


# --------------------------------------------------------------------------- agents


def test_agent_skills_and_the_queues_they_answer(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await acdstore.add_queue(ctx.db, "korean", skills="korean:5")
        await acdstore.add_queue(ctx.db, "front")
        h = await admin(client)
        agents = {a["id"]: a for a in await (await client.get("/api/v1/settings/agents")).json()}
        assert agents["alice"]["queues"] == ["front"]
        status, data = await post(client, h, "/api/v1/settings/agents/alice/skills", {"skills": "korean:7"})
        assert status == 200 and data["skills"] == "korean:7" and data["queues"] == ["front", "korean"]
        assert (await acdstore.get_agent(ctx.db, "alice")).skills == {"korean": 7}
        status, data = await post(client, h, "/api/v1/settings/agents/alice/skills", {"skills": "korean:11"})
        assert status == 400
        assert data == {"field": "skills", "error": cli_message(lambda: acdstore.parse_skills("korean:11"))}
        status, data = await post(client, h, "/api/v1/settings/agents/nobody/skills", {"skills": ""})
        assert (status, data) == (400, {"field": "agent", "error": "agent nobody not found"})
        page = await (await client.get("/settings/agents")).text()
        assert 'value="korean:7"' in page

    run(make_config, body)


# --------------------------------------------------------------------------- opening hours


def test_opening_hours_and_holidays(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        h = await admin(client)
        week = "mon-fri 08:00-12:00 13:30-18:00, sat 09:00-12:00"
        status, data = await post(client, h, "/api/v1/settings/hours/clinic", {"week": week, "tz": "Europe/Paris"})
        assert status == 200 and data["tz"] == "Europe/Paris"
        s = await Hr.get_schedule(ctx.db, "clinic")
        assert Hr.format_week(s.week) == Hr.format_week(Hr.parse_week(week))
        status, data = await post(client, h, "/api/v1/settings/hours/clinic", {"week": "mon 18:00-08:00"})
        assert status == 400 and data == {
            "field": "week",
            "error": cli_message(lambda: Hr.parse_week("mon 18:00-08:00")),
        }
        status, data = await post(client, h, "/api/v1/settings/hours/clinic", {"week": week, "tz": "Europe/Pariss"})
        assert (status, data) == (
            400,
            {"field": "tz", "error": "unknown time zone 'Europe/Pariss' (e.g. Europe/Paris)"},
        )
        path = "/api/v1/settings/hours/clinic/holidays"
        status, _ = await post(client, h, path, {"date": "2026-12-25", "ranges": ""})
        assert status == 200
        status, _ = await post(client, h, path, {"date": "2026-12-24", "ranges": "08:00-12:00"})
        assert status == 200
        assert (await Hr.get_schedule(ctx.db, "clinic")).to_dict()["exceptions"] == {
            "2026-12-24": ["08:00-12:00"],
            "2026-12-25": [],
        }
        status, data = await post(client, h, path, {"date": "2026-13-01"})
        assert status == 400 and data["field"] == "date"
        assert data["error"] == await lib_message(Hr.add_exception(ctx.db, "clinic", "2026-13-01"))
        status, _ = await post(client, h, path, {"date": "2026-12-25", "remove": True})
        assert status == 200
        assert list((await Hr.get_schedule(ctx.db, "clinic")).exceptions) == ["2026-12-24"]
        page = await (await client.get("/settings/hours")).text()
        assert "Dec 24, 2026" in page  # Babel's medium date (English)

    run(make_config, body)


# --------------------------------------------------------------------------- queues


def test_queue_overflow_and_callbacks(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await acdstore.add_queue(ctx.db, "front")
        await acdstore.add_queue(ctx.db, "nurses")
        await Hr.set_schedule(ctx.db, "clinic", "mon-fri 08:00-18:00", "Europe/Paris")
        h = await admin(client)
        change = {
            "overflow_after": "45",
            "overflow_to": "queue:nurses",
            "callback_allowed": False,
            "auto_callback": True,
            "callback_max_attempts": "5",
            "callback_retry_delay": "300",
            "callback_hours": "clinic",
        }
        status, data = await post(client, h, "/api/v1/settings/queues/front", change)
        assert status == 200, data
        cfg = (await acdstore.get_queue(ctx.db, "front")).config
        assert cfg.overflow is not None and cfg.overflow.after == 45 and cfg.overflow.target.target == "nurses"
        assert (cfg.callback_allowed, cfg.callback_max_attempts, cfg.callback_retry_delay) == (False, 5, 300)
        cb = (await M.queue_callback_settings(ctx.db))["front"]
        assert (cb["auto_callback"], cb["callback_hours"]) == (True, "clinic")
        # a wrong value: one line next to its field, nothing changed
        status, data = await post(client, h, "/api/v1/settings/queues/front", {**change, "overflow_to": "queue:nurse"})
        assert (status, data["field"]) == (400, "overflow_to")
        assert data["error"] == "unknown queue 'nurse' (did you mean nurses?)"
        status, data = await post(client, h, "/api/v1/settings/queues/front", {**change, "callback_hours": "clinik"})
        assert (status, data) == (
            400,
            {"field": "callback_hours", "error": "unknown schedule 'clinik' (did you mean clinic?)"},
        )
        status, data = await post(client, h, "/api/v1/settings/queues/front", {**change, "callback_max_attempts": "50"})
        assert (status, data) == (
            400,
            {"field": "callback_max_attempts", "error": "bad callback attempts 50: expected 1-20"},
        )
        status, data = await post(client, h, "/api/v1/settings/queues/front", {**change, "overflow_after": "soon"})
        assert status == 400 and data["field"] == "overflow_after" and "overflow after" in data["error"]
        status, data = await post(client, h, "/api/v1/settings/queues/front", {**change, "overflow_to": "queue:front"})
        assert (status, data) == (400, {"field": "overflow_to", "error": "queue front cannot overflow to itself"})
        cfg = (await acdstore.get_queue(ctx.db, "front")).config
        assert cfg.overflow is not None and cfg.overflow.after == 45 and cfg.callback_max_attempts == 5
        # empty destination: no overflow
        status, data = await post(client, h, "/api/v1/settings/queues/front", {**change, "overflow_to": ""})
        assert status == 200 and data["overflow_to"] == "" and data["overflow_after"] is None
        assert (await acdstore.get_queue(ctx.db, "front")).config.overflow is None
        page = await (await client.get("/settings/queues")).text()
        assert 'value="queue:nurses"' in page  # a suggestion in the destinations list
        audit = [(a["action"], a["target"], a["ok"]) for a in await A.list_audit(ctx.db)]
        assert ("settings.queue.edit", "front", True) in audit and ("settings.queue.edit", "front", False) in audit

    run(make_config, body)


# --------------------------------------------------------------------------- the page language


def test_a_user_changes_their_language_on_the_page(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "sup")).status == 302
        token = await csrf_of(client)
        page = await (await client.get("/board")).text()
        assert '<html lang="en">' in page and 'id="lang-select"' in page
        r = await client.post("/locale", data={"csrf": token, "locale": "fr", "next": "/board"}, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (302, "/board")
        assert (await A.get_user(ctx.db, "sup")).locale == "fr"
        page = await (await client.get("/board")).text()
        assert '<html lang="fr">' in page and "Tableau mural" in page and "Se déconnecter" in page
        r = await client.post("/locale", data={"csrf": token, "locale": "klingon"}, allow_redirects=False)
        assert r.status == 400 and "unknown language 'klingon'" in await r.text()
        r = await client.post("/locale", data={"locale": "ko"}, allow_redirects=False)  # no CSRF token
        assert r.status == 403
        assert (await A.get_user(ctx.db, "sup")).locale == "fr"
        assert any(a["action"] == "user.locale" and a["detail"] == "fr" for a in await A.list_audit(ctx.db))

    run(make_config, body)


def test_a_tv_url_chooses_its_language_and_the_language_form_never_redirects_away(
    make_config: Callable[..., Path],
) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        _rec, token = await A.add_token(ctx.db, "wallboard", name="TV")
        text = await (await client.get(f"/board?token={token}&lang=zh")).text()
        assert '<html lang="zh">' in text and "看板" in text
        text = await (await client.get(f"/board?token={token}&lang=xx")).text()
        assert '<html lang="en">' in text
        h = await admin(client)
        for target in ("//evil.example/", "/\\\\evil.example/", "https://evil.example/"):
            r = await client.post(
                "/locale", data={"csrf": h[S.CSRF_HEADER], "locale": "ru", "next": target}, allow_redirects=False
            )
            assert (r.status, r.headers["Location"]) == (302, "/"), target

    run(make_config, body)


def test_the_queue_page_shows_durations_in_the_users_language(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await acdstore.add_queue(ctx.db, "front", callback_retry_delay=300)
        await A.add_user(ctx.db, "kim", "admin", password=PW, locale="ko")
        assert (await login(client, "kim")).status == 302
        text = await (await client.get("/settings/queues")).text()
        assert '<html lang="ko">' in text and "(5분)" in text and "대기열" in text

    run(make_config, body)
