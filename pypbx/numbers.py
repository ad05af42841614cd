"""Phone numbers: E.164 storage, national display, classes for the toll-fraud guard, trunk rewriting.

Everything rests on ``phonenumbers`` (the Python port of Google's libphonenumber) and the
site's region (``[numbers] region`` in the config file, an ISO 3166 code: "FR", "KR", "RU"...).

* :func:`e164` -- how every number is stored and compared: ``+33612345679`` for anything
  that parses as a possible number of the region (``06 12 34 56 79``, ``0033612345679``,
  ``33612345679``) or an international one (``+44...``, ``00 44...``). Anything else
  (``anonymous``, ``unknown``, short codes, extensions) is kept as it came, separators
  removed -- and such a string never matches a patient (:func:`is_e164`).
* :func:`display` -- how a number is shown: the national format for the region's numbers
  (``06 12 34 56 79``), the international format for others (``+44 20 7123 4567``), the
  stored string for the rest.
* :func:`classify` -- the class of a dialled number for the toll-fraud guard, from
  phonenumbers' number types: a number must be **valid** (not merely possible) to get one.
  ``emergency`` (the region's emergency short numbers from phonenumbers' short-number
  metadata, 112, and the extra numbers of ``[numbers] emergency``) is always allowed and
  always goes out; ``internal`` (extensions, queues) is decided by the router before.
  An unparseable or invalid number is ``invalid`` and is refused (403).
* :func:`rewrite` -- the number in the form a trunk wants (``number_format``), always built
  from the validated number, never from the dialled digits (except ``as_dialled``, which
  sends the dialled digits of a number that validated).

Permissions: an extension is allowed a set of classes (:data:`DEFAULT_ALLOWED` unless
``pypbx ext perms`` or ``[numbers] default_allowed`` says otherwise); the pre-phonenumbers
names are still accepted (:data:`ALIASES`: ``national`` and ``local``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType, shortnumberinfo

DEFAULT_REGION = "FR"


class NumberClass(StrEnum):
    """The class of a dialled number (stored in extension permissions by value)."""

    INTERNAL = "internal"
    EMERGENCY = "emergency"
    FIXED_LINE = "fixed_line"
    MOBILE = "mobile"
    TOLL_FREE = "toll_free"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    UAN = "uan"  # universal access numbers (company numbers)
    PERSONAL = "personal"
    PAGER = "pager"
    VOICEMAIL = "voicemail"
    SHORT = "short"  # a toll-free or standard-rate short number of the region (not emergency)
    PREMIUM = "premium"  # premium-rate numbers and premium (or unknown-cost) short numbers
    INTERNATIONAL = "international"  # any valid number of another country
    INVALID = "invalid"  # not a class one may allow: never sent to a trunk


CLASSES: tuple[str, ...] = tuple(c.value for c in NumberClass if c is not NumberClass.INVALID)
DEFAULT_ALLOWED: tuple[str, ...] = (
    "internal",
    "fixed_line",
    "mobile",
    "toll_free",
    "shared_cost",
    "voip",
    "uan",
    "short",
)
#: Class names from before phonenumbers, still accepted (and migrated in stored permissions).
ALIASES: dict[str, tuple[str, ...]] = {
    "national": ("fixed_line", "toll_free", "shared_cost", "voip", "uan"),
    "local": ("fixed_line", "short"),
}
FORMATS = ("e164", "e164_no_plus", "national", "international", "as_dialled")

_TYPES: dict[int, NumberClass] = {
    PhoneNumberType.FIXED_LINE: NumberClass.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberClass.FIXED_LINE,
    PhoneNumberType.MOBILE: NumberClass.MOBILE,
    PhoneNumberType.TOLL_FREE: NumberClass.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberClass.PREMIUM,
    PhoneNumberType.SHARED_COST: NumberClass.SHARED_COST,
    PhoneNumberType.VOIP: NumberClass.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberClass.PERSONAL,
    PhoneNumberType.PAGER: NumberClass.PAGER,
    PhoneNumberType.UAN: NumberClass.UAN,
    PhoneNumberType.VOICEMAIL: NumberClass.VOICEMAIL,
}

_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIALLABLE = re.compile(r"\+?[0-9]{1,32}")
_MIN_UNKNOWN = 7  # digits of a possible-but-not-valid number for it to count as one
_E164 = re.compile(r"\+[1-9][0-9]{4,14}")


@dataclass(frozen=True)
class NumberPlan:
    """The site's numbering: its region, extra emergency numbers, the default permissions."""

    region: str = DEFAULT_REGION
    emergency: tuple[str, ...] = ()  # always allowed, in addition to 112 and the region's
    default_allowed: tuple[str, ...] = DEFAULT_ALLOWED


