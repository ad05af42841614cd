"""The one error hierarchy (pypbx.errors) and its single translation in the CLI's root group."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pypbx.cli import PbxGroup
from pypbx.errors import PbxError, PbxUsageError


def _group_raising(exc: Exception) -> click.Group:
    @click.group(cls=PbxGroup)
    def root() -> None:
        """A root group like pypbx's."""

    @root.group()
    def noun() -> None:
        """A nested group, as every pypbx noun is."""

    @noun.command()
    def verb() -> None:
        raise exc

    return root


@pytest.mark.parametrize(("exc", "code"), [(PbxError("it failed"), 1), (PbxUsageError("bad input"), 2)])
def test_pbx_errors_become_one_line_with_their_exit_code(exc: PbxError, code: int) -> None:
    r = CliRunner().invoke(_group_raising(exc), ["noun", "verb"])
    assert r.exit_code == code
    assert r.stderr == f"Error: {exc}\n"
    assert r.stdout == ""


def test_other_exceptions_are_not_swallowed() -> None:
    r = CliRunner().invoke(_group_raising(RuntimeError("bug")), ["noun", "verb"])
    assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)


def test_every_domain_error_is_a_pbx_error() -> None:
    from pypbx.acdstore import AcdError
    from pypbx.callers import CallersError
    from pypbx.calllog import CallLogError
    from pypbx.config import ConfigError
    from pypbx.db import DBError, IntegrityError, SchemaTooNewError
    from pypbx.extensions import ExtensionError
    from pypbx.groups import GroupError
    from pypbx.hours import HoursError
    from pypbx.ivr import IvrError
    from pypbx.localapi_client import LocalAPIError, NotRunningError
    from pypbx.notify import NotifyError
    from pypbx.routing import RoutingError
    from pypbx.survey import SurveyError
    from pypbx.trunks import TrunkError
    from pypbx.voicemail import VoicemailError

    for cls in (
        AcdError,
        CallersError,
        CallLogError,
        ConfigError,
        DBError,
        IntegrityError,
        SchemaTooNewError,
        ExtensionError,
        GroupError,
        HoursError,
        IvrError,
        LocalAPIError,
        NotRunningError,
        NotifyError,
        RoutingError,
        SurveyError,
        TrunkError,
        VoicemailError,
    ):
        assert issubclass(cls, PbxError), cls
        assert cls.exit_code == 1, cls
    # the ValueError-based ones still are ValueErrors (code catching ValueError keeps working)
    for cls in (CallersError, GroupError, HoursError, IvrError, NotifyError, RoutingError, SurveyError, VoicemailError):
        assert issubclass(cls, ValueError), cls


def test_runtime_modules_do_not_import_click() -> None:
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "pypbx"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "cli" not in p.relative_to(root).parts
        and re.search(r"^\s*(import click|from click)", p.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []


def test_a_missing_config_is_one_line_exit_1(invoke_cli, tmp_path) -> None:
    r = invoke_cli("ext", "list", "--config", str(tmp_path / "nope.toml"))
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1
