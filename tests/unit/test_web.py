"""The web desk's foundation (pypbx.web): accounts, sessions, CSRF, lockout, roles, tokens,
the audit log, the route table (no route answers anonymously; the OpenAPI paths are the
router's) and the event stream over SSE. In-process: aiohttp's test server on a real socket."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pypbx import acdstore
from pypbx import events as E
from pypbx import missed as M
from pypbx.config import ConfigError, load_config
from pypbx.db import open_db
from pypbx.extensions import add_extension
from pypbx.web import accounts as A
from pypbx.web import security as S
from pypbx.web.openapi import spec
from pypbx.web.routes import PUBLIC
from pypbx.web.server import SPECS, build_app, make_context

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its smallest cost: the same code, a fraction of the time (the tests hash a lot)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(A, "_HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@asynccontextmanager
async def desk(config: Path) -> AsyncIterator[tuple[TestClient, Any]]:
    cfg = load_config(config)
    async with open_db(cfg.db_path) as db:
        await add_extension(db, "201", "Desk 201", cfg.sip.realm, "secret201-long")
        await add_extension(db, "202", "Desk 202", cfg.sip.realm, "secret202-long")
        await acdstore.add_agent(db, "alice", "Alice")
        await acdstore.add_agent(db, "bob", "Bob")
        await acdstore.login(db, "alice", "201")
        await acdstore.login(db, "bob", "202")
        for name, role, agent in (
            ("boss", "admin", None),
            ("sup", "supervisor", None),
            ("alice", "agent", "alice"),
            ("tv", "wallboard", None),
        ):
            await A.add_user(db, name, role, agent_id=agent, password=PW)
        bus = E.EventBus(clock=lambda: 1000.0)
        ctx = make_context(cfg, db, bus, worklist=M.Worklist(db, bus))
        app = build_app(ctx)
        async with TestClient(TestServer(app)) as client:
            yield client, ctx


async def login(client: TestClient, name: str, password: str = PW) -> Any:
    page = await client.get("/login")
    assert page.status == 200
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    return await client.post(
        "/login", data={"name": name, "password": password, "csrf": token.group(1)}, allow_redirects=False
    )


async def csrf_of(client: TestClient) -> str:
    page = await client.get("/board")
    m = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert m is not None
    return m.group(1)


def run(make_config: Callable[..., Path], body: Callable[[TestClient, Any], Awaitable[None]]) -> None:
    async def go() -> None:
        async with desk(make_config()) as (client, ctx):
            await body(client, ctx)

    asyncio.run(go())


# --------------------------------------------------------------------------- accounts


def test_login_sets_a_signed_httponly_strict_cookie(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        r = await login(client, "sup")
        assert r.status == 302 and r.headers["Location"] == "/"
        cookie = r.headers["Set-Cookie"]
        assert "pypbx_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # no TLS here
        me = await client.get("/api/v1/me")
        assert await me.json() == {"name": "sup", "role": "supervisor", "agent": None, "via": "session"}
        # a forged cookie is nobody
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({S.SESSION_COOKIE: "1.1.x.forged"})
        assert (await client.get("/api/v1/me")).status == 401

    run(make_config, body)


def test_wrong_password_is_refused_logged_for_fail2ban_and_audited(
    make_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        with caplog.at_level(logging.WARNING, logger="pypbx.web.accounts"):
            r = await login(client, "sup", "wrong password")
        assert r.status == 401
        assert "wrong user name or password" in await r.text()
        # the SIP side's fail2ban filter (sip/guard.py) matches the line
        assert any(
            re.match(r'^.*SECURITY auth-failed ip=127\.0\.0\.1 user="sup" method=HTTP$', m) for m in caplog.messages
        )
        lines = await A.list_audit(ctx.db)
        assert [(a["who"], a["action"], a["ok"]) for a in lines if a["action"] == "login"] == [("sup", "login", False)]

    run(make_config, body)


def test_ten_wrong_passwords_lock_the_login(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        for _ in range(10):
            assert (await login(client, "alice", "not the password")).status == 401
        r = await login(client, "alice")  # the right password, but locked
        assert r.status == 401
        assert "locked" in await r.text()
        users = {u.name: u for u in await A.list_users(ctx.db)}
        assert users["alice"].to_dict()["locked"] is True
        await A.set_password(ctx.db, "alice", PW)  # an admin's passwd unlocks
        assert (await login(client, "alice")).status == 302

    run(make_config, body)


def test_login_attempts_are_rate_limited_per_address(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        ctx.login_limit = S.RateLimit(count=3, window=60)
        codes = [(await login(client, "nobody", "x")).status for _ in range(4)]
        assert codes == [401, 401, 401, 429]

    run(make_config, body)


def test_a_password_change_ends_the_sessions(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "sup")).status == 302
        assert (await client.get("/api/v1/me")).status == 200
        await asyncio.sleep(0.01)
        await A.set_password(ctx.db, "sup", "another password")
        assert (await client.get("/api/v1/me")).status == 401

    run(make_config, body)


# --------------------------------------------------------------------------- CSRF


def test_forms_and_session_api_calls_need_the_csrf_token(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        page = await client.get("/login")
        assert page.status == 200
        r = await client.post("/login", data={"name": "sup", "password": PW}, allow_redirects=False)
        assert r.status == 403  # the login form without its token
        assert (await login(client, "sup")).status == 302
        r = await client.post("/api/v1/agents/bob/pause", json={"reason": "lunch"})
        assert r.status == 403 and "CSRF" in (await r.json())["error"]
        r = await client.post("/logout", data={}, allow_redirects=False)
        assert r.status == 403
        token = await csrf_of(client)
        r = await client.post("/api/v1/agents/bob/pause", json={"reason": "lunch"}, headers={S.CSRF_HEADER: token})
        assert r.status == 200 and (await r.json())["state"] == "paused"
        assert any(a["action"] == "csrf.refused" and not a["ok"] for a in await A.list_audit(ctx.db))
        r = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert r.status == 302
        assert (await client.get("/api/v1/me")).status == 401

    run(make_config, body)


# --------------------------------------------------------------------------- roles


def test_roles_wallboard_sees_the_board_only_agent_acts_on_itself(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "tv")).headers["Location"] == "/board"
        token = await csrf_of(client)
        h = {S.CSRF_HEADER: token}
        assert (await client.get("/board")).status == 200
        assert (await client.get("/api/v1/board")).status == 200
        assert (await client.post("/api/v1/agents/alice/pause", json={}, headers=h)).status == 403
        for path in ("/api/v1/queues", "/api/v1/agents", "/api/v1/missed", "/api/v1/calls", "/api/v1/reports/summary"):
            assert (await client.get(path)).status == 403, path

        client.session.cookie_jar.clear()
        assert (await login(client, "alice")).status == 302
        h = {S.CSRF_HEADER: await csrf_of(client)}
        assert [a["id"] for a in await (await client.get("/api/v1/agents")).json()] == ["alice"]
        assert (await client.post("/api/v1/agents/bob/pause", json={}, headers=h)).status == 403
        r = await client.post("/api/v1/agents/alice/pause", json={"reason": "break"}, headers=h)
        assert r.status == 200 and (await r.json())["pause_reason"] == "break"
        assert (await client.get("/api/v1/reports/summary")).status == 403
        assert (await acdstore.get_agent(ctx.db, "alice")).state == "paused"
        acts = [(a["who"], a["action"], a["target"], a["ok"]) for a in await A.list_audit(ctx.db)]
        assert ("alice", "agent.pause", "bob", False) in acts
        assert ("alice", "agent.pause", "alice", True) in acts

    run(make_config, body)


def test_bearer_tokens_and_the_tv_url(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        _rec, sup = await A.add_token(ctx.db, "supervisor", name="script")
        _rec, tv = await A.add_token(ctx.db, "wallboard", name="waiting room")
        bearer = {"Authorization": f"Bearer {sup}"}
        r = await client.post("/api/v1/agents/bob/pause", json={"reason": "admin"}, headers=bearer)
        assert r.status == 200  # a token needs no CSRF token
        assert (await client.get("/api/v1/reports/summary", headers=bearer)).status == 200
        assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer pbx_wrong"})).status == 401
        # the TV's URL: a wallboard token in ?token= opens the board and its feeds, nothing else
        assert (await client.get(f"/board?token={tv}")).status == 200
        assert (await client.get(f"/api/v1/board?token={tv}")).status == 200
        assert (await client.get(f"/api/v1/missed?token={tv}")).status == 401
        assert (await client.get(f"/api/v1/board?token={sup}")).status == 401  # only wallboard tokens in URLs
        rows = await A.list_tokens(ctx.db)
        assert [(t["name"], t["role"]) for t in rows] == [("script", "supervisor"), ("waiting room", "wallboard")]
        await A.remove_token(ctx.db, rows[0]["id"])
        assert (await client.get("/api/v1/me", headers=bearer)).status == 401

    run(make_config, body)


def test_missed_caller_tasks_through_the_api(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        task, _merged, _new = await ctx.db.record_missed_call_row(
            "+33612345678", "call-1", "abandoned_queue", "front", None, 900.0, 930.0
        )
        assert (await login(client, "alice")).status == 302
        h = {S.CSRF_HEADER: await csrf_of(client)}
        tasks = await (await client.get("/api/v1/missed")).json()
        assert [(t["id"], t["number"], t["state"]) for t in tasks] == [(task["id"], "+33612345678", "open")]
        r = await client.post(f"/api/v1/missed/{task['id']}/claim", headers=h)
        assert r.status == 200 and (await r.json())["claimed_by"] == "alice"
        r = await client.post(f"/api/v1/missed/{task['id']}/call", json={"extension": "201"}, headers=h)
        assert r.status == 409  # no running PBX to place the call in this test
        r = await client.post(f"/api/v1/missed/{task['id']}/close", json={"outcome": "bogus"}, headers=h)
        assert r.status == 409 and "outcome" in (await r.json())["error"]
        r = await client.post(f"/api/v1/missed/{task['id']}/close", json={"outcome": "reached"}, headers=h)
        assert r.status == 200 and (await r.json())["state"] == "closed"
        assert await (await client.get("/api/v1/missed")).json() == []
        claimed = [e for e in ctx.bus.replay(0)[1] if isinstance(e, E.MissedTaskClaimed)]
        assert [e.by for e in claimed] == ["alice"]  # on the event stream, like the CLI's
        acts = [(a["who"], a["action"], a["target"], a["detail"]) for a in await A.list_audit(ctx.db)]
        assert ("alice", "missed.claim", str(task["id"]), None) in acts
        assert ("alice", "missed.close", str(task["id"]), "reached") in acts

    run(make_config, body)


def test_https_with_secure_cookies(make_config: Callable[..., Path], tmp_path: Path) -> None:
    import aiohttp

    from pypbx.web.server import WebServer
    from tests.integration.harness import self_signed_cert

    cert, key = self_signed_cert(tmp_path)

    async def go() -> None:
        cfg = load_config(make_config(web={"tls_cert": str(cert), "tls_key": str(key)}))
        async with open_db(cfg.db_path) as db:
            server = WebServer(make_context(cfg, db, E.EventBus()))
            await server.start()
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"https://127.0.0.1:{cfg.web.port}/login", ssl=False) as r:
                        assert r.status == 200
                        assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
                    async with http.get(f"https://127.0.0.1:{cfg.web.port}/api/v1/me", ssl=False) as r:
                        assert r.status == 401
            finally:
                await server.close()

    asyncio.run(go())


# --------------------------------------------------------------------------- the route table


def test_no_route_answers_without_a_session_or_token(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        app = client.server.app
        assert isinstance(app, web.Application)
        specs = app[SPECS]
        checked = 0
        for r in app.router.routes():
            spec_ = specs.get(r.name or "")
            if r.name == "static" or r.method == "HEAD":
                continue
            assert spec_ is not None, f"route {r.method} {r.resource} is not in the route table"
            if spec_.roles == PUBLIC:
                assert spec_.path == "/login", f"{spec_.path} is public"
                continue
            path = re.sub(r"\{[^}]+\}", "x", spec_.path)
            resp = await client.request(spec_.method, path, allow_redirects=False)
            if spec_.page:
                assert resp.status == 302 and resp.headers["Location"].startswith("/login"), path
            else:
                assert resp.status == 401, path
            checked += 1
        assert checked >= 15

    run(make_config, body)


def test_openapi_paths_are_the_routers(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        app = client.server.app
        assert isinstance(app, web.Application)
        served = {
            (r.resource.canonical, r.method.lower())
            for r in app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/api/v1/") and r.method != "HEAD"
        }
        doc = spec()
        described = {(p, m) for p, ops in doc["paths"].items() for m in ops}  # type: ignore[attr-defined]
        assert described == served
        _rec, tok = await A.add_token(ctx.db, "agent", agent_id="alice")
        r = await client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {tok}"})
        assert (await r.json())["openapi"].startswith("3.")

    run(make_config, body)


# --------------------------------------------------------------------------- the event stream


def test_events_stream_as_sse_with_resume(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        _rec, tok = await A.add_token(ctx.db, "supervisor")
        h = {"Authorization": f"Bearer {tok}"}
        bus: E.EventBus = ctx.bus
        bus.publish(E.TrunkUp(trunk="one"))
        resp = await client.get("/api/v1/events", headers={**h, "Last-Event-ID": f"{bus.run}:0"})
        assert resp.headers["Content-Type"] == "text/event-stream"
        bus.publish(E.TrunkDown(trunk="one", reason="gone"))
        text = ""
        while text.count("\n\n") < 3:
            text += (await asyncio.wait_for(resp.content.readany(), 5)).decode()
        assert f"id: {bus.run}:1\nevent: trunk.up\n" in text
        assert f"id: {bus.run}:2\nevent: trunk.down\n" in text
        resp.close()
        # resume after 1: only what came after
        resp = await client.get("/api/v1/events", headers={**h, "Last-Event-ID": f"{bus.run}:1"})
        text = ""
        while "event: trunk.down" not in text:
            text += (await asyncio.wait_for(resp.content.readany(), 5)).decode()
        assert "event: trunk.up" not in text
        resp.close()

    run(make_config, body)


def test_a_slow_sse_client_is_dropped_never_waited_for(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        _rec, tok = await A.add_token(ctx.db, "wallboard")
        bus: E.EventBus = ctx.bus
        resp = await client.get("/api/v1/events", headers={"Authorization": f"Bearer {tok}"})
        await asyncio.sleep(0.1)
        assert bus.subscribers == 1
        # a client that reads nothing: publishing never blocks; its queue overflows and it is dropped
        from pypbx.web import api

        for i in range(api.SSE_QUEUE * 3):
            bus.publish(E.TrunkUp(trunk=f"t{i}"))
        for _ in range(100):
            if bus.subscribers == 0:
                break
            await asyncio.sleep(0.05)
        assert bus.subscribers == 0
        resp.close()

    run(make_config, body)


# --------------------------------------------------------------------------- secret, config, CLI


def test_the_secret_file_is_private(tmp_path: Path) -> None:
    s1 = S.load_secret(tmp_path)
    assert S.load_secret(tmp_path) == s1 and len(s1) == 32
    assert stat.S_IMODE((tmp_path / S.SECRET_FILE).stat().st_mode) == 0o600


def test_web_config_is_checked(make_config: Callable[..., Path], tmp_path: Path) -> None:
    cfg = load_config(make_config(web={"port": 8443, "board_wait_warn": 20, "board_wait_alarm": 60}))
    assert (cfg.web.enabled, cfg.web.bind, cfg.web.port, cfg.web.tls) == (True, "127.0.0.1", 8443, False)
    with pytest.raises(ConfigError, match=r"tls_cert and web\.tls_key go together"):
        load_config(make_config(name="a.toml", web={"tls_cert": "cert.pem"}))
    with pytest.raises(ConfigError, match="board_wait_alarm"):
        load_config(make_config(name="b.toml", web={"board_wait_warn": 60, "board_wait_alarm": 30}))


def test_cli_users_tokens_audit(invoke_cli: Callable[..., Any], tmp_config: Path) -> None:
    c = str(tmp_config)
    r = invoke_cli("user", "add", "reception", "--role", "supervisor", "--config", c)
    assert r.exit_code == 0, r.output
    pw = re.search(r"Password: (\S+)", r.output)
    assert pw is not None and len(pw.group(1)) >= 12
    r = invoke_cli("user", "add", "reception", "--role", "admin", "--password", "whatever123", "--config", c)
    assert r.exit_code == 2 and "already exists" in r.output
    r = invoke_cli("user", "add", "nurse", "--role", "agent", "--password", "whatever123", "--config", c)
    assert r.exit_code == 2 and "needs --agent" in r.output
    r = invoke_cli("user", "add", "x", "--role", "admin", "--password", "short", "--config", c)
    assert r.exit_code == 2 and "too short" in r.output
    r = invoke_cli("user", "list", "--json", "--config", c)
    assert [(u["name"], u["role"]) for u in json.loads(r.output)] == [("reception", "supervisor")]
    r = invoke_cli("user", "passwd", "reception", "--password", "new password 1", "--config", c)
    assert r.exit_code == 0 and "Password:" not in r.output
    r = invoke_cli("token", "add", "--role", "wallboard", "--name", "TV", "--config", c)
    assert r.exit_code == 0 and re.search(r"^pbx_\S{40,}$", r.output, re.M)
    r = invoke_cli("token", "list", "--json", "--config", c)
    toks = json.loads(r.output)
    assert [(t["id"], t["name"], t["role"]) for t in toks] == [(1, "TV", "wallboard")]
    assert "pbx_" not in r.output  # never the token itself
    assert invoke_cli("token", "remove", "1", "--config", c).exit_code == 0
    r = invoke_cli("token", "remove", "1", "--config", c)
    assert r.exit_code == 2 and "unknown token '1'" in r.output  # issue 12: no such object = exit 2
    assert invoke_cli("user", "remove", "reception", "--config", c).exit_code == 0
    r = invoke_cli("audit", "--json", "--since", "today", "--config", c)
    actions = [(a["who"], a["action"], a["target"]) for a in json.loads(r.output)]
    assert actions == [
        ("cli", "user.add", "reception"),
        ("cli", "user.passwd", "reception"),
        ("cli", "token.add", "1"),
        ("cli", "token.remove", "1"),
        ("cli", "user.remove", "reception"),
    ]
    r = invoke_cli("audit", "--config", c)
    assert r.exit_code == 0 and "user.remove" in r.output
