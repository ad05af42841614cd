"""Voicemail notifications with a real ``pypbx run``: a message left over SIP by a pjsua2 test
phone (as in test_ivr_voicemail) reaches a local webhook server (signed JSON) and a local SMTP
sink (the e-mail with the WAV attached), and ``pypbx notify list`` shows both sent."""

from __future__ import annotations

import io
import json
import time

import pytest
import soundfile as sf

from pypbx import notify as N
from tests.integration.harness import dominant_freq, tone
from tests.integration.test_calls import _state
from tests.integration.test_ivr_voicemail import _wait_kind
from tests.unit.test_notify import SmtpSink, WebhookServer

pytestmark = pytest.mark.slow


def test_voicemail_left_over_sip_is_posted_and_mailed(phone_pbx, tmp_path):
    hook, sink = WebhookServer(), SmtpSink()
    try:
        p = phone_pbx(
            notify={
                "webhook_url": hook.url,
                "webhook_secret": "k",
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.port,
                "mail_from": "pbx@clinic.test",
            }
        )
        p.cli("voicemail", "box", "1002", "--number", "801", "--max-seconds", "30", "--email", "nurse@clinic.test")
        a = phone_pbx.phone(p, "1001")
        call = a.cmd("call", uri=f"sip:801@127.0.0.1:{p.port}")["call"]
        _state(a, call, "CONFIRMED")
        a.cmd("play", call=call, file=str(tone(tmp_path / "440.wav", 440)))
        # the greeting plays to its end (no '#' to skip it: on a loaded machine that '#' could
        # arrive after the greeting and stop the recording at once), the beep, then recording
        _wait_kind(p, "voicemail_recording", 20)
        time.sleep(3.0)  # the message's length (the recorder starts after the beep: slower on a loaded machine)
        a.cmd("dtmf", call=call, digits="#")
        _state(a, call, "DISCONNECTED", timeout=20)
        p.wait_for(lambda: hook.requests and sink.messages, 15, "the webhook and the e-mail")
        [m] = json.loads(p.cli("voicemail", "list", "1002", "--json").stdout)

        [req] = hook.requests
        assert req["headers"]["X-Pypbx-Signature"] == N.sign("k", req["body"])
        body = json.loads(req["body"])
        assert body["event"] == "voicemail" and body["mailbox"] == "1002"
        assert body["message"]["id"] == m["id"] and body["message"]["caller"] == "1001"
        assert body["message"]["did"] == "801" and body["message"]["seconds"] == m["seconds"]

        [(frm, rcpts, _raw)] = sink.messages
        assert frm == "pbx@clinic.test" and rcpts == ["nurse@clinic.test"]
        em = sink.parsed()
        assert em["Subject"] == f"Voicemail from 1001 (801) {m['seconds']:.0f} s"
        [att] = list(em.iter_attachments())
        data, rate = sf.read(io.BytesIO(att.get_content()), dtype="int16")
        assert abs(len(data) / rate - m["seconds"]) < 0.05
        mid = data[len(data) // 4 : 3 * len(data) // 4]
        assert abs(dominant_freq(mid, rate) - 440) < 15  # the caller's voice, not silence

        rows = p.wait_for(
            lambda: (
                (r := json.loads(p.cli("notify", "list", "--json").stdout))
                and all(x["status"] == "sent" for x in r)
                and r
            ),
            10,
            "the rows marked sent",
        )
        assert sorted(r["channel"] for r in rows) == ["email", "webhook"]
    finally:
        hook.close()
        sink.close()
