"""The agent desk (/desk) in a real browser (Playwright driving Debian's chromium) against a
real ``pypbx run`` with sipp phones and callers — one PBX for the module:

* alice logs in to her queues from the desk and pauses (lunch): the next caller goes to bob
  although alice is the longest idle; she resumes and gets the following caller, whose name
  and patient id the desk shows while the call is up; the reason code and a note she sets
  from the desk are in the call's books;
* a caller abandons: the task appears in the desk's worklist with its age; alice claims it,
  one click rings her sipp phone first and then dials the caller (a sipp phone answering as
  the patient); the outcome she records in the browser closes the task in the books
  (``pypbx missed list --json``). Every action is in the audit log.

* alice types a number in the desk and presses Enter: her phone rings first, then the number
  is dialled through the trunk (a sipp UAS playing the provider).

The desk is photographed into docs/screenshots/desk.png and, 375 px wide, desk-phone.png.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import PbxProcess, auth_users, require_tool, run_sipp
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import call_events, caller, login, records, setup_queue
from tests.integration.test_web_board import CHROMIUM_ARGS, SHOTS

pytestmark = pytest.mark.slow

WEB_PW = "desk pass 1"


class Desk:
    """The module's PBX and alice's desk in a browser."""

    def __init__(self, p: PbxProcess, page: Any, browser: Any, tmp: Path) -> None:
        self.p, self.page, self.browser, self.tmp = p, page, browser, tmp

    def logged_in(self) -> None:
        """Alice logged in at 1001 (the first test did it from the desk; a test run alone does it here)."""
        if self.page.get_attribute("#agent-state", "data-state") == "logged_out":
            self.page.fill("#login-ext", "1001")
            self.page.click("#btn-login")
            self.state_is("available")

    def state_is(self, state: str) -> None:
        self.page.wait_for_function(
            "s => document.getElementById('agent-state').dataset.state === s", arg=state, timeout=10_000
        )


def seed_caller(p: PbxProcess, number: str, name: str, patient_id: str) -> None:
    """A patient on the callers list (`callers import` takes E.164 numbers only: the test's
    callers are extensions, so the row goes in directly)."""
    from pypbx.db import open_db

    async def go() -> None:
        async with open_db(p.cfg.db_path) as db:
            await db.upsert_patient_rows([(number, name, patient_id)], 1.0)

    asyncio.run(go())


def tasks(p: PbxProcess) -> list[dict]:
    return json.loads(p.cli("missed", "list", "--json", "--all").stdout)


def local_api(p: PbxProcess, cmd: str, **args: Any) -> Any:
    """The PBX's local API from a thread (Playwright's sync API keeps an event loop running in this one)."""
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(p.api(cmd, **args)))
    t.start()
    t.join(15)
    return got[0]


def agent_state(p: PbxProcess, agent: str) -> str | None:
    """The agent's state in the live ACD."""
    return next((a["state"] for a in local_api(p, "queue_status", queue="front")["agents"] if a["id"] == agent), None)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("desk")
    # a callback's 3 s of talk does not close the task by itself: the desk records the outcome
    p = PbxProcess(tmp / "pbx", security={"exempt": ["127.0.0.1"]}, missed={"reached_after": 60.0})
    p.add_extensions(["1001", "1002", "1009", "1010"], PASSWORD)
    p.start()
    try:
        setup_queue(p)  # front (600), longest idle, agents alice and bob
        p.cli("reason", "add", "appointment", "Appointment", "--digit", "1")
        p.cli("reason", "add", "results", "Test results", "--digit", "2")
        p.cli("user", "add", "alice", "--role", "agent", "--agent", "alice", "--password", WEB_PW)
        seed_caller(p, "1010", "Jean Martin", "P-0077")
        seed_caller(p, "1009", "Marie Dupont", "P-0042")
        base = f"http://127.0.0.1:{p.cfg.web.port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                page = ctx.new_page()
                page.goto(f"{base}/desk")  # anonymous: to the login page, then back
                page.fill("#name", "alice")
                page.fill("#password", WEB_PW)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/desk")
                page.wait_for_function("() => document.getElementById('desk').dataset.live === '1'", timeout=10_000)
                yield Desk(p, page, browser, tmp)
            finally:
                browser.close()
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-4000:]
    p.check_events()


