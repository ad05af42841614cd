"""pypbx.config: loading, defaults, validation errors (one line, naming the key)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pypbx.config import (
    DEFAULT_SCANNER_USER_AGENTS,
    Config,
    ConfigError,
    config_from_dict,
    config_path_from,
    load_config,
    render_config,
)


def write(tmp_path: Path, text: str, name: str = "pypbx.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, text: str) -> str:
    """The one-line error of a config file with ``text``; a problem with a key names the file
    and the key's line at its end (issue 12), checked here and cut off for the comparison."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    msg = str(ei.value)
    assert "\n" not in msg
    if msg.startswith(f"config error: {path}:"):  # unreadable file: named at the start
        return msg
    m = re.fullmatch(rf"(.*) \({re.escape(str(path))}(?:, line (\d+))?\)", msg)
    assert m is not None, f"{msg!r} does not name {path}"
    if m.group(2):
        assert 1 <= int(m.group(2)) <= text.count("\n") + 1
    return m.group(1)


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert isinstance(cfg, Config)
    assert cfg.data_dir == (tmp_path / "var").resolve()
    assert cfg.db_path == cfg.data_dir / "pypbx.db"
    assert cfg.socket_path == cfg.data_dir / "pypbx.sock"
    assert cfg.config_path == tmp_path / "pypbx.toml"
    assert cfg.log_level == "INFO"
    s = cfg.sip
    assert (s.bind, s.udp_port, s.tcp_port, s.tls_port) == ("0.0.0.0", 5060, 5060, 5061)
    assert (s.tls_cert, s.tls_key, s.tls_enabled) == (None, None, False)
    assert (s.realm, s.user_agent) == ("pypbx", "pypbx")
    r = cfg.registrar
    assert (r.min_expires, r.max_expires, r.default_expires, r.max_contacts) == (60, 3600, 3600, 5)
    sec = cfg.security
    assert (sec.nonce_lifetime, sec.auth_fail_limit, sec.auth_fail_window, sec.ban_time) == (300, 5, 60, 600)
    assert (sec.rate_limit, sec.rate_burst, sec.exempt) == (50.0, 200, ())
    assert sec.scanner_user_agents == DEFAULT_SCANNER_USER_AGENTS
    assert "friendly-scanner" in sec.scanner_user_agents and "sipvicious" in sec.scanner_user_agents


def test_rendered_default_config_round_trips(tmp_path: Path) -> None:
    text = render_config()
    assert "[sip]" in text and "[registrar]" in text and "[security]" in text
    rendered = load_config(write(tmp_path, text, "rendered.toml"))
    empty = load_config(write(tmp_path, "", "empty.toml"))
    assert dataclasses.replace(rendered, config_path=empty.config_path) == empty


def test_render_overrides(tmp_path: Path) -> None:
    text = render_config(
        sip_port=5070,
        data_dir="/srv/pbx",
        log_level="DEBUG",
        security={"exempt": ["127.0.0.1", "10.0.0.0/8"]},
        sip_realm="clinic",
    )
    cfg = load_config(write(tmp_path, text))
    assert (cfg.sip.udp_port, cfg.sip.tcp_port) == (5070, 5070)
    assert cfg.data_dir == Path("/srv/pbx")
    assert cfg.log_level == "DEBUG"
    assert cfg.sip.realm == "clinic"
    assert cfg.security.exempt == ("127.0.0.1", "10.0.0.0/8")
    assert cfg.security.is_exempt("10.1.2.3") and cfg.security.is_exempt("127.0.0.1")
    assert not cfg.security.is_exempt("192.168.1.1")
    with pytest.raises(ConfigError, match="unknown key 'sip_udpport'"):
        render_config(sip_udpport=1)


