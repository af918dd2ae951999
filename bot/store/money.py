"""Money in the database: who spent what (actual and estimated), alert channels, and budget alerts already sent.

Costs are whole micro-dollars. A job's cost is RunComfy's figure, or an estimate (`cost_estimated`) where RunComfy
gave none; jobs from before costs were recorded have no cost and count as estimated at the price they were quoted
at, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.database import Storage

# Actual and estimated spend of settled jobs, and what unfinished jobs hold at their quoted price.
SPEND_COLUMNS = """
    coalesce(sum(CASE WHEN settled = 1 AND cost_estimated = 0 THEN cost_micros END), 0) AS actual,
    coalesce(sum(CASE WHEN settled = 1 AND cost_estimated = 1 THEN coalesce(cost_micros, 0) END), 0) AS estimated,
    coalesce(sum(CASE WHEN settled = 0 THEN images_reserved * coalesce(price_micros, 0) END), 0) AS held,
    coalesce(sum(images_charged), 0) AS images,
    count(*) AS jobs
"""


@dataclass(frozen=True)
class Spend:
    actual_micros: int  # what RunComfy said settled jobs cost
    estimated_micros: int  # settled jobs RunComfy gave no cost for: images posted x quoted price
    held_micros: int  # unfinished jobs: images asked x quoted price
    images: int  # images charged to members
    jobs: int

    @property
    def total_micros(self) -> int:
        return self.actual_micros + self.estimated_micros


@dataclass(frozen=True)
class Spender:
    user_id: int
    spend: Spend


def spend_of(row: object) -> Spend:
    actual, estimated, held, images, jobs = (int(value) for value in row)  # type: ignore[attr-defined]
    return Spend(actual, estimated, held, images, jobs)


class MoneyStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def guild_spend(self, guild_id: int, since: float) -> Spend:
        rows = await self._storage.fetchall(
            f"SELECT {SPEND_COLUMNS} FROM jobs WHERE guild_id = ? AND created_at >= ?", (guild_id, since)
        )
        return spend_of(rows[0])

    async def top_spenders(self, guild_id: int, since: float, limit: int = 10) -> list[Spender]:
        """Members by dollars spent (actual plus estimated) since `since`, biggest first."""
        rows = await self._storage.fetchall(
            f"""SELECT * FROM (SELECT user_id, {SPEND_COLUMNS} FROM jobs WHERE guild_id = ? AND created_at >= ?
                                GROUP BY user_id) AS spenders
                 WHERE actual + estimated + held > 0 OR images > 0
                 ORDER BY actual + estimated DESC, images DESC, user_id LIMIT ?""",
            (guild_id, since, limit),
        )
        return [Spender(int(row[0]), spend_of(tuple(row)[1:])) for row in rows]

    async def set_alert_channel(self, guild_id: int, channel_id: int | None) -> None:
        """Where the bot tells this server's admins about budgets, credit and unknown outcomes; None: nowhere."""
        await self._storage.write(
            """INSERT INTO guilds (guild_id, alert_channel_id) VALUES (?, ?)
               ON CONFLICT (guild_id) DO UPDATE SET alert_channel_id = excluded.alert_channel_id""",
            (guild_id, channel_id),
        )

    async def alert_channel(self, guild_id: int) -> int | None:
        rows = await self._storage.fetchall("SELECT alert_channel_id FROM guilds WHERE guild_id = ?", (guild_id,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def alert_channels(self) -> list[tuple[int, int]]:
        """(guild id, channel id) of every server with an alert channel."""
        rows = await self._storage.fetchall(
            "SELECT guild_id, alert_channel_id FROM guilds WHERE alert_channel_id IS NOT NULL ORDER BY guild_id"
        )
        return [(int(row[0]), int(row[1])) for row in rows]

    async def first_alert(self, guild_id: int, period_start: float, percent: int, now: float) -> bool:
        """Record that the `percent` alert of this budget period is sent; False if it already was."""
        rows = await self._storage.write(
            """INSERT INTO budget_alerts (guild_id, period_start, percent, sent_at) VALUES (?, ?, ?, ?)
               ON CONFLICT DO NOTHING RETURNING 1""",
            (guild_id, int(period_start), percent, now),
        )
        return bool(rows)
