"""pypbx.numbers: E.164, national display, number classes for the toll-fraud guard, trunk rewriting."""

from __future__ import annotations

import pytest

from pypbx.numbers import (
    CLASSES,
    DEFAULT_ALLOWED,
    NumberClass,
    NumberPlan,
    allowed,
    check_region,
    classify,
    display,
    e164,
    e164_prefix,
    is_e164,
    is_emergency,
    parse_classes,
    rewrite,
)

FR = NumberPlan()
US = NumberPlan(region="US")
KR = NumberPlan(region="KR")
RU = NumberPlan(region="RU")
CN = NumberPlan(region="CN")


@pytest.mark.parametrize(
    "region,raw,want",
    [
        ("FR", "06 12 34 56 79", "+33612345679"),
        ("FR", "+33612345679", "+33612345679"),
        ("FR", "0033612345679", "+33612345679"),
        ("FR", "33612345679", "+33612345679"),
        ("FR", "+33 (0)6 12 34 56 79", "+33612345679"),
        ("FR", "01.23.45.67.89", "+33123456789"),
        ("FR", "+44 20 7123 4567", "+442071234567"),
        ("KR", "010-1234-5678", "+821012345678"),
        ("KR", "+82 10 1234 5678", "+821012345678"),
        ("KR", "02-123-4567", "+8221234567"),
        ("RU", "8 (912) 345-67-89", "+79123456789"),
        ("RU", "+7 912 345-67-89", "+79123456789"),
        ("RU", "89123456789", "+79123456789"),
        ("CN", "138 1234 5678", "+8613812345678"),
        ("CN", "+86 138 1234 5678", "+8613812345678"),
        ("CN", "010 1234 5678", "+861012345678"),
        # not phone numbers: kept as they came (cleaned), never E.164
        ("FR", "anonymous", "anonymous"),
        ("FR", " unknown ", "unknown"),
        ("FR", "112", "112"),
        ("FR", "1001", "1001"),
        ("KR", "1001", "1001"),
        ("FR", "118218", "118218"),
        ("FR", "", ""),
    ],
)
def test_e164(region, raw, want):
    assert e164(raw, region) == want
    assert is_e164(want) == want.startswith("+")


@pytest.mark.parametrize(
    "region,number,want",
    [
        ("FR", "+33612345679", "06 12 34 56 79"),
        ("FR", "+442071234567", "+44 20 7123 4567"),
        ("KR", "+821012345678", "010-1234-5678"),
        ("KR", "+33612345679", "+33 6 12 34 56 79"),
        ("RU", "+79123456789", "8 (912) 345-67-89"),
        ("CN", "+8613812345678", "138 1234 5678"),
        ("FR", "anonymous", "anonymous"),
        ("FR", "1001", "1001"),
    ],
)
def test_display(region, number, want):
    assert display(number, region) == want


@pytest.mark.parametrize(
    "number,cls,e164_",
    [
        ("112", "emergency", None),
        ("15", "emergency", None),
        ("17", "emergency", None),
        ("0123456789", "fixed_line", "+33123456789"),
        ("01 23 45 67 89", "fixed_line", "+33123456789"),
        ("0612345678", "mobile", "+33612345678"),
        ("+33612345678", "mobile", "+33612345678"),
        ("0033612345678", "mobile", "+33612345678"),
        ("0033123456789", "fixed_line", "+33123456789"),
        ("+442071234567", "international", "+442071234567"),
        ("00442071234567", "international", "+442071234567"),
        ("0899123456", "premium", "+33899123456"),
        ("0800123456", "toll_free", "+33800123456"),
        ("0912345678", "voip", "+33912345678"),
        ("12ab", "invalid", None),
        ("", "invalid", None),
        ("+", "invalid", None),
        ("23456789", "invalid", None),  # not a French number
    ],
)
def test_classify_france(number, cls, e164_):
    c = classify(number, FR)
    assert c.cls == cls
    assert c.e164 == e164_


