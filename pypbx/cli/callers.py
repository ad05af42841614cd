"""``pypbx callers``: every caller number seen, and the imported patient list (pypbx.callers).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

from pathlib import Path

import click

from pypbx import callers as C
from pypbx.cli.context import config_option, on_db
from pypbx.cli.output import echo_json, json_option, table, ts
from pypbx.errors import PbxError


@click.group("callers")
@config_option
def callers() -> None:
    """Every caller number seen, and the imported patient list."""


@callers.command("import")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@click.pass_context
def callers_import(ctx: click.Context, file: str, as_json: bool) -> None:
    """Import a patient list (CSV: number, name, patient_id); re-importing updates."""

    res = on_db(ctx, C.import_csv, Path(file).read_text(encoding="utf-8-sig"))
    if as_json:
        echo_json(res)
        return
    click.echo(f"Imported {res['imported']} numbers ({res['new']} new, {res['updated']} updated).")
    for p in res["problems"]:
        click.echo(f"  skipped {p}", err=True)


@callers.command("list")
@config_option
@click.option("--limit", default=1000, show_default=True)
@json_option
@click.pass_context
def callers_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Callers, most recent first."""

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
                    r["number"],
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

    row = on_db(ctx, C.get, number)
    if row is None:
        raise PbxError(f"unknown caller {number}")
    if as_json:
        echo_json(row)
        return
    for k in (
        "number",
        "name",
        "patient_id",
        "calls",
        "first_seen",
        "last_seen",
        "last_outcome",
        "last_agent",
        "last_call_id",
    ):
        v = row.get(k)
        if k in ("first_seen", "last_seen"):
            v = ts(v)
        click.echo(f"{k.replace('_', ' '):14} {v if v not in (None, '') else '-'}")
