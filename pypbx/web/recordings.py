"""Recordings, voicemail and call quality review in the web desk (issue 11, page 4).

* ``/recordings``: the page — search recorded calls, play one in the page, download it, score it
  (supervisors), see its review (the agent their own), the voicemail of the mailboxes the user
  may see (play, mark heard).
* ``/api/v1/recordings`` (search), ``/api/v1/recordings/{call}`` (one), ``…/audio`` (the WAV,
  served with HTTP range requests so the player can seek; ``?download=1`` as an attachment),
  ``…/review`` (GET the review, POST a supervisor's scores); ``/api/v1/quality/checklist``,
  ``/api/v1/quality/reviews``, ``/api/v1/reports/quality``; ``/api/v1/voicemail`` (the boxes
  and messages the user may see), ``/api/v1/voicemail/{msg}/audio`` and ``…/heard``.

An agent login sees only the calls they took (403 otherwise, audited); every play and
download is in the audit log — once per playback, not once per range request of a seek.
Everything goes through the library the CLI uses (pypbx.quality, pypbx.voicemail, the call
books).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

from aiohttp import web

from pypbx import acdstore, retention, sitetime
from pypbx import quality as Q
from pypbx import voicemail as V
from pypbx.db import Database
from pypbx.db.quality import RecordingFilter, RecordingSearchRow
from pypbx.errors import PbxError
from pypbx.numbers import display, e164
from pypbx.reasons import list_reasons
from pypbx.web import accounts as A
from pypbx.web.accounts import Principal, Role
from pypbx.web.pages import NAV, render
from pypbx.web.routes import (
    ADMINS,
    STAFF,
    SUPERVISORS,
    api_error,
    client_ip,
    ctx_of,
    json_body,
    json_reply,
    principal,
    route,
)

log = logging.getLogger(__name__)

V1 = "/api/v1"
DIRECTIONS = ("inbound", "outbound", "internal")
MAX_LIMIT = 1000

NAV.append(("/recordings", "Recordings", STAFF))


async def _audit(request: web.Request, action: str, target: str, detail: str | None = None, ok: bool = True) -> None:
    await A.audit(ctx_of(request).db, principal(request).name, action, target, detail, client_ip(request), ok=ok)


def may_see_call(p: Principal, agent: str | None) -> bool:
    """Supervisors and admins see every call; an agent only the calls they took."""
    return p.role in SUPERVISORS or (p.role is Role.AGENT and p.agent_id is not None and agent == p.agent_id)


# --------------------------------------------------------------------------- the search


def parse_when(value: str | None, name: str, *, end_of_day: bool = False) -> float | None:
    """``YYYY-MM-DD`` (site time; ``end_of_day``: the next midnight, so a day is included)
    or ``YYYY-MM-DDTHH:MM`` / ``YYYY-MM-DD HH:MM`` -> UNIX seconds; '' or None -> None."""
    v = (value or "").strip()
    if not v:
        return None
    try:
        day = dt.date.fromisoformat(v)
    except ValueError:
        pass
    else:
        return sitetime.day_bounds(day)[1 if end_of_day else 0]
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(v, fmt).replace(tzinfo=sitetime.zone()).timestamp()
        except ValueError:
            pass
    raise api_error(400, f"{name}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM, got {v!r}")


def _seconds(value: str | None, name: str) -> float | None:
    v = (value or "").strip()
    if not v:
        return None
    try:
        s = float(v)
    except ValueError:
        raise api_error(400, f"{name}: expected seconds, got {v!r}") from None
    if s < 0:
        raise api_error(400, f"{name}: expected seconds, got {v!r}")
    return s


def search_filter(query: dict[str, str], p: Principal, region: str) -> RecordingFilter:
    """The search of ``query`` (?since=&until=&number=&agent=&queue=&line=&direction=
    &external=1&reason=&min=&max=&limit=); an agent login's is narrowed to their own calls."""
    direction = (query.get("direction") or "").strip() or None
    if direction is not None and direction not in DIRECTIONS:
        raise api_error(400, f"direction: one of {', '.join(DIRECTIONS)}, got {direction!r}")
    try:
        limit = int(query.get("limit") or 200)
    except ValueError:
        raise api_error(400, "limit: expected a number") from None
    since = parse_when(query.get("since"), "since")
    until = parse_when(query.get("until"), "until", end_of_day=True)
    if since is not None and until is not None and since >= until:
        raise api_error(400, "since is after until: swap them")
    number = (query.get("number") or "").strip()
    agent = (query.get("agent") or "").strip() or None
    if p.role is Role.AGENT:
        agent = p.agent_id  # their own calls (the handlers answer [] for an agent login without an agent)
    return RecordingFilter(
        since=since,
        until=until,
        number=e164(number, region) if number else None,
        agent=agent,
        queue=(query.get("queue") or "").strip() or None,
        service_line=(query.get("line") or "").strip() or None,
        direction=direction,
        external=query.get("external") in ("1", "true", "on"),
        reason=(query.get("reason") or "").strip() or None,
        min_seconds=_seconds(query.get("min"), "min"),
        max_seconds=_seconds(query.get("max"), "max"),
        limit=max(1, min(limit, MAX_LIMIT)),
    )


