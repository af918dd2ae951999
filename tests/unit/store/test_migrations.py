"""Schema versions on real files: a new database, upgrades in place from versions 1 and 2, refusals."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from bot.domain.job_state import JobState
from bot.engine.prompt_filter import PromptBlocked, PromptFilter
from bot.engine.quotas import GuildQuota, Override, QuotaDefaults, Quotas
from bot.store import migrations
from bot.store.database import Storage, StorageError
from tests.fixtures.storage import START_TIME, ManualClock

GUILD, USER, OTHER = 10, 20, 21


async def pragma(db: aiosqlite.Connection, name: str):
    return next(iter(await db.execute_fetchall(f"PRAGMA {name}")))[0]


async def make_database(path: Path, version: int) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    await migrations.upgrade(db, target=version)
    return db


async def test_a_new_database_is_created_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "seedream.db"
    storage = await Storage.open(path, busy_timeout=2.5)
    try:
        assert path.is_file()
        assert await pragma(storage.db, "user_version") == migrations.LATEST_VERSION == 7
        assert await pragma(storage.db, "journal_mode") == "wal"
        assert await pragma(storage.db, "foreign_keys") == 1
        assert await pragma(storage.db, "busy_timeout") == 2500
        tables = {row[0] for row in await storage.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"jobs", "guilds", "quota_overrides", "usage_resets", "meta", "user_usage_days"} <= tables
        assert {"blocked_terms", "blocked_prompt_days"} <= tables
    finally:
        await storage.close()
    reopened = await Storage.open(path)  # opening again changes nothing
    try:
        assert await pragma(reopened.db, "user_version") == migrations.LATEST_VERSION
    finally:
        await reopened.close()


async def test_version_1_is_upgraded_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "seedream.db"
    db = await make_database(path, 1)
    t = START_TIME
    try:
        await db.execute_fetchall("INSERT INTO guilds VALUES (?, 20, 'day', 3)", (GUILD,))
        await db.execute_fetchall("INSERT INTO quota_overrides VALUES (?, 'user', ?, 25, ?)", (GUILD, USER, t))
        await db.execute_fetchall("INSERT INTO usage_resets VALUES (?, ?, ?)", (GUILD, USER, t))
        await db.execute_fetchall("INSERT INTO meta VALUES ('commands_hash', 'abc123')")
        jobs = [  # id, user, reserved, charged, settled, state, created_at
            ("aaaaaaaaaaaa", USER, 4, 4, 1, "delivered", t - 100),  # before the reset: forgiven
            ("bbbbbbbbbbbb", USER, 8, 6, 1, "delivered", t + 10),
            ("cccccccccccc", USER, 3, 0, 0, "queued", t + 20),
            ("dddddddddddd", OTHER, 2, 2, 1, "delivered", t + 30),
        ]
        for job_id, user, reserved, charged, settled, state, created in jobs:
            await db.execute_fetchall(
                """INSERT INTO jobs (id, guild_id, channel_id, user_id, options, request_id, state, images_reserved,
                                     images_charged, settled, interaction_token, created_at, updated_at)
                   VALUES (?, ?, 1, ?, '{"prompt": "p"}', ?, ?, ?, ?, ?, 'tok', ?, ?)""",
                (job_id, GUILD, user, f"req-{job_id}", state, reserved, charged, settled, created, created),
            )
    finally:
        await db.close()

    clock = ManualClock(t + 60)
    storage = await Storage.open(path, clock=clock)
    try:
        assert await pragma(storage.db, "user_version") == migrations.LATEST_VERSION
        assert await storage.get_meta("commands_hash") == "abc123"
        queued = await storage.job_by_request_id("req-cccccccccccc")
        assert queued is not None
        assert (queued.id, queued.state, queued.images_reserved, queued.options) == (
            "cccccccccccc",
            JobState.QUEUED,
            3,
            {"prompt": "p"},
        )
        assert [job.id for job in await storage.unfinished_jobs()] == ["cccccccccccc"]

        quotas = Quotas(storage, QuotaDefaults(30, "day", 2), clock=clock)
        assert await quotas.guild_settings(GUILD) == GuildQuota(20, "day", 3, None, None, False)
        assert await quotas.overrides(GUILD) == [Override("user", USER, 25)]
        usage = await quotas.usage(GUILD, USER)
        assert (usage.used, usage.reserved, usage.remaining, usage.unfinished_jobs) == (6, 3, 16, 1)
        assert await quotas.guild_usage(GUILD) == 4 + 6 + 3 + 2

        await storage.transition("cccccccccccc", JobState.DELIVERING)  # the counters keep up after the upgrade
        await storage.finish_job("cccccccccccc", JobState.DELIVERED, images_delivered=2)
        usage = await quotas.usage(GUILD, USER)
        assert (usage.used, usage.reserved) == (8, 0)
        assert await quotas.set_budget(GUILD, 100) == GuildQuota(20, "day", 3, 100, "day", False)
    finally:
        await storage.close()


async def test_version_2_is_upgraded_to_3_keeping_its_data_and_gaining_the_prompt_filter(tmp_path: Path) -> None:
    path = tmp_path / "seedream.db"
    db = await make_database(path, 2)
    try:
        assert await pragma(db, "user_version") == 2
        assert not await db.execute_fetchall("SELECT name FROM sqlite_master WHERE name = 'blocked_terms'")
        await db.execute_fetchall(
            "INSERT INTO guilds (guild_id, quota_images, budget_images) VALUES (?, 9, 50)", (GUILD,)
        )
        await db.execute_fetchall(
            """INSERT INTO jobs (id, guild_id, channel_id, user_id, options, request_id, state, images_reserved,
                                 created_at, updated_at)
               VALUES ('eeeeeeeeeeee', ?, 1, ?, '{"prompt": "p"}', 'req-e', 'queued', 4, ?, ?)""",
            (GUILD, USER, START_TIME, START_TIME),
        )
    finally:
        await db.close()

    clock = ManualClock(START_TIME + 60)
    storage = await Storage.open(path, clock=clock)
    try:
        assert await pragma(storage.db, "user_version") == migrations.LATEST_VERSION
        quotas = Quotas(storage, QuotaDefaults(30, "day", 2), clock=clock)
        assert await quotas.guild_settings(GUILD) == GuildQuota(9, "day", 2, 50, "day", False)
        assert (await quotas.usage(GUILD, USER)).reserved == 4
        prompt_filter = PromptFilter(storage)
        assert await prompt_filter.add(GUILD, "wolf", added_by=USER) == ("wolf", True)
        with pytest.raises(PromptBlocked):
            await prompt_filter.check(GUILD, USER, "a wolf")
        assert await prompt_filter.blocked_count(GUILD, since=clock()) == 1
        with pytest.raises(sqlite3.IntegrityError):  # one row per term and server
            await storage.write("INSERT INTO blocked_terms VALUES (?, 'wolf', 1, 0)", (GUILD,))
    finally:
        await storage.close()


async def test_a_database_from_a_newer_release_is_refused_and_left_alone(database_path: Path) -> None:
    storage = await Storage.open(database_path)
    await storage.set_meta("k", "v")
    await storage.db.execute_fetchall("PRAGMA user_version = 99")
    await storage.close()
    with pytest.raises(StorageError) as refused:
        await Storage.open(database_path)
    message = str(refused.value)
    assert "newer release" in message and "version 99" in message and "up to version 7" in message
    assert "DATABASE_PATH" in message
    async with aiosqlite.connect(database_path) as db:
        assert await pragma(db, "user_version") == 99
        assert list(await db.execute_fetchall("SELECT value FROM meta WHERE key = 'k'")) == [("v",)]


async def test_a_failed_upgrade_leaves_the_database_as_it_was(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "seedream.db"
    db = await make_database(path, 1)
    try:
        broken_v2 = (*migrations.MIGRATIONS[1], "ALTER TABLE no_such_table ADD COLUMN x INTEGER")
        monkeypatch.setattr(migrations, "MIGRATIONS", (migrations.MIGRATIONS[0], broken_v2))
        with pytest.raises(sqlite3.OperationalError):
            await migrations.upgrade(db)
        assert await pragma(db, "user_version") == 1
        columns = {row[1] for row in await db.execute_fetchall("PRAGMA table_info(guilds)")}
        assert "budget_images" not in columns
        assert not await db.execute_fetchall("SELECT name FROM sqlite_master WHERE name = 'user_usage_days'")
    finally:
        await db.close()


async def test_two_processes_starting_together_both_open_a_new_file(database_path: Path) -> None:
    first, second = await asyncio.gather(Storage.open(database_path), Storage.open(database_path))
    try:
        versions = (await pragma(first.db, "user_version"), await pragma(second.db, "user_version"))
        assert versions == (migrations.LATEST_VERSION,) * 2
    finally:
        await first.close()
        await second.close()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "seedream.db"
    await asyncio.to_thread(path.write_bytes, b"this is not sqlite, just some text " * 200)
    with pytest.raises(StorageError, match=r"cannot be used.*SQLite database"):
        await Storage.open(path)


async def test_an_impossible_folder_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    await asyncio.to_thread(blocker.write_text, "x")
    with pytest.raises(StorageError, match=r"folder .* cannot be created"):
        await Storage.open(blocker / "seedream.db")


async def test_upgrade_target_is_checked(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "x.db", isolation_level=None) as db:
        with pytest.raises(ValueError, match="target"):
            await migrations.upgrade(db, target=migrations.LATEST_VERSION + 1)


async def test_version_3_is_upgraded_to_4_keeping_jobs_counters_and_gaining_the_unknown_state(tmp_path: Path) -> None:
    path = tmp_path / "seedream.db"
    db = await make_database(path, 3)
    try:
        with pytest.raises(sqlite3.IntegrityError):  # version 3 knows no such state
            await db.execute_fetchall(
                """INSERT INTO jobs (id, guild_id, channel_id, user_id, options, state, images_reserved,
                                     created_at, updated_at) VALUES ('x', 1, 1, 1, '{}', 'unknown', 1, 0, 0)"""
            )
        for job_id, state, request_id in (("aaaaaaaaaaaa", "queued", "req-a"), ("bbbbbbbbbbbb", "pending", None)):
            await db.execute_fetchall(
                """INSERT INTO jobs (id, guild_id, channel_id, user_id, options, request_id, state, images_reserved,
                                     created_at, updated_at)
                   VALUES (?, ?, 1, ?, '{"prompt": "p"}', ?, ?, 3, ?, ?)""",
                (job_id, GUILD, USER, request_id, state, START_TIME, START_TIME),
            )
    finally:
        await db.close()

    clock = ManualClock(START_TIME + 60)
    storage = await Storage.open(path, clock=clock)
    try:
        assert await pragma(storage.db, "user_version") == migrations.LATEST_VERSION
        quotas = Quotas(storage, QuotaDefaults(30, "day", 5), clock=clock)
        assert (await quotas.usage(GUILD, USER)).reserved == 6
        assert [job.id for job in await storage.unfinished_jobs()] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
        assert (await storage.get_job("aaaaaaaaaaaa")).request_id == "req-a"
        job = await storage.finish_job("bbbbbbbbbbbb", JobState.UNKNOWN, error="e")
        assert job.state is JobState.UNKNOWN and job.images_charged == 0 and job.submitted_at is None
        usage = await quotas.usage(GUILD, USER)  # the triggers came back with the table
        assert (usage.used, usage.reserved) == (0, 3)
        assert [job.id for job in await storage.unfinished_jobs()] == ["aaaaaaaaaaaa"]
        names = {row[0] for row in await storage.fetchall("SELECT name FROM sqlite_master WHERE tbl_name = 'jobs'")}
        assert {"jobs_by_user", "jobs_unfinished", "jobs_count_insert", "jobs_count_update"} <= names
    finally:
        await storage.close()


async def test_version_4_is_upgraded_to_5_keeping_jobs_and_counting_dollars(tmp_path: Path) -> None:
    path = tmp_path / "seedream.db"
    db = await make_database(path, 4)
    try:
        await db.execute_fetchall(
            """INSERT INTO jobs (id, guild_id, channel_id, user_id, options, request_id, state, images_reserved,
                                 created_at, updated_at)
               VALUES ('aaaaaaaaaaaa', ?, 1, ?, '{}', 'r', 'queued', 3, ?, ?)""",
            (GUILD, USER, START_TIME, START_TIME),
        )
    finally:
        await db.close()
    clock = ManualClock(START_TIME + 60)
    storage = await Storage.open(path, clock=clock)
    try:
        assert await pragma(storage.db, "user_version") == migrations.LATEST_VERSION
        quotas = Quotas(storage, QuotaDefaults(30, "day", 5), clock=clock, price_per_image=lambda: 30_000)
        assert await quotas.guild_spend(GUILD) == (0, 0)  # an old job has no quoted price
        assert (await quotas.usage(GUILD, USER)).reserved == 3
        await quotas.reserve(GUILD, USER, (), 2, channel_id=1, options={"prompt": "p", "images": 2})
        assert await quotas.guild_spend(GUILD) == (0, 60_000)
        old = await storage.finish_job("aaaaaaaaaaaa", JobState.CANCELLED)
        assert (old.cost_micros, old.cost_estimated) == (None, True)  # nothing to estimate from
        assert (await quotas.usage(GUILD, USER)).reserved == 2
    finally:
        await storage.close()


async def test_version_6_is_upgraded_to_7_with_processes_and_job_owners(tmp_path: Path) -> None:
    path = tmp_path / "seedream.db"
    db = await make_database(path, 6)
    try:
        await db.execute_fetchall(
            """INSERT INTO jobs (id, guild_id, channel_id, user_id, options, request_id, state, images_reserved,
                                 created_at, updated_at)
               VALUES ('aaaaaaaaaaaa', ?, 1, ?, '{}', 'r', 'queued', 3, ?, ?)""",
            (GUILD, USER, START_TIME, START_TIME),
        )
    finally:
        await db.close()
    storage = await Storage.open(path, clock=ManualClock(START_TIME + 60))
    try:
        assert await pragma(storage.db, "user_version") == 7
        rows = await storage.fetchall("SELECT id, owner FROM jobs")
        assert [tuple(row) for row in rows] == [("aaaaaaaaaaaa", None)]  # followed by no process yet
        await storage.write(
            "INSERT INTO processes (id, host, pid, shards, started_at, heartbeat_at) VALUES ('p', 'h', 1, 'all', ?, ?)",
            (START_TIME + 0.125, START_TIME + 0.125),
        )
        assert (await storage.fetchall("SELECT heartbeat_at FROM processes"))[0][0] == START_TIME + 0.125
    finally:
        await storage.close()
