"""Client of the running PBX's local API (a Unix socket, ``Config.socket_path``).

Protocol (the server side lives in the PBX process): the client connects, writes ONE
request as a JSON object on one line (UTF-8, ``\\n``-terminated), and reads ONE reply line:

    -> {"cmd": "status"}
    <- {"ok": true, "result": {...}}        or   {"ok": false, "error": "one-line reason"}

Commands the CLI uses and the result shapes it understands:

``{"cmd": "status"}`` ->
    {"version": "0.1.0", "pid": 1234, "uptime": 12.5,                       # seconds
     "transports": [{"transport": "UDP", "host": "0.0.0.0", "port": 5060}, ...],
     "registrations": [<registration>, ...],
     "bans": [{"ip": "203.0.113.9", "reason": "auth failures", "expires_in": 540.0}, ...],
     "counters": {"requests": 10, "auth_failures": 1, "scanner_drops": 0, ...}}   # free-form ints

``{"cmd": "registrations", "aor": "1001"}`` (aor optional: all) ->
    [<registration>, ...]

<registration> = the fields of pypbx.registrations (aor, contact, source_transport, source_host,
source_port, user_agent, expires_at as wall-clock UNIX seconds ...) plus "expires_in" (seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pypbx.errors import PbxError

MAX_REPLY = 64 * 1024 * 1024


class LocalAPIError(PbxError):
    """The PBX answered with an error, or the reply was not understood."""


class NotRunningError(LocalAPIError):
    """Nothing listens on the socket: pypbx is not running."""

    def __init__(self, socket_path: str | os.PathLike[str]):
        self.socket_path = Path(socket_path)
        super().__init__(f"pypbx is not running (no socket at {socket_path})")


async def request(socket_path: str | os.PathLike[str], cmd: str, timeout: float = 5.0, **args: object) -> Any:
    """Send ``{"cmd": cmd, **args}`` and return the reply's ``result``.

    The result is decoded JSON whose shape depends on ``cmd`` (see the module docstring); it is
    typed ``Any`` because each caller reads the shape of the command it sent."""
    path = str(socket_path)
    if not os.path.exists(path):
        raise NotRunningError(path)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=MAX_REPLY), timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        raise NotRunningError(path) from None
    except TimeoutError:
        raise LocalAPIError(f"pypbx did not accept a connection on {path} within {timeout:g} s") from None
    except OSError as e:
        raise LocalAPIError(f"cannot connect to {path}: {e.strerror or e}") from None
    try:
        writer.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise LocalAPIError(f"pypbx did not answer {cmd!r} within {timeout:g} s") from None
    except (ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
        raise LocalAPIError(f"local API connection failed: {e}") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    if not line:
        raise LocalAPIError("pypbx closed the local API connection without answering")
    try:
        reply = json.loads(line)
    except ValueError:
        raise LocalAPIError("pypbx sent a malformed reply (not JSON)") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise LocalAPIError("pypbx sent a malformed reply (no 'ok')")
    if not reply["ok"]:
        raise LocalAPIError(
            str(reply.get("error") or "unknown error").splitlines()[0] if reply.get("error") else "unknown error"
        )
    return reply.get("result")


def call(socket_path: str | os.PathLike[str], cmd: str, timeout: float = 5.0, **args: object) -> Any:
    """Synchronous :func:`request` (for the CLI)."""
    return asyncio.run(request(socket_path, cmd, timeout=timeout, **args))
