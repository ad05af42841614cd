"""The callers table: every number ever seen, plus the clinic's imported patient list.

* :func:`call_ended` (hooked into ``CallManager._finish`` through :class:`pypbx.frontline.FrontLine`)
  counts a call for its caller number: first/last seen, number of calls, last outcome
  (the call's disposition), last agent (kept when a later call had none — the "sticky
  agent" for smart routing).
* :func:`import_csv` reads a patient list exported from the clinic's system: a header row
  with ``number`` and at least one of ``name`` / ``patient_id`` (also accepted: ``phone``,
  ``id``, ``patient``); numbers are normalised (spaces, dashes, dots and brackets dropped;
  a leading ``00`` becomes ``+``). Re-importing updates name and patient id (upsert) and
  never touches the call counters.
* :func:`known` — a returning patient: on the imported list, or has called before.

CLI: ``pypbx callers import FILE | list | show NUMBER`` (``--json``).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from typing import Any, TypedDict, cast

from pypbx.calllog import CallerKind
from pypbx.db import Database
from pypbx.db.rows import CallerRow
from pypbx.errors import PbxError

_NUMBER_RE = re.compile(r"^\+?[0-9*#]{2,32}$")
NUMBER_COLS = ("number", "phone", "telephone", "tel", "msisdn")
NAME_COLS = ("name", "full_name", "patient_name")
ID_COLS = ("patient_id", "patient", "id", "mrn")


class CallersError(PbxError, ValueError):
    pass


def normalise(number: str) -> str:
    n = re.sub(r"[\s\-.()/]", "", number.strip())
    if n.startswith("00"):
        n = "+" + n[2:]
    return n


def _col(header: list[str], names: tuple[str, ...]) -> int | None:
    low = [h.strip().lower() for h in header]
    for n in names:
        if n in low:
            return low.index(n)
    return None


def _cell(rec: list[str], i: int | None) -> str:
    """Column ``i`` of a CSV record, stripped ("" when the column is absent)."""
    return rec[i].strip() if i is not None and i < len(rec) else ""


def parse_csv(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(rows, problems): rows of (number, name, patient_id); a bad line is reported, not fatal."""
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise CallersError("empty file") from None
    ni, nm, pi = _col(header, NUMBER_COLS), _col(header, NAME_COLS), _col(header, ID_COLS)
    if ni is None:
        raise CallersError(f"no number column in the header {header!r} (want one of {', '.join(NUMBER_COLS)})")
    rows: dict[str, tuple[str, str, str]] = {}
    problems: list[str] = []
    for lineno, rec in enumerate(reader, start=2):
        if not any(c.strip() for c in rec):
            continue
        number = normalise(_cell(rec, ni))
        if not _NUMBER_RE.match(number):
            problems.append(f"line {lineno}: bad number {_cell(rec, ni)!r}")
            continue
        rows[number] = (number, _cell(rec, nm), _cell(rec, pi))
    return list(rows.values()), problems


class ImportResult(TypedDict):
    """What :func:`import_csv` did (``pypbx callers import --json``)."""

    imported: int
    new: int
    updated: int
    problems: list[str]


async def import_csv(db: Database, text: str, clock: Callable[[], float] = time.time) -> ImportResult:
    rows, problems = parse_csv(text)
    existing = 0
    for n, _, _ in rows:
        if await db.get_caller_row(n) is not None:
            existing += 1
    await db.upsert_patient_rows(rows, clock())
    return {"imported": len(rows), "new": len(rows) - existing, "updated": existing, "problems": problems}


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
    await db.caller_seen_row(number, clock(), outcome, agent or None, call_id)


async def _row(db: Database, number: str) -> CallerRow | None:
    row = await db.get_caller_row(number)
    if row is None and normalise(number) != number:
        row = await db.get_caller_row(normalise(number))
    return row


async def get(db: Database, number: str) -> dict[str, Any] | None:
    # dict[str, Any], not CallerRow: pypbx/screenpop.py and pypbx/cli/callers.py read it with .get(name)
    return cast("dict[str, Any] | None", await _row(db, number))


async def known(db: Database, number: str) -> bool:
    """A returning patient: on the imported list or seen in an earlier call."""
    row = await _row(db, number)
    return row is not None and (bool(row.get("patient_id")) or (row.get("calls") or 0) > 0)


async def caller_kind(db: Database, number: str) -> CallerKind:
    """What an inbound caller is at arrival (recorded once per call, ``calls.caller_kind``):
    a patient (on the imported list with a patient id), a known number (on the list without
    an id, or called before) or new."""
    row = await _row(db, number) if number else None
    if row is None:
        return CallerKind.NEW
    if row.get("patient_id"):
        return CallerKind.PATIENT
    if row.get("imported_at") is not None or (row.get("calls") or 0) > 0:
        return CallerKind.KNOWN
    return CallerKind.NEW


async def last_agent(db: Database, number: str) -> str | None:
    row = await _row(db, number)
    return row.get("last_agent") if row else None


async def list_callers(db: Database, limit: int = 1000) -> list[CallerRow]:
    return await db.list_caller_rows(limit)
