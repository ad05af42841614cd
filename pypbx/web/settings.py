"""Settings (admin): the daily changes non-specialists make, in the browser — extensions
(list, add, reset the password: the generated password is shown once), agents (skills, and
so the queues they answer), opening hours and holidays, a queue's overflow target and its
callback settings. Everything else stays in the CLI.

The pages (``/settings/...``) are server-rendered lists with small forms; static/settings.js
sends each form to the JSON API below (``/api/v1/settings/...``: admins only, CSRF, every
change audited) and shows a refusal as one line next to the field it is about. The handlers
call the very library functions the CLI calls (pypbx.extensions, pypbx.acdstore,
pypbx.hours, pypbx.missed), so the messages are the CLI's (``unknown queue 'fornt' (did you
mean front?)``).

Also here: the page language (:func:`locale_middleware`: the user's stored locale, else the
browser's) and ``POST /locale``, the header's language form, open to every login.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from pypbx import acdstore as S
from pypbx import destinations as D
from pypbx import extensions as E
from pypbx import hours as Hr
from pypbx import missed as M
from pypbx.errors import PbxError, UnknownNameError
from pypbx.numbers import is_emergency
from pypbx.web import accounts as A
from pypbx.web import i18n
from pypbx.web.pages import NAV, render
from pypbx.web.routes import (
    ADMINS,
    EVERYONE,
    PRINCIPAL,
    SPECS,
    Handler,
    client_ip,
    ctx_of,
    json_reply,
    principal,
    route,
)

log = logging.getLogger(__name__)

V1 = "/api/v1/settings"
T = TypeVar("T")

NAV.append(("/settings", i18n.N_("Settings"), ADMINS))

#: the sections of the settings pages: (path, label)
SECTIONS: list[tuple[str, str]] = [
    ("/settings/extensions", i18n.N_("Extensions")),
    ("/settings/agents", i18n.N_("Agents")),
    ("/settings/hours", i18n.N_("Opening hours")),
    ("/settings/queues", i18n.N_("Queues")),
]


# --------------------------------------------------------------------------- the page language


@web.middleware
async def locale_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages speak the logged-in user's language (``web_users.locale``), else the browser's."""
    info = request.match_info
    spec = request.app[SPECS].get((info.route.name if info.route is not None else None) or "")
    if spec is not None and spec.page:
        lang = None
        p = request.get(PRINCIPAL)
        if p is not None and p.user_id is not None:
            row = await ctx_of(request).db.web_user_row_by_id(p.user_id)
            lang = row["locale"] if row is not None and row["locale"] in i18n.LOCALES else None
        if lang is None and request.query.get("lang") in i18n.LOCALES:  # a TV's URL: /board?token=…&lang=fr
            lang = request.query["lang"]
        request[i18n.LOCALE_KEY] = lang or i18n.negotiate(request.headers.get("Accept-Language"))
    return await handler(request)


@route("POST", "/locale", roles=EVERYONE, page=True, summary="Change the logged-in user's language (form: locale).")
async def set_locale_form(request: web.Request) -> web.Response:
    p = principal(request)
    form = await request.post()
    back = str(form.get("next", "/"))
    if not back.startswith("/") or back.startswith("//") or "\\" in back:
        back = "/"  # a local path only (no open redirect)
    if p.user_id is None:
        raise web.HTTPForbidden(text="a token has no language to change")
    try:
        await A.set_locale(ctx_of(request).db, p.name, str(form.get("locale", "")), by=p.name)
    except PbxError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    raise web.HTTPFound(back)


# --------------------------------------------------------------------------- the pages


@route("GET", "/settings", roles=ADMINS, page=True, summary="Settings: to the first section.")
async def settings_home(request: web.Request) -> web.Response:
    raise web.HTTPFound(SECTIONS[0][0])


@route("GET", "/settings/extensions", roles=ADMINS, page=True, summary="Settings: extensions.")
async def extensions_page(request: web.Request) -> web.Response:
    return render(
        request, "settings_extensions.html", sections=SECTIONS, extensions=await E.list_extensions(ctx_of(request).db)
    )


@route("GET", "/settings/agents", roles=ADMINS, page=True, summary="Settings: agents, their skills and queues.")
async def agents_page(request: web.Request) -> web.Response:
    return render(request, "settings_agents.html", sections=SECTIONS, agents=await _agents(request))


