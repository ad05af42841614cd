"""Dialled numbers: classes for the toll-fraud guard, E.164 and per-trunk rewriting.

Pure functions over a :class:`NumberPlan` (the ``[numbers]`` section of the config file).
The classifier is deliberately simple and prefix-based, so an admin can read it:

1. Separators (spaces, ``-``, ``.``, ``(``, ``)``) are removed; anything left that is not
   digits (with an optional leading ``+``) is ``invalid``.
2. An exact match of ``emergency`` (112, 911, 999, 15, 17, 18, 115, 119 ... by default) is
   ``emergency`` — always allowed, never rate-limited, sent to the trunk as dialled.
3. ``+CC...`` or ``<international_prefix>CC...`` (``00`` by default): if CC is the site's
   ``country_code`` the rest is a national number (step 4 on ``national_prefix + rest``),
   otherwise ``international``.
4. A number starting with ``national_prefix`` (``0`` by default): ``premium`` if it starts
   with one of ``premium_prefixes``, ``mobile`` if with one of ``mobile_prefixes``,
   ``local`` if with one of ``local_prefixes``, else ``national``.
5. Anything else (a subscriber number dialled without the trunk prefix) is ``local``.

Extension and queue numbers never get here: they are ``internal`` and decided first by
the router. The defaults describe France (country 33, mobiles 06/07, premium 08 9x);
a clinic elsewhere sets its own in ``[numbers]``.

Permissions: an extension is allowed a set of classes (``internal,local,mobile,national``
by default, ``international`` and ``premium`` off); ``emergency`` is always allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLASSES = ("internal", "emergency", "local", "mobile", "national", "premium", "international")
DEFAULT_ALLOWED = ("internal", "local", "mobile", "national")
DEFAULT_EMERGENCY = ("112", "911", "999", "15", "17", "18", "115", "119", "110", "000", "1330")
FORMATS = ("e164", "e164_no_plus", "national", "international", "as_dialled")

_SEPARATORS = re.compile(r"[\s\-.()/]")
_VALID = re.compile(r"\+?[0-9]{1,32}")


@dataclass(frozen=True)
class NumberPlan:
    country_code: str = "33"
    national_prefix: str = "0"
    international_prefix: str = "00"
    emergency: tuple[str, ...] = DEFAULT_EMERGENCY
    mobile_prefixes: tuple[str, ...] = ("06", "07")
    local_prefixes: tuple[str, ...] = ()
    premium_prefixes: tuple[str, ...] = ("089",)
    default_allowed: tuple[str, ...] = DEFAULT_ALLOWED


@dataclass(frozen=True)
class Classified:
    number: str  # as dialled, separators removed
    cls: str  # one of CLASSES or "invalid"
    e164: str | None = None  # +CC..., when it could be worked out
    national: str | None = None  # national_prefix + subscriber number (own country only)


def clean(number: str) -> str:
    return _SEPARATORS.sub("", number or "")


def classify(number: str, plan: NumberPlan = NumberPlan()) -> Classified:
    n = clean(number)
    if not n or not _VALID.fullmatch(n):
        return Classified(n, "invalid")
    if n in plan.emergency:
        return Classified(n, "emergency")
    intl = None
    if n.startswith("+"):
        intl = n[1:]
    elif plan.international_prefix and n.startswith(plan.international_prefix):
        intl = n[len(plan.international_prefix) :]
    if intl is not None:
        if not intl:
            return Classified(n, "invalid")
        cc = plan.country_code
        if cc and intl.startswith(cc) and len(intl) > len(cc):
            nat = plan.national_prefix + intl[len(cc) :]
            return Classified(n, _national_class(nat, plan), "+" + intl, nat)
        return Classified(n, "international", "+" + intl)
    np_ = plan.national_prefix
    if np_ and n.startswith(np_) and len(n) > len(np_):
        e164 = f"+{plan.country_code}{n[len(np_) :]}" if plan.country_code else None
        return Classified(n, _national_class(n, plan), e164, n)
    return Classified(n, "local")


def _national_class(nat: str, plan: NumberPlan) -> str:
    def starts(prefixes: tuple[str, ...]) -> bool:
        return any(nat.startswith(clean(p)) for p in prefixes if clean(p))

    if starts(plan.premium_prefixes):
        return "premium"
    if starts(plan.mobile_prefixes):
        return "mobile"
    if starts(plan.local_prefixes):
        return "local"
    return "national"


def allowed(cls: str, permitted: set[str] | tuple[str, ...] | list[str]) -> bool:
    """May a caller with the ``permitted`` classes dial a number of class ``cls``?"""
    if cls == "emergency":
        return True
    if cls == "invalid":
        return False
    return cls in set(permitted)


def parse_classes(text: str) -> tuple[str, ...]:
    """``"national, mobile"`` -> ("mobile", "national") (validated, CLASSES order)."""
    want = {c.strip().lower() for c in (text or "").split(",") if c.strip()}
    bad = want - set(CLASSES)
    if bad:
        raise ValueError(f"unknown number class(es): {', '.join(sorted(bad))} (known: {', '.join(CLASSES)})")
    return tuple(c for c in CLASSES if c in want)


def rewrite(
    number: str, plan: NumberPlan = NumberPlan(), *, fmt: str = "e164", strip_prefix: str = "", add_prefix: str = ""
) -> str:
    """The number as a trunk wants it: formatted (``fmt``), then ``strip_prefix`` removed
    when the result starts with it, then ``add_prefix`` put in front. Emergency and
    local numbers, and numbers that cannot be converted, keep the dialled digits."""
    c = classify(number, plan)
    out = c.number
    if c.cls not in ("emergency", "local", "invalid") and fmt != "as_dialled":
        if fmt == "e164" and c.e164:
            out = c.e164
        elif fmt == "e164_no_plus" and c.e164:
            out = c.e164[1:]
        elif fmt == "international" and c.e164:
            out = plan.international_prefix + c.e164[1:]
        elif fmt == "national":
            if c.national:
                out = c.national
            elif c.e164:
                out = plan.international_prefix + c.e164[1:]
    if strip_prefix and out.startswith(strip_prefix):
        out = out[len(strip_prefix) :]
    return add_prefix + out
