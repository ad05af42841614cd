"""The database: SQLite through aiosqlite. The only package that speaks SQL.

Everything else goes through :class:`Database` methods, so that another backend (PostgreSQL,
issue 17) can replace SQLite behind this package.

Layout:

* ``core.py`` — the connection (open, WAL, pragmas), transactions, generic statement helpers,
  ``data_version``, the ``meta`` table. The only module that touches the driver's connection.
* ``migrate.py`` + ``migrations/NNNN_name.sql`` (or ``.py``) — the numbered schema migrations
  and their runner. To change the schema, ADD the next numbered file; never edit a released one.
* ``rows.py`` — the row TypedDicts the queries return, and the ``*_FIELDS`` column lists.
* one query module per domain (``extensions``, ``registrations``, ``calls``, ``acd``,
  ``frontline``, ``callers``, ``voicemail``, ``notify``, ``trunks``, ``routes``), each a
  :class:`~pypbx.db.core.DatabaseCore` subclass; ``database.py`` combines them into
  :class:`Database`. A new query goes into its domain's module (a new domain: a new module,
  added to :class:`Database`'s bases).

Usage::

    async with open_db(cfg.db_path, cfg.numbers.region) as db:
        rows = await db.list_extension_rows()
"""

from pypbx.db.database import Database, data_version, open_db
from pypbx.db.errors import DBError, IntegrityError, SchemaTooNewError
from pypbx.db.migrate import MIGRATIONS, SCHEMA_VERSION, Migration
from pypbx.db.rows import (
    AGENT_FIELDS,
    CALL_FIELDS,
    CALLBACK_FIELDS,
    EXTENSION_FIELDS,
    RECORDING_FIELDS,
    REGISTRATION_FIELDS,
    AcdStateRow,
    AgentEventRow,
    AgentRow,
    CallbackRow,
    CallerRow,
    CallEventRow,
    CallRow,
    CallSearchRow,
    DidRow,
    ExtensionPermissionRow,
    ExtensionRow,
    IvrMenuRow,
    NotificationRow,
    Params,
    QueueEventRow,
    QueueNumberRow,
    QueueRow,
    RecordingRow,
    RegistrationRow,
    RingGroupRow,
    RouteRow,
    RouteRuleRow,
    Row,
    ScheduleRow,
    SecurityEventRow,
    SQLValue,
    SurveyRow,
    TrunkRow,
    VoicemailBoxRow,
    VoicemailRow,
)

__all__ = [
    "AGENT_FIELDS",
    "CALLBACK_FIELDS",
    "CALL_FIELDS",
    "EXTENSION_FIELDS",
    "MIGRATIONS",
    "RECORDING_FIELDS",
    "REGISTRATION_FIELDS",
    "SCHEMA_VERSION",
    "AcdStateRow",
    "AgentEventRow",
    "AgentRow",
    "CallEventRow",
    "CallRow",
    "CallSearchRow",
    "CallbackRow",
    "CallerRow",
    "DBError",
    "Database",
    "DidRow",
    "ExtensionPermissionRow",
    "ExtensionRow",
    "IntegrityError",
    "IvrMenuRow",
    "Migration",
    "NotificationRow",
    "Params",
    "QueueEventRow",
    "QueueNumberRow",
    "QueueRow",
    "RecordingRow",
    "RegistrationRow",
    "RingGroupRow",
    "RouteRow",
    "RouteRuleRow",
    "Row",
    "SQLValue",
    "ScheduleRow",
    "SchemaTooNewError",
    "SecurityEventRow",
    "SurveyRow",
    "TrunkRow",
    "VoicemailBoxRow",
    "VoicemailRow",
    "data_version",
    "open_db",
]
