"""pypbx — the admin's command-line tool (console script ``pypbx = "cli:main"``).

A shim: the commands live in the :mod:`pypbx.cli` package.
"""

from __future__ import annotations

from pypbx.cli import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    main()
