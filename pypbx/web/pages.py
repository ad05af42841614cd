"""The HTML pages: login / logout, the home redirect, the wallboard. Server-rendered
(jinja2, templates/), strings through ``_()`` for translation; the pages' scripts use the
JSON API (/api/v1/) and the event stream themselves.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from pypbx import acdstore as AS
from pypbx import events as E
from pypbx import reasons as R
from pypbx.web import accounts as A
from pypbx.web import desk as D
from pypbx.web import i18n
from pypbx.web import routes as RT
from pypbx.web import security as S
from pypbx.web.accounts import Role
from pypbx.web.routes import CSRF, EVERYONE, PRINCIPAL, PUBLIC, client_ip, ctx_of, principal, route

JINJA: web.AppKey[jinja2.Environment] = web.AppKey("pypbx_jinja")

#: the navigation every page shows: (path, label, the roles that see it) — later pages add theirs here
NAV: list[tuple[str, str, frozenset[Role]]] = [
    ("/board", "Wallboard", EVERYONE),
    ("/desk", "Agent desk", RT.STAFF),
]


def render(request: web.Request, template: str, status: int = 200, **context: object) -> web.Response:
    env = request.app[JINJA]
    p = request.get(PRINCIPAL)
    nav = [(path, label) for path, label, roles in NAV if p is not None and p.role in roles]
    lang = request.get(i18n.LOCALE_KEY) or i18n.negotiate(request.headers.get("Accept-Language"))
    html = i18n.render_in(
        lang,
        lambda: env.get_template(template).render(
            user=p,
            nav=nav,
            csrf=request.get(CSRF, ""),
            path=request.path,
            lang=lang,
            fmt=i18n.Lang(lang),
            languages=i18n.choices(),
            **context,
        ),
    )
    return web.Response(text=html, status=status, content_type="text/html", headers={"Content-Language": lang})


def _cookie_args(request: web.Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "Strict", "secure": ctx_of(request).cfg.web.tls, "path": "/"}


def _safe_next(target: str | None) -> str:
    """Only a local path (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


@route("GET", "/login", roles=PUBLIC, page=True, summary="The login form.")
async def login_form(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    nonce = request.cookies.get(S.PRE_COOKIE) or secrets.token_urlsafe(16)
    resp = render(
        request,
        "login.html",
        login_csrf=S.csrf_token(ctx.secret, nonce),
        next=_safe_next(request.query.get("next")),
        error=None,
    )
    resp.set_cookie(S.PRE_COOKIE, nonce, max_age=3600, **_cookie_args(request))  # type: ignore[arg-type]
    return resp


@route("POST", "/login", roles=PUBLIC, page=True, summary="Log in (form: name, password, csrf).")
async def login_submit(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    ip = client_ip(request)
    form = await request.post()
    nonce = request.cookies.get(S.PRE_COOKIE, "")
    if not nonce or not S.csrf_ok(ctx.secret, nonce, str(form.get(S.CSRF_FIELD, ""))):
        await A.audit(ctx.db, "-", "csrf.refused", "/login", None, ip, ok=False)
        raise web.HTTPForbidden(text="missing or wrong CSRF token (reload the login page)")
    if not ctx.login_limit.allow(ip):
        raise web.HTTPTooManyRequests(text="too many login attempts; wait a minute")
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    w = ctx.cfg.web
    try:
        p = await A.authenticate(
            ctx.db, name, password, ip=ip, lock_after=w.lock_after, lock_seconds=w.lock_minutes * 60.0
        )
    except A.LoginRefused as exc:
        return render(
            request, "login.html", status=401, login_csrf=S.csrf_token(ctx.secret, nonce), next=nxt, error=str(exc)
        )
    assert p.user_id is not None
    value, _sess = S.sign_session(ctx.secret, p.user_id, time.time())
    if p.role is Role.WALLBOARD:
        nxt = "/board"
    resp = web.HTTPFound(nxt)
    resp.set_cookie(S.SESSION_COOKIE, value, max_age=w.session_hours * 3600, **_cookie_args(request))  # type: ignore[arg-type]
    resp.del_cookie(S.PRE_COOKIE, path="/")
    raise resp


@route("POST", "/logout", roles=EVERYONE, page=True, summary="Log out (form: csrf).")
async def logout(request: web.Request) -> web.Response:
    await A.audit(ctx_of(request).db, principal(request).name, "logout", None, None, client_ip(request))
    resp = web.HTTPFound("/login")
    resp.del_cookie(S.SESSION_COOKIE, path="/")
    raise resp


@route("GET", "/", roles=EVERYONE, page=True, summary="Home: the page of the user's role.")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/board")


@route("GET", "/board", roles=EVERYONE, page=True, query_token=True, summary="The wallboard.")
async def board_page(request: web.Request) -> web.Response:
    p = principal(request)
    token = request.query.get("token", "") if p.via == "token" else ""
    w = ctx_of(request).cfg.web
    return render(request, "board.html", token=token, warn=w.board_wait_warn, alarm=w.board_wait_alarm, tv=bool(token))


@route("GET", "/desk", roles=RT.STAFF, page=True, summary="The agent desk (?agent=ID for a supervisor or admin).")
async def desk_page(request: web.Request) -> web.Response:
    """An agent's own desk; a supervisor or admin picks the agent (``?agent=``)."""
    ctx, p = ctx_of(request), principal(request)
    agents = await AS.list_agents(ctx.db)
    wanted = request.query.get("agent", "")
    if p.role is Role.AGENT:
        if wanted and wanted != p.agent_id:
            await A.audit(ctx.db, p.name, "forbidden", f"GET /desk?agent={wanted}", None, client_ip(request), ok=False)
            raise RT.api_error(403, f"an agent login may open its own desk only, not {wanted}'s")
        wanted = p.agent_id or ""
    agent = next((a for a in agents if a.id == wanted), None)
    choices = [(a.id, a.name) for a in agents] if p.role in RT.SUPERVISORS else []
    if agent is None:
        return render(request, "desk.html", agent=None, choices=choices, wanted=wanted)
    return render(
        request,
        "desk.html",
        agent=agent,
        choices=choices,
        wanted=wanted,
        pause_reasons=D.PAUSE_REASONS,
        reasons=[(r.code, r.label) for r in await R.list_reasons(ctx.db)],
        outcomes=[o.value for o in E.Outcome],
    )
