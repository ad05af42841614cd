"""The agent desk (the receptionist's page, ``/desk``): what it shows for one agent and the
few things it does that the CLI has no verb for.

* :func:`desk_view` — the agent's live state (the ACD's, else the database's), the call
  ringing or up for them (the ACD's current call, else an open call at their extension:
  a click-to-call or a callback), or in wrap-up / after it their last answered call; the
  other party's name, patient id and kind (new / returning) from the callers table, the
  service line and queue, the reason set and the notes; and the other party's last calls
  with their reasons.
* :func:`add_note` — a note on a call: a ``note`` step in the call's books (``call_events``,
  through the event stream: a ``call.step`` event), so no new table.
* :func:`check_number` — a number typed for click-to-call.

Reads the database and the ACD's in-memory state only; never in a call's path.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from acd.model import PauseReason
from pypbx import acdstore, callers
from pypbx import reasons as R
from pypbx.db.rows import CallRow
from pypbx.errors import PbxError
from pypbx.events import CallStep, frozen_map

if TYPE_CHECKING:
    from pypbx.web.server import WebContext

#: the pause reasons an agent picks from (ring-no-answer is the ACD's own)
PAUSE_REASONS: tuple[str, ...] = tuple(r.value for r in PauseReason if r is not PauseReason.RING_NO_ANSWER)
#: how many of the other party's previous calls the desk shows
HISTORY = 5
NOTE_MAX = 500
NOTE_STEP = "note"
_NUMBER_RE = re.compile(r"^\+?[0-9*#]{2,20}$")


class DeskError(PbxError):
    """A one-line problem with a desk action (bad input: HTTP 400)."""


def check_number(number: object) -> str:
    """A number to dial as typed (spaces, dots, dashes and brackets dropped)."""
    text = re.sub(r"[\s.()\-/]", "", str(number or ""))
    if not _NUMBER_RE.match(text):
        raise DeskError(f"bad number {str(number or '')!r}: 2 to 20 digits, an optional leading +")
    return text


def check_note(text: object) -> str:
    note = str(text or "").strip()
    if not note or len(note) > NOTE_MAX:
        raise DeskError(f"a note is 1 to {NOTE_MAX} characters")
    return note


def other_party(row: CallRow) -> str | None:
    """The number at the far end of an agent's call: the caller, or the callee of an outbound call."""
    return row["callee_number"] if row["direction"] == "outbound" else row["caller_number"]


async def agent_state(ctx: WebContext, agent_id: str) -> dict[str, object]:
    """The agent's state: the live ACD's when the PBX runs, else the database's."""
    rec = await acdstore.get_agent(ctx.db, agent_id)
    out: dict[str, object] = {
        "id": rec.id,
        "name": rec.name,
        "state": rec.state,
        "pause_reason": rec.pause_reason,
        "extension": rec.extension,
        "current_call": None,
    }
    acd = ctx.acd
    a = acd.engine.agents.get(agent_id) if acd is not None else None
    if acd is not None and a is not None:
        out["state"] = a.state.value
        out["pause_reason"] = a.pause_reason.value if a.pause_reason else None
        out["extension"] = acd.agent_ext.get(agent_id) or rec.extension
        out["current_call"] = a.current_call
    return out


async def _current_row(ctx: WebContext, agent_id: str, ext: str | None, acd_call: str | None) -> CallRow | None:
    if acd_call:
        row = await ctx.db.get_call_row(acd_call)
        if row is not None and row["disposition"] == "in_progress":
            return row
    mine = [
        r
        for r in await ctx.db.open_call_rows()
        if r["agent"] == agent_id
        or (ext and (r["extension"] == ext or (r["direction"] == "outbound" and r["caller_number"] == ext)))
    ]
    return max(mine, key=lambda r: r["offered_at"]) if mine else None


async def _reason_labels(ctx: WebContext) -> dict[str, str]:
    rs = await R.list_reasons(ctx.db, retired=True)
    return {r.code: r.label for r in rs}