@dataclass(frozen=True)
class Classified:
    number: str  # as dialled, separators removed
    cls: NumberClass
    e164: str | None = None  # +CC..., for a valid number
    national: str | None = None  # national dialling digits (own country only)


def check_region(region: str) -> str:
    """``region`` upper-cased if phonenumbers knows it, else ValueError (one line)."""
    r = (region or "").strip().upper()
    if r not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r} (an ISO 3166 code phonenumbers knows: FR, KR, RU, CN, US ...)")
    return r


def region_for_country_code(code: str) -> str | None:
    """The main region of an E.164 country code ("33" -> "FR"), None if unknown."""
    if not code.isdigit():
        return None
    r = phonenumbers.region_code_for_country_code(int(code))
    return None if r in ("ZZ", "001") else r


def clean(raw: str | None) -> str:
    """A raw number without its separators when it is one (``06 12-34``), else stripped as it came."""
    s = (raw or "").strip()
    c = _SEPARATORS.sub("", s)
    return c if _DIALLABLE.fullmatch(c) else s


def _parse(raw: str | None, region: str) -> PhoneNumber | None:
    c = clean(raw)
    if not _DIALLABLE.fullmatch(c):
        return None
    try:
        return phonenumbers.parse(c, region)
    except NumberParseException:
        return None


def parse(raw: str | None, region: str = DEFAULT_REGION) -> PhoneNumber | None:
    """The number if it is a *possible* number (right length) of the region or of another
    country; None for anything else (short codes, extensions, garbage)."""
    n = _parse(raw, region)
    if n is None or not phonenumbers.is_possible_number(n):
        return None
    if not phonenumbers.is_valid_number(n) and len(phonenumbers.national_significant_number(n)) < _MIN_UNKNOWN:
        return None  # "1001" is not a number of Korea, even if its length is possible there
    if is_emergency(clean(raw), region):
        return None
    return n


def e164(raw: str | None, region: str = DEFAULT_REGION) -> str:
    """E.164 (``+33612345679``) when ``raw`` parses as a number of ``region`` or an
    international one; otherwise ``raw`` cleaned, kept as it came."""
    n = parse(raw, region)
    return phonenumbers.format_number(n, PhoneNumberFormat.E164) if n is not None else clean(raw)


def is_e164(number: str | None) -> bool:
    """A number :func:`e164` could convert (only those ever match a patient)."""
    return bool(number) and _E164.fullmatch(number or "") is not None


def e164_prefix(prefix: str, region: str = DEFAULT_REGION) -> str:
    """A number *prefix* as it would start E.164 numbers: ``06`` -> ``+336`` (FR),
    ``0033 6`` -> ``+336``, ``+336`` unchanged; anything else as it came (cleaned)."""
    p = clean(prefix)
    if not _DIALLABLE.fullmatch(p):
        return p
    if p.startswith("+"):
        return p
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    cc = str(phonenumbers.country_code_for_region(region))
    intl = _international_prefix(region)
    if intl and p.startswith(intl) and len(p) > len(intl):
        return "+" + p[len(intl) :]
    np_ = md.national_prefix if md is not None else None
    if np_ and p.startswith(np_):
        return "+" + cc + p[len(np_) :]
    return p


