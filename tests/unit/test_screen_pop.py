"""pypbx.screenpop: the From display name a ringing phone shows (service line + patient)."""

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace

from pypbx import screenpop as sp


def test_display_with_service_line_and_name():
    assert sp.display_name("Appointments", "Marie Dupont", "+33612345678") == "Appointments: Marie Dupont"


def test_display_with_service_line_unknown_name_shows_number():
    assert sp.display_name("Appointments", None, "+33612345678") == "Appointments: +33612345678"
    assert sp.display_name("Appointments", "  ", "+33612345678") == "Appointments: +33612345678"


def test_display_without_service_line():
    assert sp.display_name("", "Marie Dupont", "+33612345678") == "Marie Dupont"
    assert sp.display_name(None, None, "+33612345678") == ""


def test_display_truncated_to_cap():
    d = sp.display_name("Urgent line", "Marie-Christine de La Tour d'Auvergne", "+33612345678")
    assert len(d) == sp.MAX_DISPLAY
    assert d.startswith("Urgent line: Marie-Christine") and d.endswith("…")


def test_quote_escapes_quotes_backslashes_and_drops_controls():
    assert sp.quote('Jean "Jojo" Martin') == r'"Jean \"Jojo\" Martin"'
    assert sp.quote("a\\b") == r'"a\\b"'
    assert sp.quote("evil\r\nVia: x") == '"evilVia: x"'
    assert sp.quote("Zoë Müller") == '"Zoë Müller"'


def test_from_header():
    assert sp.from_header("Results: Zoë", "+33612345678", "10.0.0.1") == '"Results: Zoë" <sip:+33612345678@10.0.0.1>'
    assert sp.from_header("", "+33612345678", "10.0.0.1") == "sip:+33612345678@10.0.0.1"


def test_from_header_parses_back_as_name_addr():
    from sip.message import NameAddr

    na = NameAddr.parse(sp.from_header('Jean "J" \\ M', "0612", "pbx"))
    assert na.display == 'Jean "J" \\ M'
    assert na.uri.user == "0612"


class FakeDb:
    region = "FR"

    def __init__(self, rows):
        self.rows, self.lookups = rows, 0

    async def get_caller_row(self, number):
        self.lookups += 1
        return self.rows.get(number)


@dataclass
class Sess:
    caller: str
    rec: object
    screen_pop: str | None = None


def test_caller_from_looks_up_once_and_caches():
    db = FakeDb({"+33612345678": {"name": "Marie Dupont"}})
    cm = SimpleNamespace(db=db, front_door="127.0.0.1:5060")
    s = Sess("+33612345678", SimpleNamespace(service_line="Appointments"))
    want = '"Appointments: Marie Dupont" <sip:+33612345678@127.0.0.1>'
    assert asyncio.run(sp.caller_from(cm, s)) == want
    assert asyncio.run(sp.caller_from(cm, s)) == want
    assert db.lookups == 1


def test_caller_from_unknown_no_service_line_is_bare_uri():
    cm = SimpleNamespace(db=FakeDb({}), front_door="127.0.0.1:5060")
    s = Sess("1001", SimpleNamespace(service_line=None))
    assert asyncio.run(sp.caller_from(cm, s)) == "sip:1001@127.0.0.1"
