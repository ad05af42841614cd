"""The database's exceptions, and the one place that turns driver errors into them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from pypbx.errors import PbxError


class DBError(PbxError):
    """A database problem worth one line to the user."""


class SchemaTooNewError(DBError):
    pass


class IntegrityError(DBError):
    """A constraint was violated (duplicate primary key, foreign key ...)."""


@contextmanager
def sql_errors() -> Iterator[None]:
    """sqlite3 exceptions -> IntegrityError / DBError (one line), so callers need not know SQLite."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        raise IntegrityError(str(e)) from None
    except sqlite3.Error as e:
        raise DBError(f"database error: {e}") from None
