"""``pypbx simulate``: a simulated clinic day through the real ACD code."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path

import click

from acd.simulator import PRESETS, format_report, simulate
from pypbx.cli.context import config_option
from pypbx.cli.output import echo_json, json_option
from pypbx.errors import PbxError


@click.command("simulate")
@config_option
@click.option(
    "--preset",
    default="mid_clinic",
    show_default=True,
    help="A built-in clinic day: small_gp, mid_clinic or large_centre.",
)
@click.option(
    "--scenario",
    "scenario",
    type=click.Path(dir_okay=False),
    default=None,
    help="A day of your own: a TOML or JSON file with the simulator's settings (overrides --preset).",
)
@click.option("--seed", default=1, show_default=True, help="Random seed (the same seed gives the same day).")
@json_option
def simulate_cmd(preset: str, scenario: str | None, seed: int, as_json: bool) -> None:
    """Run a simulated clinic day through the real ACD code and report service level,
    waiting times, abandonment, occupancy and the wait-estimate error."""

    spec: Mapping[str, object] | str
    if scenario is not None:
        path = Path(scenario)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise PbxError(f"cannot read {path}: {e.strerror or e}") from None
        try:
            if path.suffix.lower() == ".json":
                spec = json.loads(text)
            else:
                spec = tomllib.loads(text)
        except ValueError as e:
            raise PbxError(f"{path}: {e}") from None
    else:
        if preset not in PRESETS:
            raise PbxError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        spec = preset
    try:
        report = simulate(spec, seed=seed)
    except (KeyError, TypeError, ValueError) as e:
        raise PbxError(f"bad simulation settings: {e}") from None
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(format_report(report))
