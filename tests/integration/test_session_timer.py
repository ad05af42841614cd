"""RFC 4028 on a real ``pypbx run``: a phone that asked for a 90 s session timer (refresher:
the phone) and then went away without a BYE — it never refreshes and sends no media. The RTP
inactivity timeout is switched off here, so only the session timer can end the call: the PBX
sends the BYE before the session expires (RFC 4028 §10: after 90 - min(32, 90/3) = 60 s) and
the call is booked with that cause. (Refreshes by re-INVITE and UPDATE keeping a call up:
tests/integration/test_real_clients_calls.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.harness import PbxProcess, auth_users, run_sipp
from tests.integration.test_proxy_calls import PASSWORD
from tests.integration.test_queue_calls import setup_queue

pytestmark = pytest.mark.slow


def test_a_phone_that_stops_refreshing_has_its_call_ended_and_booked(tmp_path: Path) -> None:
    p = PbxProcess(
        tmp_path / "pbx",
        security={"exempt": ["127.0.0.1"]},
        media={"rtp_timeout": 0, "session_expires": 90},
    )
    p.add_extensions(["1001"], PASSWORD)
    setup_queue(p, agents=())  # nobody to answer: the caller waits, one leg, PBX-answered
    p.start()
    try:
        res = run_sipp(
            "rc_uac_session_timer_silent.xml",
            f"127.0.0.1:{p.port}",
            users=auth_users(["1001"], PASSWORD),
            workdir=tmp_path / "uac",
            timeout=120,
            extra=["-s", "600"],
        )
        assert res.returncode == 0 and res.successful == 1, res.errors or res.stdout[-3000:]

        def closed() -> list[dict]:
            rows = json.loads(p.cli("calls", "list", "--json").stdout)
            return rows if rows and all(r["disposition"] != "in_progress" for r in rows) else []

        [r] = p.wait_for(closed, 15, "the call record")
    finally:
        p.stop()
    assert "Traceback" not in p.log(), p.log()[-4000:]
    # queue-answered (no agent: answered_at stays empty), ended ~60 s after the 200, by the
    # PBX; the caller is gone while waiting: abandoned, so the missed-caller worklist calls back
    assert 55 < r["ended_at"] - r["offered_at"] < 90, r
    assert (r["disposition"], r["hangup_side"], r["hangup_cause"]) == (
        "abandoned_queue",
        "system",
        "session timer expired: no refresh from the phone",
    )
    assert "session timer expired (no refresh)" in p.log()
    p.check_events()
