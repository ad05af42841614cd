"""CLI groups of the clinic's front line (issue 5): ``pypbx hours``, ``callers``, ``ivr``,
``voicemail``, ``survey``.

Kept out of ``cli.py`` (which many hands edit) and registered there with one call:
:func:`register` receives the ``cli`` group and the ``cli`` module (for its shared
helpers: ``config_option``, ``_load``, ``_table``, ``_echo_json``, ``_ts``). Every command
works on the database only; the running PBX reads menus, schedules, mailboxes and the
survey setting from the database on each call, so changes apply to the next call.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

import click

from pypbx.db import DBError, IntegrityError, open_db


class _FrontGroup(click.Group):
    """Domain errors below -> one-line ClickException (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        from pypbx.config import ConfigError
        try:
            return super().invoke(ctx)
        except (ConfigError, DBError) as e:
            raise click.ClickException(str(e)) from None
        except ValueError as e:
            # HoursError, CallersError, IvrError, VoicemailError, SurveyError ...
            if type(e).__module__.startswith("pypbx."):
                raise click.ClickException(str(e)) from None
            raise


def register(cli: click.Group, H: Any) -> None:
    """Add the front-line groups to ``cli`` (``H``: the cli module, for its helpers)."""
    config_option = H.config_option

    def on_db(ctx: click.Context, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        cfg = H._load(ctx)

        async def go() -> Any:
            async with open_db(cfg.db_path) as db:
                return await fn(db, *args, **kw)
        return asyncio.run(go())

    json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")

    # ================================================================== hours
    @cli.group("hours", cls=_FrontGroup)
    @config_option
    def hours() -> None:
        """Opening hours: weekly schedules and holidays, in the clinic's time zone."""

    @hours.command("set")
    @config_option
    @click.argument("name")
    @click.option("--week", required=True, metavar="SPEC",
                  help="e.g. 'mon-fri 08:00-18:00, sat 09:00-12:00' (several ranges a day allowed).")
    @click.option("--tz", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Paris.")
    @click.pass_context
    def hours_set(ctx: click.Context, name: str, week: str, tz: str) -> None:
        """Create or replace schedule NAME's weekly hours (its holidays are kept)."""
        from pypbx import hours as Hr
        s = on_db(ctx, Hr.set_schedule, name, week, tz)
        click.echo(f"Schedule {s.name} ({s.tz}): {Hr.format_week(s.week) or 'always closed'}.")

    @hours.command("holiday")
    @config_option
    @click.argument("name")
    @click.argument("date")
    @click.argument("ranges", nargs=-1)
    @click.option("--remove", is_flag=True, help="Remove the exception on DATE.")
    @click.pass_context
    def hours_holiday(ctx: click.Context, name: str, date: str, ranges: tuple[str, ...], remove: bool) -> None:
        """DATE (YYYY-MM-DD) closed all day, or open only during RANGES (HH:MM-HH:MM ...)."""
        from pypbx import hours as Hr
        on_db(ctx, Hr.add_exception, name, " ".join((date,) + ranges), remove=remove)
        if remove:
            click.echo(f"{name}: exception on {date} removed.")
        else:
            click.echo(f"{name}: {date} " + (" ".join(ranges) if ranges else "closed") + ".")

    @hours.command("list")
    @config_option
    @json_opt
    @click.pass_context
    def hours_list(ctx: click.Context, as_json: bool) -> None:
        """List schedules (and whether each is open now)."""
        from pypbx import hours as Hr
        rows = on_db(ctx, Hr.list_schedules)
        if as_json:
            H._echo_json([{**s.to_dict(), "open_now": Hr.is_open(s)} for s in rows])
            return
        if not rows:
            click.echo("No schedules. Add one with: pypbx hours set clinic --week 'mon-fri 08:00-18:00' "
                       "--tz Europe/Paris")
            return
        click.echo(H._table(["NAME", "TZ", "WEEK", "EXCEPTIONS", "NOW"],
                            [[s.name, s.tz, Hr.format_week(s.week) or "-", len(s.exceptions),
                              "open" if Hr.is_open(s) else "closed"] for s in rows]))

    @hours.command("show")
    @config_option
    @click.argument("name")
    @json_opt
    @click.pass_context
    def hours_show(ctx: click.Context, name: str, as_json: bool) -> None:
        """Show schedule NAME."""
        from pypbx import hours as Hr
        s = on_db(ctx, Hr.get_schedule, name)
        d = {**s.to_dict(), "open_now": Hr.is_open(s), "local_now": Hr.local_time(s).isoformat()}
        if as_json:
            H._echo_json(d)
            return
        click.echo(f"Schedule {s.name}  ({s.tz}, now {d['local_now'][:16]}: "
                   f"{'open' if d['open_now'] else 'closed'})")
        for day in Hr.DAYS:
            click.echo(f"  {day}  " + (" ".join(d["days"].get(day, [])) or "closed"))
        for day, rs in d["exceptions"].items():
            click.echo(f"  {day}  " + (" ".join(rs) or "closed (holiday)"))

    @hours.command("remove")
    @config_option
    @click.argument("name")
    @click.pass_context
    def hours_remove(ctx: click.Context, name: str) -> None:
        """Remove schedule NAME."""
        from pypbx import hours as Hr
        on_db(ctx, Hr.remove_schedule, name)
        click.echo(f"Schedule {name} removed.")

    # ================================================================== callers
    @cli.group("callers", cls=_FrontGroup)
    @config_option
    def callers() -> None:
        """Every caller number seen, and the imported patient list."""

    @callers.command("import")
    @config_option
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @json_opt
    @click.pass_context
    def callers_import(ctx: click.Context, file: str, as_json: bool) -> None:
        """Import a patient list (CSV: number, name, patient_id); re-importing updates."""
        from pypbx import callers as C
        res = on_db(ctx, C.import_csv, Path(file).read_text(encoding="utf-8-sig"))
        if as_json:
            H._echo_json(res)
            return
        click.echo(f"Imported {res['imported']} numbers ({res['new']} new, {res['updated']} updated).")
        for p in res["problems"]:
            click.echo(f"  skipped {p}", err=True)

    @callers.command("list")
    @config_option
    @click.option("--limit", default=1000, show_default=True)
    @json_opt
    @click.pass_context
    def callers_list(ctx: click.Context, limit: int, as_json: bool) -> None:
        """Callers, most recent first."""
        from pypbx import callers as C
        rows = on_db(ctx, C.list_callers, limit)
        if as_json:
            H._echo_json(rows)
            return
        if not rows:
            click.echo("No callers yet.")
            return
        click.echo(H._table(["NUMBER", "NAME", "PATIENT", "CALLS", "FIRST SEEN", "LAST SEEN", "LAST OUTCOME",
                             "LAST AGENT"],
                            [[r["number"], r["name"] or "-", r["patient_id"] or "-", r["calls"],
                              H._ts(r["first_seen"]), H._ts(r["last_seen"]), r["last_outcome"] or "-",
                              r["last_agent"] or "-"] for r in rows]))

    @callers.command("show")
    @config_option
    @click.argument("number")
    @json_opt
    @click.pass_context
    def callers_show(ctx: click.Context, number: str, as_json: bool) -> None:
        """One caller."""
        from pypbx import callers as C
        row = on_db(ctx, C.get, number)
        if row is None:
            raise click.ClickException(f"unknown caller {number}")
        if as_json:
            H._echo_json(row)
            return
        for k in ("number", "name", "patient_id", "calls", "first_seen", "last_seen", "last_outcome",
                  "last_agent", "last_call_id"):
            v = row.get(k)
            if k in ("first_seen", "last_seen"):
                v = H._ts(v)
            click.echo(f"{k.replace('_', ' '):14} {v if v not in (None, '') else '-'}")

    for extra in _LATER:
        extra(cli, H, on_db, json_opt)


#: Groups defined further down (IVR, voicemail, survey), each ``fn(cli, H, on_db, json_opt)``.
_LATER: list[Callable[..., None]] = []


# ====================================================================== IVR
def _ivr(cli: click.Group, H: Any, on_db: Callable[..., Any], json_opt: Callable) -> None:
    config_option = H.config_option

    @cli.group("ivr", cls=_FrontGroup)
    @config_option
    def ivr() -> None:
        """IVR menus: greeting, digit -> action, timeouts, languages (TOML import/export)."""

    @ivr.command("add")
    @config_option
    @click.argument("name")
    @click.option("--number", default=None, help="Dial this number to reach the menu (e.g. 700).")
    @click.option("--greeting", default=None, help="Prompt ids or WAV paths, comma-separated (default welcome).")
    @click.option("--option", "options", multiple=True, metavar="DIGITS=ACTION",
                  help="e.g. 1=queue:front, 2=menu:results, 3=extension:1001, 4=voicemail:1001, "
                       "5=play:after_hours, 6=group:nurses, 7=external:+33612345678, 8=route:triage, "
                       "9=lang:ru, 0=hangup (repeatable).")
    @click.option("--language", default=None, help="Prompt language (en, ko, ru, zh).")
    @click.option("--timeout", type=float, default=None, help="Seconds to wait for a choice.")
    @click.option("--inter-digit", type=float, default=None, help="Seconds between digits.")
    @click.option("--retries", type=int, default=None, help="Replays on no/invalid input.")
    @click.option("--on-timeout", default=None, metavar="ACTION")
    @click.option("--on-invalid", default=None, metavar="ACTION")
    @click.option("--direct-dial/--no-direct-dial", default=None, help="Allow keying an extension number.")
    @click.option("--schedule", default=None, help="Opening hours (pypbx hours) for this menu.")
    @click.option("--after-hours", default=None, metavar="ACTION", help="What closed hours do (play:clinic_closed).")
    @click.option("--known-caller", default=None, metavar="ACTION",
                  help="Smart routing: a returning patient goes straight here (e.g. queue:desk).")
    @click.option("--new-caller", default=None, metavar="ACTION",
                  help="Smart routing: a new caller goes straight here (e.g. queue:front).")
    @click.pass_context
    def ivr_add(ctx: click.Context, name: str, number: str | None, greeting: str | None,
                options: tuple[str, ...], **kw: Any) -> None:
        """Create menu NAME, or change the given settings of an existing one."""
        from pypbx import ivr as I

        async def go(db: Any) -> tuple[Any, list[str]]:
            try:
                m = await I.get_menu(db, name)
            except I.IvrError:
                m = I.Menu(name=name)
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
            for k, v in kw.items():
                if v is not None:
                    setattr(m, k, v)
            m.validate()
            warn = await I.check_references(db, m)
            await I.save_menu(db, m)
            return m, warn
        m, warn = on_db(ctx, go)
        click.echo(f"Menu {m.name}" + (f" (number {m.number})" if m.number else "") + " saved: "
                   + (", ".join(f"{k}={v}" for k, v in sorted(m.options.items())) or "no options") + ".")
        for w_ in warn:
            click.echo(f"Note: {w_}", err=True)

    @ivr.command("import")
    @config_option
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.pass_context
    def ivr_import(ctx: click.Context, file: str) -> None:
        """Create or replace the menu(s) in a TOML FILE."""
        from pypbx import ivr as I
        menus = I.from_toml(Path(file).read_text(encoding="utf-8"))

        async def go(db: Any) -> list[str]:
            warn: list[str] = []
            for m in menus:
                await I.save_menu(db, m)
            for m in menus:
                warn += [f"{m.name}: {x}" for x in await I.check_references(db, m)]
            return warn
        warn = on_db(ctx, go)
        click.echo(f"Imported {', '.join(m.name for m in menus)}.")
        for w_ in warn:
            click.echo(f"Note: {w_}", err=True)

    @ivr.command("export")
    @config_option
    @click.argument("name")
    @click.pass_context
    def ivr_export(ctx: click.Context, name: str) -> None:
        """Print menu NAME as TOML (pypbx ivr import reads it back)."""
        from pypbx import ivr as I
        click.echo(I.to_toml(on_db(ctx, I.get_menu, name)), nl=False)

    @ivr.command("list")
    @config_option
    @json_opt
    @click.pass_context
    def ivr_list(ctx: click.Context, as_json: bool) -> None:
        """List menus."""
        from pypbx import ivr as I
        menus = on_db(ctx, I.list_menus)
        if as_json:
            H._echo_json([m.to_dict() for m in menus])
            return
        if not menus:
            click.echo("No IVR menus. Add one with: pypbx ivr add main --number 700 --option 1=queue:front")
            return
        click.echo(H._table(["NAME", "NUMBER", "GREETING", "OPTIONS", "SCHEDULE"],
                            [[m.name, m.number or "-", ",".join(m.greeting),
                              " ".join(f"{k}={v}" for k, v in sorted(m.options.items())) or "-",
                              m.schedule or "-"] for m in menus]))

    @ivr.command("show")
    @config_option
    @click.argument("name")
    @json_opt
    @click.pass_context
    def ivr_show(ctx: click.Context, name: str, as_json: bool) -> None:
        """Show menu NAME."""
        from pypbx import ivr as I
        m = on_db(ctx, I.get_menu, name)
        if as_json:
            H._echo_json(m.to_dict())
            return
        click.echo(I.to_toml(m), nl=False)

    @ivr.command("remove")
    @config_option
    @click.argument("name")
    @click.pass_context
    def ivr_remove(ctx: click.Context, name: str) -> None:
        """Remove menu NAME."""
        from pypbx import ivr as I
        on_db(ctx, I.remove_menu, name)
        click.echo(f"Menu {name} removed.")


_LATER.append(_ivr)


# ====================================================================== voicemail
def _voicemail(cli: click.Group, H: Any, on_db: Callable[..., Any], json_opt: Callable) -> None:
    config_option = H.config_option

    @cli.group("voicemail", cls=_FrontGroup)
    @config_option
    def voicemail() -> None:
        """Mailboxes and messages."""

    @voicemail.command("box")
    @config_option
    @click.argument("box")
    @click.option("--number", default=None, help="Dial this number to leave a message in BOX (e.g. 801).")
    @click.option("--on-no-answer/--no-on-no-answer", default=None,
                  help="Extension BOX not answering (or not registered) -> its mailbox.")
    @click.option("--max-seconds", type=float, default=None, help="Longest message (default 120).")
    @click.option("--email", default=None, metavar="ADDR[,ADDR]",
                  help="E-mail new messages to these addresses ('' = none; see pypbx notify).")
    @click.option("--remove", is_flag=True, help="Remove the mailbox (its messages stay listed).")
    @click.pass_context
    def vm_box(ctx: click.Context, box: str, number: str | None, on_no_answer: bool | None,
               max_seconds: float | None, email: str | None, remove: bool) -> None:
        """Create or change mailbox BOX (an extension number or a queue name)."""
        from pypbx import voicemail as V
        if remove:
            on_db(ctx, V.remove_box, box)
            click.echo(f"Mailbox {box} removed.")
            return

        async def go(db: Any) -> dict:
            try:
                old = await V.get_box(db, box)
            except V.VoicemailError:
                old = {"number": None, "on_no_answer": False, "max_seconds": V.DEFAULT_MAX_SECONDS}
            return await V.set_box(db, box, number=(number or None) if number is not None else old["number"],
                                   on_no_answer=old["on_no_answer"] if on_no_answer is None else on_no_answer,
                                   max_seconds=old["max_seconds"] if max_seconds is None else max_seconds,
                                   email=email)
        b = on_db(ctx, go)
        click.echo(f"Mailbox {b['box']}: number {b['number'] or '-'}, on no answer "
                   f"{'yes' if b['on_no_answer'] else 'no'}, up to {b['max_seconds']:g} s"
                   + (f", e-mail {b['email']}." if b.get("email") else "."))

    @voicemail.command("boxes")
    @config_option
    @json_opt
    @click.pass_context
    def vm_boxes(ctx: click.Context, as_json: bool) -> None:
        """List mailboxes."""
        from pypbx import voicemail as V
        rows = on_db(ctx, V.list_boxes)
        if as_json:
            H._echo_json(rows)
            return
        if not rows:
            click.echo("No mailboxes. Add one with: pypbx voicemail box 1001 --on-no-answer")
            return
        click.echo(H._table(["BOX", "NUMBER", "ON NO ANSWER", "MAX", "MESSAGES", "NEW", "E-MAIL"],
                            [[r["box"], r["number"] or "-", "yes" if r["on_no_answer"] else "no",
                              f"{r['max_seconds']:g}s", r["messages"], r["new"], r.get("email") or "-"]
                             for r in rows]))

    @voicemail.command("list")
    @config_option
    @click.argument("box", required=False)
    @click.option("--new", "new_only", is_flag=True, help="Only messages not heard yet.")
    @json_opt
    @click.pass_context
    def vm_list(ctx: click.Context, box: str | None, new_only: bool, as_json: bool) -> None:
        """Messages in BOX (all boxes without BOX), oldest first."""
        from pypbx import voicemail as V
        rows = on_db(ctx, V.list_messages, box, new_only)
        if as_json:
            H._echo_json(rows)
            return
        if not rows:
            click.echo("No messages.")
            return
        click.echo(H._table(["ID", "BOX", "RECEIVED", "CALLER", "DID", "LENGTH", "HEARD"],
                            [[r["id"], r["box"], H._ts(r["received_at"]), r["caller"] or "-", r["did"] or "-",
                              f"{(r['seconds'] or 0):.1f}s", "yes" if r["heard"] else "NEW"] for r in rows]))

    @voicemail.command("play")
    @config_option
    @click.argument("msg_id", metavar="ID")
    @click.pass_context
    def vm_play(ctx: click.Context, msg_id: str) -> None:
        """Print the path of message ID's WAV file."""
        from pypbx import voicemail as V
        click.echo(on_db(ctx, V.get_message, msg_id)["path"])

    @voicemail.command("heard")
    @config_option
    @click.argument("msg_id", metavar="ID")
    @click.option("--unheard", is_flag=True, help="Mark it new again.")
    @click.pass_context
    def vm_heard(ctx: click.Context, msg_id: str, unheard: bool) -> None:
        """Mark message ID heard."""
        from pypbx import voicemail as V
        m = on_db(ctx, V.mark_heard, msg_id, not unheard)
        click.echo(f"Message {m['id']} marked {'new' if unheard else 'heard'}.")

    @voicemail.command("delete")
    @config_option
    @click.argument("msg_id", metavar="ID")
    @click.pass_context
    def vm_delete(ctx: click.Context, msg_id: str) -> None:
        """Delete message ID (its audio and sidecar; the row stays for the books)."""
        from pypbx import voicemail as V
        m = on_db(ctx, V.delete_message, msg_id)
        click.echo(f"Message {m['id']} deleted.")


_LATER.append(_voicemail)


# ====================================================================== survey
def _survey(cli: click.Group, H: Any, on_db: Callable[..., Any], json_opt: Callable) -> None:
    config_option = H.config_option

    @cli.group("survey", cls=_FrontGroup)
    @config_option
    def survey() -> None:
        """The post-call satisfaction survey (1-5 after the agent hangs up)."""

    @survey.command("enable")
    @config_option
    @click.option("--queue", default=None, help="Only calls of this queue (default: every call).")
    @click.pass_context
    def survey_enable(ctx: click.Context, queue: str | None) -> None:
        """Ask callers for a score when the callee hangs up first."""
        from pypbx import survey as Sv
        d = on_db(ctx, Sv.set_enabled, True, queue)
        click.echo("Survey on for " + ("every call." if d["all"] else f"queues {', '.join(d['queues'])}."))

    @survey.command("disable")
    @config_option
    @click.option("--queue", default=None, help="Only this queue (default: off everywhere).")
    @click.pass_context
    def survey_disable(ctx: click.Context, queue: str | None) -> None:
        """Stop asking."""
        from pypbx import survey as Sv
        d = on_db(ctx, Sv.set_enabled, False, queue)
        click.echo("Survey " + ("on for every call." if d["all"] else
                                f"on for queues {', '.join(d['queues'])}." if d["queues"] else "off."))

    @survey.command("report")
    @config_option
    @json_opt
    @click.pass_context
    def survey_report(ctx: click.Context, as_json: bool) -> None:
        """Answers and average score per agent."""
        from pypbx import survey as Sv

        async def go(db: Any) -> dict:
            return {**await Sv.report(db), "settings": await Sv.get_settings(db)}
        r = on_db(ctx, go)
        if as_json:
            H._echo_json(r)
            return
        st = r["settings"]
        click.echo("Survey: " + ("on for every call" if st["all"] else
                                 f"on for queues {', '.join(st['queues'])}" if st["queues"] else "off")
                   + f"; {r['answers']} answers" + (f", average {r['average']:.2f}" if r["answers"] else "") + ".")
        if r["agents"]:
            click.echo(H._table(["AGENT", "ANSWERS", "AVERAGE", "1", "2", "3", "4", "5"],
                                [[a["agent"], a["answers"], f"{a['average']:.2f}"] +
                                 [a["distribution"][str(k)] for k in range(1, 6)] for a in r["agents"]]))


_LATER.append(_survey)


# ====================================================================== ring groups
def _groups(cli: click.Group, H: Any, on_db: Callable[..., Any], json_opt: Callable) -> None:
    config_option = H.config_option

    @cli.group("group", cls=_FrontGroup)
    @config_option
    def group() -> None:
        """Ring groups: several extensions rung at once (all) or one after another (order)."""

    @group.command("add")
    @config_option
    @click.argument("name")
    @click.option("--members", required=True, metavar="EXT,EXT,...", help="Extensions, e.g. 1001,1002,1003.")
    @click.option("--strategy", type=click.Choice(["all", "order"]), default="all", show_default=True,
                  help="all: every member's phones at once; order: one member after another.")
    @click.option("--ring-time", type=click.FloatRange(1, 600), default=20.0, show_default=True,
                  help="Seconds: the whole ring (all), or each member's turn (order).")
    @click.option("--then", "then", default="", metavar="TARGET",
                  help="No answer: voicemail:BOX, queue:NAME or extension:NUMBER (default: 480 / goodbye).")
    @click.pass_context
    def group_add(ctx: click.Context, name: str, members: str, strategy: str, ring_time: float, then: str) -> None:
        """Add ring group NAME (a DID destination group:NAME, an IVR action group:NAME, a
        queue's --overflow-to ring_group:NAME)."""
        from pypbx import groups as G
        g = on_db(ctx, G.add_group, G.RingGroup(name=name, members=G.parse_members(members), strategy=strategy,
                                                 ring_time=ring_time, then=then))
        click.echo(f"Ring group {g.name}: {', '.join(g.members)} ({g.strategy}, {g.ring_time:g} s)"
                   + (f", then {g.then}" if g.then else "") + ".")

    @group.command("list")
    @config_option
    @json_opt
    @click.pass_context
    def group_list(ctx: click.Context, as_json: bool) -> None:
        """List ring groups."""
        from pypbx import groups as G
        gs = on_db(ctx, G.list_groups)
        if as_json:
            H._echo_json([g.to_dict() for g in gs])
            return
        if not gs:
            click.echo("No ring groups. Add one with: pypbx group add front_desk --members 1001,1002")
            return
        click.echo(H._table(["NAME", "MEMBERS", "STRATEGY", "RING TIME", "THEN"],
                            [[g.name, ",".join(g.members), g.strategy, f"{g.ring_time:g} s", g.then or "-"]
                             for g in gs]))

    @group.command("show")
    @config_option
    @click.argument("name")
    @json_opt
    @click.pass_context
    def group_show(ctx: click.Context, name: str, as_json: bool) -> None:
        """Show ring group NAME."""
        from pypbx import groups as G
        g = on_db(ctx, G.get_group, name)
        if as_json:
            H._echo_json(g.to_dict())
            return
        click.echo(f"name: {g.name}\nmembers: {', '.join(g.members)}\nstrategy: {g.strategy}\n"
                   f"ring time: {g.ring_time:g} s\nthen: {g.then or '- (480 / goodbye)'}\n"
                   f"created: {H._ts(g.created_at)}")

    @group.command("remove")
    @config_option
    @click.argument("name")
    @click.pass_context
    def group_remove(ctx: click.Context, name: str) -> None:
        """Remove ring group NAME."""
        from pypbx import groups as G
        on_db(ctx, G.remove_group, name)
        click.echo(f"Ring group {name} removed.")


_LATER.append(_groups)