def test_relative_paths_are_relative_to_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    (sub / "cert.pem").write_text("x")
    (sub / "key.pem").write_text("x")
    p = write(sub, 'data_dir = "data"\n[sip]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(p)
    assert cfg.data_dir == (sub / "data").resolve()
    assert cfg.sip.tls_cert == (sub / "cert.pem").resolve()
    assert cfg.sip.tls_key == (sub / "key.pem").resolve()
    assert cfg.sip.tls_enabled


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.toml")
    assert (
        str(ei.value) == f"config error: config file not found: {tmp_path / 'nope.toml'} (create one with 'pypbx init')"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[sip]\nudp_port = "abc"\n', "config error: sip.udp_port: expected an integer 0-65535, got 'abc'"),
        ("[sip]\nudp_port = 70000\n", "config error: sip.udp_port: expected an integer 0-65535, got 70000"),
        ("[sip]\ntcp_port = true\n", "config error: sip.tcp_port: expected an integer 0-65535, got True"),
        ("[sip]\nudpport = 5060\n", "config error: unknown key 'sip.udpport'"),
        ("dat_dir = 'x'\n", "config error: unknown key 'dat_dir'"),
        ("[sips]\nx = 1\n", "config error: unknown section '[sips]'"),
        ('log_level = "LOUD"\n', "config error: log_level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
        (
            '[sip]\nbind = "example.org"\n',
            "config error: sip.bind: expected an IP address (e.g. '0.0.0.0' or '::'), got 'example.org'",
        ),
        ('[sip]\nrealm = ""\n', "config error: sip.realm: must not be empty"),
        ("[registrar]\nmin_expires = 0\n", "config error: registrar.min_expires: expected an integer 1-604800, got 0"),
        (
            "[registrar]\nmin_expires = 600\nmax_expires = 300\n",
            "config error: registrar.min_expires: must be <= registrar.max_expires (300), got 600",
        ),
        (
            "[registrar]\ndefault_expires = 30\n",
            "config error: registrar.default_expires: must be between registrar.min_expires and "
            "registrar.max_expires (60-3600), got 30",
        ),
        ("[security]\nrate_limit = 0\n", "config error: security.rate_limit: expected a number > 0, got 0"),
        (
            '[security]\nexempt = ["300.1.1.1"]\n',
            "config error: security.exempt: expected IP addresses or networks, got '300.1.1.1'",
        ),
        (
            '[security]\nexempt = "127.0.0.1"\n',
            "config error: security.exempt: expected a list of IP addresses, got '127.0.0.1'",
        ),
        ('[sip]\ntls_cert = "c.pem"\n', "config error: sip.tls_key: required when sip.tls_cert is set"),
        (
            "[sip]\nudp_port = 0\ntcp_port = 0\n",
            "config error: sip: no transport enabled (udp_port, tcp_port and TLS are all off)",
        ),
        ("sip = 5\n", "config error: sip: expected a [sip] table, got 5"),
    ],
)
def test_bad_values_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected


def test_tls_files_must_exist(tmp_path: Path) -> None:
    msg = error_of(tmp_path, '[sip]\ntls_cert = "c.pem"\ntls_key = "k.pem"\n')
    assert msg == f"config error: sip.tls_cert: file not found: {(tmp_path / 'c.pem').resolve()}"


def test_invalid_toml(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "[sip\nudp_port = 1\n")
    assert msg.startswith(f"config error: {tmp_path / 'pypbx.toml'}: invalid TOML: ")
    assert "line 1" in msg


def test_port_zero_turns_a_transport_off(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[sip]\nudp_port = 0\n"))
    assert (cfg.sip.udp_port, cfg.sip.tcp_port) == (0, 5060)


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.log_level = "DEBUG"  # type: ignore[misc]


def test_config_from_dict(tmp_path: Path) -> None:
    cfg = config_from_dict({"sip": {"realm": "x"}}, tmp_path)
    assert cfg.sip.realm == "x" and cfg.data_dir == (tmp_path / "var").resolve()


def test_config_path_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYPBX_CONFIG", raising=False)
    assert config_path_from(None) == tmp_path / "pypbx.toml"
    monkeypatch.setenv("PYPBX_CONFIG", "/etc/pypbx/a.toml")
    assert config_path_from(None) == Path("/etc/pypbx/a.toml")
    assert config_path_from("b.toml") == tmp_path / "b.toml"
