"""Log lines about one call carry its id: ``call 0123456789ab: <message>``.

:func:`call_log` wraps a module's logger (``logging.getLogger(__name__)``) for one call;
the id is read when a line is logged (a call gets its record, and so its id, only once its
INVITE arrived) and is also set as ``record.call_id`` (the full id) for handlers that
want it as a field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pypbx.call.session import Call

    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter

#: How many characters of a call's id the log lines show.
SHORT_ID = 12


class CallLogger(_Adapter):
    """A logger for one call (a :class:`Call`, or a call record's id)."""

    def __init__(self, logger: logging.Logger, call: Call | str | None) -> None:
        super().__init__(logger, {})
        self.call = call

    @property
    def call_id(self) -> str | None:
        if self.call is None or isinstance(self.call, str):
            return self.call
        return self.call.rec.id if self.call.rec is not None else None

    def process(self, msg: object, kwargs: MutableMapping[str, object]) -> tuple[object, MutableMapping[str, object]]:
        cid = self.call_id
        extra = kwargs.get("extra", {})
        kwargs["extra"] = {**(extra if isinstance(extra, Mapping) else {}), "call_id": cid}
        if cid:
            msg = f"call {cid[:SHORT_ID]}: {msg}"
        return msg, kwargs


def call_log(logger: logging.Logger, call: Call | str | None) -> CallLogger:
    """``logger`` for lines about ``call``."""
    return CallLogger(logger, call)
