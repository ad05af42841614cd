"""Which prompt files to play, in order, for number announcements.

Pure functions (standard library only) implementing the grammar rules written in the
header of ``manifest.toml``. The ACD decides *what* to announce (position N, wait of
M minutes); this module turns it into the list of prompt ids for a language, each to
be played from ``ivr_prompts/<lang>/<id>.wav``.

    >>> position_ids("ko", 3)
    ['you_are_caller_number', 'num_3', 'caller_number_suffix']
    >>> wait_ids("ru", 21)
    ['estimated_wait_is_about', 'num_20', 'num_1_fem', 'minutes_one']
    >>> wait_ids("zh", 2)
    ['estimated_wait_is_about', 'num_2_measure', 'minutes']
    >>> position_ids("fr", 3)
    ['you_are_caller_number', 'num_3_ord', 'caller_number_suffix']
    >>> wait_ids("fr", 21)
    ['estimated_wait_is_about', 'num_21_fem', 'minutes']
"""
from __future__ import annotations

LANGUAGES = ("en", "ko", "ru", "zh", "fr")
#: French counts ending in "un" that become "une" before the feminine "minute(s)"
#: (71 and 91 end in "onze": unchanged).
FR_FEMININE = (1, 21, 31, 41, 51, 61, 81)
MAX_NUMBER = 100


def _check(lang: str, n: int) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown prompt language {lang!r}")
    if not isinstance(n, int) or n < 0 or n > MAX_NUMBER:
        raise ValueError(f"number {n!r} outside 0..{MAX_NUMBER}")


def number_ids(lang: str, n: int) -> list[str]:
    """The plain (cardinal, masculine in Russian) number: one file for 0..100."""
    _check(lang, n)
    return [f"num_{n}"]


def counted_number_ids(lang: str, n: int) -> list[str]:
    """The number as it is said before the word for minutes.

    ru: минута is feminine, so a last word 1/2 becomes одна/две (not after 11, 12).
    zh: 2 alone before a measure word is 两.  en, ko: the plain number.
    fr: minute is feminine: 1 -> une, 21 -> vingt et une ... 81 -> quatre-vingt-une
        (one file each, ``num_N_fem``); 11, 71, 91 keep onze.
    """
    _check(lang, n)
    if lang == "fr" and n in FR_FEMININE:
        return [f"num_{n}_fem"]
    if lang == "ru" and n % 10 in (1, 2) and n % 100 not in (11, 12):
        fem = f"num_{n % 10}_fem"
        return [fem] if n < 10 else [f"num_{n - n % 10}", fem]
    if lang == "zh" and n == 2:
        return ["num_2_measure"]
    return [f"num_{n}"]


def ru_plural(n: int) -> str:
    """CLDR plural category for Russian integers: 'one', 'few' or 'many'."""
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


def minutes_word_id(lang: str, n: int) -> str:
    _check(lang, n)
    if lang == "ru":
        return f"minutes_{ru_plural(n)}"
    if lang in ("en", "fr"):
        return "minute" if n == 1 else "minutes"
    return "minutes"        # ko, zh: no plural


def position_ids(lang: str, position: int) -> list[str]:
    """"You are caller number N" (N from 1).

    fr: "Vous êtes le | troisième | appelant": the ordinal (``num_N_ord``, 1 = premier).
    """
    _check(lang, position)
    if lang == "fr":
        if position < 1:
            raise ValueError(f"position {position!r} outside 1..{MAX_NUMBER}")
        return ["you_are_caller_number", f"num_{position}_ord", "caller_number_suffix"]
    ids = ["you_are_caller_number", *number_ids(lang, position)]
    if lang in ("ko", "zh"):
        ids.append("caller_number_suffix")
    return ids


def wait_ids(lang: str, minutes: int) -> list[str]:
    """"Your estimated wait is about M minutes"; below one minute, its own sentence.

    The caller of this function decides whether the estimate is trustworthy at all;
    when it is not, announce nothing.
    """
    _check(lang, minutes)
    if minutes < 1:
        return ["less_than_one_minute"]
    return ["estimated_wait_is_about", *counted_number_ids(lang, minutes),
            minutes_word_id(lang, minutes)]


def digits_ids(lang: str, number: str) -> list[str]:
    """A phone number read back digit by digit (zh says 1 as 幺 in phone numbers)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown prompt language {lang!r}")
    out = []
    for ch in number:
        if not ch.isdigit() or not ch.isascii():
            continue                     # skip +, spaces, dashes
        out.append("num_1_phone" if (lang == "zh" and ch == "1") else f"num_{ch}")
    return out


def language_menu_ids() -> list[tuple[str, str]]:
    """(lang, id) pairs of the language menu, each spoken in its own language."""
    return [(lang, f"lang_menu_{lang}") for lang in LANGUAGES]
