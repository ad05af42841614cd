"""The callers table: every number ever seen, plus the clinic's imported patient list.

Numbers are stored E.164 (:func:`pypbx.numbers.e164` with the site's region, ``db.region``):
``06 12 34 56 79``, ``0033612345679`` and ``33612345679`` are one caller, ``+33612345679``.

* :func:`call_ended` (hooked into ``CallManager._finish`` through :class:`pypbx.frontline.FrontLine`)
  counts a call for its caller number: first/last seen, number of calls, last outcome
  (the call's disposition), last agent (kept when a later call had none — the "sticky
  agent" for smart routing).
* :func:`import_file` / :func:`import_csv` read a patient list exported from the clinic's
  system: UTF-8 (with or without BOM), UTF-16 (BOM), cp1251, cp1252, EUC-KR or GB18030
  (:func:`decode`: detected, or forced); ``;``, ``,`` or tab separated (:func:`sniff_delimiter`);
  a header row with at least one phone column (every column whose header names a phone:
  ``number``, ``phone``, ``mobile``, ``home``, ``tel``, ``portable``, ``телефон``, ``전화``,
  ``电话``...: several numbers per patient) and optionally ``name`` / ``patient_id``. Each bad
  row or number is reported with its line number. Re-importing updates name and patient id
  (upsert by E.164) and never touches the call counters.
* :func:`known` — a returning patient: on the imported list (with or without a patient id),
  or has called before. A number that is not E.164 (anonymous, short codes) never is.

CLI: ``pypbx callers import FILE [--encoding E] | list | show NUMBER`` (``--json``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from pypbx.calllog import CallerKind
from pypbx.db import Database
from pypbx.db.rows import CallerRow
from pypbx.errors import PbxError
from pypbx.numbers import DEFAULT_REGION, e164, is_e164

NAME_COLS = ("name", "full_name", "patient_name", "nom", "имя", "фио", "이름", "성명", "姓名", "名字")
ID_COLS = (
    "patient_id",
    "patient",
    "id",
    "mrn",
    "patient_no",
    "patient_number",
    "dossier",
    "n° dossier",
    "no dossier",
    "numéro de dossier",
    "chart",
)
#: A header naming a phone column (several per patient: home, mobile, work ...).
_PHONE_WORDS = re.compile(
    r"(number|phone|tel|mobile|cell|gsm|msisdn|portable|fixe|domicile|home|work|office|handy|"
    r"numéro|numero|телефон|тел|моб|전화|휴대|핸드폰|电话|手机|電話)",
    re.IGNORECASE,
)
_NOT_PHONE = re.compile(r"(address|adresse|mail|street|city|адрес|почта|주소|地址)", re.IGNORECASE)
#: Codecs tried (after BOMs and strict UTF-8), each with the script its letters should be in.
CANDIDATES = ("cp1252", "cp1251", "euc-kr", "gb18030")
_REGION_CODEC = {"RU": "cp1251", "UA": "cp1251", "BY": "cp1251", "BG": "cp1251", "KR": "euc-kr", "CN": "gb18030"}
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", *CANDIDATES)


class CallersError(PbxError, ValueError):
    pass


def normalise(number: str, region: str = DEFAULT_REGION) -> str:
    """The number as stored: E.164, or as it came when it is not a phone number."""
    return e164(number, region)


# ----------------------------------------------------------------------------- encodings


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # the codec used (utf-8, utf-8-sig, utf-16, cp1252 ...)
    detected: bool  # False when the user forced it


def _script_ok(codec: str, ch: str, run: int, glued: bool) -> bool:
    """Is non-ASCII ``ch`` plausible text in ``codec``? ``run``: how many non-ASCII characters
    in a row it stands in; ``glued``: that run touches an ASCII letter (``Hélène``)."""
    name = unicodedata.name(ch, "")
    if codec == "cp1252":  # accented Latin letters, one or two inside Latin words
        return run <= 2 and name.startswith("LATIN") and ch.isalpha()
    if codec == "cp1251":  # Cyrillic words: never a letter or two inside a Latin word
        return name.startswith("CYRILLIC") and not (glued and run <= 2)
    if codec == "euc-kr":
        return name.startswith("HANGUL")
    if codec == "gb18030":
        return name.startswith("CJK UNIFIED") or (name.startswith("CJK") and "PUNCTUATION" in name)
    return False


def score(codec: str, text: str) -> float:
    """Share of the non-ASCII characters of ``text`` that look like the script of ``codec``."""

    def ascii_letter(k: int) -> bool:
        return 0 <= k < len(text) and text[k].isascii() and text[k].isalpha()

    total = good = 0
    i = 0
    while i < len(text):
        if ord(text[i]) < 128:
            i += 1
            continue
        j = i
        while j < len(text) and ord(text[j]) >= 128:
            j += 1
        glued = ascii_letter(i - 1) or ascii_letter(j)
        for ch in text[i:j]:
            total += 1
            good += _script_ok(codec, ch, j - i, glued)
        i = j
    return good / total if total else 1.0


def decode(data: bytes, encoding: str | None = None, region: str = DEFAULT_REGION) -> Decoded:
    """Text of a patient list: ``encoding`` if given; else a byte-order mark (UTF-8, UTF-16),
    else strict UTF-8, else the candidate codec (:data:`CANDIDATES`) whose decoding looks
    most like its own script (:func:`score`); ties go to the site region's usual codec."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CallersError(f"unknown encoding {encoding!r} (e.g. {', '.join(ENCODINGS)})") from None
        try:
            return Decoded(data.decode(encoding), encoding, False)
        except UnicodeDecodeError as e:
            raise CallersError(f"the file is not {encoding}: {e.reason} at byte {e.start}") from None
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return Decoded(data.decode(codec), codec, True)
            except UnicodeDecodeError as e:
                raise CallersError(f"the file starts as {codec} but is not: {e.reason} at byte {e.start}") from None
    try:
        return Decoded(data.decode("utf-8"), "utf-8", True)
    except UnicodeDecodeError:
        pass
    first = _REGION_CODEC.get(region)
    order = ([first] if first else []) + [c for c in CANDIDATES if c != first]
    best: tuple[float, int, str, str] | None = None
    for rank, codec in enumerate(order):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        key = (score(codec, text), -rank, codec, text)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        raise CallersError(f"cannot tell the file's encoding: give --encoding ({', '.join(ENCODINGS)})")
    return Decoded(best[3], best[2], True)


