"""Server side of the local API: a Unix socket under the data directory.

One JSON request line in, one JSON reply line out (see ``pypbx.localapi_client`` for the
protocol and result shapes). The socket file is created mode 0600: only the PBX's own
user (and root) may drive the running PBX.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pypbx.flows.callback import missed_call

if TYPE_CHECKING:
    from pypbx.call.manager import CallManager
    from pypbx.missed import Worklist

log = logging.getLogger(__name__)

#: A command: called with the request's other keys; its result (awaited if a coroutine) is
#: the reply's ``result``, written as JSON (anything else as its ``str``).
Command = Callable[..., object]
MAX_REQUEST = 64 * 1024


class LocalApiServer:
    def __init__(self, path: Path, commands: Mapping[str, Command]) -> None:
        self.path = Path(path)
        self.commands = commands
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists():
            # A socket left by a crashed run: refuse if something still answers on it.
            try:
                _, w = await asyncio.wait_for(asyncio.open_unix_connection(str(self.path)), 1.0)
            except (TimeoutError, OSError):
                self.path.unlink()
            else:
                w.close()
                raise RuntimeError(f"another pypbx is already running with {self.path}")
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            reply = await self._execute(line)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _execute(self, line: bytes) -> dict[str, object]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise ValueError
        except ValueError:
            return {"ok": False, "error": "bad request: expected one JSON object with a 'cmd'"}
        cmd = req.pop("cmd")
        fn = self.commands.get(cmd)
        if fn is None:
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        try:
            result = fn(**req)
            if asyncio.iscoroutine(result):
                result = await result
        except TypeError as exc:
            return {"ok": False, "error": f"bad arguments for {cmd}: {exc}"}
        except Exception as exc:  # report, never crash the PBX
            log.exception("local API command %s failed", cmd)
            return {"ok": False, "error": str(exc) or exc.__class__.__name__}
        return {"ok": True, "result": result}


# --------------------------------------------------------------------------- the missed-caller worklist
def missed_commands(worklist: Worklist, cm: CallManager) -> dict[str, Command]:
    """The worklist's local API commands (``pypbx missed``; the web desk is a view of them):

    ``missed_list`` (queue=None, all=False) -> [task, ...] oldest first;
    ``missed_show`` (task) -> {"task", "calls", "attempts"};
    ``missed_claim`` (task, by) -> task;  ``missed_close`` (task, outcome, by=None) -> task;
    ``missed_call`` (task, extension) -> {"call_id", "task", "extension", "number"}.
    A task is :meth:`pypbx.missed.Task.to_dict`; errors come back as one line."""

    async def call_back(task: object, extension: str) -> dict[str, object]:
        return await missed_call(worklist, cm, task, str(extension))

    return {
        "missed_list": worklist.tasks,
        "missed_show": worklist.show,
        "missed_claim": worklist.claim,
        "missed_close": worklist.close,
        "missed_call": call_back,
    }