def test_paused_from_the_desk_the_next_caller_goes_to_the_other_agent(desk: Desk) -> None:
    p, page, tmp = desk.p, desk.page, desk.tmp
    alice = Phone(p, "1001", "call_uas.xml", tmp / "alice", ring_ms=300)
    bob = Phone(p, "1002", "call_uas.xml", tmp / "bob", ring_ms=300)
    # alice logs in from the desk (keyboard: type the extension, Enter on the button)
    desk.state_is("logged_out")
    page.fill("#login-ext", "1001")
    page.focus("#btn-login")
    page.keyboard.press("Enter")
    desk.state_is("available")
    login(p, "bob", "1002")  # after alice: alice is the longest idle

    # -- paused (lunch) from the desk: the next caller goes to bob
    page.select_option("#pause-reason", "lunch")
    page.click("#btn-pause")
    desk.state_is("paused")
    assert page.inner_text("#agent-state") == "paused (lunch)"
    assert p.wait_for(lambda: agent_state(p, "alice") == "paused" or None, 5, "alice paused in the ACD")
    out: dict[str, Any] = {}
    first = threading.Thread(target=lambda: out.setdefault("c1", caller(p, tmp / "c1", stay_ms=9000, frm="1009")))
    first.start()
    try:
        p.wait_for(lambda: agent_state(p, "bob") == "on_call" or None, 15, "bob on the first call")
        assert page.get_attribute("#call", "data-phase") == ""  # nothing for alice

        # -- resumed: the following caller is hers (bob is busy)
        page.click("#btn-resume")
        desk.state_is("available")
        second = threading.Thread(target=lambda: out.setdefault("c2", caller(p, tmp / "c2", stay_ms=7000, frm="1010")))
        second.start()
        try:
            page.wait_for_selector("#call[data-phase=up]", timeout=15_000)
            assert page.inner_text("#call-number") == "1010"
            assert page.inner_text("#call-name") == "Jean Martin"
            assert page.inner_text("#call-patient") == "P-0077"
            assert page.inner_text("#call-queue") == "front"
            # the reason code and a note, during the call
            page.select_option("#reason-code", "appointment")
            page.click("#btn-reason")
            page.wait_for_function(
                "() => document.getElementById('call-reason').textContent === 'Appointment (appointment)'",
                timeout=10_000,
            )
            page.fill("#note-text", "wants a morning slot")
            page.click("#btn-note")
            page.wait_for_function(
                "() => document.getElementById('call-notes').textContent.includes('wants a morning slot')",
                timeout=10_000,
            )
        finally:
            second.join(60)
    finally:
        first.join(60)
    assert out["c1"].returncode == 0 and out["c2"].returncode == 0, [r.errors for r in out.values()]
    assert alice.wait() == 0, alice.errors()
    assert bob.wait() == 0, bob.errors()
    c1, c2 = records(p, 2)
    assert (c1["caller_number"], c1["agent"], c1["disposition"]) == ("1009", "bob", "answered")
    assert (c2["caller_number"], c2["agent"], c2["disposition"]) == ("1010", "alice", "answered")
    steps = {e["kind"]: json.loads(e["detail"]) for e in call_events(p, c2["id"]) if e["kind"] in ("reason", "note")}
    assert steps["reason"]["code"] == "appointment" and steps["reason"]["agent"] == "alice"
    assert (steps["note"]["text"], steps["note"]["by"]) == ("wants a morning slot", "alice")
    # after the call the desk keeps it (to correct the reason in wrap-up)
    page.wait_for_selector("#call[data-phase=last]", timeout=10_000)
    acts = [(a["who"], a["action"], a["target"]) for a in json.loads(p.cli("audit", "--json").stdout)]
    for act in ("agent.login", "agent.pause", "agent.unpause"):
        assert ("alice", act, "alice") in acts
    assert ("alice", "call.reason", c2["id"]) in acts and ("alice", "call.note", c2["id"]) in acts


