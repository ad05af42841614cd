"""``pypbx notify``: the voicemail notifications' outbox (pypbx.notify).

``list [--pending|--failed|--sent] [--json]``, ``test [--email ADDR]`` (a test webhook and/or
e-mail sent now, from the CLI, not through the outbox), ``retry ID`` (a failed or waiting
notification due again now; the running PBX sends it within a few seconds).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from pypbx import notify as N
from pypbx import voicemail as V
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.db import Database
from pypbx.errors import PbxError, PbxUsageError


@click.group("notify")
@config_option
def notify() -> None:
    """Voicemail notifications: webhook and e-mail ([notify] in the config file)."""


@notify.command("list")
@config_option
@click.option("--pending", "status", flag_value="pending", help="Only those waiting to be sent.")
@click.option("--failed", "status", flag_value="failed", help="Only those given up on.")
@click.option("--sent", "status", flag_value="sent", help="Only those delivered.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@click.pass_context
def notify_list(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """Notifications, newest first."""

    rows = on_db(ctx, N.list_notifications, status, limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No notifications." if status is None else f"No {status} notifications.")
        return

    def what(r: dict[str, Any]) -> str:
        m = r["payload"].get("message", {})
        return f"box {r['payload'].get('mailbox', '-')} from {m.get('caller') or '-'}"

    click.echo(
        table(
            ["ID", "CREATED", "CHANNEL", "TARGET", "STATUS", "TRIES", "NEXT / SENT", "ABOUT", "LAST ERROR"],
            [
                [
                    r["id"],
                    ts(r["created_at"]),
                    r["channel"],
                    r["target"],
                    r["status"],
                    r["attempts"],
                    ts(r["sent_at"])
                    if r["status"] == "sent"
                    else ts(r["next_attempt_at"])
                    if r["status"] == "pending"
                    else "-",
                    what(r),
                    (r["last_error"] or "-")[:60],
                ]
                for r in rows
            ],
        )
    )


@notify.command("test")
@config_option
@click.option("--email", "email", default=None, metavar="ADDR", help="Also send a test e-mail to ADDR.")
@json_option
@click.pass_context
def notify_test(ctx: click.Context, email: str | None, as_json: bool) -> None:
    """Send a test webhook (when notify.webhook_url is set) and/or a test e-mail now."""

    cfg = load(ctx)
    n = cfg.notify
    jobs: list[tuple[N.Channel, str]] = []
    if n.webhook_url:
        jobs.append((N.Channel.WEBHOOK, n.webhook_url))
    if email is not None:
        addrs = V.parse_emails(email)  # VoicemailError: a PbxError, one line
        if not n.smtp_host:
            raise PbxError("no SMTP server: set notify.smtp_host in the config file")
        jobs += [(N.Channel.EMAIL, a) for a in addrs]
    if not jobs:
        raise PbxError("nothing to test: set notify.webhook_url, or notify.smtp_host and give --email ADDR")
    notifier = N.Notifier(None, n)  # type: ignore[arg-type]   # send_now needs no database
    failed: list[str] = []
    sent: list[dict[str, str]] = []
    for ch, target in jobs:
        try:
            res = asyncio.run(notifier.send_now(ch, target, N.probe_payload()))
        except N.NotifyError as e:
            failed.append(f"{ch.value} {target}: {e}")
            continue
        sent.append({"channel": ch.value, "target": target, "result": str(res)})
        if not as_json:
            click.echo(f"{ch.value} {target}: sent ({res})")
    if as_json:
        echo_json({"sent": sent, "failed": failed})
    if failed:
        raise PbxError("; ".join(failed))


async def _notification_exists(db: Database, nid: int) -> bool:
    return await db.get_notification_row(nid) is not None


@notify.command("retry")
@config_option
@click.argument("nid", metavar="ID", type=int)
@json_option
@click.pass_context
def notify_retry(ctx: click.Context, nid: int, as_json: bool) -> None:
    """Send notification ID again (the running PBX tries it within a few seconds)."""

    if on_db(ctx, _notification_exists, nid) is False:
        raise PbxUsageError(f"no notification {nid} (see pypbx notify list)")
    r = on_db(ctx, N.retry, nid)
    done(as_json, r, f"Notification {r['id']} ({r['channel']} {r['target']}) queued again.")
