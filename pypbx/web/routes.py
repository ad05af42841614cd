"""THE route table: every page and API route, with the roles that reach it — authorisation
in one place. Handlers register with :func:`route`; :func:`auth_middleware` resolves who is
asking (bearer token, session cookie, or — only on routes marked ``query_token`` — a
wallboard token in ``?token=`` for a TV), refuses anonymous callers (pages: 302 to /login,
API: 401), refuses other roles (403) and checks the CSRF token of every non-GET request
made with a session cookie. A route is public only if declared ``roles=PUBLIC``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from pypbx.web import accounts as A
from pypbx.web import security as S
from pypbx.web.accounts import Principal, Role

if TYPE_CHECKING:
    from pypbx.web.server import WebContext

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC: frozenset[Role] = frozenset()
EVERYONE = frozenset(Role)
STAFF = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT})
SUPERVISORS = frozenset({Role.ADMIN, Role.SUPERVISOR})
ADMINS = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    roles: frozenset[Role]  # PUBLIC: no login needed
    page: bool  # an HTML page (anonymous: redirect to /login) or the API (401)
    query_token: bool  # a wallboard token in ?token= is accepted (a TV's URL)
    summary: str


#: every route of the web desk, in registration order (server.build_app adds them to the router)
ROUTES: list[RouteSpec] = []


def route(
    method: str,
    path: str,
    *,
    roles: frozenset[Role],
    page: bool = False,
    query_token: bool = False,
    summary: str = "",
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append(RouteSpec(method, path, fn, roles, page, query_token, summary or (fn.__doc__ or "").strip()))
        return fn

    return register


CTX: web.AppKey[WebContext] = web.AppKey("pypbx_ctx")
SPECS: web.AppKey[dict[str, RouteSpec]] = web.AppKey("pypbx_specs")
#: who is asking (set by auth_middleware on every non-public route) and their CSRF token ("" for tokens)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("pypbx_principal", Principal)
CSRF: web.RequestKey[str] = web.RequestKey("pypbx_csrf", str)


def ctx_of(request: web.Request) -> WebContext:
    return request.app[CTX]


def principal(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    assert p is not None, "a public route asked who is logged in"
    return p


def client_ip(request: web.Request) -> str:
    return request.remote or "-"


def api_error(status: int, message: str) -> web.HTTPException:
    """An API error: ``{"error": message}`` with ``status``."""
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound}
    exc_cls = cls.get(status, web.HTTPConflict)
    return exc_cls(text=f'{{"error": {_json_str(message)}}}', content_type="application/json")


def json_reply(data: object, status: int = 200) -> web.Response:
    """A JSON answer (dates and other objects as their str())."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


async def json_body(request: web.Request) -> dict[str, object]:
    """The request's JSON object ({} without a body); 400 with one message otherwise."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise api_error(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise api_error(400, "the body must be a JSON object")
    return data


def _json_str(s: str) -> str:
    return json.dumps(s)


def may_act_on_agent(p: Principal, agent_id: str) -> bool:
    """Supervisors and admins act on every agent; an agent only on themself."""
    return p.role in SUPERVISORS or (p.role is Role.AGENT and p.agent_id == agent_id)


async def _who(request: web.Request, spec: RouteSpec) -> tuple[Principal | None, str | None]:
    """(principal, its CSRF nonce: None for tokens, which need no CSRF token)."""
    ctx = ctx_of(request)
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return await A.check_token(ctx.db, auth[7:].strip()), None
    cookie = request.cookies.get(S.SESSION_COOKIE)
    if cookie:
        sess = S.read_session(ctx.secret, cookie, ctx.cfg.web.session_hours * 3600.0)
        if sess is not None:
            row = await ctx.db.web_user_row_by_id(sess.user_id)
            if row is not None and row["password_changed_at"] <= sess.issued + 0.001:
                locked = row["locked_until"] is not None and row["locked_until"] > time.time()
                if not locked:
                    p = Principal(row["name"], Role(row["role"]), row["agent_id"], "session", row["id"])
                    return p, sess.nonce
    token = request.query.get("token")
    if token and spec.query_token and request.method == "GET":
        tv = await A.check_token(ctx.db, token)
        if tv is not None and tv.role is Role.WALLBOARD:
            return tv, None
    return None, None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = request.match_info
    name = info.route.name if info.route is not None else None
    spec = request.app[SPECS].get(name or "")
    if spec is None:  # static files, 404 and 405 answers
        return await handler(request)
    if spec.roles == PUBLIC:
        return await handler(request)
    p, nonce = await _who(request, spec)
    if p is None:
        if spec.page:
            raise web.HTTPFound(f"/login?next={request.path_qs if request.method == 'GET' else '/'}")
        raise api_error(401, "log in or send a bearer token")
    if p.role not in spec.roles:
        await A.audit(
            ctx_of(request).db,
            p.name,
            "forbidden",
            f"{request.method} {request.path}",
            None,
            client_ip(request),
            ok=False,
        )
        raise api_error(403, f"a {p.role.value} login may not do this")
    if request.method not in ("GET", "HEAD") and nonce is not None:
        given = request.headers.get(S.CSRF_HEADER)
        if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            given = str((await request.post()).get(S.CSRF_FIELD, ""))
        if not S.csrf_ok(ctx_of(request).secret, nonce, given):
            await A.audit(ctx_of(request).db, p.name, "csrf.refused", request.path, None, client_ip(request), ok=False)
            raise api_error(403, "missing or wrong CSRF token (reload the page)")
    request[PRINCIPAL] = p
    request[CSRF] = S.csrf_token(ctx_of(request).secret, nonce) if nonce is not None else ""
    return await handler(request)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer (no framing, no sniffing, same-origin scripts only)."""
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
        _secure(resp)
        raise
    _secure(resp)
    return resp


def _secure(resp: web.StreamResponse) -> None:
    if resp.prepared:
        return
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
    )
