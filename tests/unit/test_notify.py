"""pypbx.notify: voicemail notifications through the outbox, against a real local HTTP server
(http.server in a thread) and a tiny real SMTP sink (socketserver speaking EHLO/HELO, MAIL,
RCPT, DATA, RSET, NOOP, QUIT) -- JSON payload, HMAC signature, e-mail headers, the WAV
attachment; failures retried with backoff on an injected clock, given up after N attempts;
a restart resumes pending rows; the CLI (pypbx notify, pypbx voicemail box --email).

``WebhookServer`` and ``SmtpSink`` are reused by tests/integration/test_notify.py.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import io
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from pypbx import notify as N
from pypbx import voicemail as V
from pypbx.config import ConfigError, NotifyConfig, config_from_dict, load_config
from pypbx.db import open_db
from tests.conftest import free_port

# ---------------------------------------------------------------------- real local servers


class WebhookServer:
    """An HTTP server on 127.0.0.1 in a thread; records every POST; answers ``self.code``."""

    def __init__(self, code: int = 200) -> None:
        self.code = code
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(outer.code)
                if outer.code in (204, 304):  # no body (RFC 9110 §15.3.5; aiohttp refuses one)
                    self.end_headers()
                    return
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def json(self, i: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[i]["body"])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SmtpSink:
    """Just enough SMTP (RFC 5321) on 127.0.0.1 to receive mail; ``messages`` holds
    (mail_from, [rcpt], raw bytes). ``reject_mail``: e.g. "451 4.3.0 try later" answers MAIL."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.reject_mail: str | None = None
        self.auth: tuple[str, str] | None = None  # (user, password) to require AUTH PLAIN (RFC 4616)
        self.logins: list[tuple[str, str]] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 sink.test ESMTP")
                mail_from, rcpts = "", []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    verb = line[:4].upper()
                    if verb == "EHLO":
                        self.reply("250-sink.test")
                        self.reply("250-8BITMIME")
                        if outer.auth:
                            self.reply("250-AUTH PLAIN")
                        self.reply("250 SIZE 52428800")
                    elif verb == "AUTH":
                        _z, user, pw = base64.b64decode(line.split()[2]).decode().split("\0")
                        outer.logins.append((user, pw))
                        self.reply("235 2.7.0 OK" if (user, pw) == outer.auth else "535 5.7.8 bad credentials")
                    elif verb == "HELO":
                        self.reply("250 sink.test")
                    elif verb == "MAIL":
                        if outer.reject_mail:
                            self.reply(outer.reject_mail)
                            continue
                        mail_from, rcpts = line.split(":", 1)[1].strip().split()[0].strip("<>"), []
                        self.reply("250 2.1.0 OK")
                    elif verb == "RCPT":
                        rcpts.append(line.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 2.1.5 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = []
                        while True:
                            d = self.rfile.readline()
                            if not d or d in (b".\r\n", b".\n"):
                                break
                            data.append(d[1:] if d.startswith(b"..") else d)  # RFC 5321 4.5.2
                        outer.messages.append((mail_from, rcpts, b"".join(data)))
                        self.reply(f"250 2.0.0 queued as {len(outer.messages)}")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 5.5.2 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def parsed(self, i: int = -1) -> email.message.EmailMessage:
        return email.message_from_bytes(self.messages[i][2], policy=email.policy.default)  # type: ignore[return-value]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    s = WebhookServer()
    yield s
    s.close()


@pytest.fixture
def sink():
    s = SmtpSink()
    yield s
    s.close()


class Clock:
    def __init__(self, t: float = 1_795_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(coro):
    return asyncio.run(coro)


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (np.sin(np.arange(int(seconds * rate)) / 5) * 8000).astype(np.int16), rate, subtype="PCM_16")
    return path


def meta(tmp_path: Path, seconds: float = 3.0, box: str = "1002") -> dict[str, Any]:
    wav = write_wav(tmp_path / "vm" / "abc123.wav", seconds)
    return {
        "id": "abc123",
        "box": box,
        "caller": "0612345678",
        "did": "0140000000",
        "call_id": "call-1",
        "received_at": 1_795_000_000.0,
        "time": "2026-11-19T10:00:00+01:00",
        "seconds": seconds,
        "path": str(wav),
        "flags": [],
    }


def ncfg(hook: WebhookServer | None = None, sink: SmtpSink | None = None, **kw: Any) -> NotifyConfig:
    return NotifyConfig(
        webhook_url=hook.url if hook else "",
        smtp_host="127.0.0.1" if sink else "",
        smtp_port=sink.port if sink else 0,
        mail_from="pbx@clinic.test",
        timeout=5.0,
        **kw,
    )


# ---------------------------------------------------------------------- pure parts


def test_backoff_doubles_from_30_s_up_to_an_hour():
    assert [N.backoff(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"a": 1}'
    assert N.sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_notify_config_validation_one_line_naming_the_key(tmp_path):
    c = config_from_dict(
        {"notify": {"webhook_url": "https://hooks.example/x", "smtp_host": "mail.example", "smtp_starttls": True}}
    ).notify
    assert c.port == 587 and c.attach_audio and c.webhook_enabled and c.email_enabled
    assert config_from_dict({"notify": {"smtp_host": "m", "smtp_ssl": True}}).notify.port == 465
    assert config_from_dict({}).notify.port == 25 and not config_from_dict({}).notify.webhook_enabled
    for bad, key in [
        ({"webhook_url": "ftp://x/y"}, "notify.webhook_url"),
        ({"smtp_port": 70000}, "notify.smtp_port"),
        ({"smtp_host": "m", "smtp_ssl": True, "smtp_starttls": True}, "notify.smtp_starttls"),
        ({"mail_from": "not-an-address"}, "notify.mail_from"),
        ({"attach_audio": "yes"}, "notify.attach_audio"),
        ({"webhook_secret": "s"}, "notify.webhook_secret"),
        ({"smtp_host": "m", "smtp_user": "u"}, "notify.smtp_password"),
        ({"timeout": 0}, "notify.timeout"),
    ]:
        with pytest.raises(ConfigError) as ei:
            config_from_dict({"notify": bad})
        assert str(ei.value).startswith(f"config error: {key}: ") and "\n" not in str(ei.value)
    with pytest.raises(ConfigError, match=r"unknown key 'notify\.smtp'"):
        config_from_dict({"notify": {"smtp": "x"}})


# ---------------------------------------------------------------------- delivery


def test_webhook_and_emails_delivered_with_payload_signature_headers_and_wav(tmp_path, hook, sink):
    async def go():
        async with open_db(tmp_path / "db" / "pypbx.db") as db:
            await V.set_box(db, "1002", email="nurse@clinic.test, doctor@clinic.test")
            await db.insert_did_row("0140000000", "voicemail:1002", "Appointments", None, 0.0)
            clock = Clock()
            n = N.Notifier(db, ncfg(hook, sink, webhook_secret="s3cret"), clock=clock)
            ids = await n.voicemail_filed("1002", meta(tmp_path))
            assert len(ids) == 3
            # written before anything is sent
            rows = {r["id"]: r for r in await N.list_notifications(db)}
            assert {(r["channel"], r["target"], r["status"]) for r in rows.values()} == {
                ("webhook", hook.url, "pending"),
                ("email", "nurse@clinic.test", "pending"),
                ("email", "doctor@clinic.test", "pending"),
            }
            assert not hook.requests and not sink.messages
            assert await n.run_due() == 3
            rows = await N.list_notifications(db)
            assert all(r["status"] == "sent" and r["attempts"] == 1 and r["sent_at"] == clock.t for r in rows)
            assert await n.run_due() == 0
            return ids

    ids = run(go())
    [req] = hook.requests
    assert req["path"] == "/hook" and req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Pypbx-Signature"] == N.sign("s3cret", req["body"])
    body = json.loads(req["body"])
    assert body["event"] == "voicemail" and body["mailbox"] == "1002" and body["delivery_id"] == ids[0]
    m = body["message"]
    assert m["id"] == "abc123" and m["caller"] == "0612345678" and m["did"] == "0140000000"
    assert m["service_line"] == "Appointments" and m["seconds"] == 3.0 and m["path"].endswith("abc123.wav")
    assert m["time"] == "2026-11-19T10:00:00+01:00" and m["call_id"] == "call-1"

    assert sorted(rc for _f, [rc], _d in sink.messages) == ["doctor@clinic.test", "nurse@clinic.test"]
    for i in range(2):
        assert sink.messages[i][0] == "pbx@clinic.test"
        em = sink.parsed(i)
        assert em["Subject"] == "Voicemail from 0612345678 (Appointments) 3 s"
        assert em["From"] == "pbx@clinic.test" and em["To"] == sink.messages[i][1][0]
        assert em["Date"] and em["Message-ID"]
        text = em.get_body(("plain",)).get_content()
        assert "0612345678" in text and "Appointments" in text and "abc123" in text and "3.0 s" in text
        [att] = list(em.iter_attachments())
        assert att.get_content_type() == "audio/wav" and att.get_filename() == "voicemail-abc123.wav"
        data, rate = sf.read(io.BytesIO(att.get_content()), dtype="int16")
        assert rate == 8000 and len(data) == 3 * 8000


def test_mailbox_without_address_gets_only_the_webhook(tmp_path, hook, sink):
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await V.set_box(db, "1002")
            n = N.Notifier(db, ncfg(hook, sink))
            [nid] = await n.voicemail_filed("1002", meta(tmp_path))
            await n.run_due()
            [row] = await N.list_notifications(db, "sent")
            assert row["id"] == nid and row["channel"] == "webhook"
            # nothing configured: nothing queued
            assert await N.Notifier(db, NotifyConfig()).voicemail_filed("1002", meta(tmp_path)) == []

    run(go())
    assert len(hook.requests) == 1 and not sink.messages
    assert hook.json()["message"]["service_line"] == ""
    assert "X-Pypbx-Signature" not in hook.requests[0]["headers"]


def test_audio_over_the_cap_is_not_attached(tmp_path, sink):
    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await V.set_box(db, "1002", email="nurse@clinic.test")
            n = N.Notifier(db, ncfg(None, sink, attach_max_mb=0.01))  # 10 KB; the WAV is ~96 KB
            await n.voicemail_filed("1002", meta(tmp_path, seconds=6.0))
            await n.run_due()
            n2 = N.Notifier(db, ncfg(None, sink, attach_audio=False))
            await n2.voicemail_filed("1002", meta(tmp_path, seconds=1.0))
            await n2.run_due()

    run(go())
    em = sink.parsed(0)
    assert em["Subject"] == "Voicemail from 0612345678 (0140000000) 6 s"  # no service line: the DID
    assert not list(em.iter_attachments())
    assert "not attached" in em.get_body(("plain",)).get_content()
    assert not list(sink.parsed(1).iter_attachments())


def test_failures_retried_with_backoff_then_sent(tmp_path, hook):
    hook.code = 500
    clock = Clock()

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await V.set_box(db, "1002")
            n = N.Notifier(db, ncfg(hook), clock=clock)
            [nid] = await n.voicemail_filed("1002", meta(tmp_path))
            t0 = clock.t
            assert await n.run_due() == 1
            r = await db.get_notification_row(nid)
            assert (r["status"], r["attempts"], r["next_attempt_at"]) == ("pending", 1, t0 + 30)
            assert r["last_error"].startswith("HTTP 500")
            clock.t += 29
            assert await n.run_due() == 0  # not due yet
            clock.t += 1
            assert await n.run_due() == 1
            r = await db.get_notification_row(nid)
            assert r["attempts"] == 2 and r["next_attempt_at"] == clock.t + 60
            hook.code = 204
            clock.t += 60
            assert await n.run_due() == 1
            r = await db.get_notification_row(nid)
            assert (r["status"], r["attempts"], r["sent_at"], r["last_error"]) == ("sent", 3, clock.t, None)

    run(go())
    assert len(hook.requests) == 3
    assert len({h["body"] for h in hook.requests}) == 1  # the same body (and delivery_id) each time


def test_server_down_and_smtp_refusal_give_up_after_max_attempts(tmp_path, sink, caplog):
    clock = Clock()
    dead = f"http://127.0.0.1:{free_port('tcp')}/hook"
    sink.reject_mail = "451 4.3.0 try again later"

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await V.set_box(db, "1002", email="nurse@clinic.test")
            cfg = NotifyConfig(
                webhook_url=dead, smtp_host="127.0.0.1", smtp_port=sink.port, max_attempts=3, timeout=5.0
            )
            n = N.Notifier(db, cfg, clock=clock)
            wid, eid = await n.voicemail_filed("1002", meta(tmp_path))
            waits = []
            for _ in range(3):
                assert await n.run_due() == 2
                nxt = (await db.get_notification_row(wid))["next_attempt_at"]
                waits.append(nxt - clock.t)
                clock.t = nxt
            w, e = await db.get_notification_row(wid), await db.get_notification_row(eid)
            assert waits[:2] == [30, 60]
            assert (w["status"], w["attempts"]) == ("failed", 3) and "cannot reach" in w["last_error"]
            assert (e["status"], e["attempts"]) == ("failed", 3)
            assert e["last_error"] == f"SMTP 127.0.0.1:{sink.port}: 451 4.3.0 try again later"
            assert await n.run_due() == 0
            assert [r["id"] for r in await N.list_notifications(db, "failed")] == [eid, wid]
            # pypbx notify retry: due again, counted from 0
            sink.reject_mail = None
            r = await N.retry(db, eid, clock=clock)
            assert r["status"] == "pending" and r["attempts"] == 0
            assert await n.run_due() == 1
            assert (await db.get_notification_row(eid))["status"] == "sent"
            with pytest.raises(N.NotifyError, match="sent already"):
                await N.retry(db, eid)
            with pytest.raises(N.NotifyError, match="no notification 999"):
                await N.retry(db, 999)

    run(go())
    assert len(sink.messages) == 1
    assert any("failed for good after 3 attempts" in r.getMessage() for r in caplog.records)


def test_restart_resumes_pending_and_the_sender_loop_delivers(tmp_path, hook):
    down = f"http://127.0.0.1:{free_port('tcp')}/hook"
    path = tmp_path / "pypbx.db"

    async def first():  # the first run: queued, one failed attempt, then "the PBX stops"
        async with open_db(path) as db:
            await V.set_box(db, "1002")
            n = N.Notifier(db, NotifyConfig(webhook_url=down, timeout=2.0))
            [nid] = await n.voicemail_filed("1002", meta(tmp_path))
            await n.run_due()
            return nid

    async def second(nid):  # the next start: the sender task picks the row up when due
        async with open_db(path) as db:
            await db.update_notification_row(nid, next_attempt_at=time.time())  # its backoff is over
            n = N.Notifier(db, NotifyConfig(webhook_url=hook.url))
            stop = asyncio.Event()
            task = asyncio.get_running_loop().create_task(n.run(stop))
            deadline = time.monotonic() + 10
            while (await db.get_notification_row(nid))["status"] != "sent":
                assert time.monotonic() < deadline, "the resumed notification was not sent"
                await asyncio.sleep(0.05)
            # a new message while the loop sleeps: enqueue wakes it
            [nid2] = await n.voicemail_filed("1002", meta(tmp_path))
            while (await db.get_notification_row(nid2))["status"] != "sent":
                assert time.monotonic() < deadline, "the new notification was not sent"
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 5)
            return await db.get_notification_row(nid)

    nid = run(first())
    row = run(second(nid))
    # the webhook goes to the URL configured now (the admin fixed it): the row says so
    assert row["attempts"] == 2 and row["target"] == hook.url and row["last_error"] is None
    assert [json.loads(h["body"])["delivery_id"] for h in hook.requests] == [nid, nid + 1]


# ---------------------------------------------------------------------- CLI


def test_cli_voicemail_box_email_and_notify_commands(invoke_cli, make_config, hook, sink, tmp_path):
    cfg_path = make_config(
        notify={
            "webhook_url": hook.url,
            "webhook_secret": "k",
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "mail_from": "pbx@clinic.test",
            "timeout": 5.0,
        }
    )
    c = ["--config", str(cfg_path)]
    r = invoke_cli("voicemail", "box", "1002", "--email", "nurse@clinic.test,doctor@clinic.test", *c)
    assert r.exit_code == 0 and "e-mail nurse@clinic.test,doctor@clinic.test" in r.output
    r = invoke_cli("voicemail", "box", "1002", "--max-seconds", "60", *c)  # other options keep it
    [b] = json.loads(invoke_cli("voicemail", "boxes", "--json", *c).output)
    assert b["email"] == "nurse@clinic.test,doctor@clinic.test" and b["max_seconds"] == 60
    r = invoke_cli("voicemail", "box", "1002", "--email", "nurse@", *c)
    assert r.exit_code == 2 and r.output.strip() == "Error: bad e-mail address 'nurse@'"
    r = invoke_cli("voicemail", "box", "1003", "--email", "", *c)
    assert r.exit_code == 0

    r = invoke_cli("notify", "test", "--email", "it@clinic.test", *c)
    assert r.exit_code == 0, r.output
    assert f"webhook {hook.url}: sent (HTTP 200)" in r.output
    assert f"email it@clinic.test: sent (accepted by 127.0.0.1:{sink.port})" in r.output
    assert hook.json()["event"] == "test"
    assert hook.requests[-1]["headers"]["X-Pypbx-Signature"] == N.sign("k", hook.requests[-1]["body"])
    assert sink.messages[-1][1] == ["it@clinic.test"] and sink.parsed()["Subject"] == "pypbx test notification"
    hook.code = 503
    r = invoke_cli("notify", "test", *c)
    assert r.exit_code == 1 and r.output.strip() == f"Error: webhook {hook.url}: HTTP 503 Service Unavailable"

    r = invoke_cli("notify", "list", *c)
    assert r.exit_code == 0 and r.output.strip() == "No notifications."

    async def queue():
        cfg = load_config(cfg_path)
        async with open_db(cfg.db_path) as db:
            return await N.Notifier(db, cfg.notify).voicemail_filed("1002", meta(tmp_path))

    ids = run(queue())
    rows = json.loads(invoke_cli("notify", "list", "--json", *c).output)
    assert [r["id"] for r in rows] == sorted(ids, reverse=True)
    assert all(r["status"] == "pending" and r["payload"]["message"]["id"] == "abc123" for r in rows)
    out = invoke_cli("notify", "list", "--pending", *c).output
    assert "nurse@clinic.test" in out and "box 1002 from 0612345678" in out
    assert invoke_cli("notify", "list", "--failed", *c).output.strip() == "No failed notifications."
    r = invoke_cli("notify", "retry", "42", *c)
    assert r.exit_code == 2 and r.output.strip() == "Error: no notification 42 (see pypbx notify list)"
    r = invoke_cli("notify", "retry", str(ids[0]), *c)
    assert r.exit_code == 0 and f"Notification {ids[0]} (webhook {hook.url}) queued again." in r.output


def test_cli_notify_test_needs_something_configured(invoke_cli, make_config):
    c = ["--config", str(make_config())]
    r = invoke_cli("notify", "test", *c)
    assert r.exit_code == 1 and "nothing to test" in r.output
    r = invoke_cli("notify", "test", "--email", "a@b.test", *c)
    assert r.exit_code == 1 and r.output.strip() == "Error: no SMTP server: set notify.smtp_host in the config file"
    c = ["--config", str(make_config("down.toml", notify={"smtp_host": "127.0.0.1", "smtp_port": free_port("tcp")}))]
    r = invoke_cli("notify", "test", "--email", "a@b.test", *c)
    assert r.exit_code == 1 and r.output.startswith("Error: email a@b.test: SMTP 127.0.0.1:")
    assert len(r.output.strip().splitlines()) == 1


def test_smtp_login_and_a_wrong_password(tmp_path, sink):
    sink.auth = ("pbx", "pw")

    async def go():
        async with open_db(tmp_path / "pypbx.db") as db:
            await V.set_box(db, "1002", email="nurse@clinic.test")
            n = N.Notifier(db, ncfg(None, sink, smtp_user="pbx", smtp_password="pw"))
            [ok] = await n.voicemail_filed("1002", meta(tmp_path))
            bad = N.Notifier(db, ncfg(None, sink, smtp_user="pbx", smtp_password="nope"))
            [ko] = await bad.voicemail_filed("1002", meta(tmp_path))
            await n.run_due()  # both rows are due: sent with this notifier's (good) login
            assert (await db.get_notification_row(ko))["status"] == "sent"
            await bad.enqueue(
                "voicemail",
                {"event": "voicemail", "mailbox": "1002", "message": {}},
                [(N.Channel.EMAIL, "nurse@clinic.test")],
            )
            await bad.run_due()
            [r] = await N.list_notifications(db, "pending")
            assert r["attempts"] == 1 and r["last_error"] == f"SMTP 127.0.0.1:{sink.port}: 535 5.7.8 bad credentials"
            return ok

    run(go())
    assert sink.logins == [("pbx", "pw"), ("pbx", "pw"), ("pbx", "nope")] and len(sink.messages) == 2
