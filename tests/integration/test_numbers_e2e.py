"""Issue 10, "every patient recognised", end to end per site region: a patient imported in the
clinic's national format (``06 12 34 56 79`` in France, ``010-1234-5678`` in Korea,
``8 (912) 345-67-89`` in Russia) calls through the sipp fake provider in each form a provider
sends (``+33...``, ``0033...``, ``33...``, or only in P-Asserted-Identity); the DID's smart routing finds a known caller and
puts the call in the returning-patient queue, where the agent's phone (a sipp UAS that fails
unless the INVITE's From display is ``"Appointments: <patient name>"``) answers. One PBX per
site; new callers would go to an agent-less queue (and fail the test by timing out)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.integration.harness import SIPP_DIR
from tests.integration.test_frontline_e2e import events, ok, pause, provider_dials
from tests.integration.test_proxy_calls import Phone
from tests.integration.test_trunks import PROVIDER, wait_closed

pytestmark = pytest.mark.slow

DID = "0144556677"
#: region: (patient list as the clinic exports it (no patient id), its encoding, the patient's
#: name, the numbers providers send, the E.164 number). ASCII names: sipp's regex is byte-wise.
SITES = {
    "FR": (
        "nom;téléphone;patient_id\nMarie Dupont;06 12 34 56 79;\n",
        "cp1252",
        "Marie Dupont",
        # the last: From anonymous, the number only in P-Asserted-Identity (as many providers send it)
        ["+33612345679", "0033612345679", "33612345679", ("anonymous", "<sip:+33612345679@127.0.0.2;user=phone>")],
        "+33612345679",
    ),
    "KR": ("이름,휴대폰\nKim Minsu,010-1234-5678\n", "euc-kr", "Kim Minsu", ["+821012345678"], "+821012345678"),
    "RU": ("ФИО\tтелефон\nIvan Petrov\t8 (912) 345-67-89\n", "cp1251", "Ivan Petrov", ["+79123456789"], "+79123456789"),
}
DIDS = {"FR": "0144556677", "KR": "02-123-4567", "RU": "8 (495) 123-45-67"}


@pytest.fixture
def pbx(trunk_pbx):
    return trunk_pbx


def _desk_scenario(workdir: Path, display: str, e164: str) -> Path:
    """screenpop_uas.xml checking for ``"<display>" <sip:<e164>@`` in the INVITE's From."""
    workdir.mkdir(parents=True, exist_ok=True)
    want = f"&quot;{re.escape(display)}&quot; &lt;sip:{re.escape(e164)}@"
    text = (SIPP_DIR / "screenpop_uas.xml").read_text()
    text = re.sub(r'<ereg regexp="&quot;Appointments[^"]*"', f'<ereg regexp="{want}"', text)
    assert want in text
    path = workdir / "desk_uas.xml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("region", sorted(SITES))
def test_patient_known_in_every_form_lands_in_returning_queue_with_name(pbx, tmp_path, region):
    listing, codec, name, forms, e164 = SITES[region]
    p = pbx(numbers={"region": region})
    p.cli("trunk", "add", "prov", "--host", f"{PROVIDER}:5060")
    csv = tmp_path / "patients.csv"
    csv.write_bytes(listing.encode(codec))
    out = p.cli("callers", "import", str(csv)).stdout
    assert f"Imported 1 numbers (1 new, 0 updated); encoding {codec} (detected)." in out, out
    p.cli("queue", "add", "returning", "--wrap-up", "0")
    p.cli("queue", "add", "new_patients", "--wrap-up", "0")
    p.cli("agent", "add", "alice", "--name", "Alice")
    p.cli(
        "did",
        "add",
        DIDS[region],
        "--known",
        "queue:returning",
        "--new",
        "queue:new_patients",
        "--name",
        "Appointments",
    )
    did = json.loads(p.cli("did", "list", "--json").stdout)[0]["number"]
    assert did.startswith("+")
    p.start()
    for n, caller in enumerate(forms):
        desk = Phone(
            p, "1001", str(_desk_scenario(tmp_path / f"desk{n}", f"Appointments: {name}", e164)), tmp_path / f"desk{n}"
        )
        if n == 0:
            p.cli("agent", "login", "alice", "1001")
        caller, pai = caller if isinstance(caller, tuple) else (caller, None)
        headers = (f"P-Asserted-Identity: {pai}",) if pai else ()
        res = provider_dials(p, tmp_path / f"call{n}", did, pause(300), caller=caller, headers=headers)
        assert desk.wait() == 0, desk.errors()  # the name on the agent's phone
        assert ok(res), res.errors or res.stdout[-3000:] + p.log()[-3000:]
    rows = wait_closed(p, len(forms))
    for r in rows:
        assert (r["caller_number"], r["queue"], r["agent"], r["disposition"]) == (
            e164,
            "returning",
            "alice",
            "answered",
        )
        [lookup] = events(p, r["id"])["caller_lookup"]
        assert lookup["known"] is True and lookup["number"] == e164
    [caller] = json.loads(p.cli("callers", "list", "--json").stdout)
    assert caller["number"] == e164 and caller["calls"] == len(forms)


def test_emergency_number_never_internal(pbx):
    """``pypbx ext add 112`` fails with one line; an extension 15 already in the database
    (from before issue 10) is reported by ``pypbx run`` at start, one warning."""
    p = pbx()
    res = p.cli("ext", "add", "112", check=False)
    assert res.returncode == 1
    assert (res.stdout + res.stderr).strip() == "Error: 112 is an emergency number in FR: it cannot be an extension"
    con = sqlite3.connect(p.cfg.db_path)
    try:
        con.execute("UPDATE extensions SET number = '15' WHERE number = '1002'")
        con.commit()
    finally:
        con.close()
    p.start()
    lines = [ln for ln in p.log().splitlines() if "emergency numbers of region FR used internally" in ln]
    assert len(lines) == 1 and "WARNING" in lines[0] and lines[0].endswith("extension 15"), lines