# ----------------------------------------------------------------------------- CSV


def sniff_delimiter(text: str) -> str:
    """``;``, ``,`` or tab: the one the header line has most of (``,`` when none)."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (";", "\t", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _norm_header(h: str) -> str:
    return " ".join(h.strip().lower().replace("_", " ").replace("-", " ").split())


def _col(header: list[str], names: tuple[str, ...]) -> int | None:
    low = [_norm_header(h) for h in header]
    for n in names:
        n = _norm_header(n)
        if n in low:
            return low.index(n)
    return None


def phone_columns(header: list[str], exclude: set[int]) -> list[int]:
    """Every column whose header names a phone (not the name / id columns)."""
    return [
        i
        for i, h in enumerate(header)
        if i not in exclude and _PHONE_WORDS.search(h.strip()) and not _NOT_PHONE.search(h)
    ]


def _cell(rec: list[str], i: int | None) -> str:
    """Column ``i`` of a CSV record, stripped ("" when the column is absent)."""
    return rec[i].strip() if i is not None and i < len(rec) else ""


def parse_csv(text: str, region: str = DEFAULT_REGION) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(rows, problems): rows of (E.164 number, name, patient_id), one per number (a patient
    with a home and a mobile number gives two); a bad row or number is reported with its
    line number, not fatal. A number given twice: the last row wins."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sniff_delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CallersError("empty file") from None
    nm, pi = _col(header, NAME_COLS), _col(header, ID_COLS)
    phones = phone_columns(header, {i for i in (nm, pi) if i is not None})
    if not phones:
        raise CallersError(
            f"no phone column in the header {header!r} (want e.g. number, phone, mobile, home, tel, телефон, 전화, 电话)"
        )
    rows: dict[str, tuple[str, str, str]] = {}
    problems: list[str] = []
    for rec in reader:
        lineno = reader.line_num
        if not any(c.strip() for c in rec):
            continue
        found = 0
        for i in phones:
            raw = _cell(rec, i)
            if not raw:
                continue
            number = e164(raw, region)
            if not is_e164(number):
                problems.append(f"line {lineno}: bad number {raw!r}")
                continue
            found += 1
            rows[number] = (number, _cell(rec, nm), _cell(rec, pi))
        if not found and not any(_cell(rec, i) for i in phones):
            problems.append(f"line {lineno}: no number")
    return list(rows.values()), problems


class ImportResult(TypedDict):
    """What :func:`import_csv` did (``pypbx callers import --json``)."""

    imported: int
    new: int
    updated: int
    problems: list[str]
    encoding: str


async def import_csv(
    db: Database, text: str, clock: Callable[[], float] = time.time, *, encoding: str = "utf-8"
) -> ImportResult:
    rows, problems = parse_csv(text, db.region)
    existing = 0
    for n, _, _ in rows:
        if await db.get_caller_row(n) is not None:
            existing += 1
    await db.upsert_patient_rows(rows, clock())
    return {
        "imported": len(rows),
        "new": len(rows) - existing,
        "updated": existing,
        "problems": problems,
        "encoding": encoding,
    }


XLSX_MAGIC = b"PK\x03\x04"  # an .xlsx workbook is a zip archive


def _xlsx_cell(v: object) -> str:
    """A spreadsheet cell as text: a phone number typed as a number (``33612345679.0``) loses
    its float tail; dates and the rest as text."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).replace("\r", " ").replace("\n", " ")


