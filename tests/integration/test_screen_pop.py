"""The agent's screen pop end to end: the sipp fake provider calls a DID named
'Appointments' routed to extension 1002 (a sipp phone, tests/sipp/screenpop_uas.xml,
which fails unless the INVITE's From is ``"Appointments: <patient or number>"
<sip:<caller>@...>``): once from a patient imported with ``pypbx callers import`` (the
name shows), once from an unknown number (the number shows)."""

from __future__ import annotations

import pytest

from tests.integration.test_frontline_e2e import ok, pause, provider_dials
from tests.integration.test_proxy_calls import Phone
from tests.integration.test_trunks import PROVIDER, wait_closed

pytestmark = pytest.mark.slow


@pytest.fixture
def pbx(trunk_pbx):
    """The PBX factory of the trunk tests (conftest.trunk_pbx)."""
    return trunk_pbx


DID = "0144556610"
PATIENT = "+33611111111"
UNKNOWN = "+33699999999"


def test_phone_shows_service_line_and_patient(pbx, tmp_path):
    p = pbx()
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    csv = tmp_path / "patients.csv"
    csv.write_text(f"number;name;patient_id\n{PATIENT};Marie Dupont;P-001\n")
    p.cli("callers", "import", str(csv))
    p.cli("did", "add", DID, "--to", "extension:1002", "--name", "Appointments")
    p.start()
    for n, caller in enumerate((PATIENT, UNKNOWN)):
        desk = Phone(p, "1002", "screenpop_uas.xml", tmp_path / f"desk{n}", ring_ms=200)
        res = provider_dials(p, tmp_path / f"call{n}", DID, pause(500), caller=caller)
        assert desk.wait() == 0, desk.errors()  # the From check is in the phone's scenario
        assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    rows = wait_closed(p, 2)
    assert {(r["caller_number"], r["service_line"], r["disposition"]) for r in rows} == {
        (PATIENT, "Appointments", "answered"),
        (UNKNOWN, "Appointments", "answered"),
    }, rows
