"""The settings pages and the languages in a real browser (Playwright driving Debian's
chromium) against ONE real ``pypbx run`` for the module: an admin adds an extension in the
browser and a sipp phone registers with the password the page showed (once); a wrong value
shows the library's one line next to its field; a French user sees the wallboard in French;
at 375 px no page scrolls sideways, and the login form is completed with the keyboard only.
Screenshots: docs/screenshots/settings.png and board-fr.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import PbxProcess, auth_users, require_tool, run_sipp
from tests.integration.test_web_board import CHROMIUM_ARGS, SHOTS

pytestmark = pytest.mark.slow

PW = "settings pass 1"


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PbxProcess]:
    p = PbxProcess(tmp_path_factory.mktemp("settings") / "pbx", security={"exempt": ["127.0.0.1"]})
    p.start()
    try:
        p.cli("user", "add", "boss", "--role", "admin", "--password", PW)
        p.cli("user", "add", "marie", "--role", "supervisor", "--password", PW, "--locale", "fr")
        p.cli("queue", "add", "front")
        p.cli("queue", "add", "nurses")
        p.cli("agent", "add", "alice", "--name", "Alice Kim", "--skills", "new_patients:8,korean:5")
        p.cli(
            "hours",
            "set",
            "clinic",
            "--week",
            "mon-fri 08:00-12:00 13:30-18:00, sat 09:00-12:00",
            "--tz",
            "Europe/Paris",
        )
        p.cli("hours", "holiday", "clinic", "2026-12-25")
        yield p
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-4000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def base(p: PbxProcess) -> str:
    return f"http://127.0.0.1:{p.cfg.web.port}"


def logged_in(browser: Any, p: PbxProcess, name: str, **context: Any) -> Any:
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.goto(f"{base(p)}/login")
    page.fill("#name", name)
    page.fill("#password", PW)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base(p)}/board")
    return page


def test_admin_adds_an_extension_and_a_phone_registers_with_the_shown_password(
    pbx: PbxProcess, browser: Any, tmp_path: Path
) -> None:
    page = logged_in(browser, pbx, "boss", viewport={"width": 1280, "height": 900})
    try:
        page.click("header nav a[href='/settings']")
        page.wait_for_url(f"{base(pbx)}/settings/extensions")
        # a wrong value: the library's one line, next to the field
        page.fill("#ext-number", "12ab")
        page.click("#ext-add button[type=submit]")
        err = page.locator("#ext-add-number-err")
        err.wait_for(state="visible", timeout=5_000)
        assert err.inner_text() == "bad extension number '12ab': expected 2-8 digits"
        assert page.get_attribute("#ext-number", "aria-invalid") == "true"
        # the real one
        page.fill("#ext-number", "1050")
        page.fill("#ext-name", "Reception")
        page.click("#ext-add button[type=submit]")
        page.wait_for_selector("#shown-password", timeout=5_000)
        password = page.inner_text("#shown-password")
        assert len(password) >= 16
        assert err.is_hidden()
        page.wait_for_selector("tr[data-ext='1050']", timeout=5_000)  # the list refreshed
        page.screenshot(path=str(SHOTS / "settings.png"), full_page=True)
        page.reload()
        assert password not in page.content()  # shown once
        # a phone registers with it
        res = run_sipp(
            "register.xml", f"127.0.0.1:{pbx.port}", users=auth_users(["1050"], password), workdir=tmp_path / "sipp"
        )
        assert res.returncode == 0, res.errors or res.stdout[-2000:]
        shown = json.loads(pbx.cli("ext", "show", "1050", "--json").stdout)
        assert shown["live"] and len(shown["registrations"]) == 1, shown

        # a queue's overflow to a queue that does not exist: did-you-mean, next to the field
        page.goto(f"{base(pbx)}/settings/queues")
        form = page.locator("article[data-queue='front'] form")
        form.locator("[name=overflow_after]").fill("30")
        form.locator("[name=overflow_to]").fill("queue:nurse")
        form.locator("button[type=submit]").click()
        line = page.locator("#ot-front-err")
        line.wait_for(state="visible", timeout=5_000)
        assert line.inner_text() == "unknown queue 'nurse' (did you mean nurses?)"
        form.locator("[name=overflow_to]").fill("queue:nurses")
        form.locator("button[type=submit]").click()
        page.wait_for_function("() => document.body.dataset.saved !== undefined", timeout=5_000)
        shown = pbx.cli("queue", "show", "front", "--json").stdout
        assert '"nurses"' in shown
        audit = pbx.cli("audit", "--json").stdout
        assert '"settings.ext.add"' in audit and '"settings.queue.edit"' in audit
    finally:
        page.context.close()


def test_a_french_user_sees_the_wallboard_in_french(pbx: PbxProcess, browser: Any) -> None:
    page = logged_in(browser, pbx, "marie", viewport={"width": 1280, "height": 800})
    try:
        page.wait_for_function("() => document.getElementById('board').dataset.live === '1'", timeout=10_000)
        assert page.get_attribute("html", "lang") == "fr"
        assert page.inner_text(".board-head h1") == "Tableau mural"
        assert page.inner_text("#board-status") == "en direct"
        page.wait_for_selector("article[data-queue='front']", timeout=5_000)
        labels = page.locator("article[data-queue='front'] .label").all_inner_texts()
        assert {"En attente", "Attente la plus longue", "Disponibles", "Niveau de service"} <= set(labels)
        assert page.inner_text("header .logout button") == "Se déconnecter"
        page.screenshot(path=str(SHOTS / "board-fr.png"))
        # she switches to Korean on the page, and back
        page.select_option("#lang-select", "ko")
        page.click("form.lang button[type=submit]")
        page.wait_for_url(f"{base(pbx)}/board")
        assert page.inner_text(".board-head h1") == "상황판"
        page.select_option("#lang-select", "fr")
        page.click("form.lang button[type=submit]")
        page.wait_for_url(f"{base(pbx)}/board")
        assert page.inner_text(".board-head h1") == "Tableau mural"
    finally:
        page.context.close()


def test_375px_wide_no_page_scrolls_sideways_and_the_login_works_by_keyboard(pbx: PbxProcess, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 375, "height": 740})
    page = ctx.new_page()
    try:
        page.goto(f"{base(pbx)}/login")
        wide = "() => document.documentElement.scrollWidth - window.innerWidth"
        assert page.evaluate(wide) <= 0, "the login page scrolls sideways"
        # keyboard only: the skip link comes first, the name field has the focus
        assert page.evaluate("document.activeElement.id") == "name"
        page.keyboard.type("boss")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "password"
        page.keyboard.type(PW)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base(pbx)}/board")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        outline = page.evaluate("getComputedStyle(document.activeElement).left")
        assert outline != "-999px"  # the skip link shows when focused
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        for path in ("/board", "/settings/extensions", "/settings/agents", "/settings/hours", "/settings/queues"):
            page.goto(f"{base(pbx)}{path}")
            page.wait_for_load_state("load")
            if path == "/board":
                page.wait_for_selector("article[data-queue='front']", timeout=5_000)
            too_wide = page.evaluate(
                "() => Array.from(document.querySelectorAll('body *')).filter(el => el.getBoundingClientRect().right"
                " > window.innerWidth + 1).slice(0, 8).map(el => el.tagName + '.' + el.className + ' ' +"
                " Math.round(el.getBoundingClientRect().right))"
            )
            assert page.evaluate(wide) <= 0, f"{path} scrolls sideways at 375 px: {too_wide}"
            unlabelled = page.evaluate(
                "() => Array.from(document.querySelectorAll('input:not([type=hidden]), select'))"
                ".filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)"
            )
            assert unlabelled == [], f"{path}: fields without a label: {unlabelled}"
    finally:
        ctx.close()
