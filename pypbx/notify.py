"""Voicemail notifications: a webhook (HTTP POST, JSON) and/or e-mail, through a durable outbox.

Nothing is lost between "a message was filed" and "the clinic was told":

* :meth:`Notifier.voicemail_left` is a durable subscriber of the event stream's ``voicemail
  left`` (:mod:`pypbx.events`; :meth:`Notifier.voicemail_filed` does the work). For a new
  message it writes one row per delivery to the ``notifications`` table (one webhook row when
  ``notify.webhook_url`` is set; one e-mail row per address of the mailbox when
  ``notify.smtp_host`` is set and the mailbox has addresses: ``pypbx voicemail box BOX
  --email a@b,c@d``) -- in one transaction, *before* anything is sent.
* :meth:`Notifier.run` (a task in the app's TaskGroup) delivers the due rows: the webhook with
  ``urllib.request`` in a thread (JSON body, any 2xx = sent, redirects are not followed,
  ``X-Pypbx-Signature: sha256=<hex HMAC-SHA256 of the body>`` when ``notify.webhook_secret``
  is set), e-mail with ``smtplib`` in a thread (SMTP, SMTPS or STARTTLS, optional login; the
  WAV attached when ``attach_audio`` and not larger than ``attach_max_mb``).
* A failed attempt is retried after 30 s, 1 min, 2 min, 4 min ... (at most 1 h); after
  ``notify.max_attempts`` attempts the row is ``failed`` (logged as an error; ``pypbx notify
  retry ID`` puts it back). Rows still pending when the PBX stops are sent after the next
  start. Delivery is *at least once*: a crash between the send and the row update sends it
  again (the webhook body carries ``delivery_id`` for the receiver to drop duplicates).

The webhook body::

    {"event": "voicemail", "delivery_id": 12, "mailbox": "1002",
     "message": {"id": "9f0c...", "box": "1002", "caller": "0612345678", "did": "0140000000",
                 "service_line": "Appointments", "time": "2026-11-23T09:14:03+01:00",
                 "received_at": 1795421643.2, "seconds": 12.4, "path": "/var/.../9f0c....wav",
                 "call_id": "..."}}
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import logging
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from pypbx import __version__, sitetime
from pypbx import webhooks as W
from pypbx.config import NotifyConfig
from pypbx.db import Database
from pypbx.db.rows import NotificationRow
from pypbx.errors import PbxError
from pypbx.jsontypes import JSON

if TYPE_CHECKING:
    from pypbx.events import ReasonSet, VoicemailLeft

log = logging.getLogger(__name__)

#: Seconds after the first failed attempt; doubled after each further one, at most BACKOFF_MAX.
BACKOFF_FIRST = 30.0
BACKOFF_MAX = 3600.0
#: The sender looks for due rows at least this often (the CLI's ``notify retry`` changes rows).
POLL_INTERVAL = 2.0
#: deliveries to one call-event webhook in one go before the sender looks at the rest
HOOK_BURST = 200
SIGNATURE_HEADER = "X-Pypbx-Signature"


class Channel(str, enum.Enum):
    WEBHOOK = "webhook"  # the voicemail webhook of [notify] webhook_url
    EMAIL = "email"
    HOOK = "hook"  # a call-event webhook (pypbx.webhooks): target = its id; in order per target


class Status(str, enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class NotifyError(PbxError, ValueError):
    """A delivery (or a CLI request) failed; ``str(e)`` is one line."""


@dataclass(frozen=True)
class Delivered:
    channel: Channel
    target: str
    detail: str  # "HTTP 200", "250 OK queued as ..." ...


def backoff(attempts: int, first: float = BACKOFF_FIRST) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 30, 60, 120 ... <= 3600
    (``first``: ``[notify] retry_first``, 30 s)."""
    return min(BACKOFF_MAX, first * 2 ** max(0, attempts - 1))


