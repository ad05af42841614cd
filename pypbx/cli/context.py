"""``--config PATH`` (accepted after any command), loading the config, running the
library's async calls on the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import click

from pypbx.cli.output import F
from pypbx.config import Config, config_path_from, load_config
from pypbx.db import Database, open_db
from pypbx.numbers import display

CONFIG_KEY = "pypbx.config"
CONFIG_HELP = "Config file (env PYPBX_CONFIG; default ./pypbx.toml)."

P = ParamSpec("P")
T = TypeVar("T")


def remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.find_root().meta[CONFIG_KEY] = value
    return value


def config_option(f: F) -> F:
    """``--config PATH`` accepted after any (sub)command; the last one given wins."""
    return click.option(
        "--config",
        "config",
        metavar="PATH",
        default=None,
        expose_value=False,
        callback=remember_config,
        help=CONFIG_HELP,
    )(f)


def config_path(ctx: click.Context) -> Path:
    return config_path_from(ctx.find_root().meta.get(CONFIG_KEY))


def load(ctx: click.Context) -> Config:
    return load_config(config_path(ctx))


def run(coro: Coroutine[object, object, T]) -> T:
    return asyncio.run(coro)


def db_call(cfg: Config, fn: Callable[Concatenate[Database, P], Awaitable[T]], *args: P.args, **kw: P.kwargs) -> T:
    """``await fn(db, *args, **kw)`` on ``cfg``'s database."""

    async def go() -> T:
        async with open_db(cfg.db_path, cfg.numbers.region) as db:
            return await fn(db, *args, **kw)

    return run(go())


def on_db(ctx: click.Context, fn: Callable[Concatenate[Database, P], Awaitable[T]], *args: P.args, **kw: P.kwargs) -> T:
    """``await fn(db, *args, **kw)`` on the configured database."""
    return db_call(load(ctx), fn, *args, **kw)


def shown(number: str | None, ctx: click.Context | None = None) -> str:
    """A stored (E.164) number as listings show it: the site region's national format
    (``06 12 34 56 79``), other countries' internationally, anything else as it is."""
    c = ctx or click.get_current_context()
    return display(number, load(c).numbers.region) if number else "-"