@route("GET", "/settings/hours", roles=ADMINS, page=True, summary="Settings: opening hours and holidays.")
async def hours_page(request: web.Request) -> web.Response:
    schedules = await Hr.list_schedules(ctx_of(request).db)
    return render(
        request,
        "settings_hours.html",
        sections=SECTIONS,
        schedules=[{**s.to_dict(), "open_now": Hr.is_open(s)} for s in schedules],
    )


@route("GET", "/settings/queues", roles=ADMINS, page=True, summary="Settings: queues' overflow and callbacks.")
async def queues_page(request: web.Request) -> web.Response:
    db = ctx_of(request).db
    return render(
        request,
        "settings_queues.html",
        sections=SECTIONS,
        queues=await _queues(request),
        schedules=[s.name for s in await Hr.list_schedules(db)],
        destinations=await _destinations(request),
    )


# --------------------------------------------------------------------------- API helpers


class FieldError(Exception):
    """A refused value: ``message`` (the library's one line) is about form field ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _refused(field: str, message: str) -> web.HTTPException:
    body = json.dumps({"error": message, "field": field})
    return web.HTTPBadRequest(text=body, content_type="application/json")


async def _on(field: str, op: Awaitable[T]) -> T:
    """``await op``; a PbxError becomes :class:`FieldError` on ``field``."""
    try:
        return await op
    except PbxError as exc:
        raise FieldError(field, str(exc)) from None


def _check(field: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PbxError as exc:
        raise FieldError(field, str(exc)) from None


async def _body(request: web.Request) -> dict[str, object]:
    try:
        data = await request.json()
    except ValueError:
        raise _refused("", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise _refused("", "the body must be a JSON object")
    return data


def _text(body: dict[str, object], key: str) -> str:
    v = body.get(key)
    return "" if v is None else str(v).strip()


def _flag(body: dict[str, object], key: str) -> bool | None:
    v = body.get(key)
    return v if isinstance(v, bool) else None


async def _changed(
    request: web.Request, action: str, target: str, work: Callable[[], Awaitable[T]], detail: str | None = None
) -> T:
    """Run ``work``; a refusal is a 400 naming its field (and audited as refused); a change is audited."""
    ctx, p = ctx_of(request), principal(request)
    try:
        out = await work()
    except FieldError as exc:
        await A.audit(ctx.db, p.name, action, target, f"refused: {exc}", client_ip(request), ok=False)
        raise _refused(exc.field, str(exc)) from None
    await A.audit(ctx.db, p.name, action, target, detail, client_ip(request))
    if ctx.acd is not None:
        await ctx.acd.sync()  # the live ACD takes the change now
    return out


# --------------------------------------------------------------------------- extensions


@route("GET", f"{V1}/extensions", roles=ADMINS, summary="The extensions (pypbx ext list).")
async def api_extensions(request: web.Request) -> web.Response:
    exts = await E.list_extensions(ctx_of(request).db)
    return json_reply(
        [{"number": e.number, "name": e.name, "enabled": e.enabled, "created_at": e.created_at} for e in exts]
    )


@route(
    "POST",
    f"{V1}/extensions",
    roles=ADMINS,
    summary="Add an extension (body: {number, name}); the answer has its generated password, shown once.",
)
async def api_extension_add(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await _body(request)
    number, name = _text(body, "number"), _text(body, "name")
    cfg = ctx.cfg

    async def work() -> tuple[E.Extension, str]:
        n = _check("number", lambda: E.validate_number(number))
        if is_emergency(n, cfg.numbers.region, cfg.numbers.emergency):
            raise FieldError("number", f"{n} is an emergency number in {cfg.numbers.region}: it cannot be an extension")
        if await ctx.db.get_extension_row(n) is not None:
            raise FieldError("number", f"extension {n} already exists")
        return await _on("name", E.add_extension(ctx.db, n, name, cfg.sip.realm))

    e, pw = await _changed(request, "settings.ext.add", number, work, f"name={name}" if name else None)
    if ctx.extensions_changed is not None:
        await ctx.extensions_changed()  # the registrar knows the new phone now
    return json_reply({"number": e.number, "name": e.name, "realm": cfg.sip.realm, "password": pw})


@route(
    "POST",
    f"{V1}/extensions/{{number}}/password",
    roles=ADMINS,
    summary="Give an extension a new generated password (shown once in the answer).",
)
async def api_extension_password(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    number = request.match_info["number"]

    async def work() -> str:
        return await _on("number", E.set_password(ctx.db, number, ctx.cfg.sip.realm))

    pw = await _changed(request, "settings.ext.passwd", number, work)
    if ctx.extensions_changed is not None:
        await ctx.extensions_changed()
    return json_reply({"number": number, "password": pw})


# --------------------------------------------------------------------------- agents


async def _agents(request: web.Request) -> list[dict[str, object]]:
    db = ctx_of(request).db
    agents, queues = await S.list_agents(db), await S.list_queues(db)
    return [_agent_dict(a, queues) for a in agents]


def _agent_dict(a: S.AgentRecord, queues: list[S.QueueRecord]) -> dict[str, object]:
    return {
        "id": a.id,
        "name": a.name,
        "extension": a.extension,
        "state": a.state,
        "skills": S.format_skills(a.skills) if a.skills else "",
        "queues": [q.name for q in queues if S.qualified_agents(q.config, [a])],
    }


@route("GET", f"{V1}/agents", roles=ADMINS, summary="The agents, their skills and the queues they answer.")
async def api_agents(request: web.Request) -> web.Response:
    return json_reply(await _agents(request))


@route(
    "POST",
    f"{V1}/agents/{{agent}}/skills",
    roles=ADMINS,
    summary="Replace an agent's skills (body: {skills: 'new_patients:8,korean:5'}); the queues follow.",
)
async def api_agent_skills(request: web.Request) -> web.Response:
    db = ctx_of(request).db
    agent = request.match_info["agent"]
    skills = _text(await _body(request), "skills")

    async def work() -> S.AgentRecord:
        await _on("agent", S.get_agent(db, agent))
        return await _on("skills", S.set_skills(db, agent, skills))

    a = await _changed(request, "settings.agent.skills", agent, work, skills or "-")
    return json_reply(_agent_dict(a, await S.list_queues(db)))


# --------------------------------------------------------------------------- opening hours


@route("GET", f"{V1}/hours", roles=ADMINS, summary="The opening-hours schedules and their holidays (pypbx hours list).")
async def api_hours(request: web.Request) -> web.Response:
    return json_reply([{**s.to_dict(), "open_now": Hr.is_open(s)} for s in await Hr.list_schedules(ctx_of(request).db)])


@route(
    "POST",
    f"{V1}/hours/{{name}}",
    roles=ADMINS,
    summary="Create or replace a schedule's week (body: {week: 'mon-fri 08:00-18:00', tz}).",
)
async def api_hours_set(request: web.Request) -> web.Response:
    db = ctx_of(request).db
    name = request.match_info["name"]
    body = await _body(request)
    week, tz = _text(body, "week"), _text(body, "tz") or None

    async def work() -> Hr.Schedule:
        if tz is not None:
            _check("tz", lambda: Hr.zone(tz))
        _check("week", lambda: Hr.parse_week(week))
        return await _on("name", Hr.set_schedule(db, name, week, tz))

    s = await _changed(request, "settings.hours.set", name, work, week)
    return json_reply(s.to_dict())


@route(
    "POST",
    f"{V1}/hours/{{name}}/holidays",
    roles=ADMINS,
    summary="Close a day, or open it only at some hours, or (remove: true) undo it (body: {date, ranges, remove}).",
)
async def api_hours_holiday(request: web.Request) -> web.Response:
    db = ctx_of(request).db
    name = request.match_info["name"]
    body = await _body(request)
    date, ranges, remove = _text(body, "date"), _text(body, "ranges"), _flag(body, "remove") is True

    async def work() -> Hr.Schedule:
        if not remove and ranges:
            _check("ranges", lambda: Hr.parse_week(f"mon {ranges}"))
        return await _on("date", Hr.add_exception(db, name, " ".join(x for x in (date, ranges) if x), remove=remove))

    s = await _changed(request, "settings.hours.holiday", name, work, f"{date} {'removed' if remove else ranges}")
    return json_reply(s.to_dict())


# --------------------------------------------------------------------------- queues


async def _queues(request: web.Request) -> list[dict[str, object]]:
    db = ctx_of(request).db
    cb = await M.queue_callback_settings(db)
    out: list[dict[str, object]] = []
    for rec in await S.list_queues(db):
        c = rec.config
        q = cb.get(c.name)
        out.append(
            {
                "name": c.name,
                "overflow_after": c.overflow.after if c.overflow else None,
                "overflow_to": S.format_target(c.overflow.target) if c.overflow else "",
                "callback_allowed": c.callback_allowed,
                "auto_callback": q["auto_callback"] if q else False,
                "callback_max_attempts": c.callback_max_attempts,
                "callback_retry_delay": c.callback_retry_delay,
                "callback_hours": (q["callback_hours"] if q else None) or "",
            }
        )
    return out


async def _destinations(request: web.Request) -> list[str]:
    """What an overflow may point to (the form's suggestions)."""
    db = ctx_of(request).db
    out = [f"queue:{q.name}" for q in await S.list_queues(db)]
    out += [f"extension:{e.number}" for e in await E.list_extensions(db)]
    return out


def _seconds_field(body: dict[str, object], key: str) -> str | None:
    v = _text(body, key)
    return v or None


@route("GET", f"{V1}/queues", roles=ADMINS, summary="Each queue's overflow target and callback settings.")
async def api_queues(request: web.Request) -> web.Response:
    return json_reply(await _queues(request))


@route(
    "POST",
    f"{V1}/queues/{{name}}",
    roles=ADMINS,
    summary="Change a queue's overflow (overflow_after, overflow_to; '' = none) and callback settings "
    "(callback_allowed, auto_callback, callback_max_attempts, callback_retry_delay, callback_hours).",
)
async def api_queue_edit(request: web.Request) -> web.Response:
    db = ctx_of(request).db
    name = request.match_info["name"]
    body = await _body(request)
    after, to = _seconds_field(body, "overflow_after"), _text(body, "overflow_to")
    hours = body.get("callback_hours")
    cb_hours = None if hours is None else str(hours).strip()

    async def work() -> None:
        await _on("name", S.get_queue(db, name))
        opts: dict[str, str | None] = {}
        if "overflow_to" in body or "overflow_after" in body:
            if not to or to.lower() == "none":
                opts["overflow_to"] = "none"
            else:
                if to.lower() not in ("voicemail", "vm"):
                    await _on("overflow_to", D.require_destination(db, to))
                _check("overflow_to", lambda: S.parse_target(to) if to.lower() not in ("voicemail", "vm") else None)
                if after is None:
                    raise FieldError("overflow_after", "overflow needs both a time and a destination")
                opts["overflow_to"], opts["overflow_after"] = to, after
        if cb_hours:
            known = [s.name for s in await Hr.list_schedules(db)]
            if cb_hours not in known:
                raise FieldError("callback_hours", str(UnknownNameError("schedule", cb_hours, known)))
        try:
            await S.change_queue(
                db,
                name,
                callback_allowed=_flag(body, "callback_allowed"),
                callback_max_attempts=_seconds_field(body, "callback_max_attempts"),
                callback_retry_delay=_seconds_field(body, "callback_retry_delay"),
                overflow_to=opts.get("overflow_to"),
                overflow_after=opts.get("overflow_after"),
            )
        except PbxError as exc:
            raise FieldError(_queue_field(str(exc)), str(exc)) from None
        auto = _flag(body, "auto_callback")
        if auto is not None or cb_hours is not None:
            await _on("callback_hours", M.set_queue_callback(db, name, auto_callback=auto, callback_hours=cb_hours))

    detail = " ".join(f"{k}={body[k]}" for k in sorted(body))
    await _changed(request, "settings.queue.edit", name, work, detail[:500])
    row = next(q for q in await _queues(request) if q["name"] == name)
    return json_reply(row)


def _queue_field(message: str) -> str:
    """Which field a refusal of ``acdstore.change_queue`` is about (its message names it)."""
    for words, field in (
        ("overflow after", "overflow_after"),
        ("callback attempts", "callback_max_attempts"),
        ("callback retry delay", "callback_retry_delay"),
        ("overflow", "overflow_to"),
    ):
        if words in message:
            return field
    return ""
