"""The web desk's languages: English, French, Korean, Russian and Chinese, per user.

The strings of the pages are marked ``_()`` (templates, pypbx/web/*.py; :func:`N_` marks a
string for extraction where it is translated later, e.g. a role's name). Their
translations are the gettext catalogues ``pypbx/web/locale/<lang>/LC_MESSAGES/messages.po``,
read with Babel when the web desk starts — no compile step, no .mo files. ``make i18n``
(tools/i18n.py) re-extracts the strings and updates every catalogue.

A request's language is the logged-in user's stored locale (``web_users.locale``; changed on
any page's header form, or ``pypbx user add --locale``), else — for a TV's token URL —
``?lang=``, else the browser's ``Accept-Language``, else English. Dates, numbers, percentages and durations are formatted
per language with Babel (:class:`Lang`).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from babel import Locale
from babel.dates import format_date, format_datetime, format_timedelta
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit

from pypbx.errors import UnknownNameError

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"
#: the languages the desk speaks (English is the source language: it has no catalogue)
LOCALES: tuple[str, ...] = ("en", "fr", "ko", "ru", "zh")
TRANSLATED: tuple[str, ...] = tuple(lc for lc in LOCALES if lc != DEFAULT)


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown (``_(label)``)."""
    return message


#: strings shown through a variable (``_(user.role.value)``, ``_(error)``): marked here so the
#: extractor finds them
MARKED = (
    N_("admin"),
    N_("supervisor"),
    N_("agent"),
    N_("wallboard"),
    N_("wrong user name or password"),
    N_("this login is locked after too many wrong passwords; try again later"),
)


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=lang, domain=DOMAIN)


def _messages(cat: Catalog) -> dict[str, str]:
    """{msgid: msgstr} of the translated, non-fuzzy singular messages."""
    out: dict[str, str] = {}
    for m in cat:
        if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string and not m.fuzzy:
            out[m.id] = m.string
    return out


@functools.cache
def catalogs() -> dict[str, dict[str, str]]:
    """Every language's messages, read once (at start-up: :func:`load`)."""
    out: dict[str, dict[str, str]] = {DEFAULT: {}}
    for lang in TRANSLATED:
        try:
            out[lang] = _messages(read_catalog(lang))
        except OSError as exc:
            log.warning("web desk: no %s catalogue (%s): English instead", lang, exc)
            out[lang] = {}
    return out


def load() -> None:
    """Read the catalogues now (the web desk's start), not on the first page."""
    catalogs()


def check_locale(text: str) -> str:
    """A supported language code (``fr``, ``ko`` ...) or :class:`~pypbx.errors.PbxUsageError`."""
    code = text.strip().lower().replace("_", "-").split("-")[0]
    if code not in LOCALES:
        raise UnknownNameError("language", text, LOCALES)
    return code


def negotiate(accept_language: str | None) -> str:
    """The best of :data:`LOCALES` for an ``Accept-Language`` header (English if none fits)."""
    if not accept_language:
        return DEFAULT
    prefs: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        code = tag.strip().lower().split("-")[0]
        if code in LOCALES and q > 0:
            prefs.append((-q, i, code))
    return sorted(prefs)[0][2] if prefs else DEFAULT


# --------------------------------------------------------------------------- per request

#: the request's language (set by pypbx.web.settings.locale_middleware for pages)
LOCALE_KEY: web.RequestKey[str] = web.RequestKey("pypbx_locale", str)

_current: contextvars.ContextVar[str] = contextvars.ContextVar("pypbx_web_locale", default=DEFAULT)


def gettext(message: str) -> str:
    """``message`` in the current request's language (itself when untranslated)."""
    lang = _current.get()
    if lang == DEFAULT:
        return message
    return catalogs().get(lang, {}).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular) if n == 1 else gettext(plural)


_ = gettext


@dataclass(frozen=True)
class Lang:
    """One language's formatting (Babel), handed to the templates as ``fmt``."""

    code: str

    @property
    def name(self) -> str:
        return language_name(self.code)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.code)

    def percent(self, value: float | None) -> str:
        return "–" if value is None else format_percent(value, locale=self.code)

    def duration(self, seconds: float | None) -> str:
        """``2 min``, ``2 분`` ... (Babel's short unit; "–" for none)."""
        if seconds is None:
            return "–"
        return format_timedelta(dt.timedelta(seconds=seconds), threshold=2, format="short", locale=self.code)

    def unit(self, unit: str) -> str:
        """Babel's short pattern of a duration unit with ``{n}`` for the number (``{n} h``,
        ``{n}분``): for the page scripts, which count durations up in the browser."""
        return format_unit(7, f"duration-{unit}", length="short", locale=self.code).replace("7", "{n}", 1)

    def datetime(self, ts: float | None) -> str:
        if ts is None:
            return "–"
        return format_datetime(dt.datetime.fromtimestamp(ts), "short", locale=self.code)

    def date(self, day: str) -> str:
        """A ``YYYY-MM-DD`` day in the language's medium format (``24 déc. 2026``)."""
        try:
            d = dt.date.fromisoformat(day)
        except ValueError:
            return day
        return format_date(d, "medium", locale=self.code)


@functools.cache
def language_name(code: str) -> str:
    """The language's own name: ``français``, ``한국어`` ..."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def choices() -> list[tuple[str, str]]:
    return [(lc, language_name(lc)) for lc in LOCALES]


def activate(lang: str) -> contextvars.Token[str]:
    return _current.set(lang if lang in LOCALES else DEFAULT)


def current() -> str:
    return _current.get()


def render_in(lang: str, fn: Callable[[], str]) -> str:
    """``fn()`` with ``lang`` as the current language (templates rendered inside see it)."""
    token = activate(lang)
    try:
        return fn()
    finally:
        _current.reset(token)


def missing(ids: Iterable[str], lang: str) -> list[str]:
    """The ``ids`` that ``lang``'s catalogue has no translation for (tests, ``make i18n``)."""
    have = _messages(read_catalog(lang))
    return sorted({i for i in ids if i not in have})


# --------------------------------------------------------------------------- extraction (make i18n, tests)

KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def extract() -> dict[str, list[str]]:
    """Every string marked for translation in the templates and pypbx/web/*.py: {msgid:
    ["file:line", ...]} (Babel's extractors: jinja2's for the templates, Python's)."""
    from babel.messages.extract import extract_from_file  # only `make i18n` and the tests extract

    here = Path(__file__).parent
    found: dict[str, list[str]] = {}
    sources = [("python", p) for p in sorted(here.glob("*.py"))]
    sources += [("jinja2.ext:babel_extract", p) for p in sorted((here / "templates").glob("*.html"))]
    for method, path in sources:
        opts = {"extensions": "jinja2.ext.i18n"} if method.startswith("jinja2") else {}
        for lineno, message, _comments, _ctx in extract_from_file(method, str(path), KEYWORDS, options=opts):
            ids = message if isinstance(message, tuple) else (message,)
            for mid in ids:
                if mid:
                    found.setdefault(mid, []).append(f"{path.relative_to(here.parent.parent)}:{lineno}")
    return found
