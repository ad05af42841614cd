"""``pypbx events [--since N] [--follow] [--json]``: the running PBX's event stream.

Reads the local API command ``events`` (pypbx.app: the events after ``since`` still in the
PBX's buffer, :mod:`pypbx.events`). ``--follow`` keeps asking for what came after the last
one (twice a second) until interrupted; a restart of the PBX (another ``run``) or events
no longer buffered are said on stderr, never skipped silently. ``--json``: one JSON object
per line (the journal's format).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import click

from pypbx import sitetime
from pypbx.cli.context import config_option, load
from pypbx.localapi_client import LocalAPIError, call

#: How often ``--follow`` asks the PBX for new events.
FOLLOW_INTERVAL = 0.5

_SUMMARY_KEYS = (
    "call_id",
    "disposition",
    "caller",
    "callee",
    "queue",
    "agent",
    "change",
    "reason",
    "outcome",
    "aor",
    "contact",
    "box",
    "trunk",
    "worker",
    "step",
    "held",
    "to",
    "number",
)


def _line(ev: Mapping[str, object]) -> str:
    at_value = ev.get("at") or 0
    if not isinstance(at_value, (int, float, str)):
        raise TypeError(f"event time is not a number: {at_value!r}")
    at = sitetime.local(float(at_value)).strftime("%H:%M:%S.%f")[:-3]  # the site's clock
    parts = [f"{k}={ev[k]}" for k in _SUMMARY_KEYS if ev.get(k) not in (None, "", {})]
    return f"{ev['seq']:>8}  {at}  {ev['event']:<22} " + " ".join(parts)


@click.command("events")
@config_option
@click.option(
    "--since", type=click.IntRange(0), default=0, show_default=True, help="Events after this sequence number."
)
@click.option(
    "--run",
    "run_id",
    default=None,
    metavar="ID",
    help="The PBX run SINCE was counted in (another run: from its start).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until interrupted.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="At most this many events per request.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def events_cmd(ctx: click.Context, since: int, run_id: str | None, follow: bool, limit: int, as_json: bool) -> None:
    """The running PBX's event stream (calls, queues, agents, registrations, trunks ...)."""
    cfg = load(ctx)
    try:
        while True:
            try:
                res = call(cfg.socket_path, "events", timeout=5.0, since=since, run=run_id, limit=limit)
            except LocalAPIError as e:
                raise click.ClickException(str(e)) from None
            if run_id is not None and res["run"] != run_id:
                click.echo(f"note: pypbx restarted (run {res['run']}); numbering began again", err=True)
                since = 0
            run_id = res["run"]
            gap = res.get("gap")
            if gap:
                click.echo(f"note: events {gap['first']}-{gap['last']} are no longer available", err=True)
            for ev in res["events"]:
                click.echo(json.dumps({**ev, "run": run_id}) if as_json else _line(ev))
                since = ev["seq"]
            if not follow:
                if not res["events"] or since >= res["last_seq"]:
                    return
                continue  # more than one page: keep reading
            if since >= res["last_seq"]:
                time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return
