"""The one shared type of JSON data (what ``json.loads`` returns and ``json.dumps`` takes)."""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | list[JSON] | dict[str, JSON] | None"
"""A JSON value, defined recursively."""
