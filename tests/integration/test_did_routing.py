"""DID routing with the sipp fake provider against a real ``pypbx run``: smart routing
(known patients -> front desk queue, new callers -> call-centre queue, each overflowing to
the other after 20 s) after a patient list import."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import SIPP_DIR, run_sipp
from tests.integration.test_queue_calls import queue_events
from tests.integration.test_trunks import PROVIDER, call_events, wait_closed

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx)."""
    return trunk_pbx


DID = "0144556677"
DID_E164 = "+33144556677"  # as stored (issue 10)
KNOWN = "+33611111111"
NEW = "+33622222222"


def provider_call(p, workdir: Path, caller: str, did: str = DID):
    """The provider sends a call from ``caller`` to ``did`` (answered, 1 s, BYE)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sf = workdir / "uac.xml"
    sf.write_text((SIPP_DIR / "trunk_uac_invite.xml").read_text().replace("+33611223344", caller))
    return run_sipp(str(sf), f"127.0.0.1:{p.port}", workdir=workdir, local_ip=PROVIDER, timeout=30, extra=["-s", did])


def test_known_and_new_callers_land_in_their_queues(pbx, tmp_path):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    p.cli("queue", "add", "front_desk", "--strategy", "longest_idle", "--wrap-up", "0")
    p.cli(
        "queue",
        "add",
        "call_centre",
        "--strategy",
        "longest_idle",
        "--wrap-up",
        "0",
        "--overflow-after",
        "20",
        "--overflow-to",
        "queue:front_desk",
    )
    p.cli("queue", "edit", "front_desk", "--overflow-after", "20", "--overflow-to", "queue:call_centre")
    p.cli("agent", "add", "alice", "--name", "Alice")  # not logged in: callers wait
    csv = tmp_path / "patients.csv"
    csv.write_text(f"number;name;patient_id\n{KNOWN};Jeanne Martin;P-001\n")
    p.cli("callers", "import", str(csv))
    p.cli("did", "add", DID, "--known", "queue:front_desk", "--new", "queue:call_centre", "--name", "Appointments")
    p.start()
    for i, caller in enumerate((KNOWN, NEW)):
        res = provider_call(p, tmp_path / f"prov{i}", caller)
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:] + p.log()[-3000:]
    rows = {r["caller_number"]: r for r in wait_closed(p, 2)}
    for caller, queue in ((KNOWN, "front_desk"), (NEW, "call_centre")):
        r = rows[caller]
        assert r["direction"] == "inbound" and r["did"] == DID_E164 and r["service_line"] == "Appointments"
        assert r["queue"] == queue and r["disposition"] == "abandoned_queue", r
        ev = p.wait_for(
            lambda cid=r["id"]: (e := queue_events(p, call_id=cid)) and len(e) >= 2 and e, 10, "queue events"
        )
        assert ev[0]["kind"] == "ENTER" and ev[0]["queue"] == queue
        look = [e for e in call_events(p, r["id"]) if e["kind"] == "caller_lookup"]
        assert look, call_events(p, r["id"])
