"""A TLS trunk verifies its provider's certificate unless told not to (``--tls-no-verify``):
stored with the trunk, and handed to the SIP server as its TLS policy (``sip.server.TlsPeer``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from pypbx import trunks as T
from pypbx.config import render_config
from sip.server import TlsPeer
from sip.transaction import Addr


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "pypbx.toml"
    p.write_text(render_config(data_dir=str(tmp_path / "var")))
    return p


def run_cli(cfg_path: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli.cli, ["--config", str(cfg_path), *args])
    return r.exit_code, r.output


def show(cfg_path: Path, name: str) -> dict[str, object]:
    code, out = run_cli(cfg_path, "trunk", "show", name, "--json")
    assert code == 0, out
    d: dict[str, object] = json.loads(out)
    return d


def test_tls_verify_is_on_by_default_and_switched_by_add_and_edit(cfg_path: Path) -> None:
    code, out = run_cli(
        cfg_path, "trunk", "add", "secure", "--host", "sip.provider.example", "--transport", "tls", "--port", "5061"
    )
    assert code == 0, out
    assert show(cfg_path, "secure")["tls_verify"] is True
    code, out = run_cli(cfg_path, "trunk", "add", "lab", "--host", "192.0.2.7", "--transport", "tls", "--tls-no-verify")
    assert code == 0, out
    assert show(cfg_path, "lab")["tls_verify"] is False
    code, out = run_cli(cfg_path, "trunk", "edit", "lab", "--tls-verify")
    assert code == 0, out
    assert show(cfg_path, "lab")["tls_verify"] is True
    code, out = run_cli(cfg_path, "trunk", "edit", "secure", "--tls-no-verify")
    assert code == 0, out
    assert show(cfg_path, "secure")["tls_verify"] is False


def test_service_gives_the_server_each_tls_trunks_name_and_choice() -> None:
    svc = T.TrunkService()

    class Server:
        tls_policy = None

    srv = Server()
    svc.attach(srv)
    svc.trunks = {
        "secure": T.Trunk("secure", "sip.provider.example", port=5061, transport="tls"),
        "lab": T.Trunk("lab", "192.0.2.7", port=5061, transport="tls", tls_verify=False),
        "plain": T.Trunk("plain", "192.0.2.8", port=5060, transport="udp"),
    }
    svc._ips = {"secure": {"198.51.100.5"}, "lab": {"192.0.2.7"}, "plain": {"192.0.2.8"}}
    assert srv.tls_policy is not None
    assert srv.tls_policy(Addr("TLS", "198.51.100.5", 5061)) == TlsPeer("sip.provider.example", True, "trunk secure")
    assert srv.tls_policy(Addr("TLS", "192.0.2.7", 5061)) == TlsPeer("192.0.2.7", False, "trunk lab")
    assert srv.tls_policy(Addr("TLS", "192.0.2.7", 5062)) is None  # not that trunk's port
    assert srv.tls_policy(Addr("TLS", "192.0.2.99", 5061)) is None  # not a trunk


def test_stored_trunks_from_before_the_column_verify() -> None:
    row = T.Trunk("old", "sip.provider.example").to_row()
    del row["tls_verify"]
    assert T.Trunk.from_row(row).tls_verify is True
