"""The web desk's languages (pypbx.web.i18n): every string marked ``_()`` in the templates
and pypbx/web/*.py has a translation in every catalogue (a page added later whose strings are
not translated yet fails here, listing them); the catalogues are read as .po files at start-up;
a page speaks its user's stored language, else the browser's; dates, numbers and durations
are formatted per language with Babel."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from pypbx.web import accounts as A
from pypbx.web import i18n
from tests.unit.test_web import cheap_hashes, desk, login  # noqa: F401 - cheap_hashes: autouse

ROOT = Path(__file__).resolve().parents[2]


def test_every_marked_string_has_a_translation_in_every_catalogue() -> None:
    ids = i18n.extract()
    assert len(ids) >= 80  # the login, layout, wallboard and settings pages
    missing = {lang: i18n.missing(ids, lang) for lang in i18n.TRANSLATED}
    lines = [f"{lang}: {m!r}" for lang, m in missing.items() if m]
    where = sorted({loc for ms in missing.values() for m in ms for loc in ids[m]})
    assert not lines, (
        "strings without a translation (run `make i18n`, then translate them in "
        "pypbx/web/locale/<lang>/LC_MESSAGES/messages.po):\n" + "\n".join(lines) + "\nused at: " + ", ".join(where)
    )


def test_the_extractor_finds_templates_python_and_script_strings() -> None:
    ids = i18n.extract()
    assert "Wallboard" in ids and any(loc.startswith("pypbx/web/templates/board.html") for loc in ids["Wallboard"])
    assert "reconnecting…" in ids  # a string the board's script shows (handed over as JSON by the template)
    assert any(loc.startswith("pypbx/web/i18n.py") for loc in ids["wrong user name or password"])
    assert "Opening hours" in ids and any(loc.startswith("pypbx/web/settings.py") for loc in ids["Opening hours"])


def test_translations_keep_their_placeholders() -> None:
    for lang in i18n.TRANSLATED:
        for msgid, msgstr in i18n.catalogs()[lang].items():
            assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", msgstr)), (lang, msgid)


def test_the_catalogues_are_current_with_the_sources() -> None:
    """``make i18n --check``: nothing untranslated (the tool itself, as a developer runs it)."""
    r = subprocess.run([sys.executable, "tools/i18n.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^fr: (\d+)/\1 translated$", r.stdout, re.M), r.stdout


def test_gettext_per_language() -> None:
    assert i18n.render_in("fr", lambda: i18n.gettext("Wallboard")) == "Tableau mural"
    assert i18n.render_in("ko", lambda: i18n.gettext("Log in")) == "로그인"
    assert i18n.render_in("ru", lambda: i18n.gettext("Settings")) == "Настройки"
    assert i18n.render_in("zh", lambda: i18n.gettext("Queues")) == "队列"
    assert i18n.render_in("fr", lambda: i18n.gettext("not a page string")) == "not a page string"
    assert i18n.gettext("Wallboard") == "Wallboard"  # outside a request: English


def test_accept_language_and_locale_checks() -> None:
    assert i18n.negotiate("ko-KR,ko;q=0.9,en;q=0.8") == "ko"
    assert i18n.negotiate("de-DE, ru;q=0.5, fr;q=0.7") == "fr"
    assert i18n.negotiate("de, es") == "en"
    assert i18n.negotiate(None) == "en"
    assert i18n.negotiate("zh-CN") == "zh"
    assert i18n.check_locale("FR") == "fr" and i18n.check_locale("zh_CN") == "zh"
    try:
        i18n.check_locale("fre")
    except Exception as exc:
        assert str(exc) == "unknown language 'fre' (did you mean fr?)"
    else:
        raise AssertionError("fre accepted")


def test_dates_numbers_durations_per_language() -> None:
    fr, ko, ru, zh, en = (i18n.Lang(x) for x in ("fr", "ko", "ru", "zh", "en"))
    assert en.number(12345.5) == "12,345.5"
    assert fr.number(12345.5).replace("\u202f", " ") == "12 345,5"
    assert ru.percent(0.87).replace("\xa0", " ") == "87 %"
    assert en.percent(None) == "–"
    assert fr.duration(125).replace("\xa0", " ") == "2 min" and ko.duration(125) == "2분"
    assert ru.duration(125).replace("\xa0", " ") == "2 мин"
    assert zh.duration(3 * 3600) == "3小时"
    assert en.date("2026-12-24") == "Dec 24, 2026" and fr.date("2026-12-24") == "24 déc. 2026"
    assert ko.date("2026-12-24") == "2026. 12. 24."
    assert ko.name == "한국어" and fr.name == "Français"


def test_pages_speak_the_users_language_else_the_browsers(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        page = await client.get("/login", headers={"Accept-Language": "ko-KR,ko;q=0.9"})
        text = await page.text()
        assert page.headers["Content-Language"] == "ko" and '<html lang="ko">' in text
        assert "사용자 이름" in text and "로그인" in text
        await A.add_user(ctx.db, "infirmiere", "supervisor", password="mot de passe 1", locale="fr")
        assert (await login(client, "infirmiere", "mot de passe 1")).status == 302
        text = await (
            await client.get("/board", headers={"Accept-Language": "ko"})
        ).text()  # the user's, not the browser's
        for fr in (
            "Tableau mural",
            "En attente",
            "Attente la plus longue",
            "À rappeler",
            "superviseur",
            "Aller au contenu",
        ):
            assert fr in text, fr
        assert '"reconnecting": "reconnexion\\u2026"' in text  # the board script's strings (JSON)
        client.session.cookie_jar.clear()
        page = await client.post("/login", data={"name": "x"}, headers={"Accept-Language": "ru"})
        assert page.status == 403  # (no CSRF token: refused before any language matters)

    async def go() -> None:
        async with desk(make_config()) as (client, ctx):
            await body(client, ctx)

    asyncio.run(go())


def test_cli_user_add_with_a_locale(invoke_cli: Callable[..., Any], tmp_config: Path) -> None:
    c = str(tmp_config)
    r = invoke_cli(
        "user", "add", "sophie", "--role", "supervisor", "--password", "whatever123", "--locale", "fr", "--config", c
    )
    assert r.exit_code == 0, r.output
    r = invoke_cli("user", "list", "--json", "--config", c)
    assert '"locale": "fr"' in r.output
    r = invoke_cli(
        "user", "add", "kim", "--role", "admin", "--password", "whatever123", "--locale", "kr", "--config", c
    )
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith("Error: unknown language 'kr'")
    r = invoke_cli("user", "locale", "sophie", "ko", "--config", c)
    assert r.exit_code == 0 and "ko" in r.output
    r = invoke_cli("user", "locale", "nobody", "ko", "--config", c)
    assert r.exit_code == 1 and "not found" in r.output


def test_duration_units_for_the_board_script() -> None:
    assert i18n.Lang("en").unit("hour") == "{n} hr" and i18n.Lang("ko").unit("minute") == "{n}분"
    assert i18n.Lang("zh").unit("hour") == "{n}小时" and i18n.Lang("ru").unit("minute") == "{n} мин"
