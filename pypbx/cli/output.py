"""Shared output of the CLI: ``--json`` on every listing, tables, times, one-line errors."""

from __future__ import annotations

import functools
import json
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import click

from pypbx import prompts as _prompts
from pypbx import sitetime
from pypbx.errors import PbxUsageError, did_you_mean

F = TypeVar("F", bound=Callable[..., object])


def json_option(f: F) -> F:
    """``--json``: machine-readable output (the flag every listing has)."""
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


@functools.cache
def prompt_languages() -> tuple[str, ...]:
    """The prompt languages callers can hear: those of the shipped prompt catalog
    (``ivr_prompts/manifest.toml``'s voices), in its order -- what every ``--language`` /
    ``--lang`` help lists and accepts, never a list typed into the CLI."""
    manifest = tomllib.loads((_prompts.SHIPPED / "manifest.toml").read_text(encoding="utf-8"))
    return tuple(manifest.get("voices") or {})


def languages_help(default: str | None = "en") -> str:
    """``"Prompt language: en, ko, ru, zh or fr (default en)."`` from the catalog."""
    *head, last = prompt_languages()
    listed = f"{', '.join(head)} or {last}" if head else last
    return f"Prompt language: {listed}" + (f" (default {default})." if default else ".")


def check_language(value: str | None) -> None:
    """An unknown prompt language: one line naming the accepted ones, exit 2."""
    if value is not None and value not in prompt_languages():  # always all of them: "de" is not "close to en"
        raise PbxUsageError(f"unknown language {value!r} (valid: {', '.join(prompt_languages())})")


def echo_json(obj: object) -> None:
    """JSON-serialisable output (dicts, lists, dataclass dicts; anything else goes through ``str``)."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "") -> str:
    """Left-aligned columns two spaces apart; ``None`` prints as an empty cell."""
    cells = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
    return "\n".join(lines)


def ts(t: float | None) -> str:
    """UNIX seconds as ``YYYY-MM-DD HH:MM`` on the site's clock (``-`` when unset)."""
    if not t:
        return "-"
    return sitetime.local(t).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 03m 05s``, ``1d 2h 03m`` (``-`` when unknown)."""
    if seconds is None:
        return "-"
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def hms(seconds: float | None) -> str:
    """Durations in tables: ``0:00:42``, ``1:03:05``, ``26:00:00`` (``-`` when unknown)."""
    if seconds is None:
        return "-"
    s = int(max(0, seconds))
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}:{m:02d}:{s:02d}"


def bad_parameter_line(e: click.BadParameter) -> str:
    """click's bad option value as one line, with the closest choice when it has choices:
    ``invalid value for --format: 'weird' (did you mean e164?)``."""
    if isinstance(e, click.MissingParameter):
        return e.format_message().rstrip(".")
    param = e.param
    hint = e.param_hint if isinstance(e.param_hint, str) else None
    name = hint or (param.opts[0] if param is not None and param.opts else (param.name if param else "value"))
    message = e.message
    if param is not None and isinstance(param.type, click.Choice):
        ctx = e.ctx
        raw = None
        if ctx is not None and param.name is not None:
            raw = ctx.params.get(param.name)
        choices = [str(c) for c in param.type.choices]
        bad = _bad_choice(message, choices) if raw is None else str(raw)
        return f"invalid value for {name}: {bad!r}{did_you_mean(bad, choices)}"
    return e.format_message().rstrip(".")


def _bad_choice(message: str, choices: Sequence[str]) -> str:
    """The value click quotes first in its ``'x' is not one of ...`` message."""
    q = message.find("'")
    if q >= 0:
        end = message.find("'", q + 1)
        if end > q:
            return message[q + 1 : end]
    return message


def done(as_json: bool, obj: object, text: str) -> None:
    """What every mutating command prints: ``text`` for people, or (``--json``) ``obj``,
    what it created or changed (with any generated secret), as one JSON object."""
    if as_json:
        echo_json(obj)
    else:
        click.echo(text)


_ERROR_CLASSES: dict[int, type[click.ClickException]] = {}


def one_line_error(message: str, exit_code: int = 1) -> click.ClickException:
    """What a :class:`pypbx.errors.PbxError` becomes: ``Error: <message>`` on stderr, and
    exit status ``exit_code`` (a class attribute in click, hence one class per status)."""
    cls = _ERROR_CLASSES.get(exit_code)
    if cls is None:
        cls = type(f"OneLineError{exit_code}", (click.ClickException,), {"exit_code": exit_code})
        _ERROR_CLASSES[exit_code] = cls
    return cls(message)


# --------------------------------------------------------------------------- registrations


def _seconds(v: object) -> float:
    """A number of seconds (or a UNIX time) from a registration's row or JSON."""
    if isinstance(v, (int, float, str)):
        return float(v)
    raise TypeError(f"not a number of seconds: {v!r}")


def _reg_source(r: Mapping[str, object]) -> str:
    if r.get("source"):
        return str(r["source"])
    host = r.get("source_host")
    if not host:
        return "-"
    port = r.get("source_port")
    return f"{r.get('source_transport') or ''} {host}{':' + str(port) if port else ''}".strip()


def _reg_expires_in(r: Mapping[str, object], now: float) -> float | None:
    if r.get("expires_in") is not None:
        return _seconds(r["expires_in"])
    if r.get("expires_at") is not None:
        return _seconds(r["expires_at"]) - now
    return None


def registrations_table(regs: Sequence[Mapping[str, object]], indent: str = "  ") -> str:
    """Registered contacts (live from the PBX, or as saved in the database)."""
    now = time.time()
    return table(
        ["AOR", "CONTACT", "SOURCE", "EXPIRES IN", "USER AGENT"],
        [
            [
                r.get("aor"),
                r.get("contact"),
                _reg_source(r),
                hms(_reg_expires_in(r, now)),
                r.get("user_agent") or "-",
            ]
            for r in regs
        ],
        indent=indent,
    )
