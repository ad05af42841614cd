"""Issue 14, "caller lookup in the clinic's system", end to end: a real ``pypbx run`` with
``[crm] lookup_url`` pointing at a small HTTP server the test starts (the clinic's MIS),
the sipp fake provider calling a smart-routed DID, and sipp desk phones.

* The MIS answers in 50 ms with a patient the local callers table has never seen: the call
  goes to the returning-patient queue, the agent's phone (a sipp UAS that fails unless the
  INVITE's From display is ``"Appointments: <the MIS's name>"``) answers, the books say
  ``patient``, and the callers table now holds the MIS's name and patient id.
* The MIS takes 4 s: the call is not held for it (routed as new within the 300 ms timeout,
  answered by the new-patients agent) and the PBX logs one warning.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.harness import free_port
from tests.integration.test_frontline_e2e import events, ok, pause, provider_dials
from tests.integration.test_numbers_e2e import _desk_scenario
from tests.integration.test_proxy_calls import Phone
from tests.integration.test_trunks import PROVIDER, wait_closed

pytestmark = pytest.mark.slow

DID = "0144556677"
PATIENT = "+33612345679"  # the MIS knows this one (answers in 50 ms)
SLOW = "+33698765432"  # the MIS takes 4 s for this one


class Mis:
    """The clinic's system: GET /patient?phone=E164 (bearer token required)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float, str | None]] = []  # (phone, when, Authorization)
        mis = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                phone = parse_qs(urlsplit(self.path).query).get("phone", [""])[0]
                mis.asked.append((phone, time.time(), self.headers.get("Authorization")))
                if phone == PATIENT:
                    time.sleep(0.05)
                    body = {"name": "Marie Dupont", "patient_id": "P-1042", "agent": "alice"}
                elif phone == SLOW:
                    time.sleep(4)
                    body = {"name": "Too Late", "patient_id": "P-9"}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:  # the PBX stopped waiting (the slow answer): expected
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port("tcp")), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/patient?phone={{e164}}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mis() -> Iterator[Mis]:
    m = Mis()
    yield m
    m.close()


def test_the_clinics_system_names_the_patient_and_a_slow_one_never_holds_the_call(trunk_pbx, mis, tmp_path):
    p = trunk_pbx(crm={"lookup_url": mis.url, "token": "s3cret", "timeout_ms": 300})
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("queue", "add", "returning", "--wrap-up", "0", "--skills", "returning:1")
    p.cli("queue", "add", "new_patients", "--wrap-up", "0", "--skills", "new:1")
    p.cli("agent", "add", "alice", "--name", "Alice", "--skills", "returning:5")
    p.cli("agent", "add", "bob", "--name", "Bob", "--skills", "new:5")
    p.cli("did", "add", DID, "--known", "queue:returning", "--new", "queue:new_patients", "--name", "Appointments")
    p.start()
    # 1. the MIS knows the caller: returning queue, its name on the agent's phone
    desk = Phone(
        p, "1001", str(_desk_scenario(tmp_path / "desk", "Appointments: Marie Dupont", PATIENT)), tmp_path / "desk"
    )
    p.cli("agent", "login", "alice", "1001")
    res = provider_dials(p, tmp_path / "call1", DID, pause(300), caller=PATIENT)
    assert desk.wait() == 0, desk.errors()
    assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    [row] = wait_closed(p, 1)
    assert (row["queue"], row["agent"], row["caller_kind"], row["disposition"]) == (
        "returning",
        "alice",
        "patient",
        "answered",
    )
    [lookup] = events(p, row["id"])["caller_lookup"]
    assert lookup["known"] is True
    caller = json.loads(p.cli("callers", "show", PATIENT, "--json").stdout)
    assert (caller["name"], caller["patient_id"]) == ("Marie Dupont", "P-1042")
    assert [(a[0], a[2]) for a in mis.asked] == [(PATIENT, "Bearer s3cret")]
    # 2. the MIS takes 4 s: the call goes on as a new caller without waiting for it
    p.cli("agent", "logout", "alice")
    bob = Phone(p, "1002", "call_uas.xml", tmp_path / "bob")
    p.cli("agent", "login", "bob", "1002")
    res = provider_dials(p, tmp_path / "call2", DID, pause(300), caller=SLOW)
    assert bob.wait() == 0, bob.errors()
    assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    rows = wait_closed(p, 2)
    [slow] = [r for r in rows if r["caller_number"] == SLOW]
    assert (slow["queue"], slow["agent"], slow["caller_kind"]) == ("new_patients", "bob", "new")
    [(_, asked_at, _)] = [a for a in mis.asked if a[0] == SLOW]
    assert slow["offered_at"] - asked_at < 2.5  # booked long before the MIS's 4 s answer
    assert "CRM lookup for +33698765432 failed (no answer within 300 ms)" in p.log()
