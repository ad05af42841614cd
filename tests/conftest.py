"""Shared fixtures.

* ``tmp_config`` — Path of a config file in tmp_path: free UDP/TCP/TLS ports, data_dir =
  tmp_path/'var', security.exempt = ['127.0.0.1'] so tests are never banned/rate limited.
  ``load_config(tmp_config)`` gives the Config.
* ``make_config`` — factory: ``make_config(**render_config_overrides) -> Path``.
* ``cli_runner`` — click CliRunner; ``invoke_cli(*args)`` runs ``pypbx`` with it.
* ``free_port(kind)`` — a port free for 'udp', 'tcp' or 'both' (same number on UDP and TCP).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pypbx.config import render_config


def free_port(kind: str = "both", host: str = "127.0.0.1") -> int:
    """A port currently free on ``host`` (binding port 0, then checking the other protocol)."""
    for _ in range(100):
        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        try:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if kind != "both":
                return port
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                other.bind((host, port))
            except OSError:
                continue
            finally:
                other.close()
            return port
        finally:
            first.close()
    raise RuntimeError("no free port found")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "pypbx.toml", **overrides: Any) -> Path:
        sip_port = free_port("both")
        tls_port = free_port("tcp")
        sip = {"bind": "127.0.0.1", "udp_port": sip_port, "tcp_port": sip_port, "tls_port": tls_port}
        sip.update(overrides.pop("sip", {}))
        security = {"exempt": ["127.0.0.1"]}
        security.update(overrides.pop("security", {}))
        overrides.setdefault("data_dir", "./var")
        overrides.setdefault("web", {"port": free_port("tcp")})  # the web desk: never the shared 8080
        path = tmp_path / name
        path.write_text(render_config(sip=sip, security=security, **overrides), encoding="utf-8")
        return path

    return make


@pytest.fixture
def tmp_config(make_config: Callable[..., Path]) -> Path:
    return make_config()


@pytest.fixture
def cli_runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke_cli(cli_runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``invoke_cli('ext', 'list', '--config', str(tmp_config), input=None)`` -> click Result."""
    monkeypatch.delenv("PYPBX_CONFIG", raising=False)
    from cli import cli

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        return cli_runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke
