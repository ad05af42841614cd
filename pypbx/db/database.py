"""The :class:`Database` every caller gets from :func:`open_db`: the connection core plus every
domain's queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pypbx.db.acd import AcdQueries
from pypbx.db.callers import CallerQueries
from pypbx.db.calls import CallQueries
from pypbx.db.core import connect
from pypbx.db.extensions import ExtensionQueries
from pypbx.db.frontline import FrontLineQueries
from pypbx.db.missed import MissedQueries
from pypbx.db.notify import NotifyQueries
from pypbx.db.priority import PriorityQueries
from pypbx.db.quality import QualityQueries
from pypbx.db.reasons import ReasonQueries
from pypbx.db.registrations import RegistrationQueries
from pypbx.db.retention import RetentionQueries
from pypbx.db.routes import RouteQueries
from pypbx.db.trunks import TrunkQueries
from pypbx.db.voicemail import VoicemailQueries
from pypbx.db.web import WebQueries
from pypbx.numbers import DEFAULT_REGION


class Database(
    ExtensionQueries,
    RegistrationQueries,
    CallQueries,
    AcdQueries,
    FrontLineQueries,
    CallerQueries,
    VoicemailQueries,
    NotifyQueries,
    TrunkQueries,
    RouteQueries,
    ReasonQueries,
    PriorityQueries,
    MissedQueries,
    WebQueries,
    QualityQueries,
    RetentionQueries,
):
    """One connection with every query. Safe to share between tasks of one event loop."""


@asynccontextmanager
async def open_db(path: str | Path, region: str = DEFAULT_REGION) -> AsyncIterator[Database]:
    """Open (creating the file and its directory if needed) and migrate; close on exit.
    ``region``: the site's (``[numbers] region``; numbers are stored E.164 with it)."""
    async with connect(path, region) as (conn, p, version):
        yield Database(conn, p, version, region)


async def data_version(db: Database) -> int:
    """``PRAGMA data_version``: changes whenever ANOTHER connection commits to the database.

    The running PBX polls this (cheap) to notice changes made by the CLI and reload."""
    return await db.data_version()
