"""What a quota check reads: one statement gathering a member's limits, usage and unfinished jobs in a guild."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.domain.quota_policy import GuildRow, Override, Snapshot, day_number, earliest_period_start
from bot.store.database import Storage
from bot.store.migrations import UNFINISHED_SQL
from bot.store.transaction import Transaction

# One statement, one round trip: every row is (kind, id, a, b, c, d, p, q), meaning by kind:
#   guild       -, quota_images, max_concurrent, budget_images, budget_usd_micros, quota_period, budget_period
#   user, role  target id, images (NULL: unlimited)
#   user_day    day, charged, reserved   (the member's counters, from the earliest period start on)
#   guild_day   day, charged, reserved, spent micro-dollars, held micro-dollars   (the server's counters)
#   unfinished  -, the member's unfinished jobs in this guild
SNAPSHOT_SQL = f"""
    SELECT 'guild' AS kind, CAST(NULL AS BIGINT) AS id, quota_images AS a, max_concurrent AS b, budget_images AS c,
           budget_usd_micros AS d, quota_period AS p, budget_period AS q
      FROM guilds WHERE guild_id = :guild
    UNION ALL
    SELECT kind, target_id, images, NULL, NULL, NULL, NULL, NULL
      FROM quota_overrides
     WHERE guild_id = :guild AND ((kind = 'user' AND target_id = :user) OR kind = 'role')
    UNION ALL
    SELECT 'user_day', day, charged, reserved, NULL, NULL, NULL, NULL
      FROM user_usage_days WHERE guild_id = :guild AND user_id = :user AND day >= :since
    UNION ALL
    SELECT 'guild_day', day, charged, reserved, spent_micros, held_micros, NULL, NULL
      FROM guild_usage_days WHERE guild_id = :guild AND day >= :since
    UNION ALL
    SELECT 'unfinished', NULL, count(*), NULL, NULL, NULL, NULL, NULL
      FROM jobs WHERE guild_id = :guild AND user_id = :user AND {UNFINISHED_SQL}
"""


def role_list(role_ids: Iterable[int]) -> frozenset[int]:
    return frozenset(int(role) for role in role_ids)


def snapshot_parameters(guild_id: int, user_id: int, now: float) -> dict[str, Any]:
    since = day_number(earliest_period_start(now))
    return {"guild": guild_id, "user": user_id, "since": since}


def snapshot_of(rows: Iterable[Any], roles: frozenset[int]) -> Snapshot:
    """The rows of `SNAPSHOT_SQL`, with the overrides of the member's `roles` only (it reads all of the guild's)."""
    guild = None
    overrides: list[Override] = []
    user_days: dict[int, tuple[int, int]] = {}
    guild_days: dict[int, tuple[int, int]] = {}
    money_days: dict[int, tuple[int, int]] = {}
    unfinished = 0
    for kind, key, a, b, c, d, p, q in rows:
        if kind == "guild_day":
            day = int(key)
            guild_days[day] = (int(a), int(b))
            money_days[day] = (int(c), int(d))
        elif kind == "user_day":
            user_days[int(key)] = (int(a), int(b))
        elif kind == "guild":
            guild = GuildRow(a, p, b, c, q, d)  # in GuildRow's field order
        elif kind == "unfinished":
            unfinished = int(a)
        elif kind == "user" or int(key) in roles:
            overrides.append(Override(kind, int(key), a))
    return Snapshot(guild, overrides, user_days, guild_days, unfinished, money_days)


async def read_snapshot(
    reader: Storage | Transaction, guild_id: int, user_id: int, roles: frozenset[int], now: float
) -> Snapshot:
    return snapshot_of(await reader.fetchall(SNAPSHOT_SQL, snapshot_parameters(guild_id, user_id, now)), roles)
