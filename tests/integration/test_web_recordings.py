"""The recordings page in a real browser (Playwright driving Debian's chromium) against ONE real
``pypbx run`` (module-scoped) with a real recorded queue call (sipp caller, alice's sipp phone
answers): the recording plays in the page — the audio element reports the recording's duration
(±0.5 s), a seek to the middle moves currentTime and is served as a range request (206) — an
agent login gets 403 for another agent's recording, and both the play and the refusal are in
``pypbx audit --json``; a supervisor scores the call on the clinic's checklist in the page and
the agent sees the score; the agent plays the voicemail of her extension's mailbox and marks
it heard (``pypbx voicemail list`` agrees). The page is photographed into docs/screenshots/recordings.png.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypbx import quality as Q
from pypbx import voicemail as V
from pypbx.db import open_db
from pypbx.web import accounts as A
from tests.integration.harness import PbxProcess, require_tool
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, setup_queue
from tests.integration.test_web_board import CHROMIUM_ARGS, SHOTS

pytestmark = pytest.mark.slow

WEB_PW = "recordings pass 1"
CHECKLIST = ["greeted", "identified the patient", "solved the request", "polite"]


def prepare(p: PbxProcess, seconds: float) -> None:
    """The checklist, the logins, alice's mailbox with a message of ``seconds`` — through the
    library the CLI and the voicemail flow use, in one go (each CLI run is a process start)."""
    wav = p.workdir / "message.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))

    async def go() -> None:
        async with open_db(p.cfg.db_path) as db:
            await Q.set_checklist(db, CHECKLIST)
            for name, role, agent in (
                ("nurse", "supervisor", None),
                ("alice", "agent", "alice"),
                ("bob", "agent", "bob"),
            ):
                await A.add_user(db, name, role, agent_id=agent, password=WEB_PW)
            await V.set_box(db, "1001")
            await V.file_message(
                db, p.cfg.data_dir, "1001", wav, caller="+33612345678", did=None, call_id=None, received_at=time.time()
            )

    asyncio.run(go())


class Desk:
    def __init__(self, p: PbxProcess, rec: dict[str, Any], browser: Any) -> None:
        self.p = p
        self.rec = rec
        self.browser = browser
        self.base = f"http://127.0.0.1:{p.cfg.web.port}"

    def page_as(self, name: str) -> Any:
        ctx = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(f"{self.base}/recordings")
        page.fill("#name", name)
        page.fill("#password", WEB_PW)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.base}/recordings")
        return page

    def audit(self) -> list[tuple[str, str, str | None, bool]]:
        return [(a["who"], a["action"], a["target"], a["ok"]) for a in json.loads(self.p.cli("audit", "--json").stdout)]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("web_recordings")
    p = PbxProcess(tmp / "pbx", security={"exempt": ["127.0.0.1"]})
    p.add_extensions(["1001", "1009"], PASSWORD)
    p.start()
    try:
        setup_queue(p, agents=("alice", "bob"))
        prepare(p, 4.0)
        # a queue call alice answers: recorded (the caller hangs up 9 s after the PBX answered it)
        Phone(p, "1001", "call_uas.xml", tmp / "alice", ring_ms=300)
        login(p, "alice", "1001")
        res = caller(p, tmp / "caller", stay_ms=9000)
        assert res.returncode == 0, res.errors or res.stdout[-3000:]

        def recorded() -> list[dict[str, Any]] | None:
            rows = json.loads(p.cli("recordings", "--json").stdout)
            return rows if rows and rows[0]["recording_status"] == "complete" else None

        rec = p.wait_for(recorded, 20, "the recording")[0]
        assert rec["agent"] == "alice" and rec["recording_seconds"] > 3, rec
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                yield Desk(p, rec, browser)
            finally:
                browser.close()
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-4000:]
    p.check_events()


def play(page: Any, call_id: str) -> None:
    page.wait_for_selector(f'#rec-table tr[data-call="{call_id}"]', timeout=10_000)
    page.click(f'#rec-table tr[data-call="{call_id}"] button.play')
    page.wait_for_function(
        "() => { const a = document.getElementById('player'); return a.readyState >= 1 && isFinite(a.duration); }",
        timeout=10_000,
    )


def test_a_recording_plays_in_the_page_and_seeks_with_range_requests(desk: Desk) -> None:
    rec = desk.rec
    page = desk.page_as("nurse")
    statuses: list[tuple[int, str]] = []
    page.on(
        "response",
        lambda r: (
            statuses.append((r.status, r.request.headers.get("range", "")))
            if "/audio" in r.url and rec["id"] in r.url
            else None
        ),
    )
    play(page, rec["id"])
    duration = page.evaluate("() => document.getElementById('player').duration")
    assert abs(duration - rec["recording_seconds"]) <= 0.5, (duration, rec["recording_seconds"])
    middle = duration / 2
    page.evaluate(
        "t => new Promise(ok => { const a = document.getElementById('player'); a.pause();"
        " a.addEventListener('seeked', () => ok(), {once: true}); a.currentTime = t; })",
        middle,
    )
    now = page.evaluate("() => document.getElementById('player').currentTime")
    assert abs(now - middle) < 0.5, (now, middle)
    # the bytes of the middle, asked for as the player does: a range request answered 206
    size = Path(rec["recording_path"]).stat().st_size
    got = page.evaluate(
        "([u, from]) => fetch(u, {headers: {Range: 'bytes=' + from + '-'}})"
        ".then(r => r.arrayBuffer().then(b => [r.status, r.headers.get('Content-Range'), b.byteLength]))",
        [f"/api/v1/recordings/{rec['id']}/audio", size // 2],
    )
    assert got == [206, f"bytes {size // 2}-{size - 1}/{size}", size - size // 2]
    assert any(s == 206 for s, _ in statuses), statuses  # the player's own requests were range requests
    assert ("nurse", "recording.play", rec["id"], True) in desk.audit()
    page.context.close()


def test_an_agent_gets_403_for_another_agents_recording_and_it_is_audited(desk: Desk) -> None:
    rec = desk.rec
    page = desk.page_as("bob")
    page.wait_for_function("() => document.getElementById('rec-status').textContent !== ''", timeout=10_000)
    assert page.locator("#rec-table tbody tr").count() == 0  # bob took no call: nothing listed
    status = page.evaluate("u => fetch(u).then(r => r.status)", f"/api/v1/recordings/{rec['id']}/audio")
    assert status == 403
    assert ("bob", "recording.play", rec["id"], False) in desk.audit()
    page.context.close()


def test_a_supervisor_scores_the_call_and_the_agent_sees_the_score(desk: Desk) -> None:
    rec = desk.rec
    page = desk.page_as("nurse")
    play(page, rec["id"])
    for i, ok in enumerate([True, True, False, True], 1):
        page.check(f"#review-form input[name=q{i}][value={'yes' if ok else 'no'}]")
    page.fill("#review-text", "Friendly; the appointment was not booked.")
    page.click("#review-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('review-saved').textContent !== ''", timeout=10_000)
    assert page.inner_text("#review-saved") == "Review saved."
    assert page.inner_text(f'#rec-table tr[data-call="{rec["id"]}"] .q-score') == "3/4"
    page.screenshot(path=str(SHOTS / "recordings.png"), full_page=True)
    rep = json.loads(desk.p.cli("report", "quality", "--json").stdout)
    assert [(a["agent"], a["reviews"], a["score"]) for a in rep["agents"]] == [("alice", 1, 0.75)]
    page.context.close()

    page = desk.page_as("alice")
    page.wait_for_selector(f'#rec-table tr[data-call="{rec["id"]}"]', timeout=10_000)
    assert page.inner_text(f'#rec-table tr[data-call="{rec["id"]}"] .q-score') == "3/4"
    play(page, rec["id"])
    page.wait_for_function("() => document.getElementById('review-score').textContent.startsWith('3/4')")
    assert "reviewed by nurse" in page.inner_text("#review-score")
    assert page.inner_text("#review-comment") == "Friendly; the appointment was not booked."
    answers = page.locator("#review-answers li")
    assert answers.all_inner_texts() == ["✔ greeted", "✔ identified the patient", "✘ solved the request", "✔ polite"]
    assert page.locator("#review-form").count() == 0  # an agent reads, does not score
    # alice's mailbox (she is logged in at 1001): the message plays, and is marked heard for `pypbx voicemail`
    page.wait_for_selector('#voicemail section[data-box="1001"] tr.new', timeout=10_000)
    page.click('#voicemail section[data-box="1001"] tr.new button.play')
    page.wait_for_function(
        "() => { const a = document.querySelector('#voicemail audio'); return a && isFinite(a.duration); }",
        timeout=10_000,
    )
    assert abs(page.evaluate("() => document.querySelector('#voicemail audio').duration") - 4.0) <= 0.5
    page.click('#voicemail section[data-box="1001"] tr.new button.mark')
    page.wait_for_selector('#voicemail section[data-box="1001"] tr.heard', timeout=10_000)
    msgs = json.loads(desk.p.cli("voicemail", "list", "1001", "--json").stdout)
    assert [m["heard"] for m in msgs] == [True]
    assert [a[1] for a in desk.audit() if a[0] == "alice"][-2:] == ["voicemail.play", "voicemail.heard"]
    page.context.close()
