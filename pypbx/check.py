"""``pypbx check``: what is wrong or risky in an existing configuration and database.

Three kinds of findings, each an error or a warning:

* **dangling references** (error): a DID, IVR option, ring group's ``then``, route rule or
  queue overflow/fallback pointing at a queue, extension, menu, ring group, mailbox or route
  that does not exist -- the CLI refuses to create them now, but an older database, a TOML
  import or a row written by hand may hold them;
* **unreachable objects** (warning): a queue no DID, IVR option, route rule, ring group or
  other queue sends calls to; an agent whose skills qualify for no queue;
* **risky settings** (warning): a queue with no agent able to answer it, an extension allowed
  both international and premium numbers, a TLS trunk that does not verify the certificate;
  a mailbox no call can reach (no extension, queue, number or destination of its name) or
  set to take an extension's unanswered calls when there is no such extension.

``pypbx run`` runs it at start: warnings are printed (``Warning: ...`` on stderr), errors
refuse to start.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass

from acd.model import QueueConfig
from pypbx import destinations as D
from pypbx.db import Database

log = logging.getLogger(__name__)


class Level(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    level: Level
    where: str  # what holds the problem: "DID +33144556677", "queue front"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level.value, "where": self.where, "message": self.message}

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


async def check(db: Database) -> list[Finding]:
    """Every finding, errors first."""
    found: list[Finding] = []
    refs = await D.references(db)
    for where, dest in refs:
        why = await D.dangling(db, dest)
        if why:
            found.append(Finding(Level.ERROR, where, f"points to {dest}: {why}"))
    queues = D.queue_configs(await db.list_queue_rows())
    agents = await db.list_agent_rows()
    reached = {dest.partition(":")[2].partition("@")[0] for _, dest in refs if dest.startswith("queue:")}
    numbers = {r["name"] for r in await db.queue_number_rows()}
    for q in queues:
        if q.name not in reached and q.name not in numbers:
            found.append(
                Finding(
                    Level.WARNING, f"queue {q.name}", "unreachable: no DID, IVR option, route or queue sends calls here"
                )
            )
        able = [a for a in agents if _qualifies(a["skills"], q)]
        if not able:
            found.append(Finding(Level.WARNING, f"queue {q.name}", "no agent has the skills to answer it"))
    for a in agents:
        if queues and not any(_qualifies(a["skills"], q) for q in queues):
            found.append(Finding(Level.WARNING, f"agent {a['id']}", "has no skills for any queue"))
    for p in await db.list_extension_permission_rows():
        classes = set(p["classes"].replace(" ", "").split(","))
        if {"international", "premium"} <= classes:
            found.append(
                Finding(Level.WARNING, f"extension {p['number']}", "allowed both international and premium numbers")
            )
    found += await _mailbox_findings(db, refs)
    for t in await db.list_trunk_rows():
        if t["transport"].lower() == "tls" and not t["tls_verify"]:
            found.append(Finding(Level.WARNING, f"trunk {t['name']}", "TLS without certificate verification"))
    return sorted(found, key=lambda f: (f.level is not Level.ERROR, f.where))


async def _mailbox_findings(db: Database, refs: list[tuple[str, str]]) -> list[Finding]:
    """Mailboxes no call can reach. They cannot be refused when created: a queue's mailbox
    must exist before the queue that falls back to it (``voicemail box front`` then ``queue
    add front --fallback voicemail``), and a shared box (``desk``) before the DID sending
    calls to it. ``--on-no-answer`` on a box with no extension of its name is refused by the
    CLI, but a database from before that may hold one."""
    out: list[Finding] = []
    exts = {r["number"] for r in await db.list_extension_rows()}
    queues = {r["name"] for r in await db.list_queue_rows()}
    targeted = {dest.partition(":")[2] for _, dest in refs if dest.startswith("voicemail:")}
    for b in await db.list_voicemail_box_rows():
        box = b["box"]
        if b["on_no_answer"] and box not in exts:
            out.append(Finding(Level.WARNING, f"mailbox {box}", f"on no answer, but there is no extension {box}"))
        if box not in exts and box not in queues and not b["number"] and box not in targeted:
            out.append(
                Finding(
                    Level.WARNING,
                    f"mailbox {box}",
                    "unreachable: no extension or queue of that name, no --number, "
                    "and no DID, IVR option, route or ring group sends calls to it",
                )
            )
    return out


def _qualifies(skills_json: str, q: QueueConfig) -> bool:
    try:
        skills = json.loads(skills_json) if skills_json else {}
    except ValueError:
        return False
    if not isinstance(skills, dict):
        return False
    return all(int(skills.get(s, 0)) >= lvl for s, lvl in q.required_skills.items())


async def schedule_users(db: Database, name: str) -> list[str]:
    """What uses schedule ``name``: IVR menus (their opening hours), route rules' open=/closed= conditions."""
    out: list[str] = []
    for m in await db.list_ivr_menu_rows():
        try:
            raw = json.loads(m["config"])
        except ValueError:
            continue
        if isinstance(raw, dict) and raw.get("schedule") == name:
            out.append(f"IVR menu {m['name']}")
    for r in await db.list_route_rule_rows():
        try:
            conds = json.loads(r["conditions"] or "[]")
        except ValueError:
            continue
        if any(str(c) in (f"open={name}", f"closed={name}") for c in conds):
            out.append(f"route {r['route']} rule {r['position']}")
    return out
