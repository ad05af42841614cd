"""The caller a trunk asserts (P-Asserted-Identity, Remote-Party-ID) and the caller's privacy."""

from __future__ import annotations

import pytest

from sip.identity import ANONYMOUS, asserted_caller
from sip.message import parse_message

BASE = (
    "INVITE sip:0144556677@pbx.example SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
    "From: <sip:anonymous@anonymous.invalid>;tag=1\r\n"
    "To: <sip:0144556677@pbx.example>\r\n"
    "Call-ID: a@b\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    "{extra}Content-Length: 0\r\n\r\n"
)


def caller(*headers: str) -> str | None:
    return asserted_caller(parse_message(BASE.format(extra="".join(h + "\r\n" for h in headers)).encode()))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), None),
        (("P-Asserted-Identity: <sip:+33612345679@prov.example;user=phone>",), "+33612345679"),
        (("P-Asserted-Identity: tel:+33612345679",), "+33612345679"),
        (('P-Asserted-Identity: "Jean Dupont" <sip:0612345679@prov.example>',), "0612345679"),
        # RFC 3325 §9.1: one sip and one tel identity; the tel one is the number
        (('P-Asserted-Identity: "J" <sip:0612345679@prov.example>, <tel:+33-6-12-34-56-79>',), "+33612345679"),
        (("P-Asserted-Identity: <sip:+33612345679@prov.example>", "Privacy: id"), ANONYMOUS),
        (("P-Asserted-Identity: <sip:+33612345679@prov.example>", "Privacy: user;critical"), ANONYMOUS),
        (("P-Asserted-Identity: <sip:+33612345679@prov.example>", "Privacy: none"), "+33612345679"),
        (("P-Asserted-Identity: <sip:anonymous@anonymous.invalid>",), ANONYMOUS),
        (("Remote-Party-ID: <sip:+33612345679@prov.example>;party=calling;screen=yes;privacy=off",), "+33612345679"),
        (("Remote-Party-ID: <sip:+33612345679@prov.example>;party=calling;privacy=full",), ANONYMOUS),
        (("Remote-Party-ID: <sip:+33699999999@prov.example>;party=called",), None),
        (("P-Asserted-Identity: <sip:reception@prov.example>",), None),  # not a number
        (("P-Asserted-Identity: <<garbage",), None),
    ],
)
def test_asserted_caller(headers: tuple[str, ...], expected: str | None) -> None:
    assert caller(*headers) == expected


def test_pai_wins_over_rpid() -> None:
    assert (
        caller(
            "Remote-Party-ID: <sip:+33699999999@prov.example>;party=calling",
            "P-Asserted-Identity: <sip:+33612345679@prov.example>",
        )
        == "+33612345679"
    )
