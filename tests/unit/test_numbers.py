"""pypbx.numbers: number classes for the toll-fraud guard, E.164, trunk rewriting."""

from __future__ import annotations

import pytest

from pypbx.numbers import NumberPlan, allowed, classify, parse_classes, rewrite

FR = NumberPlan()
US = NumberPlan(
    country_code="1",
    national_prefix="1",
    international_prefix="011",
    mobile_prefixes=(),
    premium_prefixes=("1900",),
    emergency=("911",),
)


@pytest.mark.parametrize(
    "number,cls,e164",
    [
        ("112", "emergency", None),
        ("15", "emergency", None),
        ("0123456789", "national", "+33123456789"),
        ("01 23 45 67 89", "national", "+33123456789"),
        ("0612345678", "mobile", "+33612345678"),
        ("+33612345678", "mobile", "+33612345678"),
        ("0033612345678", "mobile", "+33612345678"),
        ("0033123456789", "national", "+33123456789"),
        ("+442071234567", "international", "+442071234567"),
        ("00442071234567", "international", "+442071234567"),
        ("0899123456", "premium", "+33899123456"),
        ("23456789", "local", None),
        ("12ab", "invalid", None),
        ("", "invalid", None),
        ("+", "invalid", None),
    ],
)
def test_classify_france(number, cls, e164):
    c = classify(number, FR)
    assert c.cls == cls
    assert c.e164 == e164


def test_classify_local_prefixes_and_other_plan():
    plan = NumberPlan(local_prefixes=("01",))
    assert classify("0123456789", plan).cls == "local"
    assert classify("0223456789", plan).cls == "national"
    assert classify("911", US).cls == "emergency"
    assert classify("12125551234", US).cls == "national"
    assert classify("19005551234", US).cls == "premium"
    assert classify("011442071234567", US).cls == "international"


def test_permissions():
    default = ("internal", "local", "mobile", "national")
    assert allowed("national", default)
    assert not allowed("international", default)
    assert not allowed("premium", default)
    assert allowed("emergency", ())  # always
    assert not allowed("invalid", ("international",))
    assert parse_classes("National, mobile") == ("mobile", "national")
    with pytest.raises(ValueError, match="unknown number class"):
        parse_classes("national,moon")


def test_rewrite():
    assert rewrite("0123456789", FR, fmt="e164") == "+33123456789"
    assert rewrite("0033123456789", FR, fmt="e164_no_plus") == "33123456789"
    assert rewrite("+33123456789", FR, fmt="national") == "0123456789"
    assert rewrite("+442071234567", FR, fmt="national") == "00442071234567"
    assert rewrite("0123456789", FR, fmt="international") == "0033123456789"
    assert rewrite("0123456789", FR, fmt="as_dialled") == "0123456789"
    assert rewrite("112", FR, fmt="e164") == "112"  # emergency as dialled
    assert rewrite("0123456789", FR, fmt="e164", strip_prefix="+", add_prefix="9") == "933123456789"