def recording_dict(r: RecordingSearchRow, region: str) -> dict[str, object]:
    items = r["quality_items"]
    return {
        "call_id": r["id"],
        "offered_at": r["offered_at"],
        "direction": r["direction"],
        "caller_number": r["caller_number"],
        "caller": display(r["caller_number"], region),
        "caller_name": r["caller_name"],
        "callee_number": r["callee_number"],
        "callee": display(r["callee_number"], region),
        "queue": r["queue"],
        "agent": r["agent"],
        "extension": r["extension"],
        "service_line": r["service_line"],
        "disposition": r["disposition"],
        "talk_seconds": r["talk_seconds"],
        "reason": r["reason"],
        "seconds": r["recording_seconds"],
        "status": r["recording_status"],
        "quality": None if not items else {"yes": r["quality_yes"], "items": items},
        "audio": f"{V1}/recordings/{r['id']}/audio",
    }


@route("GET", f"{V1}/recordings", roles=STAFF, summary="Search recorded calls (an agent login: their own).")
async def recordings_search(request: web.Request) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    f = search_filter(dict(request.query), p, ctx.db.region)
    if p.role is Role.AGENT and p.agent_id is None:
        return json_reply([])
    rows = await ctx.db.recording_search_rows(f)
    return json_reply([recording_dict(r, ctx.db.region) for r in rows if may_see_call(p, r["agent"])])


async def _one(request: web.Request, action: str) -> RecordingSearchRow:
    """The recorded call of the URL, if the user may see it (else 403, audited)."""
    ctx, p = ctx_of(request), principal(request)
    call_id = request.match_info["call"]
    row = await ctx.db.get_call_row(call_id)
    if row is None:
        raise api_error(404, f"no call {call_id!r}")
    if not may_see_call(p, row["agent"]):
        await _audit(request, action, call_id, "refused: not their call", ok=False)
        raise api_error(403, f"a {p.role.value} login may not open call {call_id[:12]}")
    found = await ctx.db.recording_search_rows(RecordingFilter(call_id=call_id, limit=1))
    if not found:
        raise api_error(404, f"call {call_id[:12]} has no recording")
    return found[0]


