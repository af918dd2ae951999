"""Quota policy: who may reserve how many images, and the admin controls over it.

Quotas count images, since the price follows images. For each guild:
- a default number of images per period (day, week or month, calendar periods in UTC, see
  `bot.domain.periods`) and a maximum of unfinished jobs per user; the settings' defaults apply until the
  guild sets its own;
- overrides set by admins: per role (the most generous of a member's roles counts; unlimited beats
  any number) and per user (wins over roles, even when smaller); 0 blocks;
- an optional server-wide budget: images per period for the whole guild.
The concurrency cap and the budget apply to every member, unlimited ones included.

A user's usage in a period counts the images of their jobs created in that period (after their last
reset, if one happened in it): the charged images of settled jobs plus the reserved images of jobs
still running. A reservation belongs to the period its job was created in. The server budget counts
every job of the guild and ignores per-user resets: it tracks what the server spends.

`reserve` checks the concurrency cap, the user's limit and the server budget and inserts the job in
one transaction, so a burst of commands, even from several processes, cannot overspend. On SQLite it is a
`BEGIN IMMEDIATE` transaction, which reservations arriving together share (see `bot.store.group_commit`); on
PostgreSQL each reservation has its own, holding the guild's quota lock (an advisory lock) from its first read to
its commit. Usage is read from
per-day counters that triggers keep in step with the jobs (see `bot.store.migrations`), so a check costs
the same however many jobs a server has run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bot.domain import periods
from bot.domain.job import options_json
from bot.domain.job_state import JobState
from bot.domain.quota_policy import (
    GuildQuota,
    GuildRow,
    Limit,
    Override,
    QuotaDefaults,
    Snapshot,
    Usage,
    check_count,
    day_number,
    effective_limit,
    guild_quota,
    usage,
)
from bot.engine.quota_snapshot import SNAPSHOT_SQL, read_snapshot, role_list, snapshot_of, snapshot_parameters
from bot.engine.refusals import QuotaRefused, check_reservation
from bot.store.database import Job, Storage
from bot.store.group_commit import GroupCommit
from bot.store.job_states import NewJob, insert_pending, insert_pending_job
from bot.store.transaction import Transaction

__all__ = [
    "GuildQuota",
    "Limit",
    "Override",
    "QuotaDefaults",
    "Quotas",
    "Usage",
]


class Quotas:
    """Reserve images for jobs within the limits, report usage, and let admins change the limits."""

    def __init__(
        self,
        storage: Storage,
        defaults: QuotaDefaults,
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 128,
        price_per_image: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`max_batch`: how many reservations arriving together may share one transaction (see group_commit).

        `price_per_image`: the quoted price in micro-dollars (see `pricing`); a reservation is checked against
        a dollar budget with it, and the job keeps it to estimate its cost when RunComfy gives none.
        """
        self._storage = storage
        self._defaults = defaults
        self._clock = clock
        self._price = price_per_image
        self._batches = GroupCommit(storage, max_batch=max_batch)
        self._undoing: set[asyncio.Task[None]] = set()

    # what is in force

    async def effective_limit(self, guild_id: int, user_id: int, role_ids: Iterable[int] = ()) -> Limit:
        """The limit in force for this member, and where it comes from."""
        snapshot = await read_snapshot(self._storage, guild_id, user_id, role_list(role_ids), self._clock())
        return effective_limit(guild_quota(self._defaults, snapshot.guild), snapshot.overrides)

    async def usage(self, guild_id: int, user_id: int, role_ids: Iterable[int] = ()) -> Usage:
        """This member's usage in the current period, against their limit."""
        now = self._clock()
        snapshot = await read_snapshot(self._storage, guild_id, user_id, role_list(role_ids), now)
        limit = effective_limit(guild_quota(self._defaults, snapshot.guild), snapshot.overrides)
        return usage(limit, snapshot, now)

    async def guild_usage(self, guild_id: int) -> int:
        """Images used and reserved this period by the whole server (in the budget's period if it has one)."""
        guild = await self.guild_settings(guild_id)
        start, _ = periods.period_bounds(guild.budget_period or guild.period, self._clock())
        rows = await self._storage.fetchall(
            "SELECT coalesce(sum(charged + reserved), 0) FROM guild_usage_days WHERE guild_id = ? AND day >= ?",
            (guild_id, day_number(start)),
        )
        return int(rows[0][0])

    async def top_users(self, guild_id: int, limit: int = 10) -> list[tuple[int, int]]:
        """(user id, images used and reserved) this period, biggest first; counted like `usage`."""
        check_count("limit", limit, minimum=0)
        guild = await self.guild_settings(guild_id)
        start, _ = periods.period_bounds(guild.period, self._clock())
        rows = await self._storage.fetchall(
            """SELECT user_id, sum(charged + reserved) AS images FROM user_usage_days
                WHERE guild_id = ? AND day >= ? GROUP BY user_id HAVING sum(charged + reserved) > 0
                ORDER BY images DESC, user_id LIMIT ?""",
            (guild_id, day_number(start), limit),
        )
        return [(int(row[0]), int(row[1])) for row in rows]

    # reserving

    async def reserve(
        self,
        guild_id: int,
        user_id: int,
        role_ids: Iterable[int],
        images: int,
        *,
        channel_id: int,
        options: dict[str, Any],
    ) -> Job:
        """Check every limit and insert a pending job holding `images`, atomically. Raises `QuotaRefused`."""
        check_count("images", images, minimum=1)
        stored_options = options_json(options)
        roles = role_list(role_ids)
        price = self._price()

        job = NewJob(guild_id, channel_id, user_id, stored_options, images, price)

        def check(snapshot: Snapshot, now: float) -> None:
            check_reservation(self._defaults, snapshot, images, now, price)

        def check_and_insert(connection: sqlite3.Connection) -> Job:  # runs on the database thread
            now = self._clock()
            parameters = snapshot_parameters(guild_id, user_id, now)
            check(snapshot_of(connection.execute(SNAPSHOT_SQL, parameters).fetchall(), roles), now)
            return insert_pending_job(connection, job, now)

        if self._storage.dialect == "sqlite":
            return await self._batches.run_sync(check_and_insert, clean=(QuotaRefused,), on_abandoned=self._give_back)

        async def check_and_insert_locked(tx: Transaction) -> Job:
            # The guild's quota lock, held to the commit: no other reservation in this guild, from any process,
            # reads the usage until this one's job is in it.
            await tx.fetchall("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"seedream-quota:{guild_id}",))
            now = self._clock()
            check(await read_snapshot(tx, guild_id, user_id, roles, now), now)
            return await insert_pending(tx, job, now)

        return await self._in_own_transaction(check_and_insert_locked)

    async def _in_own_transaction(self, body: Callable[[Transaction], Awaitable[Job]]) -> Job:
        """Run `body` in a transaction of its own; if the caller leaves once it has committed, give the job back."""

        async def run() -> Job:
            async with self._storage.transaction() as tx:
                return await body(tx)

        task = asyncio.create_task(run())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._give_back_when_done)
            raise

    def _give_back_when_done(self, task: asyncio.Task[Job]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        undo = asyncio.create_task(self._give_back(task.result()))
        self._undoing.add(undo)
        undo.add_done_callback(self._undoing.discard)

    async def _give_back(self, job: Job) -> None:
        """The caller of `reserve` was cancelled after its job was committed: release the reservation."""
        await self._storage.finish_job(job.id, JobState.CANCELLED, error="The request was withdrawn before it started.")

    # admin

    async def guild_settings(self, guild_id: int) -> GuildQuota:
        rows = await self._storage.fetchall(
            """SELECT quota_images, quota_period, max_concurrent, budget_images, budget_period, budget_usd_micros
                 FROM guilds WHERE guild_id = ?""",
            (guild_id,),
        )
        if not rows:
            return guild_quota(self._defaults, None)
        return guild_quota(self._defaults, GuildRow(*rows[0]))

    async def set_guild_defaults(
        self,
        guild_id: int,
        *,
        images: int | None = None,
        period: str | None = None,
        max_concurrent: int | None = None,
    ) -> GuildQuota:
        """Set the guild's own default limit, period or concurrency cap; None leaves a value as it is."""
        _optional_count("images", images)
        if period is not None:
            periods.check_period(period)
        if max_concurrent is not None:
            check_count("max_concurrent", max_concurrent, minimum=1)
        await self._storage.write(
            """INSERT INTO guilds (guild_id, quota_images, quota_period, max_concurrent) VALUES (:g, :i, :p, :m)
               ON CONFLICT (guild_id) DO UPDATE SET quota_images = coalesce(:i, guilds.quota_images),
                   quota_period = coalesce(:p, guilds.quota_period),
                   max_concurrent = coalesce(:m, guilds.max_concurrent)""",
            {"g": guild_id, "i": images, "p": period, "m": max_concurrent},
        )
        return await self.guild_settings(guild_id)

    async def set_budget(
        self, guild_id: int, images: int | None, period: str | None = None, *, usd_micros: int | None = None
    ) -> GuildQuota:
        """Set the server-wide budget per period (the guild's period if None): a cap in images, in dollars
        (micro-dollars), or both; with neither the server has no budget."""
        _optional_count("images", images)
        _optional_count("usd_micros", usd_micros)
        if period is not None:
            periods.check_period(period)
        if images is None and usd_micros is None:
            period = None
        await self._storage.write(
            """INSERT INTO guilds (guild_id, budget_images, budget_period, budget_usd_micros) VALUES (:g, :i, :p, :u)
               ON CONFLICT (guild_id) DO UPDATE SET budget_images = :i, budget_period = :p, budget_usd_micros = :u""",
            {"g": guild_id, "i": images, "p": period, "u": usd_micros},
        )
        return await self.guild_settings(guild_id)

    async def guild_spend(self, guild_id: int) -> tuple[int, int]:
        """(spent, held) micro-dollars this budget period: settled jobs' costs, unfinished jobs' quoted images."""
        guild = await self.guild_settings(guild_id)
        start, _ = periods.period_bounds(guild.budget_period or guild.period, self._clock())
        rows = await self._storage.fetchall(
            """SELECT coalesce(sum(spent_micros), 0), coalesce(sum(held_micros), 0) FROM guild_usage_days
                WHERE guild_id = ? AND day >= ?""",
            (guild_id, day_number(start)),
        )
        return int(rows[0][0]), int(rows[0][1])

    async def _set_override(self, guild_id: int, kind: str, target_id: int, images: int | None) -> None:
        _optional_count("images", images)
        async with self._storage.transaction() as tx:
            await tx.fetchall("INSERT INTO guilds (guild_id) VALUES (?) ON CONFLICT DO NOTHING", (guild_id,))
            await tx.fetchall(
                """INSERT INTO quota_overrides (guild_id, kind, target_id, images, updated_at) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id, kind, target_id)
                   DO UPDATE SET images = excluded.images, updated_at = excluded.updated_at""",
                (guild_id, kind, target_id, images, self._clock()),
            )

    async def set_user_limit(self, guild_id: int, user_id: int, images: int | None) -> None:
        """Give a user their own limit (wins over roles); None: unlimited, 0: blocked."""
        await self._set_override(guild_id, "user", user_id, images)

    async def set_role_limit(self, guild_id: int, role_id: int, images: int | None) -> None:
        """Give a role a limit (the most generous role of a member counts); None: unlimited."""
        await self._set_override(guild_id, "role", role_id, images)

    async def _remove_override(self, guild_id: int, kind: str, target_id: int) -> bool:
        rows = await self._storage.write(
            "DELETE FROM quota_overrides WHERE guild_id = ? AND kind = ? AND target_id = ? RETURNING 1",
            (guild_id, kind, target_id),
        )
        return bool(rows)

    async def remove_user_override(self, guild_id: int, user_id: int) -> bool:
        return await self._remove_override(guild_id, "user", user_id)

    async def remove_role_override(self, guild_id: int, role_id: int) -> bool:
        return await self._remove_override(guild_id, "role", role_id)

    async def overrides(self, guild_id: int) -> list[Override]:
        rows = await self._storage.fetchall(
            "SELECT kind, target_id, images FROM quota_overrides WHERE guild_id = ? ORDER BY kind DESC, target_id",
            (guild_id,),
        )
        return [Override(row["kind"], int(row["target_id"]), row["images"]) for row in rows]

    async def reset_usage(self, guild_id: int, user_id: int) -> None:
        """Forget the user's usage so far (jobs still running included); the server budget keeps counting it."""
        now = self._clock()
        async with self._storage.transaction() as tx:
            await tx.fetchall("INSERT INTO guilds (guild_id) VALUES (?) ON CONFLICT DO NOTHING", (guild_id,))
            await tx.fetchall(
                """INSERT INTO usage_resets (guild_id, user_id, reset_at) VALUES (?, ?, ?)
                   ON CONFLICT (guild_id, user_id) DO UPDATE SET reset_at = excluded.reset_at""",
                (guild_id, user_id, now),
            )
            await tx.fetchall(
                """UPDATE jobs SET forgiven = 1
                    WHERE guild_id = ? AND user_id = ? AND created_at <= ? AND forgiven = 0""",
                (guild_id, user_id, now),
            )


def _optional_count(name: str, value: int | None) -> int | None:
    return None if value is None else check_count(name, value, minimum=0)
