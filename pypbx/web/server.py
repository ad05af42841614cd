"""The aiohttp application and its life in ``pypbx run`` (:class:`WebServer`, entered on the
PBX's AsyncExitStack). The application is built from the route table (pypbx.web.routes):
importing the handler modules (api, pages) registers their routes."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

import pypbx.web.reports  # the reports page's routes
import pypbx.web.supervisor  # noqa: F401 - the supervisor page's routes
from pypbx.config import Config
from pypbx.db import Database
from pypbx.events import EventBus, Subscription
from pypbx.web import api, i18n, metrics, pages, settings  # noqa: F401 - their @route decorators fill the table
from pypbx.web import recordings as _recordings  # noqa: F401 - the recordings page and its API
from pypbx.web.board import BoardCache
from pypbx.web.routes import CTX, ROUTES, SPECS, auth_middleware, headers_middleware
from pypbx.web.security import RateLimit, load_secret

if TYPE_CHECKING:
    from pypbx.acdlive import AcdLive
    from pypbx.call.manager import CallStatus
    from pypbx.missed import Worklist

log = logging.getLogger(__name__)

HERE = Path(__file__).parent


@dataclass
class WebContext:
    """What the handlers reach: the config, the database, the event stream and — in a
    running PBX — the live ACD, the worklist and the call-back action."""

    cfg: Config
    db: Database
    bus: EventBus
    secret: bytes
    acd: AcdLive | None = None
    worklist: Worklist | None = None
    missed_call: Callable[[str, str], Awaitable[dict[str, object]]] | None = None
    pbx_status: Callable[[], Mapping[str, object]] | None = None  # the running PBX's figures (/metrics)
    #: click-to-call (extension, number): the extension's phone rings first (pypbx.trunks.click_to_call)
    originate: Callable[[str, str], Awaitable[dict[str, object]]] | None = None
    login_limit: RateLimit = field(default_factory=RateLimit)
    board_cache: BoardCache = field(default_factory=BoardCache)
    streams: set[Subscription] = field(default_factory=set)
    #: the live calls (CallManager.status) in a running PBX: the supervisor page
    live_calls: Callable[[], list[CallStatus]] | None = None
    #: in a running PBX: reload the extensions' credentials (pypbx.web.settings changed them)
    extensions_changed: Callable[[], Awaitable[None]] | None = None


def jinja_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    i18n.load()  # the catalogues are read at start-up (pypbx.web.i18n: .po files, no build step)
    return env


def build_app(ctx: WebContext) -> web.Application:
    app = web.Application(
        middlewares=[headers_middleware, auth_middleware, settings.locale_middleware], client_max_size=1024 * 1024
    )
    app[CTX] = ctx
    app[pages.JINJA] = jinja_env()
    specs = {}
    for i, r in enumerate(ROUTES):
        name = f"r{i}"
        app.router.add_route(r.method, r.path, r.handler, name=name)
        specs[name] = r
    app[SPECS] = specs
    app.router.add_static("/static/", HERE / "static", name="static")

    async def close_streams(_app: web.Application) -> None:
        for sub in list(ctx.streams):
            sub.close()

    app.on_shutdown.append(close_streams)
    return app


class WebServer:
    """``[web]``: serve :func:`build_app` on bind:port (HTTPS with tls_cert/tls_key)."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        w = self.ctx.cfg.web
        ssl_ctx = None
        if w.tls_cert is not None and w.tls_key is not None:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ssl_ctx.load_cert_chain(str(w.tls_cert), str(w.tls_key))
        self.runner = web.AppRunner(build_app(self.ctx), access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, w.bind, w.port, ssl_context=ssl_ctx)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise OSError(f"web desk: cannot listen on {w.bind}:{w.port}: {exc.strerror or exc}") from exc
        log.info("web desk on %s://%s:%d/", "https" if ssl_ctx else "http", w.bind, w.port)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def make_context(
    cfg: Config,
    db: Database,
    bus: EventBus,
    *,
    acd: AcdLive | None = None,
    worklist: Worklist | None = None,
    missed_call: Callable[[str, str], Awaitable[dict[str, object]]] | None = None,
    pbx_status: Callable[[], Mapping[str, object]] | None = None,
    live_calls: Callable[[], list[CallStatus]] | None = None,
) -> WebContext:
    return WebContext(
        cfg,
        db,
        bus,
        load_secret(cfg.data_dir),
        acd=acd,
        worklist=worklist,
        missed_call=missed_call,
        pbx_status=pbx_status,
        live_calls=live_calls,
    )
