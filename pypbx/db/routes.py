"""Queries: routing rules: named routes, each an ordered list of rules (pypbx.routing)."""

from __future__ import annotations

from collections.abc import Sequence

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import RouteRow, RouteRuleRow


class RouteQueries(DatabaseCore):
    # ------------------------------------------------------------------ routing rules (pypbx.routing)
    async def insert_route_row(self, name: str, tz: str, now: float) -> None:
        """Raises IntegrityError if the route exists."""
        async with self.transaction():
            await self.execute("INSERT INTO routes(name, tz, created_at) VALUES (?, ?, ?)", (name, tz, now))

    async def set_route_tz_row(self, name: str, tz: str) -> bool:
        async with self.transaction():
            return await self.execute("UPDATE routes SET tz = ? WHERE name = ?", (tz, name)) > 0

    async def get_route_row(self, name: str) -> RouteRow | None:
        return await self.fetch_row(RouteRow, "SELECT * FROM routes WHERE name = ?", (name,))

    async def list_route_rows(self) -> list[RouteRow]:
        return await self.fetch_rows(RouteRow, "SELECT * FROM routes ORDER BY name")

    async def delete_route_row(self, name: str) -> bool:
        async with self.transaction():
            await self.execute("DELETE FROM route_rules WHERE route = ?", (name,))
            return await self.execute("DELETE FROM routes WHERE name = ?", (name,)) > 0

    async def list_route_rule_rows(self, name: str | None = None) -> list[RouteRuleRow]:
        if name is None:
            return await self.fetch_rows(RouteRuleRow, "SELECT * FROM route_rules ORDER BY route, position")
        return await self.fetch_rows(
            RouteRuleRow, "SELECT * FROM route_rules WHERE route = ? ORDER BY position", (name,)
        )

    async def replace_route_rule_rows(self, name: str, rules: Sequence[tuple[str, str, str]]) -> None:
        """The route's rules become ``rules`` ((conditions JSON, destination, options JSON),
        positions 1..n in this order), in one transaction."""
        async with self.transaction():
            await self.execute("DELETE FROM route_rules WHERE route = ?", (name,))
            for i, (conds, dest, opts) in enumerate(rules, start=1):
                await self.execute(
                    "INSERT INTO route_rules(route, position, conditions, destination, options) VALUES (?, ?, ?, ?, ?)",
                    (name, i, conds, dest, opts),
                )
