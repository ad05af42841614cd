"""The caller lookup in the clinic's system (pypbx.crm) against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from pypbx.config import ConfigError, CrmConfig, _header_line, _url_template
from pypbx.crm import NOT_FOUND, CrmAnswer, CrmLookup, lookup_url, parse_answer


def test_parse_answer_keeps_what_it_understands() -> None:
    a = parse_answer(
        {
            "name": "  Marie   Dupont ",
            "patient_id": 1042,
            "flags": "VIP; do-not-call",
            "language": "FR",
            "agent": "Alice",
            "other": [1, 2],
        }
    )
    assert a == CrmAnswer(True, "Marie Dupont", "1042", frozenset({"vip", "do-not-call"}), "fr", "alice")
    assert a.urgent
    assert parse_answer({}) is NOT_FOUND and parse_answer([1]) is NOT_FOUND and parse_answer(None) is NOT_FOUND
    # a language that is not a prompt directory name, an agent id with a slash: dropped
    b = parse_answer({"name": "X", "language": "../../etc", "agent": "a/b", "flags": [1, "urgent"]})
    assert (b.language, b.agent, b.flags, b.urgent) == ("", "", frozenset({"urgent"}), True)


def test_lookup_url_fills_and_quotes() -> None:
    t = "https://mis.local/api/patient?phone={e164}&n={national}&d={digits}"
    assert (
        lookup_url(t, "+33612345679", "FR")
        == "https://mis.local/api/patient?phone=%2B33612345679&n=0612345679&d=33612345679"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://x/{foo}", "expected a URL with {e164}"),
        ("https://x/patient", "the URL needs {e164}"),
        ("ftp://x/{e164}", "expected an http:// or https:// URL"),
    ],
)
def test_bad_lookup_url_is_one_config_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        _url_template("crm.lookup_url", value)


def test_header_must_be_name_colon_value() -> None:
    assert _header_line("crm.header", "X-Api-Key: 1234") == "X-Api-Key: 1234"
    with pytest.raises(ConfigError, match="expected one header"):
        _header_line("crm.header", "X-Api-Key 1234")


@asynccontextmanager
async def crm_server(handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/patient", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/patient?phone={{e164}}"
    finally:
        await runner.cleanup()


def test_lookup_answers_caches_and_sends_the_token() -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        phone = request.query["phone"]
        seen.append((phone, request.headers.get("Authorization"), request.headers.get("X-Site")))
        if phone == "+33612345679":
            return web.json_response({"name": "Marie Dupont", "patient_id": "P-1", "agent": "alice"})
        return web.Response(status=404)

    async def go() -> None:
        async with crm_server(handler) as url:
            now = [1000.0]
            crm = CrmLookup(CrmConfig(lookup_url=url, token="t0k", header="X-Site: north"), "FR", clock=lambda: now[0])
            try:
                a = await crm.lookup("06 12 34 56 79")
                assert a is not None and (a.name, a.patient_id, a.agent) == ("Marie Dupont", "P-1", "alice")
                assert await crm.lookup("+33612345679") == a  # cached: no second request
                assert await crm.lookup("0699999999") is NOT_FOUND  # 404: not a patient (cached too)
                assert await crm.lookup("0699999999") is NOT_FOUND
                assert await crm.lookup("anonymous") is None  # nothing to ask
                assert seen == [("+33612345679", "Bearer t0k", "north"), ("+33699999999", "Bearer t0k", "north")]
                now[0] += 301  # past cache_seconds
                await crm.lookup("+33612345679")
                assert len(seen) == 3
            finally:
                await crm.close()

    asyncio.run(go())


def test_slow_or_broken_crm_never_delays_past_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def slow(request: web.Request) -> web.Response:
        if request.query["phone"] == "+33611111111":
            return web.Response(status=500)
        if request.query["phone"] == "+33622222222":
            return web.Response(text="<html>not json</html>")
        await asyncio.sleep(3)
        return web.json_response({"name": "late"})

    async def go() -> None:
        async with crm_server(slow) as url:
            crm = CrmLookup(CrmConfig(lookup_url=url, timeout_ms=200), "FR")
            try:
                t0 = time.monotonic()
                assert await crm.lookup("+33612345679") is None
                took = time.monotonic() - t0
                assert await crm.lookup("+33611111111") is None  # HTTP 500
                assert await crm.lookup("+33622222222") is None  # not JSON
                assert crm.failures == 3
            finally:
                await crm.close()
        assert took < 2, took  # the 3 s answer was not waited for
        warnings = [r.getMessage() for r in caplog.records if r.name == "pypbx.crm"]
        assert warnings == [
            "CRM lookup for +33612345679 failed (no answer within 200 ms): the local callers table answers"
        ]

    asyncio.run(go())


def test_answers_json_with_a_wrong_content_type() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"name": "Kim"}), content_type="text/plain")

    async def go() -> None:
        async with crm_server(handler) as url:
            crm = CrmLookup(CrmConfig(lookup_url=url), "FR")
            try:
                a = await crm.lookup("+33612345679")
                assert a is not None and a.name == "Kim"
            finally:
                await crm.close()

    asyncio.run(go())
