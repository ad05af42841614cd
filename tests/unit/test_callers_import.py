"""Patient-list import as clinics export it (issue 10): encodings, separators, several numbers
per patient, bad rows with their line numbers, re-import upserts by E.164; known callers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openpyxl
import pytest

from pypbx import callers as C
from pypbx.db import open_db


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(
    "codec,region,text,detected",
    [
        ("cp1252", "FR", "nom;téléphone\nHélène Müller;06 12 34 56 79\nJérôme Façon;01 23 45 67 89\n", "cp1252"),
        ("utf-16", "FR", "nom;téléphone\nHélène Müller;06 12 34 56 79\nJérôme Façon;01 23 45 67 89\n", "utf-16"),
        ("utf-8-sig", "FR", "nom;téléphone\nHélène Müller;06 12 34 56 79\nJérôme Façon;01 23 45 67 89\n", "utf-8-sig"),
        ("utf-8", "FR", "nom;téléphone\nHélène Müller;06 12 34 56 79\nJérôme Façon;01 23 45 67 89\n", "utf-8"),
        ("euc-kr", "KR", "이름,전화\n김민수,010-1234-5678\n박지현,02-123-4567\n", "euc-kr"),
        (
            "cp1251",
            "RU",
            "ФИО\tтелефон\nИванов Иван Петрович\t8 (912) 345-67-89\nСмирнова Анна\t+7 495 123-45-67\n",
            "cp1251",
        ),
        ("gb18030", "CN", "姓名,电话\n王小明,138 1234 5678\n李华,010 1234 5678\n", "gb18030"),
        # the same files on a French site: detected by their script, not by the region
        ("euc-kr", "FR", "이름,전화\n김민수,+82 10-1234-5678\n박지현,+82 2-123-4567\n", "euc-kr"),
        ("cp1251", "FR", "ФИО;телефон\nИванов Иван;+7 912 345-67-89\nСмирнова Анна;+7 495 123-45-67\n", "cp1251"),
        ("gb18030", "FR", "姓名,电话\n王小明,+86 138 1234 5678\n李华,+86 10 1234 5678\n", "gb18030"),
        # ... and a French file on a Russian site
        ("cp1252", "RU", "nom;téléphone\nHélène Müller;+33 6 12 34 56 79\nJérôme Façon;+33 1 23 45 67 89\n", "cp1252"),
    ],
)
def test_import_real_encodings(tmp_path: Path, codec, region, text, detected):
    f = tmp_path / "patients.csv"
    f.write_bytes(text.encode(codec))
    d = C.decode(f.read_bytes(), region=region)
    assert d.encoding == detected and d.detected
    assert d.text.lstrip("\ufeff") == text
    rows, problems = C.parse_csv(d.text, region)
    names = [line.split(C.sniff_delimiter(text))[0] for line in text.splitlines()[1:]]
    assert problems == [] and [r[1] for r in rows] == names
    assert all(r[0].startswith("+") for r in rows)


def test_forced_encoding_and_bad_encoding(tmp_path: Path):
    data = "name,phone\nRenée,0612345679\n".encode("cp1252")
    assert C.decode(data, "cp1252").text.startswith("name,phone\nRenée")
    assert not C.decode(data, "cp1252").detected
    with pytest.raises(C.CallersError, match="unknown encoding 'klingon'"):
        C.decode(data, "klingon")
    with pytest.raises(C.CallersError, match="the file is not utf-8"):
        C.decode(data, "utf-8")


@pytest.mark.parametrize("sep", [";", ",", "\t"])
def test_separators_keep_names(sep):
    """A ; file used to lose its names (the sniffer picked the wrong separator)."""
    text = sep.join(["Patient ID", "Nom", "Téléphone"]) + "\n" + sep.join(["P1", "Dupont, Marie", "06 12 34 56 79"])
    if sep == ",":
        text = text.replace("Dupont, Marie", '"Dupont, Marie"')
    rows, problems = C.parse_csv(text + "\n")
    assert rows == [("+33612345679", "Dupont, Marie", "P1")] and problems == []


def test_several_numbers_per_patient_and_bad_rows():
    text = (
        "patient_id;name;home phone;mobile;work;address\n"
        "P1;Alice;01 23 45 67 89;06 12 34 56 79;;12 rue de la Paix\n"  # two numbers
        "P2;Bob;;07 11 22 33 44;not a number;1 place X\n"  # one good, one bad
        "P3;Carol;;;;3 rue Y\n"  # no number
        "P4;Dan;12;;;4 rue Z\n"  # only a bad one
        '"P5";"Eve";"+44 20 7123 4567";;;"5 Baker\nStreet"\n'  # a quoted field over two lines
        "P6;Fay;;06 99 88 77 66;;\n"
    )
    rows, problems = C.parse_csv(text)
    assert rows == [
        ("+33123456789", "Alice", "P1"),
        ("+33612345679", "Alice", "P1"),
        ("+33711223344", "Bob", "P2"),
        ("+442071234567", "Eve", "P5"),
        ("+33699887766", "Fay", "P6"),
    ]
    assert problems == [
        "line 3: bad number 'not a number'",
        "line 4: no number",
        "line 5: bad number '12'",
    ]


def test_no_phone_column_is_one_line_error():
    with pytest.raises(C.CallersError, match="no phone column"):
        C.parse_csv("name;patient_id;address\nA;1;x\n")


def test_known_with_or_without_patient_id_and_reimport(tmp_path: Path):
    async def go():
        async with open_db(tmp_path / "x.db") as db:
            first = "name;mobile;patient_id\nMarie Dupont;06 12 34 56 79;\nPaul;01 23 45 67 89;P2\n"
            res = await C.import_file(db, first.encode("cp1252"))
            assert (res["imported"], res["new"], res["updated"], res["encoding"]) == (2, 2, 0, "utf-8")
            for form in ("+33612345679", "0033612345679", "33612345679", "06 12 34 56 79"):
                assert await C.known(db, form), form  # no patient id: still known
            assert not await C.known(db, "+33612345670")
            assert not await C.known(db, "anonymous") and not await C.known(db, "")
            again = "name;mobile;patient_id\nMarie Dupont-Martin;+33 6 12 34 56 79;P1\n"
            res = await C.import_file(db, again.encode())
            assert (res["imported"], res["new"], res["updated"]) == (1, 0, 1)
            rows = await C.list_callers(db)
            assert len(rows) == 2  # updated, never duplicated
            row = await C.get(db, "0612345679")
            assert row is not None and (row["name"], row["patient_id"]) == ("Marie Dupont-Martin", "P1")

    run(go())


def test_kr_and_ru_sites(tmp_path: Path):
    async def go():
        async with open_db(tmp_path / "kr.db", "KR") as db:
            await C.import_file(db, "이름,전화\n김민수,010-1234-5678\n".encode("euc-kr"))
            assert await C.known(db, "+821012345678") and await C.known(db, "01012345678")
        async with open_db(tmp_path / "ru.db", "RU") as db:
            await C.import_file(db, "ФИО;телефон\nИванов;8 (912) 345-67-89\n".encode("cp1251"))
            assert await C.known(db, "+79123456789") and await C.known(db, "89123456789")

    run(go())


def test_cli_import_says_encoding_and_shows_national(invoke_cli, make_config, tmp_path: Path):
    cfg = make_config()
    c = ("--config", str(cfg))
    f = tmp_path / "p.csv"
    f.write_bytes("nom;portable;domicile\nHélène;06 12 34 56 79;01 23 45 67 89\nX;abc;\n".encode("cp1252"))
    r = invoke_cli("callers", "import", str(f), *c)
    assert r.exit_code == 0
    assert "Imported 2 numbers (2 new, 0 updated); encoding cp1252 (detected)." in r.output
    assert "skipped line 3: bad number 'abc'" in r.output
    r = invoke_cli("callers", "import", str(f), "--encoding", "cp1252", "--json", *c)
    assert json.loads(r.output)["updated"] == 2 and json.loads(r.output)["encoding"] == "cp1252"
    r = invoke_cli("callers", "list", *c)
    assert "06 12 34 56 79" in r.output and "01 23 45 67 89" in r.output and "+336" not in r.output
    assert {x["number"] for x in json.loads(invoke_cli("callers", "list", "--json", *c).output)} == {
        "+33612345679",
        "+33123456789",
    }
    r = invoke_cli("callers", "show", "0033612345679", *c)
    assert "06 12 34 56 79" in r.output and "+33612345679" in r.output and "Hélène" in r.output
    r = invoke_cli("callers", "import", str(f), "--encoding", "nope", *c)
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith("Error: unknown encoding")


def test_bom_but_not_that_encoding_is_one_line_error():
    with pytest.raises(C.CallersError, match=r"^the file starts as utf-8-sig but is not"):
        C.decode(b"\xef\xbb\xbfname,phone\n\xff\xfe\n")


PATIENTS = [
    ("Nom", "Téléphone domicile", "Portable", "N° dossier"),
    ("Hélène Dupont", "01 23 45 67 89", "06 12 34 56 79", "P-001"),
    ("Jérôme Façon", "", "07 11 22 33 44", ""),
    ("Zoé Ñúñez", "+44 20 7123 4567", "", "P-003"),
]


def _xlsx(path: Path, rows: list[tuple[object, ...]]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


def _callers(invoke_cli, cfg: Path) -> list[tuple[str, str, str]]:
    rows = json.loads(invoke_cli("callers", "list", "--json", "--config", str(cfg)).output)
    return sorted((r["number"], r["name"], r["patient_id"] or "") for r in rows)


def test_cp1252_utf16_and_xlsx_lists_give_the_same_callers_as_utf8(invoke_cli, make_config, tmp_path: Path):
    """Issue 12's "done when": the same patient list exported as UTF-8, cp1252 (Excel on
    Windows), UTF-16 and .xlsx imports the same callers."""
    text = "".join(";".join(r) + "\n" for r in PATIENTS)
    files = {
        "utf-8": tmp_path / "utf8.csv",
        "cp1252": tmp_path / "cp1252.csv",
        "utf-16": tmp_path / "utf16.csv",
    }
    for codec, f in files.items():
        f.write_bytes(text.encode(codec))
    files["xlsx"] = _xlsx(tmp_path / "patients.xlsx", PATIENTS)
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for kind, f in files.items():
        cfg = make_config(f"{kind}.toml", data_dir=f"./var-{kind}")
        r = invoke_cli("callers", "import", str(f), "--config", str(cfg))
        assert r.exit_code == 0, r.output
        assert "Imported 4 numbers (4 new, 0 updated)" in r.output, r.output
        seen[kind] = _callers(invoke_cli, cfg)
    assert seen["utf-8"] == [
        ("+33123456789", "Hélène Dupont", "P-001"),
        ("+33612345679", "Hélène Dupont", "P-001"),
        ("+33711223344", "Jérôme Façon", ""),
        ("+442071234567", "Zoé Ñúñez", "P-003"),
    ]
    assert seen["cp1252"] == seen["utf-16"] == seen["xlsx"] == seen["utf-8"]


def test_xlsx_numbers_typed_as_numbers_and_bad_rows_keep_sheet_rows(tmp_path: Path) -> None:
    """Excel turns 0612345679 into the number 612345679 (or 33612345679.0): still the
    patient's number; a bad row is reported with the sheet's row number."""
    f = _xlsx(tmp_path / "p.xlsx", [("name", "phone"), ("A", 612345679), ("B", 33712345678.0), ("C", "abc")])
    rows, problems = C.parse_csv(C.xlsx_text(f.read_bytes()), "FR")
    assert sorted(r[:2] for r in rows) == [("+33612345679", "A"), ("+33712345678", "B")]
    assert problems == ["line 4: bad number 'abc'"]


def test_a_broken_xlsx_is_one_line_error() -> None:
    with pytest.raises(C.CallersError, match=r"^not a readable \.xlsx workbook"):
        C.xlsx_text(b"PK\x03\x04 this is not a zip")
