"""``pypbx callers``: every caller number seen, and the imported patient list (pypbx.callers).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

from pathlib import Path

import click

from pypbx import callers as C
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.output import echo_json, json_option, table, ts
from pypbx.errors import PbxError, PbxUsageError
from pypbx.numbers import display


@click.group("callers")
@config_option
def callers() -> None:
    """Every caller number seen, and the imported patient list."""


@callers.command("import")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--encoding",
    default=None,
    help="The file's encoding (default: detected: UTF-8/UTF-16 BOM, UTF-8, cp1252, cp1251, EUC-KR, GB18030).",
)
@json_option
@click.pass_context
def callers_import(ctx: click.Context, file: str, encoding: str | None, as_json: bool) -> None:
    """Import a patient list (CSV with ; , or tab, or an Excel .xlsx workbook's first sheet:
    phone columns, name, patient_id); re-importing updates, never duplicates."""

    try:
        data = Path(file).read_bytes()
    except OSError as e:
        raise PbxError(f"cannot read {file}: {e.strerror or e}") from None
    res = on_db(ctx, C.import_file, data, encoding)
    if as_json:
        echo_json(res)
        return
    how = "Excel workbook" if res["encoding"] == "xlsx" else "given" if encoding else "detected"
    click.echo(
        f"Imported {res['imported']} numbers ({res['new']} new, {res['updated']} updated); "
        f"encoding {res['encoding']} ({how})."
    )
    for p in res["problems"]:
        click.echo(f"  skipped {p}", err=True)


@callers.command("list")
@config_option
@click.option("--limit", default=1000, show_default=True)
@json_option
@click.pass_context
def callers_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Callers, most recent first."""

    region = load(ctx).numbers.region
    rows = on_db(ctx, C.list_callers, limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No callers yet.")
        return
    click.echo(
        table(
            ["NUMBER", "NAME", "PATIENT", "CALLS", "FIRST SEEN", "LAST SEEN", "LAST OUTCOME", "LAST AGENT"],
            [
                [
                    display(r["number"], region),
                    r["name"] or "-",
                    r["patient_id"] or "-",
                    r["calls"],
                    ts(r["first_seen"]),
                    ts(r["last_seen"]),
                    r["last_outcome"] or "-",
                    r["last_agent"] or "-",
                ]
                for r in rows
            ],
        )
    )


@callers.command("show")
@config_option
@click.argument("number")
@json_option
@click.pass_context
def callers_show(ctx: click.Context, number: str, as_json: bool) -> None:
    """One caller."""

    region = load(ctx).numbers.region
    row = on_db(ctx, C.get, number)
    if row is None:
        raise PbxUsageError(f"unknown caller {number}")
    if as_json:
        echo_json(row)
        return
    fields: list[tuple[str, object]] = [
        ("number", display(row["number"], region)),
        ("e164", row["number"]),
        ("name", row["name"]),
        ("patient id", row["patient_id"]),
        ("calls", row["calls"]),
        ("first seen", ts(row["first_seen"])),
        ("last seen", ts(row["last_seen"])),
        ("last outcome", row["last_outcome"]),
        ("last agent", row["last_agent"]),
        ("last call id", row["last_call_id"]),
    ]
    for k, v in fields:
        click.echo(f"{k:14} {v if v not in (None, '') else '-'}")
