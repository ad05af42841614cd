"""``pypbx ivr``: IVR menus (pypbx.ivr).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

from pathlib import Path

import click

from pypbx import ivr as I
from pypbx import prompts as P
from pypbx.acdstore import AcdError, check_prompt_id
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import remove_unused, require
from pypbx.cli.output import F, check_language, done, echo_json, json_option, languages_help, table
from pypbx.db import Database
from pypbx.destinations import require_destination
from pypbx.errors import PbxUsageError, UnknownNameError


@click.group("ivr")
@config_option
def ivr() -> None:
    """IVR menus: greeting, digit -> action, timeouts, languages (TOML import/export)."""


def _menu_options(f: F) -> F:
    """The settings ``ivr add`` and ``ivr edit`` share."""
    for opt in reversed(_OPTIONS):
        f = opt(f)
    return f


_OPTIONS = [
    click.option("--number", default=None, help="Dial this number to reach the menu (e.g. 700)."),
    click.option("--greeting", default=None, help="Prompt ids or WAV paths, comma-separated (default welcome)."),
    click.option(
        "--option",
        "options",
        multiple=True,
        metavar="DIGITS=ACTION",
        help="e.g. 1=queue:front, 2=menu:results, 3=extension:1001, 4=voicemail:1001, "
        "5=play:after_hours, 6=group:nurses, 7=external:+33612345678, 8=route:triage, "
        "9=lang:ru, 0=hangup (repeatable).",
    ),
    click.option("--language", default=None, help=languages_help()),
    click.option("--timeout", type=float, default=None, help="Seconds to wait for a choice."),
    click.option("--inter-digit", type=float, default=None, help="Seconds between digits."),
    click.option("--retries", type=int, default=None, help="Replays on no/invalid input."),
    click.option("--on-timeout", default=None, metavar="ACTION"),
    click.option("--on-invalid", default=None, metavar="ACTION"),
    click.option("--direct-dial/--no-direct-dial", default=None, help="Allow keying an extension number."),
    click.option("--schedule", default=None, help="Opening hours (pypbx hours) for this menu."),
    click.option("--after-hours", default=None, metavar="ACTION", help="What closed hours do (play:clinic_closed)."),
    click.option(
        "--known-caller",
        default=None,
        metavar="ACTION",
        help="Smart routing: a returning patient goes straight here (e.g. queue:desk).",
    ),
    click.option(
        "--new-caller",
        default=None,
        metavar="ACTION",
        help="Smart routing: a new caller goes straight here (e.g. queue:front).",
    ),
]


async def _require_references(db: Database, m: I.Menu, prompts_dir: Path) -> None:
    """Refuse (exit 2) an action whose queue, extension, ring group, mailbox or route does not
    exist, a language no prompt is made in, and a greeting prompt id that is neither shipped
    nor imported.

    A sub-menu (``menu:NAME``) that does not exist yet is only a note: menus point to each
    other ("9 = back to main"), so one of them always comes first (docs/DESIGN.md, "Set-up
    order"); ``pypbx check`` and ``pypbx run`` report it while it dangles. A route can
    always be created first (``pypbx route add NAME`` makes an empty one), so it is refused."""
    check_language(m.language or None)
    for a in [*m.options.values(), m.on_timeout, m.on_invalid, m.after_hours, m.known_caller, m.new_caller]:
        if not a:
            continue
        kind, arg = I.parse_action(a)
        if kind in ("queue", "extension", "group", "voicemail", "route"):
            await require_destination(db, f"{kind}:{arg}")
        elif kind == "lang":
            check_language(arg)
    for g in m.greeting:
        if "/" in g or g.endswith(".wav"):
            continue
        try:
            check_prompt_id(g, prompts_dir)
        except AcdError:
            known = set(P.shipped_ids()) | {f.stem for f in prompts_dir.glob("*/*.wav")}
            raise UnknownNameError("prompt", g, known) from None


def _save(
    ctx: click.Context,
    name: str,
    number: str | None,
    greeting: str | None,
    options: tuple[str, ...],
    kw: dict[str, str | float | int | bool | None],
    *,
    create: bool,
    replace: bool,
) -> tuple[I.Menu, list[str]]:
    prompts_dir = load(ctx).data_dir / "prompts"

    async def go(db: Database) -> tuple[I.Menu, list[str]]:
        try:
            existing: I.Menu | None = await I.get_menu(db, name)
        except I.IvrError:
            existing = None
        if existing is None and not create:
            raise UnknownNameError("IVR menu", name, [x.name for x in await I.list_menus(db)])
        m = existing if existing is not None and not create else I.Menu(name=name)
        if number is not None:
            m.number = number or None
        if greeting is not None:
            m.greeting = [g.strip() for g in greeting.split(",") if g.strip()]
        for o in options:
            k, sep, v = o.partition("=")
            if not sep:
                raise I.IvrError(f"bad --option {o!r} (want DIGITS=ACTION)")
            if v.strip() in ("", "none", "-"):
                m.options.pop(k.strip(), None)
            else:
                m.options[k.strip()] = v.strip()
        for setting, value in kw.items():
            if value is not None:
                setattr(m, setting, value)
        m.validate()
        await _require_references(db, m, prompts_dir)
        if create and existing is not None and not replace:
            raise PbxUsageError(
                f"IVR menu {name} already exists: change it with pypbx ivr edit {name}, or replace it with --replace"
            )
        warn = await I.check_references(db, m)
        await I.save_menu(db, m)
        return m, warn

    return on_db(ctx, go)


def _report(m: I.Menu, warn: list[str], as_json: bool) -> None:
    if as_json:
        echo_json(m.to_dict())
    else:
        click.echo(
            f"Menu {m.name}"
            + (f" (number {m.number})" if m.number else "")
            + " saved: "
            + (", ".join(f"{k}={v}" for k, v in sorted(m.options.items())) or "no options")
            + "."
        )
    for w_ in warn:
        click.echo(f"Note: {w_}", err=True)


@ivr.command("add")
@config_option
@click.argument("name")
@_menu_options
@click.option("--replace", is_flag=True, help="Replace an existing menu NAME entirely.")
@json_option
@click.pass_context
def ivr_add(
    ctx: click.Context,
    /,
    name: str,
    number: str | None,
    greeting: str | None,
    options: tuple[str, ...],
    replace: bool,
    as_json: bool,
    **kw: str | float | int | bool | None,
) -> None:
    """Create menu NAME (refused if it exists: change it with ``ivr edit``, or give --replace).

    Example: pypbx ivr add main --number 700 --option 1=queue:front --option 2=extension:1001
    """
    m, warn = _save(ctx, name, number, greeting, options, kw, create=True, replace=replace)
    _report(m, warn, as_json)


@ivr.command("edit")
@config_option
@click.argument("name")
@_menu_options
@json_option
@click.pass_context
def ivr_edit(
    ctx: click.Context,
    /,
    name: str,
    number: str | None,
    greeting: str | None,
    options: tuple[str, ...],
    as_json: bool,
    **kw: str | float | int | bool | None,
) -> None:
    """Change the given settings of menu NAME (an option ``DIGITS=none`` removes it).

    Example: pypbx ivr edit main --option 3=queue:results --timeout 6
    """
    m, warn = _save(ctx, name, number, greeting, options, kw, create=False, replace=False)
    _report(m, warn, as_json)


@ivr.command("import")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@click.pass_context
def ivr_import(ctx: click.Context, file: str, as_json: bool) -> None:
    """Create or replace the menu(s) in a TOML FILE."""

    menus = I.from_toml(Path(file).read_text(encoding="utf-8"))

    async def go(db: Database) -> list[str]:
        warn: list[str] = []
        for m in menus:
            await I.save_menu(db, m)
        for m in menus:
            warn += [f"{m.name}: {x}" for x in await I.check_references(db, m)]
        return warn

    warn = on_db(ctx, go)
    if as_json:
        echo_json({"imported": [m.name for m in menus], "notes": warn})
        return
    click.echo(f"Imported {', '.join(m.name for m in menus)}.")
    for w_ in warn:
        click.echo(f"Note: {w_}", err=True)


@ivr.command("export")
@config_option
@click.argument("name")
@click.pass_context
def ivr_export(ctx: click.Context, name: str) -> None:
    """Print menu NAME as TOML (pypbx ivr import reads it back)."""
    require(ctx, "IVR menu", name)

    click.echo(I.to_toml(on_db(ctx, I.get_menu, name)), nl=False)


@ivr.command("list")
@config_option
@json_option
@click.pass_context
def ivr_list(ctx: click.Context, as_json: bool) -> None:
    """List menus."""

    menus = on_db(ctx, I.list_menus)
    if as_json:
        echo_json([m.to_dict() for m in menus])
        return
    if not menus:
        click.echo("No IVR menus. Add one with: pypbx ivr add main --number 700 --option 1=queue:front")
        return
    click.echo(
        table(
            ["NAME", "NUMBER", "GREETING", "OPTIONS", "SCHEDULE"],
            [
                [
                    m.name,
                    m.number or "-",
                    ",".join(m.greeting),
                    " ".join(f"{k}={v}" for k, v in sorted(m.options.items())) or "-",
                    m.schedule or "-",
                ]
                for m in menus
            ],
        )
    )


@ivr.command("show")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def ivr_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show menu NAME."""
    require(ctx, "IVR menu", name)

    m = on_db(ctx, I.get_menu, name)
    if as_json:
        echo_json(m.to_dict())
        return
    click.echo(I.to_toml(m), nl=False)


@ivr.command("remove")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def ivr_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove menu NAME."""
    require(ctx, "IVR menu", name)

    on_db(ctx, remove_unused, f"ivr:{name}", I.remove_menu, name)
    done(as_json, {"menu": name, "removed": True}, f"Menu {name} removed.")
