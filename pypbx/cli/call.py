"""``pypbx call``: click-to-call through the running PBX."""

from __future__ import annotations

import click

from pypbx.cli.context import config_option, load
from pypbx.cli.output import echo_json, json_option
from pypbx.errors import PbxError
from pypbx.localapi_client import call


@click.command("call")
@config_option
@click.argument("extension")
@click.argument("number")
@json_option
@click.pass_context
def call_cmd(ctx: click.Context, extension: str, number: str, as_json: bool) -> None:
    """Click-to-call: ring EXTENSION's phones, then dial NUMBER through a trunk."""

    result = call(load(ctx).socket_path, "call", extension=extension, number=number)
    if isinstance(result, dict) and result.get("error"):
        raise PbxError(f"call refused: {result['error']}")
    if as_json:
        echo_json(result)
        return
    click.echo(f"Calling {extension}, then {number} ({result.get('class')}); call {result.get('call_id')}.")
