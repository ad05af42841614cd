"""pypbx — the admin's command-line tool (console script ``pypbx = "cli:main"``).

A shim: the commands live in the :mod:`pypbx.cli` package. ``pypbx run`` on a data
directory already in use is refused here, before the CLI is imported (pypbx.runlock).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pypbx.runlock import preflight

if TYPE_CHECKING:
    import click

__all__ = ["main"]  # and `cli`, the click group, loaded on first use (__getattr__)


def main(argv: Sequence[str] | None = None) -> None:
    preflight(list(sys.argv[1:] if argv is None else argv))
    # function-level: a refused second `pypbx run` exits before the CLI's ~1 s of imports
    from pypbx.cli import main as cli_main

    cli_main(argv)


def __getattr__(name: str) -> click.Group:
    if name == "cli":
        from pypbx.cli import cli as group  # lazily, like main()

        return group
    raise AttributeError(name)


if __name__ == "__main__":
    main()
