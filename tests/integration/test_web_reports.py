"""The reports and supervisor pages in a real browser (Playwright driving Debian's chromium)
against ONE real ``pypbx run`` (module-scoped) with sipp phones:

* after a mixed run (a caller abandons, one is answered) the reports page draws its charts
  (a canvas in each) and its summary CSV equals ``pypbx report summary --json``;
* a supervisor forces alice into pause from the supervisor page and the next caller goes to
  bob; the page shows the live call;
* closing the queue from the page sends the next caller to the queue's closed destination
  (its overflow target, extension 1003) at once.

The pages are photographed into docs/screenshots/ (reports.png, supervisor.png).
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import PbxProcess, require_tool
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, queue_events, records, setup_queue
from tests.integration.test_web_board import CHROMIUM_ARGS, SHOTS

pytestmark = pytest.mark.slow

WEB_PW = "supervisor pass 1"


class Desk:
    def __init__(self, p: PbxProcess, page: Any, base: str, tmp: Path) -> None:
        self.p, self.page, self.base, self.tmp = p, page, base, tmp
        self.calls = 0  # call records so far

    def call(self, name: str, stay_ms: int, frm: str = "1009") -> Any:
        res = caller(self.p, self.tmp / name, stay_ms=stay_ms, frm=frm)
        assert res.returncode == 0, res.errors or res.stdout[-3000:]
        self.calls += 1
        return records(self.p, self.calls)[-1]

    def agent(self, agent_id: str) -> dict[str, Any]:
        rows = json.loads(self.p.cli("agent", "list", "--json").stdout)
        return next(a for a in rows if a["id"] == agent_id)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("web_reports")
    p = PbxProcess(tmp / "pbx", security={"exempt": ["127.0.0.1"]})
    p.add_extensions(["1001", "1002", "1003", "1009", "1010"], PASSWORD)
    p.start()
    try:
        # the queue's closed destination: its overflow target, extension 1003 (overflow after 120 s)
        setup_queue(p, "--overflow-after", "120", "--overflow-to", "extension:1003")
        p.cli("user", "add", "nurse", "--role", "supervisor", "--password", WEB_PW)
        base = f"http://127.0.0.1:{p.cfg.web.port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/login")
                page.fill("#name", "nurse")
                page.fill("#password", WEB_PW)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/board")
                yield Desk(p, page, base, tmp)
            finally:
                browser.close()
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-4000:]
    p.check_events()


def test_reports_page_draws_charts_and_its_csv_equals_the_cli_json(desk: Desk) -> None:
    p, page = desk.p, desk.page
    # a mixed run: nobody logged in, the first caller gives up; alice answers the second
    gave_up = desk.call("c1", 2500)
    assert gave_up["disposition"] == "abandoned_queue"
    alice = Phone(p, "1001", "call_uas.xml", desk.tmp / "alice1", ring_ms=300)
    login(p, "alice", "1001")
    answered = desk.call("c2", 4000)
    assert answered["disposition"] == "answered" and answered["agent"] == "alice"
    assert alice.wait() == 0, alice.errors()

    page.goto(f"{desk.base}/reports")
    for chart in ("chart-hours", "chart-sl", "chart-waits", "chart-staff"):
        page.wait_for_selector(f"#{chart}[data-drawn='1'] canvas", timeout=10_000)
    rep = json.loads(p.cli("report", "summary", "--json").stdout)
    s = rep["summary"]
    assert (s["offered"], s["answered"], s["abandoned"]) == (2, 1, 1)
    assert page.inner_text("#s-offered") == "2" and page.inner_text("#s-abandoned") == "1"
    page.screenshot(path=str(SHOTS / "reports.png"), full_page=False)

    # the summary CSV (the page's own link) equals `pypbx report summary --json`
    href = page.get_attribute("#report-summary a.csv", "href")
    assert href and href.startswith("/api/v1/reports/summary.csv?since=")
    text = page.evaluate("u => fetch(u).then(r => r.text())", href)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    flat = {k: v for k, v in s.items() if not isinstance(v, dict)}
    flat.update({f"{k}.{k2}": v2 for k, v in s.items() if isinstance(v, dict) for k2, v2 in v.items()})
    assert rows[0] == {k: "" if v is None else json.dumps(v) for k, v in flat.items()}
    # and the queues table's
    href = page.get_attribute("#report-queues a.csv", "href")
    assert href
    qrows = list(csv.DictReader(io.StringIO(page.evaluate("u => fetch(u).then(r => r.text())", href))))
    assert len(qrows) == 1
    qrow = qrows[0]
    q = rep["queues"]["front"]
    assert qrow["queue"] == "front"
    assert [qrow[k] for k in ("entered", "answered", "abandoned", "short_abandons")] == [
        str(q[k]) for k in ("entered", "answered", "abandoned", "short_abandons")
    ]
    assert qrow["service_level"] == ("" if q["service_level"] is None else json.dumps(q["service_level"]))


def test_supervisor_pauses_alice_from_the_page_and_the_next_caller_goes_to_bob(desk: Desk) -> None:
    p, page = desk.p, desk.page
    alice = Phone(p, "1001", "call_uas.xml", desk.tmp / "alice2", ring_ms=300)
    bob = Phone(p, "1002", "call_uas.xml", desk.tmp / "bob", ring_ms=300)
    p.cli("agent", "logout", "alice")  # (logged in by the test before)
    login(p, "alice", "1001")  # alice longest idle: she would get the next caller
    login(p, "bob", "1002")
    page.goto(f"{desk.base}/supervisor")
    page.wait_for_selector("#sup[data-live='1']", timeout=10_000)
    row = "#agents-table tr[data-agent=alice]"
    page.wait_for_selector(f"{row}[data-state=available]", timeout=10_000)
    page.select_option(f"{row} select.a-reason", "lunch")
    page.click(f"{row} .a-pause")
    page.wait_for_selector(f"{row}[data-state=paused]", timeout=5_000)
    assert (desk.agent("alice")["state"], desk.agent("alice")["pause_reason"]) == ("paused", "lunch")
    audit = json.loads(p.cli("audit", "--json").stdout)
    assert ("nurse", "agent.pause", "alice") in [(a["who"], a["action"], a["target"]) for a in audit]

    # the next caller goes to bob; the page shows the call live
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(desk.call("c3", 6000, frm="1010")))
    t.start()
    try:
        page.wait_for_selector("#calls-table tr[data-call]", timeout=10_000)
        page.wait_for_selector("#agents-table tr[data-agent=bob][data-state=on_call]", timeout=10_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#calls-table tr[data-call] td')].some(td => td.textContent === 'bob')",
            timeout=10_000,
        )
        page.screenshot(path=str(SHOTS / "supervisor.png"), full_page=True)
    finally:
        t.join(60)
    assert result and result[0]["agent"] == "bob" and result[0]["disposition"] == "answered"
    assert bob.wait() == 0, bob.errors()
    alice.proc.kill()
    alice.wait(5)
    # resume alice from the page
    page.click(f"{row} .a-unpause")
    page.wait_for_selector(f"{row}[data-state=available]", timeout=5_000)


def test_closing_the_queue_from_the_page_sends_the_next_caller_to_the_closed_destination(desk: Desk) -> None:
    p, page = desk.p, desk.page
    page.goto(f"{desk.base}/supervisor")
    qrow = "#queues-table tr[data-queue=front]"
    page.wait_for_selector(f"{qrow}[data-closed='0']", timeout=10_000)
    page.click(f"{qrow} .q-close")
    page.wait_for_selector(f"{qrow}[data-closed='1']", timeout=5_000)
    assert json.loads(p.cli("queue", "show", "front", "--json").stdout)["closed"] is True
    desk_phone = Phone(p, "1003", "call_uas.xml", desk.tmp / "desk", ring_ms=300)
    cdr = desk.call("c4", 4000)
    assert desk_phone.wait() == 0, desk_phone.errors()
    assert cdr["extension"] == "1003" and cdr["agent"] is None
    with ThreadPoolExecutor(1) as pool:  # asyncio.run, away from Playwright's event loop
        ev = pool.submit(queue_events, p, call_id=cdr["id"]).result()
    assert [(e["kind"], e["data"].get("closed")) for e in ev] == [("EXITEMPTY", True)]
    # open again from the page
    page.click(f"{qrow} .q-open")
    page.wait_for_selector(f"{qrow}[data-closed='0']", timeout=5_000)
    assert json.loads(p.cli("queue", "show", "front", "--json").stdout)["closed"] is False