def xlsx_text(data: bytes) -> str:
    """The first sheet of an Excel workbook as tab-separated text (one line per sheet row, so
    problems keep the sheet's row numbers), for :func:`parse_csv`."""
    import openpyxl  # only for .xlsx files: importing it costs every CLI command ~0.1 s

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CallersError(f"not a readable .xlsx workbook: {exc}") from None
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
        if ws is None:
            raise CallersError("the workbook has no sheet")
        out = io.StringIO()
        w = csv.writer(out, delimiter="\t", lineterminator="\n")
        for row in ws.iter_rows(values_only=True):
            w.writerow([_xlsx_cell(v) for v in row])
        return out.getvalue()
    finally:
        wb.close()


async def import_file(
    db: Database, data: bytes, encoding: str | None = None, clock: Callable[[], float] = time.time
) -> ImportResult:
    """A patient-list file's bytes: an Excel workbook (.xlsx, its first sheet), else text
    (:func:`decode`), then :func:`import_csv`."""
    if data.startswith(XLSX_MAGIC):
        return await import_csv(db, xlsx_text(data), clock, encoding="xlsx")
    d = decode(data, encoding, db.region)
    return await import_csv(db, d.text, clock, encoding=d.encoding)


async def call_ended(
    db: Database,
    number: str,
    outcome: str,
    agent: str | None = None,
    call_id: str | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    if not number:
        return
    await db.caller_seen_row(e164(number, db.region), clock(), outcome, agent or None, call_id)


async def _row(db: Database, number: str) -> CallerRow | None:
    return await db.get_caller_row(e164(number, db.region))


async def get(db: Database, number: str) -> CallerRow | None:
    return await _row(db, number)


async def known(db: Database, number: str) -> bool:
    """A returning patient: on the imported list (with or without a patient id) or seen
    in an earlier call. Only E.164 numbers: ``anonymous`` or a short code never is."""
    n = e164(number, db.region)
    if not is_e164(n):
        return False
    row = await db.get_caller_row(n)
    return row is not None and (row["imported_at"] is not None or bool(row["patient_id"]) or (row["calls"] or 0) > 0)


async def caller_kind(db: Database, number: str) -> CallerKind:
    """What an inbound caller is at arrival (recorded once per call, ``calls.caller_kind``):
    a patient (on the imported list with a patient id), a known number (on the list without
    an id, or called before) or new."""
    n = e164(number, db.region) if number else ""
    row = await db.get_caller_row(n) if is_e164(n) else None  # "anonymous" is always new
    if row is None:
        return CallerKind.NEW
    if row.get("patient_id"):
        return CallerKind.PATIENT
    if row.get("imported_at") is not None or (row.get("calls") or 0) > 0:
        return CallerKind.KNOWN
    return CallerKind.NEW


async def last_agent(db: Database, number: str) -> str | None:
    row = await _row(db, number)
    return row["last_agent"] if row else None


async def list_callers(db: Database, limit: int = 1000) -> list[CallerRow]:
    return await db.list_caller_rows(limit)
