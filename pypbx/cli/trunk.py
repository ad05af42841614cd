"""``pypbx trunk``: SIP trunks to the telephone network (pypbx.trunks)."""

from __future__ import annotations

from typing import Any

import click

from pypbx import trunks as T
from pypbx.cli.context import config_option, load, on_db
from pypbx.cli.filters import require
from pypbx.cli.output import F, done, echo_json, json_option, table, ts
from pypbx.errors import PbxError
from pypbx.localapi_client import LocalAPIError, NotRunningError, call

#: A trunk option's value as click hands it over.
TrunkOption = str | int | bool | tuple[str, ...] | None


def _live_trunks(ctx: click.Context) -> dict[str, dict[str, object]]:
    """Registration state from the running PBX ({} when it is not running)."""

    try:
        rows = call(load(ctx).socket_path, "trunks")
    except (LocalAPIError, NotRunningError, OSError):
        return {}
    return {r["name"]: r for r in rows or [] if isinstance(r, dict)}


def _split_host(host: str, port: int | None) -> tuple[str, int | None]:
    if host and host.count(":") == 1:
        h, _, p = host.partition(":")
        if p.isdigit():
            return h, int(p)
    return host, port


def _trunk_options(f: F) -> F:
    opts = [
        click.option("--host", default=None, help="Provider host or IP, optionally host:port."),
        click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default 5060."),
        click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default=None),
        click.option("--username", default=None, help="Registration / digest user name."),
        click.option("--password", default=None, help="Digest password (stored in the database: keep it 0600)."),
        click.option("--auth-username", default=None, help="Digest user name when it differs from --username."),
        click.option("--domain", default=None, help="SIP domain of the account (default: the host)."),
        click.option(
            "--register/--no-register",
            "register",
            default=None,
            help="Register to the provider (else an IP-authenticated trunk).",
        ),
        click.option("--expires", type=click.IntRange(60, 86400), default=None, help="Registration expiry asked for."),
        click.option("--priority", type=int, default=None, help="Lower is tried first (default 10)."),
        click.option("--caller-id", default=None, help="Number presented on outside calls."),
        click.option(
            "--format",
            "number_format",
            type=click.Choice(["e164", "e164_no_plus", "national", "international", "as_dialled"]),
            default=None,
            help="How dialled numbers are sent (default e164).",
        ),
        click.option("--strip-prefix", default=None, help="Removed from the front of the formatted number."),
        click.option("--add-prefix", default=None, help="Put in front of the formatted number."),
        click.option("--max-channels", type=click.IntRange(0), default=None, help="Concurrent calls (0 = no limit)."),
        click.option(
            "--inbound-ip",
            "inbound_ips",
            multiple=True,
            help="Address or network the provider calls from (repeatable; its host always counts).",
        ),
        click.option("--enable/--disable", "enabled", default=None),
        click.option(
            "--tls-verify/--tls-no-verify",
            "tls_verify",
            default=None,
            help="TLS: check the provider's certificate (default; --tls-no-verify is logged as a warning).",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _trunk_changes(kw: dict[str, TrunkOption]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in kw.items() if v is not None and k != "inbound_ips"}
    inbound = kw.get("inbound_ips")
    if isinstance(inbound, tuple) and inbound:
        out["inbound_ips"] = [x for item in inbound for x in item.split(",") if x.strip()]
    if "host" in out:
        out["host"], port = _split_host(out["host"], out.get("port"))
        if port is not None:
            out["port"] = port
    return out


@click.group("trunk")
@config_option
def trunk_group() -> None:
    """SIP trunks to the telephone network (registration or IP-authenticated)."""


@trunk_group.command("add")
@config_option
@click.argument("name")
@_trunk_options
@json_option
@click.pass_context
def trunk_add(ctx: click.Context, /, name: str, as_json: bool = False, **kw: TrunkOption) -> None:
    """Add trunk NAME (--host is required)."""
    ch = _trunk_changes(kw)
    if not ch.get("host"):
        raise PbxError("--host is required")
    if ch.get("register") is None and ch.get("username") and ch.get("password"):
        ch["register"] = True
    t = on_db(ctx, T.add_trunk, T.Trunk(name=name, **ch))
    kind = "registration" if t.register else "IP-authenticated"
    done(as_json, t.public(), f"Trunk {t.name} added ({kind}, {t.transport} {t.host}:{t.port}, priority {t.priority}).")


@trunk_group.command("edit")
@config_option
@click.argument("name")
@_trunk_options
@json_option
@click.pass_context
def trunk_edit(ctx: click.Context, /, name: str, as_json: bool = False, **kw: TrunkOption) -> None:
    """Change settings of trunk NAME."""
    require(ctx, "trunk", name)
    t = on_db(ctx, T.edit_trunk, name, _trunk_changes(kw))
    done(as_json, t.public(), f"Trunk {t.name} updated.")


@trunk_group.command("remove")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def trunk_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove trunk NAME."""
    require(ctx, "trunk", name)
    on_db(ctx, T.remove_trunk, name)
    done(as_json, {"trunk": name, "removed": True}, f"Trunk {name} removed.")


def _trunk_dict(t: T.Trunk, live: dict[str, dict[str, object]]) -> dict[str, object]:
    d = t.public()
    st = live.get(t.name)
    if st is not None:
        d.update(
            state=st.get("state"),
            last_reason=st.get("last_reason"),
            expires_in=st.get("expires_in"),
            active_calls=st.get("active_calls"),
        )
    else:
        d.update(state=None if t.register else "ip-auth", last_reason=None, expires_in=None, active_calls=None)
    return d


@trunk_group.command("list")
@config_option
@json_option
@click.pass_context
def trunk_list(ctx: click.Context, as_json: bool) -> None:
    """List trunks with their registration state (when pypbx is running)."""
    trunks = on_db(ctx, T.list_trunks)
    live = _live_trunks(ctx)
    rows = [_trunk_dict(t, live) for t in trunks]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No trunks. Add one with: pypbx trunk add NAME --host sip.provider.net --username U --password P")
        return
    click.echo(
        table(
            ["NAME", "HOST", "TRANSPORT", "PRIO", "TYPE", "STATE", "LAST REASON", "CALLER ID", "CHANNELS"],
            [
                [
                    r["name"],
                    f"{r['host']}:{r['port']}",
                    r["transport"],
                    r["priority"],
                    "register" if r["register"] else "ip-auth",
                    f"{r['state'] or '(pypbx not running)'}{'' if r['enabled'] else ', disabled'}",
                    r["last_reason"] or "-",
                    r["caller_id"] or "-",
                    f"{r['active_calls'] if r['active_calls'] is not None else '-'}/{r['max_channels'] or 'any'}",
                ]
                for r in rows
            ],
        )
    )


@trunk_group.command("show")
@config_option
@click.argument("name")
@json_option
@click.pass_context
def trunk_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one trunk (the password is never shown)."""
    require(ctx, "trunk", name)
    t = on_db(ctx, T.get_trunk, name)
    d = _trunk_dict(t, _live_trunks(ctx))
    if as_json:
        echo_json(d)
        return
    for k, v in d.items():
        if k in ("created_at", "updated_at"):
            v = ts(v if isinstance(v, (int, float)) else None)  # float | None (Trunk)
        elif isinstance(v, list):
            v = ", ".join(v) or "-"
        click.echo(f"{k.replace('_', ' ')}: {'-' if v in (None, '') else v}")
