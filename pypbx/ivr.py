"""IVR menus: declarative definitions (database, TOML import/export) and the runtime.

A menu (:class:`Menu`) is data::

    name = "main"
    number = "700"                    # dial 700 from a phone (the internal dialplan); optional
    greeting = ["welcome"]            # prompt ids (ivr_prompts/<lang>/<id>.wav) or WAV paths
    language = "en"                   # the caller's language unless one was chosen already
    timeout = 5.0                     # seconds to wait for a choice after the greeting
    inter_digit = 2.0                 # seconds between the digits of a longer choice
    retries = 2                       # no input / invalid input: replay this many times, then ...
    on_timeout = "hangup"             # ... this action (any action below)
    on_invalid = "hangup"
    direct_dial = false               # true: the caller may key an extension number (end with #)
    schedule = "clinic"               # opening hours (pypbx.hours); optional
    after_hours = "play:clinic_closed"   # the action when the schedule says closed
    after_language = ""               # the menu after a language choice (default: this one again)
    known_caller = ""                 # smart routing: a returning patient (pypbx.callers.known) ...
    new_caller = ""                   # ... or a new caller goes straight to this action (no greeting)

    [options]
    1 = "queue:front"                 # into an ACD queue (pypbx.flows.queue), in the call's language
    2 = "queue:urgent@5"              # ... with queue priority 5 (the urgent line: answered before
                                      #   callers of lower priority; 0-100, the highest the call got wins)
    2 = "menu:results"                # a sub-menu
    3 = "extension:1001"              # ring an extension (MOH meanwhile; no answer -> its voicemail
                                      #   box if it has one, else back to the menu)
    4 = "voicemail:1001"              # leave a message in a mailbox (pypbx.voicemail)
    6 = "group:front_desk"            # a ring group (pypbx.groups): MOH while it rings, its --then
    7 = "external:+33612345678"       # an outside number through the best trunk (failover to the
                                      #   next trunk; MOH while it rings; no answer -> back to the menu)
    9 = "route:triage"                # routing rules (pypbx.routing); ivr=MENU:DIGITS conditions see
                                      #   the choices made so far (Call.ivr_choices)
    5 = "play:after_hours"            # play an information prompt, then back to the menu
    8 = "lang:ru"                     # set the prompt language for the rest of the call
    0 = "hangup"                      # goodbye

``pypbx ivr add|import|export|list|show|remove`` manage menus; a TOML file holds one menu
(top-level keys as above) or several (``[menus.<name>]`` tables).

The live half (one caller in a menu) is :class:`pypbx.flows.ivr.IvrCall`; this module is
the store half (menus: parsing, TOML, the database), which never imports the live half.
"""

from __future__ import annotations

import json
import logging
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Required, TypedDict, cast

from pypbx import destinations as D
from pypbx.db import Database, IntegrityError
from pypbx.db.rows import IvrMenuRow
from pypbx.errors import PbxError

log = logging.getLogger(__name__)

ACTION_KINDS = ("queue", "menu", "extension", "voicemail", "group", "play", "hangup", "lang", "external", "route")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DIGITS_RE = re.compile(r"^[0-9*#]{1,8}$")
NUMBER_RE = re.compile(r"^\*?[0-9]{1,16}$")


class IvrError(PbxError, ValueError):
    pass


#: Highest ``queue:NAME@N`` priority (as ``pypbx queue add --priority``).
MAX_PRIORITY = 100
_QUEUE_ARG_RE = re.compile(r"^([^@\s]+)(?:@(-?[0-9]+))?$")


def queue_target(arg: str) -> tuple[str, int]:
    """A ``queue:`` action's target: ``NAME`` or ``NAME@N`` (queue priority N, 0-100) ->
    (queue name, priority). IvrError if malformed."""
    m = _QUEUE_ARG_RE.match(arg.strip())
    if m is None:
        raise IvrError(f"bad queue action queue:{arg} (want queue:NAME or queue:NAME@PRIORITY, e.g. queue:urgent@5)")
    prio = int(m.group(2) or 0)
    if not 0 <= prio <= MAX_PRIORITY:
        raise IvrError(f"bad priority {prio} in queue:{arg}: expected 0-{MAX_PRIORITY}")
    return m.group(1), prio