def test_an_abandoned_caller_is_called_back_from_the_worklist_in_one_click(desk: Desk) -> None:
    p, page, tmp = desk.p, desk.page, desk.tmp
    desk.logged_in()
    page.select_option("#pause-reason", "admin")
    page.click("#btn-pause")  # alice works the worklist, out of the queue
    desk.state_is("paused")
    p.cli("agent", "logout", "bob", check=False)
    before = len(json.loads(p.cli("calls", "list", "--json").stdout))

    res = caller(p, tmp / "gone", stay_ms=2500, frm="1009")  # nobody to answer: abandons
    assert res.returncode == 0, res.errors or res.stdout[-3000:]
    missed = records(p, before + 1)[-1]
    assert missed["disposition"] == "abandoned_queue"
    page.wait_for_selector("#worklist li.task", timeout=10_000)
    [t] = [x for x in tasks(p) if x["state"] == "open"]
    li = f"#worklist li[data-task='{t['id']}']"
    assert page.inner_text(f"{li} .t-number") == "1009"
    age0 = page.inner_text(f"{li} .t-age")
    page.wait_for_function(f'a => document.querySelector("{li} .t-age").textContent !== a', arg=age0, timeout=5_000)

    page.click(f"{li} .t-claim")
    page.wait_for_function(
        f"() => document.querySelector(\"{li} .t-info\").textContent.includes('claimed by alice')", timeout=10_000
    )
    # alice's phone (a fresh sipp: the first one's binding removed), the patient's phone
    r = run_sipp("unregister.xml", f"127.0.0.1:{p.port}", users=auth_users(["1001"], PASSWORD), workdir=tmp / "unreg")
    assert r.returncode == 0, r.errors
    agent = Phone(p, "1001", "call_uas.xml", tmp / "alice2", ring_ms=300)
    patient = Phone(p, "1009", "missed_uas_talks.xml", tmp / "patient", ring_ms=300)
    page.click(f"{li} .t-call")  # one click
    assert agent.wait() == 0, agent.errors()
    assert patient.wait() == 0, patient.errors()
    cb = records(p, before + 2)[-1]
    assert (cb["direction"], cb["caller_number"], cb["callee_number"], cb["disposition"]) == (
        "outbound",
        "1001",
        "1009",
        "answered",
    )
    kinds = [e["kind"] for e in call_events(p, cb["id"])]
    assert kinds.index("extension_answered") < kinds.index("callback_dial") < kinds.index("answered")
    p.wait_for(
        lambda: [x["attempts"] for x in tasks(p) if x["id"] == t["id"]] == [1] or None, 10, "the attempt in the books"
    )
    assert [x["state"] for x in tasks(p) if x["id"] == t["id"]] == ["open"]  # 3 s of talk: not reached by itself
    page.wait_for_function(
        f"() => document.querySelector(\"{li} .t-info\").textContent.includes('attempts 1')", timeout=10_000
    )
    page.wait_for_selector("#call[data-phase=last]", timeout=10_000)
    page.wait_for_function("() => document.getElementById('call-number').textContent === '1009'", timeout=10_000)
    page.screenshot(path=str(SHOTS / "desk.png"), full_page=True)
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 375, "height": 812})
    phone.goto(page.url)
    phone.wait_for_selector(f"{li}", timeout=10_000)
    phone.wait_for_function("() => document.getElementById('call-number').textContent === '1009'", timeout=10_000)
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the desk is {width} px wide on a 375 px screen"
    phone.screenshot(path=str(SHOTS / "desk-phone.png"), full_page=True)
    phone.close()

    # -- the outcome recorded in the browser closes the task in the books
    page.select_option(f"{li} .t-outcome", "reached")
    page.click(f"{li} .t-close")
    page.wait_for_selector(li, state="detached", timeout=10_000)
    [done] = [x for x in tasks(p) if x["id"] == t["id"]]
    assert (done["state"], done["outcome"], done["closed_by"], done["claimed_by"]) == (
        "closed",
        "reached",
        "alice",
        "alice",
    )
    assert json.loads(p.cli("missed", "list", "--json").stdout) == []
    acts = [(a["who"], a["action"], a["target"]) for a in json.loads(p.cli("audit", "--json").stdout)]
    for act in ("missed.claim", "missed.call", "missed.close"):
        assert ("alice", act, str(t["id"])) in acts


def test_click_to_call_from_the_desk_rings_the_agent_first(desk: Desk) -> None:
    from tests.integration.test_trunks import PROVIDER, Provider

    p, page, tmp = desk.p, desk.page, desk.tmp
    desk.logged_in()
    prov = Provider("trunk_uas.xml", tmp / "prov", subst={"__RURI__": r"\+33612345678", "__FROM__": r"\+33100000000"})
    try:
        p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:{prov.port}", "--caller-id", "+33100000000")
        p.wait_for(lambda: "prov" in json.dumps(local_api(p, "trunks")) or None, 10, "the trunk live")
        r = run_sipp(
            "unregister.xml", f"127.0.0.1:{p.port}", users=auth_users(["1001"], PASSWORD), workdir=tmp / "unreg3"
        )
        assert r.returncode == 0, r.errors
        phone = Phone(p, "1001", "call_uas_hangs_up.xml", tmp / "alice3")
        before = len(json.loads(p.cli("calls", "list", "--json").stdout))
        page.fill("#dial-number", "06 12 34 56 78")
        page.press("#dial-number", "Enter")  # the keyboard: Enter in the number dials
        assert phone.wait() == 0, phone.errors()
        assert prov.wait() == 0, prov.errors()
    finally:
        prov.kill()
    rec = records(p, before + 1)[-1]
    assert (rec["direction"], rec["caller_number"], rec["callee_number"], rec["disposition"]) == (
        "outbound",
        "1001",
        "+33612345678",
        "answered",
    )
    kinds = [e["kind"] for e in call_events(p, rec["id"])]
    assert kinds.index("click_to_call") < kinds.index("trunk_dial")  # alice's phone first, then the number
    acts = [(a["who"], a["action"], a["detail"]) for a in json.loads(p.cli("audit", "--json").stdout)]
    assert ("alice", "agent.originate", "extension=1001 number=0612345678") in acts
