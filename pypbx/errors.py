"""The one error hierarchy of pypbx.

Every domain error derives from :class:`PbxError`. The CLI catches ``PbxError`` once, in
its root group, and prints it as one line (``Error: <message>``) with the exception's
:attr:`~PbxError.exit_code`: 1 = the operation failed, 2 = bad usage or input
(:class:`PbxUsageError`). Where an error maps to a SIP final response, ``sip_status``
names it (``None``: no SIP meaning).

Bad usage or input, exit 2: click's usage errors (an unknown command or option, a bad
value, a missing argument -- one line, made so in the CLI's root group), a filter,
reference or single-object command naming something that does not exist
(:class:`UnknownNameError`, with the closest valid names), a file that is not what the
command reads. Failed, exit 1: the PBX not running, an object still in use
(:class:`InUseError`), a database or system failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["InUseError", "PbxError", "PbxUsageError", "UnknownNameError", "did_you_mean"]


class PbxError(Exception):
    """A pypbx error with a one-line, user-facing message."""

    #: Process exit status when this error ends a CLI command.
    exit_code: int = 1
    #: The SIP final response this error maps to, when it happens on a call.
    sip_status: int | None = None


class PbxUsageError(PbxError):
    """Bad usage or input (exit status 2)."""

    exit_code = 2


def did_you_mean(value: str, valid: Iterable[str]) -> str:
    """``" (did you mean answered?)"``, ``" (valid: a, b, c)"`` for a short list, or ``""``."""
    choices = sorted({v for v in valid if v})
    close = difflib.get_close_matches(value, choices, n=3, cutoff=0.5)
    if close:
        return f" (did you mean {' or '.join(close)}?)"
    if not choices:
        return " (there are none yet)"
    if len(choices) <= 8:
        return f" (valid: {', '.join(choices)})"
    return ""


class UnknownNameError(PbxUsageError):
    """A filter or reference naming something that does not exist: ``unknown queue 'nope'
    (did you mean front?)``."""

    def __init__(self, what: str, value: str, valid: Iterable[str] = ()) -> None:
        self.what = what
        self.value = value
        super().__init__(f"unknown {what} {value!r}{did_you_mean(value, valid)}")


class InUseError(PbxError):
    """Removing an object that something still points to (exit 1: it failed, naming what)."""