def parse_action(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind not in ACTION_KINDS:
        raise IvrError(f"bad action {text!r} (want one of {', '.join(k + ':' for k in ACTION_KINDS)})")
    if kind == "hangup":
        return kind, ""
    if not arg:
        raise IvrError(f"action {text!r} needs a target, e.g. {kind}:NAME")
    if kind == "external":
        try:
            arg = D.parse_destination(f"external:{arg}").partition(":")[2]
        except D.DestinationError as e:
            raise IvrError(str(e)) from None
    if kind == "queue":
        queue_target(arg)
    return kind, arg


class MenuDict(TypedDict, total=False):
    """A menu as a dict (``--json``, the TOML file, the stored config); only ``name`` is
    required when reading one (the other keys take the defaults)."""

    name: Required[str]
    number: str | None
    greeting: list[str]
    language: str
    timeout: float
    inter_digit: float
    retries: int
    on_timeout: str
    on_invalid: str
    direct_dial: bool
    schedule: str | None
    after_hours: str
    after_language: str
    known_caller: str
    new_caller: str
    options: dict[str, str]


@dataclass
class Menu:
    name: str
    number: str | None = None
    greeting: list[str] = field(default_factory=lambda: ["welcome"])
    language: str = "en"
    timeout: float = 5.0
    inter_digit: float = 2.0
    retries: int = 2
    on_timeout: str = "hangup"
    on_invalid: str = "hangup"
    direct_dial: bool = False
    schedule: str | None = None
    after_hours: str = "play:clinic_closed"
    after_language: str = ""
    known_caller: str = ""
    new_caller: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def validate(self) -> Menu:
        if not NAME_RE.match(self.name):
            raise IvrError(f"bad menu name {self.name!r}")
        if self.number is not None and not NUMBER_RE.match(self.number):
            raise IvrError(f"bad number {self.number!r} (digits, optionally after *)")
        if isinstance(self.greeting, str):
            self.greeting = [self.greeting]
        for k, v in self.options.items():
            if not DIGITS_RE.match(k):
                raise IvrError(f"bad option key {k!r} (digits, * or #)")
            parse_action(v)
        for a in (self.on_timeout, self.on_invalid, self.after_hours):
            parse_action(a)
        for a in (self.known_caller, self.new_caller):
            if a:
                parse_action(a)
        if self.timeout <= 0 or self.inter_digit <= 0 or self.retries < 0:
            raise IvrError("timeout and inter_digit must be > 0, retries >= 0")
        return self

    def to_dict(self) -> MenuDict:
        return {
            "name": self.name,
            "number": self.number,
            "greeting": list(self.greeting),
            "language": self.language,
            "timeout": self.timeout,
            "inter_digit": self.inter_digit,
            "retries": self.retries,
            "on_timeout": self.on_timeout,
            "on_invalid": self.on_invalid,
            "direct_dial": self.direct_dial,
            "schedule": self.schedule,
            "after_hours": self.after_hours,
            "after_language": self.after_language,
            "known_caller": self.known_caller,
            "new_caller": self.new_caller,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object], name: str | None = None) -> Menu:
        known = set(cls.__dataclass_fields__)
        d = dict(raw)
        if name is not None:
            d.setdefault("name", name)
        bad = set(d) - known
        if bad:
            raise IvrError(f"unknown menu keys {sorted(bad)}")
        if "name" not in d:
            raise IvrError("a menu needs a name")
        opts = d.get("options") or {}
        if not isinstance(opts, Mapping):
            raise IvrError("options must be a table of DIGITS = ACTION")
        d["options"] = {str(k): str(v) for k, v in opts.items()}
        for k in ("timeout", "inter_digit"):
            if k in d:
                v = d[k]
                if not isinstance(v, (int, float, str)):
                    raise IvrError(f"{k} must be a number of seconds")
                d[k] = float(v)
        if "number" in d and d["number"] is not None:
            d["number"] = str(d["number"]) or None
        # the keys are checked above; the values' shapes by validate()
        return cls(**cast("MenuDict", d)).validate()


# ------------------------------------------------------------------ TOML


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def to_toml(menu: Menu) -> str:
    d = menu.to_dict()
    opts = d.pop("options")
    lines = [f"# pypbx IVR menu {menu.name!r} (pypbx ivr import FILE)"]
    for k, v in d.items():
        if v is None:
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    lines.append("")
    lines.append("[options]")
    for k in sorted(opts):
        lines.append(f"{json.dumps(k)} = {_toml_value(opts[k])}")
    return "\n".join(lines) + "\n"


def from_toml(text: str) -> list[Menu]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise IvrError(f"bad TOML: {e}") from None
    if "menus" in data:
        return [Menu.from_dict(v, name=k) for k, v in data["menus"].items()]
    return [Menu.from_dict(data)]


# ------------------------------------------------------------------ the store


async def save_menu(db: Database, menu: Menu, clock: Callable[[], float] = time.time) -> Menu:
    menu.validate()
    cfg = {k: v for k, v in menu.to_dict().items() if k not in ("name", "number")}
    number = menu.number
    try:
        await db.upsert_ivr_menu_row(menu.name, number, json.dumps(cfg), clock())
    except IntegrityError:
        raise IvrError(f"number {number} already belongs to another menu") from None
    return menu


def _from_row(row: IvrMenuRow) -> Menu:
    cfg = json.loads(row["config"])
    return Menu.from_dict({**cfg, "name": row["name"], "number": row["number"]})


async def get_menu(db: Database, name: str) -> Menu:
    row = await db.get_ivr_menu_row(name)
    if row is None:
        raise IvrError(f"no IVR menu {name!r}")
    return _from_row(row)


async def list_menus(db: Database) -> list[Menu]:
    return [_from_row(r) for r in await db.list_ivr_menu_rows()]


async def menu_for_number(db: Database, number: str) -> Menu | None:
    for m in await list_menus(db):
        if m.number == number:
            return m
    return None


async def remove_menu(db: Database, name: str) -> None:
    if not await db.delete_ivr_menu_row(name):
        raise IvrError(f"no IVR menu {name!r}")


async def check_references(db: Database, menu: Menu) -> list[str]:
    """Warnings: sub-menus, schedules that do not exist (yet)."""
    out = []
    names = {m.name for m in await list_menus(db)} | {menu.name}
    for a in [*menu.options.values(), menu.on_timeout, menu.on_invalid, menu.after_hours]:
        kind, arg = parse_action(a)
        if kind == "menu" and arg not in names:
            out.append(f"menu {arg!r} does not exist (yet)")
        if kind == "route" and await db.get_route_row(arg) is None:
            out.append(f"route {arg!r} does not exist (yet): pypbx route add {arg}")
    if menu.after_language and menu.after_language not in names:
        out.append(f"menu {menu.after_language!r} does not exist (yet)")
    if menu.schedule and await db.get_schedule_row(menu.schedule) is None:
        out.append(f"schedule {menu.schedule!r} does not exist (yet): the menu counts as open")
    return out