#: Issue 10: tried with an authenticated extension that may not call abroad, each went
#: out before (as national or local). None of them is a valid number: refused.
TOLL_FRAUD = [
    "00330881612345678",  # left a national-format trunk as 00881612345678 (satellite)
    "+330442071234567",  # ... as 00442071234567 (UK)
    "00330442071234567",
    "+3308991234567",  # ... as 008991234567
    "011442071234567",  # no length check: passed as national
    "+3300442071234567",
]


@pytest.mark.parametrize("number", TOLL_FRAUD)
def test_toll_fraud_holes_are_invalid(number):
    c = classify(number, FR)
    assert c.cls is NumberClass.INVALID and c.e164 is None
    assert not allowed(c.cls, CLASSES)  # not even with every class allowed
    with pytest.raises(ValueError, match="not a valid number"):
        rewrite(number, FR, fmt="national")


def test_premium_short_number_is_premium():
    """118218 (directory enquiries, premium) was "local" and went out verbatim."""
    c = classify("118218", FR)
    assert c.cls is NumberClass.PREMIUM
    assert not allowed(c.cls, DEFAULT_ALLOWED)
    assert classify("3624", FR).cls is NumberClass.PREMIUM


def test_classify_other_regions():
    assert classify("911", US).cls == "emergency"
    assert classify("112", US).cls == "emergency"
    assert classify("2125551234", US).cls in ("fixed_line", "mobile")
    assert classify("19005551234", US).cls == "premium"
    assert classify("011442071234567", US).cls == "international"
    assert classify("119", KR).cls == "emergency" and classify("112", KR).cls == "emergency"
    assert classify("010-1234-5678", KR).cls == "mobile"
    assert classify("02-123-4567", KR).cls == "fixed_line"
    assert classify("103", RU).cls == "emergency"
    assert classify("8 912 345-67-89", RU).cls == "mobile"
    assert classify("810 44 20 7123 4567", RU).cls == "international"
    assert classify("120", CN).cls == "emergency" and classify("110", CN).cls == "emergency"
    assert classify("13812345678", CN).cls == "mobile"
    # an extra emergency number from the config
    assert classify("115", NumberPlan(emergency=("115",))).cls == "emergency"


def test_emergency_numbers():
    for region, nums in {"FR": ("112", "15", "17", "18"), "KR": ("112", "119"), "RU": ("112", "103")}.items():
        for n in nums:
            assert is_emergency(n, region), (region, n)
    assert is_emergency("112", "CN")  # 112 everywhere
    assert not is_emergency("1001", "FR") and not is_emergency("anonymous", "FR")
    assert is_emergency("115", "FR", ("115",))


def test_permissions():
    assert allowed("fixed_line", DEFAULT_ALLOWED)
    assert allowed("mobile", DEFAULT_ALLOWED)
    assert not allowed("international", DEFAULT_ALLOWED)
    assert not allowed("premium", DEFAULT_ALLOWED)
    assert allowed("emergency", ())  # always
    assert not allowed("invalid", ("international",))
    # the old names still work
    assert allowed("fixed_line", ("national",)) and allowed("toll_free", ("national",))
    assert not allowed("mobile", ("national",))
    assert parse_classes("Mobile, fixed_line") == ("fixed_line", "mobile")
    assert parse_classes("national") == ("fixed_line", "toll_free", "shared_cost", "voip", "uan")
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
    assert rewrite("+79123456789", RU, fmt="national") == "89123456789"
    assert rewrite("+442071234567", RU, fmt="international") == "810442071234567"
    assert rewrite("+821012345678", KR, fmt="national") == "01012345678"


def test_prefixes_and_regions():
    assert e164_prefix("06", "FR") == "+336"
    assert e164_prefix("0033 6", "FR") == "+336"
    assert e164_prefix("+336", "FR") == "+336"
    assert e164_prefix("010", "KR") == "+8210"
    assert e164_prefix("8912", "RU") == "+7912"
    assert check_region("kr") == "KR"
    with pytest.raises(ValueError, match="unknown region"):
        check_region("XX")
