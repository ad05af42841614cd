"""The one error hierarchy of pypbx.

Every domain error derives from :class:`PbxError`. The CLI catches ``PbxError`` once, in
its root group, and prints it as one line (``Error: <message>``) with the exception's
:attr:`~PbxError.exit_code`: 1 = the operation failed, 2 = bad usage or input
(:class:`PbxUsageError`). Where an error maps to a SIP final response, ``sip_status``
names it (``None``: no SIP meaning).
"""

from __future__ import annotations

__all__ = ["PbxError", "PbxUsageError"]


class PbxError(Exception):
    """A pypbx error with a one-line, user-facing message."""

    #: Process exit status when this error ends a CLI command.
    exit_code: int = 1
    #: The SIP final response this error maps to, when it happens on a call.
    sip_status: int | None = None


class PbxUsageError(PbxError):
    """Bad usage or input (exit status 2)."""

    exit_code = 2
