"""The recordings page and its API (pypbx.web.recordings): the search filters (date, number in
any format, agent, queue, service line, direction, internal calls left out, reason, duration),
the audio served with HTTP range requests (206) and as a download, an agent's 403 on another
agent's call (audited), every play and download audited once, the quality review (a supervisor
scores, the agent sees their score, an agent cannot score), voicemail (the boxes a user may
see, play, mark heard). In-process: aiohttp's test server on a real socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pypbx import acdstore, sitetime
from pypbx import events as E
from pypbx import missed as M
from pypbx import quality as Q
from pypbx import voicemail as V
from pypbx.config import load_config
from pypbx.db import Database, open_db
from pypbx.extensions import add_extension
from pypbx.web import accounts as A
from pypbx.web.server import build_app, make_context
from tests.unit.test_web import PW, csrf_of, login

NOON = dt.datetime.combine(sitetime.today(), dt.time(12, 0), tzinfo=sitetime.zone()).timestamp()


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr(A, "_HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(seconds * rate))
    return path


async def add_recorded_call(db: Database, folder: Path, call_id: str, offered_at: float, **kw: object) -> None:
    row: dict[str, object] = {
        "id": call_id,
        "direction": "inbound",
        "caller_number": "+33612345678",
        "callee_number": "600",
        "queue": "front",
        "agent": "alice",
        "service_line": "appointments",
        "offered_at": offered_at,
        "answered_at": offered_at + 2,
        "ended_at": offered_at + 12,
        "talk_seconds": 10.0,
        "disposition": "answered",
        "flags": "",
    }
    row.update(kw)
    seconds = float(row["talk_seconds"])  # type: ignore[arg-type]
    await db.insert_call(row, (offered_at, "offered", "{}"))
    wav = write_wav(folder / f"{call_id}.wav", seconds)
    await db.upsert_recording(
        {
            "call_id": call_id,
            "path": str(wav),
            "status": "complete",
            "seconds": seconds,
            "created_at": offered_at + 13,
            "detail": "{}",
        }
    )


@asynccontextmanager
async def desk(config: Path) -> AsyncIterator[tuple[TestClient, Any]]:
    cfg = load_config(config)
    folder = cfg.data_dir / "recordings" / "today"
    async with open_db(cfg.db_path) as db:
        await add_extension(db, "201", "Desk 201", cfg.sip.realm, "secret201-long")
        await add_extension(db, "202", "Desk 202", cfg.sip.realm, "secret202-long")
        await acdstore.add_agent(db, "alice", "Alice")
        await acdstore.add_agent(db, "bob", "Bob")
        await acdstore.login(db, "alice", "201")
        await acdstore.login(db, "bob", "202")
        for name, role, agent in (
            ("boss", "admin", None),
            ("sup", "supervisor", None),
            ("alice", "agent", "alice"),
            ("bob", "agent", "bob"),
            ("tv", "wallboard", None),
        ):
            await A.add_user(db, name, role, agent_id=agent, password=PW)
        await add_recorded_call(db, folder, "call-alice-in", NOON)
        await add_recorded_call(
            db,
            folder,
            "call-bob-out",
            NOON + 60,
            agent="bob",
            direction="outbound",
            caller_number="202",
            callee_number="+33198765432",
            queue=None,
            service_line=None,
            talk_seconds=40.0,
        )
        await add_recorded_call(
            db, folder, "call-internal", NOON + 120, direction="internal", caller_number="201", callee_number="202"
        )
        await add_recorded_call(db, folder, "call-yesterday", NOON - 86400, caller_number="+33611111111")
        await db.insert_call_reason_row("call-alice-in", "billing", "alice", "201", "phone", NOON + 5)
        await db.insert_call_reason_row("call-alice-in", "appointment", "alice", "201", "web", NOON + 6)
        await db.insert_call_reason_row("call-internal", "billing", "alice", "201", "phone", NOON + 125)
        await Q.set_checklist(db, ["greeted", "polite"])
        await V.set_box(db, "201")
        await V.set_box(db, "202")
        vm_wav = write_wav(cfg.data_dir / "in.wav", 3.0)
        await V.file_message(
            db, cfg.data_dir, "201", vm_wav, caller="+33612345678", did=None, call_id=None, received_at=NOON
        )
        bus = E.EventBus(clock=lambda: 1000.0)
        ctx = make_context(cfg, db, bus, worklist=M.Worklist(db, bus))
        async with TestClient(TestServer(build_app(ctx))) as client:
            yield client, ctx


def run(make_config: Callable[..., Path], body: Callable[[TestClient, Any], Awaitable[None]]) -> None:
    async def go() -> None:
        async with desk(make_config()) as (client, ctx):
            await body(client, ctx)

    asyncio.run(go())


async def ids(client: TestClient, query: str = "") -> list[str]:
    r = await client.get(f"/api/v1/recordings?{query}")
    assert r.status == 200, await r.text()
    return [x["call_id"] for x in await r.json()]


async def audit(ctx: Any) -> list[tuple[str, str, str | None, bool]]:
    return [(a["who"], a["action"], a["target"], a["ok"]) for a in await A.list_audit(ctx.db)]


def test_search_filters_combine(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await login(client, "sup")).status == 302
        today = sitetime.today().isoformat()
        yesterday = (sitetime.today() - dt.timedelta(days=1)).isoformat()
        assert await ids(client) == ["call-internal", "call-bob-out", "call-alice-in", "call-yesterday"]
        assert await ids(client, f"since={today}&until={today}") == ["call-internal", "call-bob-out", "call-alice-in"]
        assert await ids(client, f"until={yesterday}") == ["call-yesterday"]
        # a number in any format: national, with spaces, international with 00
        for n in ("06 12 34 56 78", "0612345678", "+33 6 12 34 56 78", "0033612345678"):
            assert await ids(client, f"since={today}&number={n}") == ["call-alice-in"], n
        assert await ids(client, "number=01.98.76.54.32") == ["call-bob-out"]
        assert await ids(client, "agent=bob") == ["call-bob-out"]
        assert await ids(client, "queue=front&since=" + today) == ["call-internal", "call-alice-in"]
        assert await ids(client, "line=appointments&since=" + today) == ["call-internal", "call-alice-in"]
        assert await ids(client, "direction=outbound") == ["call-bob-out"]
        assert await ids(client, "external=1&since=" + today) == ["call-bob-out", "call-alice-in"]
        assert await ids(client, "reason=appointment") == ["call-alice-in"]  # the last reason set counts
        assert await ids(client, "reason=billing") == ["call-internal"]
        assert await ids(client, "min=30") == ["call-bob-out"]
        assert await ids(client, "max=30&since=" + today) == ["call-internal", "call-alice-in"]
        assert await ids(client, "limit=1") == ["call-internal"]
        one = (await (await client.get("/api/v1/recordings?reason=appointment")).json())[0]
        assert one["caller"] == "06 12 34 56 78" and one["caller_number"] == "+33612345678"
        assert (one["seconds"], one["reason"], one["quality"]) == (10.0, "appointment", None)
        for bad in ("since=yesterday-ish", "direction=sideways", "min=-3", "since=" + today + "&until=" + yesterday):
            r = await client.get(f"/api/v1/recordings?{bad}")
            assert r.status == 400, bad
            assert "error" in await r.json()

    run(make_config, body)


def test_audio_supports_range_requests_and_downloads_all_audited(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await login(client, "sup")
        url = "/api/v1/recordings/call-alice-in/audio"
        full = await client.get(url, headers={"Range": "bytes=0-"})
        data = await full.read()
        assert full.status == 206 and full.headers["Content-Type"] == "audio/wav"
        assert len(data) == 44 + 2 * 8000 * 10 and data[:4] == b"RIFF"
        seek = await client.get(url, headers={"Range": "bytes=80000-80099"})
        assert seek.status == 206
        assert seek.headers["Content-Range"] == f"bytes 80000-80099/{len(data)}"
        assert await seek.read() == data[80000:80100]
        dl = await client.get(url + "?download=1")
        assert dl.status == 200 and dl.headers["Content-Disposition"] == 'attachment; filename="call-alice-in.wav"'
        assert await dl.read() == data
        got = [a for a in await audit(ctx) if a[1].startswith("recording.")]
        # the playback and the download; not the seek's range request
        assert got == [
            ("sup", "recording.play", "call-alice-in", True),
            ("sup", "recording.download", "call-alice-in", True),
        ]
        assert (await client.get("/api/v1/recordings/no-such-call/audio")).status == 404

    run(make_config, body)


def test_an_agent_sees_only_their_own_calls_and_is_refused_others_audited(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await login(client, "alice")
        assert await ids(client) == ["call-internal", "call-alice-in", "call-yesterday"]
        assert await ids(client, "agent=bob") == ["call-internal", "call-alice-in", "call-yesterday"]  # ignored
        for path in ("", "/audio", "/audio?download=1", "/review"):
            r = await client.get(f"/api/v1/recordings/call-bob-out{path}")
            assert r.status == 403, path
        assert (await client.get("/api/v1/recordings/call-alice-in/audio")).status == 200
        refused = [a for a in await audit(ctx) if not a[3]]
        assert refused == [
            ("alice", "recording.open", "call-bob-out", False),
            ("alice", "recording.play", "call-bob-out", False),
            ("alice", "recording.download", "call-bob-out", False),
            ("alice", "quality.open", "call-bob-out", False),
        ]
        # a wallboard login: no recordings at all
        client.session.cookie_jar.clear()
        await login(client, "tv")
        assert (await client.get("/api/v1/recordings")).status == 403
        assert (await client.get("/recordings", allow_redirects=False)).status == 403

    run(make_config, body)


def test_a_supervisor_scores_a_call_and_the_agent_sees_the_score(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await login(client, "sup")
        csrf = await csrf_of(client)
        url = "/api/v1/recordings/call-alice-in/review"
        assert await (await client.get(url)).json() is None
        body = {"answers": {"greeted": True, "polite": False}, "comment": "rushed the end"}
        r = await client.post(url, json=body)
        assert r.status == 403  # no CSRF token
        r = await client.post(url, json=body, headers={"X-CSRF-Token": csrf})
        assert r.status == 200, await r.text()
        rv = await r.json()
        assert (rv["yes"], rv["items"], rv["score"], rv["reviewer"], rv["agent"]) == (1, 2, 0.5, "sup", "alice")
        bad = await client.post(url, json={"answers": {"greeted": True}}, headers={"X-CSRF-Token": csrf})
        assert bad.status == 400 and "missing: 'polite'" in (await bad.json())["error"]
        rep = await (await client.get("/api/v1/reports/quality")).json()
        assert [(a["agent"], a["reviews"], a["score"]) for a in rep["agents"]] == [("alice", 1, 0.5)]
        assert ("sup", "quality.score", "call-alice-in", True) in await audit(ctx)

        client.session.cookie_jar.clear()
        await login(client, "alice")
        csrf = await csrf_of(client)
        mine = await (await client.get(url)).json()
        assert (mine["score"], mine["comment"], [a["ok"] for a in mine["answers"]]) == (
            0.5,
            "rushed the end",
            [True, False],
        )
        rows = await (await client.get("/api/v1/recordings?reason=appointment")).json()
        assert rows[0]["quality"] == {"yes": 1, "items": 2}
        assert [r["call_id"] for r in await (await client.get("/api/v1/quality/reviews?agent=bob")).json()] == [
            "call-alice-in"
        ]  # an agent's list is their own whatever they ask
        r = await client.post(url, json=body, headers={"X-CSRF-Token": csrf})
        assert r.status == 403  # an agent does not score
        assert (await client.get("/api/v1/reports/quality")).status == 403
        r = await client.put("/api/v1/quality/checklist", json={"items": ["x"]}, headers={"X-CSRF-Token": csrf})
        assert r.status == 403

        client.session.cookie_jar.clear()
        await login(client, "bob")
        assert await (await client.get("/api/v1/quality/reviews")).json() == []

    run(make_config, body)


def test_the_admin_sets_the_checklist_through_the_api(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await login(client, "boss")
        csrf = await csrf_of(client)
        r = await client.put(
            "/api/v1/quality/checklist", json={"items": ["greeted", "polite", "solved"]}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status == 200 and await r.json() == ["greeted", "polite", "solved"]
        assert await (await client.get("/api/v1/quality/checklist")).json() == ["greeted", "polite", "solved"]
        r = await client.put("/api/v1/quality/checklist", json={"items": []}, headers={"X-CSRF-Token": csrf})
        assert r.status == 400 and "at least one" in (await r.json())["error"]

    run(make_config, body)


def test_voicemail_boxes_play_and_mark_heard(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        await login(client, "bob")  # logged in at 202: box 202 only
        boxes = await (await client.get("/api/v1/voicemail")).json()
        assert [(b["box"], b["new"], b["messages"]) for b in boxes] == [("202", 0, [])]
        msg = (await V.list_messages(ctx.db, "201"))[0]
        csrf = await csrf_of(client)
        assert (await client.get(f"/api/v1/voicemail/{msg['id']}/audio")).status == 403
        r = await client.post(f"/api/v1/voicemail/{msg['id']}/heard", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status == 403

        client.session.cookie_jar.clear()
        await login(client, "alice")  # at 201
        csrf = await csrf_of(client)
        boxes = await (await client.get("/api/v1/voicemail")).json()
        assert [b["box"] for b in boxes] == ["201"]
        m = boxes[0]["messages"][0]
        assert (m["id"], m["heard"], m["caller_display"], m["seconds"]) == (msg["id"], False, "06 12 34 56 78", 3.0)
        a = await client.get(m["audio"], headers={"Range": "bytes=0-"})
        assert a.status == 206 and (await a.read())[:4] == b"RIFF"
        r = await client.post(
            f"/api/v1/voicemail/{msg['id']}/heard", json={"heard": True}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status == 200 and (await r.json())["heard"] is True
        assert (await V.get_message(ctx.db, msg["id"]))["heard"] is True  # the library's view: `pypbx voicemail list`
        r = await client.post(
            f"/api/v1/voicemail/{msg['id']}/heard", json={"heard": "yes"}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status == 400
        log = [(a[0], a[1]) for a in await audit(ctx) if a[1].startswith("voicemail.")]
        assert log == [
            ("bob", "voicemail.play"),
            ("bob", "voicemail.heard"),
            ("alice", "voicemail.play"),
            ("alice", "voicemail.heard"),
        ]

        client.session.cookie_jar.clear()
        await login(client, "sup")
        assert [b["box"] for b in await (await client.get("/api/v1/voicemail")).json()] == ["201", "202"]

    run(make_config, body)


def test_the_page_renders_filters_checklist_and_nav(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        r = await client.get("/recordings", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/login")
        await login(client, "sup")
        html = await (await client.get("/recordings")).text()
        assert 'href="/recordings" aria-current="page"' in html
        for needle in ('id="f-number"', 'id="f-external"', 'id="player"', 'id="review-form"', 'data-item="polite"'):
            assert needle in html, needle
        assert '<script src="/static/recordings.js">' in html
        client.session.cookie_jar.clear()
        await login(client, "alice")
        html = await (await client.get("/recordings")).text()
        assert 'id="review-form"' not in html and 'id="f-agent"' not in html  # an agent: no scoring, own calls
        js = await client.get("/static/recordings.js")
        assert js.status == 200

    run(make_config, body)


def test_a_compressed_recording_plays_and_downloads_as_itself(make_config: Callable[..., Path]) -> None:
    """After the background compression (pypbx.retention: FLAC) the page's audio is the FLAC
    file, served as audio/flac with range requests, downloaded as CALL.flac, 10 s long."""
    import io

    import soundfile as sf

    from pypbx import retention

    async def body(client: TestClient, ctx: Any) -> None:
        row = await ctx.db.stored_recording_row("call-alice-in")
        wav = Path(row["path"])
        done = retention.compress_file(wav, retention.AudioFormat.FLAC)
        await ctx.db.upsert_recording(
            {
                "call_id": "call-alice-in",
                "path": str(done.path),
                "status": "complete",
                "seconds": 10.0,
                "created_at": NOON + 13,
                "detail": "{}",
            }
        )
        wav.unlink()
        await login(client, "sup")
        url = "/api/v1/recordings/call-alice-in/audio"
        part = await client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status == 206 and part.headers["Content-Type"] == "audio/flac"
        dl = await client.get(url + "?download=1")
        assert dl.headers["Content-Disposition"] == 'attachment; filename="call-alice-in.flac"'
        data, rate = sf.read(io.BytesIO(await dl.read()))
        assert len(data) / rate == 10.0

    run(make_config, body)
