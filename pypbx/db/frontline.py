"""Queries: the front line's configuration: opening hours, IVR menus, ring groups, the dialplan look-up."""

from __future__ import annotations

from pypbx.db.core import DatabaseCore
from pypbx.db.rows import IvrMenuRow, RingGroupRow, ScheduleRow


class FrontLineQueries(DatabaseCore):
    # ------------------------------------------------------------------ front line (issue 5)
    # opening hours (pypbx.hours)
    async def upsert_schedule_row(self, name: str, tz: str, week: str, holidays: str, now: float) -> None:
        async with self.transaction():
            await self.execute(
                "INSERT INTO schedules(name, tz, week, holidays, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET tz = excluded.tz, week = excluded.week, "
                "holidays = excluded.holidays, updated_at = excluded.updated_at",
                (name, tz, week, holidays, now),
            )

    async def get_schedule_row(self, name: str) -> ScheduleRow | None:
        return await self.fetch_row(
            ScheduleRow, "SELECT name, tz, week, holidays, updated_at FROM schedules WHERE name = ?", (name,)
        )

    async def list_schedule_rows(self) -> list[ScheduleRow]:
        return await self.fetch_rows(
            ScheduleRow, "SELECT name, tz, week, holidays, updated_at FROM schedules ORDER BY name"
        )

    async def delete_schedule_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM schedules WHERE name = ?", (name,)) > 0

    # IVR menus (pypbx.ivr)
    async def upsert_ivr_menu_row(self, name: str, number: str | None, config: str, now: float) -> None:
        """Raises IntegrityError if another menu has the number."""
        async with self.transaction():
            await self.execute(
                "INSERT INTO ivr_menus(name, number, config, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET number = excluded.number, config = excluded.config, "
                "updated_at = excluded.updated_at",
                (name, number, config, now),
            )

    async def get_ivr_menu_row(self, name: str) -> IvrMenuRow | None:
        return await self.fetch_row(
            IvrMenuRow, "SELECT name, number, config, updated_at FROM ivr_menus WHERE name = ?", (name,)
        )

    async def list_ivr_menu_rows(self) -> list[IvrMenuRow]:
        return await self.fetch_rows(IvrMenuRow, "SELECT name, number, config, updated_at FROM ivr_menus ORDER BY name")

    async def delete_ivr_menu_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM ivr_menus WHERE name = ?", (name,)) > 0

    # ------------------------------------------------------------------ front line: the dialplan
    def is_front_line_number_sync(self, number: str) -> bool:
        """An IVR menu or mailbox number? A blocking read-only look (a separate connection),
        for the front door's synchronous routing of a number the CLI added a moment ago."""
        return self.exists_sync(
            "SELECT 1 FROM ivr_menus WHERE number = ? UNION ALL SELECT 1 FROM voicemail_boxes WHERE number = ?",
            (number, number),
        )

    # ------------------------------------------------------------------ ring groups (pypbx.groups)
    async def insert_ring_group_row(
        self, name: str, members: str, strategy: str, ring_time: float, then_dest: str, now: float
    ) -> None:
        """Raises IntegrityError if the group exists."""
        async with self.transaction():
            await self.execute(
                "INSERT INTO ring_groups(name, members, strategy, ring_time, then_dest, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, members, strategy, ring_time, then_dest, now),
            )

    async def get_ring_group_row(self, name: str) -> RingGroupRow | None:
        return await self.fetch_row(RingGroupRow, "SELECT * FROM ring_groups WHERE name = ?", (name,))

    async def list_ring_group_rows(self) -> list[RingGroupRow]:
        return await self.fetch_rows(RingGroupRow, "SELECT * FROM ring_groups ORDER BY name")

    async def delete_ring_group_row(self, name: str) -> bool:
        async with self.transaction():
            return await self.execute("DELETE FROM ring_groups WHERE name = ?", (name,)) > 0