async def _last_reason(ctx: WebContext, call_id: str, labels: dict[str, str]) -> dict[str, str] | None:
    rows = await ctx.db.reasons_of_call(call_id)
    if not rows:
        return None
    code = rows[-1]["code"]
    return {"code": code, "label": labels.get(code, code)}


async def notes_of(ctx: WebContext, call_id: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for ev in await ctx.db.call_event_rows(call_id):
        if ev["kind"] != NOTE_STEP:
            continue
        try:
            d = json.loads(ev["detail"])
        except ValueError:
            continue
        if isinstance(d, dict):
            out.append({"at": ev["ts"], "text": d.get("text", ""), "by": d.get("by")})
    return out


async def desk_view(ctx: WebContext, agent_id: str) -> dict[str, object]:
    """Everything the desk shows for ``agent_id`` but the worklist (``GET /api/v1/missed``)."""
    agent = await agent_state(ctx, agent_id)
    ext = agent["extension"] if isinstance(agent["extension"], str) else None
    acd_call = agent["current_call"] if isinstance(agent["current_call"], str) else None
    row = await _current_row(ctx, agent_id, ext, acd_call)
    phase: str | None = None
    if row is not None:
        phase = "up" if row["answered_at"] is not None else "ringing"
    else:  # the last call they answered (wrap-up: the one to set a reason on)
        row = await ctx.db.last_call_of(ext or "", agent_id)
        if row is not None:
            phase = "wrap_up" if agent["state"] == "wrap_up" else "last"
    labels = await _reason_labels(ctx)
    call: dict[str, object] | None = None
    history: list[dict[str, object]] = []
    if row is not None:
        number = other_party(row)
        who = await callers.get(ctx.db, number) if number else None
        call = {
            "id": row["id"],
            "phase": phase,
            "direction": row["direction"],
            "number": number,
            "name": (who["name"] if who else None) or (row["caller_name"] if row["direction"] != "outbound" else None),
            "patient_id": who["patient_id"] if who else None,
            "caller_kind": row["caller_kind"],
            "service_line": row["service_line"],
            "queue": row["queue"],
            "did": row["did"],
            "offered_at": row["offered_at"],
            "answered_at": row["answered_at"],
            "ended_at": row["ended_at"],
            "disposition": row["disposition"],
            "reason": await _last_reason(ctx, row["id"], labels),
            "notes": await notes_of(ctx, row["id"]),
        }
        if number:
            for h in await ctx.db.search_call_rows(number=number, limit=HISTORY + 1):
                if h["id"] == row["id"] or len(history) >= HISTORY:
                    continue
                history.append(
                    {
                        "id": h["id"],
                        "offered_at": h["offered_at"],
                        "direction": h["direction"],
                        "disposition": h["disposition"],
                        "queue": h["queue"],
                        "service_line": h["service_line"],
                        "agent": h["agent"],
                        "reason": await _last_reason(ctx, h["id"], labels),
                    }
                )
    agent.pop("current_call", None)
    return {"agent": agent, "call": call, "history": history}


async def call_is_agents(ctx: WebContext, agent_id: str, row: CallRow) -> bool:
    """Whether call ``row`` is one of ``agent_id``'s (answered or rung by them, at their extension)."""
    if row["agent"] == agent_id:
        return True
    st = await agent_state(ctx, agent_id)
    if st["current_call"] == row["id"]:
        return True
    ext = st["extension"]
    return bool(ext) and (row["extension"] == ext or (row["direction"] == "outbound" and row["caller_number"] == ext))


async def add_note(ctx: WebContext, call_id: str, text: object, *, by: str, agent: str | None) -> dict[str, object]:
    """A note on call ``call_id`` (the books' ``note`` step, via the event stream)."""
    note = check_note(text)
    row = await R.find_call(ctx.db, call_id)
    detail = {"text": note, "by": by, "agent": agent}
    ev = await ctx.bus.emit(CallStep(call_id=row["id"], step=NOTE_STEP, detail=frozen_map(detail)))
    return {"call_id": row["id"], "at": ev.at, "text": note, "by": by}
