"""``pypbx webhook``: call-event webhooks for the clinic's other systems (pypbx.webhooks).

``add URL --events … [--secret S]``, ``list``, ``remove ID``, ``test ID`` (a signed
``webhook.test`` POSTed now), ``log ID`` (its latest deliveries).
"""

from __future__ import annotations

import asyncio

import click

from pypbx import notify as N
from pypbx import webhooks as W
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.db import open_db


@click.group("webhook")
@config_option
def webhook() -> None:
    """Call-event webhooks: signed JSON POSTs to the clinic's other systems."""


@webhook.command("add")
@config_option
@click.argument("url")
@click.option(
    "--events",
    required=True,
    metavar="NAME,...",
    help=f"What to send ('all' = every one): {', '.join(W.EVENTS)}.",
)
@click.option("--secret", default="", help="HMAC-SHA256 signing key (X-Pypbx-Signature); '' = unsigned.")
@json_option
@click.pass_context
def webhook_add(ctx: click.Context, url: str, events: str, secret: str, as_json: bool) -> None:
    """Send the events named to URL (an http:// or https:// address)."""
    h = on_db(ctx, W.add, url, events, secret)
    done(as_json, h, f"Webhook {h['id']} added: {h['url']} ({', '.join(h['events'])}{', signed' if secret else ''}).")


@webhook.command("list")
@config_option
@json_option
@click.pass_context
def webhook_list(ctx: click.Context, as_json: bool) -> None:
    """The webhooks, and whether each is failing now."""
    rows = on_db(ctx, W.list_hooks)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No webhooks.")
        return
    click.echo(
        table(
            ["ID", "URL", "EVENTS", "SIGNED", "STATE", "LAST OK"],
            [
                [
                    h["id"],
                    h["url"],
                    ",".join(h["events"]),
                    "yes" if h["signed"] else "no",
                    f"failing since {ts(h['failing_since'])}: {h['last_error']}" if h["failing_since"] else "ok",
                    ts(h["last_ok_at"]),
                ]
                for h in rows
            ],
        )
    )


@webhook.command("remove")
@config_option
@click.argument("hook_id", metavar="ID", type=int)
@json_option
@click.pass_context
def webhook_remove(ctx: click.Context, hook_id: int, as_json: bool) -> None:
    """Remove webhook ID (its deliveries still waiting are dropped)."""
    on_db(ctx, W.remove, hook_id)
    done(as_json, {"id": hook_id, "removed": True}, f"Webhook {hook_id} removed.")


@webhook.command("test")
@config_option
@click.argument("hook_id", metavar="ID", type=int)
@json_option
@click.pass_context
def webhook_test(ctx: click.Context, hook_id: int, as_json: bool) -> None:
    """POST a signed webhook.test event to webhook ID now; one-line error if it fails."""
    cfg = load(ctx)

    async def go() -> str:
        async with open_db(cfg.db_path, cfg.numbers.region) as db:
            return await N.send_hook_test(db, hook_id, cfg.notify.timeout)

    res = asyncio.run(go())
    done(as_json, {"id": hook_id, "result": res}, f"Webhook {hook_id}: delivered ({res}).")


@webhook.command("log")
@config_option
@click.argument("hook_id", metavar="ID", type=int)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@click.pass_context
def webhook_log(ctx: click.Context, hook_id: int, limit: int, as_json: bool) -> None:
    """The latest deliveries of webhook ID, newest first."""
    rows = on_db(ctx, W.deliveries, hook_id, limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"Webhook {hook_id} has sent nothing yet.")
        return
    click.echo(
        table(
            ["ID", "EVENT", "CREATED", "STATUS", "TRIES", "NEXT / SENT", "LAST ERROR"],
            [
                [
                    r["id"],
                    r["event"],
                    ts(r["created_at"]),
                    r["status"],
                    r["attempts"],
                    ts(r["sent_at"]) if r["status"] == "sent" else ts(r["next_attempt_at"]),
                    (r["last_error"] or "-")[:60],
                ]
                for r in rows
            ],
        )
    )
