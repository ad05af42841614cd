"""The one shared JSON value type: what ``json.loads`` returns (and ``json.dumps`` takes)."""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = str | int | float | bool | list["JSON"] | dict[str, "JSON"] | None