@route("GET", f"{V1}/recordings/{{call}}", roles=STAFF, summary="One recorded call with its quality review.")
async def recording_one(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    r = await _one(request, "recording.open")
    out = recording_dict(r, ctx.db.region)
    out["review"] = await Q.get_review(ctx.db, r["id"])
    return json_reply(out)


def _is_first_range(request: web.Request) -> bool:
    """A request that starts a playback (no Range, or from byte 0) — not a seek's."""
    rng = request.headers.get("Range", "").replace(" ", "")
    return not rng or rng.startswith("bytes=0-")


@route(
    "GET",
    f"{V1}/recordings/{{call}}/audio",
    roles=STAFF,
    summary="The recording (WAV; HTTP range requests; ?download=1 as an attachment). Audited.",
)
async def recording_audio(request: web.Request) -> web.StreamResponse:
    download = request.query.get("download") in ("1", "true")
    action = "recording.download" if download else "recording.play"
    r = await _one(request, action)
    path = Path(r["recording_path"] or "")
    if not path.is_file():
        raise api_error(404, f"the recording of call {r['id'][:12]} is missing on disk")
    if download or _is_first_range(request):
        await _audit(request, action, r["id"], path.name)
    # a compressed recording (pypbx.retention: FLAC or Ogg Opus) plays and downloads as itself
    headers = {"Cache-Control": "private, no-store", "Content-Type": retention.audio_mime(path)}
    if download:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", r["id"])
        headers["Content-Disposition"] = f'attachment; filename="{name}{path.suffix}"'
    return web.FileResponse(path, headers=headers)


# --------------------------------------------------------------------------- quality review


@route("GET", f"{V1}/quality/checklist", roles=STAFF, summary="The call-quality checklist in force.")
async def checklist_get(request: web.Request) -> web.Response:
    return json_reply(await Q.get_checklist(ctx_of(request).db))


@route("PUT", f"{V1}/quality/checklist", roles=ADMINS, summary="Set the call-quality checklist (body: {items}).")
async def checklist_put(request: web.Request) -> web.Response:
    items = (await json_body(request)).get("items")
    if not isinstance(items, list):
        raise api_error(400, "items: a list of the checklist's questions")
    try:
        got = await Q.set_checklist(ctx_of(request).db, [str(x) for x in items])
    except PbxError as exc:
        raise api_error(400, str(exc)) from None
    await _audit(request, "quality.checklist", "checklist", "; ".join(got))
    return json_reply(got)


@route("GET", f"{V1}/recordings/{{call}}/review", roles=STAFF, summary="A recorded call's quality review (or null).")
async def review_get(request: web.Request) -> web.Response:
    r = await _one(request, "quality.open")
    return json_reply(await Q.get_review(ctx_of(request).db, r["id"]))


@route(
    "POST",
    f"{V1}/recordings/{{call}}/review",
    roles=SUPERVISORS,
    summary="Score a recorded call on the checklist (body: {answers: {item: bool}, comment}).",
)
async def review_post(request: web.Request) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    r = await _one(request, "quality.score")
    body = await json_body(request)
    answers = body.get("answers")
    if not isinstance(answers, (dict, list)):
        raise api_error(400, "answers: {item: true/false} for every checklist item")
    try:
        review = await Q.score_call(ctx.db, r["id"], answers, p.name, str(body.get("comment") or ""))
    except PbxError as exc:
        raise api_error(400, str(exc)) from None
    await _audit(request, "quality.score", r["id"], f"{review['yes']}/{review['items']} agent={review['agent']}")
    return json_reply(review)


@route("GET", f"{V1}/quality/reviews", roles=STAFF, summary="Quality reviews (?agent=&since=&until=; an agent: own).")
async def reviews_list(request: web.Request) -> web.Response:
    p = principal(request)
    agent = (request.query.get("agent") or "").strip() or None
    if p.role is Role.AGENT:
        if p.agent_id is None:
            return json_reply([])
        agent = p.agent_id
    since = parse_when(request.query.get("since"), "since")
    until = parse_when(request.query.get("until"), "until", end_of_day=True)
    return json_reply(await Q.list_reviews(ctx_of(request).db, agent=agent, since=since, until=until))


@route(
    "GET",
    f"{V1}/reports/quality",
    roles=SUPERVISORS,
    summary="Call quality per agent (pypbx report quality --json; ?since=&until=).",
)
async def report_quality(request: web.Request) -> web.Response:
    since = parse_when(request.query.get("since"), "since")
    until = parse_when(request.query.get("until"), "until", end_of_day=True)
    return json_reply(await Q.quality_report(ctx_of(request).db, since, until))


# --------------------------------------------------------------------------- voicemail


async def boxes_for(db: Database, p: Principal) -> list[str] | None:
    """The mailboxes ``p`` may open: None = all (supervisors, admins); an agent: the box of
    their agent id and of the extension they are logged in at."""
    if p.role in SUPERVISORS:
        return None
    if p.role is not Role.AGENT or p.agent_id is None:
        return []
    boxes = [p.agent_id]
    try:
        ext = (await acdstore.get_agent(db, p.agent_id)).extension
    except PbxError:
        ext = None
    if ext:
        boxes.append(ext)
    return boxes


@route("GET", f"{V1}/voicemail", roles=STAFF, summary="The mailboxes the user may open, with their messages.")
async def voicemail_list(request: web.Request) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    allowed = await boxes_for(ctx.db, p)
    out = []
    for b in await V.list_boxes(ctx.db):
        if allowed is not None and b["box"] not in allowed:
            continue
        msgs = await V.list_messages(ctx.db, b["box"])
        out.append(
            {
                "box": b["box"],
                "number": b["number"],
                "new": b["new"],
                "messages": [
                    {
                        "id": m["id"],
                        "caller": m["caller"],
                        "caller_display": display(m["caller"], ctx.db.region),
                        "received_at": m["received_at"],
                        "seconds": m["seconds"],
                        "heard": m["heard"],
                        "audio": f"{V1}/voicemail/{m['id']}/audio",
                    }
                    for m in msgs
                ],
            }
        )
    return json_reply(out)


async def _message(request: web.Request, action: str) -> V.VoicemailMessage:
    ctx, p = ctx_of(request), principal(request)
    msg_id = request.match_info["msg"]
    try:
        m = await V.get_message(ctx.db, msg_id)
    except PbxError as exc:
        raise api_error(404, str(exc)) from None
    allowed = await boxes_for(ctx.db, p)
    if allowed is not None and m["box"] not in allowed:
        await _audit(request, action, m["id"], f"refused: mailbox {m['box']}", ok=False)
        raise api_error(403, f"a {p.role.value} login may not open mailbox {m['box']}")
    return m


@route(
    "GET", f"{V1}/voicemail/{{msg}}/audio", roles=STAFF, summary="A voicemail message (WAV, range requests). Audited."
)
async def voicemail_audio(request: web.Request) -> web.StreamResponse:
    m = await _message(request, "voicemail.play")
    path = Path(m["path"])
    if not path.is_file():
        raise api_error(404, f"message {m['id']} has no audio")
    if _is_first_range(request):
        await _audit(request, "voicemail.play", m["id"], f"box {m['box']}")
    return web.FileResponse(path, headers={"Cache-Control": "private, no-store"})


@route(
    "POST",
    f"{V1}/voicemail/{{msg}}/heard",
    roles=STAFF,
    summary="Mark a voicemail message heard (body: {heard: true|false}). Audited.",
)
async def voicemail_heard(request: web.Request) -> web.Response:
    m = await _message(request, "voicemail.heard")
    heard = (await json_body(request)).get("heard", True)
    if not isinstance(heard, bool):
        raise api_error(400, "heard: true or false")
    got = await V.mark_heard(ctx_of(request).db, m["id"], heard)
    await _audit(request, "voicemail.heard" if heard else "voicemail.unheard", m["id"], f"box {m['box']}")
    return json_reply({"id": got["id"], "box": got["box"], "heard": got["heard"]})


# --------------------------------------------------------------------------- the page


@route("GET", "/recordings", roles=STAFF, page=True, summary="Recordings, voicemail and call quality review.")
async def recordings_page(request: web.Request) -> web.Response:
    ctx, p = ctx_of(request), principal(request)
    db = ctx.db
    choices = {
        "queues": sorted(await db.history_names("queue")),
        "agents": sorted(await db.history_names("agent")),
        "lines": sorted(await db.history_names("service_line")),
        "reasons": [(r.code, r.label) for r in await list_reasons(db, retired=True)],
    }
    return render(
        request,
        "recordings.html",
        choices=choices,
        checklist=await Q.get_checklist(db),
        can_score=p.role in SUPERVISORS,
        is_agent=p.role is Role.AGENT,
        today=sitetime.today().isoformat(),
    )