def display(number: str | None, region: str = DEFAULT_REGION) -> str:
    """National format for the region's numbers, international format for others, the
    string itself for anything that does not parse."""
    n = parse(number, region)
    if n is None:
        return number or ""
    if n.country_code == phonenumbers.country_code_for_region(region):
        return phonenumbers.format_number(n, PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(n, PhoneNumberFormat.INTERNATIONAL)


def emergency_numbers_note(region: str) -> str:
    """For messages: a few emergency numbers of the region."""
    md = phonenumbers.PhoneMetadata.short_metadata_for_region(region)
    pattern = md.emergency.national_number_pattern if md is not None and md.emergency is not None else ""
    return pattern or "112"


def is_emergency(number: str | None, region: str = DEFAULT_REGION, extra: tuple[str, ...] = ()) -> bool:
    """An emergency number of the region (phonenumbers' short-number metadata), 112, or one
    of ``extra`` -- exact match, separators ignored."""
    n = clean(number)
    if not n or not n.isdigit():
        return False
    if n == "112" or n in extra:
        return True
    return bool(shortnumberinfo.is_emergency_number(n, region))


def _international_prefix(region: str) -> str:
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if md is None:
        return "00"
    for p in (md.preferred_international_prefix, md.international_prefix):
        if p and p.isdigit():
            return p
    return "00"


def classify(number: str, plan: NumberPlan = NumberPlan()) -> Classified:
    n = clean(number)
    if not n or not _DIALLABLE.fullmatch(n):
        return Classified(n, NumberClass.INVALID)
    if is_emergency(n, plan.region, plan.emergency):
        return Classified(n, NumberClass.EMERGENCY)
    pn = _parse(n, plan.region)
    if pn is None:
        return Classified(n, NumberClass.INVALID)
    if phonenumbers.is_valid_number(pn):
        e = phonenumbers.format_number(pn, PhoneNumberFormat.E164)
        if pn.country_code != phonenumbers.country_code_for_region(plan.region):
            return Classified(n, NumberClass.INTERNATIONAL, e)
        nat = "".join(ch for ch in phonenumbers.format_number(pn, PhoneNumberFormat.NATIONAL) if ch.isdigit())
        cls = _TYPES.get(phonenumbers.number_type(pn), NumberClass.INVALID)
        return Classified(n, cls, e if cls is not NumberClass.INVALID else None, nat)
    if n.isdigit() and shortnumberinfo.is_valid_short_number_for_region(pn, plan.region):
        cost = shortnumberinfo.expected_cost_for_region(pn, plan.region)
        cheap = cost in (shortnumberinfo.ShortNumberCost.TOLL_FREE, shortnumberinfo.ShortNumberCost.STANDARD_RATE)
        return Classified(n, NumberClass.SHORT if cheap else NumberClass.PREMIUM)
    return Classified(n, NumberClass.INVALID)


def allowed(cls: str, permitted: set[str] | tuple[str, ...] | list[str]) -> bool:
    """May a caller with the ``permitted`` classes dial a number of class ``cls``?"""
    if cls == NumberClass.EMERGENCY:
        return True
    if cls == NumberClass.INVALID:
        return False
    return cls in expand_classes(permitted)


def expand_classes(names: set[str] | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Class names with the old aliases (``national``, ``local``) expanded, in CLASSES order."""
    want: set[str] = set()
    for c in names:
        want |= set(ALIASES.get(c, (c,)))
    return tuple(c for c in CLASSES if c in want)


def parse_classes(text: str) -> tuple[str, ...]:
    """``"fixed_line, mobile"`` -> ("fixed_line", "mobile") (validated, CLASSES order; the
    old names ``national`` and ``local`` are expanded)."""
    want = {c.strip().lower() for c in (text or "").split(",") if c.strip()}
    bad = want - set(CLASSES) - set(ALIASES)
    if bad:
        raise ValueError(f"unknown number class(es): {', '.join(sorted(bad))} (known: {', '.join(CLASSES)})")
    return expand_classes(want)


def rewrite(
    number: str, plan: NumberPlan = NumberPlan(), *, fmt: str = "e164", strip_prefix: str = "", add_prefix: str = ""
) -> str:
    """The number as a trunk wants it: formatted (``fmt``) from the validated number, then
    ``strip_prefix`` removed when the result starts with it, then ``add_prefix`` put in front.
    Emergency and short numbers keep the dialled digits; a number that did not validate
    raises ValueError (the guard refuses it before, this is the last line)."""
    c = classify(number, plan)
    if c.cls is NumberClass.INVALID:
        raise ValueError(f"not a valid number: {number!r}")
    out = c.number
    if c.e164 and fmt != "as_dialled":
        intl = _international_prefix(plan.region) + c.e164[1:]
        if fmt == "e164":
            out = c.e164
        elif fmt == "e164_no_plus":
            out = c.e164[1:]
        elif fmt == "international":
            out = intl
        elif fmt == "national":
            out = c.national or intl
    if strip_prefix and out.startswith(strip_prefix):
        out = out[len(strip_prefix) :]
    return add_prefix + out
