"""Files shipped for a production install (issue 13): the systemd unit (a template
``pypbx service install`` fills in), the fail2ban filter and jails. Read them with
:func:`text`."""

from __future__ import annotations

from importlib import resources


def text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
