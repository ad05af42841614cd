"""The web desk's wallboard in a real browser (Playwright driving Debian's chromium) against
a real ``pypbx run`` with sipp phones: a caller entering a queue is on the board within one
second of its ``queue.entered`` event and off it within one second of being answered; the
board's counters for today equal ``pypbx report summary --json`` after a mixed run (one caller
abandons after 6.5 s, one is answered); a wallboard login cannot pause anyone (403 from the API); a form
post without its CSRF token is refused; ten wrong passwords lock a login. The login page and
the board are photographed into docs/screenshots/. A web port already taken stops ``pypbx run``
with one line (exit 2).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import PbxProcess, require_tool
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, records, setup_queue

pytestmark = pytest.mark.slow

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WEB_PW = "wallboard pass 1"


def journal_at(p: PbxProcess, event: str, n: int = 1) -> float:
    """When the ``n``-th ``event`` was published (the events journal's wall-clock ``at``)."""

    def find() -> float | None:
        evs = [json.loads(line) for line in p.cfg.events.journal.read_text().splitlines() if line.strip()]
        hits = [e["at"] for e in evs if e["event"] == event]
        return hits[n - 1] if len(hits) >= n else None

    return p.wait_for(find, 15, f"{event} #{n} in the journal")


def board_waiting_becomes(page: Any, value: str, timeout: float = 15.0) -> float:
    """Wait until the 'front' tile shows ``value`` callers waiting; when it did (browser clock, s)."""
    page.wait_for_function(
        "v => { const el = document.querySelector('article[data-queue=\"front\"] .q-waiting');"
        " if (el && el.textContent === v) { window.__seen = window.__seen || {};"
        " window.__seen[v] = window.__seen[v] || Date.now(); return true; } return false; }",
        arg=value,
        timeout=timeout * 1000,
        polling=20,
    )
    return page.evaluate("v => window.__seen[v]", value) / 1000.0


def metrics_status(base: str, token: str | None) -> int:
    req = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def metrics(base: str, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` parsed by prometheus_client: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    req = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_wallboard_live_counters_roles_csrf_lockout(tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    p = PbxProcess(
        tmp_path / "pbx", security={"exempt": ["127.0.0.1"]}, web={"board_wait_warn": 3, "board_wait_alarm": 20}
    )
    p.add_extensions(["1001", "1009", "1010"], PASSWORD)
    p.start()
    threads: list[threading.Thread] = []
    results: list[Any] = []
    try:
        setup_queue(p, agents=("alice",))
        p.cli("user", "add", "tv", "--role", "wallboard", "--password", WEB_PW)
        p.cli("user", "add", "nurse", "--role", "supervisor", "--password", WEB_PW)
        tv_token = p.cli("token", "add", "--role", "wallboard", "--name", "prometheus").stdout.split()[-1]
        agent_token = p.cli("token", "add", "--role", "agent", "--agent", "alice").stdout.split()[-1]
        base = f"http://127.0.0.1:{p.cfg.web.port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                # -- ten wrong passwords lock the login (its own browser context)
                ctx = browser.new_context()
                lp = ctx.new_page()
                for _ in range(10):
                    lp.goto(f"{base}/login")
                    lp.fill("#name", "nurse")
                    lp.fill("#password", "not the password")
                    lp.click("button[type=submit]")
                    assert "wrong user name or password" in lp.inner_text("#login-error")
                lp.goto(f"{base}/login")
                lp.fill("#name", "nurse")
                lp.fill("#password", WEB_PW)
                lp.click("button[type=submit]")
                assert "locked" in lp.inner_text("#login-error")
                assert p.log().count('SECURITY auth-failed ip=127.0.0.1 user="nurse" method=HTTP') == 11
                ctx.close()

                # -- the wallboard login
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                page.goto(f"{base}/board")  # anonymous: to the login page
                assert page.url.startswith(f"{base}/login")
                page.screenshot(path=str(SHOTS / "login.png"))
                page.fill("#name", "tv")
                page.fill("#password", WEB_PW)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/board")
                page.wait_for_function("document.getElementById('board').dataset.live === '1'", timeout=10_000)

                # -- a wallboard login cannot pause anyone; a post without the CSRF token is refused
                csrf = page.get_attribute("form.logout input[name=csrf]", "value")
                assert csrf
                status = page.evaluate(
                    "t => fetch('/api/v1/agents/alice/pause', {method: 'POST', headers: {'X-CSRF-Token': t,"
                    " 'Content-Type': 'application/json'}, body: '{\"reason\": \"lunch\"}'}).then(r => r.status)",
                    csrf,
                )
                assert status == 403
                status = page.evaluate(
                    "() => fetch('/logout', {method: 'POST', body: new URLSearchParams({})}).then(r => r.status)"
                )
                assert status == 403
                audit = json.loads(p.cli("audit", "--json").stdout)
                refused = [(a["who"], a["action"], a["target"]) for a in audit if not a["ok"]][-2:]
                assert refused == [
                    ("tv", "forbidden", "POST /api/v1/agents/alice/pause"),
                    ("tv", "csrf.refused", "/logout"),
                ]

                # -- a caller enters the queue (nobody logged in): on the board within 1 s
                def call(workdir: Path, stay_ms: int, frm: str) -> None:
                    results.append(caller(p, workdir, stay_ms=stay_ms, frm=frm))

                threads.append(threading.Thread(target=call, args=(tmp_path / "c1", 16000, "1009")))
                threads[-1].start()
                shown = board_waiting_becomes(page, "1")
                entered = journal_at(p, "queue.entered")
                assert shown - entered < 1.0, f"on the board {shown - entered:.2f} s after queue.entered"

                # a second caller, who gives up after 6.5 s: abandoned (not a short abandon, < 5 s)
                threads.append(threading.Thread(target=call, args=(tmp_path / "c2", 6500, "1010")))
                threads[-1].start()
                board_waiting_becomes(page, "2")
                # the first has waited board_wait_warn (3 s): amber (the board re-renders every second)
                page.wait_for_selector("article[data-queue=front][data-level=warn]", timeout=5_000)
                page.screenshot(path=str(SHOTS / "wallboard.png"))
                board_waiting_becomes(page, "1")  # the second one hung up

                # -- /metrics (Prometheus) with a wallboard token: the same figures, read by the
                # reference parser; no token 401, an agent's token 403
                got = metrics(base, tv_token)
                assert got[("pypbx_queue_waiting", (("queue", "front"),))] == 1
                assert got[("pypbx_calls_active", ())] == 1
                assert got[("pypbx_queue_agents", (("queue", "front"), ("state", "logged_out")))] == 1
                assert got[("pypbx_up", ())] == 1 and got[("pypbx_registrations", ())] == 0
                assert got[("pypbx_calls_total", (("disposition", "abandoned_queue"),))] == 1
                assert metrics_status(base, None) == 401 and metrics_status(base, agent_token) == 403

                # -- alice logs in, her sipp phone answers: off the board within 1 s
                Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=300)
                login(p, "alice", "1001")
                gone = board_waiting_becomes(page, "0")
                connected = journal_at(p, "queue.connected")
                assert gone - connected < 1.0, f"off the board {gone - connected:.2f} s after queue.connected"

                for t in threads:
                    t.join(60)
                assert [r.returncode for r in results] == [0, 0], [r.errors or r.stdout[-2000:] for r in results]
                rows = records(p, 2)
                assert sorted(r["disposition"] for r in rows) == ["abandoned_queue", "answered"]

                # -- today's counters equal `pypbx report summary --json`
                rep = json.loads(p.cli("report", "summary", "--json").stdout)
                q, s = rep["queues"]["front"], rep["summary"]
                sl = "–" if q["service_level"] is None else f"{round(q['service_level'] * 100)} %"
                want = {
                    "t-in-progress": str(s["in_progress"]),
                    "t-offered": str(s["offered"]),
                    "t-answered": str(s["answered"]),
                    "t-abandoned": str(s["abandoned"]),
                    "q-offered": str(q["entered"]),
                    "q-answered": str(q["answered"]),
                    "q-abandoned": str(q["abandoned"]),
                    "q-sl": sl,
                }
                assert (s["offered"], q["entered"], q["answered"], q["abandoned"]) == (2, 2, 1, 1)
                js = (
                    "w => Object.keys(w).every(k => { const el = k.startsWith('t-') ? document.getElementById(k)"
                    " : document.querySelector('article[data-queue=\"front\"] .' + k); return el && el.textContent === w[k]; })"
                )
                page.wait_for_function(js, arg=want, timeout=10_000)
            finally:
                browser.close()
    finally:
        for t in threads:
            t.join(60)
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-4000:]
    p.check_events()


def test_a_taken_web_port_stops_pypbx_run_with_one_line(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.integration.harness import BIN

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        p = PbxProcess(tmp_path / "pbx", web={"port": taken.getsockname()[1]})
        res = subprocess.run(
            [str(BIN / "pypbx"), "run", "--config", str(p.config_path)], capture_output=True, text=True, timeout=60
        )
    finally:
        taken.close()
    assert res.returncode == 2
    assert f"cannot start: web desk: cannot listen on 127.0.0.1:{p.cfg.web.port}" in res.stderr
    assert "Traceback" not in res.stderr, res.stderr[-4000:]
