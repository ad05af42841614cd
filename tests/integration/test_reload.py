"""SIGHUP on a real ``pypbx run`` while a call is up: the live settings change at once (one
"config reloaded" line naming them), what needs a restart is named in one line, the call goes
on to its normal end; a config file with a typo is refused in one line and changes nothing."""

from __future__ import annotations

import json
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import PbxProcess
from tests.integration.test_proxy_calls import PASSWORD, Phone
from tests.integration.test_queue_calls import caller, login, records, setup_queue

pytestmark = pytest.mark.slow


def set_key(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` in ``[section]`` ("" = the top) of a rendered config file."""
    start = text.index(f"\n[{section}]\n") if section else 0
    m = re.compile(rf"^{re.escape(key)} = .*$", re.M).search(text, start)
    assert m is not None, (section, key)
    return text[: m.start()] + f"{key} = {value}" + text[m.end() :]


def test_sighup_reloads_live_settings_during_a_call(tmp_path: Path) -> None:
    p = PbxProcess(tmp_path / "pbx", security={"exempt": ["127.0.0.1"]})
    p.add_extensions(["1001", "1009"], PASSWORD)
    setup_queue(p, agents=("alice",))
    p.start()
    results: list[Any] = []
    try:
        Phone(p, "1001", "call_uas.xml", tmp_path / "alice", ring_ms=200)
        login(p, "alice", "1001")
        t = threading.Thread(target=lambda: results.append(caller(p, tmp_path / "c1", stay_ms=6000)), daemon=True)
        t.start()
        p.wait_for(lambda: p.api("calls") or None, 15, "the call up")
        text = p.config_path.read_text()
        for section, key, value in (
            ("", "log_level", '"DEBUG"'),
            ("security", "rate_limit", "20.0"),
            ("web", "board_wait_warn", "10"),
            ("sip", "udp_port", "5999"),
        ):
            text = set_key(text, section, key, value)
        p.config_path.write_text(text)
        assert p.proc is not None
        p.proc.send_signal(signal.SIGHUP)
        p.wait_for(lambda: "config reloaded from" in p.log() or None, 10, "the reload line")
        log = p.log()
        assert "config reloaded from " in log and ": log_level, security.rate_limit, web.board_wait_warn" in log
        assert "config: sip.udp_port changed in the file; a restart applies it" in log
        # a typo: refused, nothing changes
        p.config_path.write_text(text.replace('log_level = "DEBUG"', 'log_level = "LOUD"'))
        p.proc.send_signal(signal.SIGHUP)
        p.wait_for(lambda: "config reload refused" in p.log() or None, 10, "the refusal")
        p.config_path.write_text(text)  # fixed again (the CLI reads the same file)
        t.join(40)
        assert [r.returncode for r in results] == [0], [r.errors or r.stdout[-2000:] for r in results]
        [rec] = records(p, 1)
        assert rec["disposition"] == "answered" and rec["hangup_side"] == "caller" and rec["talk_seconds"] > 5
        status = json.loads(p.cli("status", "--json").stdout)
        assert status["pid"] == p.proc.pid  # the same process, still serving on the old port
        assert any(t_["port"] == p.port for t_ in status["transports"])
    finally:
        p.stop()
    log = p.log()
    assert "Traceback" not in log, log[-4000:]
    refusal = [line for line in log.splitlines() if "config reload refused" in line]
    assert len(refusal) == 1 and "log_level" in refusal[0] and "LOUD" in refusal[0]
    assert " DEBUG " in log.split("config reloaded from", 1)[1]  # the new level took effect
    p.check_events()
