"""pypbx — the admin's command-line tool: a thin click layer over the library.

One module per noun (``pypbx.cli.ext``, ``queue``, ``trunk`` ...), shared output options in
:mod:`pypbx.cli.output`, ``--config`` handling in :mod:`pypbx.cli.context`. Every command
accepts ``--config PATH`` (before or after the command name; env PYPBX_CONFIG; default
./pypbx.toml). Errors: every :class:`pypbx.errors.PbxError` is caught once, here, and
printed as one line on stderr (``Error: <message>``) with its exit status (1 = failed,
2 = bad usage or input). The runtime never imports click; the CLI runs no SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from click.exceptions import NoArgsIsHelpError

from pypbx import config as _config
from pypbx.cli import (
    agent,
    alerts,
    audit,
    backup,
    call,
    callbacks,
    callers,
    calls,
    check,
    did,
    doctor,
    events,
    ext,
    group,
    hours,
    ivr,
    missed,
    notify,
    prompts,
    quality,
    queue,
    reason,
    recordings,
    report,
    route,
    service,
    simulate,
    survey,
    system,
    token,
    trunk,
    user,
    voicemail,
    webhook,
)
from pypbx.cli.context import CONFIG_HELP, remember_config
from pypbx.cli.examples import add_examples
from pypbx.cli.output import bad_parameter_line, one_line_error
from pypbx.errors import PbxError

__all__ = ["cli", "main"]


#: how the library words bad input: "bad ring timeout 'abc': expected seconds",
#: "unknown outcome 'bogus' (choose from ...)" -- exit 2 whatever the error's class
BAD_INPUT_PREFIXES = ("bad ", "unknown ")


def exit_code_of(e: PbxError) -> int:
    """The error's exit status: 2 for bad usage or input (its class says so, or its message
    is worded as bad input), else its own (1: the command failed)."""
    if e.exit_code == 1 and str(e).startswith(BAD_INPUT_PREFIXES):
        return 2
    return e.exit_code


class PbxGroup(click.Group):
    """The root group: a :class:`PbxError` anywhere below becomes a one-line error, and so
    does a bad option value (click's :class:`~click.BadParameter`: exit 2, one line, no
    usage block -- ``queue add --strategy fastest`` and ``trunk add --format weird`` alike)
    and every other usage error: an unknown command or option, a missing or extra argument
    (``Error: No such command 'quue'. Did you mean 'queue'?``, exit 2). A group or command
    called without its arguments still shows its help (click's ``NoArgsIsHelpError``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # the root's own options: ``pypbx --bogus``
            raise _usage_line(e) from None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PbxError as e:
            raise one_line_error(str(e), exit_code_of(e)) from None
        except click.UsageError as e:
            raise _usage_line(e) from None


def _usage_line(e: click.UsageError) -> click.ClickException:
    """click's usage error as one line, exit 2 (its help-on-no-arguments left as it is)."""
    if isinstance(e, NoArgsIsHelpError):
        return e
    if isinstance(e, click.BadParameter):
        return one_line_error(bad_parameter_line(e), 2)
    return one_line_error(" ".join(e.format_message().split()), 2)


@click.group(cls=PbxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="PATH",
    default=None,
    envvar=_config.ENV_VAR,
    expose_value=False,
    callback=remember_config,
    help=CONFIG_HELP,
)
@click.version_option(package_name="pypbx", prog_name="pypbx")
def cli() -> None:
    """pypbx — a SIP PBX with an ACD for small clinics."""


for _command in (
    *system.COMMANDS,
    check.check_cmd,
    doctor.doctor_cmd,
    ext.ext,
    agent.agent_group,
    queue.queue_group,
    callbacks.callbacks_cmd,
    missed.missed,
    trunk.trunk_group,
    did.did_group,
    route.route,
    call.call_cmd,
    calls.calls,
    recordings.recordings,
    simulate.simulate_cmd,
    hours.hours,
    callers.callers,
    ivr.ivr,
    voicemail.voicemail,
    survey.survey,
    group.group,
    notify.notify,
    report.report,
    reason.reason,
    prompts.prompts,
    events.events_cmd,
    user.user,
    token.token,
    audit.audit_cmd,
    quality.quality,
    webhook.webhook,
    backup.backup_group,
    backup.restore,
    alerts.alerts,
    service.service,
):
    cli.add_command(_command)
add_examples(cli)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="pypbx")
