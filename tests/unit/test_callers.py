"""pypbx.callers: the callers table, the patient list import (upsert) and the CLI."""

from __future__ import annotations

import asyncio
import json

import pytest

from pypbx import callers as C
from pypbx.db import open_db

CSV = "Phone;Name;Patient_ID\n+33 1 23 45 67 89;Alice;P1\nnot a number;x;y\n0033612345678;Bob;P2\n\n"


def test_parse_csv_normalises_and_reports_bad_lines():
    rows, problems = C.parse_csv(CSV)
    assert rows == [("+33123456789", "Alice", "P1"), ("+33612345678", "Bob", "P2")]
    assert problems == ["line 3: bad number 'not a number'"]
    with pytest.raises(C.CallersError):
        C.parse_csv("name,id\nA,1\n")
    # not a phone number (an extension): never a patient, reported
    rows, problems = C.parse_csv("number,name\n1009,Desk\n")
    assert rows == [] and problems == ["line 2: bad number '1009'"]


def test_calls_counted_import_upserts_and_known(tmp_path):
    async def go():
        async with open_db(tmp_path / "x.db") as db:
            t = iter([100.0, 200.0, 300.0, 400.0, 500.0])

            def clock() -> float:
                return next(t)

            assert not await C.known(db, "+33123456789")
            await C.call_ended(db, "+33123456789", "answered", "alice", "c1", clock=clock)
            await C.call_ended(db, "+33123456789", "abandoned_queue", None, "c2", clock=clock)
            row = await C.get(db, "+33 1 23 45 67 89")
            assert (row["calls"], row["first_seen"], row["last_seen"], row["last_outcome"], row["last_agent"]) == (
                2,
                100.0,
                200.0,
                "abandoned_queue",
                "alice",
            )  # sticky agent kept
            assert await C.known(db, "+33123456789")
            res = await C.import_csv(db, CSV, clock=clock)
            assert (res["imported"], res["new"], res["updated"]) == (2, 1, 1)
            row = await C.get(db, "+33123456789")
            assert (row["name"], row["patient_id"], row["calls"]) == ("Alice", "P1", 2)  # counters untouched
            assert await C.known(db, "+33612345678")  # on the list
            res = await C.import_csv(db, "number,name,patient_id\n+33612345678,Robert,P2\n", clock=clock)
            assert res["updated"] == 1 and (await C.get(db, "+33612345678"))["name"] == "Robert"
            assert not await C.known(db, "+4400000")
            assert await C.last_agent(db, "+33123456789") == "alice"
            assert len(await C.list_callers(db)) == 2
            await C.call_ended(db, "", "answered")  # no number: nothing
            assert len(await C.list_callers(db)) == 2

    asyncio.run(go())


def test_cli_callers(invoke_cli, tmp_config, tmp_path):
    c = ("--config", str(tmp_config))
    f = tmp_path / "p.csv"
    f.write_text(CSV)
    r = invoke_cli("callers", "import", str(f), *c)
    assert r.exit_code == 0 and "Imported 2 numbers (2 new, 0 updated)" in r.output
    assert json.loads(invoke_cli("callers", "import", str(f), "--json", *c).output)["updated"] == 2
    rows = json.loads(invoke_cli("callers", "list", "--json", *c).output)
    assert {r["number"] for r in rows} == {"+33123456789", "+33612345678"}
    d = json.loads(invoke_cli("callers", "show", "+33123456789", "--json", *c).output)
    assert d["name"] == "Alice" and d["patient_id"] == "P1"
    assert "Alice" in invoke_cli("callers", "show", "+33123456789", *c).output
    r = invoke_cli("callers", "show", "999", *c)
    assert r.exit_code == 2 and "unknown caller" in r.output  # issue 12: a name that does not exist is exit 2