def sign(secret: str, body: bytes) -> str:
    """The value of X-Pypbx-Signature: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _one_line(s: object) -> str:
    return " ".join(str(s).split())


# ------------------------------------------------------------------ payloads


#: A notification's payload: what the webhook receives (plus ``delivery_id``) and the e-mail shows.
Payload = Mapping[str, object]


def _message(payload: Payload) -> Mapping[str, object]:
    m = payload.get("message", {})
    return m if isinstance(m, Mapping) else {}


def _seconds(v: object) -> float:
    return float(v) if isinstance(v, (int, float, str)) and v else 0.0


def voicemail_payload(box: str, meta: Mapping[str, object], service_line: str = "") -> dict[str, object]:
    msg: dict[str, object] = {
        k: meta.get(k) for k in ("id", "box", "caller", "did", "time", "received_at", "seconds", "path", "call_id")
    }
    msg["box"] = msg["box"] or box
    msg["service_line"] = service_line or ""
    return {"event": "voicemail", "mailbox": box, "message": msg}


def webhook_body(payload: Payload, delivery_id: int | None) -> bytes:
    return json.dumps({**payload, "delivery_id": delivery_id}, sort_keys=True).encode()


def email_subject(payload: Payload) -> str:
    m = _message(payload)
    line = m.get("service_line") or m.get("did") or m.get("box") or "-"
    return _one_line(
        f"Voicemail from {m.get('caller') or 'unknown caller'} ({line}) {_seconds(m.get('seconds')):.0f} s"
    )


def build_email(cfg: NotifyConfig, to: str, payload: Payload) -> EmailMessage:
    """The message sent for one notification (a test payload has ``event: test``)."""
    em = EmailMessage()
    em["From"] = cfg.mail_from or f"pypbx@{socket.getfqdn()}"
    em["To"] = to
    em["Date"] = format_datetime(sitetime.local(time.time()))
    em["Message-ID"] = make_msgid(domain=(cfg.mail_from.partition("@")[2] or None))
    em["X-Mailer"] = f"pypbx {__version__}"
    if payload.get("event") in ("reason", "alert"):  # a reason marked to notify; an alert (pypbx.alerts)
        em["Subject"] = _one_line(payload.get("subject") or "Call reason")
        em.set_content(str(payload.get("text") or "") + "\n")
        return em
    if payload.get("event") == "test":
        em["Subject"] = "pypbx test notification"
        em.set_content(
            "This is a test e-mail from pypbx (pypbx notify test).\nVoicemail notifications reach this address.\n"
        )
        return em
    m = _message(payload)
    em["Subject"] = email_subject(payload)
    lines = [
        f"A new voicemail message was left in mailbox {payload['mailbox']}.",
        "",
        f"From:          {m.get('caller') or 'unknown'}",
        f"Service line:  {m.get('service_line') or '-'}",
        f"Number dialled: {m.get('did') or '-'}",
        f"Time:          {m.get('time') or '-'}",
        f"Length:        {_seconds(m.get('seconds')):.1f} s",
        f"Message id:    {m.get('id')}",
        f"File:          {m.get('path')}",
        "",
    ]
    attach = None
    path = Path(str(m.get("path") or ""))
    if cfg.attach_audio and m.get("path"):
        try:
            size = path.stat().st_size
        except OSError:
            lines.append("The recording is not attached: the file is gone.")
        else:
            if size <= cfg.attach_max_mb * 1024 * 1024:
                attach = path.read_bytes()
            else:
                lines.append(
                    f"The recording is not attached: {size / 1048576:.1f} MB is over "
                    f"notify.attach_max_mb ({cfg.attach_max_mb:g} MB)."
                )
    lines.append(f"Listen: dial *98 from the mailbox's phone, or: pypbx voicemail play {m.get('id')}")
    em.set_content("\n".join(lines) + "\n")
    if attach is not None:
        em.add_attachment(attach, maintype="audio", subtype="wav", filename=f"voicemail-{m.get('id')}.wav")
    return em


# ------------------------------------------------------------------ the two channels (blocking)


async def post_json(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float = 10.0) -> str:
    """POST ``body`` (JSON) to ``url`` with aiohttp; returns "HTTP <code>" for a 2xx, else
    raises NotifyError. Redirects are not followed: the URL must answer itself."""
    import aiohttp  # only the running PBX and `notify test` send

    h = {"Content-Type": "application/json", "User-Agent": f"pypbx/{__version__}", **headers}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, data=body, headers=h, allow_redirects=False) as resp,
        ):
            await resp.content.read(65536)
            code, reason = resp.status, resp.reason or ""
    except TimeoutError:
        raise NotifyError(f"cannot reach {url}: no answer within {timeout:g} s") from None
    except (aiohttp.ClientError, OSError, ValueError) as e:
        raise NotifyError(f"cannot reach {url}: {_one_line(e) or type(e).__name__}") from None
    if not 200 <= code < 300:
        raise NotifyError(f"HTTP {code} {_one_line(reason)}".strip())
    return f"HTTP {code}"


async def post_webhook(url: str, body: bytes, *, secret: str = "", timeout: float = 10.0) -> str:
    """The voicemail webhook: ``X-Pypbx-Signature: sha256=<HMAC of the body>`` when signed."""
    return await post_json(url, body, {SIGNATURE_HEADER: sign(secret, body)} if secret else {}, timeout=timeout)


def send_email(cfg: NotifyConfig, msg: EmailMessage) -> str:
    """Send through ``cfg.smtp_host``; returns a short description, else raises NotifyError."""
    if not cfg.smtp_host:
        raise NotifyError("no SMTP server: set notify.smtp_host")
    where = f"{cfg.smtp_host}:{cfg.port}"
    try:
        if cfg.smtp_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                cfg.smtp_host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(cfg.smtp_host, cfg.port, timeout=cfg.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if cfg.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg.smtp_user:
                smtp.login(cfg.smtp_user, cfg.smtp_password)
            refused = smtp.send_message(msg)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except smtplib.SMTPResponseException as e:
        err = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        raise NotifyError(f"SMTP {where}: {e.smtp_code} {_one_line(err)}") from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = ", ".join(f"{a}: {c}" for a, (c, _m) in e.recipients.items())
        raise NotifyError(f"SMTP {where}: recipient refused ({codes})") from None
    except (smtplib.SMTPException, OSError) as e:
        raise NotifyError(f"SMTP {where}: {_one_line(e) or type(e).__name__}") from None
    if refused:
        raise NotifyError(f"SMTP {where}: refused {', '.join(refused)}")
    return f"accepted by {where}"


# ------------------------------------------------------------------ the outbox


class Notification(TypedDict):
    """An outbox row with its payload decoded (``pypbx notify list --json``)."""

    id: int
    kind: str
    channel: str
    target: str
    payload: JSON
    status: str
    created_at: float
    attempts: int
    next_attempt_at: float
    sent_at: float | None
    last_error: str | None


def _row(r: NotificationRow) -> Notification:
    return {
        "id": r["id"],
        "kind": r["kind"],
        "channel": r["channel"],
        "target": r["target"],
        "payload": json.loads(r["payload"]),
        "status": r["status"],
        "created_at": r["created_at"],
        "attempts": r["attempts"],
        "next_attempt_at": r["next_attempt_at"],
        "sent_at": r["sent_at"],
        "last_error": r["last_error"],
    }


class Notifier:
    """The outbox and its sender (see the module docstring). ``clock``: wall-clock seconds."""

    def __init__(self, db: Database, cfg: NotifyConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.cfg = cfg
        self.clock = clock
        self._wake = asyncio.Event()

    # -- enqueue ---------------------------------------------------------------------
    async def _service_line(self, did: str | None) -> str:
        if not did:
            return ""
        for r in await self.db.list_did_rows():
            if r["number"] == did:
                return r["service_line"] or ""
        return ""

    async def voicemail_filed(self, box: str, meta: Mapping[str, object]) -> list[int]:
        """FrontLine.voicemail_listeners hook: one outbox row per delivery; returns their ids."""
        did = meta.get("did")
        payload = voicemail_payload(box, meta, await self._service_line(did if isinstance(did, str) else None))
        targets: list[tuple[Channel, str]] = []
        if self.cfg.webhook_url:
            targets.append((Channel.WEBHOOK, self.cfg.webhook_url))
        if self.cfg.smtp_host:
            row = await self.db.get_voicemail_box_row(box)
            for addr in (row["email"] if row is not None else "").split(","):
                if addr.strip():
                    targets.append((Channel.EMAIL, addr.strip()))
        return await self.enqueue("voicemail", payload, targets)

    async def voicemail_left(self, ev: VoicemailLeft) -> None:
        """Durable subscriber of the event stream's ``voicemail left`` (pypbx.events)."""
        await self.voicemail_filed(ev.box, dict(ev.meta))

    async def reason_set(self, ev: ReasonSet) -> None:
        """Durable subscriber of ``reason.set``: a reason marked to notify e-mails its addresses."""
        addrs = [a for a in ev.notify.split(",") if a]
        if not addrs or not self.cfg.smtp_host:
            return
        when = sitetime.local(ev.at).strftime("%Y-%m-%d %H:%M")
        payload = {
            "event": "reason",
            "subject": f"Call reason {ev.label}: {ev.caller or 'unknown caller'} ({ev.service_line or '-'})",
            "text": "\n".join(
                [
                    f"An agent marked a call: {ev.label} ({ev.code}).",
                    "",
                    f"Caller:        {ev.caller or 'unknown'}",
                    f"Service line:  {ev.service_line or '-'}",
                    f"Agent:         {ev.agent or ev.extension or '-'}",
                    f"Time:          {when}",
                    f"Call id:       {ev.call_id}",
                    "",
                    f"Details: pypbx calls show {ev.call_id}",
                ]
            ),
            "call_id": ev.call_id,
            "code": ev.code,
        }
        await self.enqueue("reason", payload, [(Channel.EMAIL, a) for a in addrs])

    async def enqueue(self, kind: str, payload: Payload, targets: list[tuple[Channel, str]]) -> list[int]:
        if not targets:
            return []
        now = self.clock()
        body = json.dumps(payload, sort_keys=True)
        ids = await self.db.insert_notification_rows(
            [
                {
                    "kind": kind,
                    "channel": ch.value,
                    "target": t,
                    "payload": body,
                    "created_at": now,
                    "next_attempt_at": now,
                }
                for ch, t in targets
            ]
        )
        log.info(
            "notifications %s queued (%s)", ",".join(map(str, ids)), ", ".join(f"{ch.value} {t}" for ch, t in targets)
        )
        self._wake.set()
        return ids

    async def enqueue_hooks(self, kind: str, payload: Payload, hook_ids: list[int]) -> list[int]:
        """pypbx.webhooks: one delivery per call-event webhook."""
        return await self.enqueue(kind, payload, [(Channel.HOOK, str(h)) for h in hook_ids])

    # -- send ------------------------------------------------------------------------
    async def send_now(self, channel: Channel, target: str, payload: Payload, delivery_id: int | None = None) -> str:
        """One attempt, in a thread; returns a short result or raises NotifyError."""
        if channel is Channel.WEBHOOK:
            body = webhook_body(payload, delivery_id)
            return await post_webhook(target, body, secret=self.cfg.webhook_secret, timeout=self.cfg.timeout)
        if channel is Channel.HOOK:
            return await self._send_hook(int(target), payload, delivery_id or 0)
        msg = await asyncio.to_thread(build_email, self.cfg, target, payload)
        return await asyncio.to_thread(send_email, self.cfg, msg)

    async def _send_hook(self, hook_id: int, payload: Payload, delivery_id: int) -> str:
        row = await self.db.get_webhook_row(hook_id)
        if row is None:
            raise NotifyError(f"webhook {hook_id} was removed")
        now = self.clock()
        data = W.body(payload, delivery_id, now)
        hdrs = W.headers(str(payload.get("event")), delivery_id, data, row["secret"], now)
        return await post_json(row["url"], data, hdrs, timeout=self.cfg.timeout)

    async def deliver_hook(self, row: NotificationRow) -> Status:
        """One attempt of a call-event webhook's oldest pending delivery. It is retried (with
        backoff) until it goes through: the ones after it wait, so the endpoint gets every
        event once and in order. The first failure of an episode is one error line."""
        nid, attempts, hook_id = row["id"], row["attempts"] + 1, int(row["target"])
        hook = await self.db.get_webhook_row(hook_id)
        if hook is None:  # removed since: its deliveries go with it
            await self.db.update_notification_row(nid, status=Status.FAILED.value, last_error="webhook removed")
            return Status.FAILED
        try:
            detail = await self.send_now(Channel.HOOK, row["target"], json.loads(row["payload"]), nid)
        except Exception as exc:
            err = str(exc) if isinstance(exc, NotifyError) else f"{type(exc).__name__}: {_one_line(exc)}"
            wait = backoff(attempts, self.cfg.retry_first)
            await self.db.update_notification_row(
                nid, attempts=attempts, last_error=err, next_attempt_at=self.clock() + wait
            )
            if await self.db.mark_webhook_row(hook_id, ok=False, now=self.clock(), error=err):
                log.error("webhook %d (%s) is failing: %s; its events wait and are retried", hook_id, hook["url"], err)
            else:
                log.warning(
                    "webhook %d delivery %d attempt %d failed: %s; next in %.0f s", hook_id, nid, attempts, err, wait
                )
            return Status.PENDING
        await self.db.update_notification_row(
            nid, status=Status.SENT.value, attempts=attempts, sent_at=self.clock(), last_error=None
        )
        if hook["failing_since"] is not None:
            log.info("webhook %d (%s) delivers again", hook_id, hook["url"])
        await self.db.mark_webhook_row(hook_id, ok=True, now=self.clock())
        log.debug("webhook %d delivery %d sent: %s", hook_id, nid, detail)
        return Status.SENT

    async def _drain_hook(self, row: NotificationRow) -> None:
        """Deliver this endpoint's due rows in order until one fails or none is due."""
        for _ in range(HOOK_BURST):
            if await self.deliver_hook(row) is not Status.SENT:
                return
            nxt = [r for r in await self.db.next_hook_rows(self.clock()) if r["target"] == row["target"]]
            if not nxt:
                return
            row = nxt[0]

    async def deliver(self, row: NotificationRow) -> Status:
        """Attempt the row once and record the outcome (sent / retry later / failed)."""
        nid, attempts, target = row["id"], row["attempts"] + 1, row["target"]
        if (
            row["channel"] == Channel.WEBHOOK.value
            and row["kind"] != "alert"  # alerts go to [alerts] webhook_url
            and self.cfg.webhook_url
            and target != self.cfg.webhook_url
        ):
            target = self.cfg.webhook_url  # the URL was changed since: the one configured now
            await self.db.update_notification_row(nid, target=target)
        try:
            detail = await self.send_now(Channel(row["channel"]), target, json.loads(row["payload"]), nid)
        except Exception as exc:  # NotifyError, or a bug: either way the row stays accountable
            err = str(exc) if isinstance(exc, NotifyError) else f"{type(exc).__name__}: {_one_line(exc)}"
            if attempts >= self.cfg.max_attempts:
                await self.db.update_notification_row(
                    nid, status=Status.FAILED.value, attempts=attempts, last_error=err
                )
                log.error(
                    "notification %d (%s %s) failed for good after %d attempts: %s",
                    nid,
                    row["channel"],
                    target,
                    attempts,
                    err,
                )
                return Status.FAILED
            wait = backoff(attempts, self.cfg.retry_first)
            await self.db.update_notification_row(
                nid, attempts=attempts, last_error=err, next_attempt_at=self.clock() + wait
            )
            log.warning(
                "notification %d (%s %s) attempt %d failed: %s; next in %.0f s",
                nid,
                row["channel"],
                target,
                attempts,
                err,
                wait,
            )
            return Status.PENDING
        await self.db.update_notification_row(
            nid, status=Status.SENT.value, attempts=attempts, sent_at=self.clock(), last_error=None
        )
        log.info("notification %d (%s %s) sent: %s", nid, row["channel"], target, detail)
        return Status.SENT

    async def run_due(self) -> int:
        """Attempt every row due now (concurrently); returns how many were attempted."""
        rows = await self.db.due_notification_rows(self.clock())
        hooks = await self.db.next_hook_rows(self.clock())
        if rows or hooks:
            async with asyncio.TaskGroup() as tg:
                for r in rows:
                    tg.create_task(self.deliver(r))
                for r in hooks:  # one task per endpoint: its deliveries in order
                    tg.create_task(self._drain_hook(r))
        return len(rows) + len(hooks)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """The sender: until ``stop`` (or cancelled), deliver what is due, then sleep until the
        next due row, a new row (:meth:`enqueue`), or POLL_INTERVAL (rows changed by the CLI).
        Cancelled mid-attempt, the row stays pending and is sent after the next start."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_due()
                nxt = await self.db.next_notification_due()
            except Exception:
                log.exception("notifications: the sender failed; trying again")
                nxt = None
            wait = POLL_INTERVAL if nxt is None else max(0.0, min(POLL_INTERVAL, nxt - self.clock()))
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()


# ------------------------------------------------------------------ the CLI's verbs


async def send_hook_test(
    db: Database, hook_id: int, timeout: float = 10.0, clock: Callable[[], float] = time.time
) -> str:
    """``pypbx webhook test``: a signed ``webhook.test`` POSTed to the endpoint now (not
    through the outbox); returns ``HTTP <code>`` or raises NotifyError (one line)."""
    await W.get(db, hook_id)  # unknown: one line, exit 2
    row = await db.get_webhook_row(hook_id)
    assert row is not None
    now = clock()
    data = W.body({"event": "webhook.test", "data": {"webhook": hook_id}}, 0, now)
    return await post_json(row["url"], data, W.headers("webhook.test", 0, data, row["secret"], now), timeout=timeout)


async def list_notifications(db: Database, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    # dict[str, Any], not Notification: pypbx/cli/notify.py's what() takes dict[str, Any]
    return [cast("dict[str, Any]", _row(r)) for r in await db.list_notification_rows(status, limit)]


async def retry(db: Database, nid: int, clock: Callable[[], float] = time.time) -> Notification:
    """Put notification ``nid`` back in the queue, due now, with its attempts counted from 0."""
    row = await db.get_notification_row(nid)
    if row is None:
        raise NotifyError(f"no notification {nid}")
    if row["status"] == Status.SENT.value:
        raise NotifyError(f"notification {nid} was sent already (at {_when(row['sent_at'])})")
    await db.update_notification_row(nid, status=Status.PENDING.value, attempts=0, next_attempt_at=clock())
    return _row({**row, "status": Status.PENDING.value, "attempts": 0})


def _when(ts: float | None) -> str:
    return sitetime.local(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def probe_payload() -> dict[str, object]:
    return {
        "event": "test",
        "message": "pypbx test notification",
        "time": sitetime.local(time.time()).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
